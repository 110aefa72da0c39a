"""End to end: a 60-s soak of ``quanttrap serve`` (``benchmarks/soak.py``, short settings).

Mixed load (chat and text completions, plain and streaming; Responses when the route is
served), shadowing and canaries on, through real processes (the upstreams are TEST DOUBLES).
One run, then ``kill -9`` and a restart; the tests read its result.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.soak import SoakResult, parser, run_soak

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoakResult]:
    args = parser().parse_args(
        ["--rate", "15", "--warmup-s", "20", "--sample-s", "4", "--window-s", "30",
         "--kill-restart", "--kill-n", "30"]
    )  # fmt: skip
    args.seconds = 60.0
    folder: Path = tmp_path_factory.mktemp("soak")
    result = run_soak(args, folder)
    print("\n".join(result.lines()))
    yield result


def test_a_minute_of_mixed_load_has_no_error_and_no_leak(soak: SoakResult) -> None:
    assert soak.requests >= 600 and not soak.errors, soak.errors
    assert len(soak.by_kind) >= 4  # every kind of request was sent
    assert len(soak.rss_kib) >= 5
    assert soak.rss_growth < 0.10, soak.rss_kib
    assert soak.fd_growth <= 3, soak.fds


def test_every_graded_evaluation_is_in_the_store(soak: SoakResult) -> None:
    assert soak.tagged_sent > 100
    assert soak.tagged_stored == soak.tagged_sent


def test_kill_9_and_restart_lose_no_graded_evaluation(soak: SoakResult) -> None:
    assert soak.kill_sent == 30
    assert soak.kill_stored == soak.kill_sent
