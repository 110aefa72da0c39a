"""The checked-in dashboards and rules are what the code renders now, in both places."""

from __future__ import annotations

from pathlib import Path

import pytest

from grafana.export import REPO_TARGETS, out_of_sync, render_all
from grafana.series import Series
from quanttrap.cli import main


@pytest.mark.parametrize("target", REPO_TARGETS, ids=lambda p: p.parent.name + "/" + p.name)
def test_checked_in_files_are_in_sync_with_the_code(target: Path) -> None:
    stale = out_of_sync(render_all(), target)
    assert not stale, "regenerate with `python -m grafana.generate`: " + ", ".join(stale)


def _cli(*argv: str) -> int:
    return main(list(argv))  # the real `quanttrap` command, as users run it


def test_export_writes_what_check_then_accepts(tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert _cli("export", "--out", str(out)) == 0
    for rel, text in render_all().items():
        assert (out / rel).read_text(encoding="utf-8") == text
    assert _cli("export", "--out", str(out), "--check") == 0


def test_check_reports_edited_and_left_over_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    assert _cli("export", "--out", str(out)) == 0
    rules = out / "rules" / "quanttrap-alerts.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("for: 5m", "for: 1m"))
    (out / "dashboards" / "old-name.json").write_text("{}")
    assert _cli("export", "--out", str(out), "--check") == 1
    err = capsys.readouterr().err
    assert "quanttrap-alerts.yaml" in err and "old-name.json (not generated any more)" in err


def test_export_takes_the_scoring_settings_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "quanttrap.yaml"
    config.write_text(
        "models:\n"
        "  - name: demo\n"
        "    anchor: bf16\n"
        "    routing: {primary: bf16}\n"
        "    variants:\n"
        "      - {name: bf16, bits: 16, backend: {kind: openai, base_url: 'http://x:1/v1'}}\n"
        "      - {name: nf4, bits: 4, backend: {kind: openai, base_url: 'http://x:2/v1'}}\n"
        "scoring:\n"
        "  window_s: 600\n"
        "  economic_lambda: 1.0\n"
        "  trap: {min_graded: 30}\n"
        "  memory_gb: {demo: {bf16: 14.5, nf4: 5}}\n"
    )
    out = tmp_path / "export"
    code = _cli("export", "--out", str(out), "--config", str(config), "--alert-for", "1s")
    assert code == 0
    recording = (out / "rules" / "quanttrap-recording.yaml").read_text(encoding="utf-8")
    alerts = (out / "rules" / "quanttrap-alerts.yaml").read_text(encoding="utf-8")
    assert "[10m]" in recording and "[15m]" not in recording
    assert ">= 30" in recording  # the graded-evaluation gate
    # Declared memory reaches the rules through the proxies' gauge, never as a constant.
    assert Series.VARIANT_MEMORY in recording and "vector(" not in recording
    assert "for: 1s" in alerts and "for: 5m" not in alerts
    # lambda = 1: the economic pillar is the throughput gain alone (no memory term)
    economic = recording.split("quanttrap_pillar_name: economic")[0].rsplit("record:", 1)[1]
    assert "memory" not in economic


def test_export_rejects_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("models: []\n")
    assert _cli("export", "--out", str(tmp_path / "x"), "--config", str(config)) == 2
    assert "models" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_export_without_the_sdk_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    for name in [m for m in sys.modules if m.startswith(("grafana_foundation_sdk", "grafana."))]:
        if name != "grafana.commands":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "grafana_foundation_sdk", None)  # import fails
    assert _cli("export", "--out", str(tmp_path / "x")) == 2
    assert "pip install 'quanttrap[grafana]'" in capsys.readouterr().err
