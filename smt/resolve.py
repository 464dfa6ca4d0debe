"""One way to name a model: a demo name, a timm name (with an optional checkpoint), a checkpoint file alone,
or a model object; the class names that follow its outputs; the device it runs on.

Every entry point resolves models here: the figure command and `viz demo` (through
`viz.figures.load_source`), `viz run`, `smt validate`, the widgets' model step and the notebooks'
parameters cells. `resolve_model` returns the model (eval mode, on its device) with what callers need
beside it: its name, the checkpoint, the demo name, the input preprocessing, the class names and a way
to build the same architecture at random initialisation.

Class names (`class_names`) follow the number of outputs and nothing else: 10 -> the Scaled
Fashion-MNIST classes of the demo models, 1000 -> ImageNet-1k, 21841 -> ImageNet-22k (timm's
`ImageNetInfo`), or a labels file the user gives (one name per line, as many lines as outputs);
anything else is `class 17`. A model never shows another dataset's names.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch
import torch.nn as nn

from .reader import CheckpointError

__all__ = ["ResolvedModel", "ModelNameError", "resolve_model", "class_names", "resolve_device",
           "CHECKPOINT_SUFFIXES", "looks_like_path"]

#: File endings taken for a checkpoint path even when the file is missing (so the error says "no such file").
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".pth.tar", ".bin", ".ckpt", ".safetensors")

ModelLike = Union[str, os.PathLike, nn.Module]


def _accepted() -> str:
    from .demo import DEMO_MODELS

    names = [n for n in DEMO_MODELS if not re.fullmatch(r".+_s\d+", n)]  # the ablation seeds by pattern
    seeds = "; and the ablation seeds, heads2_s1, ..." if len(names) < len(DEMO_MODELS) else ""
    return ("a model is named by one of: a demo model (" + ", ".join(names) + seeds + "); a timm model name "
            "(smt_tiny, smt_small, smt_base, smt_large, resnet50, ...; `timm.list_models()`), with an optional "
            "checkpoint file for its weights; an SMT checkpoint file alone (.pth, .pt or .safetensors: the "
            "variant is read from the weights); or a model object (from Python)")


class ModelNameError(ValueError):
    """A model name that is neither a demo model, a timm model nor an existing file."""


@dataclass
class ResolvedModel:
    """A model and what callers need beside it.

    Attributes:
        model: The model on `device`, in eval mode (a model object given keeps its mode).
        name: The name as shown: the demo name, the timm name, or the checkpoint's file name.
        architecture: The timm architecture (`smt_tiny`, `smt_nano`, ...) when known, else the class name.
        checkpoint: The weights file, if any (a demo model's shipped file included).
        demo: The demo model's name when the model is a shipped demo model.
        data_config: timm's eval preprocessing (`input_size`, `mean`, `std`, `crop_pct`, `interpolation`).
        class_names: Name of every output (`class_names`).
        device: Where the model runs.
        random_spec: (timm name, keyword arguments) that build the same architecture, or None.
    """
    model: nn.Module
    name: str
    architecture: str
    checkpoint: Optional[str]
    demo: Optional[str]
    data_config: dict
    class_names: list[str]
    device: torch.device
    random_spec: Optional[tuple[str, dict]] = None

    @property
    def input_size(self) -> int:
        """The square input size of `data_config`."""
        return int(self.data_config["input_size"][-1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def can_build_random(self) -> bool:
        return self.random_spec is not None

    def build_random(self, seed: int = 0) -> nn.Module:
        """The same architecture at random initialisation (timm's init, `torch.manual_seed(seed)`), eval, on
        `device`."""
        import timm

        if self.random_spec is None:
            raise ValueError(f"{self.name}: a {type(self.model).__name__} built outside timm cannot be rebuilt at "
                             f"random initialisation; pass a timm or SMT model")
        arch, kwargs = self.random_spec
        torch.manual_seed(seed)
        return timm.create_model(arch, **kwargs).eval().to(self.device)


def resolve_device(device: Union[None, str, torch.device] = None) -> torch.device:
    """`device`, or CUDA when available, else the CPU."""
    if device is None or device == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{device!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available on this machine; use cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: there are {torch.cuda.device_count()} CUDA devices; use cuda:0 to "
                         f"cuda:{torch.cuda.device_count() - 1}")
    return dev


def _read_labels(labels: Union[str, os.PathLike, Sequence[str]]) -> tuple[list[str], str]:
    if isinstance(labels, (str, os.PathLike)):
        path = Path(labels)
        if not path.is_file():
            raise FileNotFoundError(f"labels file {path} does not exist; give a text file with one class name per "
                                    f"line, in the order of the model's outputs")
        names = path.read_text(encoding="utf-8").splitlines()
        while names and not names[-1].strip():  # a trailing newline is no class
            names.pop()
        return [n.strip() for n in names], f"labels file {path}"
    return [str(n) for n in labels], "the labels given"


def class_names(num_classes: int, labels: Union[None, str, os.PathLike, Sequence[str]] = None) -> list[str]:
    """The name of each of a model's `num_classes` outputs.

    Args:
        num_classes: The model's outputs.
        labels: A labels file (one name per line) or a list of names; its length must equal `num_classes`.

    Returns:
        `labels` when given; else 10 -> Scaled Fashion-MNIST, 1000 -> ImageNet-1k, 21841 -> ImageNet-22k
        (the first synonym of each), anything else `class 0`, `class 1`, ...
    """
    if labels is not None:
        names, what = _read_labels(labels)
        if len(names) != num_classes:
            raise ValueError(f"{what} has {len(names)} names but the model has {num_classes} outputs; give one "
                             f"name per output, in order")
        return names
    if num_classes == 10:
        from .data import CLASS_NAMES

        return list(CLASS_NAMES)
    if num_classes in (1000, 21841):
        from timm.data import ImageNetInfo

        info = ImageNetInfo("imagenet-1k" if num_classes == 1000 else "imagenet-22k")
        return [info.index_to_description(i).split(",")[0] for i in range(num_classes)]
    return [f"class {i}" for i in range(num_classes)]


def looks_like_path(s: str) -> bool:
    """Whether a model name is meant as a file: a path separator, `~`, or a checkpoint ending."""
    return os.sep in s or "/" in s or s.lower().endswith(CHECKPOINT_SUFFIXES) or s.startswith("~")


def _smt_spec(model: nn.Module) -> tuple[str, dict]:
    """(variant, kwargs) rebuilding an SMT model's architecture, read from its weights."""
    from .checkpoint import _msa_heads, identify_variant, infer_config

    config = infer_config(model.state_dict())
    variant = identify_variant(config)
    config["msa_heads"] = _msa_heads(config, variant)
    return variant or "smt_tiny", config


def _spec_of(model: nn.Module) -> Optional[tuple[str, dict]]:
    if hasattr(model, "stage_block_types"):
        return _smt_spec(model)
    arch = getattr(model, "pretrained_cfg", {}).get("architecture")
    if arch:
        return arch, {"num_classes": int(getattr(model, "num_classes", 0) or 0)}
    return None


def _from_file(path: Path, **kwargs: Any) -> nn.Module:
    from .checkpoint import create_model_from_checkpoint

    try:
        return create_model_from_checkpoint(path, **kwargs)
    except CheckpointError as e:
        raise type(e)(f"{e}\n({_accepted()})") from None


def _timm_with_checkpoint(name: str, path: Path, num_classes: Optional[int]) -> nn.Module:
    """A timm model `name` with the weights of `path`: SMT variants through this project's reader (the authors'
    release files, ours, safetensors; a clear error when the file is another variant), others through timm."""
    import timm

    from .checkpoint import _load_state, read_checkpoint
    from .variants import VARIANTS

    if name.split(".")[0] in VARIANTS:
        state = read_checkpoint(path)
        if num_classes is None:
            head = state.get("head.weight")
            num_classes = 0 if head is None else int(head.shape[0])
        model = timm.create_model(name, num_classes=num_classes)
        _load_state(model, state, path)
        return model
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)


def resolve_model(model: Optional[ModelLike] = "main", *, checkpoint: Optional[Union[str, os.PathLike]] = None,
                  labels: Union[None, str, os.PathLike, Sequence[str]] = None,
                  device: Union[None, str, torch.device] = None, num_classes: Optional[int] = None,
                  input_size: Optional[int] = None, pretrained: bool = False, seed: int = 0) -> ResolvedModel:
    """The model a user names, with its name, checkpoint, preprocessing, class names and device.

    Args:
        model: A demo model name (`main`, `heads2`, `vit`, ... see `smt.demo.DEMO_MODELS`); a timm model
            name (`smt_tiny`, `smt_large.in22k_ft_in1k_384`, `resnet50`); the path of an SMT checkpoint
            alone (the variant is read from the weights, as `smt inspect` does); or an `nn.Module`. None:
            `checkpoint` alone, or `main` without one.
        checkpoint: Weights for a demo or timm name (the authors' release file, ours, `.safetensors`).
        labels: A labels file or list of class names (see `class_names`).
        device: Where the model runs; default CUDA when available, else the CPU.
        num_classes: Classifier size of a timm model (default: the checkpoint's, else timm's).
        input_size: Square input size of `data_config` (default the model's).
        pretrained: A timm name without a checkpoint loads timm's released weights (a download) instead of
            a random initialisation.
        seed: Seed of a random initialisation (a timm name without weights).

    Raises:
        FileNotFoundError: A checkpoint path that does not exist.
        CheckpointError: A file that is not a checkpoint (or not SMT's, when the variant must be read from it).
        ModelNameError: A name that is neither a demo model nor a timm model.
    """
    import timm
    from timm.data import resolve_data_config

    from . import model as _registers  # noqa: F401  (the SMT variants)
    from .demo import DEMO_MODELS, demo_model, demo_weights_path

    if isinstance(model, nn.Module) and device is None:  # a model object stays where it is
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    dev = resolve_device(device)
    ck = Path(checkpoint).expanduser() if checkpoint is not None else None
    if ck is not None and not ck.is_file():
        raise FileNotFoundError(f"checkpoint {ck} does not exist" + (" (it is a directory)" if ck.is_dir() else "")
                                + f"; give a weights file ({_accepted()})")
    if model is None:  # the checkpoint alone, or the main demo model without one
        model, ck = (ck, None) if ck is not None else ("main", None)
    demo = None
    if isinstance(model, nn.Module):
        net, spec, ck_out = model, _spec_of(model), None
        name = getattr(model, "pretrained_cfg", {}).get("architecture") or type(model).__name__
        arch = name
    else:
        given = os.fspath(model)
        path = Path(given).expanduser()
        if given in DEMO_MODELS:
            demo = name = given
            net = demo_model(given, checkpoint=ck)
            arch, arch_kwargs = DEMO_MODELS[given]
            spec = (arch, {"num_classes": int(net.num_classes), **arch_kwargs})
            ck_out = str(ck) if ck is not None else str(demo_weights_path(given))
        elif path.is_dir():
            raise ModelNameError(f"{given} is a directory, not a checkpoint file; {_accepted()}")
        elif path.is_file() or (not timm.is_model(given) and looks_like_path(given)):
            if ck is not None:
                raise ModelNameError(f"model {given!r} is a file and a checkpoint {ck} is given too: name the "
                                     f"weights once (the file alone, or a timm name with the checkpoint)")
            if not path.exists():
                raise FileNotFoundError(f"checkpoint {path} does not exist; {_accepted()}")
            net = _from_file(path, **({} if num_classes is None else {"num_classes": num_classes}))
            spec = _smt_spec(net)
            arch = net.pretrained_cfg.get("architecture", spec[0])
            name, ck_out = path.name, str(path)
        elif timm.is_model(given):
            name = arch = given
            if ck is not None:
                net = _timm_with_checkpoint(given, ck, num_classes)
            else:
                torch.manual_seed(seed)
                net = timm.create_model(given, pretrained=pretrained,
                                        **({} if num_classes is None else {"num_classes": num_classes}))
            spec = _spec_of(net) or (given.split(".")[0], {"num_classes": int(net.num_classes)})
            ck_out = str(ck) if ck is not None else None
        else:
            raise ModelNameError(f"unknown model {given!r}: it is not a demo model, not a timm model and not an "
                                 f"existing file; {_accepted()}")
    net = net.to(dev) if isinstance(model, nn.Module) else net.eval().to(dev)  # a given object keeps its mode
    config = resolve_data_config({} if input_size is None else {"input_size": (3, input_size, input_size)},
                                 model=net)
    outputs = int(getattr(net, "num_classes", 0) or 0)
    return ResolvedModel(model=net, name=name, architecture=arch, checkpoint=ck_out, demo=demo, data_config=config,
                         class_names=class_names(outputs, labels), device=dev, random_spec=spec)
