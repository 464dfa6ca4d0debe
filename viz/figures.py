"""The figure set: which analyses feed which plots, computed once per image set, written where.

    python -m viz figures --out figures/                          # demo model `main`, shipped canvases
    python -m viz figures --out figs --model smt_small --checkpoint smt_small.pth   # ImageNet model, data/images
    python -m viz figures --out figs --results erf.pt spectrum.pt distance.pt       # from `viz run` files

`FigureSet` holds the source (a model and an image set, loaded on first use) and caches every
analysis, so one captured forward pass (`smt_forward`) feeds every figure that needs taps, and the
figure command, `make demo`'s report, the widgets and the notebooks share one set of numbers. Each
figure is a function `FigureSet -> Rendered` (the matplotlib Figure, the arrays it plots, its caption,
the numbers the caption quotes); `render` writes every requested format plus `NAME.npz` (the arrays)
and `NAME.json` (provenance and numbers), and `index.html` over all of them. It is the only code in
the project that writes figure files, and it writes nothing outside `out`.

Data files are reproducible: the same inputs give byte-identical `.npz` and `.json` (fixed zip entry
times, sorted keys, no clock readings); PDF and SVG carry no creation date.
"""
from __future__ import annotations

import hashlib
import html
import io
import json
import math
import os
import shlex
import sys
import time
import traceback
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn

__all__ = ["Settings", "Source", "FigureSet", "Rendered", "SkipFigure", "FIGURES", "render", "write_npz",
           "demo_source", "folder_source", "load_source", "main", "add_arguments"]

DATA_IMAGES = Path(__file__).resolve().parent.parent / "data" / "images"


class SkipFigure(Exception):
    """Raised by a figure that the setting cannot make (e.g. the ablation figure without the ablation set)."""


@dataclass(frozen=True)
class Settings:
    """Every analysis setting of a figure set (recorded in each figure's JSON).

    Attributes:
        num_images: Images the analyses average over (the first N of the image set).
        rows: Images shown in the per-image figures (modulator maps, Grad-CAM).
        sam_block: The block of the `sam_block` figure.
        group: The SAA group shown in the `sam_block` figure.
        radius: Low-frequency cut-off, units of pi.
        thresholds: ERF area-ratio thresholds.
        erf_images: Images per ERF (RepLKNet uses 50).
        distance_images: Images for the distance profile.
        queries: Query tokens per SAM block and batch for the modulation distance.
        cam_method: pytorch_grad_cam method.
        seed: Seed of the random-initialisation model and of the query choice.
        venue: Venue preset of `viz.style.paper`.
        variants: The variants of the `summary` table; empty for every registered one.
    """
    num_images: int = 128
    rows: int = 4
    sam_block: str = "stages.0.blocks.0"
    group: int = 0
    radius: float = 0.5
    thresholds: tuple[float, ...] = (0.2, 0.3, 0.5, 0.99)
    erf_images: int = 32
    distance_images: int = 16
    queries: int = 16
    cam_method: str = "GradCAM"
    seed: int = 0
    venue: str = "cvpr2024"
    variants: tuple[str, ...] = ()


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


@dataclass
class Rendered:
    """One figure: the Figure (None for a table), the arrays it plots, its caption and the numbers it quotes."""
    fig: Any
    arrays: dict[str, np.ndarray]
    caption: str
    numbers: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # extra text files: suffix -> content (tables)
    png: Optional[bytes] = None  # the figure as shown in a notebook (`FigureSet.draw`)

    def _repr_png_(self) -> Optional[bytes]:  # Jupyter shows a drawn figure as its PNG
        return self.png

    def _repr_markdown_(self) -> Optional[str]:  # and a table as Markdown
        return self.texts.get(".md") if self.png is None else None


def _sha256(path: os.PathLike) -> str:
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

    from .images import ImageFiles, list_images
    from .run import build_model

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


# ---- the analyses, computed once per figure set ------------------------------------------------------------

class FigureSet:
    """A source, its settings, and every analysis the figures draw, each computed on first use and cached.

    Args:
        source: The model and images, or a function building them (called on first use, so figures drawn
            entirely from `results` never load a model).
        settings: Analysis settings.
        results: Records written by `python -m viz run` (`viz.run.load_result`), with their paths; they
            replace the matching analyses (erf, spectrum -> fourier, distance, cam -> gradcam).
        backbones: {label: Source} of other trained models to draw beside SMT (distance, erf, fourier);
            default the comparison backbones shipped in `data/demo`, when the source is a demo model.
    """

    def __init__(self, source: Source | Callable[[], Source], settings: Settings = Settings(), *,
                 results: Sequence[tuple[str, dict]] = (), backbones: Optional[Mapping[str, Source]] = None):
        self._source = source
        self.settings = settings
        self.results = list(results)
        self._backbones = backbones
        self.timings: dict[str, float] = {}

    # -- source ------------------------------------------------------------------------------------------
    @cached_property
    def source(self) -> Source:
        return self._source() if callable(self._source) else self._source

    @property
    def source_loaded(self) -> bool:
        """Whether the source has been built (figures drawn only from results never build it)."""
        return "source" in self.__dict__

    @property
    def model(self) -> nn.Module:
        return self.source.model

    @property
    def is_smt(self) -> bool:
        return hasattr(self.model, "stage_block_types")

    def require_smt(self, figure: str) -> None:
        if not self.is_smt:
            raise SkipFigure(f"{figure} needs an SMT model; {self.source.name} is a {type(self.model).__name__}")

    def images(self, n: Optional[int] = None) -> torch.Tensor:
        n = self.settings.num_images if n is None else n
        return self.source.images[:min(n, len(self.source.images))]

    @property
    def input_size(self) -> int:
        return int(self.source.images.shape[-1])

    def result_record(self, analysis: str) -> list[tuple[str, dict]]:
        return [(p, r) for p, r in self.results if r.get("analysis") == analysis]

    # -- cached analyses ---------------------------------------------------------------------------------
    @cached_property
    def forward(self):
        """One captured forward pass over `num_images` images: every block's output and every SAM tap."""
        from .analysis import smt_forward

        return smt_forward(self.model, self.images())

    @cached_property
    def predictions(self) -> torch.Tensor:
        """Predicted class of every image of the source (batched)."""
        x = self.source.images
        with torch.no_grad():
            return torch.cat([self.model(x[i:i + 128]).argmax(1) for i in range(0, len(x), 128)])

    @cached_property
    def fourier(self) -> list:
        from .analysis import fourier_profile

        return fourier_profile(self.forward)

    @cached_property
    def low_frequency(self) -> list:
        from .analysis import low_frequency_shares

        sam = {b: f for b, f in self.forward.sam.items()
               if not isinstance(self.model.get_submodule(b).attn.saa, nn.Identity)}
        return low_frequency_shares(sam, self.settings.radius)

    def erf(self, stage: int, model: Optional[nn.Module] = None):
        """(ERFResult, display map) of stage `stage`'s output for `model` (default the source's); every stage
        of the model is computed at once (one forward pass per batch) and cached."""
        key = ("erf", stage, id(model) if model is not None else None)
        if key not in self._cache:
            from .analysis.erf import erf_display, stage_erfs

            m = model if model is not None else self.model
            results = stage_erfs(m, self.images(self.settings.erf_images), range(len(m.stages)), batch_size=8)
            for s, r in results.items():
                self._cache[("erf", s, key[2])] = (r, erf_display(r.erf))
        return self._cache[key]

    @cached_property
    def _cache(self) -> dict:
        return {}

    def head_erf(self, block: str) -> torch.Tensor:
        """Per-head receptive fields of one SAM block (`erf.head_erf`, 8 images)."""
        key = ("head_erf", block)
        if key not in self._cache:
            from .analysis.erf import head_erf

            self._cache[key] = head_erf(self.model, self.images(8), block)
        return self._cache[key]

    @cached_property
    def random_model(self) -> nn.Module:
        if self.source.build_random is None:
            raise SkipFigure("no way to build this architecture at random initialisation")
        return self.source.build_random(self.settings.seed)

    @cached_property
    def distance(self) -> list:
        from .analysis import smt_distance_profile

        return smt_distance_profile(self.model, self.images(self.settings.distance_images),
                                    queries=self.settings.queries, seed=self.settings.seed, batch_size=8,
                                    progress=False)

    @cached_property
    def cams(self) -> dict[int, torch.Tensor]:
        """Raw Grad-CAM maps of stages 2-4 (index 1-3) for the true class (predicted when unknown), one pass."""
        from .analysis.cam import class_activation_maps, default_target_layers

        x = self.images()
        targets = (self.source.labels[:len(x)] if self.source.labels is not None else self.predictions[:len(x)])
        stages = list(range(1, len(self.model.stages)))
        layers = [default_target_layers(self.model, s)[0] for s in stages]
        parts = [class_activation_maps(self.model, x[i:i + 64], targets[i:i + 64].tolist(),
                                       method=self.settings.cam_method, target_layers=layers, per_layer=True)
                 for i in range(0, len(x), 64)]
        return {s: torch.cat([p[k] for p in parts]) for k, s in enumerate(stages)}

    @cached_property
    def pointing(self) -> dict[int, float]:
        from .analysis.cam import pointing_game

        if self.source.boxes is None:
            return {}
        n = len(self.images())
        return {s: pointing_game(c, self.source.boxes[:n], (self.input_size, self.input_size))
                for s, c in self.cams.items()}

    @cached_property
    def backbones(self) -> dict[str, Source]:
        """Other trained backbones to draw beside the source (the shipped vit/swin/convnext demo models)."""
        if self._backbones is not None:
            return dict(self._backbones)
        if self.source.demo is None:
            return {}
        from smt.demo import available_backbones

        out = {}
        for name in available_backbones():
            src = demo_source(name, num_images=self.settings.num_images)
            out[name] = src
        return out

    @cached_property
    def summary(self) -> list:
        """The variant table (`smt.summary`): every registered variant, checked against the reference logits."""
        from tqdm.auto import tqdm

        from smt.model import VARIANTS
        from smt.summary import summarize

        names = list(self.settings.variants) or list(VARIANTS)
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant(s) {unknown}; registered: {', '.join(VARIANTS)}")
        return [summarize(n) for n in tqdm(names, desc="variants", leave=False)]

    def draw(self, name: str, *, venue: Optional[str] = None, dpi: int = 110) -> Rendered:
        """One figure of the set, for a notebook: drawn in the screen style (or a venue's), with its PNG,
        data and caption (a notebook cell ending in `fs.draw("fourier")` shows it)."""
        from .style import paper, screen

        if name not in FIGURES:
            raise ValueError(f"unknown figure {name!r}; the figures are {', '.join(FIGURES)}")
        fn, width = FIGURES[name]
        with (paper(venue, width) if venue else screen()):
            r = fn(self)
            if r.fig is not None:
                buf = io.BytesIO()
                r.fig.savefig(buf, format="png", dpi=dpi)
                r.png = buf.getvalue()
        return r

    def provenance(self) -> dict[str, Any]:
        """What every figure's JSON records about the source."""
        src = self.source
        ck = src.checkpoint
        return {
            "model": src.name,
            "model_class": type(src.model).__name__,
            "checkpoint": ck,
            "checkpoint_sha256": _sha256(ck) if ck and Path(ck).is_file() else None,
            "images": src.image_source,
            "image_files": [os.path.basename(f) for f in src.image_files],
            "num_images_available": int(len(src.images)),
            "input_size": self.input_size,
        }


# ---- figures ----------------------------------------------------------------------------------------------

def _names(fs: FigureSet, idx: torch.Tensor) -> list[str]:
    return [fs.source.class_names[int(i)] for i in idx]


def fig_modulator_maps(fs: FigureSet) -> Rendered:
    from .analysis import last_sam_blocks, modulator_map
    from .plot import plot_modulator_maps

    fs.require_smt("modulator_maps")
    stages = [s for s in (0, 1, 2) if any(t == "sam" for t in fs.model.stage_block_types[s])]
    blocks = last_sam_blocks(fs.model, stages)
    rows = min(fs.settings.rows, len(fs.images()))
    maps = {b: modulator_map(fs.forward.sam[b].modulator[:rows], 4.0) for b in blocks.values()}
    preds = _names(fs, fs.predictions[:rows])
    labels = _names(fs, fs.source.labels[:rows]) if fs.source.labels is not None else None
    fig = plot_modulator_maps(fs.source.display[:rows], maps, labels=labels, predictions=preds)
    caption = (f"Modulator maps of {fs.source.name}: for the last SAM block of stages "
               f"{', '.join(str(s + 1) for s in stages)}, the mean over channels of |modulator| upsampled x4 "
               f"bilinearly (the authors' visualisation), one colour scale per column.")
    arrays = {"images": fs.source.display[:rows], **{f"modulator/{b}": m.numpy() for b, m in maps.items()},
              "predicted": fs.predictions[:rows].numpy()}
    if fs.source.labels is not None:
        arrays["labels"] = fs.source.labels[:rows].numpy()
    return Rendered(fig, arrays, caption, {"blocks": list(maps), "predicted": preds, "labels": labels})


def fig_sam_block(fs: FigureSet) -> Rendered:
    from .analysis import block_index, group_channel_maps, head_activation_maps, modulator_map, stage_stride
    from .plot import plot_sam_block

    fs.require_smt("sam_block")
    block = fs.settings.sam_block
    feats = fs.forward.sam.get(block)
    if feats is None:
        from .analysis import sam_block_names

        raise ValueError(f"--sam-block {block} is not a SAM block of {fs.source.name}; SAM blocks: "
                         f"{sam_block_names(fs.model)}")
    i = 0
    heads = head_activation_maps([h[i:i + 1] for h in feats.heads])[0]
    fields = fs.head_erf(block)
    group = group_channel_maps(feats.saa_input[i:i + 1], feats.num_heads, fs.settings.group)[0]
    mod = modulator_map(feats.modulator[i:i + 1])[0]
    stride = stage_stride(fs.model, block_index(block)[0])
    fig = plot_sam_block(fs.source.display[i], heads, fields, group, mod, feats.kernel_sizes, block=block,
                         group_index=fs.settings.group, stride=stride)
    support = [int((f > 1e-6 * f.max()).sum()) for f in fields]
    caption = (f"Inside {block} of {fs.source.name} (image 1): top, each MHMC head's mean |output| (kernels "
               f"{', '.join(f'{k}x{k}' for k in feats.kernel_sizes)}); middle, each head's receptive field with "
               f"respect to the block input (gradient of the head's central output, 8 images), non-zero on "
               f"{', '.join(map(str, support))} positions; bottom, SAA's input for group {fs.settings.group + 1} "
               f"(one channel of every head) beside the mean |modulator| it produces.")
    arrays = {"image": fs.source.display[i], "head_maps": heads.numpy(), "head_erf": fields.numpy(),
              "saa_group": group.numpy(), "modulator": mod.numpy()}
    return Rendered(fig, arrays, caption, {"block": block, "kernel_sizes": list(feats.kernel_sizes),
                                           "head_erf_support": support})


def _fourier_from_results(fs: FigureSet) -> Optional[list]:
    from .analysis.spectrum import BlockFourier, FourierCurve

    recs = fs.result_record("spectrum")
    if not recs:
        return None
    r = recs[0][1]["result"]
    return [BlockFourier(b, k, float(d), FourierCurve(r["freq"][b], r["relative_log_amplitude"][b]))
            for b, k, d in zip(r["blocks"], r["kinds"], r["depth"].tolist())]


def _backbone_profiles(fs: FigureSet, what: str) -> dict[str, list]:
    from .analysis import block_fourier_profile, timm_attention_profile

    out = {}
    for name, src in fs.backbones.items():
        key = (what, name)
        if key not in fs._cache:
            if what == "fourier":
                fs._cache[key] = block_fourier_profile(src.model, src.images[:fs.settings.num_images])
            else:
                try:
                    fs._cache[key] = timm_attention_profile(src.model, src.images[:fs.settings.distance_images],
                                                            progress=False)
                except ValueError:
                    fs._cache[key] = None
        if fs._cache[key] is not None:
            out[name] = fs._cache[key]
    return out


def fig_fourier(fs: FigureSet) -> Rendered:
    from .plot import plot_fourier

    profile = _fourier_from_results(fs)
    from_results = profile is not None
    if profile is None:
        fs.require_smt("fourier")
        profile = fs.fourier
    others = {} if from_results else {_title(k): v for k, v in _backbone_profiles(fs, "fourier").items()}
    fig = plot_fourier(profile, others=others or None)
    high = {b.name: round(b.curve.highest, 4) for b in profile}
    msa = [b.curve.highest for b in profile if b.kind == "msa"]
    sam = [b.curve.highest for b in profile if b.kind == "sam"]
    caption = ("Relative log amplitude of the Fourier-transformed block outputs (Park and Kim, ICLR 2022): "
               "(a) every block over frequency, coloured by depth (dashed: MSA blocks); (b) the value at the "
               f"highest frequency against normalised depth, MSA blocks shaded. Mean at pi: SAM blocks "
               f"{np.mean(sam):.2f}, MSA blocks {np.mean(msa) if msa else float('nan'):.2f}"
               + (f"; beside SMT: {', '.join(others)}" if others else "") + ".")
    arrays = {f"freq/{b.name}": b.curve.freq.numpy() for b in profile}
    arrays.update({f"value/{b.name}": b.curve.value.numpy() for b in profile})
    arrays["depth"] = np.array([b.depth for b in profile])
    for name, prof in others.items():
        arrays[f"{name}/depth"] = np.array([b.depth for b in prof])
        arrays[f"{name}/highest"] = np.array([b.curve.highest for b in prof])
    numbers = {"highest": high, "mean_highest_sam": float(np.mean(sam)) if sam else None,
               "mean_highest_msa": float(np.mean(msa)) if msa else None, "from_results": from_results,
               "others_highest": {k: [round(b.curve.highest, 4) for b in v] for k, v in others.items()}}
    return Rendered(fig, arrays, caption, numbers)


def fig_low_frequency(fs: FigureSet) -> Rendered:
    from .plot import plot_low_frequency_shares

    fs.require_smt("low_frequency")
    shares = fs.low_frequency
    if not shares:
        raise SkipFigure(f"{fs.source.name} has no SAM block with SAA (SAA is off)")
    ax = plot_low_frequency_shares(shares)
    up = sum(s.modulator > s.saa_input for s in shares)
    change = float(np.mean([s.change for s in shares]))
    caption = (f"Low-frequency share (|f| <= {fs.settings.radius:g} pi, DC excluded) of SAA's input and output "
               f"(the modulator) in every SAM block of {fs.source.name}, over {len(fs.images())} images: the output "
               f"share is higher in {up} of {len(shares)} blocks (mean change {change:+.3f}).")
    arrays = {"saa_input": np.array([s.saa_input for s in shares]),
              "modulator": np.array([s.modulator for s in shares])}
    numbers = {"shares": {s.block: {"saa_input": round(s.saa_input, 4), "modulator": round(s.modulator, 4)}
                          for s in shares}, "blocks_where_output_is_higher": up, "num_blocks": len(shares)}
    return Rendered(ax.figure, arrays, caption, numbers)


def _distance_from_results(fs: FigureSet) -> Optional[list]:
    from .analysis.distance import BlockDistance

    recs = fs.result_record("distance")
    if not recs:
        return None
    r = recs[0][1]["result"]
    return [BlockDistance(b, k, r["per_head"][b], float(v)) for b, k, v in zip(r["blocks"], r["kinds"],
                                                                               r["block"].tolist())]


def fig_distance(fs: FigureSet) -> Rendered:
    from .analysis import block_index
    from .plot import plot_distance_profile

    profile = _distance_from_results(fs)
    from_results = profile is not None
    if profile is None:
        fs.require_smt("distance")
        profile = fs.distance
    others = {} if from_results else {_title(k): v for k, v in _backbone_profiles(fs, "distance").items()}
    ax = plot_distance_profile(profile, others=others or None)
    per_stage: dict[str, float] = {}
    for s in sorted({block_index(b.name)[0] for b in profile}):
        for kind in ("sam", "msa"):
            v = [b.distance for b in profile if block_index(b.name)[0] == s and b.kind == kind]
            if v:
                per_stage[f"stage {s + 1} {kind.upper()}"] = round(float(np.mean(v)), 2)
    caption = ("Distance against depth, in input pixels: modulation distance of SAM blocks (gradient-mass "
               "distance of the modulator, " + (f"{fs.settings.queries} query tokens, " if not from_results else "")
               + "one dot per MHMC head) and mean attention distance of MSA blocks (one dot per attention head); "
               "the line is the block's distance. Per stage: "
               + ", ".join(f"{k} {v:.1f} px" for k, v in per_stage.items())
               + (f". Beside SMT: {', '.join(others)}" if others else "") + ".")
    arrays = {f"per_head/{b.name}": b.per_head.numpy() if hasattr(b.per_head, "numpy") else np.asarray(b.per_head)
              for b in profile}
    arrays["distance"] = np.array([b.distance for b in profile])
    for name, prof in others.items():
        arrays[f"{name}/distance"] = np.array([b.distance for b in prof])
    numbers = {"per_stage_px": per_stage, "per_block_px": {b.name: round(b.distance, 2) for b in profile},
               "from_results": from_results,
               "others_per_block_px": {k: [round(b.distance, 2) for b in v] for k, v in others.items()}}
    return Rendered(ax.figure, arrays, caption, numbers)


def _title(name: str) -> str:
    return {"vit": "ViT", "swin": "Swin", "convnext": "ConvNeXt"}.get(name, name)


def fig_erf(fs: FigureSet) -> Rendered:
    from .analysis.erf import effective_receptive_field, erf_display, final_feature_map, high_contribution_area_ratio
    from .plot import area_ratio_table, plot_erf_grid

    ts = fs.settings.thresholds
    maps: dict[str, list] = {}   # row label -> display map per column
    raw: dict[str, np.ndarray] = {}
    recs = fs.result_record("erf")
    if recs:
        columns = []
        maps["viz run"] = []
        for _, rec in recs:
            stage = rec["settings"].get("stage")
            columns.append("last stage" if stage is None else f"stage {int(stage) + 1}")
            maps["viz run"].append(erf_display(rec["result"]["erf"]))
            raw[f"viz run/{columns[-1]}"] = to_np(rec["result"]["erf"])
        counted = sorted({int(r["result"]["num_counted"]) for _, r in recs})
        pixels = int(recs[0][1]["data_config"]["input_size"][-1])
        what = f"`viz run erf` results over {'/'.join(map(str, counted))} images"
    else:
        fs.require_smt("erf")
        stages = list(range(len(fs.model.stages)))
        columns = [f"stage {s + 1}" for s in stages]
        models = {"trained": None}
        if fs.source.build_random is not None:
            models["random init."] = fs.random_model
        for label, m in models.items():
            maps[label] = []
            for s in stages:
                r, d = fs.erf(s, m)
                maps[label].append(d)
                raw[f"{label}/stage {s + 1}"] = to_np(r.erf)
        pixels = fs.input_size
        init = f", trained and at random initialisation (seed {fs.settings.seed})" if len(models) > 1 else ""
        what = f"every stage of {fs.source.name}{init}, {len(fs.images(fs.settings.erf_images))} images"
    ratios = {label: [high_contribution_area_ratio(d, ts) for d in row] for label, row in maps.items()}
    table = {f"{label}, {col}": r for label, row in ratios.items() for col, r in zip(columns, row)}
    for name, src in ({} if recs else fs.backbones).items():  # results files stand alone
        key = ("erf-backbone", name)
        if key not in fs._cache:
            r = effective_receptive_field(src.model, src.images[:fs.settings.erf_images], final_feature_map,
                                          batch_size=8)
            fs._cache[key] = erf_display(r.erf)
        table[f"{_title(name)}, last stage"] = high_contribution_area_ratio(fs._cache[key], ts)
        raw[f"{name}/last stage"] = to_np(fs._cache[key])
    fig = plot_erf_grid(maps, ratios, columns=columns, pixels=pixels)
    first = next(iter(maps))
    last = ratios[first][-1]
    caption = ("Effective receptive fields (RepLKNet's measure: the gradient of the central output feature with "
               "respect to the input, ReLU, averaged over images; shown as log10(g + 1) / max on one scale) of "
               f"{what}. Under each map, the high-contribution area ratio (the smallest centred square holding a "
               f"fraction t of the map) at t = {' / '.join(f'{t:g}' for t in ts)}; {first}, {columns[-1]}: "
               + ", ".join(f"t={t:g}: {'n/a' if v is None else f'{v:.3f}'}" for t, v in last.items())
               + (". The other backbones' last stage is in the table (erf.md)"
                  if len(table) > sum(map(len, ratios.values())) else "") + ".")
    arrays = {f"display/{label}/{col}": to_np(d) for label, row in maps.items() for col, d in zip(columns, row)}
    arrays.update({f"raw/{k}": v for k, v in raw.items()})
    numbers = {"area_ratios": {k: {str(t): (None if v is None else round(v, 4)) for t, v in r.items()}
                               for k, r in table.items()}}
    return Rendered(fig, arrays, caption, numbers,
                    texts={".md": area_ratio_table(table), ".tex": area_ratio_table(table, latex=True)})


def to_np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def fig_gradcam(fs: FigureSet) -> Rendered:
    from .plot import plot_cam_grid

    recs = fs.result_record("cam")
    if recs:
        return _gradcam_from_results(fs, recs)
    fs.require_smt("gradcam")
    rows = min(fs.settings.rows, len(fs.images()))
    stages = sorted(fs.cams)
    cams = [fs.cams[s][:rows] for s in stages]
    labels = fs.source.labels
    target = labels if labels is not None else fs.predictions
    row_labels = [fs.source.class_names[int(t)] for t in target[:rows]]
    boxes = fs.source.boxes[:rows] if fs.source.boxes is not None else None
    fig = plot_cam_grid(fs.source.display[:rows], cams, columns=[f"stage {s + 1}" for s in stages], boxes=boxes,
                        row_labels=row_labels)
    pg = fs.pointing
    n = len(fs.images())
    chance = None
    if fs.source.boxes is not None:
        b = fs.source.boxes[:n].float()
        chance = float(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).mean() / fs.input_size ** 2)
    caption = (f"{fs.settings.cam_method} of the {'true' if labels is not None else 'predicted'} class at the output "
               f"of stages {', '.join(str(s + 1) for s in stages)} of {fs.source.name} (ReLU, bilinear upsampling, "
               f"min-max per map; + marks the maximum"
               + ("; boxes: the items" if boxes is not None else "") + ").")
    if pg:
        caption += (f" Pointing game over {n} images: "
                    + ", ".join(f"stage {s + 1} {100 * v:.1f}%" for s, v in pg.items())
                    + f" (a uniformly random point: {100 * chance:.1f}%).")
    arrays = {f"cam/stage{s + 1}": fs.cams[s].numpy() for s in stages}
    arrays["images"] = fs.source.display[:rows]
    numbers = {"pointing_game": {f"stage {s + 1}": round(v, 4) for s, v in pg.items()},
               "random_point_hit_rate": None if chance is None else round(chance, 4), "num_images": n,
               "method": fs.settings.cam_method}
    return Rendered(fig, arrays, caption, numbers)


def _gradcam_from_results(fs: FigureSet, recs) -> Rendered:
    from PIL import Image

    from .plot import plot_cam_grid

    rows = fs.settings.rows
    columns, cams, paths = [], [], None
    for _, rec in recs:
        r = rec["result"]
        stage = r["stage"]
        columns.append("last stage" if stage == -1 else f"stage {int(stage) + 1}")
        cams.append(r["cams"][:rows])
        paths = paths or r["paths"][:rows]
    size = int(rec["data_config"]["input_size"][-1])
    display = []
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p} (an image of the results file) is not readable here; Grad-CAM overlays need "
                                    f"the images: run on a machine that has them, or draw only erf, fourier, distance")
        with Image.open(p) as im:
            im = im.convert("RGB")
            s = size / min(im.size)
            im = im.resize((max(size, round(im.size[0] * s)), max(size, round(im.size[1] * s))), Image.BICUBIC)
            x0, y0 = (im.size[0] - size) // 2, (im.size[1] - size) // 2
            display.append(np.asarray(im.crop((x0, y0, x0 + size, y0 + size))))
    display = np.stack(display)
    fig = plot_cam_grid(display, cams, columns=columns)
    caption = f"{recs[0][1]['result']['method']} maps of the predicted class from `viz run cam` results."
    return Rendered(fig, {f"cam/{c}": c_.numpy() for c, c_ in zip(columns, cams)}, caption,
                    {"from_results": True})


def fig_ablation(fs: FigureSet) -> Rendered:
    from smt.demo import DEMO_MODELS, demo_weights_path

    from .analysis import low_frequency_shares, sam_features
    from .analysis.erf import effective_receptive_field, erf_display, high_contribution_area_ratio
    from .plot import AblationRow, plot_ablation

    names = ["heads1", "heads2", "heads4", "heads8", "nosaa"]
    missing = [n for n in names if n not in DEMO_MODELS or not demo_weights_path(n).is_file()]
    if missing:
        raise SkipFigure(f"the trained ablation set is incomplete (missing {', '.join(missing)} in data/demo)")
    if fs.source.demo is None or fs.source.labels is None:
        raise SkipFigure("the ablation set is trained on Scaled Fashion-MNIST: it needs the shipped canvases "
                         "(run without --images and with a demo --model)")
    rows = []
    n_images = len(fs.images())
    for n in names:
        src = demo_source(n)  # top-1 over every shipped canvas; the analyses over the set's images
        with torch.no_grad():
            pred = torch.cat([src.model(src.images[i:i + 128]).argmax(1) for i in range(0, len(src.images), 128)])
        top1 = float(100 * (pred == src.labels).float().mean())
        r = effective_receptive_field(src.model, src.images[:fs.settings.erf_images], batch_size=8)
        area = high_contribution_area_ratio(erf_display(r.erf), fs.settings.thresholds)
        _, arch = DEMO_MODELS[n]
        saa = arch.get("saa", True)
        change = None
        if saa:
            shares = low_frequency_shares(sam_features(src.model, src.images[:n_images]), fs.settings.radius)
            change = float(np.mean([s.change for s in shares]))
        heads = int(arch.get("sam_heads", 4))
        rows.append(AblationRow(f"N = {heads}" if saa else f"SAA off (N = {heads})", heads, saa, top1, area, change))
    fig = plot_ablation(rows)
    caption = (f"The trained ablation set (smt_nano, 900 steps each, one seed): top-1 on the {len(pred)} shipped "
               f"canvases, the last stage's ERF area ratio (t = 0.5, {fs.settings.erf_images} canvases) and SAA's "
               f"mean low-frequency change ({n_images} canvases); "
               + "; ".join(f"{r.label}: {r.top1:.1f}%" for r in rows) + ".")
    arrays = {"top1": np.array([r.top1 for r in rows]),
              "erf_area_0.5": np.array([np.nan if r.erf_area.get(0.5) is None else r.erf_area[0.5] for r in rows]),
              "low_frequency_change": np.array([np.nan if r.low_frequency_change is None else r.low_frequency_change
                                                for r in rows])}
    numbers = {r.label: {"top1": round(r.top1, 2), "erf_area": {str(t): v for t, v in r.erf_area.items()},
                         "low_frequency_change": None if r.low_frequency_change is None
                         else round(r.low_frequency_change, 4)} for r in rows}
    return Rendered(fig, arrays, caption, numbers)


def fig_summary(fs: FigureSet) -> Rendered:
    rows = fs.summary
    head = ["model", "params (M)", "GMACs", "input", "features per stage (C x H x W)"]
    body = [[r.name, f"{r.params / 1e6:.2f}", f"{r.macs / 1e9:.2f}", f"{r.resolution}",
             ", ".join("x".join(str(d) for d in s) for s in r.feature_shapes)] for r in rows]
    md = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "".join(
        "| " + " | ".join(f"`{c}`" if i == 0 else c for i, c in enumerate(row)) + " |\n" for row in body)
    tex_rows = "".join(" & ".join([row[0].replace("_", r"\_")] + row[1:4] + [row[4].replace("x", r"$\times$")])
                       + r" \\" + "\n" for row in body)
    tex = (r"\begin{tabular}{lrrrl}" + "\n" + r"\toprule" + "\n"
           + r"Model & Params (M) & GMACs & Input & Features per stage ($C\times H\times W$) \\" + "\n"
           + r"\midrule" + "\n" + tex_rows + r"\bottomrule" + "\n" + r"\end{tabular}" + "\n")
    caption = ("The registered SMT variants: parameters, multiply-adds of one image at the default input size "
               "(torch.utils.flop_counter: matmuls, convolutions, attention), and the feature map of each stage. "
               "Reference logits: " + "; ".join(f"{r.name} {r.reference}" for r in rows if r.reference) + ".")
    arrays = {"params": np.array([r.params for r in rows]), "macs": np.array([r.macs for r in rows]),
              "resolution": np.array([r.resolution for r in rows])}
    numbers = {r.name: {"params": r.params, "macs": r.macs, "resolution": r.resolution,
                        "feature_shapes": [list(s) for s in r.feature_shapes], "reference": r.reference}
               for r in rows}
    return Rendered(None, arrays, caption, numbers, texts={".md": md, ".tex": tex})


#: The figure set, in order: name -> (function, width: "column" or "full" of the venue).
FIGURES: dict[str, tuple[Callable[[FigureSet], Rendered], str]] = {
    "modulator_maps": (fig_modulator_maps, "column"),
    "sam_block": (fig_sam_block, "full"),
    "fourier": (fig_fourier, "full"),
    "low_frequency": (fig_low_frequency, "column"),
    "distance": (fig_distance, "column"),
    "erf": (fig_erf, "full"),
    "gradcam": (fig_gradcam, "column"),
    "ablation": (fig_ablation, "full"),
    "summary": (fig_summary, "column"),
}


# ---- writing --------------------------------------------------------------------------------------------

def write_npz(path: os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """`np.savez` with fixed zip entry times and sorted names, so the same arrays give the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name.replace("/", "__") + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            data = io.BytesIO()
            np.lib.format.write_array(data, np.ascontiguousarray(np.asarray(arrays[name])), allow_pickle=False)
            zf.writestr(info, data.getvalue())
    _atomic_write(Path(path), buf.getvalue())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, torch.Tensor):
        return _jsonable(x.tolist())
    return x


def _version() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    from smt.train import git_revision

    try:
        v = version("smt-lab")
    except PackageNotFoundError:
        v = None
    return {"smt_lab": v, "git_revision": git_revision(), "torch": torch.__version__}


def _save_figure(fig, path: Path, fmt: str) -> None:
    meta = {"pdf": {"CreationDate": None, "Producer": None}, "svg": {"Date": None}, "png": {"Software": None}}
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format=fmt, metadata=meta.get(fmt))
    os.replace(tmp, path)


@dataclass
class Outcome:
    name: str
    status: str  # "ok", "skipped", "failed"
    seconds: float
    files: list[Path] = field(default_factory=list)
    message: str = ""
    caption: str = ""


def render(fs: FigureSet, out: os.PathLike, names: Optional[Sequence[str]] = None, *,
           formats: Sequence[str] = ("pdf", "png"), command: str = "", progress: bool = True) -> list[Outcome]:
    """Render figures into `out`: each figure in every format, `NAME.npz`, `NAME.json`, then `index.html`.

    A figure that fails is reported (name and error) and the others still render; a figure the setting
    cannot make (`SkipFigure`) is skipped with its reason. Returns one `Outcome` per figure.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    names = list(names) if names is not None else list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; the figures are {', '.join(FIGURES)}")
    bad = [f for f in formats if f not in ("pdf", "png", "svg")]
    if bad:
        raise ValueError(f"unknown format(s) {bad}; use pdf, png, svg")
    out.mkdir(parents=True, exist_ok=True)
    version = _version()
    outcomes = []
    bar = tqdm(names, desc="figures", unit="fig", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        fn, width = FIGURES[name]
        t0 = time.perf_counter()
        try:
            outcomes.append(_render_one(fs, name, fn, width, out, formats, version, command, t0))
        except SkipFigure as e:
            outcomes.append(Outcome(name, "skipped", time.perf_counter() - t0, message=str(e)))
        except Exception as e:  # one figure's failure must not stop the others
            msg = f"{type(e).__name__}: {e}"
            print(f"\nfigure {name} failed: {msg}", file=sys.stderr)
            traceback.print_exc(limit=3, file=sys.stderr)
            outcomes.append(Outcome(name, "failed", time.perf_counter() - t0, message=msg))
        fs.timings[name] = outcomes[-1].seconds
    bar.close()
    write_index(out, outcomes, command)
    return outcomes


def _render_one(fs: FigureSet, name: str, fn: Callable, width: str, out: Path, formats: Sequence[str],
                version: dict, command: str, t0: float) -> Outcome:
    from .style import paper

    files = []
    with paper(fs.settings.venue, width):  # built and saved inside the venue's style (fonts, sizes)
        r = fn(fs)
        try:
            for fmt in formats if r.fig is not None else ():
                files.append(out / f"{name}.{fmt}")
                _save_figure(r.fig, files[-1], fmt)
        finally:
            if r.fig is not None:
                r.fig.clear()
    for suffix, text in r.texts.items():
        files.append(out / f"{name}{suffix}")
        _atomic_write(files[-1], text.encode())
    write_npz(out / f"{name}.npz", r.arrays)
    record = {"figure": name, "caption": r.caption, "numbers": r.numbers, "settings": vars(fs.settings),
              "results": [{"file": os.path.basename(p), "sha256": _sha256(p), "analysis": rec["analysis"],
                           "model": rec.get("model")} for p, rec in fs.results],
              "source": fs.provenance() if fs.source_loaded else None, "version": version, "command": command}
    _atomic_write(out / f"{name}.json", (json.dumps(_jsonable(record), indent=1, sort_keys=True) + "\n").encode())
    files += [out / f"{name}.npz", out / f"{name}.json"]
    return Outcome(name, "ok", time.perf_counter() - t0, files, caption=r.caption)


def write_index(out: Path, outcomes: Sequence[Outcome], command: str) -> Path:
    """`index.html`: every PNG with its caption and the command that made it (tables inline)."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>SMT figures</title><style>"
             "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "figure{margin:2em 0;border-top:1px solid #ddd;padding-top:1em}img{max-width:100%}"
             "figcaption{font-size:0.9em;line-height:1.4}code,pre{background:#f4f4f4;padding:0.1em 0.3em}"
             "table{border-collapse:collapse;font-size:0.85em}td,th{border-bottom:1px solid #ccc;padding:0.2em 0.6em}"
             ".skip{color:#777}.fail{color:#b00}</style></head><body>",
             "<h1>SMT figures</h1>", f"<p>Made by <code>{html.escape(command)}</code></p>"]
    for o in outcomes:
        parts.append(f"<figure id='{o.name}'><h2>{o.name}</h2>")
        if o.status == "ok":
            png = next((f for f in o.files if f.suffix == ".png"), None)
            md = next((f for f in o.files if f.suffix == ".md"), None)
            if png is not None:
                parts.append(f"<img src='{png.name}' alt='{o.name}'>")
            elif md is not None:
                parts.append(_markdown_table_html(md.read_text()))
            links = " ".join(f"<a href='{f.name}'>{f.suffix[1:]}</a>" for f in o.files)
            parts.append(f"<figcaption>{html.escape(o.caption)}<br>files: {links}</figcaption>")
        elif o.status == "skipped":
            parts.append(f"<p class='skip'>skipped: {html.escape(o.message)}</p>")
        else:
            parts.append(f"<p class='fail'>failed: {html.escape(o.message)}</p>")
        parts.append("</figure>")
    parts.append("</body></html>\n")
    path = out / "index.html"
    _atomic_write(path, "\n".join(parts).encode())
    return path


def _markdown_table_html(md: str) -> str:
    lines = [ln.strip().strip("|").split("|") for ln in md.strip().splitlines() if ln.strip()]
    head, body = lines[0], lines[2:]
    row = "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip().strip('`'))}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><tr>{row}</tr>{rows}</table>"


# ---- command line ---------------------------------------------------------------------------------------

def add_arguments(p) -> None:
    p.add_argument("--out", required=True, help="output folder (nothing is written outside it)")
    p.add_argument("--model", default="main",
                   help="a demo model (main, heads1, heads2, heads4, heads8, nosaa) or a timm model name (smt_small)")
    p.add_argument("--checkpoint", help="weights file for --model (official SMT release, ours, safetensors)")
    p.add_argument("--images", help="image folder (default: the shipped canvases for demo models, data/images else)")
    p.add_argument("--num-images", type=int, default=Settings.num_images, help="images the analyses average over")
    p.add_argument("--input-size", type=int, help="square input size (default the model's)")
    p.add_argument("--format", default="pdf,png", help="comma-separated: pdf, png, svg")
    p.add_argument("--venue", default="cvpr2024", help="style preset: cvpr2024 (also ICCV), eccv2024, neurips2024, "
                                                       "iclr2024, icml2024")
    p.add_argument("--only", help="comma-separated figure names (" + ", ".join(FIGURES) + ")")
    p.add_argument("--results", nargs="+", default=[], help="files from `python -m viz run` to draw erf, fourier, "
                                                             "distance and gradcam from")
    p.add_argument("--sam-block", default=Settings.sam_block, help="block of the sam_block figure")
    p.add_argument("--rows", type=int, default=Settings.rows, help="images shown in per-image figures")
    p.add_argument("--variants", help="comma-separated variants of the summary table (default: all registered)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")


def settings_from_args(args) -> Settings:
    from .style import VENUES

    if args.venue not in VENUES:
        raise ValueError(f"unknown venue {args.venue!r}; presets: {', '.join(VENUES)}")
    if args.num_images < 1:
        raise ValueError(f"--num-images {args.num_images}: use at least 1")
    variants = tuple(v.strip() for v in args.variants.split(",")) if args.variants else ()
    return Settings(num_images=args.num_images, rows=args.rows, sam_block=args.sam_block, seed=args.seed,
                    venue=args.venue, variants=variants)


def figure_set_from_args(args) -> FigureSet:
    from .run import load_result

    results = [(p, load_result(p)) for p in args.results]
    settings = settings_from_args(args)
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():  # fail before any figure
        raise FileNotFoundError(f"checkpoint {args.checkpoint} does not exist")
    if args.images is not None and not Path(args.images).is_dir():
        raise FileNotFoundError(f"image folder {args.images} does not exist or is not a directory")

    def source() -> Source:
        return load_source(args.model, checkpoint=args.checkpoint, images=args.images, num_images=None,
                           input_size=args.input_size, seed=args.seed)

    return FigureSet(source, settings, results=results)


def print_outcomes(outcomes: Sequence[Outcome], out: Path) -> None:
    print(f"\nwritten to {out}/:")
    for o in outcomes:
        if o.status == "ok":
            print(f"  {o.name:<15} {o.seconds:6.1f} s  " + ", ".join(f.name for f in o.files))
    skipped = [o for o in outcomes if o.status == "skipped"]
    failed = [o for o in outcomes if o.status == "failed"]
    for o in skipped:
        print(f"  skipped {o.name}: {o.message}")
    for o in failed:
        print(f"  FAILED {o.name}: {o.message}")
    print(f"  index.html ({out / 'index.html'})")


def run_command(args, command: str = "") -> int:
    out = Path(args.out)
    names = [n.strip() for n in args.only.split(",")] if args.only else None
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    fs = figure_set_from_args(args)
    outcomes = render(fs, out, names, formats=formats, command=command, progress=not args.no_progress)
    print_outcomes(outcomes, out)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m viz figures ...` (argv without the word `figures`)."""
    import argparse

    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="python -m viz figures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    return run_command(args, "python -m viz figures " + shlex.join(_without_out(argv)))


def _without_out(argv: Sequence[str]) -> list[str]:
    """The arguments minus `--out DIR`: where the files go does not change what is in them (data files
    record the command, and the same inputs must give the same bytes in any folder)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--out":
            skip = True
        elif not a.startswith("--out="):
            out.append(a)
    return out
