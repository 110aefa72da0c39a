"""The engine backend end to end on the tiny model (fp32, CPU): OpenAI shapes, usage, limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from transformers import AutoTokenizer

from backends.base import Backend, BackendServerError
from backends.engine import EngineBackend
from tests.backends.engine_helpers import (
    TokenCounter,
    answer,
    chat,
    chunks,
    completion,
    count_tokens,
    engine,
    streamed_text,
)
from tests.doubles.tiny_llama import build_tiny_llama

PROMPT = "Café crème 日本"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(Path(tmp_path_factory.mktemp("tiny")))


@pytest.fixture
def counter() -> TokenCounter:
    return TokenCounter()


@pytest.fixture
async def backend(model_dir: Path, counter: TokenCounter) -> AsyncIterator[EngineBackend]:
    backend = engine(model_dir)
    count_tokens(backend, counter)
    await backend.start()
    yield backend
    await backend.aclose()


def _chat_prompt_tokens(model_dir: Path, text: str) -> int:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
    )
    return len(tokenizer.encode(rendered, add_special_tokens=False))


async def test_it_is_a_backend_and_ready_only_between_start_and_close(model_dir: Path) -> None:
    backend = engine(model_dir)
    assert isinstance(backend, Backend)
    assert not await backend.ready()
    with pytest.raises(BackendServerError) as caught:
        await backend.send(chat("hi"))
    assert caught.value.status == 503
    await backend.start()
    assert await backend.ready()
    await backend.aclose()
    assert not await backend.ready()


async def test_chat_completion_object_field_by_field(
    backend: EngineBackend, model_dir: Path, counter: TokenCounter
) -> None:
    before = int(time.time())
    response = await backend.send(chat(PROMPT, rid="a", max_tokens=7))
    assert (response.status, response.content_type, response.events) == (
        200,
        "application/json",
        None,
    )
    body = orjson.loads(response.body)
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    assert body["id"].startswith("chatcmpl-") and len(body["id"]) > len("chatcmpl-") + 8
    assert body["object"] == "chat.completion"
    assert before <= body["created"] <= int(time.time())
    assert body["model"] == "tiny"
    [choice] = body["choices"]
    assert set(choice) == {"index", "message", "logprobs", "finish_reason"}
    assert (choice["index"], choice["logprobs"], choice["finish_reason"]) == (0, None, "length")
    assert set(choice["message"]) == {"role", "content"}
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
    prompt_tokens = _chat_prompt_tokens(model_dir, PROMPT)
    assert body["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 7,
        "total_tokens": prompt_tokens + 7,
    }
    assert counter.counts["a"] == 7  # energy attribution saw every generated token
    assert response.info.batch_size == 1
    assert response.info.extra["mean_batch_size"] == 1.0
    assert response.info.extra["precision"] == "fp32"


async def test_chat_stream_chunks_field_by_field(
    backend: EngineBackend, model_dir: Path, counter: TokenCounter
) -> None:
    whole = answer(await backend.send(chat(PROMPT, max_tokens=9)))
    response = await backend.send(chat(PROMPT, stream=True, rid="s", usage=True, max_tokens=9))
    assert (response.status, response.content_type) == (200, "text/event-stream")
    payloads = await chunks(response)
    assert payloads[-1] == b"[DONE]"
    *data, usage, _ = payloads
    assert len({p["id"] for p in (*data, usage)}) == 1
    assert data[0]["id"].startswith("chatcmpl-")
    for payload in (*data, usage):
        assert set(payload) >= {"id", "object", "created", "model", "choices"}
        assert payload["object"] == "chat.completion.chunk"
        assert payload["model"] == "tiny"
    assert data[0]["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    *content, final = data[1:]
    assert content, "tokens must arrive as separate chunks"
    for payload in content:
        [choice] = payload["choices"]
        assert set(choice["delta"]) == {"content"} and choice["finish_reason"] is None
        assert "usage" not in payload
    assert final["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    ]
    assert usage["choices"] == []
    prompt_tokens = _chat_prompt_tokens(model_dir, PROMPT)
    assert usage["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 9,
        "total_tokens": prompt_tokens + 9,
    }
    assert counter.counts["s"] == 9
    assert streamed_text(payloads) == whole


async def test_no_usage_chunk_unless_asked(backend: EngineBackend) -> None:
    payloads = await chunks(await backend.send(chat(PROMPT, stream=True, max_tokens=3)))
    assert payloads[-1] == b"[DONE]"
    assert all(p["choices"] for p in payloads[:-1])
    assert not any("usage" in p for p in payloads[:-1])


async def test_text_completion_object_and_stream(backend: EngineBackend) -> None:
    response = await backend.send(completion("The quick brown", max_tokens=5))
    body = orjson.loads(response.body)
    assert body["id"].startswith("cmpl-") and body["object"] == "text_completion"
    [choice] = body["choices"]
    assert set(choice) == {"index", "text", "logprobs", "finish_reason"}
    assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5
    streamed = await backend.send(
        completion(
            "The quick brown", stream=True, max_tokens=5, stream_options={"include_usage": True}
        )
    )
    payloads = await chunks(streamed)
    *data, usage, done = payloads
    assert done == b"[DONE]"
    assert all(p["object"] == "text_completion" for p in (*data, usage))
    assert all(set(p["choices"][0]) == {"index", "text", "logprobs", "finish_reason"} for p in data)
    assert data[-1]["choices"][0]["finish_reason"] == "length"
    assert usage["choices"] == [] and usage["usage"] == body["usage"]
    assert streamed_text(payloads) == choice["text"]


async def test_max_tokens_is_bounded_by_the_variant(model_dir: Path) -> None:
    backend = engine(model_dir, max_new_tokens=4)
    await backend.start()
    try:
        asked_more = orjson.loads((await backend.send(chat(PROMPT, max_tokens=50))).body)
        default = orjson.loads((await backend.send(chat(PROMPT))).body)
    finally:
        await backend.aclose()
    assert asked_more["usage"]["completion_tokens"] == 4
    assert default["usage"]["completion_tokens"] == 4
    assert asked_more["choices"][0]["finish_reason"] == "length"


async def test_stop_sequence_cuts_the_answer_in_both_modes(backend: EngineBackend) -> None:
    full = answer(await backend.send(chat(PROMPT, max_tokens=24)))
    # A stop string from the middle of the greedy answer, clear of replacement characters.
    start = next(i for i in range(4, len(full) - 2) if "\ufffd" not in full[i : i + 2])
    stop = full[start : start + 2]
    expected = full[: full.index(stop)]
    response = await backend.send(chat(PROMPT, max_tokens=24, stop=["never-seen", stop]))
    body = orjson.loads(response.body)
    assert body["choices"][0]["message"]["content"] == expected
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] < 24
    payloads = await chunks(await backend.send(chat(PROMPT, stream=True, max_tokens=24, stop=stop)))
    assert streamed_text(payloads) == expected
    assert payloads[-2]["choices"][0]["finish_reason"] == "stop"


async def test_seeded_sampling_is_reproducible(backend: EngineBackend) -> None:
    async def sample(seed: int) -> str:
        request = chat(PROMPT, max_tokens=20, temperature=1.0, top_p=0.95, seed=seed)
        return answer(await backend.send(request))

    first, again, other = await sample(11), await sample(11), await sample(12)
    greedy = answer(await backend.send(chat(PROMPT, max_tokens=20)))
    assert first == again
    assert first != other
    assert greedy not in (first, other)


@pytest.mark.parametrize(("extra", "param"), [({"n": 2}, "n"), ({"logprobs": True}, "logprobs")])
async def test_unsupported_params_answer_400_with_openai_error_body(
    backend: EngineBackend, extra: dict[str, Any], param: str
) -> None:
    response = await backend.send(chat(PROMPT, **extra))
    assert response.status == 400
    error = orjson.loads(response.body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


async def test_too_long_prompt_is_a_400_context_length_exceeded(backend: EngineBackend) -> None:
    response = await backend.send(completion("The quick brown fox " * 200))
    assert response.status == 400
    error = orjson.loads(response.body)["error"]
    assert (error["param"], error["code"]) == ("prompt", "context_length_exceeded")


async def test_generation_stops_at_the_context_window(backend: EngineBackend) -> None:
    tokenizer = backend.loaded.tokenizer if backend.loaded else None
    assert tokenizer is not None
    ids = tokenizer.encode("The quick brown fox " * 200, add_special_tokens=False)[:510]
    body = orjson.loads((await backend.send(completion(ids, max_tokens=50))).body)
    assert body["usage"] == {"prompt_tokens": 510, "completion_tokens": 2, "total_tokens": 512}
    assert body["choices"][0]["finish_reason"] == "length"


def test_the_package_exports_a_small_sorted_surface() -> None:
    import backends.engine

    assert backends.engine.__all__ == [
        "EngineBackend",
        "EngineLoadError",
        "LoadedModel",
        "MemoryReport",
        "TokenHook",
        "load_model",
    ]
