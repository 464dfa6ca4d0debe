"""How far each token looks: mean attention distance (MSA) and modulation distance (SAM).

Mean attention distance (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, Fig. 7):
for head h, d_h = mean_{b, q} sum_k A[b, h, q, k] * ||p_q - p_k|| * stride, where p are token
centres on the grid and `stride` the tokens' spacing in input pixels.

SAM blocks have no attention. Their "modulation distance" is the same statistic with the attention
row replaced by the normalised gradient mass of the modulator at token q with respect to the block's
input (the effective-receptive-field measure of Luo et al., NeurIPS 2016):

    G_q(p) = sum_c | d(sum_c' m[c', q]) / d x[c, p] |,       x: block input tokens (B, H*W, C)
    d(q)   = sum_p ||p - q|| * stride * G_q(p) / sum_p G_q(p)

averaged over query tokens q and images. Per MHMC head h, the gradient is taken along head h's path
only (d m / d head_h times d head_h / d x), so the head curves show how far each kernel reaches
through SAA; the block value uses the full gradient (the sum of the head paths). Both are in input
pixels, so SAM and MSA blocks share one distance-vs-depth curve: the paper's local-to-global claim.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..capture import capture
from .common import (
    block_index,
    block_names,
    image_batches,
    msa_block_names,
    require_eval,
    sam_block_names,
    sam_module,
    stage_grids,
    stage_stride,
)

__all__ = [
    "BlockDistance", "AttentionSpec", "token_distances", "mean_attention_distance", "gradient_distance",
    "modulation_distance", "fused_attn_disabled", "attention_distances", "smt_attention_specs",
    "vit_attention_specs", "swin_attention_specs", "smt_attention_distances", "smt_modulation_distances",
    "smt_distance_profile", "footprint_mean_distance", "timm_attention_profile", "attention_distance_samples",
]


@dataclass(frozen=True)
class BlockDistance:
    """How far one block looks, in input pixels (or fractions of the image diagonal when normalised).

    Attributes:
        name: Module name of the block (`stages.{i}.blocks.{j}`).
        kind: "msa" (mean attention distance) or "sam" (modulation distance).
        per_head: (heads,) distance of each attention head or MHMC head.
        distance: The block's distance: the mean over heads for MSA, the full gradient's distance for SAM.
        per_image: (M,) the block's distance on each image (mean over queries, and heads for MSA), whose mean
            is `distance`: what an interval over images needs; None where it was not kept.
    """
    name: str
    kind: str
    per_head: torch.Tensor
    distance: float
    per_image: Optional[torch.Tensor] = field(default=None, repr=False, compare=False)

    def interval(self, **kwargs):
        """`distance` with a bootstrap interval over images (`viz.analysis.stats.mean_interval`)."""
        from .stats import mean_interval

        if self.per_image is None:
            raise ValueError(f"{self.name}: no per-image distances kept")
        return mean_interval(self.per_image, **kwargs)


@dataclass(frozen=True)
class AttentionSpec:
    """Where a model's attention weights live and the token grid they act on.

    Attributes:
        module: Name of a module whose output is the softmax weights (B', heads, N, N).
        grid_hw: Token grid of the N (spatial) tokens, e.g. (14, 14), or a window (7, 7) for Swin.
        stride: Token spacing in input pixels.
        num_prefix_tokens: Leading non-spatial tokens (ViT class token) dropped before measuring.
    """
    module: str
    grid_hw: tuple[int, int]
    stride: float
    num_prefix_tokens: int = 0


def token_distances(grid_hw: tuple[int, int], stride: float = 1.0, dtype=torch.float64, device=None) -> torch.Tensor:
    """Euclidean distance between the centres of all token pairs of a row-major grid, times `stride`: (N, N)."""
    h, w = (int(v) for v in grid_hw)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=dtype, device=device), torch.arange(w, dtype=dtype, device=device),
                            indexing="ij")
    pos = torch.stack([yy.flatten(), xx.flatten()], dim=1)  # (N, 2)
    return torch.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1)) * stride  # exact (cdist may use a matmul)


def mean_attention_distance(attn: torch.Tensor, grid_hw: tuple[int, int], stride: float = 1.0, *,
                            normalize: bool = False, num_prefix_tokens: int = 0) -> torch.Tensor:
    """Mean attention distance per head (ViT paper, Fig. 7).

    d_h = mean_{b, q} sum_k A[b, h, q, k] * ||p_q - p_k|| * stride.

    Args:
        attn: Softmax attention weights (B, heads, N, N), rows summing to 1.
        grid_hw: Token grid (H, W) of the spatial tokens, row-major; H * W = N - num_prefix_tokens.
        stride: Pixels between neighbouring tokens (16 for ViT-B/16; 2**(i+2) for SMT stage i).
        normalize: Divide by the image diagonal, stride * sqrt(H^2 + W^2).
        num_prefix_tokens: Prefix tokens (class token) to drop from queries and keys; each remaining row
            is renormalised to sum to 1 over the spatial keys.

    Returns:
        (heads,) float64.
    """
    return _attention_distance_rows(attn, grid_hw, stride, normalize=normalize,
                                    num_prefix_tokens=num_prefix_tokens).mean(0)


def _attention_distance_rows(attn: torch.Tensor, grid_hw: tuple[int, int], stride: float = 1.0, *,
                             normalize: bool = False, num_prefix_tokens: int = 0) -> torch.Tensor:
    """`mean_attention_distance` of each of the B rows (images, or Swin windows): (B, heads)."""
    if attn.ndim != 4 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"attention weights must be (B, heads, N, N), got {tuple(attn.shape)}")
    h, w = (int(v) for v in grid_hw)
    n = attn.shape[-1] - num_prefix_tokens
    if h * w != n:
        raise ValueError(f"grid_hw={(h, w)} holds {h * w} tokens but the attention has {n} spatial tokens "
                         f"({attn.shape[-1]} minus {num_prefix_tokens} prefix tokens); pass the real grid")
    a = attn[..., num_prefix_tokens:, num_prefix_tokens:].double()
    if num_prefix_tokens:
        a = a / a.sum(-1, keepdim=True).clamp(min=1e-30)
    d = token_distances((h, w), stride, device=a.device)
    out = (a * d).sum(-1).mean(dim=2)  # (B, heads)
    return out / (stride * math.hypot(h, w)) if normalize else out


def footprint_mean_distance(k: int, stride: float = 1.0) -> float:
    """Mean Euclidean distance from the centre over a k x k footprint (the reference for one uniform k x k conv)."""
    r = torch.arange(k, dtype=torch.float64) - k // 2
    return float(torch.sqrt(r[:, None] ** 2 + r[None, :] ** 2).mean() * stride)


def _queries(grid_hw: tuple[int, int], queries, seed: int) -> list[tuple[int, int]]:
    h, w = grid_hw
    if queries is None:
        return [(i, j) for i in range(h) for j in range(w)]
    if isinstance(queries, int):
        if queries < 1:
            raise ValueError(f"queries={queries}: give a positive number of query tokens, a list of (i, j) or None")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(h * w, generator=g)[: min(queries, h * w)].tolist()
        return [(i // w, i % w) for i in sorted(idx)]
    out = [(int(i), int(j)) for i, j in queries]
    bad = [q for q in out if not (0 <= q[0] < h and 0 <= q[1] < w)]
    if bad:
        raise ValueError(f"query tokens {bad[:3]} lie outside the {h}x{w} grid")
    return out


def _weighted_distance(mass: torch.Tensor, q: tuple[int, int], stride: float) -> torch.Tensor:
    """mass (B, H, W) >= 0 -> (B,) distance-weighted mean distance from q."""
    b, h, w = mass.shape
    yy = torch.arange(h, dtype=torch.float64, device=mass.device)[:, None] - q[0]
    xx = torch.arange(w, dtype=torch.float64, device=mass.device)[None, :] - q[1]
    d = torch.sqrt(yy ** 2 + xx ** 2) * stride
    m = mass.double()
    total = m.sum(dim=(1, 2))
    if (total == 0).any():
        raise RuntimeError(f"no gradient reaches the input from query token {q}: the output does not depend on it")
    return (m * d).sum(dim=(1, 2)) / total


def gradient_distance(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, stride: float = 1.0, *,
                      queries: Union[None, int, Sequence[tuple[int, int]]] = None, seed: int = 0) -> torch.Tensor:
    """Gradient-mass distance of a map-to-map function (the modulation-distance statistic, any `fn`).

    For each query q: G_q(p) = sum_c |d(sum_c' y[b, c', q]) / d x[b, c, p]|, d(q) = sum_p ||p - q|| stride
    G_q(p) / sum_p G_q(p); the result is the mean over queries and batch.

    Args:
        fn: (B, C, H, W) -> (B, C', H, W), each batch element independent of the others.
        x: Input map (B, C, H, W).
        stride: Pixels between grid points.
        queries: None (every position), a count (random positions, `seed`), or a list of (i, j).
        seed: Seed for random queries.
    """
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    if y.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"fn must keep the grid: input {tuple(x.shape)}, output {tuple(y.shape)}")
    qs = _queries(tuple(x.shape[-2:]), queries, seed)
    out = []
    for q in qs:
        (g,) = torch.autograd.grad(y[:, :, q[0], q[1]].sum(), x, retain_graph=True)
        out.append(_weighted_distance(g.abs().sum(1), q, stride))
    return torch.stack(out).mean()


def modulation_distance(block: nn.Module, x: torch.Tensor, grid_hw: tuple[int, int], stride: float, *,
                        queries: Union[None, int, Sequence[tuple[int, int]]] = 64, seed: int = 0
                        ) -> tuple[torch.Tensor, float, int]:
    """Modulation distance of one SAM block, per MHMC head and for the block (definition: module docstring).

    Args:
        block: An SMT block with a SAM token mixer (`block.norm1`, `block.attn.mhmc`, ...), in eval mode.
        x: The block's input tokens (B, H*W, C).
        grid_hw: Token grid (H, W).
        stride: Pixels between tokens (2**(i+2) in stage i).
        queries: None (all tokens), a count of random tokens (`seed`), or a list of (i, j).

    Returns:
        (per-head distances (N,), block distance, number of (image, query) pairs), in pixels.
    """
    per_head, per_image, pairs = _modulation_distance(block, x, grid_hw, stride, queries=queries, seed=seed)
    return per_head, float(per_image.mean()), pairs


def _modulation_distance(block: nn.Module, x: torch.Tensor, grid_hw: tuple[int, int], stride: float, *,
                         queries, seed: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """`modulation_distance` with the block distance per image (B,) (mean over queries) instead of its mean."""
    h, w = grid_hw
    if x.ndim != 3 or x.shape[1] != h * w:
        raise ValueError(f"block input must be (B, H*W, C) with H*W = {h * w}, got {tuple(x.shape)}")
    x = x.detach().clone().requires_grad_(True)
    nh = block.attn.mhmc.num_heads
    with torch.enable_grad(), capture(block.attn, ["mhmc.heads.*", "modulator"], to=None, keep_graph=True) as cap:
        block.attn(block.norm1(x), h, w)
    heads = [cap[f"mhmc.heads.{i}"] for i in range(nh)]
    m = cap["modulator"]  # (B, C, H, W)
    per_head, whole = [], []
    for q in _queries((h, w), queries, seed):
        gh = torch.autograd.grad(m[:, :, q[0], q[1]].sum(), heads, retain_graph=True)
        gx = [torch.autograd.grad(heads[i], x, grad_outputs=gh[i], retain_graph=True)[0] for i in range(nh)]
        per_head.append(torch.stack([_weighted_distance(g.abs().sum(-1).reshape(-1, h, w), q, stride)
                                     for g in gx]))  # (N, B)
        whole.append(_weighted_distance(sum(gx).abs().sum(-1).reshape(-1, h, w), q, stride))  # (B,)
    per_head_t = torch.stack(per_head)  # (Q, N, B)
    pairs = per_head_t.shape[0] * per_head_t.shape[2]
    return per_head_t.mean(dim=(0, 2)), torch.stack(whole).mean(0).detach().cpu(), pairs


@contextmanager
def fused_attn_disabled(model: nn.Module):
    """Set every `fused_attn` attribute (timm attention modules, SMT's MSA) to False; restore on exit.

    timm's ViT and Swin compute attention with `F.scaled_dot_product_attention` when `fused_attn` is
    True, and then the weights never exist as a tensor. SMT falls back by itself when its tap is hooked.
    """
    saved = [(m, m.fused_attn) for m in model.modules() if hasattr(m, "fused_attn")]
    try:
        for m, _ in saved:
            m.fused_attn = False
        yield model
    finally:
        for m, v in saved:
            m.fused_attn = v


def attention_distances(model: nn.Module, images, specs: Sequence[AttentionSpec], *, batch_size: int = 8,
                        normalize: bool = False, progress: bool = True) -> dict[str, torch.Tensor]:
    """Mean attention distance per head for each `spec` over an image set: {module: (heads,)}
    (the mean over images of `attention_distance_samples`; arguments as there)."""
    samples = attention_distance_samples(model, images, specs, batch_size=batch_size, normalize=normalize,
                                         progress=progress)
    return {k: v.mean(0) for k, v in samples.items()}


def attention_distance_samples(model: nn.Module, images, specs: Sequence[AttentionSpec], *, batch_size: int = 8,
                               normalize: bool = False, progress: bool = True) -> dict[str, torch.Tensor]:
    """Mean attention distance per image and head for each `spec` over an image set: {module: (M, heads)}.

    Args:
        model: Any model in eval mode (timm ViT, Swin, SMT); fused attention is turned off while running.
        images: (M, C, H, W) tensor (split into `batch_size`) or a re-iterable of batches / (batch, label)
            (a list or DataLoader), read once.
        specs: Where the attention weights are (`vit_attention_specs`, `swin_attention_specs`, `smt_attention_specs`).
        normalize: Relative to the image diagonal.
        progress: tqdm progress bar over batches.
    """
    require_eval(model, "attention_distances")
    parts: dict[str, list] = {}
    batches = image_batches(images, batch_size)
    with fused_attn_disabled(model), torch.no_grad():
        for batch in tqdm(batches, desc="attention distance", disable=not progress):
            with capture(model, [s.module for s in specs], to=None) as cap:
                model(batch)
            b = batch.shape[0]
            for s in specs:
                calls = []
                for a in cap.all(s.module):  # Swin: (B * windows, heads, N, N), windows of one image together
                    # mean over windows of each window's distance (mean over its queries) = mean_attention_distance
                    d = _attention_distance_rows(a, s.grid_hw, s.stride, normalize=normalize,
                                                 num_prefix_tokens=s.num_prefix_tokens)  # (B * windows, heads)
                    calls.append(d.reshape(b, -1, d.shape[-1]).mean(1))  # (B, heads)
                parts.setdefault(s.module, []).append(torch.stack(calls).sum(0))
    if not parts:
        raise ValueError("the image set is empty")
    return {k: torch.cat(v) for k, v in parts.items()}


def smt_attention_specs(model: nn.Module, image_hw: tuple[int, int]) -> list[AttentionSpec]:
    """AttentionSpecs of every MSA block of an SMT model for inputs of size `image_hw`."""
    grids = stage_grids(model, image_hw)
    return [AttentionSpec(f"{n}.attn.attn_weights", grids[block_index(n)[0]], stage_stride(model, block_index(n)[0]))
            for n in msa_block_names(model)]


def vit_attention_specs(model: nn.Module) -> list[AttentionSpec]:
    """AttentionSpecs for a timm VisionTransformer (`blocks.{i}.attn.attn_drop` carries the softmax weights)."""
    grid = tuple(model.patch_embed.grid_size)
    stride = model.patch_embed.patch_size[0]
    return [AttentionSpec(f"blocks.{i}.attn.attn_drop", grid, stride, model.num_prefix_tokens)
            for i in range(len(model.blocks))]


def swin_attention_specs(model: nn.Module) -> list[AttentionSpec]:
    """AttentionSpecs for a timm SwinTransformer (`layers.{i}.blocks.{j}.attn.softmax`, one window per row block)."""
    specs = []
    for i, layer in enumerate(model.layers):
        stride = model.feature_info[i]["reduction"]
        for j, blk in enumerate(layer.blocks):
            specs.append(AttentionSpec(f"layers.{i}.blocks.{j}.attn.softmax", tuple(blk.window_size), stride))
    return specs


def smt_modulation_distances(model: nn.Module, images, *, queries: Union[None, int] = 64, seed: int = 0,
                             batch_size: int = 8, blocks: Optional[Sequence[str]] = None, progress: bool = True
                             ) -> list[BlockDistance]:
    """Modulation distance (module docstring) of every SAM block of an SMT model over an image set.

    Args:
        model: SMT in eval mode.
        images: (M, 3, H, W) or an iterable of batches.
        queries: Query tokens per block and batch: a count (random, seeded) or None for every token.
        seed: Seed of the query choice (each block and batch draws from seed + its index).
        batch_size: Images per forward pass.
        blocks: SAM block names; default all.
        progress: tqdm over batches.
    """
    require_eval(model, "smt_modulation_distances")
    blocks = list(blocks) if blocks is not None else sam_block_names(model)
    for b in blocks:
        sam_module(model, b)
    per_head_sum = {b: 0.0 for b in blocks}   # sums over (image, query) pairs
    per_image: dict[str, list] = {b: [] for b in blocks}
    pairs = {b: 0 for b in blocks}
    batches = image_batches(images, batch_size)
    for bi, batch in enumerate(tqdm(batches, desc="modulation distance", disable=not progress)):
        with torch.no_grad(), capture(model, blocks, inputs=True) as cap:
            model(batch)
        for k, b in enumerate(blocks):
            x, h, w = cap[b]
            ph, whole, n = _modulation_distance(model.get_submodule(b), x, (int(h), int(w)),
                                                stage_stride(model, block_index(b)[0]), queries=queries,
                                                seed=seed + 1000 * bi + k)
            per_head_sum[b] = per_head_sum[b] + ph * n
            per_image[b].append(whole)
            pairs[b] += n
    # every image of a batch has the same queries, so the mean over (image, query) pairs is the mean over images
    return [BlockDistance(b, "sam", per_head_sum[b] / pairs[b], float(torch.cat(per_image[b]).mean()),
                          torch.cat(per_image[b])) for b in blocks]


def smt_attention_distances(model: nn.Module, images, *, batch_size: int = 8, normalize: bool = False,
                            progress: bool = True) -> list[BlockDistance]:
    """Mean attention distance per head of every MSA block of an SMT model, at the images' size."""
    first = images[0:1] if isinstance(images, torch.Tensor) else next(iter(image_batches(images, batch_size)))[0:1]
    specs = smt_attention_specs(model, tuple(first.shape[-2:]))
    res = attention_distance_samples(model, images, specs, batch_size=batch_size, normalize=normalize,
                                     progress=progress)
    return [_msa_distance(s.module.rsplit(".attn.", 1)[0], res[s.module]) for s in specs]


def _msa_distance(name: str, samples: torch.Tensor) -> BlockDistance:
    """An MSA block's distance from its (M, heads) per-image samples: per head, block, and per image."""
    return BlockDistance(name, "msa", samples.mean(0), float(samples.mean()), samples.mean(1))


def smt_distance_profile(model: nn.Module, images, *, queries: Union[None, int] = 64, seed: int = 0,
                         batch_size: int = 8, progress: bool = True) -> list[BlockDistance]:
    """Distance vs depth over all blocks of an SMT model: modulation distance for SAM blocks, mean attention
    distance for MSA blocks, in input pixels, in depth order (the local-to-global curve)."""
    sam = smt_modulation_distances(model, images, queries=queries, seed=seed, batch_size=batch_size,
                                   progress=progress)
    msa = smt_attention_distances(model, images, batch_size=batch_size, progress=progress)
    order = {n: i for i, n in enumerate(block_names(model))}
    return sorted(sam + msa, key=lambda r: order[r.name])


def timm_attention_profile(model: nn.Module, images, *, batch_size: int = 8, normalize: bool = False,
                           progress: bool = True) -> list[BlockDistance]:
    """Mean attention distance per head of every block of a timm ViT or Swin (or SMT's MSA blocks), in depth
    order, as `BlockDistance` results (kind "msa"), at the images' size.

    ViT attends over the whole token grid; Swin within its windows, so its distances are bounded by
    the window. Models without attention (ConvNeXt) get a ValueError.
    """
    if hasattr(model, "stage_block_types"):
        return smt_attention_distances(model, images, batch_size=batch_size, normalize=normalize, progress=progress)
    if hasattr(model, "blocks") and hasattr(model, "patch_embed"):
        specs = vit_attention_specs(model)
        suffix = ".attn.attn_drop"
    elif hasattr(model, "layers"):
        specs = swin_attention_specs(model)
        suffix = ".attn.softmax"
    else:
        raise ValueError(f"{type(model).__name__} has no attention to measure (attention distance needs a ViT, "
                         f"Swin or SMT model)")
    res = attention_distance_samples(model, images, specs, batch_size=batch_size, normalize=normalize,
                                     progress=progress)
    return [_msa_distance(s.module[:-len(suffix)], res[s.module]) for s in specs]
