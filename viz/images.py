"""Image folders for analyses: sorted file lists, tolerant loading, sharding across processes.

Files are read by `smt.images.open_rgb` (16/32-bit and float images scaled to 8 bits, transparency over
white, EXIF orientation applied), the one loader of the project.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Optional

import torch
from torch.utils.data import Dataset

from smt.images import UNREADABLE, open_rgb
from smt.inputs import IMAGE_EXTENSIONS, list_image_files

__all__ = ["IMAGE_EXTENSIONS", "list_images", "ImageFiles", "collate_skip_unreadable", "open_rgb"]


def list_images(folder: os.PathLike, num_images: Optional[int] = None) -> list[Path]:
    """Files under `folder` (recursively, sorted by path) that have an image extension.

    Raises:
        FileNotFoundError: `folder` does not exist or is not a directory.
        ValueError: it holds no image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist or is not a directory")
    files = list_image_files(folder)
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    if num_images is not None:
        if num_images < 1:
            raise ValueError(f"num_images={num_images}: ask for at least one image")
        files = files[:num_images]
    return files


class ImageFiles(Dataset):
    """Images as RGB tensors through `transform`; an unreadable file yields `(None, path, error)`.

    Every mode PIL opens becomes 8-bit RGB by `smt.images.open_rgb`.
    """

    def __init__(self, files: Sequence[Path], transform: Callable):
        """
        Args:
            files: Image paths.
            transform: PIL image -> tensor (e.g. timm's eval transform for the model).
        """
        self.files = list(files)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        path = self.files[i]
        try:
            im = open_rgb(path)
        except UNREADABLE as e:
            return None, str(path), f"{type(e).__name__}: {e}"
        return self.transform(im), str(path), None


def collate_skip_unreadable(batch):
    """Stack readable images; warn about (and return) the unreadable ones."""
    good = [(x, p) for x, p, err in batch if x is not None]
    bad = [(p, err) for x, p, err in batch if x is None]
    for p, err in bad:
        warnings.warn(f"skipping unreadable image {p} ({err})", stacklevel=2)
    images = torch.stack([x for x, _ in good]) if good else None
    return images, [p for _, p in good], [p for p, _ in bad]
