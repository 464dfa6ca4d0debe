"""Effective receptive fields (RepLKNet's measure, `viz.analysis.erf`): display-transformed maps on one scale,
and the high-contribution area ratios as a table."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional

from ..style import MAGNITUDE_CMAP, add_colorbar
from .base import new_axes, new_figure, show_map, to_numpy

__all__ = ["plot_erf", "plot_erf_grid", "area_ratio_table"]


def plot_erf(display: object, *, ax=None, title: Optional[str] = None, colorbar: bool = False):
    """One ERF, display-transformed (`erf_display`: log10(x + 1) / max, in [0, 1]), on the fixed [0, 1] scale."""
    from matplotlib.colors import Normalize

    ax = new_axes(ax, aspect=1.0)
    im = show_map(ax, to_numpy(display), cmap=MAGNITUDE_CMAP, norm=Normalize(0, 1), title=title)
    if colorbar:
        add_colorbar(im, ax, label=r"$\log_{10}(g + 1)$ / max")
    return ax


def area_ratio_table(ratios: Mapping[str, Mapping[float, Optional[float]]], *, latex: bool = False) -> str:
    """Area ratios {row label: {t: ratio}} as a Markdown table, or a LaTeX (booktabs) tabular."""
    ts = sorted({t for r in ratios.values() for t in r})
    cells = [[("n/a" if r.get(t) is None else f"{r[t]:.3f}") for t in ts] for r in ratios.values()]
    if latex:
        head = " & ".join(["ERF"] + [f"$t={t:g}$" for t in ts]) + r" \\"
        body = "".join(" & ".join([label.replace("_", r"\_")] + row) + r" \\" + "\n"
                       for label, row in zip(ratios, cells))
        return ("\\begin{tabular}{l" + "r" * len(ts) + "}\n\\toprule\n" + head + "\n\\midrule\n" + body
                + "\\bottomrule\n\\end{tabular}\n")
    head = "| ERF | " + " | ".join(f"t = {t:g}" for t in ts) + " |\n|---|" + "---|" * len(ts) + "\n"
    return head + "".join("| " + " | ".join([label] + row) + " |\n" for label, row in zip(ratios, cells))


def plot_erf_grid(maps: Mapping[str, Sequence], ratios: Optional[Mapping[str, Sequence[Mapping]]] = None, *,
                  columns: Sequence[str], width: Optional[float] = None, pixels: Optional[int] = None):
    """ERF maps in a grid (rows: models, e.g. trained / random init; columns: stages) on one shared [0, 1]
    scale; each panel's high-contribution area ratios are printed under it.

    Args:
        maps: {row label: [display map per column]}.
        ratios: {row label: [{t: ratio} per column]}, optional (the same keys as `maps`).
        columns: Column titles.
        width: Figure width in inches.
        pixels: Image side in pixels (for the axis note).

    Returns:
        The Figure.
    """
    rows = list(maps)
    ncol = len(columns)
    fig = new_figure(width, aspect=len(rows) * 0.93 / ncol + 0.08)
    axes = fig.subplots(len(rows), ncol, squeeze=False)
    im = None
    ts = None
    for r, label in enumerate(rows):
        for c in range(ncol):
            plot_erf(maps[label][c], ax=axes[r, c], title=columns[c] if r == 0 else None)
            im = axes[r, c].images[0]
            if ratios is not None:
                cell = ratios[label][c]
                ts = sorted(cell)
                axes[r, c].set_xlabel(" / ".join("n/a" if cell[t] is None else f"{cell[t]:.3f}" for t in ts),
                                      fontsize="x-small", labelpad=1.5)
        axes[r, 0].set_ylabel(label, fontsize="small")
    cb = add_colorbar(im, axes, label=r"$\log_{10}(g + 1)$ / max")
    note = []
    if ts:
        note.append("under each map: area ratio at t = " + " / ".join(f"{t:g}" for t in ts))
    if pixels:
        note.append(f"input {pixels}$\\times${pixels} px")
    if note:
        fig.supxlabel("; ".join(note), fontsize="x-small")
    del cb
    return fig
