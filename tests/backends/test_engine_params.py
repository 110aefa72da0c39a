"""Request bodies: what the engine honours, and the 400s that name the parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from backends.base import Endpoint
from backends.engine.params import InvalidRequest, build_prompt_ids, read_sampling
from tests.doubles.tiny_llama import build_tiny_llama

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = build_tiny_llama(Path(tmp_path_factory.mktemp("tiny")))
    return AutoTokenizer.from_pretrained(folder)


def test_defaults_are_greedy_without_stop_or_usage() -> None:
    got = read_sampling("chat", CHAT)
    assert (got.temperature, got.top_p, got.seed, got.stop, got.max_tokens) == (
        0.0,
        1.0,
        None,
        (),
        None,
    )
    assert got.include_usage is False
    assert got.model == "m"


def test_sampling_fields_are_read() -> None:
    body = {
        **CHAT,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 42,
        "stop": ["\n", "", "END"],
        "max_completion_tokens": 12,
        "max_tokens": 99,
        "stream_options": {"include_usage": True},
    }
    got = read_sampling("chat", body)
    assert (got.temperature, got.top_p, got.seed) == (0.7, 0.9, 42)
    assert got.stop == ("\n", "END")  # empty stop strings would end every answer at once
    assert got.max_tokens == 12  # the newer chat name wins
    assert got.include_usage is True
    assert read_sampling("completions", {"model": "m", "stop": "x"}).stop == ("x",)


@pytest.mark.parametrize(
    ("endpoint", "extra", "param"),
    [
        ("chat", {"n": 2}, "n"),
        ("chat", {"logprobs": True}, "logprobs"),
        ("completions", {"logprobs": 3}, "logprobs"),
        ("chat", {"presence_penalty": 0.5}, "presence_penalty"),
        ("chat", {"frequency_penalty": -1}, "frequency_penalty"),
        ("chat", {"logit_bias": {"5": 10}}, "logit_bias"),
        ("chat", {"response_format": {"type": "json_object"}}, "response_format"),
        ("completions", {"echo": True}, "echo"),
        ("completions", {"suffix": "x"}, "suffix"),
        ("completions", {"best_of": 3}, "best_of"),
        ("chat", {"temperature": 3}, "temperature"),
        ("chat", {"temperature": "hot"}, "temperature"),
        ("chat", {"top_p": 1.5}, "top_p"),
        ("chat", {"max_tokens": 0}, "max_tokens"),
        ("chat", {"max_tokens": True}, "max_tokens"),
        ("chat", {"seed": 1.5}, "seed"),
        ("chat", {"stop": [1, 2]}, "stop"),
        ("chat", {"model": ""}, "model"),
        ("chat", {"stream_options": "yes"}, "stream_options"),
    ],
)
def test_invalid_or_unsupported_params_are_named(
    endpoint: Endpoint, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        read_sampling(endpoint, {**CHAT, **extra})
    assert caught.value.param == param


def test_harmless_defaults_of_unsupported_params_are_accepted() -> None:
    body = {**CHAT, "n": 1, "logprobs": False, "presence_penalty": 0, "logit_bias": {}}
    assert read_sampling("chat", {**body, "response_format": {"type": "text"}}).model == "m"


def test_chat_prompt_goes_through_the_template_with_generation_prompt(tokenizer: Any) -> None:
    body = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "héllo "}, {"type": "text", "text": "日本"}],
            },
        ]
    }
    ids = build_prompt_ids("chat", body, tokenizer, 512)
    assert tokenizer.decode(ids) == (
        "<|bos|><|system|>be brief<|end|><|user|>héllo 日本<|end|><|assistant|>"
    )
    assert ids.count(tokenizer.bos_token_id) == 1  # the template's BOS, not a second one


@pytest.mark.parametrize(
    "prompt", ["The quick fox", ["The quick fox"], [[10, 11, 12]], [10, 11, 12]]
)
def test_completion_prompts_one_string_or_one_token_list(tokenizer: Any, prompt: Any) -> None:
    ids = build_prompt_ids("completions", {"prompt": prompt}, tokenizer, 512)
    if isinstance(prompt, str) or isinstance(prompt[0], str):
        assert tokenizer.decode(ids, skip_special_tokens=True) == "The quick fox"
    else:
        assert ids == [10, 11, 12]


@pytest.mark.parametrize(
    ("endpoint", "body", "param"),
    [
        ("completions", {"prompt": ["a", "b"]}, "prompt"),
        ("completions", {"prompt": [1, 100000]}, "prompt"),
        ("completions", {}, "prompt"),
        ("completions", {"prompt": ""}, "prompt"),
        ("chat", {"messages": []}, "messages"),
        ("chat", {"messages": [{"content": "no role"}]}, "messages"),
        ("chat", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages"),
        ("chat", {"messages": [{"role": "user", "content": 5}]}, "messages"),
    ],
)
def test_bad_prompts_are_400s(
    tokenizer: Any, endpoint: Endpoint, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        build_prompt_ids(endpoint, body, tokenizer, 512)
    assert caught.value.param == param


def test_prompt_longer_than_the_context_is_refused(tokenizer: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        build_prompt_ids("completions", {"prompt": "word " * 300}, tokenizer, 64)
    assert caught.value.code == "context_length_exceeded"
    assert "64" in caught.value.message


def test_a_template_error_is_a_400_not_a_crash(tokenizer: Any) -> None:
    tokenizer = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = "{{ raise_exception('roles must alternate') }}"
    with pytest.raises(InvalidRequest, match="roles must alternate"):
        build_prompt_ids("chat", CHAT, tokenizer, 512)
