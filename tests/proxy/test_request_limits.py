"""Request-field bounds (proxy/request_limits.py), with the raw bodies hostile clients sent."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.request_limits import INT64_MAX, INT64_MIN, RequestOperation, check_request

CHAT = '{"model": "demo", "messages": [{"role": "user", "content": "hi"}]'


def _error(operation: RequestOperation, raw: str) -> tuple[int, str | None, str | None]:
    """Parse ``raw`` as the app does (orjson), check it: (status, param, code)."""
    error = check_request(operation, orjson.loads(raw))
    assert error is not None, raw
    body = orjson.loads(error.body())["error"]
    assert set(body) == {"message", "type", "param", "code"}
    assert body["type"] == "invalid_request_error"
    assert body["param"] == error.param
    return error.status, error.param, error.code


@pytest.mark.parametrize(
    ("field", "raw_value", "code"),
    [
        ("n", "9223372036854775808", "integer_above_max_value"),
        ("n", "129", "integer_above_max_value"),
        ("n", "0", "integer_below_min_value"),
        ("n", "1.5", "invalid_type"),
        ("n", "true", "invalid_type"),
        ("n", '"2"', "invalid_type"),
        ("top_logprobs", "9223372036854775808", "integer_above_max_value"),
        ("top_logprobs", "21", "integer_above_max_value"),
        ("seed", "9223372036854775808", "integer_above_max_value"),
        ("seed", "-9223372036854775809", "invalid_type"),  # orjson: the float -2^63
        ("seed", "-9223372036854775809.5", "invalid_type"),
        ("seed", "18446744073709551616", "integer_above_max_value"),  # orjson: a float
        ("max_tokens", "9223372036854775807", "integer_above_max_value"),
        ("max_tokens", "-1", "integer_below_min_value"),
        ("max_completion_tokens", "1e300", "integer_above_max_value"),
        ("temperature", "2.5", "decimal_above_max_value"),
        ("temperature", '"hot"', "invalid_type"),
        ("top_p", "-0.1", "decimal_below_min_value"),
        ("presence_penalty", "3", "decimal_above_max_value"),
        ("logit_bias", '{"50256": 101}', "decimal_above_max_value"),
        ("logit_bias", '{"abc": 1}', "invalid_value"),
        ("logit_bias", '{"99999999999999999999999": 1}', "integer_above_max_value"),
        ("logit_bias", "[1]", "invalid_type"),
        ("tools", "1", "invalid_type"),
        ("tools", "[1]", "invalid_type"),
        ("tools", '[{"function": {}}]', "missing_required_parameter"),
        ("tools", "[" + ",".join(['{"type": "function"}'] * 129) + "]", "array_above_max_length"),
        ("messages", '"hi"', "invalid_type"),
        ("messages", "[]", "empty_array"),
        ("messages", '["hi"]', "invalid_type"),
        ("stream", '"yes"', "invalid_type"),
        ("stop", "5", "invalid_type"),
        ("tool_choice", "1", "invalid_type"),
    ],
)
def test_chat_fields_out_of_bounds_are_400_naming_the_param(
    field: str, raw_value: str, code: str
) -> None:
    raw = f'{{"model": "demo", "messages": [{{"role": "user", "content": "hi"}}], "{field}": '
    if field == "messages":
        raw = f'{{"model": "demo", "messages": {raw_value}}}'
    else:
        raw += raw_value + "}"
    status, param, got = _error("chat", raw)
    assert (status, got) == (400, code)
    assert param is not None and param.startswith(field)


@pytest.mark.parametrize(
    "extra",
    [
        "",
        ', "n": 128, "seed": 9223372036854775807, "top_logprobs": 20, "logprobs": true',
        ', "seed": -9223372036854775808, "temperature": 0, "top_p": 1, "max_tokens": 2.0',
        ', "logit_bias": {"50256": -100, "11": 5.5}, "stop": ["\\n"], "stream": false',
        ', "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto"',
        ', "n": null, "seed": null, "tools": null, "unknown_field": {"passes": "through"}',
        ', "metadata": {"expected_answer": "' + "9" * 2000 + '"}',
    ],
)
def test_valid_chat_bodies_pass(extra: str) -> None:
    assert check_request("chat", orjson.loads(CHAT + extra + "}")) is None


def test_int64_edges() -> None:
    assert check_request("chat", {**orjson.loads(CHAT + "}"), "seed": INT64_MAX}) is None
    assert check_request("chat", {**orjson.loads(CHAT + "}"), "seed": INT64_MIN}) is None


@pytest.mark.parametrize(
    ("operation", "body", "param", "code"),
    [
        ("chat", [], None, "invalid_type"),
        ("chat", {"model": "demo"}, "messages", "missing_required_parameter"),
        ("chat", {"messages": [{}]}, "model", "missing_required_parameter"),
        ("chat", {"model": 5, "messages": [{}]}, "model", "invalid_type"),
        ("text_completion", {"model": "m", "prompt": "x", "logprobs": 6}, "logprobs",
         "integer_above_max_value"),
        ("text_completion", {"model": "m", "prompt": "x", "best_of": 21}, "best_of",
         "integer_above_max_value"),
        ("text_completion", {"model": "m", "prompt": 1}, "prompt", "invalid_type"),
        ("responses", {"model": "m", "input": "x", "max_output_tokens": 2**63},
         "max_output_tokens", "integer_above_max_value"),
        ("responses", {"model": "m", "input": "x", "tools": 1}, "tools", "invalid_type"),
        ("responses", {"model": "m", "input": 1}, "input", "invalid_type"),
        ("messages", {"model": "m", "messages": [{}]}, "max_tokens",
         "missing_required_parameter"),
        ("messages", {"model": "m", "messages": [{}], "max_tokens": 10, "temperature": 1.5},
         "temperature", "decimal_above_max_value"),
        ("messages", {"model": "m", "messages": [{}], "max_tokens": 10,
                      "stop_sequences": [1]}, "stop_sequences[0]", "invalid_type"),
        ("embeddings", {"model": "m", "input": "x", "dimensions": 0}, "dimensions",
         "integer_below_min_value"),
        ("embeddings", {"model": "m"}, "input", "missing_required_parameter"),
    ],
)  # fmt: skip
def test_other_operations(
    operation: RequestOperation, body: Any, param: str | None, code: str
) -> None:
    error = check_request(operation, body)
    assert error is not None and (error.status, error.param, error.code) == (400, param, code)


def test_the_message_names_the_field_and_bounds_the_echoed_value() -> None:
    error = check_request("chat", {**orjson.loads(CHAT + "}"), "n": 10**60})
    assert error is not None
    assert error.message.startswith("Invalid 'n': integer above maximum value.")
    assert "<= 128" in error.message and "..." in error.message and len(error.message) < 200


def test_valid_bodies_of_every_operation_pass() -> None:
    ok: dict[RequestOperation, dict[str, Any]] = {
        "chat": orjson.loads(CHAT + "}"),
        "text_completion": {"model": "m", "prompt": ["a", "b"], "logprobs": 5, "echo": True},
        "responses": {"model": "m", "input": [{"role": "user", "content": "x"}],
                      "tools": [{"type": "function", "name": "f"}], "max_output_tokens": 64},
        "messages": {"model": "m", "messages": [{"role": "user", "content": "x"}],
                     "max_tokens": 64, "system": "be brief", "top_k": 40,
                     "tools": [{"name": "f", "input_schema": {}}]},
        "embeddings": {"model": "m", "input": [[1, 2, 3]], "dimensions": 256},
    }  # fmt: skip
    for operation, body in ok.items():
        assert check_request(operation, body) is None, operation
