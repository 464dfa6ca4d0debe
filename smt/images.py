"""Reading an image file as the 8-bit RGB picture a person sees, whatever mode PIL opens it in.

`Image.open(path).convert("RGB")` is wrong for several modes: 16-bit images (`I;16`) saturate (every
value above 255 becomes 255, so a 16-bit photograph turns white), 32-bit integer (`I`) and float (`F`)
images saturate or clip the same way, transparent pixels keep whatever colour lies under them, and the
EXIF orientation of a phone photograph is ignored (it is analysed sideways). `open_rgb` fixes each:

- EXIF orientation is applied first (`ImageOps.exif_transpose`).
- `I;16*` (16-bit grey, PNG and TIFF): scaled by the declared bit depth, v * 255 / 65535.
- `I` (32-bit integer): values within 0..65535 are 16-bit data that PIL widened (scaled as above);
  otherwise the image's own range [min, max] maps to 0..255.
- `F` (32-bit float): values within [0, 1] are scaled by 255; otherwise the range [min, max] maps to
  0..255. NaN becomes 0.
- Transparency (`RGBA`, `LA`, `PA`, `La`, `RGBa`, and palette or grey images with a transparent
  colour) is composited over white, as a page shows the image.
- `CMYK`, `YCbCr`, `P`, `L`, `1`, `HSV`: PIL's own conversion to RGB (CMYK without an ICC profile:
  R = (255 - C)(255 - K) / 255; PIL already undoes Adobe's inverted CMYK JPEGs).

Nothing in `smt/` imports `viz/`; `viz.images` and the widgets read images through this module.
"""
from __future__ import annotations

import io
import os
from typing import Union

import numpy as np

__all__ = ["ImageSource", "UNREADABLE", "open_rgb", "to_rgb"]

#: A path, or the bytes of an image file.
ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview]

#: What PIL raises for a file it cannot read (missing, truncated, not an image, unsupported mode).
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError)

_WHITE = 255


def _scale_to_uint8(a: np.ndarray, high: float, low: float = 0.0) -> np.ndarray:
    a = np.nan_to_num(a.astype(np.float64), nan=low, posinf=high, neginf=low)
    if high <= low:
        return np.zeros(a.shape, np.uint8)
    return np.clip(np.round((a - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)


def _grey_to_uint8(im) -> np.ndarray:
    """An `I;16*`, `I` or `F` image as (H, W) uint8 (module docstring: the rule per mode)."""
    a = np.asarray(im)
    if im.mode.startswith("I;16"):
        return _scale_to_uint8(a, 65535.0)
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if im.mode == "F" and 0.0 <= lo and hi <= 1.0:
        return _scale_to_uint8(a, 1.0)
    if im.mode == "I" and 0 <= lo and hi <= 65535:
        return _scale_to_uint8(a, 65535.0 if hi > 255 else 255.0)
    return _scale_to_uint8(a, hi, lo)


def to_rgb(im):
    """A PIL image (any mode, orientation already applied) as 8-bit RGB (module docstring: the rule per mode)."""
    from PIL import Image

    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_grey_to_uint8(im), "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
    if has_alpha:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (_WHITE, _WHITE, _WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "LAB":
        from PIL import ImageCms

        return ImageCms.applyTransform(im, ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"))
    return im.convert("RGB")


def open_rgb(source: ImageSource):
    """An image file (path or bytes) as an 8-bit RGB PIL image, EXIF orientation applied.

    Raises:
        OSError, ValueError, SyntaxError, EOFError (`UNREADABLE`): the file is missing, truncated, not
            an image, or in a mode PIL can not decode.
    """
    from PIL import Image, ImageOps

    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    with Image.open(source) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        return to_rgb(im)
