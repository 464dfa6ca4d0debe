"""What the widgets compute, without the widgets: model configurations, their cached captures and view data.

The SAM playground lets a researcher change SMT's modulation (head count N, kernel sizes, expand
ratio, SAA on/off) and see what that does. Every change means one of four things, and
`ModelResolver.resolve` returns the model together with the one line that says which:

- a head count / SAA setting that a trained checkpoint of the ablation set has (N = 1, 2, 4, 8 with
  SAA on; N = 4 with SAA off), with the default kernels and expand ratio, switches to that checkpoint
  (`main` for N = 4 when the main model is selected);
- kernel sizes that differ from the trained ones resize the trained kernels: a smaller kernel is the
  centre crop of the trained one (the output changes), a larger one the trained kernel zero-padded
  (the output is exactly unchanged);
- anything else (N = 3, expand ratio 4, ...) builds that configuration at random initialisation
  with the stated seed;
- masking a head zeroes it in the trained model (`viz.analysis.mask_heads`), so the modulator and
  the prediction show what the head contributed.

`Session` caches one captured forward pass per (model, image, mask) and the per-head receptive
fields per (model, image, block), so a control recomputes only what it changes.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn

__all__ = ["Config", "Resolved", "ModelResolver", "default_kernels", "resize_kernels", "ImageSet", "Session",
           "BlockView", "TRAINED", "cached"]

#: The trained ablation set: (N, SAA) -> demo model name (default kernels 3 + 2h, expand ratio 2).
TRAINED = {(1, True): "heads1", (2, True): "heads2", (4, True): "heads4", (8, True): "heads8", (4, False): "nosaa"}


def default_kernels(num_heads: int) -> tuple[int, ...]:
    """SMT's default kernels: 3, 5, 7, ... (one per head)."""
    return tuple(3 + 2 * h for h in range(num_heads))


@dataclass(frozen=True)
class Config:
    """A playground configuration (applied to every SAM stage of smt_nano).

    Attributes:
        base: "main" (the trained main model and its ablation set), "checkpoint" (a file) or "random".
        heads: MHMC head count N.
        kernels: One odd kernel per head.
        expand_ratio: SAA's expansion.
        saa: SAA on or off.
        seed: Seed of a random initialisation.
        checkpoint: The file, for base "checkpoint".
    """
    base: str = "main"
    heads: int = 4
    kernels: tuple[int, ...] = (3, 5, 7, 9)
    expand_ratio: float = 2.0
    saa: bool = True
    seed: int = 0
    checkpoint: Optional[str] = None


@dataclass
class Resolved:
    """A model for a configuration: `kind` is "trained", "resized", "random" or "checkpoint"."""
    model: nn.Module
    kind: str
    name: str
    explanation: str


def _check(cfg: Config) -> None:
    if cfg.base not in ("main", "checkpoint", "random"):
        raise ValueError(f"model {cfg.base!r}: choose main (trained), checkpoint or random")
    if cfg.heads < 1:
        raise ValueError(f"head count N = {cfg.heads}: use at least 1 head")
    if len(cfg.kernels) != cfg.heads:
        raise ValueError(f"{len(cfg.kernels)} kernel sizes for N = {cfg.heads} heads: give one kernel per head")
    bad = [k for k in cfg.kernels if k < 1 or k % 2 == 0]
    if bad:
        raise ValueError(f"kernel size {bad[0]} is even (or not positive): depthwise kernels must be odd "
                         f"(1, 3, 5, ...) so that they stay centred")
    if cfg.expand_ratio <= 0:
        raise ValueError(f"expand ratio {cfg.expand_ratio}: use a positive ratio (the trained models use 2)")


def _kernel_note(old: Sequence[int], new: Sequence[int]) -> tuple[str, bool]:
    """(what resizing `old` kernels to `new` does, whether the output is exactly unchanged)."""
    parts, exact = [], True
    for h, (a, b) in enumerate(zip(old, new)):
        if b > a:
            parts.append(f"head {h + 1} {a}x{a} → {b}x{b} zero-padded (output unchanged)")
        elif b < a:
            parts.append(f"head {h + 1} {a}x{a} → {b}x{b} centre-cropped (output changes)")
            exact = False
    return "; ".join(parts), exact


def resize_kernels(model: nn.Module, kernels: Sequence[int], **kwargs: Any) -> nn.Module:
    """A copy of an SMT model whose MHMC heads have `kernels` (one per head, every SAM stage), with the trained
    weights: each kernel centre-cropped or zero-padded to its new size (padding leaves the output unchanged).

    Args:
        model: A built SMT model (`timm.create_model`), with its `pretrained_cfg` architecture name.
        kernels: The new kernel of each head.
        **kwargs: The architecture overrides `model` was built with (e.g. `sam_heads`, `num_classes`).
    """
    import timm

    name = model.pretrained_cfg.get("architecture") if hasattr(model, "pretrained_cfg") else None
    if not name:
        raise ValueError("resize_kernels needs a model built by timm.create_model (its architecture name)")
    sam_stages = [i for i, t in enumerate(model.stage_block_types) if "sam" in t]
    ks = [tuple(kernels) if i in sam_stages else None for i in range(len(model.stages))]
    new = timm.create_model(name, kernel_sizes=ks, **kwargs).eval()
    state = model.state_dict()
    target = new.state_dict()
    for k, v in target.items():
        w = state[k]
        if w.shape != v.shape and ".mhmc.convs." in k and k.endswith(".weight"):
            a, b = w.shape[-1], v.shape[-1]
            if b < a:
                o = (a - b) // 2
                w = w[..., o:o + b, o:o + b]
            else:
                o = (b - a) // 2
                w = torch.nn.functional.pad(w, (o, o, o, o))
        target[k] = w
    new.load_state_dict(target)
    return new


class ModelResolver:
    """Builds (and caches) the model of each configuration, with the one-line explanation of what it is."""

    def __init__(self, cache_size: int = 8):
        self._cache: OrderedDict = OrderedDict()
        self.cache_size = cache_size

    def _cached(self, key, build):
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = build()
        self._cache[key] = value
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return value

    def demo(self, name: str) -> nn.Module:
        from smt.demo import demo_model

        return self._cached(("demo", name), lambda: demo_model(name))

    def _random(self, cfg: Config, why: str) -> Resolved:
        import timm

        def build():
            torch.manual_seed(cfg.seed)
            return timm.create_model("smt_nano", num_classes=10, sam_heads=cfg.heads, kernel_sizes=(cfg.kernels,) * 3
                                     + (None,), expand_ratio=cfg.expand_ratio, saa=cfg.saa).eval()

        model = self._cached(("random", cfg.heads, cfg.kernels, cfg.expand_ratio, cfg.saa, cfg.seed), build)
        what = (f"smt_nano with N = {cfg.heads}, kernels {'/'.join(map(str, cfg.kernels))}, expand ratio "
                f"{cfg.expand_ratio:g}, SAA {'on' if cfg.saa else 'off'}")
        return Resolved(model, "random", f"random (seed {cfg.seed})",
                        f"{why}random initialisation (seed {cfg.seed}) of {what}: untrained, so the maps show the "
                        f"architecture, not learnt features")

    def resolve(self, cfg: Config) -> Resolved:
        """The model of `cfg` and what it is (see the module docstring); ValueError for a bad combination."""
        _check(cfg)
        if cfg.base == "random":
            return self._random(cfg, "")
        if cfg.base == "checkpoint":
            return self._checkpoint(cfg)
        key = (cfg.heads, cfg.saa)
        if key not in TRAINED or cfg.expand_ratio != 2.0:
            what = []
            if key not in TRAINED:
                what.append(f"N = {cfg.heads} with SAA {'on' if cfg.saa else 'off'}")
            if cfg.expand_ratio != 2.0:
                what.append(f"expand ratio {cfg.expand_ratio:g}")
            return self._random(cfg, f"no trained checkpoint has {' and '.join(what)}: ")
        name = "main" if key == (4, True) else TRAINED[key]
        base = self.demo(name)
        label = "the main model" if name == "main" else f"trained checkpoint {name!r}"
        setting = f"N = {cfg.heads}, SAA {'on' if cfg.saa else 'off'}"
        if cfg.kernels == default_kernels(cfg.heads):
            return Resolved(base, "trained", name, f"{label} ({setting}, kernels {'/'.join(map(str, cfg.kernels))})")
        note, _ = _kernel_note(default_kernels(cfg.heads), cfg.kernels)
        kwargs = {"num_classes": 10, "sam_heads": cfg.heads, "saa": cfg.saa}
        model = self._cached(("resized", name, cfg.kernels), lambda: resize_kernels(base, cfg.kernels, **kwargs))
        return Resolved(model, "resized", f"{name} resized", f"{label} ({setting}) with its kernels resized: {note}")

    def _checkpoint(self, cfg: Config) -> Resolved:
        import smt

        path = cfg.checkpoint or ""
        if not path or not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint file {path!r} does not exist: give the path of a .pth or "
                                    f".safetensors file")
        model = self._cached(("file", os.path.abspath(path), os.path.getmtime(path)),
                             lambda: smt.create_model_from_checkpoint(path).eval())
        stage = next(i for i, t in enumerate(model.stage_block_types) if "sam" in t)
        kernels = tuple(model.stage_kernel_sizes[stage])
        return Resolved(model, "checkpoint", Path(path).name,
                        f"checkpoint {Path(path).name} as saved (N = {len(kernels)}, kernels "
                        f"{'/'.join(map(str, kernels))}); its own architecture, the N / kernel / SAA controls "
                        f"follow it")


@dataclass
class ImageSet:
    """Images a widget can show: (N, H, W, 3) uint8 as shown, their model input, names and optional labels."""
    display: np.ndarray
    names: list[str]
    labels: Optional[list[Optional[int]]] = None

    @classmethod
    def canvases(cls, n: Optional[int] = None) -> "ImageSet":
        from smt.demo import demo_images

        d = demo_images()
        k = len(d) if n is None else min(n, len(d))
        return cls(d.images[:k].numpy(), [f"canvas {i} ({d.class_names[int(d.labels[i])]})" for i in range(k)],
                   [int(v) for v in d.labels[:k]])

    @classmethod
    def photos(cls, folder: Optional[os.PathLike] = None, size: int = 112) -> "ImageSet":
        from .figures import DATA_IMAGES
        from .images import list_images

        files = list_images(folder or DATA_IMAGES)
        return cls(np.stack([load_image(f, size) for f in files]), [f.name for f in files])

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
    return np.asarray(im.crop((x0, y0, x0 + size, y0 + size)))


@dataclass
class BlockView:
    """What the playground shows of one SAM block for one image (raw values at layer resolution)."""
    block: str
    kernel_sizes: tuple[int, ...]
    head_maps: torch.Tensor        # (N, H, W) mean |head output|
    head_fields: torch.Tensor      # (N, H, W) per-head receptive fields
    saa_input: torch.Tensor        # (H, W) mean |SAA input|
    modulator: torch.Tensor        # (H, W) mean |modulator|
    spectrum_before: Any           # FourierCurve of the SAA input
    spectrum_after: Any            # FourierCurve of the modulator
    top5: list[tuple[str, float]]  # (class name, probability)
    masked: tuple[int, ...] = ()


def cached(store: OrderedDict, key, build: Callable[[], Any], size: int = 64):
    """`store[key]`, built by `build()` when missing; the least recently used entries beyond `size` are
    dropped (a widget visiting every image keeps a bounded memory)."""
    if key in store:
        store.move_to_end(key)
        return store[key]
    store[key] = build()
    while len(store) > size:
        store.popitem(last=False)
    return store[key]


@dataclass
class Session:
    """Cached captures of one widget: per (model, image, mask) forward passes, per (model, image, block) fields."""
    class_names: Sequence[str]
    cache_size: int = 64
    _forwards: OrderedDict = field(default_factory=OrderedDict)
    _fields: OrderedDict = field(default_factory=OrderedDict)

    def _lru(self, store: OrderedDict, key, build):
        return cached(store, key, build, self.cache_size)

    def forward(self, model: nn.Module, image_key, x: torch.Tensor, block: str, masked: Sequence[int] = ()):
        """One forward pass recording the taps and the input of `block` (other blocks run unhooked, fused)."""
        from .analysis import smt_forward

        mkey = tuple(sorted(masked))
        return self._lru(self._forwards, (id(model), image_key, block, mkey),
                         lambda: smt_forward(model, x, [block], block_outputs=False, block_inputs=True,
                                             mask={block: list(mkey)} if mkey else None))

    def fields(self, model: nn.Module, image_key, x: torch.Tensor, block: str) -> torch.Tensor:
        """Per-head receptive fields of `block`, from the unmasked forward's recorded block input."""
        from .analysis.erf import block_head_erf

        def build():
            fwd = self.forward(model, image_key, x, block)
            grid = fwd.sam[block].saa_input.shape[-2:]
            return block_head_erf(model.get_submodule(block), fwd.sam_inputs[block], (int(grid[0]), int(grid[1])))

        return self._lru(self._fields, (id(model), image_key, block), build)

    def block_view(self, model: nn.Module, image_key, x: torch.Tensor, block: str,
                   masked: Sequence[int] = ()) -> BlockView:
        from .analysis import head_activation_maps, modulator_map, relative_log_amplitude

        fwd = self.forward(model, image_key, x, block, masked)
        f = fwd.sam[block]
        probs = torch.softmax(fwd.logits[0].double(), 0)
        top = torch.topk(probs, min(5, probs.numel()))
        names = [self.class_names[int(i)] if int(i) < len(self.class_names) else f"class {int(i)}" for i in top.indices]
        return BlockView(block, tuple(f.kernel_sizes), head_activation_maps(f.heads)[0],
                         self.fields(model, image_key, x, block), f.saa_input[0].abs().mean(0),
                         modulator_map(f.modulator)[0], relative_log_amplitude(f.saa_input),
                         relative_log_amplitude(f.modulator), list(zip(names, top.values.tolist())), tuple(masked))


def with_kernels(cfg: Config, first: int, step: int) -> Config:
    """`cfg` with kernels first, first + step, ... (one per head)."""
    return replace(cfg, kernels=tuple(first + step * h for h in range(cfg.heads)))
