"""``python -m bench ...`` = ``quanttrap bench ...`` (for trees where the entry point is absent)."""

from __future__ import annotations

import argparse
import sys

from bench.commands import add_commands


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(["bench", *sys.argv[1:]])
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
