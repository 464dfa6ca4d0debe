"""Class activation maps over images (`viz.analysis.cam`): the display transform's overlay, the item's box and
the map's maximum (the pointing game's point)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from ..style import COLORS, OVERLAY_CMAP
from .base import new_axes, new_figure, show_image, to_numpy

__all__ = ["overlay", "CamDisplay", "CamArtists", "display_cam", "plot_cam", "update_cam", "plot_cam_grid"]


def overlay(image: torch.Tensor, heat: torch.Tensor, *, alpha: float = 0.5, cmap: str = OVERLAY_CMAP) -> np.ndarray:
    """Blend an (H, W) heat map in [0, 1] over an RGB image (3, H, W) in [0, 1]; returns (H, W, 3) uint8."""
    from matplotlib import colormaps

    rgb = colormaps[cmap](heat.clamp(0, 1).numpy())[..., :3]
    img = image.permute(1, 2, 0).clamp(0, 1).numpy()
    return np.uint8(255 * ((1 - alpha) * img + alpha * rgb))


@dataclass(frozen=True)
class CamDisplay:
    """What a CAM view draws: the heat map over the image (H, W, 3) uint8, and the map's arg-max after
    upsampling (x, y) in pixels (the pointing game's point)."""
    rgb: np.ndarray
    peak: tuple[int, int]


def display_cam(image: Any, cam: Any, *, alpha: float = 0.5) -> CamDisplay:
    """The display transform of one raw CAM (h, w, at layer resolution) over its image ((H, W, 3) uint8 or
    (3, H, W) in [0, 1]): `cam_to_image` (ReLU, bilinear upsampling, min-max) blended over the image, and the
    arg-max of the upsampled raw map."""
    from ..analysis.cam import cam_to_image

    img = to_numpy(image)
    if img.ndim == 3 and img.shape[-1] == 3:
        chw = torch.from_numpy(img.astype(np.float64) / (255.0 if img.dtype == np.uint8 else 1.0)).permute(2, 0, 1)
    else:
        chw = torch.from_numpy(img.astype(np.float64))
    h, w = chw.shape[-2:]
    raw = torch.as_tensor(to_numpy(cam), dtype=torch.float32)[None]
    heat = cam_to_image(raw, (h, w))[0]
    up = cam_to_image(raw, (h, w), relu=False, normalize=False)[0]
    idx = int(up.flatten().argmax())
    return CamDisplay(overlay(chw.float(), heat, alpha=alpha), (idx % w, idx // w))


@dataclass
class CamArtists:
    """The artists `plot_cam` made: the blended image, the arg-max marker, the item's box (or None)."""
    ax: Any
    image: Any
    marker: Any
    box: Any = None

    @property
    def figure(self):
        return self.ax.figure

    @property
    def dynamic(self) -> list:
        """The artists an update changes (the title too)."""
        return [self.image, self.marker, self.ax.title]


def plot_cam(image: Any, cam: Any, *, ax=None, box: Optional[Sequence[float]] = None, title: Optional[str] = None,
             alpha: float = 0.5) -> CamArtists:
    """One raw CAM (h, w, at layer resolution) over its image ((H, W, 3) uint8 or (3, H, W) in [0, 1]).

    The display transform is `display_cam`; the map's arg-max after upsampling (the pointing game's point) is
    marked with a cross, and `box` (x0, y0, x1, y1, pixels) is drawn when given. Returns the artists
    (`update_cam` sets another map on them).
    """
    from matplotlib.patches import Rectangle

    ax = new_axes(ax, aspect=1.0)
    d = display_cam(image, cam, alpha=alpha)
    im = show_image(ax, d.rgb, title=title)
    (marker,) = ax.plot(*d.peak, marker="+", color="white", ms=5, mew=1.0)
    patch = None
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        patch = ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=0.7,
                                       ec=COLORS["input"]))
    return CamArtists(ax, im, marker, patch)


def update_cam(artists: CamArtists, image: Any, cam: Any, *, title: Optional[str] = None,
               alpha: float = 0.5) -> bool:
    """Set another CAM (same image size) on `plot_cam`'s artists; returns whether anything outside
    `artists.dynamic` changed (never: the caller need not redraw the rest)."""
    d = display_cam(image, cam, alpha=alpha)
    artists.image.set_data(d.rgb)
    artists.marker.set_data([d.peak[0]], [d.peak[1]])
    if title is not None:
        artists.ax.set_title(title)
    return False


def plot_cam_grid(images: Any, cams: Sequence[Any], *, columns: Sequence[str], boxes: Optional[Any] = None,
                  row_labels: Optional[Sequence[str]] = None, width: Optional[float] = None):
    """Images in rows, one CAM per column (e.g. stages 2-4), each over its image.

    Args:
        images: (B, H, W, 3).
        cams: One (B, h, w) raw CAM tensor per column.
        columns: Column titles.
        boxes: (B, 4) item boxes, optional.
        row_labels: Per-image label (e.g. class names), optional.
        width: Figure width in inches.
    """
    imgs = to_numpy(images)
    n = imgs.shape[0]
    cols = 1 + len(cams)
    fig = new_figure(width, aspect=n / cols + 0.1)
    axes = fig.subplots(n, cols, squeeze=False)
    bx = to_numpy(boxes) if boxes is not None else None
    for r in range(n):
        show_image(axes[r, 0], imgs[r], title="image" if r == 0 else None)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize="x-small")
        for c, cam in enumerate(cams):
            plot_cam(imgs[r], to_numpy(cam)[r], ax=axes[r, c + 1], box=None if bx is None else bx[r],
                     title=columns[c] if r == 0 else None)
    return fig
