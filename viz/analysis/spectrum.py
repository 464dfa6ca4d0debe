"""Frequency analyses of feature maps.

- Relative log amplitude: Park and Kim, "How Do Vision Transformers Work?", ICLR 2022, Fig. 2/8:
  the log amplitude of the 2-D Fourier transform along the diagonal from zero frequency to the
  highest, minus its value at zero frequency. Falling curves mean low-pass behaviour.
- 2-D log power spectra (centred) and radially averaged power spectra.
- Low-frequency share: the fraction of non-DC spectral energy within a radius of zero frequency,
  used to put a number on SMT's claim (Lin et al., ICCV 2023) that SAA strengthens the low-frequency,
  semantically relevant part of the modulator.

Frequencies are in units of pi radians per sample (1.0 = Nyquist), computed from the grid
(`torch.fft.fftfreq`), not from index/length. All functions take tensors and return raw values.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

import torch

from .common import tokens_to_map
from .features import SAMFeatures, SMTForward, sam_features, smt_forward

__all__ = [
    "FourierCurve", "PowerSpectrum2D", "RadialSpectrum", "relative_log_amplitude", "power_spectrum_2d",
    "radial_power_spectrum", "low_frequency_share", "tokens_to_map", "frequency_grid", "BlockFourier",
    "fourier_profile", "smt_fourier_profile", "LowFrequencyShare", "low_frequency_shares", "saa_low_frequency_shares",
    "block_fourier_profile", "block_low_frequency_shares", "SHARE_DEFINITIONS", "low_frequency_terms",
    "relative_log_amplitude_per_image",
]


@dataclass(frozen=True)
class FourierCurve:
    """A curve over frequency: `freq` (K,) in units of pi, `value` (K,)."""
    freq: torch.Tensor
    value: torch.Tensor

    @property
    def highest(self) -> float:
        """The value at the highest frequency (the paper-style per-layer summary)."""
        return float(self.value[-1])


@dataclass(frozen=True)
class PowerSpectrum2D:
    """Centred 2-D spectrum `power` (H, W) (log or linear) with axes `freq_y` (H,), `freq_x` (W,) in units of pi."""
    power: torch.Tensor
    freq_y: torch.Tensor
    freq_x: torch.Tensor
    log: bool


@dataclass(frozen=True)
class RadialSpectrum:
    """Radially averaged power: `power` (K,) at radii `freq` (K,) in units of pi; `counts` (K,) bins' sizes."""
    freq: torch.Tensor
    power: torch.Tensor
    counts: torch.Tensor


def _check_map(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (..., H, W), e.g. (B, C, H, W). "
                         f"Token outputs (B, N, C) go through tokens_to_map(x, grid_hw) first")
    if x.is_complex():
        raise ValueError(f"{name} is complex; pass the real feature map")
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def frequency_grid(h: int, w: int, *, shifted: bool = True, device=None, dtype=torch.float64):
    """Per-axis frequencies (units of pi) of an H x W DFT: `(fy (H,), fx (W,))`, centred when `shifted`."""
    fy = torch.fft.fftfreq(h, device=device, dtype=dtype) * 2
    fx = torch.fft.fftfreq(w, device=device, dtype=dtype) * 2
    if shifted:
        fy, fx = torch.fft.fftshift(fy), torch.fft.fftshift(fx)
    return fy, fx


def relative_log_amplitude(x: torch.Tensor, eps: float = 1e-6) -> FourierCurve:
    """Relative log amplitude along the diagonal of the spectrum (Park and Kim, ICLR 2022).

    value(k) = mean_{b,c} log(|FFT2(x_bc)|(k, k) + eps) - mean_{b,c} log(|FFT2(x_bc)|(0, 0) + eps),
    for k = 0 .. floor(H/2): the diagonal from zero frequency to the highest (for even H the last point
    is the Nyquist frequency, 1.0 pi). The mean is taken over the log, as in the paper.

    Args:
        x: Feature map (..., H, W) with H == W, e.g. (B, C, H, W). Raw activations (no normalisation).
        eps: Added to the amplitude before the log.

    Returns:
        `FourierCurve(freq (K,), value (K,))`, freq = 2k/H in units of pi (per-axis frequency on the diagonal).
    """
    x = _check_map(x)
    h, w = x.shape[-2:]
    if h != w:
        raise ValueError(f"relative_log_amplitude needs a square map (its diagonal), got {h}x{w}; "
                         f"crop to {min(h, w)}x{min(h, w)} or use radial_power_spectrum")
    logamp = torch.log(torch.fft.fft2(x.double()).abs() + eps).reshape(-1, h, w).mean(0)  # (H, W), float64
    k = torch.arange(h // 2 + 1, device=x.device)
    diag = logamp[k, k]
    freq = torch.arange(h // 2 + 1, dtype=torch.float64) * (2.0 / h)  # k/H cycles per sample = 2k/H pi
    return FourierCurve(freq=freq, value=diag - diag[0])


def relative_log_amplitude_per_image(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """`relative_log_amplitude` of each image of a (B, C, H, W) map separately: (B, K) float64.

    The mean over images equals the batch's curve (the statistic is a mean of logs), so these rows are
    what a band over images (`viz.analysis.stats`) needs.
    """
    x = _check_map(x)
    if x.ndim != 4:
        raise ValueError(f"expected (B, C, H, W), got {tuple(x.shape)}")
    b, _, h, w = x.shape
    if h != w:
        raise ValueError(f"relative_log_amplitude needs a square map (its diagonal), got {h}x{w}")
    logamp = torch.log(torch.fft.fft2(x.double()).abs() + eps).mean(1)  # (B, H, W)
    k = torch.arange(h // 2 + 1, device=x.device)
    diag = logamp[:, k, k]
    return (diag - diag[:, :1]).cpu()


def power_spectrum_2d(x: torch.Tensor, *, log: bool = True, eps: float = 1e-12) -> PowerSpectrum2D:
    """Centred 2-D power spectrum |FFT2(x)|^2 averaged over all leading dims (batch, channels).

    Args:
        x: Map (..., H, W).
        log: Return log(power + eps) (natural log) instead of power.
        eps: Floor inside the log.
    """
    x = _check_map(x)
    h, w = x.shape[-2:]
    p = (torch.fft.fft2(x).abs() ** 2).reshape(-1, h, w).mean(0)
    p = torch.fft.fftshift(p, dim=(-2, -1))
    fy, fx = frequency_grid(h, w, device=x.device)
    return PowerSpectrum2D(power=torch.log(p + eps) if log else p, freq_y=fy, freq_x=fx, log=log)


def _radius(h: int, w: int, device) -> torch.Tensor:
    fy, fx = frequency_grid(h, w, shifted=False, device=device)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)  # (H, W), units of pi, unshifted


def radial_power_spectrum(x: torch.Tensor, num_bins: Optional[int] = None, *, remove_mean: bool = False
                          ) -> RadialSpectrum:
    """Radially averaged power spectrum: mean of |FFT2(x)|^2 over rings of equal |f|.

    Radius |f| = sqrt(fy^2 + fx^2) in units of pi; bins of equal width over [0, sqrt(2)] (the corner),
    bin 0 holding only zero frequency when `num_bins` = floor(min(H, W)/2) + 1 (the default, so that
    one bin is about one frequency step). Power is averaged over leading dims and over the ring.

    Args:
        x: Map (..., H, W).
        num_bins: Number of rings.
        remove_mean: Subtract each map's mean first (empties the zero-frequency bin).
    """
    x = _check_map(x)
    h, w = x.shape[-2:]
    if remove_mean:
        x = x - x.mean(dim=(-2, -1), keepdim=True)
    p = (torch.fft.fft2(x).abs() ** 2).reshape(-1, h, w).mean(0).double()
    r = _radius(h, w, x.device)
    num_bins = num_bins or min(h, w) // 2 + 1
    step = 2.0 / min(h, w)  # smallest non-zero per-axis frequency
    # Ring k holds radii in [(k - 1/2) step, (k + 1/2) step); ring 0 is zero frequency.
    idx = torch.clamp(torch.floor(r / step + 0.5).long(), max=num_bins - 1)
    power = torch.zeros(num_bins, dtype=p.dtype, device=p.device).index_add_(0, idx.flatten(), p.flatten())
    counts = torch.bincount(idx.flatten(), minlength=num_bins)
    freq = torch.arange(num_bins, dtype=torch.float64, device=p.device) * step
    return RadialSpectrum(freq=freq, power=power / counts.clamp(min=1), counts=counts)


def low_frequency_share(x: torch.Tensor, radius: float = 0.5) -> torch.Tensor:
    """Fraction of spectral energy within `radius` of zero frequency, zero frequency excluded.

    share = sum_{0 < |f| <= radius} P(f) / sum_{|f| > 0} P(f), with P = |FFT2(x - mean_hw(x))|^2 summed
    over all maps (batch and channels; energy-weighted), |f| = sqrt(fy^2 + fx^2) in units of pi.
    Each map's mean is removed first, so the share describes spatial structure only.

    Args:
        x: Maps (..., H, W), e.g. (B, C, H, W) SAA input or output.
        radius: Cut-off radius in units of pi (1.0 = Nyquist along an axis). The frequency step of an
            H x W grid is 2/H pi, so on a 4x4 map nothing non-DC lies within 0.25 pi (share 0).

    Returns:
        A 0-dim float64 tensor in [0, 1]; NaN when every map is constant (no non-DC energy).
    """
    x = _check_map(x)
    if not 0 < radius:
        raise ValueError(f"radius={radius} must be positive (units of pi; e.g. 0.5)")
    h, w = x.shape[-2:]
    x = x.double() - x.double().mean(dim=(-2, -1), keepdim=True)
    p = (torch.fft.fft2(x).abs() ** 2).reshape(-1, h, w).sum(0)
    r = _radius(h, w, x.device)
    nondc = r > 0
    total = p[nondc].sum()
    if total == 0:
        return torch.tensor(float("nan"), dtype=torch.float64)
    return p[nondc & (r <= radius + 1e-12)].sum() / total


#: The three definitions of a low-frequency share over maps of many channels (`low_frequency_terms`).
SHARE_DEFINITIONS = {
    "energy": "energy-weighted over channels: all channels' spectra summed, so high-energy channels dominate",
    "channel": "every channel weighted equally: each channel's map normalised to unit (non-DC) energy",
    "display": "the displayed map: the channel mean of |x| (what modulator-map figures show)",
}


def low_frequency_terms(x: torch.Tensor, radius: float = 0.5, definition: str = "energy") -> torch.Tensor:
    """Per-image numerator and denominator of a low-frequency share: (B, 2) float64 rows whose ratio of sums
    over any set of images is that set's share (so intervals over images can be formed from them).

    Definitions (`SHARE_DEFINITIONS`), each with every map's spatial mean removed and zero frequency
    excluded, |f| <= `radius` pi counting as low:
        energy: (low energy, non-DC energy) summed over channels; over images, the ratio of sums is
            `low_frequency_share` of the whole batch (energy-weighted over images and channels).
        channel: (sum over channels of each channel's share, number of channels with spatial structure):
            every channel map counts once, whatever its energy.
        display: (share of the image's channel-mean |x| map, 1): every image's displayed map counts once.
    A map without spatial structure contributes (0, 0).

    Args:
        x: Maps (B, C, H, W), e.g. SAA input or output.
        radius: Cut-off, units of pi.
        definition: "energy", "channel" or "display".
    """
    x = _check_map(x)
    if definition not in SHARE_DEFINITIONS:
        raise ValueError(f"definition={definition!r}: use one of {', '.join(SHARE_DEFINITIONS)}")
    if x.ndim != 4:
        raise ValueError(f"expected maps (B, C, H, W), got {tuple(x.shape)}")
    if not 0 < radius:
        raise ValueError(f"radius={radius} must be positive (units of pi; e.g. 0.5)")
    x = x.double()
    if definition == "display":
        x = x.abs().mean(1, keepdim=True)
    h, w = x.shape[-2:]
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    p = torch.fft.fft2(x).abs() ** 2  # (B, C, H, W)
    r = _radius(h, w, x.device)
    nondc = (r > 0).to(p.dtype)
    low = ((r > 0) & (r <= radius + 1e-12)).to(p.dtype)
    low_e, total_e = (p * low).sum(dim=(-2, -1)), (p * nondc).sum(dim=(-2, -1))  # (B, C)
    if definition == "energy":
        return torch.stack([low_e.sum(1), total_e.sum(1)], 1).cpu()
    has = total_e > 0
    share = torch.where(has, low_e / total_e.clamp_min(1e-300), torch.zeros_like(low_e))
    return torch.stack([share.sum(1), has.to(share.dtype).sum(1)], 1).cpu()


@dataclass(frozen=True)
class BlockFourier:
    """Relative log amplitude of one block's output; `depth` = (index + 1) / number of blocks."""
    name: str
    kind: str
    depth: float
    curve: FourierCurve
    per_image: Optional[torch.Tensor] = field(default=None, repr=False, compare=False)  # (M, K) curve per image


def fourier_profile(forward: SMTForward) -> list[BlockFourier]:
    """Relative log amplitude of every block's output in a captured forward pass (`smt_forward`), in depth order.

    Block outputs are token sequences; each becomes a map on its stage's grid (read from the stage output).
    """
    if not forward.block_outputs:
        raise ValueError("this forward pass recorded no block outputs; "
                         "capture with smt_forward(..., block_outputs=True)")
    names = list(forward.block_outputs)
    out = []
    for k, name in enumerate(names):
        x = tokens_to_map(forward.block_outputs[name], forward.grid(name))
        out.append(BlockFourier(name, forward.block_kinds[name], (k + 1) / len(names), relative_log_amplitude(x),
                                relative_log_amplitude_per_image(x)))
    return out


def smt_fourier_profile(model: torch.nn.Module, images: torch.Tensor) -> list[BlockFourier]:
    """Relative log amplitude (Park and Kim, ICLR 2022) of every SMT block's output, in depth order.

    Plot `curve.highest` against `depth`, marking `kind` ("sam"/"msa"), for the paper-style figure.

    Args:
        model: SMT in eval mode.
        images: (B, 3, H, W) with H == W (the diagonal needs square maps).
    """
    return fourier_profile(smt_forward(model, images, sam_blocks=[]))


@dataclass(frozen=True)
class LowFrequencyShare:
    """Low-frequency share (see `low_frequency_share`) before and after SAA of one block.

    `input_terms` and `modulator_terms` are the per-image (numerator, denominator) rows of
    `low_frequency_terms` under `definition` (None when built from shares alone); the shares are their
    ratios of sums, and `change_interval` the paired bootstrap of the change over the same images.
    """
    block: str
    radius: float
    saa_input: float
    modulator: float
    input_terms: Optional[torch.Tensor] = field(default=None, repr=False, compare=False)
    modulator_terms: Optional[torch.Tensor] = field(default=None, repr=False, compare=False)
    definition: str = "energy"

    @property
    def change(self) -> float:
        """Output share minus input share: positive where SAA strengthens low frequencies."""
        return self.modulator - self.saa_input

    def _terms(self):
        if self.input_terms is None or self.modulator_terms is None:
            raise ValueError(f"{self.block}: no per-image terms kept; build the shares with low_frequency_shares")
        return self.input_terms, self.modulator_terms

    def change_interval(self, **kwargs):
        """The change (output minus input share) with a paired bootstrap interval over images (an `Estimate`)."""
        from .stats import paired_ratio_difference

        a, b = self._terms()
        return paired_ratio_difference(b, a, **kwargs)

    def share_interval(self, which: str = "modulator", **kwargs):
        """The input's or the modulator's share with a bootstrap interval over images."""
        from .stats import ratio_interval

        a, b = self._terms()
        return ratio_interval(b if which == "modulator" else a, **kwargs)


def low_frequency_shares(features: Mapping[str, SAMFeatures], radius: float = 0.5, definition: str = "energy"
                         ) -> list[LowFrequencyShare]:
    """Low-frequency share of the SAA input vs the SAA output (modulator) of each SAM block's features, with the
    per-image terms that intervals need (`low_frequency_terms`; "energy" gives `low_frequency_share`'s value)."""
    out = []
    for b, f in features.items():
        t_in = low_frequency_terms(f.saa_input, radius, definition)
        t_out = low_frequency_terms(f.modulator, radius, definition)
        if definition == "energy":  # the same number, computed as `low_frequency_share` has always done
            s_in = float(low_frequency_share(f.saa_input, radius))
            s_out = float(low_frequency_share(f.modulator, radius))
        else:
            s_in, s_out = _ratio(t_in), _ratio(t_out)
        out.append(LowFrequencyShare(b, radius, s_in, s_out, t_in, t_out, definition))
    return out


def _ratio(terms: torch.Tensor) -> float:
    den = float(terms[:, 1].sum())
    return float(terms[:, 0].sum()) / den if den > 0 else float("nan")


def saa_low_frequency_shares(model: torch.nn.Module, images: torch.Tensor, radius: float = 0.5,
                             blocks: Optional[Sequence[str]] = None, definition: str = "energy"
                             ) -> list[LowFrequencyShare]:
    """Low-frequency share of the SAA input vs the SAA output (modulator) for each SAM block.

    The quantitative form of SMT's claim that SAA strengthens low-frequency signal: share > input share.

    Args:
        model: SMT in eval mode.
        images: (B, 3, H, W).
        radius: Cut-off in units of pi.
        blocks: SAM block names; default all.
        definition: How channels are weighted (`SHARE_DEFINITIONS`).
    """
    return low_frequency_shares(sam_features(model, images, blocks), radius, definition)


def _timm_block_maps(model: torch.nn.Module, images: torch.Tensor) -> list[tuple[str, str, torch.Tensor]]:
    """(name, kind, output map (B, C, H, W)) of every block of a timm ViT, Swin or ConvNeXt, in depth order."""
    from ..capture import capture

    h, w = images.shape[-2:]
    if hasattr(model, "blocks") and hasattr(model, "patch_embed"):  # VisionTransformer
        names, kind = [f"blocks.{i}" for i in range(len(model.blocks))], "msa"
        pe = model.patch_embed
        grid = tuple(pe.dynamic_feat_size((h, w))) if getattr(model, "dynamic_img_size", False) else tuple(pe.grid_size)
        prefix = int(getattr(model, "num_prefix_tokens", 0))

        def to_map(t: torch.Tensor) -> torch.Tensor:
            return tokens_to_map(t, grid, num_prefix_tokens=prefix)
    elif hasattr(model, "layers") and all(hasattr(s, "blocks") for s in model.layers):  # SwinTransformer: NHWC
        kind = "msa"
        names = [f"layers.{i}.blocks.{j}" for i, s in enumerate(model.layers) for j in range(len(s.blocks))]

        def to_map(t: torch.Tensor) -> torch.Tensor:
            return t.permute(0, 3, 1, 2)
    elif hasattr(model, "stages") and all(hasattr(s, "blocks") for s in model.stages):  # ConvNeXt: NCHW
        kind = "conv"
        names = [f"stages.{i}.blocks.{j}" for i, s in enumerate(model.stages) for j in range(len(s.blocks))]

        def to_map(t: torch.Tensor) -> torch.Tensor:
            return t
    else:
        raise TypeError(f"{type(model).__name__}: expected an SMT model or a timm VisionTransformer, "
                        f"SwinTransformer or ConvNeXt")
    with torch.no_grad(), capture(model, names) as cap:
        model(images)
    return [(n, kind, to_map(cap[n])) for n in names]


def block_fourier_profile(model: torch.nn.Module, images: torch.Tensor) -> list[BlockFourier]:
    """Relative log amplitude of every block's output of SMT or a timm ViT, Swin or ConvNeXt, in depth order.

    Token outputs become maps on their explicit grid (ViT: the patch grid of the input size, class
    tokens dropped; Swin blocks are already (B, H, W, C); ConvNeXt blocks NCHW). `kind` is "sam"/"msa"
    for SMT, "msa" for ViT and Swin blocks (Swin's attention is windowed), "conv" for ConvNeXt.

    Args:
        model: A model in eval mode.
        images: (B, 3, H, W) with H == W.
    """
    from .common import require_eval

    require_eval(model, "block_fourier_profile")
    if hasattr(model, "stage_block_types"):
        return smt_fourier_profile(model, images)
    maps = _timm_block_maps(model, images)
    return [BlockFourier(n, kind, (k + 1) / len(maps), relative_log_amplitude(m), relative_log_amplitude_per_image(m))
            for k, (n, kind, m) in enumerate(maps)]


def block_low_frequency_shares(model: torch.nn.Module, images: torch.Tensor, radius: float = 0.5
                               ) -> list[tuple[str, float]]:
    """(block, low-frequency share of its output) for every block of a timm ViT, Swin or ConvNeXt (or SMT)."""
    from .common import require_eval

    require_eval(model, "block_low_frequency_shares")
    if hasattr(model, "stage_block_types"):
        fwd = smt_forward(model, images, sam_blocks=[])
        return [(n, float(low_frequency_share(tokens_to_map(t, fwd.grid(n)), radius)))
                for n, t in fwd.block_outputs.items()]
    return [(n, float(low_frequency_share(m, radius))) for n, _, m in _timm_block_maps(model, images)]
