"""Bounds on request fields, as OpenAI (and Anthropic, for Messages) define them. Pure.

The proxy passes request bodies through; but a value no upstream can handle must not reach
one: ``"n": 9223372036854775808`` wedged a vLLM-style upstream for the whole read timeout,
and ``"tools": 1`` made it answer 500, which looks like the variant being down (failover,
then 502). :func:`check_request` finds the first such field and returns the 400
:class:`~proxy.errors.APIError` naming it (``param``), with OpenAI's codes
(``integer_above_max_value``, ``invalid_type`` ...); ``None`` when the body is fine.

Method: a table of rules per operation, checked only for fields that are present and not
``null`` (OpenAI accepts ``null`` for every optional field); unknown fields pass (the proxy
forwards what it does not know). Integers are JSON integers; an integral float (``2.0``) is
accepted as the integer, like the upstreams' validators do, up to 2^53 (beyond, a float no
longer holds the client's integer: orjson parses integers past 64 bits as floats); booleans
are never numbers.

Caveats: ranges are OpenAI's published ones where it publishes them (``n`` 1-128,
``top_logprobs`` 0-20, ``logit_bias`` -100..100, penalties -2..2, temperature 0-2); where it
publishes none, the bound is what a 32- or 64-bit upstream field holds (``seed``: int64;
``max_tokens``: int32). Each item of ``messages`` and ``tools`` is checked for being an
object (tools: with a ``type`` string), not deeper; the upstream validates the rest.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from proxy.errors import APIError

__all__ = ["INT32_MAX", "INT64_MAX", "INT64_MIN", "RequestOperation", "check_request"]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
INT32_MAX: Final = 2**31 - 1
_EXACT_FLOAT_INT: Final = 2**53  # the largest range of integers a double holds exactly

RequestOperation = Literal["chat", "text_completion", "responses", "messages", "embeddings"]


@dataclass(frozen=True, slots=True)
class _Int:
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class _Num:
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class _Type:
    """A JSON type: ``string``, ``boolean``, ``object``, ``array``, or several (``|``)."""

    names: str


@dataclass(frozen=True, slots=True)
class _Items:
    """An array (at most ``max_len`` long) whose items are ``item`` (``object``/``string``)."""

    item: str
    max_len: int | None = None
    min_len: int = 0
    object_type_key: bool = False  # each object needs a string "type" (tools)


@dataclass(frozen=True, slots=True)
class _LogitBias:
    pass


_Rule = _Int | _Num | _Type | _Items | _LogitBias

_SAMPLING: Final[dict[str, _Rule]] = {
    "model": _Type("string"),
    "temperature": _Num(0.0, 2.0),
    "top_p": _Num(0.0, 1.0),
    "presence_penalty": _Num(-2.0, 2.0),
    "frequency_penalty": _Num(-2.0, 2.0),
    "seed": _Int(INT64_MIN, INT64_MAX),
    "max_tokens": _Int(1, INT32_MAX),
    "n": _Int(1, 128),
    "logit_bias": _LogitBias(),
    "stream": _Type("boolean"),
    "stream_options": _Type("object"),
    "user": _Type("string"),
    "metadata": _Type("object"),
    "stop": _Type("string|array"),
}

_RULES: Final[dict[RequestOperation, dict[str, _Rule]]] = {
    "chat": {
        **_SAMPLING,
        "messages": _Items("object", min_len=1),
        "max_completion_tokens": _Int(1, INT32_MAX),
        "logprobs": _Type("boolean"),
        "top_logprobs": _Int(0, 20),
        "tools": _Items("object", max_len=128, object_type_key=True),
        "functions": _Items("object", max_len=128),
        "tool_choice": _Type("string|object"),
        "parallel_tool_calls": _Type("boolean"),
        "response_format": _Type("object"),
    },
    "text_completion": {
        **_SAMPLING,
        "prompt": _Type("string|array"),
        "logprobs": _Int(0, 5),
        "best_of": _Int(0, 20),
        "echo": _Type("boolean"),
        "suffix": _Type("string"),
    },
    "responses": {
        "model": _Type("string"),
        "input": _Type("string|array"),
        "instructions": _Type("string"),
        "temperature": _Num(0.0, 2.0),
        "top_p": _Num(0.0, 1.0),
        "max_output_tokens": _Int(1, INT32_MAX),
        "top_logprobs": _Int(0, 20),
        "tools": _Items("object", max_len=128, object_type_key=True),
        "tool_choice": _Type("string|object"),
        "parallel_tool_calls": _Type("boolean"),
        "stream": _Type("boolean"),
        "store": _Type("boolean"),
        "metadata": _Type("object"),
        "previous_response_id": _Type("string"),
        "text": _Type("object"),
        "reasoning": _Type("object"),
        "user": _Type("string"),
    },
    "messages": {
        "model": _Type("string"),
        "messages": _Items("object", min_len=1),
        "max_tokens": _Int(1, INT32_MAX),
        "system": _Type("string|array"),
        "temperature": _Num(0.0, 1.0),
        "top_p": _Num(0.0, 1.0),
        "top_k": _Int(0, INT32_MAX),
        "stop_sequences": _Items("string"),
        "stream": _Type("boolean"),
        "tools": _Items("object", max_len=128),
        "tool_choice": _Type("object"),
        "metadata": _Type("object"),
    },
    "embeddings": {
        "model": _Type("string"),
        "input": _Type("string|array"),
        "dimensions": _Int(1, INT32_MAX),
        "encoding_format": _Type("string"),
        "user": _Type("string"),
    },
}

_REQUIRED: Final[dict[RequestOperation, tuple[str, ...]]] = {
    "chat": ("model", "messages"),
    "text_completion": ("model", "prompt"),
    "responses": ("model",),
    "messages": ("model", "messages", "max_tokens"),
    "embeddings": ("model", "input"),
}

_JSON_TYPES: Final[dict[str, Callable[[Any], bool]]] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def check_request(operation: RequestOperation, body: Any) -> APIError | None:
    """The 400 for the first field of ``body`` out of bounds for ``operation``, else ``None``."""
    if not isinstance(body, dict):
        return APIError(
            400,
            f"The request body must be a JSON object, not {_json_type(body)}.",
            code="invalid_type",
        )
    for name in _REQUIRED[operation]:
        if body.get(name) is None:
            return APIError(
                400,
                f"Missing required parameter: '{name}'.",
                param=name,
                code="missing_required_parameter",
            )
    rules = _RULES[operation]
    for name, value in body.items():  # a body has a few fields; the rule table has dozens
        rule = rules.get(name)
        if rule is not None and value is not None:
            error = _check(name, rule, value)
            if error is not None:
                return error
    return None


@functools.cache
def _type_checks(names: str) -> tuple[Callable[[Any], bool], ...]:
    return tuple(_JSON_TYPES[t] for t in names.split("|"))


def _check(name: str, rule: _Rule, value: Any) -> APIError | None:
    if isinstance(rule, _Int):
        return _check_int(name, value, rule.low, rule.high)
    if isinstance(rule, _Num):
        return _check_number(name, value, rule.low, rule.high)
    if isinstance(rule, _Type):
        if any(check(value) for check in _type_checks(rule.names)):
            return None
        return _invalid_type(name, rule.names.replace("|", " or "), value)
    if isinstance(rule, _Items):
        return _check_items(name, rule, value)
    return _check_logit_bias(name, value)


def _check_int(name: str, value: Any, low: int, high: int) -> APIError | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _invalid_type(name, "integer", value)
    if isinstance(value, float) and not value.is_integer() and low <= value <= high:
        return _invalid_type(name, "integer", value)
    if value > high:
        return _bad(name, "integer_above_max_value", f"integer above maximum value. Expected "
                    f"a value <= {high}, but got {_short(value)} instead.")  # fmt: skip
    if value < low:
        return _bad(name, "integer_below_min_value", f"integer below minimum value. Expected "
                    f"a value >= {low}, but got {_short(value)} instead.")  # fmt: skip
    if isinstance(value, float) and abs(value) > _EXACT_FLOAT_INT:
        # JSON parsers turn integers past 64 bits into floats: no longer the client's value.
        return _invalid_type(name, "integer", value)
    return None


def _check_number(name: str, value: Any, low: float, high: float) -> APIError | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _invalid_type(name, "number", value)
    if value > high:
        return _bad(name, "decimal_above_max_value", f"decimal above maximum value. Expected "
                    f"a value <= {high:g}, but got {_short(value)} instead.")  # fmt: skip
    if value < low:
        return _bad(name, "decimal_below_min_value", f"decimal below minimum value. Expected "
                    f"a value >= {low:g}, but got {_short(value)} instead.")  # fmt: skip
    return None


def _check_items(name: str, rule: _Items, value: Any) -> APIError | None:
    if not isinstance(value, list):
        return _invalid_type(name, "array", value)
    if rule.max_len is not None and len(value) > rule.max_len:
        return _bad(name, "array_above_max_length", f"array too long. Expected an array with "
                    f"maximum length {rule.max_len}, but got {len(value)} instead.")  # fmt: skip
    if len(value) < rule.min_len:
        return _bad(name, "empty_array", f"empty array. Expected an array with minimum "
                    f"length {rule.min_len}, but got an empty array instead.")  # fmt: skip
    check = _JSON_TYPES[rule.item]
    for i, item in enumerate(value):
        if not check(item):
            return _invalid_type(f"{name}[{i}]", rule.item, item)
        if rule.object_type_key and not isinstance(item.get("type"), str):
            return _bad(f"{name}[{i}].type", "missing_required_parameter",
                        "missing required parameter.")  # fmt: skip
    return None


def _check_logit_bias(name: str, value: Any) -> APIError | None:
    if not isinstance(value, dict):
        return _invalid_type(name, "object", value)
    for key, bias in value.items():
        param = f"{name}.{_short(key)}"
        if not (isinstance(key, str) and key.isascii() and key.isdigit()):
            return _bad(param, "invalid_value", "keys must be token ids (non-negative integers).")
        if int(key) > INT64_MAX:
            return _bad(param, "integer_above_max_value", "token id above the int64 maximum.")
        error = _check_number(param, bias, -100.0, 100.0)
        if error is not None:
            return error
    return None


def _invalid_type(name: str, expected: str, value: Any) -> APIError:
    return _bad(name, "invalid_type", f"expected {_article(expected)} {expected}, but got "
                f"{_article(_json_type(value))} {_json_type(value)} instead.")  # fmt: skip


def _bad(param: str, code: str, detail: str) -> APIError:
    return APIError(400, f"Invalid '{param}': {detail}", param=param, code=code)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    names: Mapping[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _short(value: Any) -> str:
    """The value for a message: at most 40 characters (a client's input is not echoed whole)."""
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
