"""Fuzzing ``quanttrap serve`` from its ``/openapi.json`` for longer than CI does.

Run: ``python benchmarks/fuzz_api.py --examples 2000`` (figures in docs/reliability.md).

Method: as ``tests/e2e/test_fuzz_openapi.py`` (see :mod:`tests.e2e.fuzzing`): a fake upstream
process (TEST DOUBLE) behind a real ``quanttrap serve``, every documented operation fuzzed with
schemathesis's positive and negative cases, ``--examples`` per operation and mode, first with
no API keys, then with keys configured and every route guarded (each case sent with the right
key, a wrong one or none). Prints per run the requests, statuses, 5xx, hangs (no response in
``--timeout`` s) and rule breaks (errors not in OpenAI's or Anthropic's shape, a success
without the key), and exits 1 if any. ``--seed`` changes the sample.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.doubles.processes import start_proxy, start_upstream  # noqa: E402
from tests.e2e.fuzzing import fuzz  # noqa: E402
from tests.e2e.test_fuzz_openapi import API_KEY, fuzz_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--examples", type=int, default=2000, help="per operation and mode")
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    bad = 0
    with tempfile.TemporaryDirectory(prefix="quanttrap-fuzz-") as name:
        folder = Path(name)
        upstream = start_upstream("bf16", folder, reply_words=4)
        try:
            for auth in (False, True):
                env = {"QUANTTRAP_API_KEYS": API_KEY if auth else ""}
                cfg = fuzz_config(upstream.url, folder, protect=auth)
                proxy = start_proxy(cfg, folder, env=env)
                try:
                    report = fuzz(proxy.url, model="demo", api_key=API_KEY if auth else None,
                                  examples=args.examples, timeout=args.timeout,
                                  seed=args.seed)  # fmt: skip
                    alive = proxy.proc.poll() is None
                finally:
                    proxy.stop()
                print(f"auth {'on ' if auth else 'off'}: {report.summary()}; "
                      f"proxy {'alive' if alive else 'DIED'}")  # fmt: skip
                for op, n in sorted(report.by_operation.items()):
                    print(f"    {op}: {n}")
                for failure in report.failures[:20]:
                    print(f"    FAIL {failure}")
                bad += len(report.failures) + report.server_errors + (not alive)
        finally:
            upstream.stop()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
