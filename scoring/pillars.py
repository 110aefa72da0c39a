"""The Sustainability Index: per-variant measurements, the three pillars and their aggregate.

Spec: DESIGN.md section 2. For a variant ``v`` against the anchor ``a`` (native precision):

- latency per hop = 1 / TPS (one atomic hop = one generated token);
- COR = TPS_a / TPS_v - 1 (> 0: the variant is slower; > 1: casting dominates);
- TSI = Acc_v / Acc_a (trust);
- ESI = 1 / (λ / G_tps + (1 - λ) / G_vram), G_tps = TPS_v / TPS_a, G_vram = VRAM_a / VRAM_v;
- SSI = CAES_a / CAES_v, CAES = E_q × carbon intensity (on one grid: E_a / E_v);
- SI = Σ w·pillar (``linear``) or Π pillar^w (``geometric``) over pillars clipped to [0, 1].

The clipping reproduces the paper's published SI values (it bounds the sustainability space);
the raw pillars are kept too so that a variant that beats the anchor shows by how much.
Weights are normalised to sum to 1, so the anchor's SI is exactly 1 under either policy.
Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "JOULES_PER_KWH",
    "Pillars",
    "Policy",
    "SIConfig",
    "VariantMeasurement",
    "carbon_adjusted_energy_g",
    "casting_overhead_ratio",
    "clip_unit",
    "economic_pillar",
    "energy_per_token_j",
    "energy_pillar",
    "latency_per_hop_s",
    "residency_gain",
    "sustainability_index",
    "throughput_gain",
    "trust_pillar",
]

JOULES_PER_KWH = 3.6e6

Policy = Literal["linear", "geometric"]


@dataclass(frozen=True, slots=True)
class SIConfig:
    """How pillars are combined: weights (trust, economic, energy), λ and the policy.

    Weights must be non-negative with a positive sum; they are normalised, so (1, 1, 1) and
    (1/3, 1/3, 1/3) mean the same. ``economic_lambda`` (λ) weighs throughput against memory
    residency inside ESI: 1 uses throughput only, 0 memory only.
    """

    trust_weight: float = 1.0 / 3.0
    economic_weight: float = 1.0 / 3.0
    energy_weight: float = 1.0 / 3.0
    economic_lambda: float = 0.5
    policy: Policy = "linear"

    def __post_init__(self) -> None:
        raw = (self.trust_weight, self.economic_weight, self.energy_weight)
        if any(not math.isfinite(w) or w < 0 for w in raw) or sum(raw) <= 0:
            raise ValueError(f"weights must be finite, >= 0 and not all 0, got {raw}")
        if not 0.0 <= self.economic_lambda <= 1.0:
            raise ValueError(f"economic_lambda must be in [0, 1], got {self.economic_lambda}")
        if self.policy not in ("linear", "geometric"):
            raise ValueError(f"policy must be 'linear' or 'geometric', got {self.policy!r}")

    @property
    def weights(self) -> tuple[float, float, float]:
        """(trust, economic, energy) weights normalised to sum to 1."""
        total = self.trust_weight + self.economic_weight + self.energy_weight
        return (
            self.trust_weight / total,
            self.economic_weight / total,
            self.energy_weight / total,
        )


@dataclass(frozen=True, slots=True)
class VariantMeasurement:
    """What was measured for one precision variant, like for like with the others.

    ``accuracy`` is a fraction in [0, 1]; ``tokens_per_s`` is generated tokens per second;
    ``vram_gb`` peak GPU memory in GB; ``energy_j_per_query`` joules per query;
    ``carbon_g_per_kwh`` the grid's intensity (gCO2e/kWh) where this variant ran;
    ``completion_tokens_per_query`` the mean number of generated tokens per query.
    ``None`` means "not measured": pillars that need it are then reported as unavailable,
    never as zero.
    """

    name: str
    bits: int
    tokens_per_s: float
    accuracy: float | None = None
    vram_gb: float | None = None
    energy_j_per_query: float | None = None
    carbon_g_per_kwh: float | None = None
    completion_tokens_per_query: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("variant name must not be empty")
        if self.bits < 1:
            raise ValueError(f"{self.name}: bits must be >= 1, got {self.bits}")
        _positive(self.name, "tokens_per_s", self.tokens_per_s)
        if self.accuracy is not None and not 0.0 <= self.accuracy <= 1.0:
            raise ValueError(
                f"{self.name}: accuracy must be a fraction in [0, 1], got {self.accuracy}"
            )
        for field_name in (
            "vram_gb",
            "energy_j_per_query",
            "carbon_g_per_kwh",
            "completion_tokens_per_query",
        ):
            value = getattr(self, field_name)
            if value is not None:
                _positive(self.name, field_name, value)


@dataclass(frozen=True, slots=True)
class Pillars:
    """Trust, economic and energy pillars; ``None`` where an input was not measured."""

    tsi: float | None
    esi: float | None
    ssi: float | None

    def bounded(self) -> Pillars:
        """The pillars clipped to [0, 1], as the SI aggregates them."""
        return Pillars(_clip_opt(self.tsi), _clip_opt(self.esi), _clip_opt(self.ssi))

    def as_tuple(self) -> tuple[float | None, float | None, float | None]:
        return (self.tsi, self.esi, self.ssi)


def latency_per_hop_s(tokens_per_s: float) -> float:
    """Mean seconds per atomic hop (one generated token) = 1 / TPS."""
    return 1.0 / tokens_per_s


def casting_overhead_ratio(anchor_tokens_per_s: float, variant_tokens_per_s: float) -> float:
    """COR = TPS_a / TPS_v - 1: the variant's extra time per hop relative to the anchor's."""
    return anchor_tokens_per_s / variant_tokens_per_s - 1.0


def throughput_gain(anchor_tokens_per_s: float, variant_tokens_per_s: float) -> float:
    """G_tps = TPS_v / TPS_a (> 1: the variant generates faster)."""
    return variant_tokens_per_s / anchor_tokens_per_s


def residency_gain(anchor_vram_gb: float, variant_vram_gb: float) -> float:
    """G_vram = VRAM_a / VRAM_v (> 1: the variant needs less peak GPU memory)."""
    return anchor_vram_gb / variant_vram_gb


def trust_pillar(anchor_accuracy: float, variant_accuracy: float) -> float:
    """TSI = Acc_v / Acc_a; the anchor's accuracy must be positive."""
    if anchor_accuracy <= 0:
        raise ValueError("the trust pillar is undefined when the anchor's accuracy is 0")
    return variant_accuracy / anchor_accuracy


def economic_pillar(g_tps: float, g_vram: float | None, economic_lambda: float = 0.5) -> float:
    """ESI = 1 / (λ / G_tps + (1 - λ) / G_vram), the weighted harmonic mean of the two gains.

    The harmonic mean is bottleneck-sensitive: a large memory saving cannot hide a throughput
    collapse. With λ = 1 the memory gain is not needed and may be ``None``.
    """
    if economic_lambda == 1.0:
        return g_tps
    if g_vram is None:
        raise ValueError("the economic pillar needs the VRAM gain unless lambda is 1")
    if economic_lambda == 0.0:
        return g_vram
    return 1.0 / (economic_lambda / g_tps + (1.0 - economic_lambda) / g_vram)


def carbon_adjusted_energy_g(energy_j: float, carbon_g_per_kwh: float) -> float:
    """CAES in grams CO2e: energy per query (J → kWh) times the grid's intensity."""
    return energy_j / JOULES_PER_KWH * carbon_g_per_kwh


def energy_pillar(
    anchor_energy_j: float,
    variant_energy_j: float,
    anchor_carbon_g_per_kwh: float | None = None,
    variant_carbon_g_per_kwh: float | None = None,
) -> float:
    """SSI = CAES_a / CAES_v; with no intensities (one grid) it is E_a / E_v.

    Intensities must be given for both variants or for neither: mixing a carbon-adjusted
    value with a raw energy would compare grams with joules.
    """
    if (anchor_carbon_g_per_kwh is None) != (variant_carbon_g_per_kwh is None):
        raise ValueError("give the carbon intensity for both variants or for neither")
    if anchor_carbon_g_per_kwh is None or variant_carbon_g_per_kwh is None:
        return anchor_energy_j / variant_energy_j
    return carbon_adjusted_energy_g(
        anchor_energy_j, anchor_carbon_g_per_kwh
    ) / carbon_adjusted_energy_g(variant_energy_j, variant_carbon_g_per_kwh)


def energy_per_token_j(energy_j_per_query: float, completion_tokens_per_query: float) -> float:
    """Joules per generated token.

    Energy per query is confounded by answer length (a variant that rambles spends more per
    query at the same efficiency per token), so both are reported side by side.
    """
    return energy_j_per_query / completion_tokens_per_query


def clip_unit(value: float) -> float:
    """Clip to the bounded sustainability space [0, 1]."""
    return min(1.0, max(0.0, value))


def sustainability_index(
    tsi: float, esi: float, ssi: float, config: SIConfig | None = None
) -> float:
    """Aggregate three pillars (already bounded, or raw for the unbounded variant).

    ``linear``: Σ w_i·p_i. ``geometric``: Π p_i^w_i, the bottleneck-intolerant policy for
    safety-critical use (one collapsed pillar drags the index towards 0). Weights are the
    config's normalised weights, so three pillars of 1 give exactly 1.
    """
    cfg = config if config is not None else SIConfig()
    w_t, w_e, w_s = cfg.weights
    if cfg.policy == "linear":
        return w_t * tsi + w_e * esi + w_s * ssi
    if min(tsi, esi, ssi) < 0:
        raise ValueError("the geometric policy needs non-negative pillars")
    return float(tsi**w_t * esi**w_e * ssi**w_s)


def _clip_opt(value: float | None) -> float | None:
    return None if value is None else clip_unit(value)


def _positive(name: str, field_name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: {field_name} must be a positive number, got {value}")
