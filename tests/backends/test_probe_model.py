"""The shipped probe model: found, loadable on CPU, chat-formatted, and solving problems."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedTokenizerFast,
)

import backends
from backends.probe import REQUIRED_FILES, ProbeModelMissing, check_model_dir, probe_model_path
from scoring.datasets.multihop import (
    MultiHopItem,
    as_chat_messages,
    generate,
    reference_completion,
)
from scoring.graders import get_grader

_MAX_BYTES = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return AutoTokenizer.from_pretrained(str(probe_model_path()))


@pytest.fixture(scope="module")
def held_out() -> list[MultiHopItem]:
    return generate(20, seed=424242, depths=(1, 2), split="eval")


def _accuracy(model: Any, tokenizer: Any, items: Sequence[MultiHopItem]) -> float:
    """Greedy, one left-padded batch, graded by the canaries' grader."""
    prompts = [
        tokenizer.apply_chat_template(
            as_chat_messages(i), add_generation_prompt=True, tokenize=False
        )
        for i in items
    ]
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        output = model.generate(**encoded, do_sample=False, max_new_tokens=48)
    texts = tokenizer.batch_decode(
        output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True
    )
    grader = get_grader("multihop")
    return sum(
        grader.grade(t, str(i.answer)).correct for t, i in zip(texts, items, strict=True)
    ) / len(items)


def test_path_holds_every_file_and_is_small() -> None:
    path = probe_model_path()
    assert path == Path(backends.__file__).parent / "probe_model"
    assert all((path / name).is_file() for name in REQUIRED_FILES)
    assert sum(f.stat().st_size for f in path.iterdir()) <= _MAX_BYTES


def test_missing_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ProbeModelMissing, match=r"lacks .*model\.safetensors") as raised:
        check_model_dir(tmp_path)
    listed = str(raised.value).split("lacks ")[1].split(". ")[0].split(", ")
    assert listed == [name for name in REQUIRED_FILES if name != "config.json"]
    assert isinstance(raised.value, FileNotFoundError)


def test_widths_suit_bitsandbytes_on_cpu(tokenizer: Any) -> None:
    config = AutoConfig.from_pretrained(str(probe_model_path()))
    assert config.model_type == "llama"
    for width in (config.hidden_size, config.intermediate_size, config.vocab_size):
        assert width % 128 == 0, width
    assert config.vocab_size >= len(tokenizer)
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )


def test_tokenizer_chat_template_and_characters(tokenizer: Any) -> None:
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        "<|bos|>",
        "<|end|>",
        "<|pad|>",
    )
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a = 1."}]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert (
        rendered == "<|bos|><|system|>\nBe brief.<|end|>\n<|user|>\na = 1.<|end|>\n<|assistant|>\n"
    )
    without = tokenizer.apply_chat_template(messages, add_generation_prompt=False, tokenize=False)
    assert without == rendered.removesuffix("<|assistant|>\n")
    # Digits are single tokens and decoding is exact (the grader reads the decoded text).
    assert len(tokenizer("1234567890", add_special_tokens=False)["input_ids"]) == 10
    text = reference_completion(generate(1, seed=1, depths=(8,))[0])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    role_ids = tokenizer("<|user|><|assistant|>", add_special_tokens=False)["input_ids"]
    assert len(role_ids) == 2


def test_fp32_greedy_solves_held_out_depth_1_and_2(
    tokenizer: Any, held_out: list[MultiHopItem]
) -> None:
    model: Any = AutoModelForCausalLM.from_pretrained(str(probe_model_path()), dtype=torch.float32)
    model.eval()
    assert _accuracy(model, tokenizer, held_out) >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize(
    "quantization",
    [
        {"load_in_8bit": True},
        {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_use_double_quant": True,
            "bnb_4bit_compute_dtype": torch.float32,
        },
    ],
    ids=["int8", "nf4"],
)
def test_quantized_on_cpu_still_answers(
    tokenizer: Any, held_out: list[MultiHopItem], quantization: dict[str, Any]
) -> None:
    # LLM.int8() logs a note on every matmul that fp32 inputs are cast to fp16.
    logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
    config = BitsAndBytesConfig(**quantization)  # type: ignore[no-untyped-call]
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(probe_model_path()), quantization_config=config, device_map="cpu"
    )
    model.eval()
    quantized = [m for m in model.modules() if type(m).__name__ in {"Linear8bitLt", "Linear4bit"}]
    assert len(quantized) == 4 * 7  # every projection of every layer; lm_head stays fp32
    assert _accuracy(model, tokenizer, held_out) >= 0.9
