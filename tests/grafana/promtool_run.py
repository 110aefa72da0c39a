"""Writing a ``promtool test rules`` file and running it."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["close_to", "run_promtool_tests"]


def close_to(selector: str, expected: float, tolerance: float = 1e-9) -> str:
    """A PromQL test expression: 1 where ``selector`` is within ``tolerance`` of ``expected``.

    promtool compares sample values exactly; PromQL and Python round differently in the last
    bit, so the comparison is done in PromQL and the test expects 1.
    """
    return f"abs({selector} - {expected!r}) < bool {tolerance!r}"


def run_promtool_tests(
    promtool: str, workdir: Path, rule_files: Sequence[Path], tests: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    spec = {
        "rule_files": [str(p) for p in rule_files],
        "evaluation_interval": "1m",
        "tests": tests,
    }
    path = workdir / "promtool-test.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, width=1_000_000), encoding="utf-8")
    return subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
