"""The head-count / SAA ablation at a glance: one panel per measure across the trained ablation set."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    """
    label: str
    heads: int
    saa: bool
    top1: float
    erf_area: dict
    low_frequency_change: Optional[float]


def plot_ablation(rows: Sequence[AblationRow], *, width: Optional[float] = None, threshold: float = 0.5):
    """Three panels over the ablation set: top-1, the last stage's ERF area ratio at `threshold`, and SAA's
    low-frequency change; models with SAA on in blue, SAA off in orange."""
    fig = new_figure(width, aspect=0.36)
    axes = fig.subplots(1, 3)
    x = np.arange(len(rows))
    colors = [COLORS["sam"] if r.saa else COLORS["msa"] for r in rows]
    labels = [r.label.replace(" = ", "=") for r in rows]
    erf = [r.erf_area.get(threshold) for r in rows]
    lf = [r.low_frequency_change for r in rows]
    panels = [
        ([r.top1 for r in rows], "top-1 (%)", "accuracy"),
        ([np.nan if v is None else v for v in erf], f"ERF area ratio (t = {threshold:g})", "last-stage ERF"),
        ([np.nan if v is None else v for v in lf], r"$\Delta$ low-freq. share", "SAA output $-$ input"),
    ]
    for ax, (values, ylabel, title) in zip(axes, panels):
        v = np.asarray(values, dtype=float)
        ax.bar(x, np.nan_to_num(v), color=colors, width=0.65)
        for xi, vi in zip(x, v):
            if np.isnan(vi):
                ax.text(xi, 0.5, "n/a", ha="center", va="center", fontsize="x-small", color="0.4",
                        transform=ax.get_xaxis_transform())
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize="x-small")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize="small")
        ax.axhline(0, color="0.5", lw=0.4)
    finite = [r.top1 for r in rows]
    if finite:
        lo = max(0.0, min(finite) - 10)
        axes[0].set_ylim(lo, min(100.0, max(finite) + 5))
    axes[1].set_xlabel("trained model (MHMC heads N)", fontsize="x-small")
    return fig
