"""``quanttrap bench`` on a real GPU (``-m gpu``; never in CI): NVML energy, memory, B*.

A short sweep of the shipped probe model at bf16 and nf4, batch sizes 1 and 8, three repeats
of 1 s windows (shorter than the method's 5 s, to keep the test short). What it checks is
what only a GPU can show: the NVML counter gave an energy for every window (no zeros, the
method named), the clocks and power limit were recorded, the peak memory of each cell covers
at least its weights, and a B* verdict exists for nf4. Output recorded in docs/trap-h200.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu


def test_bench_on_gpu_measures_energy_memory_and_b_star(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    from quanttrap.cli import main

    out = tmp_path / "out"
    code = main(
        [
            "bench", "--model", "probe", "--variants", "bf16,nf4", "--batch-sizes", "1,8",
            "--per-depth", "4", "--depths", "1-4", "--repeats", "3", "--window-s", "1",
            "--warmup-s", "0.3", "--cooldown-s", "0.2", "--max-tokens", "32",
            "--energy", "both", "--device", "cuda", "--out", str(out), "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    result = json.loads((out / "bench.json").read_text())
    assert result["environment"]["device"].startswith("cuda")
    windows = result["windows"]
    assert len(windows) == 2 * 2 * 3
    for w in windows:
        assert w["energy_method"] in ("nvml_counter", "nvml_power")
        assert w["energy_j"] is not None and w["energy_j"] > 0
        assert w["hli_j"] is not None and w["hli_j"] > 0
        assert w["state_start"]["power_limit_w"] > 0
        assert w["state_start"]["sm_clock_mhz"] > 0
        assert w["peak_bytes"] >= result["weights_bytes"][w["variant"]]
    for cell in result["cells"]:
        assert cell["j_per_query"]["mean"] > 0
        assert cell["j_per_token"]["n"] == 3
    [verdict] = result["b_star"]["nvml"]
    assert verdict["variant"] == "nf4" and verdict["kind"] in (
        "crossing", "below_everywhere", "deepens", "no_crossing"
    )  # fmt: skip
    rows = json.loads((out / "si-b1.json").read_text())
    assert {r["variant"] for r in rows} == {"bf16", "nf4"}
    assert all(r["energy_j"] > 0 for r in rows)
    assert (out / "energy.png").stat().st_size > 0
    print(json.dumps({"cells": result["cells"], "b_star": result["b_star"]}, indent=1))
