"""Where the trap ends: the critical batch threshold B* and the critical model scale N*.

**B\\*** (measured). De-quantization is paid once per batch per decode step, so a quantized
variant's energy per query falls faster with batch size than the anchor's; B* is the batch
size where it drops below the anchor's. :func:`stratify_energy` groups finished requests by
the batch size in force when they ran (like-for-like comparison) and
:func:`critical_batch_threshold` locates the first crossing.

**N\\*** (fitted, not measured). The paper's Theorem 4.6 predicts that the efficiency trap
dissolves above a model size that grows with the per-step casting cost τ and the memory
bandwidth BW and falls with the batch size B and the bits saved:
``N* = τ·BW / (κ·B·(p_native − p_quant))`` (:func:`critical_model_scale`). Its constants
(τ, κ) are not known in advance, so in practice N* is *fitted* to COR measured at several
model sizes (:func:`fit_critical_model_scale`). A fitted N* reproduces the data it was fitted
to by construction — it is not independent evidence that the trap dissolves there (the
review's circularity objection). Only the held-out check reported with the fit, or a new
model size measured afterwards, tests it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from core.records import RequestRecord

__all__ = [
    "BatchEnergy",
    "BatchThreshold",
    "FittedScale",
    "ScaleObservation",
    "critical_batch_threshold",
    "critical_model_scale",
    "fit_critical_model_scale",
    "stratify_energy",
]


@dataclass(frozen=True, slots=True)
class BatchEnergy:
    """Mean energy of the anchor and of a variant at one batch size.

    Joules per query; joules per generated token where every request reported its token count
    (else ``None``). ``*_queries`` are the numbers of requests averaged.
    """

    batch_size: int
    anchor_j_per_query: float
    variant_j_per_query: float
    anchor_j_per_token: float | None = None
    variant_j_per_token: float | None = None
    anchor_queries: int = 1
    variant_queries: int = 1


@dataclass(frozen=True, slots=True)
class BatchThreshold:
    """Result of :func:`critical_batch_threshold`.

    ``b_star`` is the interpolated crossing, ``None`` when the variant is never below the
    anchor at the measured sizes, and also ``None`` with ``below_at_all_sizes`` when it is
    already below at the smallest one (B* is then at most that size, not located).
    ``stays_below`` says whether every larger measured size stays below after the crossing.
    """

    b_star: float | None
    below_at_all_sizes: bool
    stays_below: bool
    basis: Literal["query", "token"]
    measured_sizes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ScaleObservation:
    """COR measured for one model size (parameters), same batch size, bits and hardware."""

    parameters: float
    cor: float


@dataclass(frozen=True, slots=True)
class FittedScale:
    """A least-squares fit of ``COR(N) = a / N + b`` and the N* where it crosses zero.

    ``n_star`` is ``None`` when the fitted curve never crosses zero for positive N (``a <= 0``
    or ``b >= 0``). ``held_out_agreement`` is the fraction of observations whose COR sign is
    predicted correctly by a fit to the *other* observations (leave-one-out); ``None`` with
    fewer than three sizes, where every fit is exact and nothing is tested.
    """

    n_star: float | None
    slope: float
    intercept: float
    r_squared: float | None
    n_points: int
    held_out_agreement: float | None

    def predict_cor(self, parameters: float) -> float:
        return self.slope / parameters + self.intercept


def critical_batch_threshold(
    points: Iterable[BatchEnergy], basis: Literal["query", "token"] = "query"
) -> BatchThreshold:
    """Smallest batch size where the variant's energy falls below the anchor's.

    With ``d(B) = E_variant − E_anchor`` at the measured sizes (sorted), the first size with
    ``d < 0`` and the one before it bracket the crossing; B* interpolates ``d`` linearly in
    ``log B`` between them, because batch sizes are swept geometrically (1, 2, 4, ...) and
    energy per query behaves like ``a + b / B``. ``basis="token"`` uses joules per token,
    which removes the answer-length confound.
    """
    pts = sorted(points, key=lambda p: p.batch_size)
    sizes = tuple(p.batch_size for p in pts)
    if not pts:
        raise ValueError("no batch sizes measured")
    if len(set(sizes)) != len(sizes) or sizes[0] < 1:
        raise ValueError(f"batch sizes must be distinct and >= 1, got {sizes}")
    diffs = [_difference(p, basis) for p in pts]
    first = next((i for i, d in enumerate(diffs) if d < 0), None)
    if first is None:
        return BatchThreshold(None, False, False, basis, sizes)
    stays = all(d < 0 for d in diffs[first:])
    if first == 0:
        return BatchThreshold(None, True, stays, basis, sizes)
    d0, d1 = diffs[first - 1], diffs[first]
    t = d0 / (d0 - d1)  # in [0, 1): d0 >= 0 > d1
    lo, hi = math.log(sizes[first - 1]), math.log(sizes[first])
    return BatchThreshold(math.exp(lo + t * (hi - lo)), False, stays, basis, sizes)


def stratify_energy(
    records: Iterable[RequestRecord],
    anchor: str,
    variant: str,
    *,
    min_queries: int = 1,
) -> tuple[BatchEnergy, ...]:
    """Mean energy per query (and per token) by batch size for two variants.

    Uses successful records with both ``energy_j`` and ``batch_size``; keeps the batch sizes
    where each variant has at least ``min_queries`` of them. Energies measured by different
    methods (NVML counter, power sampling, HLI) are never mixed: a ValueError names them.
    """
    sums: dict[tuple[str, int], list[float]] = {}  # [joules, queries, tokens, token_queries]
    methods: set[str] = set()
    for r in records:
        if r.variant not in (anchor, variant) or not r.ok:
            continue
        if r.energy_j is None or r.batch_size is None:
            continue
        methods.add(r.energy_method)
        acc = sums.setdefault((r.variant, r.batch_size), [0.0, 0.0, 0.0, 0.0])
        acc[0] += r.energy_j
        acc[1] += 1
        if r.completion_tokens:
            acc[2] += r.completion_tokens
            acc[3] += 1
    if len(methods) > 1:
        raise ValueError(f"energy measured by different methods {sorted(methods)}; pick one")
    out = []
    for size in sorted({b for _, b in sums}):
        a, v = sums.get((anchor, size)), sums.get((variant, size))
        if a is None or v is None or a[1] < min_queries or v[1] < min_queries:
            continue
        out.append(
            BatchEnergy(
                batch_size=size,
                anchor_j_per_query=a[0] / a[1],
                variant_j_per_query=v[0] / v[1],
                anchor_j_per_token=_per_token(a),
                variant_j_per_token=_per_token(v),
                anchor_queries=int(a[1]),
                variant_queries=int(v[1]),
            )
        )
    return tuple(out)


def critical_model_scale(
    *,
    casting_overhead_s: float,
    bandwidth_bits_per_s: float,
    batch_size: int,
    native_bits: int,
    quantized_bits: int,
    memory_access_constant: float = 1.0,
) -> float:
    """Theorem 4.6 as restated in DESIGN.md: ``N* = τ·BW / (κ·B·(p_native − p_quant))``.

    τ is the casting latency per forward pass (s), BW the memory bandwidth (bits/s), κ the
    memory-access constant (effective-bandwidth factor). Returns a parameter count. A model
    prediction: τ and κ are not observable directly, see :func:`fit_critical_model_scale`.
    """
    saved = native_bits - quantized_bits
    if saved <= 0:
        raise ValueError("the quantized variant must have fewer bits than the native one")
    if min(casting_overhead_s, bandwidth_bits_per_s, batch_size, memory_access_constant) <= 0:
        raise ValueError("casting overhead, bandwidth, batch size and κ must be positive")
    return casting_overhead_s * bandwidth_bits_per_s / (memory_access_constant * batch_size * saved)


def fit_critical_model_scale(observations: Sequence[ScaleObservation]) -> FittedScale:
    """Fit ``COR(N) = a / N + b`` by least squares and solve ``COR(N*) = 0``.

    The form follows from the paper's memory-bound latency model at fixed batch size and
    hardware: per-hop time is ``κ·N·p/BW`` plus, for the quantized variant, a casting term
    that does not shrink with N, so ``COR = (p_q/p_native − 1) + c / N``. Both constants are
    fitted here, so ``N* = −a / b`` is an in-sample interpolation (see the module docstring).
    """
    if len({o.parameters for o in observations}) < 2:
        raise ValueError("need COR at two or more distinct model sizes to fit N*")
    if any(o.parameters <= 0 for o in observations):
        raise ValueError("model sizes must be positive")
    a, b = _fit_inverse(observations)
    cor = [o.cor for o in observations]
    mean = sum(cor) / len(cor)
    total = sum((c - mean) ** 2 for c in cor)
    resid = sum((o.cor - (a / o.parameters + b)) ** 2 for o in observations)
    r2 = None if total == 0 else 1.0 - resid / total
    return FittedScale(
        n_star=-a / b if a > 0 and b < 0 else None,
        slope=a,
        intercept=b,
        r_squared=r2,
        n_points=len(observations),
        held_out_agreement=_leave_one_out(observations),
    )


def _fit_inverse(obs: Sequence[ScaleObservation]) -> tuple[float, float]:
    xs = [1.0 / o.parameters for o in obs]
    ys = [o.cor for o in obs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    return slope, my - slope * mx


def _leave_one_out(obs: Sequence[ScaleObservation]) -> float | None:
    if len({o.parameters for o in obs}) < 3:
        return None
    hits = tried = 0
    for i, held in enumerate(obs):
        rest = [o for j, o in enumerate(obs) if j != i]
        if len({o.parameters for o in rest}) < 2:
            continue
        a, b = _fit_inverse(rest)
        tried += 1
        hits += (a / held.parameters + b > 0) == (held.cor > 0)
    return hits / tried if tried else None


def _difference(p: BatchEnergy, basis: Literal["query", "token"]) -> float:
    if basis == "query":
        return p.variant_j_per_query - p.anchor_j_per_query
    if p.variant_j_per_token is None or p.anchor_j_per_token is None:
        raise ValueError(f"batch size {p.batch_size}: energy per token not measured")
    return p.variant_j_per_token - p.anchor_j_per_token


def _per_token(acc: list[float]) -> float | None:
    # Only when every request of this cell reported its completion tokens.
    return acc[0] / acc[2] if acc[3] == acc[1] and acc[2] > 0 else None
