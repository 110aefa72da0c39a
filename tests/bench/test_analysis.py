"""The bench's maths on hand-made windows: spreads, energy per query, paired COR, B*, accuracy."""

from __future__ import annotations

import math

import pytest

from bench.analysis import (
    Spread,
    accuracy_table,
    batch_verdict,
    cor_by_batch,
    measurements_at,
    scorecards,
    summarise_cells,
)
from bench.records import AccuracyItem, Window


def _w(
    variant: str,
    batch: int,
    repeat: int,
    *,
    tokens: int = 100,
    seconds: float = 5.0,
    energy: float | None = 100.0,
    hli: float | None = None,
    completed: tuple[int, ...] = (),
    peak: int | None = 2_000_000_000,
) -> Window:
    return Window(
        variant=variant,
        batch_size=batch,
        repeat=repeat,
        seconds=seconds,
        tokens=tokens,
        completed_tokens=completed,
        mean_batch=float(batch),
        energy_j=energy,
        energy_method="nvml_counter" if energy is not None else "none",
        hli_j=hli,
        peak_bytes=peak,
        memory_method="test",
    )


def test_spread_is_mean_sample_sd_min_max() -> None:
    s = Spread.of([1.0, 2.0, 3.0, 6.0])
    assert s.mean == 3.0
    assert s.sd == pytest.approx(math.sqrt(14.0 / 3.0))
    assert (s.low, s.high, s.n) == (1.0, 6.0, 4)
    assert Spread.of([5.0]).sd == 0.0
    with pytest.raises(ValueError):
        Spread.of([])


def test_fixed_lengths_energy_per_query_is_per_token_times_budget() -> None:
    windows = [_w("bf16", 1, r, tokens=100, energy=50.0 * r) for r in (1, 2, 3)]
    [cell] = summarise_cells(windows, lengths="fixed", fixed_tokens=48)
    assert cell.j_per_token is not None and cell.j_per_query is not None
    assert cell.j_per_token.mean == pytest.approx(1.0)  # 0.5, 1.0, 1.5 J/token
    assert cell.j_per_token.sd == pytest.approx(0.5)
    assert cell.j_per_query.mean == pytest.approx(48.0)
    assert cell.j_per_query.sd == pytest.approx(24.0)
    assert cell.tokens_per_s.mean == pytest.approx(20.0)


def test_real_lengths_use_the_answers_that_finished() -> None:
    windows = [_w("fp32", 4, 1, completed=(10, 30)), _w("fp32", 4, 2, completed=(20,))]
    [cell] = summarise_cells(windows, lengths="real")
    assert cell.mean_real_length == pytest.approx(20.0)
    assert cell.j_per_query is not None
    assert cell.j_per_query.mean == pytest.approx(1.0 * 20.0)


def test_unmeasured_energy_stays_unmeasured() -> None:
    windows = [_w("fp32", 1, r, energy=None) for r in (1, 2, 3)]
    [cell] = summarise_cells(windows, lengths="fixed", fixed_tokens=16)
    assert cell.j_per_token is None and cell.j_per_query is None
    [m] = measurements_at([cell], 1)
    assert m.energy_j_per_query is None
    # A partial set of repeats is not averaged as if complete.
    mixed = [_w("fp32", 1, 1), _w("fp32", 1, 2, energy=None)]
    assert summarise_cells(mixed, lengths="fixed", fixed_tokens=16)[0].j_per_token is None


def test_cor_is_paired_repeat_by_repeat() -> None:
    # The machine doubles its speed between repeats; the variant is always half the anchor.
    windows = [
        _w("bf16", 1, 1, tokens=100),
        _w("nf4", 1, 1, tokens=50),
        _w("bf16", 1, 2, tokens=200),
        _w("nf4", 1, 2, tokens=100),
    ]
    cor = cor_by_batch(windows, "bf16", "nf4")
    assert cor[1].mean == pytest.approx(1.0)
    assert cor[1].sd == pytest.approx(0.0)  # unpaired means would give 150/75 - 1 = 1 too,
    assert cor[1].n == 2  # but the spread of unpaired ratios would not be 0


def _energy_windows(ratios: dict[int, float], repeats: int = 3) -> list[Window]:
    out = []
    for r in range(1, repeats + 1):
        for b, ratio in ratios.items():
            out.append(_w("bf16", b, r, energy=100.0))
            out.append(_w("int8", b, r, energy=100.0 * ratio * (1 + 0.01 * r)))
    return out


def test_b_star_interpolates_in_log_batch_size() -> None:
    windows = _energy_windows({1: 2.0, 4: 0.5, 16: 0.4})
    cells = summarise_cells(windows, lengths="fixed", fixed_tokens=10)
    v = batch_verdict(windows, cells, "bf16", "int8")
    assert v is not None and v.kind == "crossing" and v.stays_below
    d0 = 2.0 * 1.02 - 1.0  # mean over repeats of the ratios (1.01, 1.02, 1.03) x 2 - 1
    d1 = 0.5 * 1.02 - 1.0
    expected = math.exp(math.log(4) * d0 / (d0 - d1))
    assert v.b_star == pytest.approx(expected, rel=1e-6)
    assert all(b is not None for b in v.per_repeat) and len(v.per_repeat) == 3
    assert min(v.per_repeat) <= v.b_star <= max(v.per_repeat)  # type: ignore[type-var]
    assert v.text.startswith("B* = ")


def test_no_crossing_says_whether_the_trap_deepens() -> None:
    windows = _energy_windows({1: 1.2, 4: 1.4, 64: 1.6})
    cells = summarise_cells(windows, lengths="fixed", fixed_tokens=10)
    v = batch_verdict(windows, cells, "bf16", "int8")
    assert v is not None and v.kind == "deepens" and v.b_star is None
    assert "deepens" in v.text and "up to 64" in v.text
    windows = _energy_windows({1: 3.0, 4: 2.0, 64: 1.5})
    cells = summarise_cells(windows, lengths="fixed", fixed_tokens=10)
    v = batch_verdict(windows, cells, "bf16", "int8")
    assert v is not None and v.kind == "no_crossing" and "no B* up to 64" in v.text
    windows = _energy_windows({1: 0.8, 4: 0.7})
    cells = summarise_cells(windows, lengths="fixed", fixed_tokens=10)
    v = batch_verdict(windows, cells, "bf16", "int8")
    assert v is not None and v.kind == "below_everywhere" and v.stays_below
    assert v.text.startswith("no trap at any measured batch size")
    windows = _energy_windows({1: 0.8, 4: 0.9, 64: 1.2})
    cells = summarise_cells(windows, lengths="fixed", fixed_tokens=10)
    v = batch_verdict(windows, cells, "bf16", "int8")
    assert v is not None and v.kind == "below_everywhere" and not v.stays_below
    assert v.text.startswith("no single B*") and "B = 64" in v.text


def test_b_star_needs_energy() -> None:
    windows = [_w(v, b, 1, energy=None) for v in ("bf16", "int8") for b in (1, 4)]
    cells = summarise_cells(windows, lengths="fixed", fixed_tokens=10)
    assert batch_verdict(windows, cells, "bf16", "int8") is None


def test_scorecards_use_one_energy_method_only() -> None:
    windows = [
        _w("bf16", 1, 1, tokens=100, energy=100.0, hli=700.0, peak=4_000_000_000),
        _w("nf4", 1, 1, tokens=50, energy=150.0, hli=700.0, peak=1_000_000_000),
    ]
    cells = summarise_cells(windows, lengths="fixed", fixed_tokens=10)
    nvml = scorecards(cells, "bf16")[1].score("nf4")
    hli = scorecards(cells, "bf16", energy="hli")[1].score("nf4")
    assert nvml.cor == pytest.approx(1.0)
    assert nvml.raw.ssi == pytest.approx((100 / 100) / (150 / 50))  # J/token ratio
    assert hli.raw.ssi == pytest.approx((700 / 100) / (700 / 50))
    assert nvml.residency_gain == pytest.approx(4.0)
    # No accuracy (random weights): SI and regime are unavailable, not guessed.
    assert nvml.si is None and nvml.verdict.regime == "undetermined"
    assert nvml.verdict.slower and nvml.verdict.more_energy
    with_acc = scorecards(cells, "bf16", accuracy={"bf16": 0.8, "nf4": 0.6})[1].score("nf4")
    assert with_acc.verdict.regime == "full_trap"
    assert with_acc.si is not None


def test_accuracy_by_depth_and_bucket() -> None:
    items = [
        AccuracyItem("nf4", d, d < 3 or i % 2 == 0, 20) for d in (1, 2, 3, 4) for i in range(4)
    ]
    t = accuracy_table(items, "nf4")
    assert t is not None
    assert t.n == 16 and t.overall.estimate == pytest.approx(12 / 16)
    assert t.by_depth[1][:2] == (4, 4) and t.by_depth[3][:2] == (2, 4)
    assert t.by_bucket["1-2"][:2] == (8, 8) and t.by_bucket["3-4"][:2] == (4, 8)
    assert t.by_depth[3][2].low < 0.5 < t.by_depth[3][2].high
    assert accuracy_table(items, "bf16") is None
