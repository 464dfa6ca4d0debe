"""Effective receptive fields (ERF), as measured by RepLKNet.

Ding et al., "Scaling Up Your Kernels to 31x31: Revisiting Large Kernel Design in CNNs", CVPR 2022
(the same measure is used by SLaK and VMamba). For a feature map (B, C, h, w), take the feature
vector at the central position (h//2, w//2), apply ReLU and sum it over channels and images; the
ERF is the gradient of that scalar with respect to the (normalised) input image, passed through
ReLU, summed over the colour channels and averaged over images:

    ERF(y, x) = mean_b sum_c ReLU( d/dI[b, c, y, x]  sum_k ReLU(F[b, k, h//2, w//2]) )

`effective_receptive_field` returns that raw (H, W) map. `erf_display` is the display transform
(log10(x + 1), then divided by its maximum) and `high_contribution_area_ratio` the area measure,
computed on the display-transformed map as RepLKNet does.

Differences from RepLKNet's script: a whole batch is differentiated in one backward pass (images do
not interact in eval mode, so this equals the per-image loop); images whose gradient holds NaN are
skipped and counted (`ERFResult.num_skipped`) instead of silently dropped; the area search starts at
side 1 (RepLKNet starts at 3) and ends at the largest centred square that fits.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np
import torch
import torch.nn as nn

from ..capture import capture
from .common import image_batches, require_eval, sam_module

FeatureFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]

__all__ = ["ERFResult", "effective_receptive_field", "erf_display", "high_contribution_area_ratio",
           "largest_square_area_ratio", "area_ratio_intervals",
           "final_feature_map", "stage_feature_map", "stage_erfs", "head_erf", "block_head_erf"]


@dataclass(frozen=True)
class ERFResult:
    """An ERF accumulated over images.

    Attributes:
        total: Sum over the counted images of each image's (H, W) contribution map (float64).
        num_images: Images counted.
        num_skipped: Images skipped because their gradient held NaN.
    """

    total: torch.Tensor
    num_images: int
    num_skipped: int = 0
    per_image: Optional[torch.Tensor] = field(default=None, repr=False, compare=False)  # (M, H, W) when kept

    @property
    def erf(self) -> torch.Tensor:
        """The mean (H, W) map over counted images."""
        if self.num_images == 0:
            raise ValueError(f"no image was counted ({self.num_skipped} skipped for NaN gradients)")
        return self.total / self.num_images

    def __add__(self, other: "ERFResult") -> "ERFResult":
        both = self.per_image is not None and other.per_image is not None
        return ERFResult(self.total + other.total, self.num_images + other.num_images,
                         self.num_skipped + other.num_skipped,
                         torch.cat([self.per_image, other.per_image]) if both else None)

    def area_ratio_intervals(self, thresholds: Sequence[float] = (0.2, 0.3, 0.5, 0.99), **kwargs) -> dict:
        """{t: Estimate} of the high-contribution area ratio with a bootstrap interval over images
        (`area_ratio_intervals`); needs the per-image maps (`keep_per_image=True`)."""
        if self.per_image is None:
            raise ValueError("this ERF kept no per-image maps; compute it with keep_per_image=True")
        return area_ratio_intervals(self.per_image, thresholds, **kwargs)


def final_feature_map(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The last stage's NCHW feature map: `forward_intermediates` if the model has it, else a 4-D
    `forward_features` output."""
    if hasattr(model, "forward_intermediates"):
        return model.forward_intermediates(x, indices=1, intermediates_only=True)[-1]
    out = model.forward_features(x)
    if out.ndim != 4:
        raise ValueError(f"{type(model).__name__}.forward_features returned shape {tuple(out.shape)}, not NCHW; "
                         f"pass feature_fn returning a (B, C, h, w) map")
    return out


def stage_feature_map(stage: int) -> FeatureFn:
    """A feature function returning stage `stage`'s NCHW output (models with `forward_intermediates`)."""

    def fn(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model.forward_intermediates(x, indices=[stage], intermediates_only=True, stop_early=True)[0]

    fn.__name__ = f"stage{stage}"
    return fn


def _batch_contributions(model: nn.Module, x: torch.Tensor, feature_fn: FeatureFn) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    fmap = feature_fn(model, x)
    if fmap.ndim != 4:
        raise ValueError(f"feature_fn returned shape {tuple(fmap.shape)}; it must return (B, C, h, w)")
    h, w = fmap.shape[-2:]
    central = torch.relu(fmap[:, :, h // 2, w // 2]).sum()
    (grad,) = torch.autograd.grad(central, x)
    return torch.relu(grad).sum(dim=1)  # (B, H, W)


def effective_receptive_field(
        model: nn.Module,
        images: Union[torch.Tensor, Iterable[torch.Tensor]],
        feature_fn: Optional[FeatureFn] = None,
        *,
        batch_size: int = 32,
        progress: bool = False,
        keep_per_image: bool = False,
) -> ERFResult:
    """Accumulate the RepLKNet ERF of `model` over `images`.

    Args:
        model: Any module in eval mode (a model in training mode is refused).
        images: Normalised images (N, C, H, W), or an iterable of such batches.
        feature_fn: `(model, x) -> (B, C, h, w)` target feature map; default `final_feature_map`.
            `stage_feature_map(i)` targets SMT stage i; a lambda can target any timm model's map.
        batch_size: Images per backward pass when `images` is a tensor (1 reproduces the per-image loop).
        progress: Show a progress bar.
        keep_per_image: Keep each counted image's (H, W) map (float32) in `per_image`, for intervals.

    Returns:
        `ERFResult` with the summed (H, W) map (float64), the count, and NaN-skipped images.
    """
    require_eval(model, "The ERF")
    feature_fn = feature_fn or final_feature_map
    batches = image_batches(images, batch_size)
    total, counted, skipped, kept = None, 0, 0, []
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="ERF", unit="batch")
    for x in batches:
        contrib = _batch_contributions(model, x, feature_fn).double()
        finite = ~torch.isnan(contrib).flatten(1).any(dim=1)
        skipped += (~finite).sum()  # tensors: no host sync per batch
        counted += finite.sum()
        part = contrib[finite].sum(dim=0)  # stays on the model's device until the end
        total = part if total is None else total + part
        if keep_per_image:
            kept.append(contrib[finite].float().cpu())
    if total is None:
        raise ValueError("no images were given")
    return ERFResult(total.cpu(), int(counted), int(skipped), torch.cat(kept) if keep_per_image else None)


def stage_erfs(model: nn.Module, images: Union[torch.Tensor, Iterable[torch.Tensor]], stages: Sequence[int], *,
               batch_size: int = 32, keep_per_image: bool = False) -> dict[int, ERFResult]:
    """The ERF of several stages' outputs from one forward pass per batch (one backward pass per stage).

    Equals `effective_receptive_field(model, images, stage_feature_map(s))` for every s in `stages`
    (the gradient of one stage's central feature does not depend on the other stages), at the cost of
    a single forward pass. Needs a model with `forward_intermediates` (SMT, timm's hierarchical models).
    """
    require_eval(model, "The ERF")
    stages = sorted(set(int(s) for s in stages))
    totals: dict[int, Optional[torch.Tensor]] = {s: None for s in stages}
    counted = {s: 0 for s in stages}
    skipped = {s: 0 for s in stages}
    kept: dict[int, list] = {s: [] for s in stages}
    for x in image_batches(images, batch_size):
        x = x.detach().clone().requires_grad_(True)
        maps = model.forward_intermediates(x, indices=stages, intermediates_only=True, stop_early=True)
        for k, (s, fmap) in enumerate(zip(stages, maps)):
            h, w = fmap.shape[-2:]
            central = torch.relu(fmap[:, :, h // 2, w // 2]).sum()
            (grad,) = torch.autograd.grad(central, x, retain_graph=k < len(stages) - 1)
            contrib = torch.relu(grad).sum(dim=1).double()  # (B, H, W)
            finite = ~torch.isnan(contrib).flatten(1).any(dim=1)
            skipped[s] += (~finite).sum()  # tensors: no host sync per batch
            counted[s] += finite.sum()
            part = contrib[finite].sum(dim=0)  # stays on the model's device until the end
            totals[s] = part if totals[s] is None else totals[s] + part
            if keep_per_image:
                kept[s].append(contrib[finite].float().cpu())
    if any(t is None for t in totals.values()):
        raise ValueError("no images were given")
    return {s: ERFResult(totals[s].cpu(), int(counted[s]), int(skipped[s]),
                         torch.cat(kept[s]) if keep_per_image else None) for s in stages}


def erf_display(erf: torch.Tensor) -> torch.Tensor:
    """RepLKNet's display transform: log10(x + 1), divided by the maximum."""
    out = torch.log10(erf.double() + 1)
    peak = out.max()
    return out / peak if peak > 0 else out


def _largest_half_side(H: int, W: int) -> int:
    """i of the largest centred square (side 2i+1, centre (H // 2, W // 2)) that fits in an H x W map."""
    cy, cx = H // 2, W // 2
    return min(cy, H - 1 - cy, cx, W - 1 - cx)


def largest_square_area_ratio(shape: Sequence[int]) -> float:
    """The area ratio of the largest centred square `high_contribution_area_ratio` can measure on an (H, W)
    map: a threshold whose share that square does not hold gives None there."""
    H, W = shape
    return (2 * _largest_half_side(H, W) + 1) ** 2 / (H * W)


def high_contribution_area_ratio(
        display: torch.Tensor, thresholds: Sequence[float] = (0.2, 0.3, 0.5, 0.99)
) -> dict[float, Optional[float]]:
    """For each threshold t, the area ratio side^2 / (H*W) of the smallest centred square (side 2i+1)
    whose sum exceeds t of the map's total, or None when no centred square that fits reaches it.

    Args:
        display: An (H, W) map, normally `erf_display(erf)` as in RepLKNet.
        thresholds: Fractions of the total.
    """
    if display.ndim != 2:
        raise ValueError(f"expected an (H, W) map, got shape {tuple(display.shape)}")
    H, W = display.shape
    cy, cx = H // 2, W // 2
    total = display.double().sum()
    if total <= 0:
        return {t: None for t in thresholds}
    max_i = _largest_half_side(H, W)
    fractions = [display[cy - i:cy + i + 1, cx - i:cx + i + 1].double().sum() / total for i in range(max_i + 1)]
    out: dict[float, Optional[float]] = {}
    for t in thresholds:
        i = next((i for i, f in enumerate(fractions) if f > t), None)
        out[t] = None if i is None else (2 * i + 1) ** 2 / (H * W)
    return out


def _area_ratios_np(mean_map: np.ndarray, thresholds: Sequence[float]) -> list[float]:
    """`high_contribution_area_ratio(erf_display(mean_map))` in numpy (NaN for None), for resampling."""
    d = np.log10(mean_map + 1)
    peak = d.max()
    if peak > 0:
        d = d / peak
    H, W = d.shape
    total = d.sum()
    if total <= 0:
        return [float("nan")] * len(thresholds)
    cy, cx = H // 2, W // 2
    sums = np.array([d[cy - i:cy + i + 1, cx - i:cx + i + 1].sum() for i in range(_largest_half_side(H, W) + 1)])
    fractions = sums / total
    out = []
    for t in thresholds:
        above = np.nonzero(fractions > t)[0]
        out.append(float((2 * above[0] + 1) ** 2 / (H * W)) if above.size else float("nan"))
    return out


def area_ratio_intervals(per_image: torch.Tensor, thresholds: Sequence[float] = (0.2, 0.3, 0.5, 0.99), *,
                         resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """{t: Estimate} of the high-contribution area ratio of the mean ERF of `per_image` (M, H, W) maps, with a
    percentile bootstrap over images (each resample: the images drawn with replacement, their mean map,
    the display transform, the area ratio). The estimate equals `high_contribution_area_ratio` of
    `erf_display` of the mean map; NaN where no centred square reaches t."""
    from .stats import Estimate, _percentiles

    x = per_image.double().numpy() if isinstance(per_image, torch.Tensor) else np.asarray(per_image, np.float64)
    if x.ndim != 3 or x.shape[0] == 0:
        raise ValueError(f"expected per-image maps (M, H, W) of at least one image, got shape {tuple(x.shape)}")
    m = x.shape[0]
    est = _area_ratios_np(x.mean(0), thresholds)
    samples = np.full((resamples, len(thresholds)), np.nan)
    if m > 1:
        idx = np.random.default_rng(seed).integers(0, m, size=(resamples, m))  # as `stats.bootstrap` draws them
        flat = x.reshape(m, -1)
        for r, i in enumerate(idx):
            counts = np.bincount(i, minlength=m).astype(np.float64)
            samples[r] = _area_ratios_np((counts @ flat / m).reshape(x.shape[1:]), thresholds)
    out = {}
    for k, t in enumerate(thresholds):
        lo, hi = _percentiles(samples[:, k], level) if m > 1 else (float("nan"), float("nan"))
        out[t] = Estimate(est[k], lo, hi, m, "bootstrap", level)
    return out


def head_erf(model: nn.Module, images: torch.Tensor, block: str, *, reduce: str = "abs") -> torch.Tensor:
    """Receptive field of each MHMC head of one SAM block, with respect to that block's input.

    For head h, the target is the head's output (tap `attn.mhmc.heads.{h}`) at the central position,
    ReLU'd and summed over channels and images; the map is the gradient with respect to the block's
    input tokens, reduced over channels (`abs`: sum of |grad|; `relu`: sum of ReLU(grad)), summed
    over images. Inside the block only the head's own depthwise conv mixes positions, so the map's
    support is that head's k x k kernel: the 3/5/7/9 structure of MHMC.

    The model runs once without gradients to record the block's input; then only the block's
    token mixer runs again, with gradients, from that input.

    Args:
        model: An SMT model in eval mode.
        images: Normalised images (B, C, H, W).
        block: Module name of a SAM block, e.g. "stages.0.blocks.1".
        reduce: "abs" or "relu", how the gradient is reduced over channels.

    Returns:
        (heads, h, w) maps at the block's grid resolution, raw (float64).
    """
    require_eval(model, "The per-head ERF")
    if reduce not in ("abs", "relu"):
        raise ValueError(f"reduce={reduce!r}: use 'abs' or 'relu'")
    sam_module(model, block)
    with torch.no_grad(), capture(model, block, inputs=True, to=None) as cap:  # the input stays on the device
        model(images)
    x, H, W = cap[block]
    return block_head_erf(model.get_submodule(block), x, (int(H), int(W)), reduce=reduce)


def block_head_erf(block: nn.Module, x: torch.Tensor, grid_hw: tuple[int, int], *, reduce: str = "abs"
                   ) -> torch.Tensor:
    """`head_erf` from the block's recorded input: `block` a SAM block (eval mode), `x` its input tokens
    (B, H*W, C) on the grid `grid_hw`. Returns (heads, H, W) float64 maps."""
    if reduce not in ("abs", "relu"):
        raise ValueError(f"reduce={reduce!r}: use 'abs' or 'relu'")
    H, W = grid_hw
    device = next(block.parameters()).device
    x = x.detach().to(device, copy=True).requires_grad_(True)  # (B, N, C), where the block runs
    with torch.enable_grad(), capture(block.attn, "mhmc.heads.*", to=None, keep_graph=True) as heads:
        block.attn(block.norm1(x), H, W)
    maps = []
    for name in heads:
        out = heads[name]
        central = torch.relu(out[:, :, out.shape[-2] // 2, out.shape[-1] // 2]).sum()
        (g,) = torch.autograd.grad(central, x, retain_graph=True)  # (B, N, C)
        g = g.abs() if reduce == "abs" else torch.relu(g)
        maps.append(g.sum(dim=(0, 2)).reshape(H, W).double())
    return torch.stack(maps).cpu()  # the result only
