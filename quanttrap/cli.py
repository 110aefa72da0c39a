"""The ``quanttrap`` command: ``serve`` (the main job) and the offline tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from quanttrap.settings import ConfigError, load_settings

__all__ = ["build_parser", "main"]


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"quanttrap: {exc}", file=sys.stderr)
        return 2
    overrides = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if overrides:
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update=overrides)}
        )
    from quanttrap.server import serve

    return serve(settings, source=args.config or "the embedded default (probe model)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quanttrap",
        description="OpenAI-compatible proxy that measures whether quantized variants of a "
        "model are really cheaper and still trustworthy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the proxy (the main job)",
        description="Serve the OpenAI-compatible API. With no --config, serve the embedded "
        "default: the shipped probe model at fp32, int8 and nf4, in-process.",
    )
    serve.add_argument("--config", metavar="FILE", help="YAML config file (default: embedded)")
    serve.add_argument("--host", help="address to listen on (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default from config: 8000)")
    serve.set_defaults(handler=_serve)
    # Each package owns its commands; the CLI only gathers them.
    from bench.commands import add_commands as add_bench_commands
    from grafana.commands import add_commands as add_grafana_commands
    from proxy.status_cli import add_commands as add_status_commands
    from scoring.io.commands import add_commands as add_scoring_commands
    from telemetry.commands import add_commands as add_telemetry_commands

    add_scoring_commands(sub)
    add_status_commands(sub)
    add_telemetry_commands(sub)
    add_grafana_commands(sub, lambda path: load_settings(path).scoring)
    add_bench_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
