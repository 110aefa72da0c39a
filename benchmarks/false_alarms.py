"""False alarms and detection times of the live trap verdicts, on a simulated clock.

Run: ``python benchmarks/false_alarms.py`` (defaults: 200 simulated days per cell, seed 1;
``--quick`` for a smoke run, ``--json FILE`` to keep the numbers). Results in docs/scoring.md.

What it simulates. One *cell* is one quantized variant against its anchor in one batch-size
bucket: graded requests arrive as Poisson streams at ``rate`` a minute per variant, either as
*tagged* traffic (independent prompts on each side: unpaired accuracy) or as *shadow* pairs
(the variant answers the anchor's prompt: paired verdicts; a shadow copy repeats the anchor's
verdict with probability 0.8 and is otherwise an independent draw). Every request also has
heavy-tailed speed and energy: answer length ~ lognormal(σ 0.5), decode rate ~ lognormal
(σ 0.15) with 5 % stalls at half speed, energy = length × J/token × lognormal(σ 0.1). A/A
cells draw both sides from the same distributions (accuracy 43 %); true effects change one
thing: accuracy −4 points (43 % → 39 %), energy per query +20 %, decode speed −20 %.

What it measures, per horizon (1 h, 24 h, 7 days): the fraction of simulated runs with at
least one false trap flag and at least one false alert (a flag held as long as the alert
rule's ``for:``, 5 min), the fraction of time flagged, flag episodes per day, and for true
effects the time to the first flag of the right question (median, 90th percentile; "> h" when
fewer than half / 90 % were detected within the horizon).

Two rules are compared on the same evidence: the **anytime-valid verdicts** (this release:
:mod:`scoring.verdicts`, epoch evidence, 24 h epochs, 5 % margins, looks every ``look_s``) and
the **fixed-sample rule** they replace (a 15-minute sliding window; Newcombe / McNemar exact /
delta-method ratio intervals at 95 %, tolerances 0, δ 0.01; a 2-look latch; and the old fleet
alerts: energy ratio > 1.05 for 15 min, pooled z < −1.96 and difference < −δ for 10 min).

How it drives the runtime. Simulating the scorer request by request for 1,400 days would take
hours, so the statistic's updates are vectorised here with numpy (running sums per look, the
same formulas). ``--check`` proves the equivalence on a slice: it feeds the same events to the
real :class:`scoring.live.LiveScorer` and compares every confidence-sequence bound and answer
at every look (it runs by default on a few simulated hours before the benchmark).

Caveats: looks are every ``look_s`` (15 s, the window's slot) instead of every 5 s, so a
crossing that lasts less than a look can be missed (anytime-valid bounds hold at any looks, so
looking less often never raises their error); the flag is the OR of the three answers (the
runtime also needs the other answers known before it names a regime, which they are after
the first minimum counts); a false *alert* here is one cell's flag held 5 minutes — the fleet
figure multiplies the per-cell rate by the cells of a fleet.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.config import ScoringConfig
from scoring.live import LiveScorer, ModelSpec
from scoring.row import verdict_settings
from scoring.sequential import best_rho
from scoring.stats import z_critical
from scoring.windows import Observation

HOUR, DAY = 3600.0, 86400.0
HORIZONS = {"1h": HOUR, "24h": DAY, "7d": 7 * DAY}
ALERT_FOR_S = 300.0
COPY = 0.8  # a shadow copy repeats the anchor's verdict with this probability
BASE_TPS, TOKENS, J_PER_TOKEN = 40.0, 200.0, 1.5

Arr = np.ndarray


@dataclass(frozen=True)
class Scenario:
    name: str
    rate: float  # graded requests a minute per variant
    paired: bool
    acc_v: float = 0.43
    speed_v: float = 1.0
    energy_v: float = 1.0
    acc_a: float = 0.43

    @property
    def effect(self) -> str | None:
        if self.acc_v != self.acc_a:
            return "less_accurate"
        if self.speed_v != 1.0:
            return "slower"
        if self.energy_v != 1.0:
            return "more_energy"
        return None


@dataclass
class Result:
    scenario: str
    rule: str
    rate: float
    paired: bool
    runs: int
    horizon_s: float
    flagged_runs: dict[str, float] = field(default_factory=dict)
    alerted_runs: dict[str, float] = field(default_factory=dict)
    time_flagged: float = 0.0
    episodes_per_day: float = 0.0
    detect_median_s: float | None = None
    detect_p90_s: float | None = None
    detected: float = 0.0


# -- events --------------------------------------------------------------------------------


@dataclass
class Sums:
    """Per-bin sums of one side, shape (paths, bins)."""

    n: Arr
    correct: Arr
    sx: Arr
    sy: Arr
    sxx: Arr
    syy: Arr
    sxy: Arr
    e: Arr
    ee: Arr


def _side(
    rng: np.random.Generator, counts: Arr, correct: Arr, speed: float, energy: float
) -> tuple[Sums, dict[str, Arr]]:
    shape = counts.shape
    k = counts.ravel()
    total = int(k.sum())
    idx = np.repeat(np.arange(k.size), k)
    tokens = np.maximum(1.0, np.round(TOKENS * rng.lognormal(0.0, 0.5, total)))
    stall = np.where(rng.random(total) < 0.05, 0.5, 1.0)
    tps = BASE_TPS * speed * rng.lognormal(0.0, 0.15, total) * stall
    seconds = tokens / tps
    joules = tokens * J_PER_TOKEN * energy * rng.lognormal(0.0, 0.1, total)

    def binsum(w: Arr) -> Arr:
        return np.bincount(idx, weights=w, minlength=k.size).reshape(shape)

    sums = Sums(
        n=counts.astype(float),
        correct=binsum(correct.astype(float)),
        sx=binsum(tokens),
        sy=binsum(seconds),
        sxx=binsum(tokens * tokens),
        syy=binsum(seconds * seconds),
        sxy=binsum(tokens * seconds),
        e=binsum(joules),
        ee=binsum(joules * joules),
    )
    return sums, {
        "idx": idx,
        "tokens": tokens,
        "seconds": seconds,
        "joules": joules,
        "correct": correct,
    }


@dataclass
class Sim:
    """One chunk of simulated runs: per-bin sums of both sides, the pair counts, the events."""

    anchor: Sums
    variant: Sums
    b: Arr  # pairs where only the anchor was right
    c: Arr  # pairs where only the variant was right
    pn: Arr  # pairs
    events: dict[str, dict[str, Arr]]

    def cumulative(self, epoch_bins: int) -> Sim:
        """Running sums since the start of each epoch of ``epoch_bins`` bins (0: one epoch)."""
        return Sim(
            _cum_sums(self.anchor, epoch_bins),
            _cum_sums(self.variant, epoch_bins),
            _cum(self.b, epoch_bins),
            _cum(self.c, epoch_bins),
            _cum(self.pn, epoch_bins),
            self.events,
        )

    def window(self, bins: int) -> Sim:
        """Sums over the last ``bins`` bins (a sliding window)."""
        return Sim(
            _win_sums(self.anchor, bins),
            _win_sums(self.variant, bins),
            _win(self.b, bins),
            _win(self.c, bins),
            _win(self.pn, bins),
            self.events,
        )


def _cum(x: Arr, epoch_bins: int) -> Arr:
    if epoch_bins <= 0 or epoch_bins >= x.shape[1]:
        return np.cumsum(x, axis=1)
    p, n = x.shape
    k = -(-n // epoch_bins)
    padded = np.zeros((p, k * epoch_bins))
    padded[:, :n] = x
    return np.cumsum(padded.reshape(p, k, epoch_bins), axis=2).reshape(p, -1)[:, :n]


def _win(x: Arr, bins: int) -> Arr:
    cum = np.cumsum(x, axis=1)
    out = cum.copy()
    out[:, bins:] -= cum[:, :-bins]
    return out


def _cum_sums(s: Sums, epoch_bins: int) -> Sums:
    return Sums(**{f.name: _cum(getattr(s, f.name), epoch_bins) for f in fields(s)})


def _win_sums(s: Sums, bins: int) -> Sums:
    return Sums(**{f.name: _win(getattr(s, f.name), bins) for f in fields(s)})


def simulate(rng: np.random.Generator, sc: Scenario, paths: int, bins: int, look_s: float) -> Sim:
    """Both sides' per-bin sums, and the pair counts (anchor only, variant only, all)."""
    lam = sc.rate * look_s / 60.0
    n_a = rng.poisson(lam, (paths, bins))
    n_v = n_a.copy() if sc.paired else rng.poisson(lam, (paths, bins))
    ok_a = rng.random(int(n_a.sum())) < sc.acc_a
    if sc.paired:
        q = (sc.acc_v - COPY * sc.acc_a) / (1.0 - COPY)
        copy = rng.random(ok_a.size) < COPY
        ok_v = np.where(copy, ok_a, rng.random(ok_a.size) < q)
    else:
        ok_v = rng.random(int(n_v.sum())) < sc.acc_v
    a, ev_a = _side(rng, n_a, ok_a, 1.0, 1.0)
    v, ev_v = _side(rng, n_v, ok_v, sc.speed_v, sc.energy_v)
    b = np.zeros((paths, bins))
    c = np.zeros((paths, bins))
    pn = np.zeros((paths, bins))
    if sc.paired:
        idx = ev_a["idx"]
        b = np.bincount(idx, weights=(ok_a & ~ok_v), minlength=b.size).reshape(b.shape)
        c = np.bincount(idx, weights=(~ok_a & ok_v), minlength=c.size).reshape(c.shape)
        pn = n_a.astype(float)
    return Sim(a, v, b, c, pn, {"anchor": ev_a, "variant": ev_v})


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
    alert = _held(inversion, int(900 / look_s)) | _held(drop, int(600 / look_s))
    return {"less_accurate": less, "slower": slower, "more_energy": more}, alert


def _held(x: Arr, looks: int) -> Arr:
    """True where ``x`` has been true for the last ``looks`` looks (an alert's ``for:``)."""
    run = np.zeros(x.shape[0], dtype=np.int32)
    out = np.zeros_like(x)
    for t in range(x.shape[1]):
        run = np.where(x[:, t], run + 1, 0)
        out[:, t] = run >= looks
    return out


# -- one cell ---------------------------------------------------------------------------------


@dataclass
class Flags:
    """Latched trap flag, per-question flags and the alert signal of a chunk of runs."""

    trap: Arr
    questions: dict[str, Arr]
    alert: Arr


def run_rules(
    sim: Sim, cfg: ScoringConfig, look_s: float, rules: tuple[str, ...]
) -> dict[str, Flags]:
    on, off = cfg.trap.on_after, cfg.trap.off_after
    out = {}
    if "anytime" in rules:
        epoch_bins = int(cfg.trap.epoch_s / look_s) if cfg.trap.epoch_s > 0 else 0
        cum = sim.cumulative(epoch_bins)
        bounds = anytime_bounds(cum.anchor, cum.variant, cum.b, cum.c, cum.pn, cfg)
        bounds = running_intersection(bounds, epoch_bins)
        q = with_holds(anytime_answers(bounds, cfg), epoch_bins)
        trap = latch(q["less_accurate"] | q["slower"] | q["more_energy"], on, off)
        out["anytime"] = Flags(trap, q, _held(trap, int(ALERT_FOR_S / look_s)))
    if "fixed" in rules:
        win = sim.window(int(cfg.window_s / look_s))
        q, fleet = fixed_rule(win, cfg, look_s)
        trap = latch(q["less_accurate"] | q["slower"] | q["more_energy"], on, off)
        out["fixed"] = Flags(trap, q, _held(trap, int(ALERT_FOR_S / look_s)) | fleet)
    return out


def _first(x: Arr) -> Arr:
    """Index of the first true look per run, or -1."""
    hit = x.any(axis=1)
    return np.where(hit, x.argmax(axis=1), -1)


def measure(
    sc: Scenario,
    runs: int,
    horizon_s: float,
    look_s: float,
    cfg: ScoringConfig,
    seed: int,
    rules: tuple[str, ...],
    chunk: int,
) -> list[Result]:
    rng = np.random.default_rng(seed)
    bins = int(horizon_s / look_s)
    acc: dict[str, dict[str, list[Arr]]] = {
        r: {"first": [], "first_alert": [], "time": [], "episodes": [], "detect": []} for r in rules
    }
    done = 0
    while done < runs:
        paths = min(chunk, runs - done)
        sim = simulate(rng, sc, paths, bins, look_s)
        for rule, f in run_rules(sim, cfg, look_s, rules).items():
            a = acc[rule]
            a["first"].append(_first(f.trap))
            a["first_alert"].append(_first(f.alert))
            a["time"].append(f.trap.mean(axis=1))
            rises = (f.trap[:, 1:] & ~f.trap[:, :-1]).sum(axis=1) + f.trap[:, 0]
            a["episodes"].append(rises)
            if sc.effect is not None:
                a["detect"].append(_first(f.trap & f.questions[sc.effect]))
        done += paths
    out = []
    for rule, a in acc.items():
        first = np.concatenate(a["first"])
        first_alert = np.concatenate(a["first_alert"])
        res = Result(sc.name, rule, sc.rate, sc.paired, runs, horizon_s)
        for h, secs in HORIZONS.items():
            if secs <= horizon_s:
                lim = secs / look_s
                res.flagged_runs[h] = float(np.mean((first >= 0) & (first < lim)))
                res.alerted_runs[h] = float(np.mean((first_alert >= 0) & (first_alert < lim)))
        res.time_flagged = float(np.mean(np.concatenate(a["time"])))
        res.episodes_per_day = float(np.mean(np.concatenate(a["episodes"])) * DAY / horizon_s)
        if a["detect"]:
            det = np.concatenate(a["detect"]).astype(float)
            t = np.where(det >= 0, (det + 1) * look_s, np.inf)
            res.detected = float(np.mean(det >= 0))
            ts = np.sort(t)  # empirical quantiles (inverse CDF): censored runs count as ∞
            med, p90 = (ts[math.ceil(q * ts.size) - 1] for q in (0.5, 0.9))
            res.detect_median_s = float(med) if math.isfinite(med) else None
            res.detect_p90_s = float(p90) if math.isfinite(p90) else None
        out.append(res)
    return out


# -- equivalence with the runtime on a slice ---------------------------------------------------


def check_against_runtime(cfg: ScoringConfig, look_s: float, hours: float, seed: int) -> int:
    """Feed the same events to :class:`LiveScorer`; compare every bound at every look."""
    compared = 0
    for sc in (
        Scenario("check tagged", 6.0, False, acc_v=0.35, energy_v=1.15),
        Scenario("check shadow", 6.0, True, speed_v=0.9),
    ):
        rng = np.random.default_rng(seed)
        bins = int(hours * HOUR / look_s)
        sim = simulate(rng, sc, 2, bins, look_s)
        cum = sim.cumulative(0)
        bounds = anytime_bounds(cum.anchor, cum.variant, cum.b, cum.c, cum.pn, cfg)
        bounds = running_intersection(bounds, 0)
        for path in range(2):
            scorer = LiveScorer(cfg, [ModelSpec("m", "bf16", (("bf16", 16), ("nf4", 4)))])
            per_bin = {side: _events_of(sim.events[side], path, bins) for side in sim.events}
            for j in range(bins):
                now = (j + 1) * look_s
                for side, variant in (("anchor", "bf16"), ("variant", "nf4")):
                    for k, (tok, sec, joule, ok) in enumerate(per_bin[side][j]):
                        scorer.ingest(
                            Observation(
                                at=now - look_s / 2,
                                model="m",
                                variant=variant,
                                role="primary",
                                bucket="1",
                                ok=True,
                                gen_tokens=int(tok),
                                gen_s=float(sec),
                                completion_tokens=int(tok),
                                energy_j=float(joule),
                                energy_method="nvml_counter",
                                dataset="gsm8k",
                                correct=bool(ok),
                                pair_key=f"{j}-{k}" if sc.paired else None,
                            ),
                            now,
                        )
                snap = scorer.evaluate(now)
                rows = [r for v in snap.models[0].variants if v.variant == "nf4" for r in v.buckets]
                if not rows or rows[0].verdicts is None:
                    continue
                got = rows[0].verdicts
                for name, cs, (lo, hi) in (
                    ("accuracy", got.accuracy, bounds.acc),
                    ("paired", got.accuracy_paired, bounds.paired),
                    ("speed", got.speed, bounds.speed),
                    ("energy", got.energy, bounds.energy),
                ):
                    want = (lo[path, j], hi[path, j])
                    if cs is None:
                        assert math.isnan(want[0]), (sc.name, name, j, want)
                        continue
                    assert np.allclose((cs.low, cs.high), want, rtol=1e-6, atol=1e-9), (
                        sc.name,
                        name,
                        j,
                        (cs.low, cs.high),
                        want,
                    )
                    compared += 1
    return compared


def _events_of(
    ev: dict[str, Arr], path: int, bins: int
) -> list[list[tuple[float, float, float, bool]]]:
    out: list[list[tuple[float, float, float, bool]]] = [[] for _ in range(bins)]
    for i in np.flatnonzero(ev["idx"] // bins == path):
        out[int(ev["idx"][i] % bins)].append(
            (ev["tokens"][i], ev["seconds"][i], ev["joules"][i], bool(ev["correct"][i]))
        )
    return out


# -- main ----------------------------------------------------------------------------------------


def scenarios(quick: bool) -> Iterator[tuple[Scenario, float, tuple[str, ...]]]:
    """(scenario, horizon, rules) of the default run."""
    week = 1 * DAY if quick else 7 * DAY
    both = ("anytime", "fixed")
    for rate in (0.5, 2.0, 10.0):
        yield Scenario(f"A/A tagged {rate:g}/min", rate, False), week, ("anytime",)
    yield Scenario("A/A tagged 60/min", 60.0, False), DAY, ("anytime",)
    for rate in (2.0, 10.0):
        yield Scenario(f"A/A shadow {rate:g}/min", rate, True), week, ("anytime",)
    yield Scenario("A/A tagged 2/min", 2.0, False), DAY, both
    yield Scenario("A/A shadow 2/min", 2.0, True), DAY, both
    for rate in (2.0, 10.0):
        for paired, kind in ((False, "tagged"), (True, "shadow")):
            yield (
                Scenario(f"accuracy -4 pts {kind} {rate:g}/min", rate, paired, acc_v=0.39),
                week,
                both,
            )
        yield Scenario(f"energy +20% {rate:g}/min", rate, False, energy_v=1.2), DAY, both
        yield Scenario(f"speed -20% {rate:g}/min", rate, False, speed_v=0.8), DAY, both


def _fmt_s(s: float | None, horizon: float) -> str:
    if s is None:
        return f"> {horizon / HOUR:g} h"
    return f"{s / 60:.0f} min" if s < 2 * HOUR else f"{s / HOUR:.1f} h"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=200, help="simulated runs per cell")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--look-s", type=float, default=15.0)
    ap.add_argument("--chunk", type=int, default=25, help="runs simulated at once (memory)")
    ap.add_argument("--quick", action="store_true", help="fewer runs, 24 h horizons")
    ap.add_argument("--check-hours", type=float, default=3.0, help="0: skip the runtime check")
    ap.add_argument("--tune-samples", type=float, default=None)
    ap.add_argument("--confidence", type=float, default=None)
    ap.add_argument("--epoch-s", type=float, default=None)
    ap.add_argument("--only", default="", help="run the cells whose name contains this")
    ap.add_argument("--rules", default="anytime,fixed", help="which rules to run")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    trap: dict[str, float] = {}
    if args.tune_samples is not None:
        trap["tune_samples"] = args.tune_samples
    if args.epoch_s is not None:
        trap["epoch_s"] = args.epoch_s
    overrides: dict[str, object] = {"trap": trap}
    if args.confidence is not None:
        overrides["confidence"] = args.confidence
    cfg = ScoringConfig.model_validate(overrides)
    runs = 20 if args.quick else args.runs
    started = time.process_time()
    if args.check_hours > 0:
        n = check_against_runtime(cfg, args.look_s, args.check_hours, args.seed)
        print(
            f"runtime check: {n} confidence-sequence bounds equal to LiveScorer's "
            f"({args.check_hours:g} simulated hours, tagged and shadow)"
        )
    print(
        f"level {cfg.confidence} per variant/bucket/epoch, epoch {cfg.trap.epoch_s / HOUR:g} h, "
        f"margins δ={cfg.trap.accuracy_tolerance} speed {cfg.trap.speed_tolerance:.0%} "
        f"energy {cfg.trap.energy_tolerance:.0%}, tune_samples {cfg.trap.tune_samples:g}, "
        f"{runs} runs per cell, looks every {args.look_s:g} s"
    )
    head = (
        "| cell | rule | runs × horizon | flagged ≤1h / ≤24h / ≤7d | alerted ≤1h / ≤24h / ≤7d "
        "| time flagged | episodes/day | detect median / p90 (detected) |"
    )
    print(head)
    print("|" + "---|" * 8)
    results: list[Result] = []
    for i, (sc, horizon, rules) in enumerate(scenarios(args.quick)):
        rules = tuple(r for r in rules if r in args.rules.split(","))
        if not rules or (args.only and args.only not in sc.name):
            continue
        for res in measure(sc, runs, horizon, args.look_s, cfg, args.seed + i, rules, args.chunk):
            results.append(res)

            def pct(d: dict[str, float]) -> str:
                return " / ".join(f"{d[h]:.1%}" if h in d else "—" for h in HORIZONS)

            det = "—"
            if sc.effect is not None:
                det = (
                    f"{_fmt_s(res.detect_median_s, horizon)} / "
                    f"{_fmt_s(res.detect_p90_s, horizon)} ({res.detected:.0%})"
                )
            flagged = pct(res.flagged_runs) if sc.effect is None else "(true effect)"
            alerted = pct(res.alerted_runs) if sc.effect is None else "—"
            print(
                f"| {sc.name} | {res.rule} | {runs} × {horizon / HOUR:g} h | {flagged} | {alerted} "
                f"| {res.time_flagged:.2%} | {res.episodes_per_day:.2f} | {det} |",
                flush=True,
            )
    print(f"CPU {time.process_time() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
