"""The batch a vLLM upstream is running, read from its own ``/metrics``.

The paper's effects depend on batch size, and an HTTP upstream does not report the batch a
request ran in; vLLM's gauges say how many requests it is decoding (``vllm:num_requests_
running``), how many wait, and how full its KV cache is (``vllm:kv_cache_usage_perc``, or
``vllm:gpu_cache_usage_perc`` before vLLM 0.9). Series of several engines (data-parallel
ranks) are summed (cache usage: averaged). One asyncio task polls every upstream; a reading
older than a few periods is reported as unknown, never as the last value seen.

vLLM's series are not re-exported under their own names; quanttrap exports
``quanttrap.upstream.*`` gauges labelled by variant instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import httpx
from prometheus_client.parser import text_string_to_metric_families

from telemetry.errors import ErrorReporter

__all__ = ["UpstreamLoad", "VllmMetricsScraper", "parse_vllm_metrics"]

_log = logging.getLogger("quanttrap.telemetry")

_RUNNING: Final = "vllm:num_requests_running"
_WAITING: Final = "vllm:num_requests_waiting"
_KV: Final = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
_WANTED: Final = (_RUNNING, _WAITING, *_KV)


@dataclass(frozen=True, slots=True)
class UpstreamLoad:
    """One scrape: requests running and waiting, KV-cache use (0..1), monotonic time."""

    running: int
    waiting: int | None
    kv_cache_usage: float | None
    scraped_at: float


def _wanted(line: str) -> bool:
    # Keep only the few families needed: a vLLM page is large and parsing all of it every
    # 250 ms would cost the event loop milliseconds.
    if line.startswith("# TYPE "):
        return line.split(" ", 3)[2] in _WANTED
    return any(line.startswith(n) and line[len(n) : len(n) + 1] in ("{", " ") for n in _WANTED)


def parse_vllm_metrics(text: str, scraped_at: float = 0.0) -> UpstreamLoad | None:
    """The load in a vLLM exposition text; ``None`` if it has no running-requests gauge."""
    kept = "\n".join(line for line in text.splitlines() if _wanted(line))
    values: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(kept + "\n"):
        for sample in family.samples:
            if sample.name in _WANTED:
                values.setdefault(sample.name, []).append(float(sample.value))
    if _RUNNING not in values:
        return None
    waiting = values.get(_WAITING)
    kv = next((values[k] for k in _KV if k in values), None)
    return UpstreamLoad(
        running=round(sum(values[_RUNNING])),
        waiting=None if waiting is None else round(sum(waiting)),
        kv_cache_usage=None if not kv else sum(kv) / len(kv),
        scraped_at=scraped_at,
    )


class VllmMetricsScraper:
    """Polls ``targets`` (variant key -> metrics URL) on one asyncio task."""

    def __init__(
        self,
        targets: Mapping[str, str],
        *,
        interval_s: float = 0.25,
        client: httpx.AsyncClient | None = None,
        reporter: ErrorReporter | None = None,
        on_load: Callable[[str, UpstreamLoad], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._targets = dict(targets)
        self._interval = interval_s
        self._stale_s = max(4 * interval_s, 1.0)
        self._client = client
        self._own_client = client is None
        self._reporter = reporter or ErrorReporter()
        self._on_load = on_load
        self._clock = clock
        self._loads: dict[str, UpstreamLoad] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def targets(self) -> Mapping[str, str]:
        return self._targets

    def load(self, group: str) -> UpstreamLoad | None:
        """The latest load of ``group``'s upstream, ``None`` if unknown or stale."""
        load = self._loads.get(group)
        if load is None or self._clock() - load.scraped_at > self._stale_s:
            return None
        return load

    def current_batch(self, group: str) -> int | None:
        """Requests ``group``'s upstream is decoding now, ``None`` if unknown."""
        load = self.load(group)
        return None if load is None else load.running

    async def scrape_once(self) -> None:
        """Scrape every target once, concurrently."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=max(self._interval * 2, 1.0))
        await asyncio.gather(*(self._scrape(g, url) for g, url in list(self._targets.items())))

    async def _scrape(self, group: str, url: str) -> None:
        assert self._client is not None
        try:
            response = await self._client.get(url)
            if response.status_code == 404:
                _log.warning("%s answered 404: not a vLLM metrics endpoint; not polled again", url)
                self._targets.pop(group, None)
                return
            response.raise_for_status()
            load = parse_vllm_metrics(response.text, self._clock())
        except Exception as exc:
            self._reporter.report("scraper", exc)
            return
        if load is None:
            self._reporter.report("scraper", f"{url}: no {_RUNNING} gauge")
            return
        self._loads[group] = load
        if self._on_load is not None:
            try:
                self._on_load(group, load)
            except Exception as exc:
                self._reporter.report("scraper", exc)

    async def _run(self) -> None:
        while self._targets:
            started = self._clock()
            await self.scrape_once()
            await asyncio.sleep(max(0.0, self._interval - (self._clock() - started)))

    async def start(self) -> None:
        if self._task is None and self._targets:
            self._task = asyncio.create_task(self._run(), name="quanttrap-vllm-scraper")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None
