"""The images the widgets show: `ImageSet` (pixels as shown, model input, names, labels) and `load_image`."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch


@dataclass
class ImageSet:
    """Images a widget can show: (N, H, W, 3) uint8 as shown, their model input, names and optional labels."""
    display: np.ndarray
    names: list[str]
    labels: Optional[list[Optional[int]]] = None

    @classmethod
    def canvases(cls, n: Optional[int] = None, size: Optional[int] = None) -> "ImageSet":
        """The shipped test canvases (112 px; `size`: resized to it, for a model of another input size). Their
        labels are indices of the demo models' 10 classes (`truth_names` shows them only to such a model)."""
        from PIL import Image

        from smt.demo import demo_images

        d = demo_images()
        k = len(d) if n is None else min(n, len(d))
        pixels = d.images[:k].numpy()
        if size is not None and size != pixels.shape[1]:
            pixels = np.stack([np.asarray(Image.fromarray(p).resize((size, size), Image.BICUBIC)) for p in pixels])
        return cls(pixels, [f"canvas {i} ({d.class_names[int(d.labels[i])]})" for i in range(k)],
                   [int(v) for v in d.labels[:k]])

    @classmethod
    def photos(cls, folder: Optional[os.PathLike] = None, size: int = 112,
               num_images: Optional[int] = None) -> "ImageSet":
        """The images of `folder` (default the shipped photographs, `data/images`), sorted by path, the first
        `num_images`, each resized and centre-cropped to `size`."""
        from ..figures import DATA_IMAGES
        from ..images import list_images

        files = list_images(folder or DATA_IMAGES, num_images)
        return cls(np.stack([load_image(f, size) for f in files]), [f.name for f in files])

    def key(self, i: int) -> tuple[str, str]:
        """What determines image i's content: its name and a digest of its pixels (two uploads of one name
        differ)."""
        import hashlib

        pixels = np.ascontiguousarray(self.display[i]).tobytes()
        return self.names[i], hashlib.blake2b(pixels, digest_size=12).hexdigest()

    def model_input(self, i: int) -> torch.Tensor:
        """Image i as model input (1, 3, H, W), ImageNet mean/std (the demo models' preprocessing)."""
        from smt.train import normalize

        return normalize(torch.from_numpy(self.display[i]).permute(2, 0, 1)[None].float().div(255))


def load_image(source: Any, size: int = 112) -> np.ndarray:
    """An image file (path or bytes) resized on its short side and centre-cropped to `size`: (size, size, 3) uint8."""
    from PIL import Image

    from smt.images import UNREADABLE, open_rgb

    try:
        im = open_rgb(source)
    except UNREADABLE as e:
        raise ValueError(f"could not read the image ({type(e).__name__}: {e}); use a PNG or JPEG file") from None
    s = size / min(im.size)
    im = im.resize((max(size, round(im.size[0] * s)), max(size, round(im.size[1] * s))), Image.BICUBIC)
    x0, y0 = (im.size[0] - size) // 2, (im.size[1] - size) // 2
    return np.array(im.crop((x0, y0, x0 + size, y0 + size)))
