"""Regenerate the checked-in dashboards and rules: ``python -m grafana.generate [--check]``.

Writes ``grafana/{dashboards,rules}`` and ``helm/quanttrap/files/{dashboards,rules}`` from
the code with the default scoring settings; ``--check`` writes nothing and exits 1 when a
checked-in file is stale (what CI runs, through ``tests/grafana``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from grafana.export import REPO_TARGETS, out_of_sync, render_all, write_all

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    files = render_all()
    if args.check:
        stale = [p for target in REPO_TARGETS for p in out_of_sync(files, target)]
        for name in stale:
            print(f"out of sync: {name} (run python -m grafana.generate)", file=sys.stderr)
        return 1 if stale else 0
    for target in REPO_TARGETS:
        for path in write_all(files, target):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
