"""TEST DOUBLE: an in-process backend with scripted answers, for fast app tests.

With ``tool_calls`` set, a chat answer is those tool calls (OpenAI's chat format: a
``message.tool_calls`` list with no content, or streamed ``delta.tool_calls`` pieces keyed by
``index`` whose ``arguments`` arrive in two fragments), with ``finish_reason`` ``tool_calls``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from backends.base import (
    BackendError,
    BackendRequest,
    BackendResponse,
    BackendStreamError,
    ExecutionInfo,
    MemoryReport,
)
from core.records import ToolCall

__all__ = ["ScriptedBackend"]


class ScriptedBackend:
    """Answers like an OpenAI server would, or fails the way it is told to."""

    reports_tokens = False

    def __init__(
        self,
        name: str,
        *,
        words: tuple[str, ...] = ("Hello", "world"),
        fail: BackendError | None = None,
        status: int = 200,
        body: bytes | None = None,
        delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        break_after: int | None = None,
        batch_size: int | None = None,
        ready: bool = True,
        tool_calls: Sequence[ToolCall] = (),
    ) -> None:
        self.name = name
        self.words = words
        self.tool_calls = tuple(tool_calls)
        """Answer chat requests with these calls (settable between requests)."""
        self.fail = fail
        self.status = status
        self.body = body
        self.delay_s = delay_s
        self.chunk_delay_s = chunk_delay_s
        self.break_after = break_after
        self.batch_size = batch_size
        self.is_ready = ready
        self.calls: list[BackendRequest] = []
        self.started = False
        self.closed = False
        self.streams_closed = 0

    async def start(self) -> None:
        self.started = True

    async def aclose(self) -> None:
        self.closed = True

    async def ready(self) -> bool:
        return self.is_ready

    def memory(self) -> MemoryReport | None:
        return None

    async def send(self, request: BackendRequest) -> BackendResponse:
        self.calls.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        info = ExecutionInfo(batch_size=self.batch_size)
        if self.status != 200 or self.body is not None:
            return BackendResponse(status=self.status, body=self.body or b"{}", info=info)
        if request.stream:
            return BackendResponse(status=200, events=self._events(request), info=info)
        return BackendResponse(status=200, body=orjson.dumps(self._completion(request)), info=info)

    def _usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": 3,
            "completion_tokens": len(self.words),
            "total_tokens": 3 + len(self.words),
        }

    def _wire_call(self, i: int, call: ToolCall) -> dict[str, Any]:
        return {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }

    def _completion(self, request: BackendRequest) -> dict[str, Any]:
        text = " ".join(self.words)
        if request.endpoint == "chat" and self.tool_calls:
            calls = [self._wire_call(i, c) for i, c in enumerate(self.tool_calls)]
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": calls},
                "finish_reason": "tool_calls",
            }
        elif request.endpoint == "chat":
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        else:
            choice = {"index": 0, "text": text, "finish_reason": "stop"}
        return {
            "id": "x",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.body["model"],
            "choices": [choice],
            "usage": self._usage(),
        }

    def _call_chunks(self) -> list[dict[str, Any]]:
        """The streamed deltas of the tool calls: the name first, the arguments in halves."""
        chunks = []
        for i, call in enumerate(self.tool_calls):
            head = {**self._wire_call(i, call), "index": i}
            head["function"] = {"name": call.name, "arguments": ""}
            half = len(call.arguments) // 2
            pieces = [call.arguments[:half], call.arguments[half:]]
            deltas = [head] + [{"index": i, "function": {"arguments": p}} for p in pieces if p]
            for delta in deltas:
                role = {"role": "assistant", "content": None} if delta is head and i == 0 else {}
                choice = {
                    "index": 0,
                    "delta": {**role, "tool_calls": [delta]},
                    "finish_reason": None,
                }
                chunks.append({"id": "x", "object": "chat.completion.chunk", "choices": [choice]})
        return chunks

    async def _events(self, request: BackendRequest) -> AsyncIterator[bytes]:
        try:
            chat = request.endpoint == "chat"
            if chat and self.tool_calls:
                for chunk in self._call_chunks():
                    await asyncio.sleep(self.chunk_delay_s)
                    yield orjson.dumps(chunk)
                last = {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
                yield orjson.dumps({"id": "x", "object": "chunk", "choices": [last]})
                if (request.body.get("stream_options") or {}).get("include_usage"):
                    yield orjson.dumps(
                        {"id": "x", "object": "chunk", "choices": [], "usage": self._usage()}
                    )
                yield b"[DONE]"
                return
            for i, word in enumerate(self.words):
                if self.break_after is not None and i >= self.break_after:
                    raise BackendStreamError("scripted break")
                await asyncio.sleep(self.chunk_delay_s)
                piece = word if i == 0 else " " + word
                choice = (
                    {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                    if chat
                    else {"index": 0, "text": piece, "finish_reason": None}
                )
                yield orjson.dumps({"id": "x", "object": "chunk", "choices": [choice]})
            last = (
                {"index": 0, "delta": {}, "finish_reason": "stop"}
                if chat
                else {"index": 0, "text": "", "finish_reason": "stop"}
            )
            yield orjson.dumps({"id": "x", "object": "chunk", "choices": [last]})
            if (request.body.get("stream_options") or {}).get("include_usage"):
                yield orjson.dumps(
                    {"id": "x", "object": "chunk", "choices": [], "usage": self._usage()}
                )
            yield b"[DONE]"
        finally:
            self.streams_closed += 1
