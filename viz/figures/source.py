"""What figures are made of: a model and an image set (`Source`). The model is named as everywhere else
(`smt.resolve.resolve_model`: a demo name, a timm name with an optional checkpoint, a checkpoint file alone,
a model object) and lives on its device with the images; analyses move only their results to the CPU."""
from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

__all__ = ["DATA_IMAGES", "Source", "demo_source", "folder_source", "load_source", "sha256"]

#: The sample photographs (the default images of an ImageNet model).
DATA_IMAGES = Path(__file__).resolve().parent.parent.parent / "data" / "images"


@dataclass
class Source:
    """What the figures are made of: a model and an image set.

    Attributes:
        name: The model's name as given (`main`, `smt_small`, ...).
        model: The model in eval mode.
        images: (N, 3, H, W) normalised model input.
        display: (N, H, W, 3) uint8, the images as shown (same crop as the model input).
        class_names: Name of every class index.
        labels: (N,) true classes when known.
        boxes: (N, 4) item boxes (x0, y0, x1, y1) in pixels when known.
        checkpoint: The weights file, if any.
        image_source: Where the images come from (a folder, or the shipped canvases).
        image_files: The image files, in order (empty for the shipped canvases).
        build_random: A function building the same architecture at random initialisation (seeded).
        demo: The demo model's name when the source is a shipped demo model.
    """
    name: str
    model: nn.Module
    images: torch.Tensor
    display: np.ndarray
    class_names: Sequence[str]
    labels: Optional[torch.Tensor] = None
    boxes: Optional[torch.Tensor] = None
    checkpoint: Optional[str] = None
    image_source: str = ""
    image_files: Sequence[str] = ()
    build_random: Optional[Callable[[int], nn.Module]] = None
    demo: Optional[str] = None


def sha256(path: os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _on_display(images: torch.Tensor, config: dict) -> np.ndarray:
    """Normalised model input (N, 3, H, W) -> (N, H, W, 3) uint8 as shown."""
    mean = torch.tensor(config["mean"], device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(config["std"], device=images.device).view(1, 3, 1, 1)
    return ((images * std + mean).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _source(resolved, **fields) -> Source:
    """A `Source` of a resolved model (`smt.resolve.ResolvedModel`): the model and images on its device."""
    fields["images"] = fields["images"].to(resolved.device)
    return Source(name=resolved.name, model=resolved.model, class_names=resolved.class_names,
                  checkpoint=resolved.checkpoint, demo=resolved.demo,
                  build_random=resolved.build_random if resolved.can_build_random else None, **fields)


def demo_source(name="main", *, checkpoint: Optional[str] = None, num_images: Optional[int] = None,
                labels: Optional[str] = None, device=None) -> Source:
    """A shipped demo model (`smt.demo_model`, or its `ResolvedModel`) on the shipped evaluation canvases (labels
    and boxes known)."""
    from smt.demo import demo_images
    from smt.resolve import ResolvedModel, resolve_model

    resolved = name if isinstance(name, ResolvedModel) else resolve_model(name, checkpoint=checkpoint, labels=labels,
                                                                          device=device)
    if resolved.demo is None:
        raise ValueError(f"{resolved.name!r} is not a demo model; use load_source or folder_source for other models")
    data = demo_images()
    n = len(data) if num_images is None else min(num_images, len(data))
    return _source(resolved, images=data.model_input(slice(0, n)), display=data.images[:n].numpy(),
                   labels=data.labels[:n], boxes=data.boxes[:n],
                   image_source="data/demo/eval_subset.npz (Scaled Fashion-MNIST test canvases, seed 12345)")


def folder_source(name, folder: os.PathLike, *, checkpoint: Optional[str] = None,
                  num_images: Optional[int] = None, input_size: Optional[int] = None,
                  num_classes: Optional[int] = None, seed: int = 0, labels: Optional[str] = None,
                  device=None) -> Source:
    """A model (any name `smt.resolve.resolve_model` takes, or a `ResolvedModel`) on an image folder, with the
    model's eval preprocessing (resize and centre crop to its input size, or `input_size`)."""
    from timm.data import create_transform, resolve_data_config

    from smt.resolve import ResolvedModel, resolve_model

    from ..images import ImageFiles, list_images

    files = list_images(folder, num_images)
    resolved = name if isinstance(name, ResolvedModel) else resolve_model(
        name, checkpoint=checkpoint, labels=labels, device=device, num_classes=num_classes, seed=seed)
    config = resolved.data_config if input_size is None else resolve_data_config(
        {"input_size": (3, input_size, input_size)}, model=resolved.model)
    ds = ImageFiles(files, create_transform(**config))
    xs, kept = [], []
    for i in range(len(ds)):
        x, path, err = ds[i]
        if x is None:
            print(f"skipping unreadable image {path} ({err})", file=sys.stderr)
            continue
        xs.append(x)
        kept.append(str(path))
    if not xs:
        raise ValueError(f"no readable image under {folder}")
    images = torch.stack(xs)
    return _source(resolved, images=images, display=_on_display(images, config), image_source=str(folder),
                   image_files=kept)


def load_source(model="main", *, checkpoint: Optional[str] = None, images: Optional[str] = None,
                num_images: Optional[int] = None, input_size: Optional[int] = None, seed: int = 0,
                labels: Optional[str] = None, device=None) -> Source:
    """The source the command line describes: a demo model on the shipped canvases by default; any other model
    (`smt.resolve.resolve_model`: a timm name with an optional checkpoint, a checkpoint file alone, a model
    object) on a folder (default `data/images`), or a demo model on a folder."""
    from smt.resolve import resolve_model

    resolved = resolve_model(model, checkpoint=checkpoint, labels=labels, device=device, seed=seed)
    if resolved.demo is not None and images is None:
        src = demo_source(resolved, num_images=num_images)
        if input_size is not None and input_size != src.images.shape[-1]:
            import torch.nn.functional as F

            scale = input_size / src.images.shape[-1]
            src.images = F.interpolate(src.images, size=(input_size, input_size), mode="bilinear",
                                       align_corners=False)
            src.display = F.interpolate(torch.from_numpy(src.display).permute(0, 3, 1, 2).float(),
                                        size=(input_size, input_size), mode="bilinear", align_corners=False
                                        ).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            src.boxes = src.boxes * scale
        return src
    return folder_source(resolved, images or DATA_IMAGES, num_images=num_images, input_size=input_size)
