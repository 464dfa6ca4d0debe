"""Scaled Fashion-MNIST: Fashion-MNIST items (Xiao, Rasul & Vollgraf, 2017) at random scales on RGB canvases.

Each 28x28 item is resized by a random factor (log-uniform, 0.5x to 3x by default, i.e. 14 to 84 px on
a 112x112 canvas), pasted at a random position where it fits, tinted with a random colour and blended
over a plain or lightly textured background. The tight box of the item's visible pixels is recorded,
so localisation is measurable. Canvases are rendered on the fly, a whole batch in one `grid_sample`
call, and are a pure function of (seed, epoch, index): nothing large is ever written to disk.

Render parameters are stored in canvas-relative units, so rendering at a smaller `canvas_size` gives
the downsampled view of the same canvas. A cheaper low-resolution training phase can instead render a
`crop`: a smaller window of the canvas around the item, at the full canvas's pixel scale, so that the
item keeps the size (and detail) it has at test time.

The raw data comes in the idx format (`read_idx`), gzip-compressed or plain; Debian ships it as
the package `dataset-fashion-mnist` under `/usr/share/datasets/fashion-mnist/`.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "to_uint8",
    "CLASS_NAMES", "DEFAULT_DATA_DIR", "read_idx", "load_fashion_mnist", "ScaledFashionMNIST", "RenderParams",
]

#: Fashion-MNIST class names, in label order.
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

#: Where the Debian package `dataset-fashion-mnist` puts the idx files.
DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an idx file (the MNIST format), gzip-compressed or plain (detected from the content).

    Args:
        path: the file.

    Returns:
        The array, with the file's shape and a native-endian dtype.
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an idx file (the header should be 0x00 0x00 <dtype> <ndim>); "
                         "pass the Fashion-MNIST files, e.g. train-images-idx3-ubyte[.gz]")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    offset = 4 + 4 * ndim
    count = int(np.prod(shape)) if ndim else 1
    if len(raw) - offset != count * dtype.itemsize:
        raise ValueError(f"{path}: the header says shape {shape} ({count * dtype.itemsize} bytes of data) "
                         f"but the file has {len(raw) - offset}; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _find(data_dir: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (data_dir / name).is_file():
            return data_dir / name
    raise FileNotFoundError(
        f"{stem}[.gz] not found in {data_dir}. Install the Debian package `dataset-fashion-mnist` "
        f"(`sudo apt-get install dataset-fashion-mnist`, or `make data`), or pass --data-dir with your "
        "own copy of the Fashion-MNIST idx files")


def load_fashion_mnist(split: str = "train", data_dir: Optional[Union[str, os.PathLike]] = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The Fashion-MNIST images (N, 28, 28) uint8 and labels (N,) int64 of a split ("train" or "test").

    Args:
        split: "train" (60000 items) or "test" (10000 items).
        data_dir: folder with the idx files; default `$FASHION_MNIST_DIR` or the Debian package's folder.
    """
    if split not in _FILES:
        raise ValueError(f"split={split!r}; use 'train' or 'test'")
    data_dir = Path(data_dir or os.environ.get("FASHION_MNIST_DIR") or DEFAULT_DATA_DIR)
    images = read_idx(_find(data_dir, _FILES[split][0]))
    labels = read_idx(_find(data_dir, _FILES[split][1])).astype(np.int64)
    if images.ndim != 3 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{data_dir}: images {images.shape} and labels {labels.shape} do not match")
    return images, labels


@dataclass(frozen=True)
class RenderParams:
    """Per-canvas random choices, in canvas-relative units (all tensors have a leading N)."""
    size: torch.Tensor  # (N,) item side / canvas side
    pos: torch.Tensor  # (N, 2) top-left (x, y) / canvas side
    tint: torch.Tensor  # (N, 3) item colour in [0, 1]
    bg: torch.Tensor  # (N, 3) background colour in [0, 1]
    texture: torch.Tensor  # (N, 3, T, T) low-frequency background texture, zero for plain backgrounds
    flip: torch.Tensor  # (N,) bool, horizontal flip of the item
    window: torch.Tensor  # (N, 2) in [0, 1]: where a crop window sits among the positions that hold the item


class ScaledFashionMNIST:
    """Fashion-MNIST items at random scales and positions on RGB canvases, rendered on the fly.

    `dataset.render(indices, epoch)` returns a batch; the canvas of (seed, epoch, index) is always the
    same, whatever the batch it is rendered in. Use a fixed epoch (0) for evaluation sets.
    """

    def __init__(
            self,
            images: Union[np.ndarray, torch.Tensor],
            labels: Union[np.ndarray, torch.Tensor],
            canvas_size: int = 112,
            scale_range: tuple[float, float] = (0.5, 3.0),
            seed: int = 0,
            texture_prob: float = 0.5,
            texture_amp: float = 0.12,
            texture_grid: int = 6,
            flip: bool = False,
    ):
        """
        Args:
            images: (N, 28, 28) uint8 items (white on black, as Fashion-MNIST ships).
            labels: (N,) class indices.
            canvas_size: side of the square canvas, in pixels.
            scale_range: (min, max) resize factor of the 28-px item at `canvas_size` 112; sampled
                log-uniformly. The item must fit: 28 * max * canvas_size / 112 <= canvas_size.
            seed: seed of every random choice.
            texture_prob: share of canvases with a textured (rather than plain) background.
            texture_amp: amplitude of the background texture.
            texture_grid: the texture is a `texture_grid`^2 random grid, upsampled bilinearly.
            flip: flip items horizontally at random (a training augmentation; off for evaluation).
        """
        images = torch.as_tensor(np.asarray(images))
        labels = torch.as_tensor(np.asarray(labels)).long()
        if images.ndim != 3 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"images {tuple(images.shape)} should be (N, H, W) with N = len(labels) = "
                             f"{labels.shape[0]}")
        lo, hi = scale_range
        if not 0 < lo <= hi or images.shape[-1] * hi > 112:
            raise ValueError(f"scale_range={scale_range}: need 0 < min <= max and the largest item "
                             f"({images.shape[-1]} px x max) to fit a 112-px canvas")
        self.items = images.to(torch.float32).div_(255.0).unsqueeze(1)  # (N, 1, 28, 28)
        self.labels = labels
        self.canvas_size = int(canvas_size)
        self.scale_range = (float(lo), float(hi))
        self.seed = int(seed)
        self.texture_prob = float(texture_prob)
        self.texture_amp = float(texture_amp)
        self.texture_grid = int(texture_grid)
        self.flip = bool(flip)
        self._params: dict[int, RenderParams] = {}

    def __len__(self) -> int:
        return self.labels.shape[0]

    def params(self, epoch: int = 0) -> RenderParams:
        """The random choices of every canvas of an epoch (cached for the latest epoch only)."""
        if epoch not in self._params:
            n = len(self)
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            lo, hi = self.scale_range
            item = self.items.shape[-1]
            size = torch.exp(torch.empty(n).uniform_(math.log(lo), math.log(hi), generator=g)) * item / 112
            pos = torch.rand(n, 2, generator=g) * (1 - size).unsqueeze(1)
            # Background: a dark-to-mid colour; item tint: a bright colour, at least 0.35 above it in value.
            bg = torch.rand(n, 3, generator=g) * 0.45
            tint = torch.rand(n, 3, generator=g) * 0.5 + 0.5
            tint = torch.maximum(tint, bg + 0.35).clamp_(max=1.0)
            textured = torch.rand(n, generator=g) < self.texture_prob
            t = self.texture_grid
            texture = (torch.rand(n, 3, t, t, generator=g) * 2 - 1) * self.texture_amp
            texture = texture * textured.view(n, 1, 1, 1)
            flip = (torch.rand(n, generator=g) < 0.5) & self.flip
            window = torch.rand(n, 2, generator=g)  # drawn last: the other choices do not depend on it
            self._params = {epoch: RenderParams(size, pos, tint, bg, texture, flip, window)}
        return self._params[epoch]

    @torch.no_grad()
    def render(self, indices: Union[Sequence[int], torch.Tensor], epoch: int = 0,
               canvas_size: Optional[int] = None, crop: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Render canvases.

        Args:
            indices: which items, (B,).
            epoch: which draw of the random choices (training: the epoch; evaluation: 0).
            canvas_size: render at this size instead of `self.canvas_size` (same canvas, resampled).
            crop: instead of resampling the whole canvas, render a window of `canvas_size` pixels of it
                that holds the item, at the full canvas's pixel scale (the item is as large, in pixels, as
                at test time). An item larger than 90% of the window gets a window just large enough
                (up to the whole canvas), resampled to `canvas_size`.

        Returns:
            images (B, 3, S, S) float in [0, 1], labels (B,) int64, boxes (B, 4) float (x0, y0, x1, y1) in
            pixels, x1/y1 exclusive: the tight box of the pixels the item covers.
        """
        idx = torch.as_tensor(indices, dtype=torch.long)
        p = self.params(epoch)
        s = int(canvas_size or self.canvas_size)
        size, pos = p.size[idx], p.pos[idx]  # (B,), (B, 2)
        b = idx.shape[0]
        # Affine map from canvas coordinates ([-1, 1]) to item coordinates ([-1, 1]).
        centre = (pos + size.unsqueeze(1) / 2) * 2 - 1  # (B, 2)
        inv = 1.0 / size
        sx = torch.where(p.flip[idx], -inv, inv)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0] = sx
        theta[:, 0, 2] = -centre[:, 0] * sx
        theta[:, 1, 1] = inv
        theta[:, 1, 2] = -centre[:, 1] * inv
        if crop:
            # The window (side w, origin o, canvas fractions) as a map from window to canvas coordinates.
            w = torch.clamp(size / 0.9, min=min(1.0, s / self.canvas_size), max=1.0)  # (B,)
            lo = (pos + size.unsqueeze(1) - w.unsqueeze(1)).clamp(min=0)  # the window must hold the item
            hi = torch.minimum(pos, 1 - w.unsqueeze(1))  # ... and lie on the canvas
            o = lo + p.window[idx] * (hi - lo).clamp(min=0)
            to_canvas = torch.zeros(b, 3, 3)
            to_canvas[:, 0, 0] = to_canvas[:, 1, 1] = w
            to_canvas[:, :2, 2] = 2 * o + w.unsqueeze(1) - 1
            to_canvas[:, 2, 2] = 1
            theta = theta @ to_canvas
            grid = F.affine_grid(to_canvas[:, :2], [b, 3, s, s], align_corners=False)
            texture = F.grid_sample(p.texture[idx], grid, mode="bilinear", padding_mode="border",
                                    align_corners=False)
        else:
            texture = F.interpolate(p.texture[idx], size=(s, s), mode="bilinear", align_corners=False)
        grid = F.affine_grid(theta, [b, 1, s, s], align_corners=False)
        alpha = F.grid_sample(self.items[idx], grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False)  # (B, 1, S, S)
        bg = (p.bg[idx].view(b, 3, 1, 1) + texture).clamp_(0, 1)  # (B, 3, S, S)
        img = torch.lerp(bg, p.tint[idx].view(b, 3, 1, 1).expand_as(bg), alpha)  # (B, 3, S, S)
        boxes = _tight_boxes(alpha[:, 0] > 0)
        return img, self.labels[idx], boxes


def _tight_boxes(mask: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool -> (B, 4) float (x0, y0, x1, y1), x1/y1 exclusive; zeros for empty masks."""
    b, h, w = mask.shape
    cols, rows = mask.any(1), mask.any(2)  # (B, W), (B, H)
    ar_w, ar_h = torch.arange(w), torch.arange(h)
    big = max(h, w) + 1
    x0 = torch.where(cols, ar_w, big).amin(1)
    x1 = torch.where(cols, ar_w, -1).amax(1) + 1
    y0 = torch.where(rows, ar_h, big).amin(1)
    y1 = torch.where(rows, ar_h, -1).amax(1) + 1
    boxes = torch.stack([x0, y0, x1, y1], 1).float()
    return torch.where(cols.any(1, keepdim=True), boxes, torch.zeros_like(boxes))


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) float in [0, 1] -> (B, S, S, 3) uint8 (the layout image files use)."""
    return images.mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
