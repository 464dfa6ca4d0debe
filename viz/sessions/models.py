"""Which model a playground configuration means: `Config`, `ModelResolver` (the one place that decides it),
kernel resizing, ablation folders."""
from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn

from ..cache import LRU

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


def with_kernels(cfg: Config, first: int, step: int) -> Config:
    """`cfg` with kernels first, first + step, ... (one per head)."""
    return replace(cfg, kernels=tuple(first + step * h for h in range(cfg.heads)))
