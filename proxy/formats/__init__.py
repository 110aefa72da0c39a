"""Readers of the response formats the proxy passes through, one module per API.

Each reader is fed parsed stream events (``add_chunk``) or a whole body (``add_body``, or the
module's ``parse_body`` for raw bytes) and exposes the same facts (:class:`ResponseReader`),
so the request pipeline reads every operation the same way:

- chat and text completions: :class:`proxy.openai_format.Accumulator`;
- the Responses API: :class:`proxy.formats.responses.ResponsesReader`;
- Anthropic's Messages API: :class:`proxy.formats.messages.MessagesReader`.

:func:`reader_for` picks the reader of an operation. Embeddings have no reader: their only
facts are the usage figures of one body.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from core.records import Operation, ToolCall
from proxy.formats.messages import MessagesReader
from proxy.formats.responses import ResponsesReader

__all__ = ["MessagesReader", "ResponseReader", "ResponsesReader", "reader_for"]


class ResponseReader(Protocol):
    """What every reader exposes (see :mod:`proxy.formats._reader` for the semantics)."""

    started: float
    usage: dict[str, Any] | None
    finish_reason: str | None
    first_token_at: float | None
    first_content_at: float | None
    chunks: int
    error: dict[str, Any] | None
    response_id: str | None
    response_model: str | None

    def add_chunk(self, obj: dict[str, Any]) -> None: ...

    def add_body(self, obj: dict[str, Any]) -> None: ...

    @property
    def text(self) -> str: ...

    @property
    def reasoning_text(self) -> str: ...

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]: ...

    @property
    def ttft_s(self) -> float | None: ...

    @property
    def ttfc_s(self) -> float | None: ...

    @property
    def reasoning_tokens(self) -> int | None: ...

    def tokens(self) -> tuple[int | None, int | None]: ...


def reader_for(operation: Operation, started: float) -> ResponseReader:
    """A fresh reader for a request of ``operation`` that started at ``started``
    (``time.perf_counter()``). Embeddings get the chat reader, which reads their usage."""
    if operation == "responses":
        return ResponsesReader(started)
    if operation == "messages":
        return MessagesReader(started)
    return _chat_reader()(started)


@functools.cache
def _chat_reader() -> Callable[[float], ResponseReader]:
    # Imported late: proxy.openai_format imports this package (its reader base), not the
    # reverse; cached, since this runs once per request.
    from proxy.openai_format import Accumulator

    return Accumulator
