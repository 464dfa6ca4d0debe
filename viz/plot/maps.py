"""Feature maps of scale-aware modulation: the authors' modulator figure and the inside of one SAM block.

Inputs are what `viz.analysis.features` returns (`SAMFeatures`, `modulator_map`, `head_activation_maps`,
`group_channel_maps`) and `viz.analysis.erf.head_erf`'s per-head maps, as tensors or arrays.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..style import MAGNITUDE_CMAP, SIGNED_CMAP, add_colorbar, magnitude_norm, signed_norm
from .base import block_label, display_relative, new_axes, new_figure, show_image, show_map, to_numpy

__all__ = ["plot_image", "plot_map", "display_overlay", "plot_overlay", "update_overlay", "OverlayArtists",
           "plot_modulator_maps", "display_head_maps", "plot_head_maps", "update_head_maps", "HeadMapsArtists",
           "display_head_erf", "plot_head_erf", "update_head_erf", "HeadErfDisplay", "HeadErfArtists",
           "plot_relative_map", "update_relative_map", "MapArtists", "display_saa_maps", "plot_saa_maps",
           "update_saa_maps", "SAAArtists", "plot_group_channels", "plot_sam_block", "centre_crop"]

# Views that a widget updates in place come in threes: a pure `display_*` (analysis results -> the arrays
# drawn), a `plot_*` that draws them and returns handles to its artists, and an `update_*` that sets new data
# on those handles and returns whether anything outside the handles' `dynamic` artists changed (a caller
# that blits redraws the rest only then). The paper figures call the same `plot_*`.


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


def display_overlay(image: Any, heat: Any, *, alpha: float = 0.55) -> np.ndarray:
    """A non-negative map (h, w) over its image ((H, W, 3) uint8 or [0, 1] floats): upsampled bilinearly,
    scaled to [0, 1] and blended (`viz.plot.cam.overlay`); returns (H, W, 3) uint8."""
    import torch
    import torch.nn.functional as F

    from .cam import overlay

    img = to_numpy(image)
    chw = torch.from_numpy(img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else 1.0)).permute(2, 0, 1)
    h = torch.as_tensor(to_numpy(heat), dtype=torch.float32)[None, None]
    h = F.interpolate(h, size=chw.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    h = (h - h.min()) / (h.max() - h.min()).clamp_min(1e-12)
    return overlay(chw, h, alpha=alpha)


@dataclass
class OverlayArtists:
    """The image artist `plot_overlay` made."""
    ax: Any
    image: Any

    @property
    def figure(self):
        return self.ax.figure

    @property
    def dynamic(self) -> list:
        return [self.image]


def plot_overlay(image: Any, heat: Any, *, ax=None, title: Optional[str] = None,
                 alpha: float = 0.55) -> OverlayArtists:
    """A non-negative map over its image (`display_overlay`); returns the artists (`update_overlay`)."""
    ax = new_axes(ax, aspect=1.0)
    return OverlayArtists(ax, show_image(ax, display_overlay(image, heat, alpha=alpha), title=title))


def update_overlay(artists: OverlayArtists, image: Any, heat: Any, *, alpha: float = 0.55) -> bool:
    """Set another image and map (same image size) on `plot_overlay`'s artists; nothing else changes."""
    artists.image.set_data(display_overlay(image, heat, alpha=alpha))
    return False


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


def display_head_maps(maps: Any) -> tuple[np.ndarray, float]:
    """Per-head maps (N, H, W) divided by their shared maximum (one [0, 1] scale, so heads compare), and that
    maximum."""
    m = to_numpy(maps)
    return display_relative(m)


def _head_titles(kernel_sizes: Sequence[int]) -> list[str]:
    return [f"head {h + 1}: {k}$\\times${k}" for h, k in enumerate(kernel_sizes)]


@dataclass
class HeadMapsArtists:
    """What `plot_head_maps` made: one image (and its title) per head, the shared colorbar."""
    axes: list
    images: list
    colorbar: Any = None

    @property
    def figure(self):
        return self.axes[0].figure

    @property
    def dynamic(self) -> list:
        return self.images + [ax.title for ax in self.axes]


def _check_heads(m: np.ndarray, kernel_sizes: Sequence[int]) -> None:
    if m.ndim != 3 or m.shape[0] != len(kernel_sizes):
        raise ValueError(f"maps must be (heads, H, W) with one kernel size per head; got {m.shape} "
                         f"and {len(kernel_sizes)} kernel sizes")


def plot_head_maps(maps: Any, kernel_sizes: Sequence[int], *, axes: Optional[Sequence] = None,
                   width: Optional[float] = None, colorbar: str = r"mean $|$head$|$ / max") -> HeadMapsArtists:
    """Per-head maps (N, H, W) on one shared scale (`display_head_maps`), titled with each head's kernel size.

    Returns the artists (new figure, or the one holding `axes`); `update_head_maps` sets other maps on them.
    """
    m = to_numpy(maps)
    _check_heads(m, kernel_sizes)
    shown, _ = display_head_maps(m)
    axes = _head_axes(len(kernel_sizes), axes, width)
    norm = magnitude_norm([0.0, 1.0])
    images = [show_map(ax, shown[h], cmap=MAGNITUDE_CMAP, norm=norm, title=t)
              for h, (ax, t) in enumerate(zip(axes, _head_titles(kernel_sizes)))]
    cb = add_colorbar(images[-1], list(axes), label=colorbar) if colorbar else None
    return HeadMapsArtists(list(axes), images, cb)


def update_head_maps(artists: HeadMapsArtists, maps: Any, kernel_sizes: Sequence[int], *,
                     shown: Optional[np.ndarray] = None) -> bool:
    """Set other maps (same head count and grid) on `plot_head_maps`' artists (`shown`: maps already through
    the display transform, as `update_head_erf` passes them)."""
    m = to_numpy(maps)
    _check_heads(m, kernel_sizes)
    shown = display_head_maps(m)[0] if shown is None else shown
    for im, ax, a, t in zip(artists.images, artists.axes, shown, _head_titles(kernel_sizes)):
        im.set_data(a)
        ax.set_title(t)
    return False


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


@dataclass(frozen=True)
class HeadErfDisplay:
    """What the head-ERF view draws: each head's field around the centre divided by its own peak, and the
    number of positions where it is non-zero (its support)."""
    maps: np.ndarray
    support: tuple[int, ...]


def display_head_erf(fields: Any, kernel_sizes: Sequence[int], *, crop: Optional[int] = None) -> HeadErfDisplay:
    """The display transform of per-head receptive fields (`head_erf`: (N, h, w) raw maps): the `crop` x `crop`
    window around the centre (default the largest kernel plus 4 tokens), each head divided by its own peak
    (the footprints' shapes are the point; raw values are in the data), and each head's support."""
    m = centre_crop(to_numpy(fields), crop or (max(kernel_sizes) + 4))
    peak = m.reshape(m.shape[0], -1).max(1).reshape(-1, 1, 1)
    m = m / np.where(peak > 0, peak, 1)
    return HeadErfDisplay(m, tuple(int((a > 1e-6).sum()) for a in m))


@dataclass
class HeadErfArtists:
    """What `plot_head_erf` made: the head maps' artists and each head's support label."""
    heads: HeadMapsArtists
    support: list

    @property
    def figure(self):
        return self.heads.figure

    @property
    def dynamic(self) -> list:
        return self.heads.dynamic + self.support


def plot_head_erf(maps: Any, kernel_sizes: Sequence[int], *, axes: Optional[Sequence] = None,
                  width: Optional[float] = None, crop: Optional[int] = None,
                  stride: Optional[int] = None) -> HeadErfArtists:
    """Each MHMC head's receptive field (`head_erf`: (N, h, w) raw maps) around the centre, as
    `display_head_erf` shows it, on one [0, 1] scale, with each head's support.

    Returns the artists; `update_head_erf` sets other fields (same crop) on them.
    """
    d = display_head_erf(maps, kernel_sizes, crop=crop)
    axes = _head_axes(len(kernel_sizes), axes, width)
    heads = plot_head_maps(d.maps, kernel_sizes, axes=axes, colorbar="gradient / max")
    texts = [ax.text(0.03, 0.03, f"{n} pos.", transform=ax.transAxes, color="white", fontsize="xx-small",
                     va="bottom", ha="left") for ax, n in zip(axes, d.support)]
    s = d.maps.shape[-1]
    axes[0].set_ylabel(f"{s}$\\times${s} tokens" + (f"\n({stride} px each)" if stride else ""), fontsize="x-small")
    return HeadErfArtists(heads, texts)


def update_head_erf(artists: HeadErfArtists, maps: Any, kernel_sizes: Sequence[int], *,
                    crop: Optional[int] = None) -> bool:
    """Set other receptive fields (same head count and crop) on `plot_head_erf`'s artists."""
    d = display_head_erf(maps, kernel_sizes, crop=crop)
    update_head_maps(artists.heads, d.maps, kernel_sizes, shown=d.maps)
    for t, n in zip(artists.support, d.support):
        t.set_text(f"{n} pos.")
    return False


@dataclass
class MapArtists:
    """What `plot_relative_map` made: the image, its colorbar (or None)."""
    ax: Any
    image: Any
    colorbar: Any = None

    @property
    def figure(self):
        return self.ax.figure

    @property
    def dynamic(self) -> list:
        return [self.image, self.ax.title]


def plot_relative_map(values: Any, *, ax=None, signed: bool = False, title: Optional[str] = None,
                      colorbar: Optional[str] = "/ max |value|") -> MapArtists:
    """One 2-D map divided by its largest |value| (`display_relative`) on a fixed [0, 1] ([-1, 1] when `signed`)
    range, so that another map of any scale updates it without a new colorbar."""
    ax = new_axes(ax, aspect=1.0)
    shown, _ = display_relative(values)
    norm = signed_norm([-1.0, 1.0]) if signed else magnitude_norm([0.0, 1.0])
    im = show_map(ax, shown, cmap=SIGNED_CMAP if signed else MAGNITUDE_CMAP, norm=norm, title=title)
    cb = add_colorbar(im, ax, label=colorbar) if colorbar is not None else None
    return MapArtists(ax, im, cb)


def update_relative_map(artists: MapArtists, values: Any, *, signed: bool = False,
                        title: Optional[str] = None) -> bool:
    """Set another map on `plot_relative_map`'s artists; True when the axes' box or the colorbar changes (a grid of
    another aspect ratio, a switch between magnitude and signed colours): draw the figure afresh then. A grid of
    the same aspect (28x28 -> 14x14) only changes the image's extent."""
    shown, _ = display_relative(values)
    im, ax = artists.image, artists.ax
    static = False
    h, w = shown.shape
    old = im.get_array().shape
    if old != (h, w):  # another grid: the same axes, new extent
        im.set_extent((-0.5, w - 0.5, h - 0.5, -0.5))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        static = old[0] * w != old[1] * h
    cmap = SIGNED_CMAP if signed else MAGNITUDE_CMAP
    if im.get_cmap().name != cmap:  # signed <-> magnitude: the colour map and range change, and the colorbar
        im.set_cmap(cmap)
        im.set_norm(signed_norm([-1.0, 1.0]) if signed else magnitude_norm([0.0, 1.0]))
        static = True
    im.set_data(shown)
    if title is not None:
        ax.set_title(title)
    return static


def display_saa_maps(saa_input: Any, modulator: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """SAA's mean |input| and mean |modulator| (H, W) divided by their shared maximum, and that maximum."""
    both, top = display_relative(np.stack([to_numpy(saa_input), to_numpy(modulator)]))
    return both[0], both[1], top


@dataclass
class SAAArtists:
    """What `plot_saa_maps` made: SAA's input and modulator images and the spectrum's artists."""
    input_image: Any
    modulator_image: Any
    spectrum: Any

    @property
    def figure(self):
        return self.input_image.axes.figure

    @property
    def dynamic(self) -> list:
        return [self.input_image, self.modulator_image] + self.spectrum.dynamic


def plot_saa_maps(saa_input: Any, modulator: Any, before: Any, after: Any, *, axes: Optional[Sequence] = None,
                  width: float = 7.0, ylim: Optional[tuple[float, float]] = None) -> SAAArtists:
    """SAA's input and output: mean |SAA input| and mean |modulator| on one scale (`display_saa_maps`) beside
    their spectra (`plot_saa_spectrum`, amplitude range `ylim`). `axes`: three Axes; default a new figure of
    `width` inches."""
    from .spectrum import plot_saa_spectrum

    if axes is None:
        fig = new_figure(width, width * 0.3)
        axes = fig.subplots(1, 3, width_ratios=[1, 1, 1.6])
    a, b, c = axes
    x, m, _ = display_saa_maps(saa_input, modulator)
    norm = magnitude_norm([0.0, 1.0])
    ia = show_map(a, x, cmap=MAGNITUDE_CMAP, norm=norm, title="mean |SAA input|")
    ib = show_map(b, m, cmap=MAGNITUDE_CMAP, norm=norm, title="mean |modulator|")
    add_colorbar(ib, b, label="/ max of both")
    return SAAArtists(ia, ib, plot_saa_spectrum(before, after, ax=c, ylim=ylim))


def update_saa_maps(artists: SAAArtists, saa_input: Any, modulator: Any, before: Any, after: Any, *,
                    ylim: Optional[tuple[float, float]] = None) -> bool:
    """Set other maps and spectra (amplitude range `ylim`) on `plot_saa_maps`' artists; True when the spectrum's
    range changed."""
    from .spectrum import update_saa_spectrum

    x, m, _ = display_saa_maps(saa_input, modulator)
    artists.input_image.set_data(x)
    artists.modulator_image.set_data(m)
    return update_saa_spectrum(artists.spectrum, before, after, ylim=ylim)


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
    plot_head_maps(head_maps, kernel_sizes, axes=list(grid[0, 1:]), colorbar=r"mean $|$head out$|$ / max")
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
