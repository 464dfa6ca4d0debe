"""`FigureSet`: a source, its settings, and every analysis the figures draw, each computed once and cached."""
from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn

from ..cache import LRU
from .source import Source, demo_source, sha256

__all__ = ["Settings", "Rendered", "SkipFigure", "FigureSet", "predicted_classes"]


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


def predicted_classes(model: nn.Module, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """The class `model` predicts for each image (batched, without gradients)."""
    with torch.no_grad():
        return torch.cat([model(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])


def _saa_blocks(model: nn.Module) -> list[str]:
    """The SAM blocks of an SMT model that have SAA, in depth order."""
    from ..analysis import sam_block_names

    return [b for b in sam_block_names(model) if not isinstance(model.get_submodule(b).attn.saa, nn.Identity)]


class FigureSet:
    """A source, its settings, and every analysis the figures draw, each computed on first use and cached.

    Each cache (a `viz.cache.LRU`) holds one analysis, keyed by what determines its content (a block, a stage,
    a model's name and seed), never by an object's `id()`. `DEPENDS_ON` says which settings each analysis depends on:
    `with_settings` builds a set with other settings that shares every cache none of the changed settings
    touches. The settings of a set are fixed; the caches are written only by the set itself.

    Args:
        source: The model and images, or a function building them (called on first use, so figures drawn
            entirely from `results` never load a model).
        settings: Analysis settings.
        results: Records written by `python -m viz run` (`viz.run.load_result`), with their paths; they
            replace the matching analyses (erf, spectrum -> fourier, distance, cam -> gradcam).
        backbones: {label: Source} of other trained models to draw beside SMT (distance, erf, fourier);
            default the comparison backbones shipped in `data/demo`, when the source is a demo model.
        cache_size: Entries each analysis's cache keeps (blocks of `head_erf`, stages of `erf`, models).
    """

    #: Every cached analysis -> the settings its content depends on (directly or through another analysis).
    DEPENDS_ON: Mapping[str, frozenset[str]] = MappingProxyType({
        "source": frozenset(),
        "predictions": frozenset(),
        "forward": frozenset({"num_images"}),
        "fourier": frozenset({"num_images"}),
        "low_frequency": frozenset({"num_images", "radius"}),
        "erf": frozenset({"erf_images"}),  # keyed by (model, seed, stage): the random model's seed is in the key
        "head_erf": frozenset(),
        "random_model": frozenset({"seed"}),
        "distance": frozenset({"distance_images", "queries", "seed"}),
        "cams": frozenset({"num_images", "cam_method"}),
        "pointing": frozenset({"num_images", "cam_method"}),
        "backbones": frozenset({"num_images"}),  # the shipped backbones load `num_images` canvases
        "backbone_fourier": frozenset({"num_images"}),
        "backbone_distance": frozenset({"num_images", "distance_images"}),
        "backbone_erf": frozenset({"num_images", "erf_images"}),
        "summary": frozenset({"variants"}),
        "ablation_source": frozenset(),
        "ablation_top1": frozenset(),
        "ablation_erf": frozenset({"erf_images"}),
        "ablation_low_frequency": frozenset({"num_images", "radius"}),
    })

    def __init__(self, source: Source | Callable[[], Source], settings: Settings = Settings(), *,
                 results: Sequence[tuple[str, dict]] = (), backbones: Optional[Mapping[str, Source]] = None,
                 cache_size: int = 64):
        self._source = source
        self._settings = settings
        self.results = list(results)
        self._backbones = backbones
        self._cache_size = cache_size
        self._caches: dict[str, LRU] = {name: LRU(cache_size) for name in self.DEPENDS_ON}
        self.timings: dict[str, float] = {}

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        raise AttributeError("a FigureSet's settings are fixed (its cached analyses were computed with them); "
                             "use fs = fs.with_settings(sam_block=...) for a set with other settings")

    def with_settings(self, **changes: Any) -> "FigureSet":
        """A figure set with `changes` applied to the settings, on the same source and results, sharing every
        cached analysis that does not depend on a changed setting (`DEPENDS_ON`); the others start empty.

        `fs.with_settings(sam_block="stages.1.blocks.1")` keeps every analysis (the figure picks the block);
        `fs.with_settings(num_images=64)` recomputes what averages over images and keeps the rest.
        """
        known = {f.name for f in fields(Settings)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; the settings are {', '.join(sorted(known))}")
        settings = replace(self._settings, **changes)
        changed = {k for k in changes if getattr(settings, k) != getattr(self._settings, k)}
        new = FigureSet(self._source, settings, results=self.results, backbones=self._backbones,
                        cache_size=self._cache_size)
        for name, depends in self.DEPENDS_ON.items():
            if not depends & changed:
                new._caches[name] = self._caches[name]  # the same cache: what either set computes serves both
        return new

    def _cached(self, analysis: str, key: Hashable, compute: Callable[[], Any]) -> Any:
        return self._caches[analysis].get(key, compute)

    # -- source ------------------------------------------------------------------------------------------
    @property
    def source(self) -> Source:
        return self._cached("source", (), lambda: self._source() if callable(self._source) else self._source)

    @property
    def source_loaded(self) -> bool:
        """Whether the source has been built (figures drawn only from results never build it)."""
        return () in self._caches["source"]

    @property
    def model(self) -> nn.Module:
        return self.source.model

    @property
    def is_smt(self) -> bool:
        return hasattr(self.model, "stage_block_types")

    @property
    def saa_blocks(self) -> list[str]:
        """The SAM blocks of the source's model that have SAA (none when SAA is off)."""
        return _saa_blocks(self.model)

    def images(self, n: Optional[int] = None) -> torch.Tensor:
        n = self.settings.num_images if n is None else n
        return self.source.images[:min(n, len(self.source.images))]

    @property
    def input_size(self) -> int:
        return int(self.source.images.shape[-1])

    def result_record(self, analysis: str) -> list[tuple[str, dict]]:
        return [(p, r) for p, r in self.results if r.get("analysis") == analysis]

    # -- cached analyses ---------------------------------------------------------------------------------
    @property
    def forward(self):
        """One captured forward pass over `num_images` images: every block's output and every SAM tap."""
        from ..analysis import smt_forward

        return self._cached("forward", (), lambda: smt_forward(self.model, self.images()))

    @property
    def predictions(self) -> torch.Tensor:
        """Predicted class of every image of the source (batched)."""
        return self._cached("predictions", (), lambda: predicted_classes(self.model, self.source.images))

    @property
    def fourier(self) -> list:
        from ..analysis import fourier_profile

        return self._cached("fourier", (), lambda: fourier_profile(self.forward))

    @property
    def low_frequency(self) -> list:
        from ..analysis import low_frequency_shares

        def compute():
            saa = set(self.saa_blocks)
            return low_frequency_shares({b: f for b, f in self.forward.sam.items() if b in saa}, self.settings.radius)

        return self._cached("low_frequency", (), compute)

    def erf(self, stage: int, model: str = "trained"):
        """(ERFResult, display map) of stage `stage`'s output over `erf_images` images, for the source's model
        (`model="trained"`) or the same architecture at random initialisation (`"random"`, seed `seed`);
        every stage of that model is computed at once (one forward pass per batch) and cached."""
        if model not in ("trained", "random"):
            given = repr(model) if isinstance(model, str) else f"a {type(model).__name__}"
            raise ValueError(f"model={given}: the set's ERFs are of its 'trained' model or the 'random' "
                             f"initialisation of its architecture (a cache keyed by a model object could serve "
                             f"a freed model's maps to another)")
        key = ("trained",) if model == "trained" else ("random", self.settings.seed)
        cache = self._caches["erf"]

        def compute():
            from ..analysis.erf import erf_display, stage_erfs

            m = self.model if model == "trained" else self.random_model
            results = stage_erfs(m, self.images(self.settings.erf_images), range(len(m.stages)), batch_size=8)
            out = {s: (r, erf_display(r.erf)) for s, r in results.items()}
            for s, v in out.items():
                if s != stage:
                    cache.put((key, s), v)
            return out[stage]

        return cache.get((key, stage), compute)

    def head_erf(self, block: str) -> torch.Tensor:
        """Per-head receptive fields of one SAM block (`erf.head_erf`, 8 images)."""
        from ..analysis.erf import head_erf

        return self._cached("head_erf", block, lambda: head_erf(self.model, self.images(8), block))

    @property
    def random_model(self) -> nn.Module:
        """The source's architecture at random initialisation (seed `seed`)."""
        if self.source.build_random is None:
            raise SkipFigure("no way to build this architecture at random initialisation")
        return self._cached("random_model", (), lambda: self.source.build_random(self.settings.seed))

    @property
    def distance(self) -> list:
        from ..analysis import smt_distance_profile

        return self._cached("distance", (), lambda: smt_distance_profile(
            self.model, self.images(self.settings.distance_images), queries=self.settings.queries,
            seed=self.settings.seed, batch_size=8, progress=False))

    @property
    def cams(self) -> dict[int, torch.Tensor]:
        """Raw Grad-CAM maps of stages 2-4 (index 1-3) for the true class (predicted when unknown), one pass."""
        from ..analysis.cam import class_activation_maps, default_target_layers

        def compute():
            x = self.images()
            targets = (self.source.labels[:len(x)] if self.source.labels is not None else self.predictions[:len(x)])
            stages = list(range(1, len(self.model.stages)))
            layers = [default_target_layers(self.model, s)[0] for s in stages]
            parts = [class_activation_maps(self.model, x[i:i + 64], targets[i:i + 64].tolist(),
                                           method=self.settings.cam_method, target_layers=layers, per_layer=True)
                     for i in range(0, len(x), 64)]
            return {s: torch.cat([p[k] for p in parts]) for k, s in enumerate(stages)}

        return self._cached("cams", (), compute)

    @property
    def pointing(self) -> dict[int, float]:
        from ..analysis.cam import pointing_game

        def compute():
            if self.source.boxes is None:
                return {}
            n = len(self.images())
            return {s: pointing_game(c, self.source.boxes[:n], (self.input_size, self.input_size))
                    for s, c in self.cams.items()}

        return self._cached("pointing", (), compute)

    # -- other trained backbones (beside SMT in the distance, erf and fourier figures) ------------------------
    @property
    def backbones(self) -> dict[str, Source]:
        """Other trained backbones to draw beside the source (the shipped vit/swin/convnext demo models)."""
        def compute():
            if self._backbones is not None:
                return dict(self._backbones)
            if self.source.demo is None:
                return {}
            from smt.demo import available_backbones

            return {name: demo_source(name, num_images=self.settings.num_images) for name in available_backbones()}

        return self._cached("backbones", (), compute)

    def backbone_fourier(self, name: str) -> list:
        """Relative log amplitude of every block of backbone `name` (`num_images` images)."""
        from ..analysis import block_fourier_profile

        src = self.backbones[name]
        return self._cached("backbone_fourier", name, lambda: block_fourier_profile(
            src.model, src.images[:self.settings.num_images]))

    def backbone_distance(self, name: str) -> Optional[list]:
        """Mean attention distance of every block of backbone `name` (`distance_images` images); None for a
        backbone without attention (ConvNeXt)."""
        from ..analysis import timm_attention_profile

        src = self.backbones[name]

        def compute():
            try:
                return timm_attention_profile(src.model, src.images[:self.settings.distance_images], progress=False)
            except ValueError:
                return None

        return self._cached("backbone_distance", name, compute)

    def backbone_erf(self, name: str) -> torch.Tensor:
        """Display map of the ERF of backbone `name`'s last feature map (`erf_images` images)."""
        from ..analysis.erf import effective_receptive_field, erf_display, final_feature_map

        src = self.backbones[name]
        return self._cached("backbone_erf", name, lambda: erf_display(effective_receptive_field(
            src.model, src.images[:self.settings.erf_images], final_feature_map, batch_size=8).erf))

    # -- the trained ablation set (demo models on every shipped canvas) ----------------------------------------
    def ablation_source(self, name: str) -> Source:
        """Demo model `name` (`smt.demo.DEMO_MODELS`) on every shipped canvas."""
        return self._cached("ablation_source", name, lambda: demo_source(name))

    def ablation_top1(self, name: str) -> float:
        """Top-1 (%) of demo model `name` on every shipped canvas."""
        def compute():
            src = self.ablation_source(name)
            return float(100 * (predicted_classes(src.model, src.images) == src.labels).float().mean())

        return self._cached("ablation_top1", name, compute)

    def ablation_erf(self, name: str) -> torch.Tensor:
        """Display map of the ERF of demo model `name`'s last stage (`erf_images` canvases)."""
        from ..analysis.erf import effective_receptive_field, erf_display

        src = self.ablation_source(name)
        return self._cached("ablation_erf", name, lambda: erf_display(effective_receptive_field(
            src.model, src.images[:self.settings.erf_images], batch_size=8).erf))

    def ablation_low_frequency(self, name: str) -> Optional[list]:
        """Low-frequency shares of SAA's input and output in every SAM block of demo model `name` (as many
        canvases as the set's analyses); None when SAA is off."""
        from ..analysis import low_frequency_shares, sam_features

        src = self.ablation_source(name)

        def compute():
            blocks = set(_saa_blocks(src.model))
            if not blocks:
                return None
            features = sam_features(src.model, src.images[:len(self.images())])
            return low_frequency_shares({b: f for b, f in features.items() if b in blocks}, self.settings.radius)

        return self._cached("ablation_low_frequency", name, compute)

    # -- the variant table -------------------------------------------------------------------------------
    @property
    def summary(self) -> list:
        """The variant table (`smt.summary`): every registered variant, checked against the reference logits."""
        def compute():
            from tqdm.auto import tqdm

            from smt.model import VARIANTS
            from smt.summary import summarize

            names = list(self.settings.variants) or list(VARIANTS)
            unknown = [n for n in names if n not in VARIANTS]
            if unknown:
                raise ValueError(f"unknown variant(s) {unknown}; registered: {', '.join(VARIANTS)}")
            return [summarize(n) for n in tqdm(names, desc="variants", leave=False)]

        return self._cached("summary", (), compute)

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


