"""Compute sessions, no widgets: what the SAM playground and the model explorer compute, cached, for scripts and
tests to drive without a browser. The widgets (`viz.widgets`) only wire their controls to these objects.

- `ModelResolver`: which model a playground `Config` means, the one place that decides it;
- `SAMSession`: one SAM block's view of an image under a model (captures and receptive fields, cached);
- `ExplorerSession`: any tap of one captured forward pass of a fixed model, a Grad-CAM view and the top-5;
- `ImageSet`, `load_image`: the images both show.

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

Every cache is a `viz.cache.LRU` keyed by what determines its content: a model by its configuration
key (`Resolved.key`), a capture by (model key, image key, block, mask), never by `id()` of an object a
cache may free. Both sessions run torch with `threads` intra-op threads (default 1): the demo models at
112 px gain nothing from more, and on a shared 2-core CPU two spinning OpenMP threads made one forward
pass 10-20x slower (measured: 1387 ms with 2 threads, 72 ms with 1, while other work ran). A background
`Prefetcher` computes the neighbouring images' captures between events; it never blocks the caller.
"""
from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn

from .analysis.common import block_index
from .cache import LRU

__all__ = ["Config", "Resolved", "ModelResolver", "default_kernels", "resize_kernels", "with_kernels", "ImageSet",
           "architecture", "sam_stages", "stage_setting", "AblationFile", "scan_ablations",
           "load_image", "SAMSession", "BlockView", "explain", "image_of_batch", "ExplorerSession", "TapView",
           "CamView", "Prefetcher", "TorchThreads", "TRAINED"]

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
        checkpoint: The user's model, for base "checkpoint": a checkpoint path (the variant read from its
            weights) or a timm name (`smt.resolve.resolve_model`).
        stage: The SAM stage (0-based, as `stages.i`) that heads, kernels, expand ratio and SAA apply to; None:
            every SAM stage. The demo models vary every SAM stage together (None only).
    """
    base: str = "main"
    heads: int = 4
    kernels: tuple[int, ...] = (3, 5, 7, 9)
    expand_ratio: float = 2.0
    saa: bool = True
    seed: int = 0
    checkpoint: Optional[str] = None
    stage: Optional[int] = None


@dataclass(frozen=True)
class Resolved:
    """A model for a configuration: `kind` is "trained", "resized", "random" or "checkpoint"; `key` names what
    determines the model's weights (the caches of the sessions are keyed by it, never by the object)."""
    model: nn.Module
    kind: str
    name: str
    explanation: str
    key: Hashable = None
    class_names: Optional[tuple[str, ...]] = None  # None: the session's (the demo models' 10 classes)
    input_size: Optional[int] = None               # the model's own input size (None: the demo models' 112)


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
    if not 0 <= cfg.seed < 2 ** 31:
        raise ValueError(f"seed {cfg.seed}: use a seed from 0 to {2 ** 31 - 1}")
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


def architecture(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """(timm name, keyword arguments) that build `model`'s architecture, read from its weights and modules.

    The per-stage arguments (`sam_heads`, `kernel_sizes`, `saa`, `expand_ratio`, ...) come from
    `smt.checkpoint.infer_config`; MSA head counts, which weights do not show, from the model's attention
    modules.
    """
    from smt.checkpoint import infer_config

    name = getattr(model, "pretrained_cfg", {}).get("architecture")
    if not name or not hasattr(model, "stage_block_types"):
        raise ValueError(f"{type(model).__name__}: the playground changes SMT models built by timm.create_model "
                         f"(an architecture name and per-stage SAM blocks); pass an SMT checkpoint or timm name")
    config = infer_config(model.state_dict())
    msa = []
    for stage in model.stages:
        heads = [b.attn.num_heads for b in stage.blocks if hasattr(b.attn, "num_heads") and not hasattr(b.attn, "mhmc")]
        msa.append(heads[0] if heads else 1)
    config["msa_heads"] = tuple(msa)
    return name, config


def sam_stages(model: nn.Module) -> list[int]:
    """Indices of the stages that have SAM blocks."""
    return [i for i, t in enumerate(model.stage_block_types) if "sam" in t]


def stage_setting(config: dict[str, Any], stage: int) -> tuple[int, tuple[int, ...], bool, float]:
    """(N, kernels, SAA on, expand ratio) of one stage of an `architecture` config."""
    kernels = tuple(config["kernel_sizes"][stage] or default_kernels(config["sam_heads"][stage]))
    return len(kernels), kernels, bool(config["saa"][stage]), float(config["expand_ratio"][stage])


def _with_setting(config: dict[str, Any], stages: Sequence[int], heads: int, kernels: Sequence[int], saa: bool,
                  expand_ratio: float) -> dict[str, Any]:
    """`config` with the SAM setting replaced in `stages`."""
    cfg = dict(config)
    for key, value in (("sam_heads", heads), ("kernel_sizes", tuple(kernels)), ("saa", saa),
                       ("expand_ratio", expand_ratio)):
        cfg[key] = tuple(value if i in stages else v for i, v in enumerate(config[key]))
    return cfg


def resize_kernels(model: nn.Module, kernels: Sequence[int], stages: Optional[Sequence[int]] = None,
                   **kwargs: Any) -> nn.Module:
    """A copy of an SMT model whose MHMC heads have `kernels` (one per head) in `stages`, with the trained
    weights: each kernel centre-cropped or zero-padded to its new size (padding leaves the output unchanged).

    Args:
        model: A built SMT model (`timm.create_model`, or `smt.create_model_from_checkpoint`).
        kernels: The new kernel of each head.
        stages: The SAM stages whose kernels change (default every SAM stage); their head count must be
            `len(kernels)`.
        **kwargs: Architecture arguments over those read from `model` (rarely needed).
    """
    import timm

    name, config = architecture(model)
    stages = sam_stages(model) if stages is None else list(stages)
    for i in stages:
        n = stage_setting(config, i)[0]
        if n != len(kernels):
            raise ValueError(f"{len(kernels)} kernels for stage {i + 1} (stages.{i}), which has N = {n} heads: give "
                             f"one kernel per head, or pick that stage alone")
    config["kernel_sizes"] = tuple(tuple(kernels) if i in stages else k for i, k in enumerate(config["kernel_sizes"]))
    device = next(model.parameters()).device
    new = timm.create_model(name, **{**config, **kwargs}).eval()
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
    return new.to(device)


def _setting_text(heads: int, kernels: Sequence[int], saa: bool, expand_ratio: float) -> str:
    return (f"N = {heads}, kernels {'/'.join(map(str, kernels))}, SAA {'on' if saa else 'off'}"
            + (f", expand ratio {expand_ratio:g}" if saa else ""))


def _stages_text(stages: Sequence[int], model: nn.Module) -> str:
    if list(stages) == sam_stages(model) and len(stages) > 1:
        return "every SAM stage"
    return ", ".join(f"stage {i + 1} (stages.{i})" for i in stages)


@dataclass(frozen=True)
class AblationFile:
    """One file of an ablation folder: its path, modification time and the SAM setting of each stage, read
    once from its weights (`smt.checkpoint.infer_config`)."""
    path: str
    mtime: float
    settings: tuple  # per stage: (N, kernels, SAA, expand ratio), or None for a stage without SAM blocks


def scan_ablations(folder: os.PathLike) -> tuple[list[AblationFile], list[str]]:
    """The SMT checkpoints of `folder` (sorted by name) with their SAM settings, and the files skipped (why).

    Raises:
        FileNotFoundError: `folder` is not a directory.
    """
    from smt.checkpoint import infer_config, read_checkpoint
    from smt.resolve import CHECKPOINT_SUFFIXES

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"ablation folder {folder} does not exist or is not a directory: give a folder of "
                                f"SMT checkpoint files (.pth, .pt, .safetensors)")
    files, skipped = [], []
    for f in sorted(folder.iterdir()):
        if not f.is_file() or not f.name.lower().endswith(CHECKPOINT_SUFFIXES):
            continue
        try:
            config = infer_config(read_checkpoint(f))
        except Exception as e:  # a file that is no SMT checkpoint: listed as skipped, the others still serve
            skipped.append(f"{f.name} ({type(e).__name__}: {e})")
            continue
        settings = tuple(stage_setting(config, i) if config["kernel_sizes"][i] else None
                         for i in range(len(config["depths"])))
        files.append(AblationFile(str(f.resolve()), f.stat().st_mtime, settings))
    return files, skipped


class ModelResolver:
    """Builds (and caches) the model of each configuration, with the one-line explanation of what it is.

    `resolve` is the one place that decides which model a `Config` means; `demo` is the one place that turns a
    trained model's name into a model, and `user` the one that turns the user's model name (a checkpoint path,
    a timm name) into one, through `smt.resolve.resolve_model` (replace them, and every widget follows).

    Args:
        cache_size: Models kept (least recently used dropped); the trained set is 6 models.
        device: Where models run (default CUDA when available, else the CPU).
        ablations: A folder of the user's own checkpoints: a head count or SAA setting of the user's model
            switches to the file that has it (each file's architecture read once from its weights).
        labels: A labels file or list of class names for the user's model (`smt.resolve.class_names`).
        input_size: The user's model's input size (default its own, e.g. 224 for smt_tiny).
    """

    def __init__(self, cache_size: int = 8, device: Any = None, ablations: Optional[os.PathLike] = None,
                 labels: Any = None, input_size: Optional[int] = None):
        from smt.resolve import resolve_device

        self.models = LRU(cache_size)
        self.device = resolve_device(device)
        self._device_given = device  # a model object stays on its own device unless one is given
        self.ablations = ablations
        self.labels = labels
        self.input_size = input_size
        self._scan: Optional[tuple[list[AblationFile], list[str]]] = None
        self.users = LRU(4)  # user model name -> smt.resolve.ResolvedModel
        self._objects: dict[str, nn.Module] = {}  # the names `add_object` gave to the user's model objects

    def demo(self, name: str) -> nn.Module:
        """The trained demo model `name` (cached)."""
        from smt.resolve import resolve_model

        return self.models.get(("demo", name), lambda: resolve_model(name, device=self.device).model)

    def add_object(self, model: nn.Module) -> str:
        """Name the user's model object (an `nn.Module` built in the notebook) for `Config.checkpoint`: "model
        object K (ClassName)", unique within this resolver, which keeps the object (its name, not its `id()`,
        keys every cache)."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"add_object takes an nn.Module, not {type(model).__name__}")
        for name, known in self._objects.items():
            if known is model:
                return name
        name = f"model object {len(self._objects) + 1} ({type(model).__name__})"
        self._objects[name] = model
        return name

    def user(self, name: str):
        """The user's model `name` (a checkpoint path, a timm name or an `add_object` name) as
        `smt.resolve.ResolvedModel` (a file cached by its path and modification time, so an overwritten file
        is read again)."""
        from smt.resolve import resolve_model

        if name in self._objects:
            key, model, device = ("user", name), self._objects[name], self._device_given
        else:
            path = Path(name).expanduser()
            key = ("user", os.path.abspath(path), os.path.getmtime(path)) if path.is_file() else ("user", name)
            model, device = name, self.device
        return self.users.get(key, lambda: resolve_model(model, labels=self.labels, device=device,
                                                         input_size=self.input_size))

    def user_of(self, cfg: Config):
        """The user's model that `cfg` starts from (`cfg.checkpoint`), as `user` gives it."""
        return self.user(self._user_name(cfg))

    def ablation_files(self) -> tuple[list[AblationFile], list[str]]:
        """The ablation folder's files and settings, read once."""
        if self._scan is None:
            self._scan = scan_ablations(self.ablations)
        return self._scan

    def _random(self, cfg: Config, why: str) -> Resolved:
        import timm

        def build():
            torch.manual_seed(cfg.seed)
            return timm.create_model("smt_nano", num_classes=10, sam_heads=cfg.heads, kernel_sizes=(cfg.kernels,) * 3
                                     + (None,), expand_ratio=cfg.expand_ratio, saa=cfg.saa).eval().to(self.device)

        key = ("random", cfg.heads, cfg.kernels, cfg.expand_ratio, cfg.saa, cfg.seed)
        model = self.models.get(key, build)
        what = (f"smt_nano with N = {cfg.heads}, kernels {'/'.join(map(str, cfg.kernels))}, expand ratio "
                f"{cfg.expand_ratio:g}, SAA {'on' if cfg.saa else 'off'}")
        return Resolved(model, "random", f"random (seed {cfg.seed})",
                        f"{why}random initialisation (seed {cfg.seed}) of {what}: untrained, so the maps show the "
                        f"architecture, not learnt features", key)

    def resolve(self, cfg: Config) -> Resolved:
        """The model of `cfg` and what it is (see the module docstring); ValueError for a bad combination."""
        _check(cfg)
        if cfg.base == "checkpoint":
            return self._checkpoint(cfg)
        if cfg.stage is not None:
            raise ValueError(f"stage {cfg.stage + 1}: the demo models vary every SAM stage together; pick a stage "
                             f"on your own checkpoint (model: checkpoint file)")
        if cfg.base == "random":
            return self._random(cfg, "")
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
            return Resolved(base, "trained", name, f"{label} ({setting}, kernels {'/'.join(map(str, cfg.kernels))})",
                            ("demo", name))
        note, _ = _kernel_note(default_kernels(cfg.heads), cfg.kernels)
        rkey = ("resized", name, cfg.kernels)
        model = self.models.get(rkey, lambda: resize_kernels(base, cfg.kernels))
        return Resolved(model, "resized", f"{name} resized", f"{label} ({setting}) with its kernels resized: {note}",
                        rkey)

    def native(self, cfg: Config) -> tuple[int, tuple[int, ...], bool, float]:
        """The user's model's own (N, kernels, SAA, expand ratio) in `cfg.stage` (the first SAM stage for all)."""
        user = self.user_of(cfg)
        stages = sam_stages(user.model)
        return stage_setting(architecture(user.model)[1], stages[0] if cfg.stage is None else cfg.stage)

    @staticmethod
    def _user_name(cfg: Config) -> str:
        name = cfg.checkpoint or ""
        if not name:
            raise FileNotFoundError("no checkpoint given: type the path of your .pth or .safetensors file (or a "
                                    "timm name such as smt_tiny) in the file box")
        return name

    def _checkpoint(self, cfg: Config) -> Resolved:
        """The user's model (a checkpoint path or timm name) under `cfg`: as saved; with its kernels resized; a
        file of the ablation folder that has the head count and SAA setting; or that architecture at random
        initialisation."""
        name = self._user_name(cfg)
        path = Path(name).expanduser()
        looks_like_file = "/" in name or name.lower().endswith((".pth", ".pt", ".safetensors", ".bin"))
        if name not in self._objects and not path.is_file() and looks_like_file:
            raise FileNotFoundError(f"checkpoint file {name!r} does not exist: give the path of a .pth or "
                                    f".safetensors file")
        user = self.user(name)
        model = user.model
        stages = sam_stages(model)
        if not stages:
            raise ValueError(f"{user.name} has no SAM blocks: the playground shows SMT's modulation")
        if cfg.stage is not None and cfg.stage not in stages:
            raise ValueError(f"stage {cfg.stage + 1} (stages.{cfg.stage}) of {user.name} has no SAM blocks: choose "
                             f"one of stages {', '.join(str(i + 1) for i in stages)}")
        targets = stages if cfg.stage is None else [cfg.stage]
        arch, config = architecture(model)
        names, size = tuple(user.class_names), user.input_size
        want = (cfg.heads, cfg.saa, cfg.expand_ratio)
        where = _stages_text(targets, model)
        base_key = ("user", os.path.abspath(path), path.stat().st_mtime) if path.is_file() else ("user", name)

        def matches(settings) -> bool:
            return all(settings[i] is not None and (settings[i][0], settings[i][2], settings[i][3]) == want
                       for i in targets)

        own = tuple(stage_setting(config, i) if i in stages else None for i in range(len(config["depths"])))
        if matches(own):
            base, bkey, label = model, base_key, f"{user.name} as saved"
        else:
            found = None
            note = "no ablation folder is given (ablations=DIR)"
            if self.ablations is not None:
                files, skipped = self.ablation_files()
                found = next((f for f in files if matches(f.settings)), None)
                wanted = f"N = {cfg.heads}, SAA {'on' if cfg.saa else 'off'}" + (
                    f", expand ratio {cfg.expand_ratio:g}" if cfg.saa else "")
                note = (f"no file of the ablation folder has {wanted} in {where}"
                        + (f" ({len(skipped)} file(s) skipped: {'; '.join(skipped)})" if skipped else ""))
            if found is None:
                rcfg = _with_setting(config, targets, cfg.heads, cfg.kernels, cfg.saa, cfg.expand_ratio)
                key = ("user-random", base_key, tuple(targets), cfg.heads, cfg.kernels, cfg.saa, cfg.expand_ratio,
                       cfg.seed)

                def build():
                    import timm

                    torch.manual_seed(cfg.seed)
                    return timm.create_model(arch, **rcfg).eval().to(self.device)

                random = self.models.get(key, build)
                return Resolved(random, "random", f"random (seed {cfg.seed})",
                                f"{note}: random initialisation (seed {cfg.seed}) of {user.architecture} with "
                                f"{_setting_text(cfg.heads, cfg.kernels, cfg.saa, cfg.expand_ratio)} in {where}: "
                                f"untrained, so the maps show the architecture, not learnt features",
                                key, names, size)
            fu = self.user(found.path)
            base, bkey = fu.model, ("user", found.path, found.mtime)
            label = f"ablation file {Path(found.path).name}"
            names = tuple(fu.class_names)
        now = stage_setting(architecture(base)[1], targets[0])
        if all(stage_setting(architecture(base)[1], i)[1] == tuple(cfg.kernels) for i in targets):
            kind = "checkpoint" if base is model else "trained"
            return Resolved(base, kind, Path(bkey[1]).name if base is not model else user.name,
                            f"{label} ({_setting_text(*now)} in {where})", bkey, names, size)
        text, _ = _kernel_note(now[1], cfg.kernels)
        rkey = ("resized", bkey, tuple(targets), tuple(cfg.kernels))
        resized = self.models.get(rkey, lambda: resize_kernels(base, cfg.kernels, targets))
        return Resolved(resized, "resized", f"{Path(bkey[1]).name} resized",
                        f"{label} with the kernels of {where} resized: {text}", rkey, names, size)


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
        from .figures import DATA_IMAGES
        from .images import list_images

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
    return np.asarray(im.crop((x0, y0, x0 + size, y0 + size)))




@dataclass(frozen=True)
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


class TorchThreads:
    """A context that runs torch with `n` intra-op threads and restores the caller's count when the last of
    the threads using it (the UI thread, a prefetch) leaves."""

    def __init__(self, n: Optional[int] = 1):
        self.n = n
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = None

    def __enter__(self):
        if self.n is None:
            return self
        with self._lock:
            if self._depth == 0:
                self._saved = torch.get_num_threads()
                torch.set_num_threads(self.n)
            self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        if self.n is None:
            return
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                torch.set_num_threads(self._saved)


_LIVE_PREFETCHERS: "weakref.WeakSet[Prefetcher]" = weakref.WeakSet()


@atexit.register
def _join_prefetchers() -> None:
    for p in list(_LIVE_PREFETCHERS):
        p.join()


class Prefetcher:
    """One background thread that runs the latest list of jobs (e.g. the next and previous images' captures).

    `request(jobs)` replaces the jobs not yet started; `cancel()` drops them; a job already running finishes
    (a forward pass can not be interrupted) and only fills a cache. Nothing here ever waits for a job: a
    caller that needs a result a job is building waits for that build inside `LRU.get`, as it would for its
    own. A failing job is recorded in `errors` (the caller's own computation shows the error in its place).
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._jobs: list[Callable[[], Any]] = []
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self.errors: list[str] = []
        self.done = 0

    def request(self, jobs: Sequence[Callable[[], Any]]) -> None:
        with self._cond:
            self._jobs = list(jobs)
            if self._thread is None or not self._thread.is_alive():
                self._closed = False
                self._thread = threading.Thread(target=self._run, name="viz-prefetch", daemon=True)
                self._thread.start()
                _LIVE_PREFETCHERS.add(self)
            self._cond.notify()

    def join(self, timeout: float = 10.0) -> None:
        """Close, and wait for the job that is running to end (at exit: a daemon thread stopped inside torch
        aborts the process)."""
        self.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def cancel(self) -> None:
        with self._cond:
            self._jobs = []

    def close(self) -> None:
        with self._cond:
            self._jobs, self._closed = [], True
            self._cond.notify()

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until no job is queued or running (for tests and benchmarks); False on timeout."""
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._cond:
                if not self._jobs and not self._running:
                    return True
            time.sleep(0.005)
        return False

    _running = False

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._jobs.pop(0)
                self._running = True
            try:
                job()
            except Exception as e:  # recorded, not raised: the UI thread computes (and reports) it itself
                self.errors = (self.errors + [f"{type(e).__name__}: {e}"])[-10:]
            finally:
                with self._cond:
                    self._running = False
                    self.done += 1


class Replicas:
    """The caller's model and the background prefetch's copies of it.

    The caller (the UI thread) computes under `using(model)`: its capture hooks and masked weights exist only
    inside. `copy(key, model)` deep-copies the model under the same lock, on the prefetch thread (a copy made
    while the caller computes would carry its hooks or masks; made on the UI thread, it delays the update the
    user waits for). The prefetch then runs on its copy, in parallel with the caller.

    Args:
        keep: Copies kept (by model key).
    """

    def __init__(self, keep: int = 2):
        import weakref

        self._lock = threading.RLock()
        self._copies = LRU(keep)
        self._twins: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()

    def using(self, model: nn.Module):
        """The context the caller's computations on `model` run in (none for a copy: copies run in parallel)."""
        import contextlib

        return contextlib.nullcontext() if model in self._twins else self._lock

    def copy(self, key: Hashable, model: nn.Module) -> nn.Module:
        """The copy of `model` (made once per `key`, while the caller is not computing on it)."""
        import copy

        def build():
            with self._lock:
                twin = copy.deepcopy(model)
            self._twins.add(twin)
            return twin
        return self._copies.get(key, build)


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _cpu(result: Any) -> Any:
    """A small result dataclass (a FourierCurve) with its tensors on the CPU."""
    import dataclasses

    if not dataclasses.is_dataclass(result):
        return result
    moved = {f.name: getattr(result, f.name).cpu() for f in dataclasses.fields(result)
             if isinstance(getattr(result, f.name), torch.Tensor)}
    return replace(result, **moved) if moved else result


def image_of_batch(fwd, i: int):
    """Image i of a batched `SMTForward` (every tensor sliced, batch dimension kept with size 1)."""
    s = slice(i, i + 1)
    sam = {b: replace(f, heads=tuple(h[s] for h in f.heads), saa_input=f.saa_input[s], modulator=f.modulator[s])
           for b, f in fwd.sam.items()}
    return replace(fwd, logits=fwd.logits[s], block_outputs={k: v[s] for k, v in fwd.block_outputs.items()},
                   stage_outputs=tuple(v[s] for v in fwd.stage_outputs), sam=sam,
                   sam_inputs={k: v[s] for k, v in fwd.sam_inputs.items()})


def explain(explanation: str, block: str, masked: Sequence[int], unmasked_top1: tuple[str, float],
            masked_top1: tuple[str, float]) -> str:
    """The playground's one-line explanation: what the model is (`Resolved.explanation`) and, when heads are
    masked, what masking them did to the top-1 ((class name, probability) without and with the mask)."""
    if not masked:
        return explanation
    (c0, p0), (c1, p1) = unmasked_top1, masked_top1
    return (f"{explanation}. Masking head{'s' if len(masked) > 1 else ''} {', '.join(str(h + 1) for h in masked)} "
            f"of {block}: top-1 {c0} {100 * p0:.1f}% → {c1} {100 * p1:.1f}%")


def _top5(logits: torch.Tensor, class_names: Sequence[str]) -> list[tuple[str, float]]:
    probs = torch.softmax(logits.double(), 0)
    top = torch.topk(probs, min(5, probs.numel()))
    return [(class_names[int(i)] if int(i) < len(class_names) else f"class {int(i)}", float(p))
            for i, p in zip(top.indices, top.values)]


class SAMSession:
    """Cached captures of the SAM playground: per (model key, image key, block, mask) forward passes, per
    (model key, image key, block) receptive fields.

    Args:
        class_names: Names of the model's classes (for the top-5).
        cache_size: Entries kept by each cache.
        threads: Intra-op threads of torch while computing (None: leave the caller's).
    """

    def __init__(self, class_names: Sequence[str], cache_size: int = 64, threads: Optional[int] = 1):
        self.class_names = list(class_names)
        self.forwards = LRU(cache_size)
        self.fields_cache = LRU(cache_size)
        self.threads = TorchThreads(threads)
        self.prefetcher = Prefetcher()
        self.replicas = Replicas(2)  # the prefetch runs on copies (the caller's hooks and masks stay its own)

    def forward(self, resolved: Resolved, image_key: Hashable, x: torch.Tensor, block: str,
                masked: Sequence[int] = ()):
        """One forward pass recording the taps and the input of `block` (other blocks run unhooked, fused)."""
        from .analysis import smt_forward

        mkey = tuple(sorted(masked))

        def build():
            with self.replicas.using(resolved.model), self.threads:
                return smt_forward(resolved.model, x.to(_device(resolved.model)), [block], block_outputs=False,
                                   block_inputs=True, mask={block: list(mkey)} if mkey else None)
        return self.forwards.get((resolved.key, image_key, block, mkey), build)

    def forward_batch(self, resolved: Resolved, image_keys: Sequence[Hashable], x: torch.Tensor, block: str,
                      masked: Sequence[int] = ()) -> list:
        """`forward` for a batch of images in one pass: each image's capture is cached under its own key (so
        `block_view` finds it) and returned. A capture already cached is kept; the cache must hold the batch.

        Args:
            image_keys: One key per image of `x` (what determines its content, as `ImageSet.key` gives).
            x: (B, 3, H, W) model input.
        """
        from .analysis import smt_forward

        if len(image_keys) != len(x):
            raise ValueError(f"{len(image_keys)} image keys for a batch of {len(x)} images: give one key per image")
        if len(image_keys) > self.forwards.size:
            raise ValueError(f"a batch of {len(image_keys)} images does not fit the session's cache of "
                             f"{self.forwards.size}: build the session with cache_size >= {len(image_keys)}")
        mkey = tuple(sorted(masked))
        with self.replicas.using(resolved.model), self.threads:
            fwd = smt_forward(resolved.model, x.to(_device(resolved.model)), [block], block_outputs=False,
                              block_inputs=True, mask={block: list(mkey)} if mkey else None)
        return [self.forwards.put((resolved.key, k, block, mkey), image_of_batch(fwd, i))
                for i, k in enumerate(image_keys)]

    def fields(self, resolved: Resolved, image_key: Hashable, x: torch.Tensor, block: str) -> torch.Tensor:
        """Per-head receptive fields of `block`, from the unmasked forward's recorded block input."""
        from .analysis.erf import block_head_erf

        def build():
            fwd = self.forward(resolved, image_key, x, block)
            grid = fwd.sam[block].saa_input.shape[-2:]
            with self.replicas.using(resolved.model), self.threads:
                return block_head_erf(resolved.model.get_submodule(block), fwd.sam_inputs[block],
                                      (int(grid[0]), int(grid[1])))

        return self.fields_cache.get((resolved.key, image_key, block), build)

    def block_view(self, resolved: Resolved, image_key: Hashable, x: torch.Tensor, block: str,
                   masked: Sequence[int] = ()) -> BlockView:
        """What the playground shows of `block` for one image, `masked` heads zeroed."""
        from .analysis import head_activation_maps, modulator_map, relative_log_amplitude

        fwd = self.forward(resolved, image_key, x, block, masked)
        fields = self.fields(resolved, image_key, x, block)
        f = fwd.sam[block]
        names = resolved.class_names if resolved.class_names is not None else self.class_names
        with self.threads:  # computed on the model's device; only the shown results come to the CPU
            return BlockView(block, tuple(f.kernel_sizes), head_activation_maps(f.heads)[0].cpu(), fields.cpu(),
                             f.saa_input[0].abs().mean(0).cpu(), modulator_map(f.modulator)[0].cpu(),
                             _cpu(relative_log_amplitude(f.saa_input)), _cpu(relative_log_amplitude(f.modulator)),
                             _top5(fwd.logits[0].cpu(), names), tuple(masked))

    def prefetch(self, resolved: Resolved, images: "ImageSet", indices: Sequence[int], block: str,
                 masked: Sequence[int] = (), *, also: Sequence[tuple[Callable[[], "ImageSet"], int]] = ()) -> None:
        """Compute, in the background, the captures `block_view` needs for these images (replacing the jobs
        of an earlier request that have not started), on a copy of the model (`Replicas`).

        Args:
            also: (a function that gives an image set, index) of images of other sets, computed after those of
                `images` (the function runs on the prefetch thread: it may load the set).
        """
        def job(get, i):
            def run():
                imgs = get()
                if not 0 <= i < len(imgs.display):
                    return None
                twin = replace(resolved, model=self.replicas.copy(resolved.key, resolved.model))
                return self.block_view(twin, imgs.key(i), imgs.model_input(i), block, masked)
            return run
        self.prefetcher.request([job(lambda: images, i) for i in indices] + [job(get, i) for get, i in also])


@dataclass(frozen=True)
class TapView:
    """One map of a tap: `values` (H, W) as computed, signed or magnitude, and what it is."""
    values: torch.Tensor
    signed: bool
    label: str     # e.g. "stages.0.blocks.0.attn.modulator: mean over 64 channels"
    channels: int  # how many channels (or heads) the tap has


@dataclass(frozen=True)
class CamView:
    """A raw class activation map (h, w) of one image, its image and what it shows."""
    image: np.ndarray
    cam: torch.Tensor
    label: str
    target: int


class ExplorerSession:
    """Any tap of one captured forward pass of a fixed model, its Grad-CAM maps and top-5, cached per image.

    Args:
        model: An SMT model in eval mode.
        images: The images.
        class_names: Names of the model's classes (default the demo's 10, or "class i").
        cache_size: Entries kept by each cache.
        threads: Intra-op threads of torch while computing (None: leave the caller's).
        keep_graphs: Forward passes kept with their autograd graphs (the saved activations of one image: about
            0.1 GB for smt_tiny at 224 px), so that another target class costs one backward pass.
    """

    def __init__(self, model: nn.Module, images: ImageSet, class_names: Optional[Sequence[str]] = None,
                 cache_size: int = 64, threads: Optional[int] = 1, keep_graphs: int = 3):
        from smt.resolve import class_names as names_of

        if not hasattr(model, "stage_block_types"):
            raise ValueError(f"the explorer shows SMT models (stages of SAM and MSA blocks and their named taps); "
                             f"{type(model).__name__} has none: use viz.analysis.cam.class_activation_maps or "
                             f"viz.capture on its own modules")
        self.model, self.images = model, images
        n = int(getattr(model, "num_classes", 10))
        self.class_names = list(class_names) if class_names is not None else names_of(n)
        self.captures = LRU(cache_size)   # (image key, block) -> one forward pass's taps
        self.gradients = LRU(cache_size)  # (image key, target) -> every stage's activations and gradients
        # image key -> its forward pass with the graph (a new target: one backward, no forward); the shown image
        # and the two the prefetch computes
        self.graphs = LRU(keep_graphs)
        self.threads = TorchThreads(threads)
        self.prefetcher = Prefetcher()
        self.replicas = Replicas(1)  # the prefetch's copy of the model (the caller's hooks stay on the caller's)

    # -- what the controls offer --------------------------------------------------------------------------
    def blocks(self, stage: int) -> list[tuple[str, str]]:
        """(kind, block name) of each block of a stage."""
        kinds = self.model.stage_block_types[stage]
        return [(k, f"stages.{stage}.blocks.{j}") for j, k in enumerate(kinds)]

    def taps(self, block: str) -> list[tuple[str, str]]:
        """(label, tap) of each tap of a block."""
        stage, j = block_index(block)
        taps = [("block output", "output"), ("stage output", "stage")]
        if self.model.stage_block_types[stage][j] == "sam":
            n = len(self.model.get_submodule(block).attn.mhmc.convs)
            return [(f"attn.mhmc.heads.{h}", f"heads.{h}") for h in range(n)] + [
                ("attn.saa_input", "saa_input"), ("attn.modulator", "modulator")] + taps
        return [("attn.attn_weights (centre query)", "attn_weights")] + taps

    # -- compute --------------------------------------------------------------------------------------------
    def capture(self, i: int, block: str, *, model: Optional[nn.Module] = None):
        """The taps, output and stage outputs of `block` for image i (one forward pass, cached; other blocks run
        unhooked). `model`: a copy of the session's model to run (the prefetch's)."""
        model = model if model is not None else self.model

        def run():
            from .analysis import smt_forward
            from .capture import capture

            x = self.images.model_input(i).to(_device(model))
            stage, j = block_index(block)
            sam = model.stage_block_types[stage][j] == "sam"
            extra = [block] + ([] if sam else [f"{block}.attn.attn_weights"])
            with self.replicas.using(model), self.threads, capture(model, extra) as cap:
                fwd = smt_forward(model, x, [block] if sam else [], block_outputs=False)
                return fwd, {n: cap[n] for n in extra}
        return self.captures.get((self.images.key(i), block), run)

    def tap_tensor(self, i: int, block: str, tap: str) -> tuple[torch.Tensor, str]:
        """The tap of image i as (channels, H, W) and its name."""
        from .analysis import tokens_to_map

        fwd, extra = self.capture(i, block)
        stage = block_index(block)[0]
        if tap == "stage":
            return fwd.stage_outputs[stage][0], f"stages.{stage} output"
        if tap == "output":
            return tokens_to_map(extra[block], fwd.grid(block))[0], f"{block} output"
        if tap == "attn_weights":
            a = extra[f"{block}.attn.attn_weights"][0]  # (heads, N, N)
            h, w = fwd.grid(block)
            q = (h // 2) * w + w // 2
            return a[:, q, :].reshape(a.shape[0], h, w), f"{block}.attn.attn_weights, query at the centre"
        f = fwd.sam[block]
        if tap.startswith("heads."):
            return f.heads[int(tap.removeprefix("heads."))][0], f"{block}.attn.mhmc.{tap}"
        return (f.saa_input if tap == "saa_input" else f.modulator)[0], f"{block}.attn.{tap}"

    def tap_view(self, i: int, block: str, tap: str, view: str = "mean", channel: int = 0) -> TapView:
        """The map a tap view shows: the mean |activation| over channels (the mean over heads of attention
        weights), or one channel (signed; attention weights are not)."""
        t, what = self.tap_tensor(i, block, tap)
        attn = tap == "attn_weights"
        unit = "heads" if attn else "channels"
        if view == "mean":
            m = t.mean(0) if attn else t.abs().mean(0)
            return TapView(m.double().cpu(), False, f"{what}: mean over {t.shape[0]} {unit}", t.shape[0])
        if view != "channel":
            raise ValueError(f"view {view!r}: choose 'mean' or 'channel'")
        c = min(max(channel, 0), t.shape[0] - 1)
        return TapView(t[c].double().cpu(), not attn, f"{what}: {'head' if attn else 'channel'} {c}", t.shape[0])

    def cam_view(self, i: int, method: str = "GradCAM", target: int = -1, layer: int = -1) -> CamView:
        """A Grad-CAM-family map of image i at stage `layer` (-1: the second-to-last) for class `target` (-1: the
        predicted one); one backward pass per (image, target) serves every method and layer."""
        from .analysis.cam import cam_from_gradients

        recorded = self._gradients(i, target)
        t = recorded.targets[0]
        layer = layer if layer >= 0 else max(len(self.model.stages) - 2, 0)
        acts, grads = recorded.layers[f"stages.{layer}"]
        with self.threads:
            cam = cam_from_gradients(method, acts, grads)[0].cpu()
        return CamView(self.images.display[i], cam, f"{method}, {self.class_names[t]}, stage {layer + 1}", t)

    def _gradients(self, i: int, target: int, *, model: Optional[nn.Module] = None):
        from .analysis.cam import ClassGradients

        model = model if model is not None else self.model

        def graph():  # the forward pass with its graph, kept for the image's other targets
            stages = [f"stages.{s}" for s in range(len(model.stages))]
            with self.replicas.using(model), self.threads:
                return ClassGradients(model, self.images.model_input(i).to(_device(model)), stages)

        def run():
            recorded = self.graphs.get(self.images.key(i), graph)
            with self.threads:
                return recorded.gradients(None if target < 0 else [target])
        return self.gradients.get((self.images.key(i), target), run)

    def top5(self, i: int, block: str) -> list[tuple[str, float]]:
        """(class name, probability) of the five most probable classes of image i (from `block`'s capture)."""
        fwd, _ = self.capture(i, block)
        return _top5(fwd.logits[0].cpu(), self.class_names)

    def truth(self, i: int) -> Optional[str]:
        """The true class of image i, when known (the canvases' labels name the demo models' 10 classes: another
        model's classes are other classes)."""
        labels = self.images.labels
        if labels is None or labels[i] is None or len(self.class_names) != 10:
            return None
        return self.class_names[labels[i]]

    def prefetch(self, indices: Sequence[int], block: str, target: int = -1) -> None:
        """Capture these images' `block` and gradients in the background (replacing earlier jobs not started), on
        a copy of the model (`Replicas`)."""
        def twin():
            return self.replicas.copy("model", self.model)
        n, jobs = len(self.images.display), []
        for i in (i for i in indices if 0 <= i < n):
            jobs += [lambda i=i: self.capture(i, block, model=twin()),
                     lambda i=i: self._gradients(i, target, model=twin())]
        self.prefetcher.request(jobs)


def with_kernels(cfg: Config, first: int, step: int) -> Config:
    """`cfg` with kernels first, first + step, ... (one per head)."""
    return replace(cfg, kernels=tuple(first + step * h for h in range(cfg.heads)))
