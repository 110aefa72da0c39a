"""Fixed-sample evidence over the window (shown, not decided on), and the flag's latch.

The regime questions are answered by the anytime-valid verdicts of :mod:`scoring.verdicts`
(confidence sequences over the verdict epoch, beyond practical-significance margins). What
stays here describes the sliding window on the status page:

- :func:`accuracy_evidence`: Newcombe's hybrid score interval for ``Acc_v − Acc_a`` and, with
  paired verdicts, McNemar's exact test — fixed-sample procedures, valid for one look at one
  window, so their ``less_accurate`` answer is informational only (re-read every few seconds it
  would false-alarm on most days: ``benchmarks/false_alarms.py``);
- :func:`live_regime`: the regime table of :mod:`scoring.regimes` applied to the three answers
  (with energy left out when no method measured it on either side);
- :class:`RegimeLatch`: hysteresis over successive evaluations: a trap label is adopted after
  ``on_after`` consecutive evaluations support a trap, and any label is left only after
  ``off_after`` consecutive evaluations no longer support it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from scoring.regimes import Regime
from scoring.stats import Interval, McNemarResult, mcnemar_exact, wilson_interval

__all__ = [
    "TRAP_REGIMES",
    "AccuracyEvidence",
    "RegimeLatch",
    "accuracy_evidence",
    "difference_interval",
    "live_regime",
]

TRAP_REGIMES: Final = frozenset({"full_trap", "efficiency_trap", "accuracy_trap"})


@dataclass(frozen=True, slots=True)
class AccuracyEvidence:
    """The accuracy question's answer and what it rests on.

    ``difference`` is ``Acc_v − Acc_a`` with its interval (``None`` below the minimum graded
    counts); ``paired`` the McNemar test on discordant pairs (``first_only`` = anchor right
    only), ``None`` without paired verdicts.
    """

    less_accurate: bool | None
    difference: Interval | None
    paired: McNemarResult | None


def difference_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = 0.95
) -> Interval:
    """Newcombe's hybrid score interval for ``p_a − p_b`` (his method 10).

    With Wilson limits ``(l_a, u_a)`` and ``(l_b, u_b)``: ``low = d − √((p_a − l_a)² +
    (u_b − p_b)²)``, ``high = d + √((u_a − p_a)² + (p_b − l_b)²)``. Good coverage at small
    counts and at proportions near 0 or 1, where the Wald interval fails.
    """
    a = wilson_interval(successes_a, trials_a, confidence)
    b = wilson_interval(successes_b, trials_b, confidence)
    d = a.estimate - b.estimate
    low = d - math.sqrt((a.estimate - a.low) ** 2 + (b.high - b.estimate) ** 2)
    high = d + math.sqrt((a.high - a.estimate) ** 2 + (b.estimate - b.low) ** 2)
    return Interval(d, max(-1.0, low), min(1.0, high), confidence)


def accuracy_evidence(
    anchor: tuple[int, int],
    variant: tuple[int, int],
    pairs: tuple[int, int, int, int],
    *,
    tolerance: float,
    min_graded: int,
    confidence: float,
) -> AccuracyEvidence:
    """Answer "less accurate?" from (correct, graded) counts and paired verdicts.

    ``pairs`` is ``(both correct, anchor only, variant only, both wrong)``.
    """
    (x_a, n_a), (x_v, n_v) = anchor, variant
    difference = None
    less: bool | None = None
    if n_a >= min_graded and n_v >= min_graded:
        difference = difference_interval(x_v, n_v, x_a, n_a, confidence)
        less = difference.high < -tolerance
    n_pairs = sum(pairs)
    paired = None
    if n_pairs > 0:
        paired = mcnemar_exact(pairs[1], pairs[2])
        if n_pairs >= min_graded:
            paired_less = (
                paired.p_value < 1.0 - confidence
                and pairs[1] > pairs[2]
                and (pairs[2] - pairs[1]) / n_pairs < -tolerance
            )
            less = paired_less or bool(less)
    return AccuracyEvidence(less, difference, paired)


def live_regime(
    less_accurate: bool | None,
    slower: bool | None,
    more_energy: bool | None,
    *,
    energy_considered: bool,
) -> Regime:
    """The regime from significant answers (see the module docstring)."""
    if energy_considered:
        if slower is True or more_energy is True:
            inefficient: bool | None = True
        elif slower is None or more_energy is None:
            inefficient = None
        else:
            inefficient = False
    else:
        inefficient = slower
    if less_accurate is None or inefficient is None:
        return "undetermined"
    if less_accurate:
        return "full_trap" if inefficient else "accuracy_trap"
    return "efficiency_trap" if inefficient else "no_trap"


class RegimeLatch:
    """The regime label shown and alerted on, with hysteresis (see the module docstring)."""

    __slots__ = ("_differ", "_off_after", "_on_after", "_trap", "label")

    def __init__(self, on_after: int = 2, off_after: int = 3, initial: Regime = "undetermined"):
        if on_after < 1 or off_after < 1:
            raise ValueError("on_after and off_after must be >= 1")
        self._on_after = on_after
        self._off_after = off_after
        self.label: Regime = initial
        self._differ = 0  # consecutive evaluations whose label differed from the current one
        self._trap = 0  # consecutive evaluations that supported some trap

    @property
    def trap(self) -> bool:
        return self.label in TRAP_REGIMES

    def update(self, raw: Regime) -> Regime:
        """Feed one evaluation's label; return the (possibly unchanged) latched label."""
        self._trap = self._trap + 1 if raw in TRAP_REGIMES else 0
        if raw == self.label:
            self._differ = 0
            return self.label
        self._differ += 1
        entering_trap = raw in TRAP_REGIMES and self.label not in TRAP_REGIMES
        if (entering_trap and self._trap >= self._on_after) or (
            not entering_trap and self._differ >= self._off_after
        ):
            self.label = raw
            self._differ = 0
        return self.label
