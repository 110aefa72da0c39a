"""Anytime-valid confidence sequences: intervals that may be looked at after every sample.

A fixed-sample interval (Wilson, a z-test) re-computed every few seconds is a new test at each
look, and its error rate compounds until a no-trap variant is flagged on most days. A
*confidence sequence* (CS) is a sequence of intervals ``C_t`` with
``P(∃t: θ ∉ C_t) ≤ α``: the chance that it *ever* misses, over every look of an unbounded
monitoring period, is at most α. Looking more often costs nothing.

Method: Robbins' two-sided **normal mixture** boundary (Robbins 1970; Howard, Ramdas,
McAuliffe and Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences",
Ann. Statist. 2021, eq. (14); the ``TwoSidedNormalMixture`` of their ``confseq`` package).
For a sum ``S_t`` of centred increments with variance process ``V_t``, the mixture of the
exponential supermartingales ``exp(λS − λ²V/2)`` over ``λ ~ N(0, 1/ρ)`` is

    M_t = sqrt(ρ / (V_t + ρ)) · exp(S_t² / (2 (V_t + ρ)))        (:func:`log_mixture_evalue`)

and Ville's inequality gives ``P(∃t: M_t ≥ 1/α) ≤ α``, i.e. ``|S_t| < u(V_t)`` for all t with

    u(v) = sqrt((v + ρ) · (log(1 + v/ρ) + 2 log(1/α)))            (:func:`normal_mixture_bound`).

``M_t`` is also the mixture SPRT statistic (mSPRT, Johari et al., "Always valid inference",
Oper. Res. 2022): rejecting when ``M_t ≥ 1/α`` is the same decision as the CS excluding 0.
``ρ`` sets the sample size at which the boundary is tightest: :func:`best_rho` is the paper's
choice (their eq. (15) approximation, also ``confseq``'s ``best_rho``).

For an estimator ``θ̂_t`` with variance ``σ²/t`` the standardised sum ``t(θ̂_t − θ)/σ`` has
``V_t = t``, so the CS is ``θ̂_t ± (σ/t)·u(t)`` (:func:`confidence_sequence`). With ``σ``
known (a bounded outcome: Bernoulli σ ≤ 1/2) the CS is exact for sub-Gaussian data; with a
plug-in estimate ``σ̂_t`` it is the *asymptotic* CS of Waudby-Smith, Arbour, Sinha, Kennedy
and Ramdas ("Time-uniform central limit theory and asymptotic confidence sequences", Ann.
Statist. 2024), valid as the samples grow — the false-alarm benchmark
(``benchmarks/false_alarms.py``) measures what that means at the counts of a live window.

Everything here is pure and uses the standard library only.
"""

from __future__ import annotations

import math

from scoring.stats import Interval

__all__ = [
    "best_rho",
    "confidence_sequence",
    "log_mixture_evalue",
    "normal_mixture_bound",
    "radius_multiplier",
]


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def best_rho(v_opt: float, alpha: float) -> float:
    """The mixture precision ``ρ`` that makes the boundary tightest near ``v = v_opt``.

    ``ρ = v_opt / (2 log(1/α) + log(1 + 2 log(1/α)))`` (Howard et al. 2021, eq. (15)).
    """
    _check_alpha(alpha)
    if not v_opt > 0:
        raise ValueError(f"v_opt must be positive, got {v_opt}")
    log_inv = math.log(1.0 / alpha)
    return v_opt / (2.0 * log_inv + math.log(1.0 + 2.0 * log_inv))


def normal_mixture_bound(v: float, alpha: float, rho: float) -> float:
    """Two-sided normal-mixture boundary ``u(v)``: ``P(∃t: |S_t| ≥ u(V_t)) ≤ α``."""
    _check_alpha(alpha)
    if v < 0 or not rho > 0:
        raise ValueError(f"need v >= 0 and rho > 0, got v={v}, rho={rho}")
    return math.sqrt((v + rho) * (math.log1p(v / rho) + 2.0 * math.log(1.0 / alpha)))


def log_mixture_evalue(s: float, v: float, rho: float) -> float:
    """``log M_t`` of the two-sided normal mixture (the mSPRT statistic) at sum ``s``, time ``v``.

    ``M_t ≥ 1/α`` exactly when ``|s| ≥ normal_mixture_bound(v, α, ρ)``.
    """
    if v < 0 or not rho > 0:
        raise ValueError(f"need v >= 0 and rho > 0, got v={v}, rho={rho}")
    return 0.5 * math.log(rho / (v + rho)) + s * s / (2.0 * (v + rho))


def radius_multiplier(samples: float, alpha: float, tune_samples: float) -> float:
    """How many standard errors wide the CS is after ``samples`` observations.

    The CS's half-width is ``multiplier × σ/√t``; a fixed-sample interval's would be ``z``
    (1.96 at 95 %). The multiplier is smallest near ``tune_samples`` and grows like
    ``√(log t)`` beyond it — the price of validity at every look.
    """
    if not samples > 0:
        raise ValueError(f"samples must be positive, got {samples}")
    rho = best_rho(tune_samples, alpha)
    return normal_mixture_bound(samples, alpha, rho) / math.sqrt(samples)


def confidence_sequence(
    estimate: float,
    standard_error: float,
    samples: float,
    alpha: float,
    tune_samples: float,
) -> Interval:
    """The CS ``estimate ± multiplier · standard_error`` at level ``1 − α`` (two-sided).

    ``standard_error`` is the estimator's (``σ/√t``); ``samples`` the effective number of
    observations ``t`` behind it (for two independent samples, the one whose information the
    error stands for: see :mod:`scoring.verdicts`). The returned interval's ``confidence`` is
    ``1 − α``, valid simultaneously over every look (see the module docstring for when exactly).
    """
    if not math.isfinite(estimate) or not standard_error >= 0:
        raise ValueError(f"need a finite estimate and a standard error >= 0, got {standard_error}")
    half = radius_multiplier(samples, alpha, tune_samples) * standard_error
    return Interval(estimate, estimate - half, estimate + half, 1.0 - alpha)
