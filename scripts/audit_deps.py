"""Audit the installed dependencies for known vulnerabilities (pip-audit), for the test command.

Run: ``.venv/bin/python scripts/audit_deps.py`` (``scripts/test.sh`` runs it; so does CI).

- **Known vulnerabilities fail** (exit 1), each listed with its id and the fixed versions.
  A vulnerability with no fix yet, judged harmless here, is accepted by adding its id to
  ``IGNORED`` below with the reason (never silently).
- **A slow or unreachable vulnerability service does not fail the build**: pip-audit runs with
  a socket timeout, is retried once, and the whole audit is bounded in time; if the service
  still cannot be reached, or answers for none of the dependencies, the script says loudly
  ``NOT AUDITED`` and exits 0, unless ``QUANTTRAP_REQUIRE_AUDIT=1`` (then 2). Why: an outage
  of PyPI's JSON API must not block every merge, and the next run audits again.
- pip-audit itself exits 0 when every dependency was *skipped* (e.g. PyPI's API returned
  nothing): that is counted here as not audited, never as "no vulnerabilities".
- Dependencies PyPI does not know (this project, installed editable; local builds such as
  ``torch+cpu``) are listed as skipped.

``--report FILE`` judges an existing pip-audit JSON report instead of running pip-audit
(used by the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

IGNORED: dict[str, str] = {}
"""Vulnerability id -> why it is accepted (reviewed; remove when a fix is installed)."""

TIMEOUT_S = 90
"""One pip-audit run, at most (it queries PyPI once per dependency)."""


def run_pip_audit(report: Path) -> bool:
    """Run pip-audit into ``report``; ``False`` when it produced no report (service down)."""
    exe = Path(sys.executable).with_name("pip-audit")
    command = [
        str(exe), "--local", "--skip-editable", "--progress-spinner", "off",
        "--timeout", "20", "--format", "json", "--output", str(report),
    ]  # fmt: skip
    for attempt in (1, 2):
        report.unlink(missing_ok=True)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"pip-audit: attempt {attempt} took over {TIMEOUT_S} s", file=sys.stderr)
            continue
        if report.exists() and report.stat().st_size:
            return True
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        print(f"pip-audit: attempt {attempt} failed: {tail[0][:300]}", file=sys.stderr)
    return False


def judge(data: dict[str, Any]) -> tuple[int, list[str]]:
    """(exit status, lines to print) for a pip-audit JSON report."""
    deps = data.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    skipped = [d for d in deps if "skip_reason" in d]
    found = [
        (d["name"], d.get("version", "?"), v)
        for d in audited
        for v in d.get("vulns", [])
        if v.get("id") not in IGNORED
    ]
    lines = [f"pip-audit: {len(audited)} dependencies audited, {len(skipped)} skipped"]
    if skipped:
        names = ", ".join(sorted(d["name"] for d in skipped))
        lines.append(f"  skipped (not on PyPI or no answer): {names[:2000]}")
    for vid, reason in sorted(IGNORED.items()):
        lines.append(f"  accepted {vid}: {reason}")
    if found:
        for name, version, vuln in found:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix released"
            lines.append(f"  VULNERABLE {name} {version}: {vuln.get('id')} (fixed in: {fixes})")
        return 1, lines
    if not audited:
        return _not_audited(lines, "the vulnerability service answered for no dependency")
    lines.append("  no known vulnerabilities")
    return 0, lines


def _not_audited(lines: list[str], why: str) -> tuple[int, list[str]]:
    required = os.environ.get("QUANTTRAP_REQUIRE_AUDIT") == "1"
    lines.append(f"  NOT AUDITED: {why}.")
    lines.append("  (exit 0: set QUANTTRAP_REQUIRE_AUDIT=1 to fail instead)" if not required
                 else "  failing: QUANTTRAP_REQUIRE_AUDIT=1")  # fmt: skip
    return (2 if required else 0), lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="judge this pip-audit JSON report")
    args = parser.parse_args()
    if args.report is not None:
        status, lines = judge(json.loads(args.report.read_text()))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "audit.json"
            if run_pip_audit(report):
                status, lines = judge(json.loads(report.read_text()))
            else:
                status, lines = _not_audited(
                    ["pip-audit: no report"], "the vulnerability service could not be reached"
                )
    print("\n".join(lines), file=sys.stderr if status else sys.stdout)
    return status


if __name__ == "__main__":
    sys.exit(main())
