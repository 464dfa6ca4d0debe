"""`FigureSet`: a source, its settings, and every analysis the figures draw, each computed once and cached."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn

from .source import Source, demo_source, sha256

__all__ = ["Settings", "Rendered", "SkipFigure", "FigureSet"]


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


_ROOT = Path(__file__).resolve().parent.parent.parent


def _shown_path(path: Optional[str]) -> Optional[str]:
    """A path as recorded in a figure's data: relative to the project for its own files (`data/demo/...`)."""
    if not path:
        return None
    p = Path(path).resolve()
    return p.relative_to(_ROOT).as_posix() if p.is_relative_to(_ROOT) else str(path)


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
        from ..analysis import smt_forward

        return smt_forward(self.model, self.images())

    @cached_property
    def predictions(self) -> torch.Tensor:
        """Predicted class of every image of the source (batched)."""
        x = self.source.images
        with torch.no_grad():
            return torch.cat([self.model(x[i:i + 128]).argmax(1) for i in range(0, len(x), 128)]).cpu()

    @cached_property
    def fourier(self) -> list:
        from ..analysis import fourier_profile

        return fourier_profile(self.forward)

    @cached_property
    def low_frequency(self) -> list:
        from ..analysis import low_frequency_shares

        sam = {b: f for b, f in self.forward.sam.items()
               if not isinstance(self.model.get_submodule(b).attn.saa, nn.Identity)}
        return low_frequency_shares(sam, self.settings.radius)

    def erf(self, stage: int, model: Optional[nn.Module] = None):
        """(ERFResult, display map) of stage `stage`'s output for `model` (default the source's); every stage
        of the model is computed at once (one forward pass per batch) and cached."""
        key = ("erf", stage, id(model) if model is not None else None)
        if key not in self._cache:
            from ..analysis.erf import erf_display, stage_erfs

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
            from ..analysis.erf import head_erf

            self._cache[key] = head_erf(self.model, self.images(8), block)
        return self._cache[key]

    @cached_property
    def random_model(self) -> nn.Module:
        if self.source.build_random is None:
            raise SkipFigure("no way to build this architecture at random initialisation")
        return self.source.build_random(self.settings.seed)

    @cached_property
    def distance(self) -> list:
        from ..analysis import smt_distance_profile

        return smt_distance_profile(self.model, self.images(self.settings.distance_images),
                                    queries=self.settings.queries, seed=self.settings.seed, batch_size=8,
                                    progress=False)

    @cached_property
    def cams(self) -> dict[int, torch.Tensor]:
        """Raw Grad-CAM maps of stages 2-4 (index 1-3) for the true class (predicted when unknown), one pass."""
        from ..analysis.cam import class_activation_maps, default_target_layers

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
        from ..analysis.cam import pointing_game

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
            src = demo_source(name, num_images=self.settings.num_images, device=self.source.images.device)
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

    def provenance(self) -> dict[str, Any]:
        """What every figure's JSON records about the source."""
        src = self.source
        ck = src.checkpoint
        return {
            "model": src.name,
            "model_class": type(src.model).__name__,
            "checkpoint": _shown_path(ck),
            "checkpoint_sha256": sha256(ck) if ck and Path(ck).is_file() else None,
            "images": src.image_source,
            "image_files": [os.path.basename(f) for f in src.image_files],
            "num_images_available": int(len(src.images)),
            "input_size": self.input_size,
        }


