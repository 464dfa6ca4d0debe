"""SMT structure shared by the analyses: the eval-mode check, block names, the SAM-block lookup and stage grids.

A leaf module: the analyses import it, it imports none of them. Block names are
`stages.{i}.blocks.{j}` (stage i is "stage i + 1" in the paper's words).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn as nn

__all__ = ["require_eval", "require_smt", "block_index", "block_names", "sam_block_names", "msa_block_names",
           "sam_module", "stage_grid", "stage_grids", "stage_stride", "tokens_to_map", "image_batches"]


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


def require_smt(model: nn.Module, what: str) -> None:
    """Raise unless `model` is an SMT model (it has `stage_block_types`)."""
    if getattr(model, "stage_block_types", None) is None:
        raise TypeError(f"{what} needs an SMT model; {type(model).__name__} is not one (no stage_block_types). "
                        f"Build one with timm.create_model('smt_tiny') after `import smt`")


def block_index(name: str) -> tuple[int, int]:
    """`"stages.2.blocks.3"` (optionally followed by `.attn...`) -> (stage 2, block 3)."""
    parts = name.split(".")
    if len(parts) < 4 or parts[0] != "stages" or parts[2] != "blocks":
        raise ValueError(f"{name!r} is not an SMT block name; block names read 'stages.{{i}}.blocks.{{j}}'")
    return int(parts[1]), int(parts[3])


def block_names(model: nn.Module, kind: Optional[str] = None) -> list[str]:
    """Names of every block (or of the `kind` "sam"/"msa" blocks), in depth order."""
    require_smt(model, "block_names")
    return [f"stages.{i}.blocks.{j}" for i, ts in enumerate(model.stage_block_types) for j, t in enumerate(ts)
            if kind is None or t == kind]


def sam_block_names(model: nn.Module, stages: Optional[Sequence[int]] = None) -> list[str]:
    """Names `stages.{i}.blocks.{j}` of the SAM blocks, in depth order (optionally of some stages only)."""
    names = block_names(model, "sam")
    return names if stages is None else [n for n in names if block_index(n)[0] in stages]


def msa_block_names(model: nn.Module) -> list[str]:
    """Names `stages.{i}.blocks.{j}` of the MSA blocks, in depth order."""
    return block_names(model, "msa")


def sam_module(model: nn.Module, block: str) -> nn.Module:
    """The SAM token mixer (`block.attn`, which has `mhmc`) of a SAM block; a clear error for anything else."""
    try:
        attn = model.get_submodule(block + ".attn")
    except AttributeError:
        raise ValueError(f"{block!r} is not a block of this model; SAM blocks: {sam_block_names(model)}") from None
    if not hasattr(attn, "mhmc"):
        raise ValueError(f"{block!r} is not a SAM block (it has no MHMC); SAM blocks: {sam_block_names(model)}")
    return attn


def _conv_out(n: int, m: nn.Conv2d) -> int:
    return (n + 2 * m.padding[0] - m.dilation[0] * (m.kernel_size[0] - 1) - 1) // m.stride[0] + 1


def stage_grid(model: nn.Module, stage: int, input_hw: tuple[int, int]) -> tuple[int, int]:
    """Token grid (H, W) of SMT stage `stage` for an input size, from the convolutions' arithmetic."""
    require_smt(model, "stage_grid")
    if not -len(model.stages) <= stage < len(model.stages):
        raise ValueError(f"stage={stage}: the model has stages 0..{len(model.stages) - 1}")
    stage %= len(model.stages)
    hw = []
    for n in input_hw:
        n = _conv_out(_conv_out(int(n), model.stem.conv1), model.stem.conv2)
        for i in range(1, stage + 1):
            n = _conv_out(n, model.stages[i].downsample.proj)
        hw.append(n)
    return hw[0], hw[1]


def stage_grids(model: nn.Module, input_hw: tuple[int, int]) -> list[tuple[int, int]]:
    """Token grid of every stage for an input size."""
    return [stage_grid(model, i, input_hw) for i in range(len(model.stages))]


def stage_stride(model: nn.Module, stage: int) -> int:
    """Pixels between neighbouring tokens of stage `stage` (its `feature_info` reduction)."""
    return int(model.feature_info[stage]["reduction"])


def tokens_to_map(x: torch.Tensor, grid_hw: tuple[int, int], num_prefix_tokens: int = 0) -> torch.Tensor:
    """Token sequence (B, N, C) to a map (B, C, H, W) on an explicit grid; never guessed from sqrt(N).

    Args:
        x: Tokens (B, N, C), row-major over the grid after `num_prefix_tokens` (e.g. a ViT class token).
        grid_hw: The token grid (H, W); H * W must equal N - num_prefix_tokens.
        num_prefix_tokens: Leading non-spatial tokens to drop.
    """
    if x.ndim != 3:
        raise ValueError(f"tokens must be (B, N, C), got shape {tuple(x.shape)}")
    h, w = (int(v) for v in grid_hw)
    n = x.shape[1] - num_prefix_tokens
    if h * w != n:
        raise ValueError(f"tokens of shape {tuple(x.shape)} do not fit the grid {h}x{w}: grid_hw={(h, w)} holds "
                         f"{h * w} tokens but x has {n} spatial tokens "
                         f"({x.shape[1]} minus {num_prefix_tokens} prefix tokens); pass the model's real token grid "
                         f"(e.g. patch_embed.grid_size) and num_prefix_tokens")
    x = x[:, num_prefix_tokens:]
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


def image_batches(images, batch_size: int):
    """Batches of an (M, C, H, W) tensor, or the batches of a re-iterable (a list, a DataLoader; (batch, label)
    pairs give their batch), lazily, with a length. A one-shot iterator is refused: image sets may be read twice."""
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"images must be (M, C, H, W), got {tuple(images.shape)}")
        return list(images.split(batch_size))
    if iter(images) is images:
        raise TypeError("images is a one-shot iterator; pass a tensor, a list of batches or a DataLoader "
                        "(the image set may be read more than once)")

    class _Lazy:
        def __len__(self):
            return len(images)

        def __iter__(self):
            return (b[0] if isinstance(b, (tuple, list)) else b for b in images)
    return _Lazy()
