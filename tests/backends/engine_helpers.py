"""Shared pieces of the engine tests: a started backend on the tiny model, request builders."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from backends.base import BackendRequest, BackendResponse, Endpoint
from backends.config import EngineBackendConfig
from backends.engine import EngineBackend

# The int8 path of bitsandbytes compiles a TorchScript helper on first use (torch warns that
# TorchScript is deprecated); that warning is theirs, not ours.
JIT_WARNING = "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"


class TokenCounter:
    """An ``on_tokens`` hook: counts per request; can pause the worker at a chosen token."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.pause_at: tuple[str, int] | None = None
        self.paused = threading.Event()
        self.resume = threading.Event()

    def __call__(self, request_id: str, n_tokens: int) -> None:
        with self._lock:
            self.counts[request_id] += n_tokens
            count = self.counts[request_id]
        if self.pause_at == (request_id, count):
            self.paused.set()
            self.resume.wait(timeout=10)


def count_tokens(backend: EngineBackend, counter: TokenCounter) -> None:
    """Give every request sent to ``backend`` an ``on_tokens`` callback into ``counter``
    (keyed by request id), as the proxy's pipeline does with telemetry's observer."""
    send = backend.send

    async def counted(request: BackendRequest) -> BackendResponse:
        rid = request.request_id
        return await send(replace(request, on_tokens=lambda n: counter(rid, n)))

    backend.send = counted  # type: ignore[method-assign]


def engine(model: Path, precision: str = "fp32", **overrides: Any) -> EngineBackend:
    settings: dict[str, Any] = {"kind": "engine", "model": str(model), "precision": precision}
    settings.update({"max_new_tokens": 64, "batch_wait_ms": 20.0, **overrides})
    return EngineBackend.from_config(precision, EngineBackendConfig(**settings))


def chat(
    text: str, *, stream: bool = False, rid: str = "r", usage: bool = False, **extra: Any
) -> BackendRequest:
    body: dict[str, Any] = {"model": "tiny", "messages": [{"role": "user", "content": text}]}
    if usage:
        body["stream_options"] = {"include_usage": True}
    return BackendRequest("chat", {**body, **extra}, stream, rid)


def completion(
    text: str | list[int], *, stream: bool = False, rid: str = "r", **extra: Any
) -> BackendRequest:
    body = {"model": "tiny", "prompt": text, **extra}
    endpoint: Endpoint = "completions"
    return BackendRequest(endpoint, body, stream, rid)


async def chunks(response: BackendResponse) -> list[Any]:
    """Every SSE payload of a streamed response, parsed; ``[DONE]`` stays bytes."""
    assert response.events is not None
    out: list[Any] = []
    async for payload in response.events:
        if payload.startswith(b"event: "):  # a typed event block (Responses API)
            head, _, data = payload.partition(b"\ndata: ")
            obj = orjson.loads(data)
            assert obj["type"] == head.removeprefix(b"event: ").decode(), payload
            out.append(obj)
            continue
        out.append(payload if payload == b"[DONE]" else orjson.loads(payload))
    return out


def answer(response: BackendResponse) -> str:
    body = orjson.loads(response.body)
    choice = body["choices"][0]
    return str(choice["message"]["content"] if "message" in choice else choice["text"])


def streamed_text(payloads: list[Any]) -> str:
    parts = []
    for payload in payloads:
        if isinstance(payload, dict) and payload["choices"]:
            choice = payload["choices"][0]
            parts.append(
                choice["delta"].get("content") or "" if "delta" in choice else choice["text"]
            )
    return "".join(parts)
