"""``quanttrap bench`` end to end on CPU: the probe model (real weights) and a random preset.

One short sweep per model (windows far below the method's 5 s, to stay fast; the run says so).
Checked: the JSON's figures follow from its own windows, the SI inputs are read by
``quanttrap si --input`` and give the SI the bench printed, the plots are PNGs, accuracy by
depth is there for real weights and absent for random ones, and energy is reported as
unavailable (no GPU), never as zero. Bad arguments exit 2 with the option named.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quanttrap.cli import main

pytestmark = pytest.mark.slow

_SHORT = ["--repeats", "3", "--window-s", "0.25", "--warmup-s", "0.05", "--cooldown-s", "0"]
_PNG = b"\x89PNG\r\n\x1a\n"


def _run(out: Path, *args: str) -> dict[str, Any]:
    code = main(["bench", "--device", "cpu", "--out", str(out), "--quiet", *_SHORT, *args])
    assert code == 0
    result: dict[str, Any] = json.loads((out / "bench.json").read_text())
    return result


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("probe")
    result = _run(
        out,
        "--model", "probe", "--variants", "fp32,nf4", "--batch-sizes", "1,4",
        "--per-depth", "2", "--depths", "1-3", "--max-tokens", "24", "--answer-tokens", "96",
    )  # fmt: skip
    return out, result


def test_cells_follow_from_the_windows(probe: tuple[Path, dict[str, Any]]) -> None:
    _, result = probe
    every = result["windows"]
    assert len(every) == 2 * 2 * (1 + 3)  # one burn-in pass (repeat 0), then three repeats
    assert result["method"]["scored_repeats"] == [1, 2, 3]
    windows = [w for w in every if w["repeat"] >= 1]
    assert {(w["variant"], w["batch_size"]) for w in windows} == {
        (v, b) for v in ("fp32", "nf4") for b in (1, 4)
    }
    for cell in result["cells"]:
        mine = [
            w
            for w in windows
            if (w["variant"], w["batch_size"]) == (cell["variant"], cell["batch_size"])
        ]
        rates = [w["tokens"] / w["seconds"] for w in mine]
        assert cell["tokens_per_s"]["mean"] == pytest.approx(sum(rates) / 3)
        assert cell["tokens_per_s"]["n"] == 3
        assert all(w["tokens"] > 0 for w in mine)
        assert cell["lengths"] == "real"
    # COR is the paired ratio of the anchor's and the variant's windows.
    by = {(w["variant"], w["batch_size"], w["repeat"]): w for w in windows}
    cors = [
        (by["fp32", 4, r]["tokens"] / by["fp32", 4, r]["seconds"])
        / (by["nf4", 4, r]["tokens"] / by["nf4", 4, r]["seconds"])
        - 1
        for r in (1, 2, 3)
    ]
    assert result["cor"]["nf4"]["4"]["mean"] == pytest.approx(sum(cors) / 3)


def test_energy_is_unavailable_on_cpu_not_zero(probe: tuple[Path, dict[str, Any]]) -> None:
    out, result = probe
    assert all(w["energy_j"] is None and w["energy_method"] == "none" for w in result["windows"])
    assert all(c["j_per_query"] is None for c in result["cells"])
    assert result["method"]["energy"].startswith("unavailable")
    assert result["b_star"]["nvml"] == []
    rows = json.loads((out / "si-b1.json").read_text())
    assert all(r["energy_j"] is None for r in rows)


def test_accuracy_by_depth_with_real_weights(probe: tuple[Path, dict[str, Any]]) -> None:
    _, result = probe
    for variant in ("fp32", "nf4"):
        acc = result["accuracy"][variant]
        assert acc["overall"]["n"] == 6
        assert set(acc["by_depth"]) == {"1", "2", "3"}
        assert all(d["n"] == 2 for d in acc["by_depth"].values())
        assert acc["by_depth"]["1"]["correct"] >= 1  # the probe model solves one-step problems
        assert 0.0 <= acc["overall"]["low"] <= acc["overall"]["accuracy"] <= acc["overall"]["high"]


def test_si_input_files_are_read_by_quanttrap_si(
    probe: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, result = probe
    for size in ("1", "4"):
        capsys.readouterr()
        assert main(["si", "--input", str(out / f"si-b{size}.json"), "--json"]) == 0
        table = {row["variant"]: row for row in json.loads(capsys.readouterr().out)}
        ours = {row["variant"]: row for row in result["si"]["nvml"][size]}
        assert table.keys() == ours.keys() == {"fp32", "nf4"}
        for name, row in table.items():
            assert row["cor"] == pytest.approx(ours[name]["cor"])
            assert row["tsi"] == ours[name]["tsi"]
            assert row["esi"] == pytest.approx(ours[name]["esi"])
            assert row["regime"] == ours[name]["regime"]
            assert row["si"] is None  # no energy, so no SI: said, not guessed


def test_plots_are_pngs(probe: tuple[Path, dict[str, Any]]) -> None:
    out, _ = probe
    for name in ("throughput", "energy", "cor", "pillars", "accuracy_depth"):
        assert (out / f"{name}.png").read_bytes()[:8] == _PNG


def test_replay_reanalyses_the_saved_windows(
    probe: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, result = probe
    again = tmp_path / "again"
    assert (
        main(["bench", "--replay", str(out / "bench.json"), "--out", str(again), "--no-plots"]) == 0
    )
    replayed = json.loads((again / "bench.json").read_text())
    assert replayed["cells"] == result["cells"]
    assert replayed["si"] == result["si"]
    assert replayed["accuracy"] == result["accuracy"]
    fewer = tmp_path / "fewer"
    code = main(
        ["bench", "--replay", str(out / "bench.json"), "--skip-repeats", "1", "--out", str(fewer),
         "--no-plots"]
    )  # fmt: skip
    assert code == 0
    skipped = json.loads((fewer / "bench.json").read_text())
    assert skipped["method"]["scored_repeats"] == [2, 3]
    cell = skipped["cells"][0]
    rates = [
        w["tokens"] / w["seconds"]
        for w in result["windows"]
        if (w["variant"], w["batch_size"]) == (cell["variant"], cell["batch_size"])
        and w["repeat"] in (2, 3)
    ]
    assert cell["tokens_per_s"]["mean"] == pytest.approx(sum(rates) / 2)
    assert any("2 scored repeat(s)" in w for w in skipped["method"]["warnings"])


def test_random_preset_has_fixed_lengths_and_no_accuracy(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        "--model", "random:tiny", "--variants", "fp32,int8", "--batch-sizes", "1,2",
        "--max-tokens", "8", "--reference-batches", "1,2", "--scratch", str(tmp_path),
        "--burn-in", "0",
    )  # fmt: skip
    assert result["accuracy"] == {}
    assert result["config"]["dataset"] is None and result["method"]["lengths"] == "fixed"
    assert all(c["tokens_per_query"] == 8 for c in result["cells"])
    assert {(r["variant"], r["batch_size"]) for r in result["reference"]} == {
        (v, b) for v in ("fp32", "int8") for b in (1, 2)
    }
    assert all(r["tokens_per_s"]["n"] == 3 for r in result["reference"])
    assert any("below the 5 s" in w for w in result["method"]["warnings"])
    assert not (tmp_path / "accuracy_depth.png").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--variants", "fp32,int4"], "--variants"),
        (["--batch-sizes", "0,4"], "--batch-sizes"),
        (["--model", "random:tiny", "--dataset", "multihop"], "--dataset"),
        (["--anchor", "bf16", "--variants", "fp32,nf4"], "--anchor"),
        (["--depths", "1-x"], "--depths"),
        (["--rated-power-w", "300"], "--rated-power-w"),
        (["--energy", "hli"], "--energy"),
        (["--model", "random:gpt-9"], "random:qwen3-0.6b"),
        (["--burn-in", "-1"], "--burn-in"),
        (["--replay", "/nonexistent/bench.json"], "--replay"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--device", "cpu", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("quanttrap bench: ") and named in err
    assert "Traceback" not in err and err.count("\n") == 1
