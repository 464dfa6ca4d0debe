"""Effective receptive fields (RepLKNet's measure, `viz.analysis.erf`): display-transformed maps on one scale,
and the high-contribution area ratios as a table."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional

from ..style import MAGNITUDE_CMAP, add_colorbar
from .base import new_axes, new_figure, show_map, to_numpy

__all__ = ["plot_erf", "plot_erf_grid", "area_ratio_rows"]


def plot_erf(display: object, *, ax=None, title: Optional[str] = None, colorbar: bool = False):
    """One ERF, display-transformed (`erf_display`: log10(x + 1) / max, in [0, 1]), on the fixed [0, 1] scale."""
    from matplotlib.colors import Normalize

    ax = new_axes(ax, aspect=1.0)
    im = show_map(ax, to_numpy(display), cmap=MAGNITUDE_CMAP, norm=Normalize(0, 1), title=title)
    if colorbar:
        add_colorbar(im, ax, label=r"$\log_{10}(g + 1)$ / max")
    return ax


def area_ratio_rows(ratios: Mapping[str, Mapping[float, Optional[float]]]) -> tuple[list[str], list[list[str]]]:
    """Table cells of area ratios: {row label: {t: ratio}} -> (column labels, rows of text)."""
    ts = sorted({t for r in ratios.values() for t in r})
    cols = [f"t = {t:g}" for t in ts]
    rows = [[("n/a" if r.get(t) is None else f"{r[t]:.3f}") for t in ts] for r in ratios.values()]
    return cols, rows


def plot_erf_grid(maps: Mapping[str, Sequence], ratios: Mapping[str, Mapping[float, Optional[float]]], *,
                  columns: Sequence[str], width: Optional[float] = None, pixels: Optional[int] = None):
    """ERF maps in a grid (rows: models, e.g. trained / random init; columns: stages) on one shared [0, 1]
    scale, with the area ratios of every map as a table underneath.

    Args:
        maps: {row label: [display map per column]}.
        ratios: {table row label: {t: ratio}} (e.g. "trained, stage 4").
        columns: Column titles.
        width: Figure width in inches.
        pixels: Image side in pixels (for the axis note).

    Returns:
        The Figure.
    """
    rows = list(maps)
    ncol = len(columns)
    table_h = 0.11 * (len(ratios) + 1)
    fig = new_figure(width, aspect=len(rows) / ncol + 0.12 + table_h)
    sub = fig.subfigures(2, 1, height_ratios=[len(rows) / ncol + 0.12, table_h])
    axes = sub[0].subplots(len(rows), ncol, squeeze=False)
    im = None
    for r, label in enumerate(rows):
        for c in range(ncol):
            title = columns[c] if r == 0 else None
            plot_erf(maps[label][c], ax=axes[r, c], title=title)
            im = axes[r, c].images[0]
        axes[r, 0].set_ylabel(label, fontsize="small")
    if pixels:
        axes[-1, 0].set_xlabel(f"{pixels}$\\times${pixels} px input", fontsize="x-small")
    add_colorbar(im, axes, label=r"$\log_{10}(g + 1)$ / max")
    tab_ax = sub[1].add_subplot()
    tab_ax.axis("off")
    cols, cells = area_ratio_rows(ratios)
    table = tab_ax.table(cellText=cells, rowLabels=list(ratios), colLabels=cols, loc="center", cellLoc="center",
                         edges="horizontal")
    table.auto_set_font_size(False)
    import matplotlib

    table.set_fontsize(matplotlib.rcParams["xtick.labelsize"])
    table.scale(1, 0.9)
    tab_ax.set_title("high-contribution area ratio (smallest centred square holding a fraction t of the ERF)",
                     fontsize="x-small")
    return fig
