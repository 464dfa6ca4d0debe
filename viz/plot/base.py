"""What every plot shares: figures built without pyplot, image panels, block and stage labels.

Plot functions take arrays (or the analyses' result objects), draw into the caller's `ax` when given
one, and otherwise build a `matplotlib.figure.Figure` without pyplot (headless, widget-safe). They
never show, save or change global settings; sizes and fonts come from the active style context
(`viz.style.paper` / `viz.style.screen`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

__all__ = ["new_figure", "new_axes", "to_numpy", "show_image", "show_map", "block_label", "stage_label",
           "panel_title", "default_width", "stage_boundaries", "mark_stages", "display_relative"]


def to_numpy(x: Any) -> np.ndarray:
    """A tensor (any device, any float dtype) or array-like as a float64/uint8 numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        x = x.numpy() if x.dtype.is_floating_point is False else x.double().numpy()
    return np.asarray(x)


def display_relative(maps: Any, *, scale: Optional[float] = None) -> tuple[np.ndarray, float]:
    """Maps divided by one shared scale (their largest |value| by default), for a fixed [0, 1] (or [-1, 1])
    colour range: (the divided maps as float64, the scale). A scale of 0 counts as 1 (an all-zero map stays 0)."""
    m = to_numpy(maps).astype(np.float64)
    top = float(np.abs(m).max()) if scale is None and m.size else (scale if scale is not None else 1.0)
    top = top if top > 0 else 1.0
    return m / top, top


def default_width() -> float:
    """The active style's figure width in inches (`figure.figsize` of the rc context)."""
    import matplotlib

    return float(matplotlib.rcParams["figure.figsize"][0])


def new_figure(width: Optional[float] = None, height: Optional[float] = None, *, aspect: float = 0.62):
    """A `Figure` without pyplot (nothing registered with pyplot, nothing to close), constrained layout."""
    from matplotlib.figure import Figure

    width = width if width is not None else default_width()
    height = height if height is not None else width * aspect
    return Figure(figsize=(width, height), layout="constrained")


def new_axes(ax=None, *, width: Optional[float] = None, aspect: float = 0.62):
    """`ax` itself, or the single Axes of a new pyplot-free Figure."""
    if ax is not None:
        return ax
    return new_figure(width, aspect=aspect).add_subplot()


def show_image(ax, image: Any, *, title: Optional[str] = None):
    """An RGB image ((H, W, 3) uint8 or floats in [0, 1], or (3, H, W)) on an axis without ticks."""
    img = to_numpy(image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 1)
    im = ax.imshow(img, interpolation="antialiased")
    _bare(ax, title)
    return im


def show_map(ax, values: Any, *, cmap: str = "viridis", norm=None, title: Optional[str] = None,
             interpolation: str = "nearest"):
    """A 2-D map on an axis without ticks; returns the image artist (for a shared colorbar)."""
    m = to_numpy(values)
    if m.ndim != 2:
        raise ValueError(f"a map must be 2-D (H, W), got shape {m.shape}")
    im = ax.imshow(m, cmap=cmap, norm=norm, interpolation=interpolation)
    _bare(ax, title)
    return im


def _bare(ax, title: Optional[str]) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title)


def panel_title(ax, text: str) -> None:
    ax.set_title(text)


def stage_label(stage: int) -> str:
    """A stage index as readers see it: stages.0 is "stage 1"."""
    return f"stage {stage + 1}"


def block_label(name: str, *, short: bool = False) -> str:
    """`stages.1.blocks.0` -> "stage 2, block 1" (or "S2.B1" when `short`); other names pass through."""
    parts = name.split(".")
    if len(parts) >= 4 and parts[0] == "stages" and parts[2] == "blocks":
        s, b = int(parts[1]) + 1, int(parts[3]) + 1
        return f"S{s}.B{b}" if short else f"stage {s}, block {b}"
    return name


def stage_boundaries(names: Sequence[str]) -> list[tuple[int, int, int]]:
    """(stage, first index, last index) of each run of blocks of one stage in `names` (depth order)."""
    out: list[tuple[int, int, int]] = []
    for k, n in enumerate(names):
        parts = n.split(".")
        s = int(parts[1]) if len(parts) > 1 and parts[0] == "stages" and parts[1].isdigit() else -1
        if out and out[-1][0] == s:
            out[-1] = (s, out[-1][1], k)
        else:
            out.append((s, k, k))
    return out


def mark_stages(ax, names: Sequence[str], positions: Sequence[float]) -> None:
    """Dotted lines between stages and "stage i" labels along the top of a depth axis."""
    import matplotlib.transforms as mtransforms

    bounds = [b for b in stage_boundaries(names) if b[0] >= 0]
    trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    for k, (s, first, last) in enumerate(bounds):
        if k:
            x = 0.5 * (positions[first - 1] + positions[first])
            ax.axvline(x, color="0.6", lw=0.4, ls=":", zorder=0)
        centre = 0.5 * (positions[first] + positions[last])
        ax.text(centre, 0.985, f"S{s + 1}", transform=trans, ha="center", va="top", fontsize="x-small",
                color="0.35")
