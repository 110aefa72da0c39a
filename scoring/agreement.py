"""Shadow agreement by agent-hop position, and whether disagreement grows with it.

Every shadow comparison (:func:`scoring.comparison.compare_pair`: text answers, or tool calls
when the primary called tools) is booked under the primary's agent-hop bucket
(:func:`core.buckets.hop_position_bucket` of ``PairComparison.agent_hop``, the assistant round
trips before the call). Two views come out of those counts:

- **per hop bucket** (:func:`hop_views`), over the sliding window: agreed, disagreed and not
  comparable, and the agreement rate among the comparable ones with a *fixed-sample* Wilson
  interval — descriptive, like every window estimate;
- **the trend** (:func:`hop_trend`), over the verdict epoch: the difference of the
  disagreement rates ``p_later − p_first`` between later hops (position ≥ 1) and the first
  hop (position 0), with an anytime-valid confidence sequence (:mod:`scoring.sequential`):
  the unpaired two-sample construction of :mod:`scoring.verdicts` with the Bernoulli bound
  σ ≤ ½, so it may be looked at after every comparison. ``grows`` is ``True`` once the whole
  sequence lies above 0 (disagreement is higher after the first hop: the compounding claim,
  for agents), ``False`` once both sides have the minimum count and it does not, ``None``
  before.

Caveats (also in ``docs/scoring.md``): hop 0 holds every first call, including plain
single-call chat, so the first-hop rate mixes agent and non-agent traffic; calls of one agent
task at different hops are not independent (the CS treats comparisons as independent draws);
and later hops carry longer contexts, so a positive trend says disagreement grows along the
chain, not why (compounding quantization noise and context length are confounded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.buckets import HOP_POSITION_BUCKETS
from scoring.sequential import confidence_sequence
from scoring.stats import Interval, wilson_interval
from scoring.windows import AgreementCell

__all__ = ["FIRST_HOP", "HopAgreement", "HopTrend", "hop_trend", "hop_views"]

FIRST_HOP = HOP_POSITION_BUCKETS[0]
"""The bucket the trend compares the later hops with (no assistant turn before the call)."""

_BERNOULLI_VARIANCE_BOUND = 0.25


@dataclass(frozen=True, slots=True)
class HopAgreement:
    """Comparisons in one hop bucket over the window; ``rate`` is the agreement rate among
    the comparable ones with its Wilson interval (``None`` when none was comparable)."""

    bucket: str
    agree: int
    disagree: int
    unknown: int
    rate: Interval | None


@dataclass(frozen=True, slots=True)
class HopTrend:
    """Disagreement at later hops minus at the first hop, since the epoch started (``since``).

    ``first_*`` / ``later_*`` count comparable comparisons (agreed or disagreed) and the
    disagreements among them; ``difference`` is the confidence sequence of
    ``p_later − p_first`` at level ``1 − alpha`` (``None`` until both sides have
    ``min_samples``); ``grows`` its answer (see the module docstring).
    """

    since: float
    alpha: float
    min_samples: int
    first_compared: int
    first_disagree: int
    later_compared: int
    later_disagree: int
    difference: Interval | None
    grows: bool | None


def hop_views(cell: AgreementCell, confidence: float) -> tuple[HopAgreement, ...]:
    """The buckets with any comparison, in hop order."""
    out = []
    for bucket in HOP_POSITION_BUCKETS:
        counts = cell.hops.get(bucket)
        if counts is None or sum(counts) == 0:
            continue
        agree, disagree, unknown = counts
        known = agree + disagree
        rate = wilson_interval(agree, known, confidence) if known else None
        out.append(HopAgreement(bucket, agree, disagree, unknown, rate))
    return tuple(out)


def hop_trend(
    cell: AgreementCell, since: float, alpha: float, tune_samples: float, min_samples: int
) -> HopTrend:
    """The trend statistic over one epoch's counts (see the module docstring)."""
    first = cell.hops.get(FIRST_HOP, [0, 0, 0])
    n_f, d_f = first[0] + first[1], first[1]
    n_l = d_l = 0
    for bucket, counts in cell.hops.items():
        if bucket != FIRST_HOP:
            n_l += counts[0] + counts[1]
            d_l += counts[1]
    difference = grows = None
    if min(n_f, n_l) >= max(min_samples, 1):
        diff = d_l / n_l - d_f / n_f
        se = math.sqrt(_BERNOULLI_VARIANCE_BOUND * (1.0 / n_l + 1.0 / n_f))
        samples = 2.0 / (1.0 / n_l + 1.0 / n_f)  # the harmonic mean, as in scoring.verdicts
        cs = confidence_sequence(diff, se, samples, alpha, tune_samples)
        difference = Interval(diff, max(-1.0, cs.low), min(1.0, cs.high), cs.confidence)
        grows = difference.low > 0.0
    return HopTrend(since, alpha, min_samples, n_f, d_f, n_l, d_l, difference, grows)
