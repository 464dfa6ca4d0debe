"""Distance against depth: modulation distance of SAM blocks and mean attention distance of MSA blocks, in
pixels (`viz.analysis.distance`), the paper's local-to-global claim on one axis."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np

from ..style import COLORS
from .base import mark_stages, new_axes, to_numpy

__all__ = ["plot_distance_profile"]


def plot_distance_profile(profile: Sequence, *, ax=None, others: Optional[Mapping[str, Sequence]] = None,
                          label: str = "SMT", unit: str = "px"):
    """One dot per head per block over normalised depth, the per-block distance as a line.

    Args:
        profile: `BlockDistance` results in depth order (`smt_distance_profile`).
        ax: Axes to draw into.
        others: {label: profile} of other models (e.g. ViT, Swin attention distances) drawn beside it.
        label: Legend label of `profile`.
        unit: Distance unit for the axis label ("px", or "fraction of the diagonal").
    """
    ax = new_axes(ax)
    n = len(profile)
    depth = (np.arange(n) + 1) / n
    for kind, marker in (("sam", "o"), ("msa", "^")):
        xs, ys = [], []
        for d, b in zip(depth, profile):
            if b.kind == kind:
                heads = to_numpy(b.per_head)
                xs += [d] * len(heads)
                ys += list(heads)
        if xs:
            what = "modulation (SAM)" if kind == "sam" else "attention (MSA)"
            ax.scatter(xs, ys, s=6, marker=marker, color=COLORS[kind], alpha=0.55, lw=0,
                       label=f"{label} {what}, per head")
    ax.plot(depth, [b.distance for b in profile], color=COLORS["black"], lw=0.9, label=f"{label} per block",
            zorder=3)
    for name, prof in (others or {}).items():
        m = len(prof)
        d2 = (np.arange(m) + 1) / m
        color = COLORS.get(name.split()[0].lower(), COLORS["grey"])
        ax.scatter(np.repeat(d2, [len(to_numpy(b.per_head)) for b in prof]),
                   np.concatenate([to_numpy(b.per_head) for b in prof]), s=4, color=color, alpha=0.35, lw=0)
        ax.plot(d2, [b.distance for b in prof], color=color, lw=0.9, label=f"{name} per block (attention)")
    if not others:
        mark_stages(ax, [b.name for b in profile], depth)
    ax.set_xlabel("normalised depth")
    ax.set_ylabel(f"distance ({unit})")
    ax.set_xlim(0, 1.03)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="xx-small", loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, borderaxespad=0.2,
              columnspacing=1.0, handletextpad=0.3)
    return ax
