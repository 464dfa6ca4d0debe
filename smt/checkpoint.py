"""SMT checkpoints: the weights in this project's layout, the architecture they describe, loading, conversion.

The SMT release files (Lin et al., "Scale-Aware Modulation Meet Transformer", ICCV 2023) are `torch.save`
pickles of `{"model": state_dict, "optimizer": ..., "lr_scheduler": ..., "max_accuracy": ..., "scaler": ...,
"epoch": ..., "config": <yacs CfgNode>}`. `torch.load(weights_only=True)` refuses them (the yacs object), and
`weights_only=False` would run whatever a tampered file asks for. They are read with the allow-list reader
of `smt.reader` (which knows nothing about SMT); this module finds the state dict in what it returns,
converts the authors' keys (`smt.keys`), reads the architecture from the weights (`infer_config`,
`identify_variant`), loads them into a model with an error that names both variants when they do not fit,
and converts files.

Tensor data is read only for the tensors a caller keeps: `read_checkpoint` materialises the model
weights and never the optimizer state.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn

from .keys import is_official_state_dict, official_key_to_ours, to_official_state_dict
from .reader import CheckpointError, TensorRef, UnknownObject, UnsafeCheckpointError, open_checkpoint, safe_load
from .variants import VARIANTS, resolve_stages

__all__ = [
    "CheckpointError", "UnsafeCheckpointError", "CheckpointMismatchError", "UnknownObject", "WeightsInFile",
    "safe_load", "read_checkpoint", "locate_weights", "load_weights", "infer_config", "identify_variant",
    "variant_differences", "group_keys", "summarise_keys", "create_model_from_checkpoint", "convert_checkpoint",
]

_logger = logging.getLogger(__name__)


class CheckpointMismatchError(CheckpointError):
    """The file's weights do not fit the model they were loaded into."""


# ---- the weights in this project's layout --------------------------------------------------------

def _type_name(obj: Any) -> str:
    name = obj.pickled_class if isinstance(obj, UnknownObject) else type(obj).__name__
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def _is_tensor(obj: Any) -> bool:
    return isinstance(obj, (TensorRef, torch.Tensor))


def _find_state_dict(path: Path, obj: Any) -> tuple[Optional[str], Mapping]:
    """The state dict in `obj` and the top-level entry that holds it (None: `obj` is the state dict)."""
    if isinstance(obj, UnknownObject) and not len(obj):
        raise CheckpointError(f"{path}: holds a pickled {obj.pickled_class} object, not a state dict; "
                              f"save model.state_dict() instead of the model")
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds {_type_name(obj)}, not a state dict (a dict of tensors)")
    for wrapper in ("model", "state_dict", "model_state_dict", "module"):
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping) and any(_is_tensor(v) for v in inner.values()):
            return wrapper, inner
    if isinstance(obj.get("model"), UnknownObject):
        raise CheckpointError(f"{path}: its 'model' entry is a pickled {obj['model'].pickled_class} object, not a "
                              f"state dict; save model.state_dict() instead of the model")
    if not any(_is_tensor(v) for v in obj.values()):
        keys = ", ".join(repr(k) for k in list(obj)[:8])
        raise CheckpointError(f"{path}: holds no weights: its top-level entries ({keys}) contain no "
                              f"'model'/'state_dict' dict of tensors")
    return None, obj


def _looks_like_smt(keys: list[str]) -> bool:
    return any(k.startswith(("stem.conv1.", "stages.0.blocks.")) for k in keys)


@dataclass(frozen=True)
class WeightsInFile:
    """Where the SMT weights of a checkpoint are and how they were stored (see `locate_weights`).

    Attributes:
        entry: The top-level entry that holds the state dict ("model", "state_dict", ...), or None when
            the file is the state dict itself.
        layout: "official" (the authors' keys, `patch_embed1...`, `block1.0...`) or "timm" (this project's).
        module_prefix: The keys carried DistributedDataParallel's `module.` prefix (removed in `state`).
        state: The weights under this project's keys, as tensors or (not read yet) `TensorRef`s.
    """

    entry: Optional[str]
    layout: str
    module_prefix: bool
    state: dict[str, Any]


def locate_weights(path: os.PathLike, obj: Any) -> WeightsInFile:
    """Find the SMT state dict in `obj`, what a checkpoint file holds (`smt.reader.open_checkpoint(path).obj`).

    Args:
        path: The file's path, for the messages.
        obj: What the file holds: tensors or `TensorRef`s in containers.

    Raises:
        CheckpointError: A pickled model object, no weights, entries that are not tensors, or weights of
            another architecture (also an SMT backbone inside another model, in the authors' layout).
    """
    entry, state = _find_state_dict(Path(path), obj)
    for k, v in state.items():
        if not isinstance(k, str) or not _is_tensor(v):
            what = f"key {k!r} holds {_type_name(v)}" if isinstance(k, str) else f"key {k!r} is not a string"
            raise CheckpointError(f"{path}: is not a state dict: {what}, not a tensor")
    prefixed = bool(state) and all(k.startswith("module.") for k in state)
    if prefixed:
        state = {k[len("module."):]: v for k, v in state.items()}
    keys = list(state)
    official = is_official_state_dict(state)
    if official:
        foreign = []
        renamed = {}
        for k in keys:
            try:
                renamed[official_key_to_ours(k)] = k
            except KeyError:
                foreign.append(k)
        if foreign:
            raise CheckpointError(f"{path}: has SMT keys in the authors' layout but also {len(foreign)} key(s) SMT "
                                  f"has no place for ({', '.join(foreign[:4])}); is it a model built on SMT "
                                  f"(detection, segmentation)? Keep only the backbone's keys")
        state = {new: state[old] for new, old in renamed.items()}
    elif not _looks_like_smt(keys):
        shown = ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
        raise CheckpointError(f"{path}: holds weights of another architecture, not SMT: none of its {len(keys)} "
                              f"keys ({shown}) is an SMT key (stem.*, stages.*, or the authors' patch_embed1.*, "
                              f"block1.*)")
    return WeightsInFile(entry, "official" if official else "timm", prefixed, dict(state))


def read_checkpoint(path: os.PathLike) -> dict[str, torch.Tensor]:
    """The weights of an SMT checkpoint file, in this project's key layout.

    Reads, without running any code from the file: the authors' release files (`{"model": ..., "config":
    <yacs CfgNode>, "optimizer": ..., ...}`, yacs need not be installed), a bare state dict in the
    authors' keys, `{"state_dict": ...}` wrappers, this project's timm-native `.pth` files and
    `.safetensors` files, in PyTorch's zip or legacy format. Only the weights' data is read (not the
    optimizer state). A `module.` prefix (DistributedDataParallel) is removed.

    Raises:
        FileNotFoundError: No file at `path`.
        UnsafeCheckpointError: The file asks to call something outside the allow-list; nothing ran.
        CheckpointError: Empty, truncated or corrupt file, a directory, a text file, a pickled model
            object, no weights, or weights of another architecture.
    """
    path = Path(path)
    with open_checkpoint(path) as file:
        return file.materialise(locate_weights(path, file.obj).state)


# ---- reading the architecture from the weights ---------------------------------------------------

def _ratio(hidden: int, dim: int) -> float:
    return hidden // dim if hidden % dim == 0 else hidden / dim


def _pattern(types: tuple[str, ...]) -> Any:
    if types and all(t == "sam" for t in types):
        return "sam"
    if types and all(t == "msa" for t in types):
        return "msa"
    if types == tuple("sam" if j % 2 == 0 else "msa" for j in range(len(types))):
        return "mix"
    return types


def _stage_config(dim: int, types: tuple[str, ...], sam: Optional[tuple[tuple[int, ...], Optional[int]]],
                  mlp_hidden: Optional[int]) -> dict[str, Any]:
    """One stage's entries of `infer_config`, from what its weights show.

    Args:
        dim: Channels.
        types: Block types.
        sam: The SAM blocks' (MHMC kernels, SAA hidden width or None with SAA off); None without SAM blocks.
        mlp_hidden: The MLPs' hidden width; None without blocks.

    What the weights cannot show (MHMC and SAA in a stage without SAM blocks, the MLP in a stage without
    blocks) is given SMT's defaults, for a file and for a variant alike, so that the two compare equal.
    """
    kernels, saa_hidden = sam if sam is not None else ((), None)
    return dict(block_types=_pattern(types), sam_heads=len(kernels) if kernels else 4,
                kernel_sizes=kernels if kernels else None, saa=saa_hidden is not None if sam is not None else True,
                expand_ratio=_ratio(saa_hidden, dim) if saa_hidden is not None else 2.0,
                mlp_ratios=_ratio(mlp_hidden, dim) if mlp_hidden is not None else 4)


_STAGE_KEYS = ("block_types", "sam_heads", "kernel_sizes", "saa", "expand_ratio", "mlp_ratios")


def _config(stem_kernel: int, embed_dims: tuple, depths: tuple, stages: list[dict], qkv_bias: bool,
            layer_scale: bool) -> dict[str, Any]:
    cfg = {k: tuple(s[k] for s in stages) for k in _STAGE_KEYS}
    return dict(stem_kernel=stem_kernel, embed_dims=tuple(embed_dims), depths=tuple(depths), **cfg,
                qkv_bias=bool(qkv_bias), layer_scale=1e-4 if layer_scale else None)


def infer_config(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The `SMT` arguments that the shapes and keys of a state dict (this project's layout) determine.

    Read from the weights: `in_chans`, `stem_kernel` (first conv), `embed_dims` (stage norms), `depths`,
    `block_types` (SAM blocks have `attn.v`, MSA blocks `attn.q`), `sam_heads` and `kernel_sizes` (the
    per-head depthwise convs), `saa` and `expand_ratio`, `mlp_ratios`, `qkv_bias`, layer scale
    (`ls1.gamma` present; its initial value is not recorded, 1e-4 is used) and `num_classes` (the
    head; 0 without one). `msa_heads` is not included: attention head counts leave no trace in the
    weights (see `create_model_from_checkpoint`). The values may also be `smt.reader.TensorRef`s.

    Raises:
        ValueError: The keys do not describe an SMT that `SMT(...)` can build.
    """
    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise ValueError(f"{key} is missing")
        return state[key]

    stem = need("stem.conv1.weight")
    stage_ids = sorted({int(m.group(1)) for k in state if (m := re.match(r"stages\.(\d+)\.", k))})
    if stage_ids != list(range(len(stage_ids))) or not stage_ids:
        raise ValueError(f"stages {stage_ids} are not numbered 0..n-1")
    dims, depths, stages = [], [], []
    for i in stage_ids:
        dim = need(f"stages.{i}.norm.weight").shape[0]
        blocks = sorted({int(m.group(1)) for k in state if (m := re.match(rf"stages\.{i}\.blocks\.(\d+)\.", k))})
        if blocks != list(range(len(blocks))):
            raise ValueError(f"stage {i}: blocks {blocks} are not numbered 0..n-1")
        types, sam, mlp = [], set(), set()
        for j in blocks:
            p = f"stages.{i}.blocks.{j}."
            mlp.add(need(p + "mlp.fc1.weight").shape[0])
            if p + "attn.q.weight" in state:
                types.append("msa")
            elif p + "attn.v.weight" in state:
                types.append("sam")
                kernels = []
                while p + f"attn.mhmc.convs.{len(kernels)}.weight" in state:
                    kernels.append(state[p + f"attn.mhmc.convs.{len(kernels)}.weight"].shape[-1])
                expand = state.get(p + "attn.saa.expand.weight")
                sam.add((tuple(kernels), expand.shape[0] if expand is not None else None))
            else:
                raise ValueError(f"{p[:-1]} is neither a SAM block (attn.v) nor an MSA block (attn.q)")
        if len(sam) > 1 or len(mlp) > 1:
            raise ValueError(f"stage {i}: its blocks differ in MHMC kernels, SAA or MLP width, which SMT configures "
                             f"per stage")
        dims.append(dim)
        depths.append(len(blocks))
        stages.append(_stage_config(dim, tuple(types), sam.pop() if sam else None, mlp.pop() if mlp else None))
    cfg = _config(stem.shape[-1], dims, depths, stages,
                  qkv_bias=any(k.endswith(("attn.v.bias", "attn.q.bias")) for k in state),
                  layer_scale=any(k.endswith(".ls1.gamma") for k in state))
    return dict(in_chans=stem.shape[1], **cfg, num_classes=state["head.weight"].shape[0] if "head.weight" in state
                else 0)


_ARCH_KEYS = ("in_chans", "stem_kernel", "embed_dims", "depths", "block_types", "sam_heads", "kernel_sizes", "saa",
              "expand_ratio", "mlp_ratios", "qkv_bias", "layer_scale")


@cache
def _variant_config(name: str) -> dict[str, Any]:
    """What `infer_config` reads from the weights of `SMT(**VARIANTS[name])`, without building it."""
    arch = VARIANTS[name]
    stages = []
    for s in resolve_stages(arch["embed_dims"], arch["depths"], arch["block_types"], arch["sam_heads"],
                            arch["kernel_sizes"], arch["expand_ratio"], arch["saa"], arch["msa_heads"],
                            arch["mlp_ratios"]):
        sam = (s.kernel_sizes, int(s.dim * s.expand_ratio) if s.saa else None) if "sam" in s.block_types else None
        stages.append(_stage_config(s.dim, s.block_types, sam, int(s.dim * s.mlp_ratio) if s.block_types else None))
    return _config(arch["stem_kernel"], arch["embed_dims"], arch["depths"], stages, arch["qkv_bias"],
                   arch["layer_scale"] is not None)


def variant_differences(config: Mapping[str, Any]) -> dict[str, dict[str, tuple[Any, Any]]]:
    """For each registered variant, the architecture entries in which `config` (from `infer_config`) differs.

    Returns:
        `{variant: {entry: (value in config, value of the variant)}}`, in `VARIANTS` order; an empty dict
        for a variant means `config` is that variant. `in_chans` is not compared (a variant may be built
        for any number of input channels).
    """
    out = {}
    for name in VARIANTS:
        ref = _variant_config(name)
        out[name] = {k: (config.get(k), ref[k]) for k in _ARCH_KEYS if k != "in_chans" and config.get(k) != ref[k]}
    return out


def identify_variant(config: Mapping[str, Any]) -> Optional[str]:
    """The registered variant whose architecture is `config` (from `infer_config`), or None."""
    return next((name for name, diff in variant_differences(config).items() if not diff), None)


def _describe(config: Mapping[str, Any]) -> str:
    name = identify_variant(config)
    dims = "-".join(map(str, config["embed_dims"]))
    depths = "-".join(map(str, config["depths"]))
    arch = f"embed dims {dims}, depths {depths}, stem kernel {config['stem_kernel']}"
    return f"{name} ({arch})" if name else f"a custom SMT ({arch})"


def group_keys(keys: list[str]) -> dict[str, list[str]]:
    """Keys by the part of the model they belong to: "stem", "stages.{i}", "head" or "other", in order."""
    groups: dict[str, list[str]] = {}
    for k in keys:
        m = re.match(r"(stages\.\d+|stem|head)\.", k)
        groups.setdefault(m.group(1) if m else "other", []).append(k)
    return groups


def summarise_keys(keys: list[str], limit: int = 3) -> str:
    """'stages.2: 40 (blocks.8.*, blocks.9.*, ...); head: 2 (weight, bias)': a count and a few names per group."""
    parts = []
    for group, members in group_keys(keys).items():
        subs: list[str] = []
        for k in members:
            m = re.match(r"stages\.\d+\.(blocks\.\d+)\.", k)
            sub = m.group(1) + ".*" if m else k[len(group) + 1:] if group != "other" else k
            if sub not in subs:
                subs.append(sub)
        shown = ", ".join(subs[:limit]) + (", ..." if len(subs) > limit else "")
        parts.append(f"{group}: {len(members)} ({shown})")
    return "; ".join(parts)


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if "head.weight" in state and (not isinstance(head, nn.Linear) or state["head.weight"].shape != head.weight.shape):
        # another class count (fine-tuning) or no head: keep the backbone, leave the classifier as initialised
        _logger.info("%s: classifier of %s classes not loaded (model has %s)", path, state["head.weight"].shape[0],
                     getattr(head, "out_features", 0))
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    w = state.get("stem.conv1.weight")
    if w is not None and "stem.conv1.weight" in own and w.shape[1] != own["stem.conv1.weight"].shape[1] \
            and w.shape[0] == own["stem.conv1.weight"].shape[0]:
        from timm.models import adapt_input_conv

        state = dict(state, **{"stem.conv1.weight": adapt_input_conv(own["stem.conv1.weight"].shape[1], w)})
    missing = [k for k in own if k not in state and not k.startswith("head.")]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        try:
            file_arch = _describe(infer_config(state))
        except ValueError:
            file_arch = "an SMT whose architecture cannot be read"
        try:
            model_arch = _describe(infer_config(own))
        except ValueError:
            model_arch = type(model).__name__
        lines = [f"{path}: holds {file_arch} weights but the model is {model_arch}. Build the matching model "
                 f"(smt.create_model_from_checkpoint(path) reads the architecture from the file)."]
        if unexpected:
            lines.append(f"  unexpected keys (in the file, not in the model), {len(unexpected)}: "
                         f"{summarise_keys(unexpected)}")
        if missing:
            lines.append(f"  missing keys (in the model, not in the file), {len(missing)}: {summarise_keys(missing)}")
        if wrong:
            shown = ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:3])
            more = ", ..." if len(wrong) > 3 else ""
            lines.append(f"  shape mismatches (file vs model), {len(wrong)}: {shown}{more}")
        raise CheckpointMismatchError("\n".join(lines))
    model.load_state_dict(state, strict=False)


def load_weights(model: nn.Module, path: os.PathLike) -> None:
    """Load a checkpoint file (any format `read_checkpoint` reads) into `model`.

    A classifier of another size (fine-tuning on other classes) is left as initialised; a first conv
    with another number of input channels is adapted with timm's `adapt_input_conv`.

    Raises:
        CheckpointMismatchError: The file is another variant; the message names both and lists the
            missing and unexpected keys by stage.
    """
    path = Path(path)
    _load_state(model, read_checkpoint(path), path)


def _msa_heads(config: Mapping[str, Any], variant: Optional[str]) -> tuple[int, ...]:
    if variant is not None:
        return tuple(VARIANTS[variant]["msa_heads"])
    heads = []
    for dim in config["embed_dims"]:
        h = max(1, dim // 32)
        while dim % h:
            h -= 1
        heads.append(h)
    return tuple(heads)


def create_model_from_checkpoint(path: os.PathLike, **kwargs: Any) -> nn.Module:
    """Build the SMT that a checkpoint file describes and load its weights.

    The architecture is read from the weights (`infer_config`): embed dims, depths, block types, SAM head
    counts and kernel sizes, SAA, MLP ratios, stem kernel, layer scale, number of classes. MSA head counts
    cannot be read from weights (q, kv and proj have the same shapes for any head count): when the
    architecture is a registered variant (`smt_tiny` ... `test_smt`) its head counts are used, otherwise
    head dim 32 (`msa_heads = dim // 32`, at least 1); pass `msa_heads=` to override.

    Args:
        path: Checkpoint file in any format `read_checkpoint` reads.
        **kwargs: Passed to `timm.create_model` over the inferred arguments (e.g. `num_classes=10` to
            re-initialise the classifier, `drop_path_rate=0.1`).

    Returns:
        The `smt.SMT` model (in training mode, as `timm.create_model` returns it), with `pretrained_cfg` of
        the matching variant (of `smt_tiny` for a custom architecture).
    """
    import timm

    path = Path(path)
    state = read_checkpoint(path)
    try:
        config = infer_config(state)
    except ValueError as e:
        raise CheckpointError(f"{path}: the SMT architecture cannot be read from the weights: {e}") from None
    variant = identify_variant(config)
    config["msa_heads"] = _msa_heads(config, variant)
    model = timm.create_model(variant or "smt_tiny", **{**config, **kwargs})
    _load_state(model, state, path)
    return model


def convert_checkpoint(src: os.PathLike, dst: os.PathLike, to_official: bool = False) -> dict[str, torch.Tensor]:
    """Write the weights of `src` to `dst` (`.safetensors`, else a `torch.save` file), exactly.

    Args:
        src: Any file `read_checkpoint` reads (e.g. an official release `.pth`).
        dst: Output path; `.safetensors` writes safetensors, any other suffix `torch.save`.
        to_official: Write the authors' key layout (`patch_embed1...`, `block1.0...`) so the weights go
            back into their code; a `.pth` is then `{"model": state_dict}` like the release files.
            Otherwise this project's timm layout, a bare state dict.

    Returns:
        The state dict written.
    """
    src, dst = Path(src), Path(dst)
    state = read_checkpoint(src)
    if to_official:
        state = to_official_state_dict(state)
    # own, contiguous memory per tensor: safetensors refuses shared storage, torch.save would keep views' bases
    state = {k: v.detach().clone(memory_format=torch.contiguous_format) for k, v in state.items()}
    from .files import atomic_output

    with atomic_output(dst) as tmp:  # dst is the complete file or untouched, never half-written
        if dst.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp), metadata={"format": "pt", "layout": "official" if to_official else "timm"})
        else:
            torch.save({"model": state} if to_official else state, tmp)
    return state
