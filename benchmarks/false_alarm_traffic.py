"""Simulated traffic for the false-alarm benchmark: per-look sums of both sides of a cell.

See ``benchmarks/false_alarms.py`` for the model (Poisson arrivals, tagged or shadow-paired
graded requests, heavy-tailed speed and energy) and what is measured.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

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
