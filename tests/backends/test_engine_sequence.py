"""Incremental detokenization and stop conditions, on a real byte-level BPE tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from backends.engine.sequence import SequenceDecoder
from tests.doubles.tiny_llama import TEXT, build_tiny_llama


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = build_tiny_llama(Path(tmp_path_factory.mktemp("tiny")))
    return AutoTokenizer.from_pretrained(folder)


def _run(decoder: SequenceDecoder, ids: list[int]) -> tuple[list[str], str | None]:
    deltas: list[str] = []
    for token in ids:
        step = decoder.push(token)
        deltas.append(step.text)
        if step.finish_reason is not None:
            return deltas, step.finish_reason
    return deltas, None


def test_token_by_token_text_equals_whole_decode(tokenizer: Any) -> None:
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    # The fixture text must really split characters across tokens, or this test proves nothing.
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)
    decoder = SequenceDecoder(tokenizer, [1, 3], max_new_tokens=len(ids))
    deltas, reason = _run(decoder, ids)
    assert "".join(deltas) == TEXT
    assert reason == "length"
    assert not any("\ufffd" in d for d in deltas)  # no half characters ever sent


def test_unfinished_character_is_flushed_when_the_budget_ends(tokenizer: Any) -> None:
    ids = tokenizer.encode("🙂", add_special_tokens=False)
    assert len(ids) > 1
    decoder = SequenceDecoder(tokenizer, [1], max_new_tokens=1)
    step = decoder.push(ids[0])
    assert step.finish_reason == "length"
    assert step.text == tokenizer.decode(ids[:1])  # a replacement char, not silence


def test_eos_finishes_with_stop_is_counted_and_not_rendered(tokenizer: Any) -> None:
    ids = tokenizer.encode("Café", add_special_tokens=False)
    decoder = SequenceDecoder(
        tokenizer,
        [1],
        max_new_tokens=50,
        eos_token_ids=frozenset({tokenizer.eos_token_id}),
    )
    deltas, reason = _run(decoder, [*ids, tokenizer.eos_token_id, *ids])
    assert reason == "stop"
    assert "".join(deltas) == "Café"
    assert decoder.generated == len(ids) + 1
    with pytest.raises(RuntimeError):
        decoder.push(ids[0])


@pytest.mark.parametrize("stop", ["lazy", "jumps over", "é c", "🚀"])
def test_stop_string_cuts_output_and_is_never_sent(tokenizer: Any, stop: str) -> None:
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    decoder = SequenceDecoder(tokenizer, [1], max_new_tokens=len(ids), stop=("zzz", stop))
    deltas, reason = _run(decoder, ids)
    assert reason == "stop"
    assert "".join(deltas) == TEXT[: TEXT.index(stop)]
    assert decoder.generated < len(ids)


def test_text_that_may_start_a_stop_string_is_held_back_then_released(tokenizer: Any) -> None:
    # "quick brown " could still become "quick brown cat": none of it may go out until the
    # text diverges at the "f" of "fox"; then it all goes out and nothing is lost.
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    decoder = SequenceDecoder(tokenizer, [1], max_new_tokens=len(ids), stop=("quick brown cat",))
    sent = ""
    for token in ids:
        sent += decoder.push(token).text
        assert TEXT.startswith(sent)
        if "q" in sent:
            assert "quick brown f" in sent
    assert sent == TEXT
    assert decoder.finish_reason == "length"


def test_stop_string_spanning_many_tokens_at_the_end_is_still_cut(tokenizer: Any) -> None:
    ids = tokenizer.encode("numbers 12345", add_special_tokens=False)
    decoder = SequenceDecoder(tokenizer, [1], max_new_tokens=len(ids), stop=("12345",))
    deltas, reason = _run(decoder, ids)
    assert (("".join(deltas)), reason) == ("numbers ", "stop")


def test_prompt_context_does_not_leak_into_the_output(tokenizer: Any) -> None:
    prompt = tokenizer.encode("naïve façade", add_special_tokens=False)
    answer = tokenizer.encode(" crème", add_special_tokens=False)
    decoder = SequenceDecoder(tokenizer, prompt, max_new_tokens=len(answer))
    deltas, _ = _run(decoder, answer)
    assert "".join(deltas) == " crème"
