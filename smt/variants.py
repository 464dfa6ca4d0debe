"""SMT's variants and the rules that turn `SMT`'s arguments into the settings of each stage.

`VARIANTS` holds the whole architecture of each registered variant (Lin et al., "Scale-Aware Modulation
Meet Transformer", ICCV 2023, and this project's `smt_nano` and `test_smt`); `resolve_stages` is how `SMT`
reads its per-stage arguments (one value for all stages or one per stage, the block pattern of each stage,
the default MHMC kernels) and checks them. The checkpoint code compares a file's weights with a variant
through the same function, without building a model.

A leaf module (it imports nothing from the rest of `smt`), so that the model and the checkpoint code
can both use it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

__all__ = ["BLOCK_TYPES", "STAGE_PATTERNS", "VARIANTS", "StageConfig", "default_kernel_sizes", "expand_block_types",
           "resolve_stages"]

BLOCK_TYPES = ("sam", "msa")
STAGE_PATTERNS = ("sam", "msa", "mix")

#: What the released variants share: SAM, SAM, mix (SAM and MSA alternating), MSA; N = 4 MHMC heads of
#: the default kernels 3, 5, 7, 9; SAA expanding 2x; biases in the projections; no layer scale.
_RELEASED = dict(block_types=("sam", "sam", "mix", "msa"), sam_heads=4, kernel_sizes=None, expand_ratio=2.0, saa=True,
                 qkv_bias=True, layer_scale=None)

#: Architecture of each registered variant: the arguments `SMT` gets before user overrides.
VARIANTS: dict[str, dict[str, Any]] = {
    "smt_tiny": dict(_RELEASED, embed_dims=(64, 128, 256, 512), depths=(2, 2, 8, 1), mlp_ratios=(4, 4, 4, 2),
                     msa_heads=(2, 4, 8, 16), stem_kernel=3),
    "smt_small": dict(_RELEASED, embed_dims=(64, 128, 256, 512), depths=(3, 4, 18, 2), mlp_ratios=(4, 4, 4, 2),
                      msa_heads=(2, 4, 8, 16), stem_kernel=3),
    "smt_base": dict(_RELEASED, embed_dims=(64, 128, 256, 512), depths=(4, 6, 28, 2), mlp_ratios=(8, 6, 4, 2),
                     msa_heads=(2, 4, 8, 16), stem_kernel=7),
    "smt_large": dict(_RELEASED, embed_dims=(96, 192, 384, 768), depths=(4, 6, 28, 4), mlp_ratios=(8, 6, 4, 2),
                      msa_heads=(2, 4, 8, 16), stem_kernel=7, layer_scale=1e-4),
    "smt_nano": dict(_RELEASED, embed_dims=(32, 64, 128, 256), depths=(2, 2, 4, 1), mlp_ratios=(4, 4, 4, 2),
                     msa_heads=(1, 2, 4, 8), stem_kernel=3),
    "test_smt": dict(_RELEASED, embed_dims=(16, 32, 64, 128), depths=(1, 1, 2, 1), mlp_ratios=(2, 2, 2, 2),
                     msa_heads=(1, 2, 2, 4), stem_kernel=3),
}


def _stage(stage: int) -> str:
    """A stage index as an error names it: the paper's 1-based number and the module (stages.{i})."""
    return f"stage {stage + 1} (stages.{stage})"


def default_kernel_sizes(num_heads: int) -> tuple[int, ...]:
    """The paper's MHMC kernels for `num_heads` heads: 3, 5, 7, ... (3 + 2h for head h)."""
    return tuple(3 + 2 * h for h in range(max(num_heads, 0)))


def expand_block_types(pattern: Union[str, Sequence[str]], depth: int, stage: int) -> tuple[str, ...]:
    """Block types of one stage from "sam", "msa", "mix" (even index SAM, odd MSA) or an explicit list."""
    if isinstance(pattern, str):
        if pattern not in STAGE_PATTERNS:
            raise ValueError(f"{_stage(stage)}: block type {pattern!r} is not one of {STAGE_PATTERNS}; "
                             f"use 'sam', 'msa', 'mix' or a list of 'sam'/'msa' per block")
        if pattern == "mix":
            return tuple("sam" if j % 2 == 0 else "msa" for j in range(depth))
        return (pattern,) * depth
    types = tuple(pattern)
    if len(types) != depth:
        raise ValueError(f"{_stage(stage)}: {len(types)} block types given for {depth} blocks; give one per block")
    for j, t in enumerate(types):
        if t not in BLOCK_TYPES:
            raise ValueError(f"{_stage(stage)}, block {j}: block type {t!r} is neither 'sam' nor 'msa'; "
                             f"use one of {BLOCK_TYPES}")
    return types


@dataclass(frozen=True)
class StageConfig:
    """The settings of one stage, as `SMT` builds it.

    Attributes:
        dim: Channels.
        block_types: "sam" or "msa" for each block (its length is the depth).
        sam_heads: MHMC heads N of the SAM blocks.
        kernel_sizes: One MHMC kernel per head.
        expand_ratio: SAA's hidden width over `dim`.
        saa: SAA on (off is an ablation).
        msa_heads: Attention heads of the MSA blocks.
        mlp_ratio: MLP hidden width over `dim`.
    """

    dim: int
    block_types: tuple[str, ...]
    sam_heads: int
    kernel_sizes: tuple[int, ...]
    expand_ratio: float
    saa: bool
    msa_heads: int
    mlp_ratio: float


def _per_stage(name: str, value: Any, num_stages: int) -> tuple:
    if not isinstance(value, (list, tuple)):
        return (value,) * num_stages
    if len(value) != num_stages:
        raise ValueError(f"{name} has {len(value)} entries but the model has {num_stages} stages: "
                         f"give one value per stage, e.g. {name}={tuple(value[:1]) * num_stages}")
    return tuple(value)


def _check_stage(stage: int, dim: int, types: Sequence[str], sam_heads: int, kernels: Sequence[int],
                 msa_heads: int) -> None:
    if "sam" in types:
        if sam_heads < 1 or sam_heads > dim:
            raise ValueError(f"{_stage(stage)}: sam_heads={sam_heads} but the stage has {dim} channels; "
                             f"use between 1 and {dim} heads")
        if dim % sam_heads:
            ok = [n for n in range(1, min(dim, 16) + 1) if dim % n == 0]
            raise ValueError(f"{_stage(stage)}: {dim} channels are not divisible by sam_heads={sam_heads}; "
                             f"choose a head count that divides {dim}, e.g. {ok}")
        if len(kernels) != sam_heads:
            raise ValueError(f"{_stage(stage)}: {len(kernels)} kernel sizes for {sam_heads} heads; "
                             f"give one odd kernel size per head")
        for h, k in enumerate(kernels):
            if not isinstance(k, int) or k < 1 or k % 2 == 0:
                raise ValueError(f"{_stage(stage)}, head {h}: kernel size {k!r} must be a positive odd integer "
                                 f"(padding k//2 keeps the grid), e.g. {default_kernel_sizes(h + 1)[h]}")
    if "msa" in types:
        if msa_heads < 1 or dim % msa_heads:
            raise ValueError(f"{_stage(stage)}: {dim} channels are not divisible by msa_heads={msa_heads}; "
                             f"choose an attention head count that divides {dim}")


def resolve_stages(
        embed_dims: Sequence[int],
        depths: Sequence[int],
        block_types: Union[str, Sequence[Union[str, Sequence[str]]]],
        sam_heads: Union[int, Sequence[int]],
        kernel_sizes: Optional[Sequence[Optional[Sequence[int]]]],
        expand_ratio: Union[float, Sequence[float]],
        saa: Union[bool, Sequence[bool]],
        msa_heads: Union[int, Sequence[int]],
        mlp_ratios: Union[float, Sequence[float]],
) -> tuple[StageConfig, ...]:
    """The settings of every stage from `SMT`'s arguments (see `SMT` for their meaning), checked.

    Each argument but `embed_dims` and `depths` is one value for all stages or a sequence of one per stage;
    `kernel_sizes` (or a stage's entry) None means `default_kernel_sizes(sam_heads)`.

    Raises:
        ValueError: The arguments do not describe an SMT; the message says what to change.
    """
    num_stages = len(embed_dims)
    if len(depths) != num_stages:
        raise ValueError(f"depths has {len(depths)} entries for {num_stages} embed_dims; give one depth per stage")
    block_types = _per_stage("block_types", block_types, num_stages)
    sam_heads = _per_stage("sam_heads", sam_heads, num_stages)
    kernel_sizes = _per_stage("kernel_sizes", (None,) * num_stages if kernel_sizes is None else kernel_sizes,
                              num_stages)
    expand_ratio = _per_stage("expand_ratio", expand_ratio, num_stages)
    saa = _per_stage("saa", saa, num_stages)
    msa_heads = _per_stage("msa_heads", msa_heads, num_stages)
    mlp_ratios = _per_stage("mlp_ratios", mlp_ratios, num_stages)
    stages = []
    for i, dim in enumerate(embed_dims):
        types = expand_block_types(block_types[i], depths[i], i)
        kernels = tuple(kernel_sizes[i]) if kernel_sizes[i] is not None else default_kernel_sizes(sam_heads[i])
        _check_stage(i, dim, types, sam_heads[i], kernels, msa_heads[i])
        stages.append(StageConfig(dim, types, sam_heads[i], kernels, expand_ratio[i], saa[i], msa_heads[i],
                                  mlp_ratios[i]))
    return tuple(stages)
