"""What figures are made of: a model and an image set (`Source`), from the demo models, a timm model on an
image folder, or a user's checkpoint."""
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


def _class_names(num_classes: int) -> list[str]:
    if num_classes in (1000, 21841):
        from timm.data import ImageNetInfo

        info = ImageNetInfo("imagenet-1k" if num_classes == 1000 else "imagenet-22k")
        return [info.index_to_description(i).split(",")[0] for i in range(num_classes)]
    return [f"class {i}" for i in range(num_classes)]


def demo_source(name: str = "main", *, checkpoint: Optional[str] = None, num_images: Optional[int] = None) -> Source:
    """A shipped demo model (`smt.demo_model`) on the shipped evaluation canvases (labels and boxes known)."""
    import timm

    import smt
    from smt.demo import DEMO_MODELS, demo_images, demo_model

    data = demo_images()
    n = len(data) if num_images is None else min(num_images, len(data))
    model = demo_model(name, checkpoint=checkpoint)
    variant, arch = DEMO_MODELS[name]

    def build_random(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return timm.create_model(variant, num_classes=len(smt.CLASS_NAMES), **arch).eval()

    return Source(name=name, model=model, images=data.model_input(slice(0, n)), display=data.images[:n].numpy(),
                  class_names=list(data.class_names), labels=data.labels[:n], boxes=data.boxes[:n],
                  checkpoint=str(checkpoint) if checkpoint else str(smt.demo.demo_weights_path(name)),
                  image_source="data/demo/eval_subset.npz (Scaled Fashion-MNIST test canvases, seed 12345)",
                  build_random=build_random, demo=name)


def folder_source(name: str, folder: os.PathLike, *, checkpoint: Optional[str] = None,
                  num_images: Optional[int] = None, input_size: Optional[int] = None,
                  num_classes: Optional[int] = None, seed: int = 0) -> Source:
    """A timm model (with `checkpoint`'s weights, or seeded random ones) on an image folder, with the model's
    eval preprocessing (resize and centre crop to its input size, or `input_size`)."""
    import timm
    from timm.data import create_transform, resolve_data_config

    from ..images import ImageFiles, list_images
    from ..run import build_model

    files = list_images(folder, num_images)
    torch.manual_seed(seed)
    model = build_model(name, checkpoint, num_classes).eval()
    config = resolve_data_config({} if input_size is None else {"input_size": (3, input_size, input_size)},
                                 model=model)
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
    mean = torch.tensor(config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["std"]).view(1, 3, 1, 1)
    display = ((images * std + mean).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    num_out = int(getattr(model, "num_classes", 0) or 0)

    def build_random(s: int) -> nn.Module:
        torch.manual_seed(s)
        return timm.create_model(name, num_classes=num_out).eval()

    return Source(name=name, model=model, images=images, display=display, class_names=_class_names(num_out),
                  checkpoint=str(checkpoint) if checkpoint else None, image_source=str(folder), image_files=kept,
                  build_random=build_random)


def load_source(model: str = "main", *, checkpoint: Optional[str] = None, images: Optional[str] = None,
                num_images: Optional[int] = None, input_size: Optional[int] = None, seed: int = 0) -> Source:
    """The source the command line describes: a demo model on the shipped canvases by default; a timm model
    on a folder (default `data/images`) otherwise, or a demo model on a folder."""
    from smt.demo import DEMO_MODELS

    if checkpoint is not None and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    if model in DEMO_MODELS and images is None:
        src = demo_source(model, checkpoint=checkpoint, num_images=num_images)
        if input_size is not None and input_size != src.images.shape[-1]:
            import torch.nn.functional as F

            src.images = F.interpolate(src.images, size=(input_size, input_size), mode="bilinear",
                                       align_corners=False)
            src.display = F.interpolate(torch.from_numpy(src.display).permute(0, 3, 1, 2).float(),
                                        size=(input_size, input_size), mode="bilinear", align_corners=False
                                        ).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            scale = input_size / 112
            src.boxes = src.boxes * scale
        return src
    if model in DEMO_MODELS:
        from smt.demo import demo_weights_path

        checkpoint = checkpoint or str(demo_weights_path(model))
        variant, _ = DEMO_MODELS[model]
        return folder_source(variant, images, checkpoint=checkpoint, num_images=num_images, input_size=input_size,
                             seed=seed)
    return folder_source(model, images or DATA_IMAGES, checkpoint=checkpoint, num_images=num_images,
                         input_size=input_size, seed=seed)


