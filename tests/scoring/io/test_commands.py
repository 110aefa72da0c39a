"""``quanttrap si`` and ``quanttrap grade`` through a stand-in for proxy/cli.py's parser."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from scoring.io.commands import add_commands

PAPER_CSV = """variant,bits,accuracy,tokens_per_s,vram_gb,energy_j,completion_tokens
fp16,16,0.4314,44.6,14.5,311.7,180
awq,4,0.4071,45.9,4.2,184.7,
nf4,4,0.3942,36.5,4.5,503.1,190
"""


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="quanttrap")
    add_commands(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    code = args.handler(args)
    out, err = capsys.readouterr()
    return code, out, err


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_si_table_from_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["si", "--input", str(_write(tmp_path, "m.csv", PAPER_CSV))], capsys)
    assert code == 0 and err == ""
    rows = {
        line.split()[0]: line for line in out.splitlines() if line[:4] in ("fp16", "awq ", "nf4 ")
    }
    assert "anchor" in rows["fp16"] and "1.000" in rows["fp16"]
    assert rows["nf4"].rstrip().endswith("full_trap +memory-only")
    assert "0.844" in rows["nf4"] and "+0.222" in rows["nf4"]
    assert rows["awq"].rstrip().endswith("accuracy_trap")
    assert "1.000 (1.688)" in rows["awq"]  # bounded SSI with the raw value beside it
    assert "scaling-law divergence: nf4 (4 bit, SI 0.844) < fp16" in out
    assert "anchor fp16" in out


def test_si_json_from_json_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = [
        {"variant": "fp16", "bits": 16, "accuracy": 0.4314, "tokens_per_s": 44.6,
         "vram_gb": 14.5, "energy_j": 311.7},
        {"variant": "nf4", "bits": 4, "accuracy": 0.3942, "tokens_per_s": 36.5,
         "vram_gb": 4.5, "energy_j": 503.1, "completion_tokens": 200},
        {"variant": "int8", "bits": 8, "accuracy": None, "tokens_per_s": 13.9,
         "vram_gb": 8.1, "energy_j": 693.35},
    ]  # fmt: skip
    path = _write(tmp_path, "m.json", json.dumps(data))
    code, out, _ = _run(["si", "--input", str(path), "--json"], capsys)
    assert code == 0
    by_name = {row["variant"]: row for row in json.loads(out)}
    nf4 = by_name["nf4"]
    for key in ("tsi", "esi", "ssi", "si", "cor", "regime", "tsi_raw", "esi_raw", "ssi_raw"):
        assert key in nf4
    assert nf4["regime"] == "full_trap"
    assert nf4["ssi"] == pytest.approx(311.7 / 503.1)
    assert nf4["esi"] == 1.0 and nf4["esi_raw"] > 1.0
    assert nf4["energy_j_per_token"] == pytest.approx(503.1 / 200)
    assert nf4["diverges_below"] == ["fp16"]
    int8 = by_name["int8"]
    assert int8["tsi"] is None and int8["si"] is None
    # Slower and hungrier, but whether it is also less accurate is unknown: not guessed.
    assert int8["regime"] == "undetermined" and int8["slower"] and int8["more_energy"]
    assert int8["missing"] == ["accuracy not measured for int8"]
    assert by_name["fp16"]["anchor"] is True


def test_si_options_change_the_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(_write(tmp_path, "m.csv", PAPER_CSV))

    def si_of(*extra: str) -> dict[str, dict[str, object]]:
        code, out, _ = _run(["si", "--input", path, "--json", *extra], capsys)
        assert code == 0
        return {row["variant"]: row for row in json.loads(out)}

    default = si_of()["nf4"]["si"]
    trust_only = si_of("--weights", "1,0,0")["nf4"]["si"]
    assert trust_only == pytest.approx(0.3942 / 0.4314)
    geometric = si_of("--policy", "geometric")["nf4"]["si"]
    assert geometric == pytest.approx((0.3942 / 0.4314 * 311.7 / 503.1) ** (1 / 3))
    assert geometric != default
    assert si_of("--lambda", "1")["nf4"]["esi_raw"] == pytest.approx(36.5 / 44.6)
    assert si_of("--tolerance", "0.03")["awq"]["regime"] == "no_trap"
    anchored = si_of("--anchor", "awq")
    assert anchored["awq"]["anchor"] is True and anchored["fp16"]["cor"] == pytest.approx(
        45.9 / 44.6 - 1
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (PAPER_CSV.replace("36.5", "fast"), "line 4: field 'tokens_per_s': expected a number"),
        (PAPER_CSV.replace("0.3942", "39.42"), "a percentage? give the fraction 0.3942"),
        (PAPER_CSV.replace("36.5", ""), "line 4: field 'tokens_per_s': a value is required"),
        (PAPER_CSV.replace("36.5", "-1"), "must be > 0"),
        (PAPER_CSV.replace(",4,0.3942", ",4.5,0.3942"), "field 'bits'"),
        (PAPER_CSV.replace("energy_j", "energy"), "unknown column(s) ['energy']"),
        ("variant,bits\nfp16,16\n", "missing column(s)"),
        (PAPER_CSV.replace("fp16,16", "fp16,4"), "name the anchor"),
        ('{"variant": "x"}', "expected a JSON list of objects"),
        ("[1, 2]", "item 0: expected an object"),
        ("[", "not valid JSON"),
        ("variant,bits,accuracy,tokens_per_s,vram_gb,energy_j\n", "no variants"),
        (
            "variant,bits,accuracy,tokens_per_s,vram_gb,energy_j,carbon_g_per_kwh\n"
            "a,16,0.5,10,10,10,300\nb,4,0.5,10,10,10,\n",
            "not for b",
        ),
    ],
)
def test_si_bad_input_exits_2_naming_row_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    path = _write(tmp_path, "bad.csv" if not text.startswith("[") else "bad.json", text)
    code, out, err = _run(["si", "--input", str(path)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("quanttrap si: error: ")
    assert needle in err
    assert "Traceback" not in err


def test_si_missing_file_and_unknown_anchor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["si", "--input", str(tmp_path / "nope.csv")], capsys)
    assert code == 2 and "cannot read" in err
    path = str(_write(tmp_path, "m.csv", PAPER_CSV))
    code, _, err = _run(["si", "--input", path, "--anchor", "int2"], capsys)
    assert code == 2 and "'int2' is not one of the variants" in err


@pytest.mark.parametrize("weights", ["1,1", "a,b,c", "-1,1,1", "0,0,0"])
def test_si_bad_weights_are_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], weights: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        _run(["si", "--input", "x.csv", "--weights", weights], capsys)
    assert exc.value.code == 2


GSM8K_REF = "He sprints 3*3=<<3*3=9>>9 times\nSo he runs 9*60=<<9*60=540>>540 meters\n#### 540"
DEEP_REF = "a <<1+1=2>>\nb <<2+1=3>>\nc <<3+1=4>>\nd <<4+1=5>>\ne <<5+1=6>>\n#### 6"


def test_grade_gsm8k_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        {"completion": "9*60 = 540\n#### 540", "reference": GSM8K_REF, "id": "q1"},
        {"completion": "He runs 540.00 meters", "reference": GSM8K_REF},
        {"completion": "#### 500", "reference": GSM8K_REF},
        {"completion": "#### 6", "reference": DEEP_REF},
    ]
    path = _write(tmp_path, "g.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    code, out, err = _run(["grade", "--dataset", "gsm8k", "--input", str(path)], capsys)
    assert code == 0 and err == ""
    assert "line 1 (q1): correct extracted=540 expected=540 [strict-match] depth=2" in out
    assert "line 2: correct extracted=540.00 expected=540 [flexible-extract]" in out
    assert "line 3: wrong   extracted=500" in out
    assert "3/4" in out and "75.00%" in out and "Wilson" in out
    assert "depth 1-2" in out and "depth 5-6" in out and "depth 3-4" not in out


def test_grade_json_by_depth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        {"completion": "#### 84", "reference": 84, "depth": 2},
        {"completion": "#### 80", "reference": "84", "depth": 2},
        {"completion": "#### 7", "reference": "7", "depth": 8},
        {"completion": "#### 7", "reference": "7"},
    ]
    path = _write(tmp_path, "m.jsonl", "\n".join(json.dumps(x) for x in lines))
    code, out, _ = _run(["grade", "--dataset", "multihop", "--input", str(path), "--json"], capsys)
    assert code == 0
    summary = json.loads(out)
    assert summary["overall"]["n"] == 4 and summary["overall"]["correct"] == 3
    assert summary["overall"]["ci_low"] < 0.75 < summary["overall"]["ci_high"]
    buckets = {b["bucket"]: (b["n"], b["correct"]) for b in summary["by_depth"]}
    assert buckets == {"1-2": (2, 1), "7+": (1, 1), "unknown": (1, 1)}
    assert [i["correct"] for i in summary["items"]] == [True, False, True, True]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "line 1: not valid JSON"),
        ('["a"]', "line 1: expected a JSON object"),
        ('{"reference": "#### 5"}', "line 1: field 'completion'"),
        ('{"completion": "5"}', "line 1: field 'reference'"),
        ('{"completion": "5", "reference": "no answer"}', "line 1: field 'reference'"),
        ('{"completion": "5", "reference": "#### 5", "depth": "deep"}', "field 'depth'"),
        ("", "no lines to grade"),
    ],
)
def test_grade_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, needle: str
) -> None:
    path = _write(tmp_path, "bad.jsonl", line)
    code, out, err = _run(["grade", "--dataset", "gsm8k", "--input", str(path)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("quanttrap grade: error: ") and needle in err


def test_grade_unknown_dataset_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _run(["grade", "--dataset", "mmlu", "--input", "x.jsonl"], capsys)
