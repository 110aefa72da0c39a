"""scripts/audit_deps.py judges pip-audit's report: vulnerabilities fail, no answer is said."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit_deps.py"

CLEAN = {
    "dependencies": [
        {"name": "orjson", "version": "3.10.0", "vulns": []},
        {"name": "torch", "skip_reason": "Dependency not found on PyPI"},
    ]
}
VULNERABLE = {
    "dependencies": [
        {"name": "orjson", "version": "3.10.0", "vulns": []},
        {"name": "h11", "version": "0.14.0",
         "vulns": [{"id": "GHSA-vqfr-h8mv-ghfj", "fix_versions": ["0.16.0"]}]},
    ]
}  # fmt: skip
NOTHING = {"dependencies": [{"name": "orjson", "skip_reason": "Dependency not found on PyPI"}]}


def _judge(tmp_path: Path, report: dict[str, Any], **env: str) -> tuple[int, str]:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--report", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "QUANTTRAP_REQUIRE_AUDIT": "", **env},
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def test_a_clean_report_passes_and_lists_what_was_skipped(tmp_path: Path) -> None:
    status, out = _judge(tmp_path, CLEAN)
    assert status == 0
    assert "1 dependencies audited, 1 skipped" in out and "torch" in out
    assert "no known vulnerabilities" in out


def test_a_known_vulnerability_fails_naming_it_and_its_fix(tmp_path: Path) -> None:
    status, out = _judge(tmp_path, VULNERABLE)
    assert status == 1
    assert "VULNERABLE h11 0.14.0: GHSA-vqfr-h8mv-ghfj (fixed in: 0.16.0)" in out


@pytest.mark.parametrize(("required", "expected"), [("", 0), ("1", 2)])
def test_nothing_audited_is_said_never_passed_as_clean(
    tmp_path: Path, required: str, expected: int
) -> None:
    status, out = _judge(tmp_path, NOTHING, QUANTTRAP_REQUIRE_AUDIT=required)
    assert status == expected
    assert "NOT AUDITED" in out and "no known vulnerabilities" not in out
