"""PNG plots of an :class:`~bench.report.Analysis` (matplotlib, headless ``Agg`` backend).

- ``throughput.png``, ``energy.png``, ``cor.png``: tokens/s, NVML energy per query and COR
  against batch size (log 2 axis), one line per variant, error bars = sample sd over repeats;
- ``pillars.png``: TSI, ESI, SSI and SI per variant, one panel per batch size (a missing
  pillar is drawn as an empty slot and labelled n/a, never as a zero bar);
- ``accuracy_depth.png``: accuracy by reasoning depth with Wilson 95% intervals (only when
  accuracy was measured).

Where a quantity was not measured (energy on CPU) the figure says so in its title instead of
plotting zeros.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.analysis import BITS, CellSummary, Spread
from bench.report import Analysis

__all__ = ["write_plots"]


def write_plots(a: Analysis, folder: Path) -> list[Path]:
    """Write the PNGs into ``folder``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    title = f"{a.run.config.model} on {a.run.environment.get('gpu') or a.run.environment['device']}"
    paths = [
        _by_batch(a, folder / "throughput.png", "tokens/s", title, lambda c: c.tokens_per_s),
        _by_batch(
            a,
            folder / "energy.png",
            "energy per query, J (NVML)",
            title,
            lambda c: c.j_per_query,
            unavailable=a.run.energy_unavailable,
        ),
        _cor(a, folder / "cor.png", title),
        _pillars(a, folder / "pillars.png", title),
    ]
    if a.accuracy:
        paths.append(_accuracy(a, folder / "accuracy_depth.png", title))
    return paths


def _variants(a: Analysis) -> list[str]:
    return sorted(a.run.config.variants, key=lambda v: -BITS[v])


def _by_batch(
    a: Analysis,
    path: Path,
    ylabel: str,
    title: str,
    pick: Callable[[CellSummary], Spread | None],
    unavailable: str = "",
) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    drawn = False
    for v in _variants(a):
        cells = sorted((c for c in a.cells if c.variant == v), key=lambda c: c.batch_size)
        points = [(c.batch_size, s) for c in cells if (s := pick(c)) is not None]
        if not points:
            continue
        drawn = True
        xs = [b for b, _ in points]
        spreads = [s for _, s in points]
        ax.errorbar(
            xs,
            [s.mean for s in spreads],
            yerr=[s.sd for s in spreads],
            marker="o",
            capsize=3,
            label=v + (" (anchor)" if v == a.anchor else ""),
        )
    _batch_axis(ax, a)
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_title(title if drawn else f"{title}\nnot measured: {unavailable}", fontsize=9)
    if drawn:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cor(a: Analysis, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for v, by in a.cor.items():
        xs = sorted(by)
        ax.errorbar(
            xs,
            [by[b].mean for b in xs],
            yerr=[by[b].sd for b in xs],
            marker="o",
            capsize=3,
            label=v,
        )
    ax.axhline(0.0, color="grey", linewidth=0.8)
    _batch_axis(ax, a)
    ax.set_ylabel(f"COR vs {a.anchor} (TPS_a / TPS_v - 1)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pillars(a: Analysis, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    cards = a.cards["nvml"]
    sizes = sorted(cards)
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(3.2 * len(sizes), 3.8), sharey=True, squeeze=False
    )
    names = ("TSI", "ESI", "SSI", "SI")
    for ax, size in zip(axes[0], sizes, strict=True):
        card = cards[size]
        variants = [s for s in sorted(card.scores, key=lambda s: -s.bits)]
        width = 0.8 / len(names)
        for k, label in enumerate(names):
            for i, s in enumerate(variants):
                value = (s.bounded.tsi, s.bounded.esi, s.bounded.ssi, s.si)[k]
                x = i + (k - 1.5) * width
                if value is None:
                    ax.text(x, 0.02, "n/a", rotation=90, ha="center", va="bottom", fontsize=6)
                else:
                    ax.bar(x, value, width, color=f"C{k}", label=label if i == 0 else None)
        ax.set_xticks(range(len(variants)), [s.name for s in variants])
        ax.set_ylim(0, 1.1)
        ax.set_title(f"B = {size}", fontsize=9)
    axes[0][0].set_ylabel("pillar (clipped to [0, 1])")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"SI pillars vs {a.anchor}: {title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _accuracy(a: Analysis, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    offset = 0.0
    for v in _variants(a):
        t = a.accuracy.get(v)
        if t is None:
            continue
        depths = sorted(t.by_depth)
        est = [t.by_depth[d][2].estimate for d in depths]
        low = [e - t.by_depth[d][2].low for d, e in zip(depths, est, strict=True)]
        high = [t.by_depth[d][2].high - e for d, e in zip(depths, est, strict=True)]
        ax.errorbar(
            [d + offset for d in depths],
            est,
            yerr=[low, high],
            marker="o",
            capsize=3,
            label=f"{v} ({t.overall.estimate:.3f})",
        )
        offset += 0.08
    ax.set_xlabel("reasoning depth (steps)")
    ax.set_ylabel("accuracy (Wilson 95%)")
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _batch_axis(ax: Any, a: Analysis) -> None:
    sizes = sorted(a.run.config.batch_sizes)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.set_xlabel("batch size (requests in flight)")
