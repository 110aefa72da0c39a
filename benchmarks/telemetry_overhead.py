"""CPU cost of telemetry on the proxy's hot path, and of the energy sampler thread.

Run::

    .venv/bin/python benchmarks/telemetry_overhead.py

Per request it makes the calls the proxy makes: ``start_request`` (trace context from the
client, session header, a chat body), ``upstream_headers``, ``tokens`` per streamed chunk,
``finish`` (every histogram and counter, energy ticket), and the energy resolution that the
sampler thread runs later (energy histogram, span end). CPU is process CPU time, so the
sampler and span-export threads are included. Targets: < 50 µs per request (without the
per-chunk calls), < 1% of a core for the sampler at 100 ms with a fake GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

from core.records import RequestRecord
from telemetry import FakeEnergySource, Telemetry, TelemetryConfig, VariantSpec
from telemetry.core import ActiveTelemetry

MODEL = "bench-model"
VARIANTS = [
    VariantSpec(MODEL, "fp16", 16, gpus="all", server_address="10.0.0.5", server_port=8000),
    VariantSpec(MODEL, "int8", 8, gpus="all"),
    VariantSpec(MODEL, "nf4", 4, rated_power_w=300.0),
]
HEADERS = {
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "x-session-id": "bench-session",
    "content-type": "application/json",
}
BODY = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": "What is 48 / 2 + 3?"},
        {"role": "assistant", "content": "Let me compute."},
        {"role": "user", "content": "Go on."},
    ],
    "max_tokens": 128,
    "temperature": 0.0,
    "stream": True,
}
TEXT = "48 / 2 = 24.\n24 + 3 = 27.\nThe answer is 27."


class _DiscardExporter(SpanExporter):
    """Stands in for OTLP: the batch processor's work is measured, the network is not."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _record(variant: str, bits: int, i: int) -> RequestRecord:
    return RequestRecord(
        request_id=f"r{i}",
        model=MODEL,
        variant=variant,
        bits=bits,
        role="primary" if i % 4 else "shadow",
        operation="chat",
        stream=True,
        status=200 if i % 50 else 503,
        started_at=time.time(),
        duration_s=0.8,
        time_to_first_token_s=0.05,
        prompt_tokens=42,
        completion_tokens=64,
        finish_reason="stop",
        text=TEXT,
        error_type=None if i % 50 else "server_error",
    )


def _telemetry(tracing: bool, nvml: bool = False) -> Telemetry:
    cfg = TelemetryConfig.model_validate({"energy": {"sample_interval_ms": 100}})
    return Telemetry.create(
        cfg,
        VARIANTS,
        registry=CollectorRegistry(),
        energy_source=None if nvml else FakeEnergySource(gpus=("GPU-bench-0", "GPU-bench-1")),
        span_processor=BatchSpanProcessor(_DiscardExporter()) if tracing else None,
        environ={},
    )


async def _per_request(n: int, chunks: int, tracing: bool) -> dict[str, float]:
    tel = _telemetry(tracing)
    await tel.start()
    plan = [(v.name, v.bits) for v in VARIANTS]
    pendings = []
    gc.collect()
    cpu0, loop0 = time.process_time(), time.thread_time()
    chunk_cpu = 0.0
    for i in range(n):
        variant, bits = plan[i % len(plan)]
        h = tel.start_request(
            model=MODEL, variant=variant, headers=HEADERS, body=BODY, request_id=f"r{i}"
        )
        h.upstream_headers()
        c0 = time.thread_time()
        for _ in range(chunks):
            h.tokens(1)
        chunk_cpu += time.thread_time() - c0
        pendings.append(h.finish(_record(variant, bits, i)))
        if len(pendings) >= 256:  # let the sampler resolve them, as in a live proxy
            for p in pendings:
                await p
            pendings.clear()
    for p in pendings:
        await p
    loop_cpu = time.thread_time() - loop0 - chunk_cpu
    total_cpu = time.process_time() - cpu0 - chunk_cpu
    t0 = time.perf_counter()
    scrapes = 50
    for _ in range(scrapes):
        body, _ = tel.metrics_payload()
    scrape_ms = (time.perf_counter() - t0) / scrapes * 1e3
    await tel.aclose()
    return {
        "loop_us": loop_cpu / n * 1e6,
        "process_us": total_cpu / n * 1e6,
        "chunk_us": chunk_cpu / (n * chunks) * 1e6,
        "scrape_ms": scrape_ms,
        "scrape_kb": len(body) / 1024,
    }


def _sampler(seconds: float, in_flight: int, nvml: bool) -> dict[str, float]:
    tel = _telemetry(False, nvml)
    assert isinstance(tel, ActiveTelemetry)

    async def run() -> tuple[float, int]:
        await tel.start()
        handles = [
            tel.start_request(model=MODEL, variant="fp16", request_id=f"s{i}")
            for i in range(in_flight)
        ]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # requests keep producing tokens
            for h in handles:
                h.tokens(1)
            await asyncio.sleep(0.02)
        sampler = tel.energy_meter.sampler
        assert sampler is not None
        cpu = sampler.thread_cpu_s
        ticks = sampler.ticks
        await tel.aclose()
        return cpu / seconds, ticks

    share, ticks = asyncio.run(run())
    return {"core_share": share, "ticks": ticks}


def _logical_hops_cost(kib: int) -> float:
    """µs to count logical hops in a completion of ``kib`` KiB (part of ``finish``)."""
    from scoring.hops import logical_hops

    step = "Step: 48 / 2 = 24 clips in May, so she sold 48 + 24 = 72 clips in all. "
    text = (step * (kib * 1024 // len(step) + 1))[: kib * 1024]
    n = 500
    t0 = time.thread_time()
    for _ in range(n):
        logical_hops(text)
    return (time.thread_time() - t0) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--chunks", type=int, default=64, help="streamed chunks per request")
    parser.add_argument("--sampler-seconds", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=32, help="requests during sampling")
    parser.add_argument(
        "--nvml", action="store_true", help="sample this host's GPUs instead of the fake source"
    )
    args = parser.parse_args()

    print(f"per request ({args.requests} requests, {args.chunks} chunks each):")
    for tracing in (False, True):
        r = asyncio.run(_per_request(args.requests, args.chunks, tracing))
        label = "spans exported (BatchSpanProcessor)" if tracing else "spans not exported"
        print(
            f"  {label:38s} event loop {r['loop_us']:6.1f} µs/request, "
            f"process {r['process_us']:6.1f} µs/request (target < 50), "
            f"tokens() {r['chunk_us']:.2f} µs/chunk"
        )
    print(f"  GET /metrics: {r['scrape_ms']:.2f} ms per scrape ({r['scrape_kb']:.0f} KiB of text)")
    print(
        f"  logical hops in finish(): {_logical_hops_cost(4):.0f} µs for a 4 KiB completion "
        f"full of results (the {len(TEXT)}-byte completion above: included)"
    )
    s = _sampler(args.sampler_seconds, args.in_flight, args.nvml)
    source = "NVML (this host's GPUs)" if args.nvml else "fake 2-GPU source"
    print(
        f"sampler thread, {source} at 100 ms, {args.in_flight} requests in flight: "
        f"{s['core_share'] * 100:.3f}% of a core over {args.sampler_seconds:.0f} s "
        f"({s['ticks']:.0f} samples; target < 1%)"
    )


if __name__ == "__main__":
    main()
