"""What the evaluation journal costs per call: CPU and the wait before the last byte.

Run: ``.venv/bin/python benchmarks/journal_cost.py`` (numbers recorded in docs/reliability.md).

:meth:`EvaluationStore.journal` is awaited by the request pipeline for evaluation traffic
before the response's last byte. Two shapes of traffic:

- **sequential**: one journal call at a time (a quiet proxy): every call is its own commit;
- **concurrent**: ``--concurrency`` calls at once (a busy proxy): the writer thread commits
  everything queued in one transaction (group commit).

Printed per call: process CPU (every thread: the event loop's queue put and future, the
writer's grading, SQLite insert and commit), and the wall-clock wait of the caller (p50, p99).
The log is WAL with ``synchronous=NORMAL`` (no fsync per commit), on the file system of
``--dir`` (default: a temporary directory); uvloop as ``quanttrap serve`` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from core.records import RequestRecord
from scoring.io.store import EvaluationStore

RECORD = RequestRecord(
    request_id="r",
    model="m",
    variant="nf4",
    bits=4,
    role="primary",
    operation="chat",
    stream=True,
    status=200,
    started_at=time.time(),
    duration_s=1.2,
    time_to_first_token_s=0.1,
    completion_tokens=120,
    text="Step one gives 6 * 7 = 42, so the answer is 42.\n#### 42",
    expected_answer="42",
    prompt="What is 6 * 7?",
)


async def _run(path: Path, calls: int, concurrency: int) -> tuple[float, list[float]]:
    store = EvaluationStore(path)
    await asyncio.to_thread(store.open)
    waits: list[float] = []
    records = [replace(RECORD, request_id=f"r{i}", started_at=i) for i in range(-50, calls)]

    async def one(i: int) -> None:
        t = time.perf_counter()
        outcome = await store.journal(records[i + 50])
        waits.append(time.perf_counter() - t)
        assert outcome == "stored", outcome

    try:
        for i in range(-50, 0):  # warm-up
            await one(i)
        waits.clear()
        cpu = time.process_time()
        for start in range(0, calls, concurrency):
            stop = min(start + concurrency, calls)
            await asyncio.gather(*(one(i) for i in range(start, stop)))
        cpu = time.process_time() - cpu
    finally:
        await asyncio.to_thread(store.close)
    return cpu / calls, waits


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed, as ``quanttrap serve`` runs."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for name, concurrency in (("sequential", 1), ("concurrent", args.concurrency)):
            path = Path(tmp) / f"{name}.sqlite3"
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                cpu, waits = runner.run(_run(path, args.calls, concurrency))
            waits.sort()
            p50 = statistics.median(waits)
            p99 = waits[int(0.99 * (len(waits) - 1))]
            print(
                f"{name:10s} x{concurrency:<3d} {args.calls} calls: "
                f"CPU {cpu * 1e6:6.1f} us/call, wait p50 {p50 * 1e6:7.1f} us, "
                f"p99 {p99 * 1e6:7.1f} us"
            )


if __name__ == "__main__":
    main()
