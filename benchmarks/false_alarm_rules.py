"""The trap rules of the false-alarm benchmark, vectorised over simulated runs and looks.

The anytime-valid verdicts mirror :func:`scoring.verdicts.decide` (``--check`` in
``benchmarks/false_alarms.py`` asserts equality with :class:`scoring.live.LiveScorer`); the
fixed-sample rule is the previous release's (Newcombe / McNemar exact / delta-method ratio
intervals over a sliding window, and its fleet alerts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from false_alarm_traffic import Arr, Sim, Sums

from scoring.config import ScoringConfig
from scoring.row import verdict_settings
from scoring.sequential import best_rho
from scoring.stats import z_critical

# -- the anytime-valid verdicts, vectorised (scoring/verdicts.py) ----------------------------


def _multiplier(t: Arr, alpha: float, tune: float) -> Arr:
    rho = best_rho(tune, alpha)
    t = np.maximum(t, 1e-12)
    return np.sqrt((t + rho) * (np.log1p(t / rho) + 2.0 * math.log(1.0 / alpha)) / t)


def _ratio_moments(n: Arr, sx: Arr, sy: Arr, sxx: Arr, syy: Arr, sxy: Arr) -> tuple[Arr, Arr]:
    """(R, per-sample relative variance) of R = Σx/Σy, as RatioSums.summary() computes it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = sx / sy
        ss_d = sxx - 2.0 * r * sxy + r * r * syy
        s2_d = np.maximum(ss_d, 0.0) / (n - 1.0)
        y_bar = sy / n
        rel = (s2_d / (y_bar * y_bar)) / (r * r)
    return r, rel


def _mean_moments(n: Arr, s: Arr, ss: Arr) -> tuple[Arr, Arr]:
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        var = np.maximum(ss - n * mean * mean, 0.0) / (n - 1.0)
        rel = var / (mean * mean)
    return mean, rel


@dataclass
class Bounds:
    """Per look (paths, looks): the CS bounds the runtime would show, NaN where unanswered."""

    acc: tuple[Arr, Arr]
    paired: tuple[Arr, Arr]
    speed: tuple[Arr, Arr]
    energy: tuple[Arr, Arr]


def anytime_bounds(a: Sums, v: Sums, b: Arr, c: Arr, pn: Arr, cfg: ScoringConfig) -> Bounds:
    """The confidence sequences of :func:`scoring.verdicts.decide` over cumulative sums."""
    s = verdict_settings(cfg)
    al, tune = s.alpha, s.tune_samples
    nan = np.nan
    # Unpaired accuracy (Bernoulli bound), α/6.
    n_a, n_v = a.n, v.n
    ok = (n_a >= s.min_graded) & (n_v >= s.min_graded)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = v.correct / n_v - a.correct / n_a
        se = np.sqrt(0.25 * (1.0 / n_v + 1.0 / n_a))
        t = 2.0 / (1.0 / n_v + 1.0 / n_a)
    h = _multiplier(np.where(ok, t, 1.0), al / 6, tune) * se
    acc = (np.where(ok, np.maximum(-1, d - h), nan), np.where(ok, np.minimum(1, d + h), nan))
    # Paired accuracy, α/6.
    n = pn
    okp = n >= s.min_graded
    with np.errstate(divide="ignore", invalid="ignore"):
        dp = (c - b) / n
        var = np.maximum((b + c + 1.0) / (n + 1.0) - dp * dp, 1.0 / (n + 1.0))
        hp = _multiplier(np.where(okp, n, 1.0), al / 6, tune) * np.sqrt(var / n)
    paired = (
        np.where(okp, np.maximum(-1, dp - hp), nan),
        np.where(okp, np.minimum(1, dp + hp), nan),
    )
    # Ratios on the log scale, α/3 each.
    speed = _log_ratio_cs(
        _ratio_moments(v.n, v.sx, v.sy, v.sxx, v.syy, v.sxy),
        v.n,
        _ratio_moments(a.n, a.sx, a.sy, a.sxx, a.syy, a.sxy),
        a.n,
        s.min_requests,
        al / 3,
        tune,
    )
    energy = _log_ratio_cs(
        _mean_moments(v.n, v.e, v.ee),
        v.n,
        _mean_moments(a.n, a.e, a.ee),
        a.n,
        s.min_requests,
        al / 3,
        tune,
    )
    return Bounds(acc, paired, speed, energy)


def running_intersection(bounds: Bounds, epoch_bins: int) -> Bounds:
    """Each sequence intersected with its past in the epoch, as ``decide(previous=)`` does."""

    def run(lo: Arr, hi: Arr) -> tuple[Arr, Arr]:
        lo, hi = lo.copy(), hi.copy()
        for t in range(1, lo.shape[1]):
            if epoch_bins > 0 and t % epoch_bins == 0:
                continue  # a new epoch starts afresh
            plo, phi = lo[:, t - 1], hi[:, t - 1]
            nlo, nhi = np.fmax(lo[:, t], plo), np.fmin(hi[:, t], phi)
            keep = ~np.isnan(lo[:, t]) & ~np.isnan(plo) & (nlo <= nhi)
            lo[:, t] = np.where(keep, nlo, lo[:, t])
            hi[:, t] = np.where(keep, nhi, hi[:, t])
        return lo, hi

    return Bounds(run(*bounds.acc), run(*bounds.paired), run(*bounds.speed), run(*bounds.energy))


def _log_ratio_cs(
    mv: tuple[Arr, Arr],
    n_v: Arr,
    ma: tuple[Arr, Arr],
    n_a: Arr,
    minimum: int,
    alpha: float,
    tune: float,
) -> tuple[Arr, Arr]:
    ok = (n_v >= minimum) & (n_a >= minimum)
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.log(mv[0] / ma[0])
        se = np.sqrt(mv[1] / n_v + ma[1] / n_a)
        t = 2.0 / (1.0 / n_v + 1.0 / n_a)
        h = _multiplier(np.where(ok, t, 1.0), alpha, tune) * se
        return np.where(ok, np.exp(lr - h), np.nan), np.where(ok, np.exp(lr + h), np.nan)


# -- answers, held answers, the latch --------------------------------------------------------


def anytime_answers(bounds: Bounds, cfg: ScoringConfig) -> dict[str, tuple[Arr, Arr]]:
    """Per question: (answered yes, excluded) per look, as :class:`Verdicts` decides them."""
    m = verdict_settings(cfg).margins
    with np.errstate(invalid="ignore"):
        less = (bounds.acc[1] < -m.accuracy) | (bounds.paired[1] < -m.accuracy)
        less_ex = (bounds.acc[0] >= -m.accuracy) | (bounds.paired[0] >= -m.accuracy)
        slower = bounds.speed[1] < 1.0 - m.speed
        slower_ex = bounds.speed[0] >= 1.0 - m.speed
        more = bounds.energy[0] > 1.0 + m.energy
        more_ex = bounds.energy[1] <= 1.0 + m.energy
    return {
        "less_accurate": (less, less_ex),
        "slower": (slower, slower_ex),
        "more_energy": (more, more_ex),
    }


def with_holds(answers: dict[str, tuple[Arr, Arr]], epoch_bins: int) -> dict[str, Arr]:
    """Each question's flag with the previous epoch's own "yes" held until confirmed/excluded."""
    out = {}
    for q, (own, excluded) in answers.items():
        flag = own.copy()
        n = own.shape[1]
        if 0 < epoch_bins < n:
            for start in range(epoch_bins, n, epoch_bins):
                stop = min(start + epoch_bins, n)
                held = own[:, start - 1]
                resolved = np.logical_or.accumulate(
                    own[:, start:stop] | excluded[:, start:stop], axis=1
                )
                flag[:, start:stop] |= held[:, None] & ~resolved
        out[q] = flag
    return out


def latch(raw: Arr, on_after: int, off_after: int) -> Arr:
    """:class:`scoring.evidence.RegimeLatch` on a trap/no-trap signal, vectorised over runs."""
    paths, looks = raw.shape
    out = np.zeros_like(raw)
    state = np.zeros(paths, dtype=bool)
    run_on = np.zeros(paths, dtype=np.int32)
    run_off = np.zeros(paths, dtype=np.int32)
    for t in range(looks):
        r = raw[:, t]
        run_on = np.where(r, run_on + 1, 0)
        run_off = np.where(r, 0, run_off + 1)
        state = np.where(state, run_off < off_after, run_on >= on_after)
        out[:, t] = state
    return out


# -- the fixed-sample rule it replaces (the previous release), on window sums -----------------


def _wilson(x: Arr, n: Arr, z: float) -> tuple[Arr, Arr, Arr]:
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        z2n = z * z / n
        centre = (p + z2n / 2) / (1 + z2n)
        half = z / (1 + z2n) * np.sqrt(p * (1 - p) / n + z2n / (4 * n))
    return p, np.maximum(0, centre - half), np.minimum(1, centre + half)


def _binom_half_cdf(max_n: int) -> Arr:
    """``table[n, k] = P(Bin(n, 1/2) <= k)``."""
    table = np.ones((max_n + 1, max_n + 1))
    for n in range(1, max_n + 1):
        k = np.arange(n + 1)
        logpmf = np.array(
            [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k]
        ) - n * math.log(2.0)
        table[n, : n + 1] = np.minimum(1.0, np.cumsum(np.exp(logpmf)))
    return table


def fixed_rule(win: Sim, cfg: ScoringConfig, look_s: float) -> tuple[dict[str, Arr], Arr]:
    """The previous release's per-look answers over the window, and its fleet alert signal."""
    trap, z = cfg.trap, z_critical(cfg.confidence)
    a, v = win.anchor, win.variant
    delta = trap.accuracy_tolerance
    p_v, _, u_v = _wilson(v.correct, v.n, z)
    p_a, l_a, _ = _wilson(a.correct, a.n, z)
    ok = (a.n >= trap.min_graded) & (v.n >= trap.min_graded)
    with np.errstate(invalid="ignore"):
        high = (p_v - p_a) + np.sqrt((u_v - p_v) ** 2 + (p_a - l_a) ** 2)
        less = ok & (high < -delta)
    b, c, n = win.b, win.c, win.pn
    disc = (b + c).astype(int)
    table = _binom_half_cdf(int(disc.max()) if disc.size else 1)
    p_mc = np.minimum(1.0, 2.0 * table[disc, np.minimum(b, c).astype(int)])
    with np.errstate(divide="ignore", invalid="ignore"):
        paired = (
            (n >= trap.min_graded) & (p_mc < 1 - cfg.confidence) & (b > c) & ((c - b) / n < -delta)
        )
    less = less | paired
    mn = trap.min_requests
    rs_v = _ratio_moments(v.n, v.sx, v.sy, v.sxx, v.syy, v.sxy)
    rs_a = _ratio_moments(a.n, a.sx, a.sy, a.sxx, a.syy, a.sxy)
    e_v, e_a = _mean_moments(v.n, v.e, v.ee), _mean_moments(a.n, a.e, a.ee)
    okr = (v.n >= mn) & (a.n >= mn)
    with np.errstate(divide="ignore", invalid="ignore"):
        sp_high = np.exp(np.log(rs_v[0] / rs_a[0]) + z * np.sqrt(rs_v[1] / v.n + rs_a[1] / a.n))
        en_low = np.exp(np.log(e_v[0] / e_a[0]) - z * np.sqrt(e_v[1] / v.n + e_a[1] / a.n))
        slower = okr & (sp_high < 1.0)
        more = okr & (en_low > 1.0)
        # The previous fleet alerts: a plain energy ratio > 1.05 for 15 min; a pooled z-test
        # of the accuracy difference with the difference below −δ for 10 min.
        inversion = okr & (e_v[0] / e_a[0] > 1.05)
        pooled = (v.correct + a.correct) / (v.n + a.n)
        zstat = (p_v - p_a) / np.sqrt(pooled * (1 - pooled) * (1 / v.n + 1 / a.n))
        drop = ok & (p_v - p_a < -delta) & (zstat < -z)
    alert = held_for(inversion, int(900 / look_s)) | held_for(drop, int(600 / look_s))
    return {"less_accurate": less, "slower": slower, "more_energy": more}, alert


def held_for(x: Arr, looks: int) -> Arr:
    """True where ``x`` has been true for the last ``looks`` looks (an alert's ``for:``)."""
    run = np.zeros(x.shape[0], dtype=np.int32)
    out = np.zeros_like(x)
    for t in range(x.shape[1]):
        run = np.where(x[:, t], run + 1, 0)
        out[:, t] = run >= looks
    return out
