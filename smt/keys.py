"""The authors' key layout of SMT and this project's (timm's), and the exact conversion between them.

The authors' SMT (Lin et al., "Scale-Aware Modulation Meet Transformer", ICCV 2023) names its parts
`patch_embed{i}`, `block{i}.{j}` and `norm{i}` (stages counted from 1); this project follows timm's
`pvt_v2.py`: `stem`, `stages.{i-1}.downsample`, `stages.{i-1}.blocks.{j}`, `stages.{i-1}.norm`. Inside the
stem and inside a block a few parts are renamed too (`_STEM_KEYS`, `_BLOCK_KEYS`); each table serves both
directions, so the two conversions cannot disagree.

A leaf module (it imports nothing from the rest of `smt`): the model (`checkpoint_filter_fn` for timm's
`pretrained=True`) and the checkpoint reader both use it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Optional

import torch
import torch.nn as nn

__all__ = ["official_key_to_ours", "our_key_to_official", "is_official_state_dict", "checkpoint_filter_fn",
           "to_official_state_dict"]

#: The stem, (authors' prefix under `patch_embed1.`, ours under `stem.`).
_STEM_KEYS = (("conv.0.", "conv1."), ("conv.1.", "bn."), ("conv.3.", "conv2."), ("norm.", "norm."))

#: Inside a block, (authors, ours, shift), applied in this order to the part of the key after
#: `block{i}.{j}.`. `#` stands for a number, the authors' being `shift` larger: they count MHMC heads
#: from 1 (`local_conv_1` is head 0), while `gamma_1` is `ls1`. A rule that starts with `^` renames a
#: whole name only.
_BLOCK_KEYS = (
    ("attn.local_conv_#.", "attn.mhmc.convs.#.", 1),
    ("attn.proj0.", "attn.saa.expand.", 0),
    ("attn.bn.", "attn.saa.bn.", 0),
    ("attn.proj1.", "attn.saa.reduce.", 0),
    ("mlp.dwconv.dwconv.", "mlp.dwconv.", 0),
    ("^gamma_#", "^ls#.gamma", 0),
)


def _compile(rule: str) -> re.Pattern:
    whole = rule.startswith("^")
    pattern = re.escape(rule.lstrip("^")).replace(re.escape("#"), r"(\d+)")
    return re.compile(f"^{pattern}$" if whole else pattern)


def _renamer(target: str, shift: int):
    target = target.lstrip("^")
    return lambda m: target.replace("#", str(int(m.group(1)) + shift)) if "#" in target else target


#: The block rules compiled for each direction: (pattern, replacement function).
_TO_OURS = tuple((_compile(a), _renamer(b, -shift)) for a, b, shift in _BLOCK_KEYS)
_TO_OFFICIAL = tuple((_compile(b), _renamer(a, shift)) for a, b, shift in _BLOCK_KEYS)


def _rename_in_block(rules: tuple, key: str) -> str:
    for pattern, repl in rules:
        key = pattern.sub(repl, key)
    return key


def official_key_to_ours(key: str) -> str:
    """Map one key of the authors' state dict to this project's name (raises KeyError if foreign)."""
    if m := re.fullmatch(r"patch_embed1\.(.+)", key):
        for a, b in _STEM_KEYS:
            if m.group(1).startswith(a):
                return "stem." + b + m.group(1)[len(a):]
    elif m := re.fullmatch(r"patch_embed(\d+)\.(proj|norm)\.(.+)", key):
        return f"stages.{int(m.group(1)) - 1}.downsample.{m.group(2)}.{m.group(3)}"
    elif m := re.fullmatch(r"block(\d+)\.(\d+)\.(.+)", key):
        return f"stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}." + _rename_in_block(_TO_OURS, m.group(3))
    elif m := re.fullmatch(r"norm(\d+)\.(.+)", key):
        return f"stages.{int(m.group(1)) - 1}.norm.{m.group(2)}"
    elif key.startswith("head."):
        return key
    raise KeyError(key)


def our_key_to_official(key: str) -> str:
    """Inverse of `official_key_to_ours` (raises KeyError for a key the authors' model has no place for)."""
    if m := re.fullmatch(r"stem\.(.+)", key):
        for a, b in _STEM_KEYS:
            if m.group(1).startswith(b):
                return "patch_embed1." + a + m.group(1)[len(b):]
    elif m := re.fullmatch(r"stages\.(\d+)\.downsample\.(.+)", key):
        return f"patch_embed{int(m.group(1)) + 1}.{m.group(2)}"
    elif m := re.fullmatch(r"stages\.(\d+)\.blocks\.(\d+)\.(.+)", key):
        return f"block{int(m.group(1)) + 1}.{m.group(2)}." + _rename_in_block(_TO_OFFICIAL, m.group(3))
    elif m := re.fullmatch(r"stages\.(\d+)\.norm\.(.+)", key):
        return f"norm{int(m.group(1)) + 1}.{m.group(2)}"
    elif key.startswith("head."):
        return key
    raise KeyError(key)


def is_official_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """True when the keys are in the authors' layout (`patch_embed1...`, `block1.0...`)."""
    return any(k.startswith(("patch_embed1.", "block1.")) for k in state_dict)


def checkpoint_filter_fn(state_dict: dict, model: Optional[nn.Module] = None) -> dict[str, torch.Tensor]:
    """Convert the authors' checkpoint (or `{"model": ...}` / `{"state_dict": ...}`) to this layout."""
    for wrapper in ("model", "state_dict"):
        if isinstance(state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
    if not is_official_state_dict(state_dict):
        return dict(state_dict)
    return {official_key_to_ours(k): v for k, v in state_dict.items()}


def to_official_state_dict(state_dict: dict) -> dict[str, torch.Tensor]:
    """Convert a state dict of this layout back to the authors' keys (for their detection/segmentation code)."""
    return {our_key_to_official(k): v for k, v in state_dict.items()}
