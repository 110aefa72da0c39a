"""What live scoring costs: the request-path sink, the background grading, the recompute.

Run: ``.venv/bin/python benchmarks/live_scoring.py`` (numbers recorded in docs/scoring.md).

- **sink**: :meth:`ScoringRuntime.record_sink`, the only scoring work on the request path
  (a bounded deque append);
- **ingest**: per finished request, off the request path on the scoring worker: grading an
  evaluation request (GSM8K-style extraction), updating the sliding windows and queueing the
  log row;
- **evaluate**: one recomputation of the whole live table (every model, variant and bucket:
  intervals, tests, regimes, latches), which runs every ``recompute_interval_s``;
- **log**: rows per second the SQLite writer thread commits (WAL, batched).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from core.records import RequestRecord
from proxy.scoring_runtime import ScoringRuntime
from quanttrap.settings import Settings, settings_from_mapping
from scoring.evaluation import process_record
from scoring.io.store import EvaluationStore

VARIANTS = {"bf16": 16, "int8": 8, "nf4": 4, "awq": 4}


def _settings(store: Path) -> Settings:
    return settings_from_mapping(
        {
            "models": [
                {
                    "name": f"model{i}",
                    "anchor": "bf16",
                    "routing": {"primary": "bf16"},
                    "variants": [
                        {
                            "name": n,
                            "bits": b,
                            "backend": {"kind": "openai", "base_url": "http://127.0.0.1:1"},
                        }
                        for n, b in VARIANTS.items()
                    ],
                }
                for i in range(2)
            ],
            "scoring": {"store": {"path": str(store)}, "pending_records": 1_000_000},
        }
    )


def _records(n: int, now: float) -> list[RequestRecord]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        variant = rng.choice(list(VARIANTS))
        tokens = rng.randint(50, 300)
        out.append(
            RequestRecord(
                request_id=f"r{i}",
                model=f"model{i % 2}",
                variant=variant,
                bits=VARIANTS[variant],
                role="primary",
                operation="chat",
                stream=True,
                status=200,
                started_at=now - rng.uniform(1, 600),
                duration_s=tokens / 40,
                time_to_first_token_s=0.05,
                completion_tokens=tokens,
                text="Natalia sold 48/2 = 24 clips in May.\n#### 72",
                batch_size=rng.choice((1, 2, 4, 8, 16)),
                expected_answer="72" if i % 2 == 0 else None,  # half is evaluation traffic
                prompt="Natalia sold clips to 48 of her friends in April ...",
                energy_j=rng.uniform(100, 300),
                energy_method="nvml_counter",
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(Path(tmp) / "log.sqlite3")
        runtime = ScoringRuntime(settings, {}, clock=lambda: now)
        records = _records(args.records, now)

        t0 = time.perf_counter_ns()
        for r in records:
            runtime.record_sink(r)
        sink_ns = (time.perf_counter_ns() - t0) / len(records)

        assert runtime.store is not None
        runtime.store.open()
        t0 = time.perf_counter_ns()
        runtime._work(now, {})
        ingest_us = (time.perf_counter_ns() - t0) / len(records) / 1000

        t0 = time.perf_counter_ns()
        rounds = 20
        for k in range(rounds):
            snapshot = runtime.scorer.evaluate(now + k)
        evaluate_ms = (time.perf_counter_ns() - t0) / rounds / 1e6
        rows = sum(len(v.buckets) for m in snapshot.models for v in m.variants)

        runtime.store.flush(timeout=120)
        runtime.store.close()

        n = 50_000
        store = EvaluationStore(Path(tmp) / "bulk.sqlite3", queue_size=n)
        store.open()
        evaluation = process_record(records[0]).evaluation
        assert evaluation is not None
        started = time.perf_counter()
        for _ in range(n):
            store.append(evaluation)
        store.flush(timeout=120)
        log_rate = store.written / (time.perf_counter() - started)
        assert store.written == n and store.dropped == 0
        store.close()

    print(f"records: {len(records)} (half graded), 2 models x 4 variants, 5 batch buckets")
    print(f"sink (request path):    {sink_ns:8.0f} ns per record")
    print(f"ingest (worker):        {ingest_us:8.1f} us per record (grade, windows, log queue)")
    print(f"evaluate (every 5 s):   {evaluate_ms:8.2f} ms for {rows} variant-bucket rows")
    print(f"log writer (thread):    {log_rate:8.0f} rows/s committed (WAL, batches of 1000)")


if __name__ == "__main__":
    main()
