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
hours, so the statistic's updates are vectorised with numpy (running sums per look, the same
formulas: ``benchmarks/false_alarm_rules.py``; the traffic: ``false_alarm_traffic.py``).
``--check-hours`` proves the equivalence on a slice: it feeds the same events to the real
:class:`scoring.live.LiveScorer` and compares every confidence-sequence bound at every look
(3 simulated hours by default, before the benchmark).

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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from false_alarm_rules import (
    anytime_answers,
    anytime_bounds,
    fixed_rule,
    held_for,
    latch,
    running_intersection,
    with_holds,
)
from false_alarm_traffic import Arr, Scenario, Sim, simulate

from scoring.config import ScoringConfig
from scoring.live import LiveScorer, ModelSpec
from scoring.windows import Observation

HOUR, DAY = 3600.0, 86400.0
HORIZONS = {"1h": HOUR, "24h": DAY, "7d": 7 * DAY}
ALERT_FOR_S = 300.0


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
        out["anytime"] = Flags(trap, q, held_for(trap, int(ALERT_FOR_S / look_s)))
    if "fixed" in rules:
        win = sim.window(int(cfg.window_s / look_s))
        q, fleet = fixed_rule(win, cfg, look_s)
        trap = latch(q["less_accurate"] | q["slower"] | q["more_energy"], on, off)
        out["fixed"] = Flags(trap, q, held_for(trap, int(ALERT_FOR_S / look_s)) | fleet)
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
