"""``quanttrap export``: write (or check) the dashboards and rule files.

Registered by ``quanttrap.cli`` like every package's commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_commands", "options_from_args"]


def add_commands(subparsers: Any, load_scoring: Callable[[str], Any]) -> None:
    """Add ``export`` to ``subparsers`` (from ``ArgumentParser.add_subparsers``).

    ``load_scoring(path)`` reads the scoring settings of a quanttrap config file (the
    composition root passes it in: grafana does not know how settings are read).
    """
    p: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help="write the Grafana dashboards and Prometheus rules",
        description=(
            "Render the Grafana dashboards (JSON) and the Prometheus recording and alerting "
            "rules (YAML) into DIR/dashboards and DIR/rules. The recording rules compute the "
            "fleet-wide SI with the scoring settings of --config (window, weights, lambda, "
            "policy, sample gates), so pass the config the proxies run with; memory comes "
            "from the proxies' own quanttrap_variant_memory_bytes series."
        ),
    )
    p.add_argument("--out", metavar="DIR", default="quanttrap-export", help="output folder")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if DIR's files differ from what would be written",
    )
    p.add_argument("--config", metavar="FILE", help="quanttrap config file (default: defaults)")
    p.add_argument(
        "--alert-for",
        metavar="DURATION",
        help="replace every alert's `for:` (e.g. 0s for a test Prometheus)",
    )
    p.add_argument("--runbook-base", metavar="URL", help="where docs/runbooks/ is browsable")
    p.add_argument(
        "--energy-expected",
        metavar="REGEX",
        default="",
        help="variants whose GPU energy must be measured (alert at once on method none)",
    )
    p.set_defaults(handler=_export, load_scoring=load_scoring)


def options_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~grafana.options.RuleOptions` the arguments ask for."""
    from grafana.options import RuleOptions
    from scoring.config import ScoringConfig

    scoring = ScoringConfig()
    if args.config is not None:
        scoring = args.load_scoring(args.config)
    extra: dict[str, Any] = {}
    if args.runbook_base:
        extra["runbook_base"] = args.runbook_base
    return RuleOptions(
        scoring=scoring,
        alert_for=args.alert_for,
        energy_expected=args.energy_expected,
        **extra,
    )


def _export(args: argparse.Namespace) -> int:
    try:
        from grafana.export import out_of_sync, render_all, write_all
    except ImportError as exc:  # grafana-foundation-sdk is the optional `grafana` extra
        print(
            f"quanttrap export: {exc}; install it with: pip install 'quanttrap[grafana]'",
            file=sys.stderr,
        )
        return 2
    from core.errors import ConfigError

    try:
        options = options_from_args(args)
    except (ConfigError, ValueError) as exc:
        print(f"quanttrap export: {exc}", file=sys.stderr)
        return 2
    files = render_all(options)
    out = Path(args.out)
    if args.check:
        stale = out_of_sync(files, out)
        for name in stale:
            print(f"out of sync: {name}", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all(files, out):
        print(path)
    return 0
