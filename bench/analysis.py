"""The bench's maths: spreads over repeats, COR by batch size, SI tables and B* verdicts.

Pure functions over :mod:`bench.records`; the SI, pillars, regimes and B* themselves come from
``scoring`` (:func:`scoring.scorecard.score_variants`,
:func:`scoring.thresholds.critical_batch_threshold`), so the bench and the live proxy compute
them the same way.

Method:

- **Throughput** of a window = tokens generated in it / its length. **Energy per token** =
  the window's NVML energy / its tokens. **Energy per query** = energy per token x tokens per
  query, where tokens per query is the fixed budget (``lengths="fixed"``) or the mean real
  length of the answers that finished in the cell's windows (``lengths="real"``): answer
  length confounds energy per query (a variant that rambles pays more per query at the same
  efficiency), so the JSON always carries both per-token and per-query figures.
- **Spread**: each figure is summarised over the repeats (mean, sample standard deviation,
  min, max). **COR** is computed per repeat from the anchor's and the variant's windows of that
  repeat (run back to back, so slow drift such as heating cancels) and then summarised.
- **B\\***: the crossing of the variant's and the anchor's energy per query over batch sizes
  (scoring's interpolation in log B), from the means and from each repeat separately; the
  repeats' range is its uncertainty. When there is no crossing the verdict says whether the
  variant was already cheaper at the smallest size, or whether its energy ratio to the anchor
  grows with batch size ("the trap deepens") or not ("no B* up to the largest size").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bench.records import AccuracyItem, Window
from scoring.hops import DEPTH_BUCKETS, depth_bucket
from scoring.pillars import SIConfig, VariantMeasurement, casting_overhead_ratio
from scoring.scorecard import Scorecard, score_variants
from scoring.stats import Interval, wilson_interval
from scoring.thresholds import BatchEnergy, critical_batch_threshold

__all__ = [
    "BITS",
    "AccuracyTable",
    "BatchVerdict",
    "CellSummary",
    "EnergyKind",
    "Spread",
    "accuracy_table",
    "batch_verdict",
    "cor_by_batch",
    "measurements_at",
    "scorecards",
    "summarise_cells",
]

BITS: Mapping[str, int] = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8, "nf4": 4}
"""Weight bits of each precision the engine serves."""

EnergyKind = Literal["nvml", "hli"]


@dataclass(frozen=True, slots=True)
class Spread:
    """A figure over repeats: mean, sample standard deviation (0 for one value), min, max."""

    mean: float
    sd: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        xs = list(values)
        if not xs:
            raise ValueError("no values to summarise")
        mean = math.fsum(xs) / len(xs)
        var = math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
        return cls(mean, math.sqrt(var), min(xs), max(xs), len(xs))


@dataclass(frozen=True, slots=True)
class CellSummary:
    """One variant at one batch size, over its repeats. ``None``: not measured."""

    variant: str
    batch_size: int
    tokens_per_s: Spread
    tokens_per_query: float | None
    """Fixed budget, or mean real answer length (see ``lengths``)."""
    lengths: Literal["fixed", "real"]
    mean_real_length: float | None
    """Mean length of the answers that finished inside the windows (``None``: none did)."""
    j_per_token: Spread | None
    j_per_query: Spread | None
    hli_j_per_token: Spread | None
    hli_j_per_query: Spread | None
    peak_bytes: int | None
    """Largest over the repeats."""
    mean_batch: float | None
    energy_method: str
    memory_method: str


@dataclass(frozen=True, slots=True)
class BatchVerdict:
    """Where a variant's energy per query crosses below the anchor's, and how sure that is."""

    variant: str
    anchor: str
    kind: Literal["crossing", "below_everywhere", "deepens", "no_crossing"]
    b_star: float | None
    """From the mean energies; ``None`` unless ``kind == "crossing"``."""
    per_repeat: tuple[float | None, ...]
    """B* from each repeat alone (``None`` where that repeat had no crossing)."""
    stays_below: bool
    ratio_by_batch: Mapping[int, float]
    """Variant / anchor energy per query (means) at each batch size."""
    energy: EnergyKind

    @property
    def text(self) -> str:
        sizes = sorted(self.ratio_by_batch)
        largest = sizes[-1] if sizes else 0
        if self.kind == "crossing" and self.b_star is not None:
            found = [b for b in self.per_repeat if b is not None]
            spread = ""
            if found:
                spread = f" (repeats: {min(found):.1f} to {max(found):.1f}"
                missed = len(self.per_repeat) - len(found)
                spread += (
                    f", {missed} of {len(self.per_repeat)} without a crossing)" if missed else ")"
                )
            tail = "" if self.stays_below else "; not below at every larger size"
            return f"B* = {self.b_star:.1f}{spread}{tail}"
        if self.kind == "below_everywhere" and self.stays_below:
            return (
                f"no trap at any measured batch size: cheaper than {self.anchor} "
                f"from B = {sizes[0]}"
            )
        if self.kind == "below_everywhere":
            over = [b for b in sizes if self.ratio_by_batch[b] >= 1.0]
            return (
                f"no single B*: cheaper than {self.anchor} at B = {sizes[0]} but not at "
                f"B = {', '.join(map(str, over))} (energy ratio "
                f"{self.ratio_by_batch[over[0]]:.2f} at B = {over[0]})"
            )
        if self.kind == "deepens":
            return (
                f"no B* up to {largest}: the trap deepens with batch size (energy ratio "
                f"{self.ratio_by_batch[sizes[0]]:.2f} at B = {sizes[0]}, "
                f"{self.ratio_by_batch[largest]:.2f} at B = {largest})"
            )
        return (
            f"no B* up to {largest} (energy ratio {self.ratio_by_batch[sizes[0]]:.2f} at "
            f"B = {sizes[0]}, {self.ratio_by_batch[largest]:.2f} at B = {largest})"
        )


@dataclass(frozen=True, slots=True)
class AccuracyTable:
    """Accuracy of one variant overall, by depth and by the paper's depth buckets (Wilson 95%)."""

    variant: str
    overall: Interval
    n: int
    by_depth: Mapping[int, tuple[int, int, Interval]]
    """depth -> (correct, total, interval)."""
    by_bucket: Mapping[str, tuple[int, int, Interval]]
    mean_completion_tokens: float


def summarise_cells(
    windows: Sequence[Window],
    *,
    lengths: Literal["fixed", "real"],
    fixed_tokens: int | None = None,
) -> tuple[CellSummary, ...]:
    """One :class:`CellSummary` per (variant, batch size), in first-seen order."""
    if lengths == "fixed" and (fixed_tokens is None or fixed_tokens < 1):
        raise ValueError("lengths='fixed' needs the fixed number of new tokens")
    groups: dict[tuple[str, int], list[Window]] = {}
    for w in windows:
        groups.setdefault((w.variant, w.batch_size), []).append(w)
    out = []
    for (variant, size), ws in groups.items():
        finished = [t for w in ws for t in w.completed_tokens]
        real = math.fsum(finished) / len(finished) if finished else None
        per_query = float(fixed_tokens) if lengths == "fixed" and fixed_tokens else real
        nvml = _per_token([w.energy_j for w in ws], ws)
        hli = _per_token([w.hli_j for w in ws], ws)
        peaks = [w.peak_bytes for w in ws if w.peak_bytes is not None]
        batches = [w.mean_batch for w in ws if w.mean_batch is not None]
        methods = sorted({w.energy_method for w in ws})
        out.append(
            CellSummary(
                variant=variant,
                batch_size=size,
                tokens_per_s=Spread.of(w.tokens_per_s for w in ws),
                tokens_per_query=per_query,
                lengths=lengths,
                mean_real_length=real,
                j_per_token=nvml,
                j_per_query=_scaled(nvml, per_query),
                hli_j_per_token=hli,
                hli_j_per_query=_scaled(hli, per_query),
                peak_bytes=max(peaks) if peaks else None,
                mean_batch=math.fsum(batches) / len(batches) if batches else None,
                energy_method="+".join(methods),
                memory_method=ws[0].memory_method,
            )
        )
    return tuple(out)


def cor_by_batch(windows: Sequence[Window], anchor: str, variant: str) -> dict[int, Spread]:
    """COR of ``variant`` at each batch size, paired repeat by repeat with the anchor."""
    tps = {(w.variant, w.batch_size, w.repeat): w.tokens_per_s for w in windows}
    out: dict[int, Spread] = {}
    for size in sorted({w.batch_size for w in windows}):
        values = [
            casting_overhead_ratio(tps[(anchor, size, r)], tps[(variant, size, r)])
            for (v, b, r) in tps
            if v == variant and b == size and (anchor, size, r) in tps
        ]
        if values:
            out[size] = Spread.of(values)
    return out


def measurements_at(
    cells: Sequence[CellSummary],
    batch_size: int,
    *,
    accuracy: Mapping[str, float] | None = None,
    energy: EnergyKind = "nvml",
    bits: Mapping[str, int] = BITS,
) -> list[VariantMeasurement]:
    """The scoring inputs at one batch size: mean tok/s, peak GB, J/query, accuracy.

    ``energy`` picks the NVML or the HLI figures, never a mix. Peak memory in GB (1e9 bytes).
    """
    out = []
    for c in cells:
        if c.batch_size != batch_size:
            continue
        per_query = c.j_per_query if energy == "nvml" else c.hli_j_per_query
        out.append(
            VariantMeasurement(
                name=c.variant,
                bits=bits[c.variant],
                tokens_per_s=c.tokens_per_s.mean,
                accuracy=None if accuracy is None else accuracy.get(c.variant),
                vram_gb=None if c.peak_bytes is None else c.peak_bytes / 1e9,
                energy_j_per_query=None if per_query is None else per_query.mean,
                completion_tokens_per_query=c.tokens_per_query,
            )
        )
    return out


def scorecards(
    cells: Sequence[CellSummary],
    anchor: str,
    *,
    accuracy: Mapping[str, float] | None = None,
    energy: EnergyKind = "nvml",
    config: SIConfig | None = None,
) -> dict[int, Scorecard]:
    """The SI table (pillars, SI, regime) at every batch size, against ``anchor``."""
    sizes = sorted({c.batch_size for c in cells})
    return {
        b: score_variants(
            measurements_at(cells, b, accuracy=accuracy, energy=energy),
            anchor=anchor,
            config=config,
        )
        for b in sizes
    }


def batch_verdict(
    windows: Sequence[Window],
    cells: Sequence[CellSummary],
    anchor: str,
    variant: str,
    *,
    energy: EnergyKind = "nvml",
) -> BatchVerdict | None:
    """B* of ``variant`` against ``anchor`` with its per-repeat spread; ``None`` without energy.

    Energy per query is compared; with a fixed token budget that equals comparing energy per
    token. Needs the anchor and the variant at two or more batch sizes to speak of a trend.
    """
    mean_points = _points(
        {
            (c.variant, c.batch_size): _mean(
                c.j_per_query if energy == "nvml" else c.hli_j_per_query
            )
            for c in cells
        },
        anchor,
        variant,
    )
    if not mean_points:
        return None
    mean = critical_batch_threshold(mean_points)
    per_query = {(c.variant, c.batch_size): c.tokens_per_query for c in cells}
    repeats = sorted({w.repeat for w in windows})
    per_repeat: list[float | None] = []
    for r in repeats:
        values: dict[tuple[str, int], float | None] = {}
        for w in windows:
            if w.repeat != r:
                continue
            joules = w.energy_j if energy == "nvml" else w.hli_j
            tpq = per_query.get((w.variant, w.batch_size))
            values[(w.variant, w.batch_size)] = (
                None if joules is None or tpq is None or w.tokens == 0 else joules / w.tokens * tpq
            )
        pts = _points(values, anchor, variant)
        per_repeat.append(critical_batch_threshold(pts).b_star if pts else None)
    ratios = {p.batch_size: p.variant_j_per_query / p.anchor_j_per_query for p in mean_points}
    sizes = sorted(ratios)
    kind: Literal["crossing", "below_everywhere", "deepens", "no_crossing"]
    if mean.b_star is not None:
        kind = "crossing"
    elif mean.below_at_all_sizes:
        kind = "below_everywhere"
    elif len(sizes) > 1 and ratios[sizes[-1]] > ratios[sizes[0]]:
        kind = "deepens"
    else:
        kind = "no_crossing"
    return BatchVerdict(
        variant=variant,
        anchor=anchor,
        kind=kind,
        b_star=mean.b_star,
        per_repeat=tuple(per_repeat),
        stays_below=mean.stays_below,
        ratio_by_batch=ratios,
        energy=energy,
    )


def accuracy_table(items: Sequence[AccuracyItem], variant: str) -> AccuracyTable | None:
    """Accuracy of ``variant`` with Wilson 95% intervals; ``None`` if it answered nothing."""
    mine = [i for i in items if i.variant == variant]
    if not mine:
        return None
    correct = sum(i.correct for i in mine)
    by_depth: dict[int, tuple[int, int, Interval]] = {}
    for depth in sorted({i.depth for i in mine if i.depth is not None}):
        group = [i for i in mine if i.depth == depth]
        right = sum(i.correct for i in group)
        by_depth[depth] = (right, len(group), wilson_interval(right, len(group)))
    by_bucket: dict[str, tuple[int, int, Interval]] = {}
    for bucket in DEPTH_BUCKETS:
        group = [i for i in mine if depth_bucket(i.depth) == bucket]
        if group:
            right = sum(i.correct for i in group)
            by_bucket[bucket] = (right, len(group), wilson_interval(right, len(group)))
    return AccuracyTable(
        variant=variant,
        overall=wilson_interval(correct, len(mine)),
        n=len(mine),
        by_depth=by_depth,
        by_bucket=by_bucket,
        mean_completion_tokens=math.fsum(i.completion_tokens for i in mine) / len(mine),
    )


def _per_token(joules: Sequence[float | None], windows: Sequence[Window]) -> Spread | None:
    # All repeats or none: a spread over a subset would hide the missing ones.
    if any(j is None for j in joules) or any(w.tokens == 0 for w in windows):
        return None
    return Spread.of(j / w.tokens for j, w in zip(joules, windows, strict=True) if j is not None)


def _scaled(spread: Spread | None, factor: float | None) -> Spread | None:
    if spread is None or factor is None:
        return None
    return Spread(
        spread.mean * factor,
        spread.sd * factor,
        spread.low * factor,
        spread.high * factor,
        spread.n,
    )


def _mean(spread: Spread | None) -> float | None:
    return None if spread is None else spread.mean


def _points(
    values: Mapping[tuple[str, int], float | None], anchor: str, variant: str
) -> list[BatchEnergy]:
    sizes = sorted({b for (_, b) in values})
    points = []
    for b in sizes:
        a, v = values.get((anchor, b)), values.get((variant, b))
        if a is None or v is None:
            continue
        points.append(BatchEnergy(batch_size=b, anchor_j_per_query=a, variant_j_per_query=v))
    return points
