"""The head-count / SAA ablation at a glance: one panel per measure across the trained ablation set."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..style import COLORS
from .base import new_figure

__all__ = ["AblationRow", "plot_ablation"]


@dataclass(frozen=True)
class AblationRow:
    """One trained model of the ablation set and what was measured on it.

    Attributes:
        label: What differs ("N = 4", "SAA off").
        heads: MHMC head count N.
        saa: Whether SAA is on.
        top1: Top-1 (%) on the evaluation images.
        erf_area: {t: high-contribution area ratio} of the last stage's ERF.
        low_frequency_change: Mean over SAM blocks of (output share - input share) of SAA; None with SAA off.
        seeds: Per training seed, {"top1", "erf_area", "low_frequency_change"} (the dots); the fields above
            are then the means over seeds.
        intervals: {"top1" | "erf_area" | "low_frequency_change": (low, high)}, the 95% interval of the mean
            (across seeds and images); absent where none can be formed.
    """
    label: str
    heads: int
    saa: bool
    top1: float
    erf_area: dict
    low_frequency_change: Optional[float]
    seeds: tuple = ()
    intervals: dict = field(default_factory=dict)


def plot_ablation(rows: Sequence[AblationRow], *, width: Optional[float] = None, threshold: float = 0.5):
    """Three panels over the ablation set: top-1, the last stage's ERF area ratio at `threshold`, and SAA's
    low-frequency change. Each training seed is a small dot; the mean over seeds is a larger marker with its
    95% interval (across seeds and images) as an error bar; SAA on in blue, SAA off in orange. Points, not
    bars, so no axis needs to start at zero."""
    fig = new_figure(width, aspect=0.36)
    axes = fig.subplots(1, 3)
    x = np.arange(len(rows))
    colors = [COLORS["sam"] if r.saa else COLORS["msa"] for r in rows]
    labels = [r.label.replace(" = ", "=") for r in rows]
    panels = [
        ("top1", lambda r: r.top1, lambda d: d.get("top1"), "top-1 (%)", "accuracy"),
        ("erf_area", lambda r: r.erf_area.get(threshold), lambda d: d.get("erf_area"),
         f"ERF area ratio (t = {threshold:g})", "last-stage ERF"),
        ("low_frequency_change", lambda r: r.low_frequency_change, lambda d: d.get("low_frequency_change"),
         r"$\Delta$ low-freq. share", "SAA output $-$ input"),
    ]
    for ax, (key, mean_of, seed_of, ylabel, title) in zip(axes, panels):
        for xi, r, c in zip(x, rows, colors):
            dots = [v for v in (seed_of(d) for d in r.seeds) if v is not None]
            if dots:
                offsets = np.linspace(-0.18, 0.18, len(dots)) if len(dots) > 1 else [0.0]
                ax.scatter(xi + np.asarray(offsets), dots, s=8, color=c, alpha=0.45, lw=0, zorder=2)
            m = mean_of(r)
            if m is None or not np.isfinite(m):
                ax.text(xi, 0.5, "n/a", ha="center", va="center", fontsize="x-small", color="0.4",
                        transform=ax.get_xaxis_transform())
                continue
            lo, hi = r.intervals.get(key, (np.nan, np.nan))
            if np.isfinite(lo) and np.isfinite(hi):
                ax.errorbar(xi, m, yerr=[[m - lo], [hi - m]], fmt="none", ecolor=c, elinewidth=0.9, capsize=2,
                            zorder=3)
            ax.scatter([xi], [m], s=22, color=c, marker="D", edgecolors="white", lw=0.4, zorder=4)
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize="x-small")
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize="small")
        if key == "low_frequency_change":
            ax.axhline(0, color="0.5", lw=0.4)
    axes[1].set_xlabel("trained model (MHMC heads N); dots: seeds, diamond and bar: mean, 95% interval",
                       fontsize="x-small")
    return fig
