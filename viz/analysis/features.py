"""Pre/post-aggregation feature maps of SMT's scale-aware modulation, and head masking.

SMT (Lin et al., "Scale-Aware Modulation Meet Transformer", ICCV 2023): in a SAM block the
multi-head mixed convolution (MHMC) gives head h a depthwise conv of kernel k_h; the outputs are
regrouped so that group g holds channel g of every head (channel g*N + h), and scale-aware
aggregation (SAA) mixes each group into the modulator. This module reads the three stages through
the model's taps (`attn.mhmc.heads.{h}`, `attn.saa_input`, `attn.modulator`) and reduces them to
maps: per-head mean |activation|, per-channel maps of one group, and the modulator map the authors
show (mean over channels of |modulator|, upsampled x4 bilinearly) for the last SAM block of stages
1-3. `mask_heads` zeroes chosen MHMC heads (ablation) and restores the weights bit-exactly.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..capture import capture

__all__ = [
    "SAMFeatures", "sam_block_names", "msa_block_names", "sam_features", "regroup_heads", "head_activation_maps",
    "group_channel_maps", "modulator_map", "authors_modulator_maps", "mask_heads", "require_eval",
    "LowFrequencyShare", "saa_low_frequency_shares",
]


def require_eval(model: nn.Module, what: str) -> None:
    """Raise if any module of `model` is in training mode (BatchNorm would use and update batch statistics,
    dropout would be active). The mode is never changed for the caller."""
    training = [n or type(model).__name__ for n, m in model.named_modules() if m.training]
    if training:
        more = f" and {len(training) - 1} more modules are" if len(training) > 1 else " is"
        raise RuntimeError(f"{what} needs the model in eval mode, but {training[0]!r}{more} in training mode "
                           f"(in training mode BatchNorm, e.g. in SMT's SAA, uses batch statistics and updates its "
                           f"running averages, and dropout is active); call model.eval() first. "
                           f"The mode is not changed for you")


def _block_names(model: nn.Module, kind: str) -> list[str]:
    types = getattr(model, "stage_block_types", None)
    if types is None:
        raise TypeError(f"{type(model).__name__} is not an SMT model (no stage_block_types); "
                        f"build one with timm.create_model('smt_tiny') after `import smt`")
    return [f"stages.{i}.blocks.{j}" for i, ts in enumerate(types) for j, t in enumerate(ts) if t == kind]


def sam_block_names(model: nn.Module, stages: Optional[Sequence[int]] = None) -> list[str]:
    """Names `stages.{i}.blocks.{j}` of the SAM blocks, in depth order (optionally of some stages only)."""
    names = _block_names(model, "sam")
    return names if stages is None else [n for n in names if int(n.split(".")[1]) in stages]


def msa_block_names(model: nn.Module) -> list[str]:
    """Names `stages.{i}.blocks.{j}` of the MSA blocks, in depth order."""
    return _block_names(model, "msa")


@dataclass(frozen=True)
class SAMFeatures:
    """What one SAM block computed for a batch (raw, at layer resolution).

    Attributes:
        block: Module name of the block.
        kernel_sizes: Kernel of each MHMC head.
        heads: Head outputs, each (B, C/N, H, W), in head order.
        saa_input: (B, C, H, W), regrouped: channel g*N + h is head h's channel g.
        modulator: (B, C, H, W), SAA output.
    """
    block: str
    kernel_sizes: tuple[int, ...]
    heads: tuple[torch.Tensor, ...]
    saa_input: torch.Tensor
    modulator: torch.Tensor

    @property
    def num_heads(self) -> int:
        return len(self.heads)


def _sam(model: nn.Module, block: str) -> nn.Module:
    try:
        attn = model.get_submodule(block + ".attn")
    except AttributeError:
        raise ValueError(f"{block!r} is not a block of this model; SAM blocks: {sam_block_names(model)}") from None
    if not hasattr(attn, "mhmc"):
        raise ValueError(f"{block!r} is not a SAM block (it has no MHMC); SAM blocks: {sam_block_names(model)}")
    return attn


def sam_features(
        model: nn.Module,
        images: torch.Tensor,
        blocks: Optional[Sequence[str]] = None,
        *,
        mask: Optional[Mapping[str, Sequence[int]]] = None,
        to: Optional[str] = "cpu",
) -> dict[str, SAMFeatures]:
    """Run `images` through an SMT model and return each SAM block's head outputs, SAA input and modulator.

    Args:
        model: An SMT model in eval mode.
        images: (B, 3, H, W), normalised as the model expects.
        blocks: Block names (`stages.{i}.blocks.{j}`); default every SAM block.
        mask: Heads to zero while running, `{block: [head, ...]}` (see `mask_heads`).
        to: Device for the recorded tensors.
    """
    require_eval(model, "sam_features")
    blocks = list(blocks) if blocks is not None else sam_block_names(model)
    heads = {b: _sam(model, b).mhmc.num_heads for b in blocks}
    patterns = [f"{b}.attn.{t}" for b in blocks for t in ("mhmc.heads.*", "saa_input", "modulator")]
    with mask_heads(model, mask) if mask else nullcontext(), torch.no_grad(), capture(model, patterns, to=to) as cap:
        model(images)
    return {b: SAMFeatures(
        block=b, kernel_sizes=tuple(_sam(model, b).mhmc.kernel_sizes),
        heads=tuple(cap[f"{b}.attn.mhmc.heads.{h}"] for h in range(heads[b])),
        saa_input=cap[f"{b}.attn.saa_input"], modulator=cap[f"{b}.attn.modulator"]) for b in blocks}


def regroup_heads(heads: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate head outputs (each (B, C/N, H, W)) in head order and regroup: channel g*N + h = head h, channel g."""
    x = torch.stack(list(heads), dim=2)  # (B, C/N, N, H, W): [b, g, h] = head h channel g
    return x.flatten(1, 2)


def head_activation_maps(heads: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-head mean |activation| over the head's channels: (B, N, H, W)."""
    return torch.stack([h.abs().mean(dim=1) for h in heads], dim=1)


def group_channel_maps(saa_input: torch.Tensor, num_heads: int, group: int) -> torch.Tensor:
    """The N channels of SAA group `group` (one per head, head order), signed: (B, N, H, W).

    Args:
        saa_input: Regrouped SAA input (B, C, H, W).
        num_heads: N, the MHMC head count.
        group: g in [0, C/N).
    """
    c = saa_input.shape[1]
    if c % num_heads:
        raise ValueError(f"{c} channels are not divisible by num_heads={num_heads}")
    if not 0 <= group < c // num_heads:
        raise ValueError(f"group={group} out of range: this map has {c // num_heads} groups of {num_heads} channels")
    return saa_input[:, group * num_heads:(group + 1) * num_heads]


def modulator_map(modulator: torch.Tensor, scale_factor: Optional[float] = None) -> torch.Tensor:
    """Mean over channels of |modulator|: (B, H, W); optionally upsampled bilinearly by `scale_factor`.

    The authors' figure uses `scale_factor=4`; the default keeps layer resolution.
    """
    m = modulator.abs().mean(dim=1, keepdim=True)  # (B, 1, H, W)
    if scale_factor is not None:
        m = F.interpolate(m, scale_factor=scale_factor, mode="bilinear", align_corners=False)
    return m[:, 0]


def authors_modulator_maps(model: nn.Module, images: torch.Tensor, stages: Sequence[int] = (0, 1, 2),
                           scale_factor: float = 4.0) -> dict[str, torch.Tensor]:
    """The authors' modulator figure: for the last SAM block of each stage in `stages` (stages 1-3 of the
    paper are indices 0-2), mean_c |modulator| upsampled x`scale_factor` bilinearly; {block: (B, 4H, 4W)}."""
    last = {}
    for name in sam_block_names(model, stages):
        last[int(name.split(".")[1])] = name
    missing = [s for s in stages if s not in last]
    if missing:
        raise ValueError(f"stages {missing} have no SAM block; stages with SAM blocks: {sorted(last)}")
    feats = sam_features(model, images, [last[s] for s in stages])
    return {b: modulator_map(f.modulator, scale_factor) for b, f in feats.items()}


@contextmanager
def mask_heads(model: nn.Module, heads: Mapping[str, Union[int, Sequence[int]]]) -> Iterator[nn.Module]:
    """Zero chosen MHMC heads (their depthwise conv's weight and bias) while the block runs; restore in `finally`.

    A masked head's output is exactly zero, so its channels of the SAA input are zero. The original
    parameters are copied back bit-exactly on exit, also when the body raises.

    Args:
        model: An SMT model.
        heads: `{"stages.0.blocks.1": [0, 2], ...}`: block name -> head indices to zero.
    """
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    targets = []
    for block, hs in heads.items():
        mhmc = _sam(model, block).mhmc
        for h in ([hs] if isinstance(hs, int) else list(hs)):
            if not isinstance(h, int) or not 0 <= h < mhmc.num_heads:
                raise ValueError(f"{block}: head {h!r} does not exist; this block has heads 0..{mhmc.num_heads - 1}")
            targets.extend(p for p in (mhmc.convs[h].weight, mhmc.convs[h].bias) if p is not None)
    try:
        with torch.no_grad():
            for p in targets:
                saved.append((p, p.detach().clone()))
                p.zero_()
        yield model
    finally:
        with torch.no_grad():
            for p, orig in saved:
                p.copy_(orig)


@dataclass(frozen=True)
class LowFrequencyShare:
    """Low-frequency share (see `viz.analysis.spectrum.low_frequency_share`) before and after SAA of one block."""
    block: str
    radius: float
    saa_input: float
    modulator: float


def saa_low_frequency_shares(model: nn.Module, images: torch.Tensor, radius: float = 0.5,
                             blocks: Optional[Sequence[str]] = None) -> list[LowFrequencyShare]:
    """Low-frequency share of the SAA input vs the SAA output (modulator) for each SAM block.

    The quantitative form of SMT's claim that SAA strengthens low-frequency signal: share > input share.

    Args:
        model: SMT in eval mode.
        images: (B, 3, H, W).
        radius: Cut-off in units of pi.
        blocks: SAM block names; default all.
    """
    from .spectrum import low_frequency_share

    feats = sam_features(model, images, blocks)
    return [LowFrequencyShare(b, radius, float(low_frequency_share(f.saa_input, radius)),
                              float(low_frequency_share(f.modulator, radius))) for b, f in feats.items()]
