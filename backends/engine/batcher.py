"""Continuous batching: one worker thread per variant decodes every running request together.

Requests join the running batch between decode steps (their prompts are prefilled together in
one forward pass, then their caches are merged into the batch's, see :mod:`.kvbatch`) and leave
it as soon as they finish or their client goes away, so a short request never waits for a long
one and a new one waits at most one step. When nothing is running, the worker waits up to
``batch_wait_ms`` after the first arrival to gather more before the prefill.

Threads: torch calls block, so the model runs only on the worker thread (inside
``torch.inference_mode``). The event loop hands work over through a thread-safe queue and the
worker hands results back with one ``loop.call_soon_threadsafe`` per step, so the loop never
blocks on the model. ``on_tokens`` (energy attribution) is called on the worker thread.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from backends.engine.kvbatch import KVBatch
from backends.engine.loader import LoadedModel
from backends.engine.sampling import RowSampling, sample_tokens
from backends.engine.sequence import FinishReason, SequenceDecoder

__all__ = ["Batcher", "Job", "StepEvent", "TokenHook"]

logger = logging.getLogger(__name__)

TokenHook = Callable[[str, int], None]
"""``on_tokens(request_id, n_tokens)``, called on the worker thread after each step."""


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One step's result for one request, delivered on the event loop."""

    text: str
    tokens: int
    """Tokens this step generated for the request (0 on an error)."""
    batch_size: int
    """Sequences in the forward pass that produced the token."""
    finish_reason: FinishReason | None = None
    error: str | None = None


@dataclass(slots=True, eq=False)
class Job:
    """One request as the worker sees it. ``sink`` runs on the event loop."""

    request_id: str
    prompt_ids: list[int]
    max_new_tokens: int
    sink: Callable[[StepEvent], None]
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    cancelled: bool = False
    """Set from the event loop when the client goes away; the worker drops the row."""


@dataclass(slots=True, eq=False)
class _Row:
    job: Job
    decoder: SequenceDecoder
    sampling: RowSampling
    next_token: int = -1


_STOP = object()


class Batcher:
    """Owns the model's worker thread; :meth:`submit` and :meth:`cancel` are loop-side."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        max_batch_size: int,
        batch_wait_ms: float,
        on_tokens: TokenHook | None = None,
    ) -> None:
        self._loaded = loaded
        self._max_batch = max_batch_size
        self._wait_s = batch_wait_ms / 1000.0
        self._on_tokens = on_tokens
        self._inbox: queue.Queue[object] = queue.Queue()
        self._rows: list[_Row] = []
        self._batch: KVBatch | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._alive = False
        forward_params = inspect.signature(loaded.model.forward).parameters
        self._keep_one = "logits_to_keep" in forward_params
        # transformers 5.24 renamed forward's ``past_key_values`` to ``cache`` (the old name
        # warns until 5.40); pass whichever this version's model takes.
        self._cache_kwarg = "cache" if "cache" in forward_params else "past_key_values"
        self.steps = 0
        """Forward passes run (prefills and decode steps)."""
        self.tokens_generated = 0

    @property
    def running(self) -> int:
        """Sequences in the running batch."""
        return len(self._rows)

    @property
    def waiting(self) -> int:
        """Requests queued for the next admission (approximate, like any queue size)."""
        return self._inbox.qsize()

    @property
    def alive(self) -> bool:
        return self._alive

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._alive = True
        self._thread = threading.Thread(
            target=self._run, name=f"quanttrap-engine-{self._loaded.precision}", daemon=True
        )
        self._thread.start()

    def submit(self, job: Job) -> None:
        if not self._alive:
            raise RuntimeError("the engine's worker is not running")
        self._inbox.put(job)

    @staticmethod
    def cancel(job: Job) -> None:
        job.cancelled = True

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the worker to finish (running requests fail) and wait for it. Blocking."""
        self._inbox.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout_s)

    # ---- worker thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with torch.inference_mode():
                while True:
                    new = self._admit()
                    if new is None:
                        break
                    self._drop_cancelled()
                    if new:
                        self._prefill(new)
                    if self._rows:
                        self._decode()
        except Exception:
            logger.exception("engine worker for %s crashed", self._loaded.precision)
        finally:
            self._alive = False
            self._fail_everything("the engine stopped")

    def _admit(self) -> list[Job] | None:
        """New jobs to prefill (possibly none); ``None`` when asked to stop."""
        capacity = self._max_batch - len(self._rows)
        taken: list[Job] = []
        if capacity <= 0:
            return taken
        if not self._rows:
            first = self._inbox.get()
            if first is _STOP:
                return None
            assert isinstance(first, Job)
            taken.append(first)
            deadline = time.monotonic() + self._wait_s
            while len(taken) < capacity and (left := deadline - time.monotonic()) > 0:
                try:
                    item = self._inbox.get(timeout=left)
                except queue.Empty:
                    break
                if item is _STOP:
                    self._fail(taken, "the engine is shutting down")
                    return None
                assert isinstance(item, Job)
                taken.append(item)
        while len(taken) < capacity:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._fail(taken, "the engine is shutting down")
                return None
            assert isinstance(item, Job)
            taken.append(item)
        return [job for job in taken if not job.cancelled]

    def _drop_cancelled(self) -> None:
        keep = [i for i, row in enumerate(self._rows) if not row.job.cancelled]
        if len(keep) != len(self._rows):
            self._keep_rows(keep)

    def _keep_rows(self, keep: list[int]) -> None:
        self._rows = [self._rows[i] for i in keep]
        if not self._rows:
            self._batch = None
        elif self._batch is not None:
            self._batch.keep(keep)

    def _new_row(self, job: Job) -> _Row:
        loaded = self._loaded
        generator = None
        if job.temperature > 0.0:
            generator = torch.Generator(device=loaded.device)
            if job.seed is None:
                generator.seed()
            else:
                generator.manual_seed(job.seed)
        decoder = SequenceDecoder(
            loaded.tokenizer,
            job.prompt_ids,
            max_new_tokens=job.max_new_tokens,
            stop=job.stop,
            eos_token_ids=loaded.eos_token_ids,
        )
        return _Row(job, decoder, RowSampling(job.temperature, job.top_p, generator))

    def _forward(self, cache: DynamicCache, **inputs: Any) -> torch.Tensor:
        inputs[self._cache_kwarg] = cache
        output = self._loaded.model(use_cache=True, **inputs)
        self.steps += 1
        logits: torch.Tensor = output.logits[:, -1, :].float()
        return logits

    def _prefill(self, jobs: list[Job]) -> None:
        device = self._loaded.device
        try:
            rows = [self._new_row(job) for job in jobs]
            longest = max(len(job.prompt_ids) for job in jobs)
            ids = torch.full((len(jobs), longest), self._loaded.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(jobs), longest), dtype=torch.long)
            for index, job in enumerate(jobs):
                ids[index, longest - len(job.prompt_ids) :] = torch.tensor(job.prompt_ids)
                mask[index, longest - len(job.prompt_ids) :] = 1
            ids, mask = ids.to(device), mask.to(device)
            cache = DynamicCache()
            extra: dict[str, Any] = {"logits_to_keep": 1} if self._keep_one else {}
            logits = self._forward(
                input_ids=ids,
                attention_mask=mask,
                position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0),
                cache=cache,
                **extra,
            )
            batch = KVBatch.from_prefill(cache, mask)
        except Exception as exc:
            logger.exception("prefill of %d requests failed", len(jobs))
            self._fail(jobs, f"prefill failed: {exc}")
            return
        alive, deliveries = self._emit(rows, logits, len(rows))
        if alive:
            batch.keep(alive)
            if self._batch is None:
                self._batch = batch
            else:
                self._batch.extend(batch)
            self._rows.extend(rows[i] for i in alive)
        self._deliver(deliveries)

    def _decode(self) -> None:
        batch = self._batch
        assert batch is not None
        device = self._loaded.device
        try:
            ids = torch.tensor([[row.next_token] for row in self._rows], device=device)
            mask, positions = batch.step_inputs()
            logits = self._forward(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=batch.cache,
            )
        except Exception as exc:
            logger.exception("decode step of %d sequences failed", len(self._rows))
            self._fail([row.job for row in self._rows], f"decode failed: {exc}")
            self._rows, self._batch = [], None
            return
        alive, deliveries = self._emit(self._rows, logits, len(self._rows))
        self._keep_rows(alive)
        self._deliver(deliveries)

    def _emit(
        self, rows: list[_Row], logits: torch.Tensor, batch_size: int
    ) -> tuple[list[int], list[tuple[Job, StepEvent]]]:
        """Sample and detokenize one token per row: the rows still running, and the events.

        The caller updates the batch before delivering the events, so that ``running`` is
        already right when a request's last event reaches the loop.
        """
        tokens = sample_tokens(logits, [row.sampling for row in rows])
        alive: list[int] = []
        deliveries: list[tuple[Job, StepEvent]] = []
        for index, (row, token) in enumerate(zip(rows, tokens, strict=True)):
            step = row.decoder.push(token)
            row.next_token = token
            deliveries.append((row.job, StepEvent(step.text, 1, batch_size, step.finish_reason)))
            if step.finish_reason is None and not row.job.cancelled:
                alive.append(index)
        self.tokens_generated += len(rows)
        # Tokens are reported before they are delivered, so that when a request's last event
        # reaches the loop its energy share is already booked.
        self._report_tokens(rows)
        return alive, deliveries

    def _report_tokens(self, rows: list[_Row]) -> None:
        hook = self._on_tokens
        if hook is None:
            return
        for row in rows:
            try:
                hook(row.job.request_id, 1)
            except Exception:
                logger.exception("on_tokens hook failed")

    def _deliver(self, deliveries: list[tuple[Job, StepEvent]]) -> None:
        if not deliveries or self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(_dispatch, deliveries)
        except RuntimeError:
            # The loop is closed: nobody is left to read the results.
            logger.debug("event loop closed; dropped %d step events", len(deliveries))

    def _fail(self, jobs: list[Job], message: str) -> None:
        self._deliver([(job, StepEvent("", 0, 0, error=message)) for job in jobs])

    def _fail_everything(self, message: str) -> None:
        jobs = [row.job for row in self._rows]
        self._rows, self._batch = [], None
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Job):
                jobs.append(item)
        self._fail(jobs, message)


def _dispatch(deliveries: list[tuple[Job, StepEvent]]) -> None:
    """Runs on the event loop: hand each event to its request."""
    for job, event in deliveries:
        if not job.cancelled:
            job.sink(event)
