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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..capture import capture
from .common import block_index, block_names, require_eval, sam_block_names, sam_module

__all__ = ["SAMFeatures", "SMTForward", "smt_forward", "sam_features", "regroup_heads", "head_activation_maps",
           "group_channel_maps", "modulator_map", "last_sam_blocks", "authors_modulator_maps", "mask_heads"]


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


@dataclass(frozen=True)
class SMTForward:
    """One captured forward pass of an SMT model (raw tensors at layer resolution).

    Attributes:
        logits: (B, classes) model output.
        block_outputs: Block name -> output tokens (B, H*W, C), in depth order (empty when not asked for).
        block_kinds: Block name -> "sam" or "msa", for every block of the model.
        stage_outputs: Each stage's output map (B, C, H, W).
        sam: SAM block name -> its `SAMFeatures` (heads, SAA input, modulator).
        sam_inputs: SAM block name -> its input tokens (B, H*W, C) (when asked for).
    """
    logits: torch.Tensor
    block_outputs: dict[str, torch.Tensor]
    block_kinds: dict[str, str]
    stage_outputs: tuple[torch.Tensor, ...]
    sam: dict[str, SAMFeatures]
    sam_inputs: dict[str, torch.Tensor] = field(default_factory=dict)

    def grid(self, block: str) -> tuple[int, int]:
        """The token grid (H, W) of a block: its stage's output grid."""
        h, w = self.stage_outputs[block_index(block)[0]].shape[-2:]
        return int(h), int(w)


def smt_forward(
        model: nn.Module,
        images: torch.Tensor,
        sam_blocks: Optional[Sequence[str]] = None,
        *,
        block_outputs: bool = True,
        block_inputs: bool = False,
        mask: Optional[Mapping[str, Sequence[int]]] = None,
        to: Optional[str] = "cpu",
) -> SMTForward:
    """Run `images` once through an SMT model and record what every analysis of a block needs.

    One forward pass feeds the modulator maps, the SAM features, the Fourier profile and the
    low-frequency shares, so a figure set captures once per image set.

    Args:
        model: An SMT model in eval mode.
        images: (B, 3, H, W), normalised as the model expects.
        sam_blocks: SAM blocks whose taps are recorded; default every SAM block, `[]` for none.
        block_outputs: Also record every block's output tokens.
        block_inputs: Also record the input tokens of the `sam_blocks` (for `erf.block_head_erf`).
        mask: Heads to zero while running, `{block: [head, ...]}` (see `mask_heads`).
        to: Device for the recorded tensors.
    """
    require_eval(model, "smt_forward")
    blocks = list(sam_blocks) if sam_blocks is not None else sam_block_names(model)
    heads = {b: sam_module(model, b).mhmc.num_heads for b in blocks}
    kinds = {n: t for n, t in zip(block_names(model), (t for ts in model.stage_block_types for t in ts))}
    patterns = [f"{b}.attn.{t}" for b in blocks for t in ("mhmc.heads.*", "saa_input", "modulator")]
    patterns += [f"stages.{i}" for i in range(len(model.stages))]
    patterns += list(kinds) if block_outputs else []
    with ExitStack() as stack:
        if mask:
            stack.enter_context(mask_heads(model, mask))
        stack.enter_context(torch.no_grad())
        cap = stack.enter_context(capture(model, patterns, to=to))
        ins = stack.enter_context(capture(model, blocks, to=to, inputs=True)) if block_inputs and blocks else None
        logits = model(images)
    sam = {b: SAMFeatures(
        block=b, kernel_sizes=tuple(sam_module(model, b).mhmc.kernel_sizes),
        heads=tuple(cap[f"{b}.attn.mhmc.heads.{h}"] for h in range(heads[b])),
        saa_input=cap[f"{b}.attn.saa_input"], modulator=cap[f"{b}.attn.modulator"]) for b in blocks}
    return SMTForward(logits=logits.to(to) if to is not None else logits,
                      block_outputs={n: cap[n] for n in kinds} if block_outputs else {}, block_kinds=kinds,
                      stage_outputs=tuple(cap[f"stages.{i}"] for i in range(len(model.stages))), sam=sam,
                      sam_inputs={b: ins[b][0] for b in blocks} if ins is not None else {})


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
    return smt_forward(model, images, blocks, block_outputs=False, mask=mask, to=to).sam


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


def last_sam_blocks(model: nn.Module, stages: Sequence[int] = (0, 1, 2)) -> dict[int, str]:
    """The last SAM block of each stage in `stages` (the blocks of the authors' modulator figure): {stage: name}."""
    last = {}
    for name in sam_block_names(model, stages):
        last[block_index(name)[0]] = name
    missing = [s for s in stages if s not in last]
    if missing:
        raise ValueError(f"stages {missing} have no SAM block; stages with SAM blocks: {sorted(last)}")
    return {s: last[s] for s in stages}


def authors_modulator_maps(model: nn.Module, images: torch.Tensor, stages: Sequence[int] = (0, 1, 2),
                           scale_factor: float = 4.0) -> dict[str, torch.Tensor]:
    """The authors' modulator figure: for the last SAM block of each stage in `stages` (stages 1-3 of the
    paper are indices 0-2), mean_c |modulator| upsampled x`scale_factor` bilinearly; {block: (B, 4H, 4W)}."""
    feats = sam_features(model, images, list(last_sam_blocks(model, stages).values()))
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
        mhmc = sam_module(model, block).mhmc
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
