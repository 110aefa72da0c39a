"""False alarms and detection of the agent-hop trend (does shadow disagreement grow after hop 0?).

Run: ``python benchmarks/hop_trend.py`` (defaults: 500 runs per scenario, 3,000 comparisons
per run, a look every 10 comparisons, seed 1; ``--runs``, ``--comparisons``, ``--seed``).
Results in docs/scoring.md.

Each run feeds simulated shadow comparisons to the real :func:`scoring.agreement.hop_trend`
(through :class:`scoring.windows.AgreementCell`, as the live scorer does): a comparison's
primary sits at hop 0 with probability 0.3, else at hop 1-9 uniformly; it disagrees with
probability ``p_first`` at hop 0 and ``p_later`` after. At every look the trend is computed
at level 0.95 with the defaults of ``scoring.trap`` (20 comparable answers a side,
``tune_samples`` 300). Printed per scenario: the share of runs in which ``grows`` was ever
true, and for true effects the comparisons to the first ``grows`` (median, 90th percentile).
For contrast the same looks are also judged by a fixed-sample two-proportion z-test at 95 %
(two-sided, flagging ``z > 1.96``), re-run at every look.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

from core.buckets import hop_position_bucket
from scoring.agreement import hop_trend
from scoring.windows import AgreementCell

SCENARIOS = (  # (name, p_first, p_later)
    ("A/A 10 % everywhere", 0.10, 0.10),
    ("A/A 30 % everywhere", 0.30, 0.30),
    ("5 % -> 10 % after hop 0", 0.05, 0.10),
    ("5 % -> 15 % after hop 0", 0.05, 0.15),
)


def _z_flags(cell: AgreementCell) -> bool:
    first = cell.hops.get("0", [0, 0, 0])
    n_f, d_f = first[0] + first[1], first[1]
    n_l = sum(c[0] + c[1] for b, c in cell.hops.items() if b != "0")
    d_l = sum(c[1] for b, c in cell.hops.items() if b != "0")
    if min(n_f, n_l) < 20:
        return False
    pooled = (d_f + d_l) / (n_f + n_l)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_f + 1 / n_l))
    return se > 0 and (d_l / n_l - d_f / n_f) / se > 1.96


def _run(
    rng: random.Random, p_first: float, p_later: float, n: int, every: int
) -> tuple[int | None, bool]:
    cell = AgreementCell()
    first_grows: int | None = None
    z_ever = False
    for i in range(1, n + 1):
        hop = 0 if rng.random() < 0.3 else rng.randint(1, 9)
        p = p_first if hop == 0 else p_later
        agree = rng.random() >= p
        cell.add(agree, hop_position_bucket(hop), "agree" if agree else "wrong_arguments")
        if i % every:
            continue
        if first_grows is None and hop_trend(cell, 0.0, 0.05, 300, 20).grows:
            first_grows = i
        z_ever = z_ever or _z_flags(cell)
    return first_grows, z_ever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--comparisons", type=int, default=3000)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    print(
        f"{args.runs} runs x {args.comparisons} comparisons, a look every {args.every}; "
        "30 % of comparisons at hop 0"
    )
    print(f"{'scenario':<26} {'grows ever':>10} {'median n':>9} {'p90 n':>7} {'z-test ever':>12}")
    for name, p_first, p_later in SCENARIOS:
        results = [
            _run(rng, p_first, p_later, args.comparisons, args.every) for _ in range(args.runs)
        ]
        hits = sorted(r[0] for r in results if r[0] is not None)
        share = len(hits) / args.runs
        z_share = sum(r[1] for r in results) / args.runs
        median = f"{statistics.median(hits):.0f}" if share >= 0.5 else f">{args.comparisons}"
        p90 = f"{hits[int(0.9 * args.runs) - 1]}" if share >= 0.9 else f">{args.comparisons}"
        if p_first == p_later:
            median = p90 = "-"
        print(f"{name:<26} {share:>10.3f} {median:>9} {p90:>7} {z_share:>12.3f}")
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
