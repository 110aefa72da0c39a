"""Quantization-trap regimes and scaling-law divergence.

A quantized variant is compared with the anchor on three questions, each decided with a
tolerance so that measurement noise of a few percent does not flip the verdict:

- **less accurate** ⇔ ``Acc_v < Acc_a − δ`` (δ = ``Tolerances.accuracy``, absolute, in
  accuracy fraction: 0.01 = one percentage point). "At least as accurate" is its negation.
- **slower** ⇔ ``TPS_v < TPS_a × (1 − speed)`` (``Tolerances.speed``, relative).
- **more energy** ⇔ ``CAES_v > CAES_a × (1 + energy)`` (``Tolerances.energy``, relative;
  energy per query, carbon-adjusted when both intensities are given).

The four regimes partition the outcomes (DESIGN.md section 2):

=================  ==============  =================================
regime             less accurate   slower or more energy per query
=================  ==============  =================================
``full_trap``      yes             yes
``efficiency_trap`` no             yes
``accuracy_trap``  yes             no  (the AWQ case: fast, cheap, wrong more often)
``no_trap``        no              no  (the trap dissolved)
=================  ==============  =================================

``anchor`` labels the anchor itself; ``undetermined`` means an input needed to answer one of
the questions was not measured (never guessed). ``memory_only_victory`` is set when peak
VRAM is the only thing that improved beyond tolerance: not faster, not less energy, not
more accurate — typically alongside ``efficiency_trap``.

These are point-estimate verdicts; whether a difference is statistically significant is a
separate question answered with :mod:`scoring.stats` (the live alerting gate).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from scoring.pillars import VariantMeasurement, energy_pillar

__all__ = [
    "Divergence",
    "Regime",
    "RegimeVerdict",
    "Tolerances",
    "classify_regime",
    "scaling_law_divergences",
]

Regime = Literal[
    "anchor", "full_trap", "efficiency_trap", "accuracy_trap", "no_trap", "undetermined"
]


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Dead bands for the regime questions.

    ``accuracy`` is absolute (accuracy fraction); ``speed``, ``energy`` and ``memory`` are
    relative (0.05 = 5 %). Zero means plain comparisons.
    """

    accuracy: float = 0.01
    speed: float = 0.0
    energy: float = 0.0
    memory: float = 0.0

    def __post_init__(self) -> None:
        for name in ("accuracy", "speed", "energy", "memory"):
            value = getattr(self, name)
            if not math.isfinite(value) or not 0.0 <= value < 1.0:
                raise ValueError(f"tolerance {name} must be in [0, 1), got {value}")


@dataclass(frozen=True, slots=True)
class RegimeVerdict:
    """The regime of one variant and the answers it was derived from (``None`` = unknown)."""

    regime: Regime
    less_accurate: bool | None
    slower: bool | None
    more_energy: bool | None
    memory_only_victory: bool | None


@dataclass(frozen=True, slots=True)
class Divergence:
    """A scaling-law divergence: ``lower`` has fewer bits than ``higher`` and a lower SI."""

    lower: str
    lower_bits: int
    higher: str
    higher_bits: int
    lower_si: float
    higher_si: float

    @property
    def si_gap(self) -> float:
        return self.higher_si - self.lower_si


def classify_regime(
    anchor: VariantMeasurement,
    variant: VariantMeasurement,
    tolerances: Tolerances | None = None,
) -> RegimeVerdict:
    """Classify ``variant`` against ``anchor`` (see the module docstring for the rules)."""
    tol = tolerances if tolerances is not None else Tolerances()
    if variant is anchor or variant.name == anchor.name:
        return RegimeVerdict("anchor", False, False, False, False)

    less_accurate = more_accurate = None
    if anchor.accuracy is not None and variant.accuracy is not None:
        less_accurate = variant.accuracy < anchor.accuracy - tol.accuracy
        more_accurate = variant.accuracy > anchor.accuracy + tol.accuracy

    slower = variant.tokens_per_s < anchor.tokens_per_s * (1.0 - tol.speed)
    faster = variant.tokens_per_s > anchor.tokens_per_s * (1.0 + tol.speed)

    more_energy = less_energy = None
    if anchor.energy_j_per_query is not None and variant.energy_j_per_query is not None:
        # SSI = CAES_a / CAES_v, so "CAES_v > CAES_a (1 + tol)" is "SSI < 1 / (1 + tol)".
        ssi = energy_pillar(
            anchor.energy_j_per_query,
            variant.energy_j_per_query,
            anchor.carbon_g_per_kwh,
            variant.carbon_g_per_kwh,
        )
        more_energy = ssi < 1.0 / (1.0 + tol.energy)
        less_energy = ssi > 1.0 / (1.0 - tol.energy)

    less_memory = None
    if anchor.vram_gb is not None and variant.vram_gb is not None:
        less_memory = variant.vram_gb < anchor.vram_gb * (1.0 - tol.memory)

    inefficient = _or3(slower, more_energy)
    regime: Regime
    if less_accurate is None or inefficient is None:
        regime = "undetermined"
    elif less_accurate:
        regime = "full_trap" if inefficient else "accuracy_trap"
    else:
        regime = "efficiency_trap" if inefficient else "no_trap"

    memory_only = _and3(less_memory, not faster, _not3(less_energy), _not3(more_accurate))
    return RegimeVerdict(regime, less_accurate, slower, more_energy, memory_only)


def scaling_law_divergences(
    variants: Iterable[tuple[str, int, float | None]],
) -> tuple[Divergence, ...]:
    """Every pair (fewer bits, more bits) where the variant with fewer bits has a lower SI.

    ``variants`` are ``(name, bits, si)``; variants without an SI, and pairs with equal bits,
    are not compared. The linear-scaling intuition says fewer bits should never score lower;
    each returned pair is a local ∂SI/∂p > 0, i.e. a quantization trap between those two.
    Pairs are ordered by (lower bits, higher bits, names).
    """
    known: Sequence[tuple[str, int, float]] = sorted(
        ((n, b, si) for n, b, si in variants if si is not None), key=lambda t: (t[1], t[0])
    )
    out: list[Divergence] = []
    for i, (lo_name, lo_bits, lo_si) in enumerate(known):
        for hi_name, hi_bits, hi_si in known[i + 1 :]:
            if hi_bits > lo_bits and lo_si < hi_si:
                out.append(Divergence(lo_name, lo_bits, hi_name, hi_bits, lo_si, hi_si))
    return tuple(out)


def _not3(value: bool | None) -> bool | None:
    return None if value is None else not value


def _or3(a: bool | None, b: bool | None) -> bool | None:
    """Kleene OR: true if either is true, unknown if neither is true and one is unknown."""
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def _and3(*values: bool | None) -> bool | None:
    """Kleene AND: false if any is false, unknown if none is false and one is unknown."""
    if any(v is False for v in values):
        return False
    if any(v is None for v in values):
        return None
    return True
