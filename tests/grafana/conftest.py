"""Fixtures of the rule and dashboard tests: promtool, and rule files rendered into tmp."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grafana.export import render_all, write_all
from grafana.options import RuleOptions


@pytest.fixture(scope="session")
def promtool() -> str:
    """The promtool binary; skipped without it, failed in CI (QUANTTRAP_REQUIRE_INTEGRATION=1)."""
    import os

    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (Debian: apt-get install prometheus)"
        if os.environ.get("QUANTTRAP_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def rules_dir(tmp: Path, options: RuleOptions) -> Path:
    """The rule files rendered with ``options`` under ``tmp/rules``."""
    write_all({k: v for k, v in render_all(options).items() if k.startswith("rules/")}, tmp)
    return tmp / "rules"
