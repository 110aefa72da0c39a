"""vLLM load from a recorded /metrics page, and the polling task."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from telemetry.errors import ErrorReporter
from telemetry.vllm_scraper import UpstreamLoad, VllmMetricsScraper, parse_vllm_metrics

SAMPLE = (Path(__file__).parent / "data" / "vllm_metrics.txt").read_text()


def test_parse_recorded_page_sums_engines() -> None:
    load = parse_vllm_metrics(SAMPLE, scraped_at=5.0)
    assert load is not None
    assert (load.running, load.waiting, load.scraped_at) == (8, 2, 5.0)
    assert load.kv_cache_usage == pytest.approx((0.2125 + 0.1375) / 2)


def test_parse_accepts_the_older_cache_gauge_and_missing_fields() -> None:
    old = (
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{model_name="m"} 3.0\n'
        "# TYPE vllm:gpu_cache_usage_perc gauge\n"
        'vllm:gpu_cache_usage_perc{model_name="m"} 0.5\n'
    )
    load = parse_vllm_metrics(old)
    assert load is not None and (load.running, load.waiting, load.kv_cache_usage) == (3, None, 0.5)
    assert parse_vllm_metrics("# nothing here\nup 1\n") is None


def transport(pages: dict[str, tuple[int, str]]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        status, text = pages[str(request.url)]
        return httpx.Response(status, text=text)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_scraper_reports_batch_and_goes_stale() -> None:
    now = [100.0]
    seen: list[tuple[str, UpstreamLoad]] = []
    scraper = VllmMetricsScraper(
        {"m/nf4": "http://vllm:8000/metrics"},
        interval_s=0.25,
        client=transport({"http://vllm:8000/metrics": (200, SAMPLE)}),
        on_load=lambda g, load: seen.append((g, load)),
        clock=lambda: now[0],
    )
    assert scraper.current_batch("m/nf4") is None
    await scraper.scrape_once()
    assert scraper.current_batch("m/nf4") == 8
    assert seen[0][0] == "m/nf4" and seen[0][1].waiting == 2
    now[0] += 1.5  # older than max(4 periods, 1 s): unknown, not the last value
    assert scraper.current_batch("m/nf4") is None
    await scraper.aclose()


async def test_scraper_counts_errors_and_drops_non_vllm_targets() -> None:
    errors: list[str] = []
    scraper = VllmMetricsScraper(
        {"m/a": "http://a/metrics", "m/b": "http://b/metrics"},
        client=transport({"http://a/metrics": (500, "boom"), "http://b/metrics": (404, "")}),
        reporter=ErrorReporter(errors.append),
    )
    await scraper.scrape_once()
    assert errors == ["scraper"]
    assert set(scraper.targets) == {"m/a"}


async def test_polling_task_starts_and_stops() -> None:
    scraper = VllmMetricsScraper(
        {"m/v": "http://v/metrics"},
        interval_s=0.01,
        client=transport({"http://v/metrics": (200, SAMPLE)}),
    )
    await scraper.start()
    for _ in range(100):
        if scraper.current_batch("m/v") is not None:
            break
        await asyncio.sleep(0.01)
    assert scraper.current_batch("m/v") == 8
    await scraper.aclose()
