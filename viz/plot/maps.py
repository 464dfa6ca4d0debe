"""Feature maps of scale-aware modulation: the authors' modulator figure and the inside of one SAM block.

Inputs are what `viz.analysis.features` returns (`SAMFeatures`, `modulator_map`, `head_activation_maps`,
`group_channel_maps`) and `viz.analysis.erf.head_erf`'s per-head maps, as tensors or arrays.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np

from ..style import MAGNITUDE_CMAP, SIGNED_CMAP, add_colorbar, magnitude_norm, signed_norm
from .base import block_label, new_axes, new_figure, show_image, show_map, to_numpy

__all__ = ["plot_image", "plot_map", "plot_overlay", "plot_modulator_maps", "plot_head_maps", "plot_head_erf",
           "plot_group_channels", "plot_sam_block", "centre_crop"]


def plot_image(image: Any, *, ax=None, title: Optional[str] = None):
    """One RGB image ((H, W, 3) uint8 or [0, 1] floats); returns the Axes."""
    ax = new_axes(ax, aspect=1.0)
    show_image(ax, image, title=title)
    return ax


def plot_map(values: Any, *, ax=None, signed: bool = False, norm=None, title: Optional[str] = None,
             colorbar: Optional[str] = None):
    """One 2-D map: magnitudes in viridis, signed values (`signed`) in a diverging map centred at zero.

    Args:
        values: (H, W) map.
        ax: Axes to draw into; default a new figure.
        signed: Diverging colour map with a norm symmetric about zero.
        norm: A shared colour norm (`viz.style.magnitude_norm` / `signed_norm`); default this map's range.
        title: Panel title.
        colorbar: Colorbar label; None draws no colorbar.
    """
    ax = new_axes(ax, aspect=1.0)
    m = to_numpy(values)
    norm = norm if norm is not None else (signed_norm(m) if signed else magnitude_norm(m))
    im = show_map(ax, m, cmap=SIGNED_CMAP if signed else MAGNITUDE_CMAP, norm=norm, title=title)
    if colorbar is not None:
        add_colorbar(im, ax, label=colorbar)
    return ax


def plot_overlay(image: Any, heat: Any, *, ax=None, title: Optional[str] = None, alpha: float = 0.55):
    """A non-negative map (h, w) over its image ((H, W, 3)), upsampled bilinearly and scaled to [0, 1]
    (`viz.plot.cam.overlay` blends them); returns the Axes."""
    import torch
    import torch.nn.functional as F

    from .cam import overlay

    ax = new_axes(ax, aspect=1.0)
    img = to_numpy(image)
    chw = torch.from_numpy(img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else 1.0)).permute(2, 0, 1)
    h = torch.as_tensor(to_numpy(heat), dtype=torch.float32)[None, None]
    h = F.interpolate(h, size=chw.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    h = (h - h.min()) / (h.max() - h.min()).clamp_min(1e-12)
    show_image(ax, overlay(chw, h, alpha=alpha), title=title)
    return ax


def plot_modulator_maps(images: Any, maps: Mapping[str, Any], *, labels: Optional[Sequence[str]] = None,
                        predictions: Optional[Sequence[str]] = None, width: Optional[float] = None,
                        share: str = "column"):
    """The authors' modulator figure: images in rows; each image, then mean_c |modulator| of each block.

    Args:
        images: (B, H, W, 3) images as shown.
        maps: Block name -> (B, h, w) modulator maps (`modulator_map`), in column order.
        labels: True class name per image (row label), optional.
        predictions: Predicted class name per image, optional.
        width: Figure width in inches; default the style's.
        share: "column": one colour scale per block across images (so the rows compare), with one
            colorbar per column; "panel": each map scaled to its own range (as the authors show them).

    Returns:
        The Figure (rows x (1 + blocks) panels).
    """
    imgs = to_numpy(images)
    blocks = list(maps)
    arrays = [to_numpy(maps[b]) for b in blocks]
    n = imgs.shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ValueError(f"{n} images but modulator maps for {[a.shape[0] for a in arrays]} images")
    cols = 1 + len(blocks)
    fig = new_figure(width, aspect=n / cols + 0.22)
    axes = fig.subplots(n, cols, squeeze=False)
    norms = [magnitude_norm(a) for a in arrays] if share == "column" else [None] * len(arrays)
    for r in range(n):
        show_image(axes[r, 0], imgs[r])
        text = []
        if labels is not None:
            text.append(labels[r])
        if predictions is not None:
            text.append(f"pred. {predictions[r]}")
        if text:
            axes[r, 0].set_ylabel("\n".join(text), fontsize="x-small")
        for c, (b, a) in enumerate(zip(blocks, arrays)):
            norm = norms[c] if norms[c] is not None else magnitude_norm(a[r])
            im = show_map(axes[r, c + 1], a[r], cmap=MAGNITUDE_CMAP, norm=norm, interpolation="bilinear")
            if r == 0:
                axes[r, c + 1].set_title(block_label(b).replace(", ", "\n"), fontsize="small")
            if r == n - 1 and share == "column":
                add_colorbar(im, axes[:, c + 1], location="bottom", label=r"mean $|m|$")
    axes[0, 0].set_title("image", fontsize="small")
    return fig


def plot_head_maps(maps: Any, kernel_sizes: Sequence[int], *, axes: Optional[Sequence] = None,
                   width: Optional[float] = None, colorbar: str = r"mean $|$head$|$"):
    """Per-head maps (N, H, W) with one shared colour scale, titled with each head's kernel size.

    Returns the Figure (new, or the one holding `axes`).
    """
    m = to_numpy(maps)
    if m.ndim != 3 or m.shape[0] != len(kernel_sizes):
        raise ValueError(f"maps must be (heads, H, W) with one kernel size per head; got {m.shape} "
                         f"and {len(kernel_sizes)} kernel sizes")
    axes = _head_axes(len(kernel_sizes), axes, width)
    norm = magnitude_norm(m)
    im = None
    for h, (ax, k) in enumerate(zip(axes, kernel_sizes)):
        im = show_map(ax, m[h], cmap=MAGNITUDE_CMAP, norm=norm, title=f"head {h + 1}: {k}$\\times${k}")
    if colorbar:
        add_colorbar(im, list(axes), label=colorbar)
    return axes[0].figure


def _head_axes(n: int, axes: Optional[Sequence], width: Optional[float]) -> list:
    """`axes`, or one row of `n` panels in a new figure."""
    if axes is None:
        fig = new_figure(width, aspect=1.0 / n + 0.15)
        axes = fig.subplots(1, n, squeeze=False)[0]
    return list(axes)


def centre_crop(maps: np.ndarray, size: int) -> np.ndarray:
    """The `size` x `size` window of (..., H, W) maps around position (H//2, W//2), where the ERF's target sits
    (the whole map when it is smaller)."""
    h, w = maps.shape[-2:]
    s = min(size, h, w)
    y = min(max(h // 2 - s // 2, 0), h - s)
    x = min(max(w // 2 - s // 2, 0), w - s)
    return maps[..., y:y + s, x:x + s]


def plot_head_erf(maps: Any, kernel_sizes: Sequence[int], *, axes: Optional[Sequence] = None,
                  width: Optional[float] = None, crop: Optional[int] = None, stride: Optional[int] = None):
    """Each MHMC head's receptive field (`head_erf`: (N, h, w) raw maps) around the centre.

    Each map is divided by its own maximum (the footprints' shapes are the point; raw values are in
    the data), on one [0, 1] scale. `crop` (tokens) defaults to the largest kernel plus 4.

    Returns the Figure.
    """
    m = to_numpy(maps)
    crop = crop or (max(kernel_sizes) + 4)
    m = centre_crop(m, crop)
    peak = m.reshape(m.shape[0], -1).max(1).reshape(-1, 1, 1)
    m = m / np.where(peak > 0, peak, 1)
    axes = _head_axes(len(kernel_sizes), axes, width)
    plot_head_maps(m, kernel_sizes, axes=axes, colorbar="gradient / max")
    for h, ax in enumerate(axes):
        ax.text(0.03, 0.03, f"{int((m[h] > 1e-6).sum())} pos.", transform=ax.transAxes, color="white",
                fontsize="xx-small", va="bottom", ha="left")
    axes[0].set_ylabel(f"{m.shape[-1]}$\\times${m.shape[-1]} tokens" + (f"\n({stride} px each)" if stride else ""),
                       fontsize="x-small")
    return axes[0].figure


def plot_group_channels(channels: Any, *, axes: Optional[Sequence] = None, width: Optional[float] = None,
                        kernel_sizes: Optional[Sequence[int]] = None, group: int = 0):
    """The N channels of one SAA group ((N, H, W), signed, one per head), on one diverging scale centred at 0."""
    m = to_numpy(channels)
    if axes is None:
        fig = new_figure(width, aspect=1.0 / m.shape[0] + 0.15)
        axes = fig.subplots(1, m.shape[0], squeeze=False)[0]
    norm = signed_norm(m, quantile=0.995)
    im = None
    for h, ax in enumerate(axes):
        k = f" ({kernel_sizes[h]}$\\times${kernel_sizes[h]})" if kernel_sizes is not None else ""
        im = show_map(ax, m[h], cmap=SIGNED_CMAP, norm=norm, title=f"group {group + 1}, head {h + 1}{k}")
    add_colorbar(im, list(axes), label="SAA input")
    return axes[0].figure


def plot_sam_block(image: Any, head_maps: Any, head_fields: Any, group: Any, modulator: Any,
                   kernel_sizes: Sequence[int], *, block: str = "", group_index: int = 0,
                   width: Optional[float] = None, stride: Optional[int] = None):
    """Inside one SAM block, three rows over the heads: (a) each MHMC head's mean |activation| beside the image,
    (b) each head's receptive field, (c) SAA's input (one group: a channel of every head) beside the modulator.

    Args:
        image: (H, W, 3) the image the maps belong to.
        head_maps: (N, h, w) mean |activation| per head (`head_activation_maps(...)[i]`).
        head_fields: (N, h, w) per-head receptive fields (`head_erf`).
        group: (N, h, w) the SAA input channels of one group (`group_channel_maps(...)[i]`).
        modulator: (h, w) mean_c |modulator| (`modulator_map(...)[i]`).
        kernel_sizes: Kernel of each head.
        block: Block name, for the title.
        group_index: Which group `group` is.
        width: Figure width in inches.
        stride: Pixels per token of the block's grid (for the receptive field's scale).

    Returns:
        The Figure (3 rows x (N + 1) columns).
    """
    n = len(kernel_sizes)
    fig = new_figure(width, aspect=3.0 / (n + 1) * 0.93 + 0.08)
    grid = fig.subplots(3, n + 1, squeeze=False)
    show_image(grid[0, 0], image, title="image")
    plot_head_maps(head_maps, kernel_sizes, axes=list(grid[0, 1:]), colorbar=r"mean $|$head out$|$")
    grid[1, 0].axis("off")
    grid[1, 0].text(0.5, 0.5, "receptive field\nof each head\n(w.r.t. block input)", ha="center", va="center",
                    fontsize="x-small", transform=grid[1, 0].transAxes)
    plot_head_erf(head_fields, kernel_sizes, axes=list(grid[1, 1:]), stride=stride)
    plot_map(modulator, ax=grid[2, 0], title=r"mean $|$modulator$|$")
    plot_group_channels(group, axes=list(grid[2, 1:]), group=group_index)
    for ax in grid[2, 1:]:
        ax.set_title(ax.get_title().split(",")[1].strip() if "," in ax.get_title() else ax.get_title())
    grid[2, 1].set_ylabel(f"SAA input,\ngroup {group_index + 1}", fontsize="x-small")
    grid[0, 1].set_ylabel("MHMC\nheads", fontsize="x-small")
    if block:
        fig.suptitle(f"Inside one SAM block: {block_label(block)} ({block})", fontsize="small")
    return fig
