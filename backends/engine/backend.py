"""The in-process engine as a :class:`backends.base.Backend`: one variant, one precision.

``start()`` loads the model in a thread and starts the variant's worker (:mod:`.batcher`);
``send()`` validates the body, tokenizes the prompt off the event loop, queues the request and
waits for its first token, so every failure up to that point is a :class:`BackendUnavailable`
(failover is safe) and a failure after it a :class:`BackendStreamError`. Unsupported or invalid
parameters get a 400 with OpenAI's error body, naming the parameter.

Chat and text completions, and the Responses API (``endpoint="responses"``: its ``Response``
body, or its typed event sequence as SSE payloads, see :mod:`.responses_format`) are served.
Anthropic's Messages API and embeddings are not: they get a 404 in the client's error shape
(Anthropic's for ``messages``), so the proxy can say which route the chosen variant lacks.

``info.batch_size`` is the largest number of sequences decoded together in any step that gave
this request a token, ``info.extra["mean_batch_size"]`` the mean over those steps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import orjson
import torch

from backends.base import (
    BackendRequest,
    BackendResponse,
    BackendServerError,
    BackendStreamError,
    ExecutionInfo,
)
from backends.config import EngineBackendConfig
from backends.engine.batcher import Batcher, Job, StepEvent, TokenHook
from backends.engine.loader import LoadedModel, load_model
from backends.engine.memory import MemoryReport, memory_report, weights_bytes
from backends.engine.openai_format import DONE, ChunkWriter, completion_body, error_body
from backends.engine.params import (
    InvalidRequest,
    SamplingRequest,
    build_prompt_ids,
    read_sampling,
)
from backends.engine.responses_format import ResponsesWriter

__all__ = ["EngineBackend"]

logger = logging.getLogger(__name__)


class _Tracker:
    """Folds one request's step events into its :class:`ExecutionInfo`."""

    def __init__(self, info: ExecutionInfo) -> None:
        self.info = info
        self.tokens = 0
        self._batch_sum = 0

    def add(self, event: StepEvent) -> None:
        if event.tokens == 0:
            return
        self.tokens += event.tokens
        self._batch_sum += event.batch_size
        self.info.batch_size = max(self.info.batch_size or 0, event.batch_size)
        self.info.extra["mean_batch_size"] = self._batch_sum / self.tokens


class EngineBackend:
    """Serves one variant from a model loaded in this process."""

    def __init__(
        self, name: str, config: EngineBackendConfig, *, on_tokens: TokenHook | None = None
    ) -> None:
        self.name = name
        self.config = config
        self._on_tokens = on_tokens
        self._loaded: LoadedModel | None = None
        self._batcher: Batcher | None = None
        self._weights_bytes = 0
        self._gpu_uuids: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, name: str, config: EngineBackendConfig) -> EngineBackend:
        return cls(name, config)

    @property
    def on_tokens(self) -> TokenHook | None:
        return self._on_tokens

    @on_tokens.setter
    def on_tokens(self, hook: TokenHook | None) -> None:
        """Set before :meth:`start`; it is called on the worker thread, so keep it cheap."""
        if self._batcher is not None:
            raise RuntimeError("set on_tokens before start()")
        self._on_tokens = hook

    @property
    def loaded(self) -> LoadedModel | None:
        return self._loaded

    @property
    def running(self) -> int:
        """Sequences in the running batch."""
        return self._batcher.running if self._batcher is not None else 0

    @property
    def waiting(self) -> int:
        """Requests queued for admission to the batch."""
        return self._batcher.waiting if self._batcher is not None else 0

    async def start(self) -> None:
        if self._batcher is not None:
            return
        cfg = self.config
        self._loaded = await asyncio.to_thread(load_model, cfg.model, cfg.precision, cfg.device)
        self._weights_bytes = weights_bytes(self._loaded.model)
        self._gpu_uuids = _gpu_uuids(self._loaded.device)
        self._batcher = Batcher(
            self._loaded,
            max_batch_size=cfg.max_batch_size,
            batch_wait_ms=cfg.batch_wait_ms,
            on_tokens=self._on_tokens,
        )
        self._batcher.start(asyncio.get_running_loop())
        logger.info(
            "variant %s: %s loaded at %s on %s (%.1f MB of weights)",
            self.name,
            self._loaded.source,
            cfg.precision,
            self._loaded.device,
            self._weights_bytes / 1e6,
        )

    async def ready(self) -> bool:
        return self._batcher is not None and self._batcher.alive

    async def aclose(self) -> None:
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            await asyncio.to_thread(batcher.stop)
        loaded, self._loaded = self._loaded, None
        if loaded is not None and loaded.device.type == "cuda":
            del loaded
            torch.cuda.empty_cache()

    def memory(self) -> MemoryReport:
        """Weights after load and peak while serving; ``method`` says what the peak covers."""
        if self._loaded is None:
            raise RuntimeError(f"variant {self.name!r}: memory() before start()")
        return memory_report(self._loaded.model, self._loaded.device, self._weights_bytes)

    async def send(self, request: BackendRequest) -> BackendResponse:
        if request.endpoint in ("messages", "embeddings"):
            return _not_served(request.endpoint)
        batcher, loaded = self._batcher, self._loaded
        if batcher is None or loaded is None or not batcher.alive:
            raise BackendServerError(
                503, error_body(f"variant {self.name!r} is not loaded", error_type="server_error")
            )
        try:
            sampling = read_sampling(request.endpoint, request.body)
            prompt_ids = await asyncio.to_thread(
                build_prompt_ids,
                request.endpoint,
                request.body,
                loaded.tokenizer,
                loaded.max_context_tokens,
            )
        except InvalidRequest as exc:
            body = error_body(exc.message, param=exc.param, code=exc.code)
            return BackendResponse(status=400, body=body)
        events: asyncio.Queue[StepEvent] = asyncio.Queue()
        job = Job(
            request_id=request.request_id,
            prompt_ids=prompt_ids,
            max_new_tokens=self._token_budget(sampling, len(prompt_ids), loaded),
            sink=events.put_nowait,
            stop=sampling.stop,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
        )
        info = ExecutionInfo(
            gpu_uuids=self._gpu_uuids,
            extra={"precision": loaded.precision, "device": str(loaded.device)},
        )
        tracker = _Tracker(info)
        try:
            batcher.submit(job)
            first = await events.get()
            if first.error is not None:
                raise BackendServerError(500, error_body(first.error, error_type="server_error"))
            if request.stream:
                if request.endpoint == "responses":
                    writer = _responses_writer(request, sampling)
                    stream = self._stream_responses(writer, job, first, events, tracker)
                else:
                    stream = self._stream(request, sampling, job, first, events, tracker)
                return BackendResponse(
                    status=200, events=stream, content_type="text/event-stream", info=info
                )
            text, finish = await self._collect(first, events, tracker)
        except BaseException:
            Batcher.cancel(job)
            raise
        if request.endpoint == "responses":
            writer = _responses_writer(request, sampling)
            body = writer.body(text, finish, len(prompt_ids), tracker.tokens)
            return BackendResponse(status=200, body=body, info=info)
        body = completion_body(
            request.endpoint,
            model=sampling.model,
            text=text,
            finish_reason=finish,
            prompt_tokens=len(prompt_ids),
            completion_tokens=tracker.tokens,
        )
        return BackendResponse(status=200, body=body, info=info)

    async def _stream_responses(
        self,
        writer: ResponsesWriter,
        job: Job,
        event: StepEvent,
        events: asyncio.Queue[StepEvent],
        tracker: _Tracker,
    ) -> AsyncIterator[bytes]:
        """The Responses API's event sequence (no ``[DONE]``: that stream has none)."""
        try:
            for opening in writer.opening():
                yield opening
            while True:
                if event.error is not None:
                    raise BackendStreamError(f"variant {self.name!r}: {event.error}")
                tracker.add(event)
                if event.text:
                    yield writer.delta(event.text)
                if event.finish_reason is not None:
                    break
                event = await events.get()
            for closing in writer.closing(event.finish_reason, len(job.prompt_ids), tracker.tokens):
                yield closing
        finally:
            Batcher.cancel(job)  # as in _stream: a no-op at a normal end

    def _token_budget(self, sampling: SamplingRequest, prompt: int, loaded: LoadedModel) -> int:
        budget = min(sampling.max_tokens or self.config.max_new_tokens, self.config.max_new_tokens)
        if loaded.max_context_tokens is not None:
            budget = min(budget, loaded.max_context_tokens - prompt)
        return budget

    @staticmethod
    async def _collect(
        event: StepEvent, events: asyncio.Queue[StepEvent], tracker: _Tracker
    ) -> tuple[str, str]:
        parts: list[str] = []
        while True:
            if event.error is not None:
                raise BackendServerError(500, error_body(event.error, error_type="server_error"))
            tracker.add(event)
            parts.append(event.text)
            if event.finish_reason is not None:
                return "".join(parts), event.finish_reason
            event = await events.get()

    async def _stream(
        self,
        request: BackendRequest,
        sampling: SamplingRequest,
        job: Job,
        event: StepEvent,
        events: asyncio.Queue[StepEvent],
        tracker: _Tracker,
    ) -> AsyncIterator[bytes]:
        writer = ChunkWriter(request.endpoint, sampling.model)
        try:
            opening = writer.opening()
            if opening is not None:
                yield opening
            while True:
                if event.error is not None:
                    raise BackendStreamError(f"variant {self.name!r}: {event.error}")
                tracker.add(event)
                if event.text:
                    yield writer.content(event.text)
                if event.finish_reason is not None:
                    break
                event = await events.get()
            yield writer.finish(event.finish_reason)
            if sampling.include_usage:
                yield writer.usage(len(job.prompt_ids), tracker.tokens)
            yield DONE
        finally:
            # Normal end: a no-op. Client gone (aclose): the worker drops the row next step.
            Batcher.cancel(job)


def _responses_writer(request: BackendRequest, sampling: SamplingRequest) -> ResponsesWriter:
    return ResponsesWriter(
        request.body,
        model=sampling.model,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
    )


_NOT_SERVED = {
    "messages": "the Messages API (POST /v1/messages)",
    "embeddings": "embeddings (POST /v1/embeddings)",
}


def _not_served(endpoint: str) -> BackendResponse:
    """A 404 in the client's error shape: Anthropic's for the Messages API, else OpenAI's."""
    message = (
        f"the in-process engine does not serve {_NOT_SERVED[endpoint]}; route this model to "
        "an upstream that does (vLLM serves both)"
    )
    if endpoint == "messages":
        body = orjson.dumps(
            {"type": "error", "error": {"type": "not_found_error", "message": message}}
        )
    else:
        body = error_body(message, error_type="invalid_request_error", code="unsupported_endpoint")
    return BackendResponse(status=404, body=body)


def _gpu_uuids(device: torch.device) -> tuple[str, ...]:
    """NVML-style ``GPU-…`` id of the variant's GPU, so energy is read from the right board."""
    if device.type != "cuda":
        return ()
    uuid = str(torch.cuda.get_device_properties(device).uuid)
    return (uuid if uuid.startswith("GPU-") else f"GPU-{uuid}",)
