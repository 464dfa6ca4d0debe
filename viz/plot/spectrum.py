"""Frequency plots: relative log amplitude per block (Park and Kim, ICLR 2022, Fig. 2a and Fig. 8) and the
low-frequency share of SAA's input vs its output (`viz.analysis.spectrum`)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from ..style import COLORS, MAGNITUDE_CMAP, add_colorbar
from .base import block_label, mark_stages, new_axes, new_figure, to_numpy

__all__ = ["plot_fourier_curves", "plot_fourier_highest", "plot_fourier", "plot_low_frequency_shares",
           "display_saa_spectrum", "plot_saa_spectrum", "update_saa_spectrum", "SpectrumArtists"]

_FREQ_LABEL = r"frequency ($\pi$ rad / token)"
_AMP_LABEL = r"$\Delta$ log amplitude"


def plot_fourier_curves(profile: Sequence, *, ax=None, cmap: str = MAGNITUDE_CMAP, colorbar: bool = True):
    """Relative log amplitude of every block's output over frequency, coloured by normalised depth (Fig. 2a style).

    Args:
        profile: `BlockFourier` results (`smt_fourier_profile` / `fourier_profile`), in depth order.
        ax: Axes to draw into; default a new figure.
        cmap: Colour map over depth.
        colorbar: Draw the depth colorbar.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    ax = new_axes(ax)
    cm = colormaps[cmap]
    norm = Normalize(0, 1)
    for b in profile:
        ax.plot(to_numpy(b.curve.freq), to_numpy(b.curve.value), color=cm(norm(b.depth)), lw=0.8,
                ls="-" if b.kind != "msa" else "--")
    ax.set_xlabel(_FREQ_LABEL)
    ax.set_ylabel(_AMP_LABEL)
    ax.set_xlim(0, 1)
    ax.axhline(0, color="0.7", lw=0.4, zorder=0)
    if colorbar:
        sm = ScalarMappable(norm=norm, cmap=cm)
        add_colorbar(sm, ax, label="normalised depth", ticks=[0, 0.5, 1])
    return ax


def plot_fourier_highest(profiles: Union[Sequence, Mapping[str, Sequence]], *, ax=None, shade_msa: bool = True):
    """The highest-frequency relative log amplitude of each block against normalised depth (Fig. 8 style).

    Args:
        profiles: One profile (a list of `BlockFourier`), or {label: profile} for several models on one axis
            (e.g. SMT beside the other backbones); the first is the one whose MSA blocks are shaded.
        ax: Axes to draw into.
        shade_msa: Shade the depth span of each MSA block of the first profile.
    """
    ax = new_axes(ax)
    if not isinstance(profiles, Mapping):
        profiles = {"": profiles}
    for i, (label, prof) in enumerate(profiles.items()):
        depth = np.array([b.depth for b in prof])
        high = np.array([b.curve.highest for b in prof])
        color = COLORS.get(label.split()[0].lower(), None) if label else COLORS["smt"]
        ax.plot(depth, high, marker="o", ms=2.5, lw=0.8, label=label or None, color=color)
        if i == 0:
            if shade_msa:
                step = 1.0 / len(prof)
                for b in prof:
                    if b.kind == "msa":
                        ax.axvspan(b.depth - step / 2, b.depth + step / 2, color=COLORS["msa"], alpha=0.15, lw=0)
            if len(profiles) == 1:
                mark_stages(ax, [b.name for b in prof], depth)
    ax.set_xlabel("normalised depth")
    ax.set_ylabel(r"$\Delta$ log amplitude at $\pi$")
    ax.set_xlim(0, 1.02)
    if len(profiles) > 1:
        ax.legend(fontsize="x-small", loc="best")
    return ax


def plot_fourier(profile: Sequence, *, width: Optional[float] = None, others: Optional[Mapping[str, Sequence]] = None):
    """Both Fourier panels side by side: the curves coloured by depth, and the highest frequency against depth
    (MSA blocks shaded; `others` adds other models' profiles to the second panel)."""
    fig = new_figure(width, aspect=0.42)
    a, b = fig.subplots(1, 2)
    plot_fourier_curves(profile, ax=a)
    plot_fourier_highest({"SMT": profile, **others} if others else profile, ax=b)
    a.set_title("(a) every block", fontsize="small")
    b.set_title("(b) highest frequency, MSA blocks shaded", fontsize="small")
    return fig


def plot_low_frequency_shares(shares: Sequence, *, ax=None):
    """Low-frequency share of SAA's input (open) and output (filled) for each SAM block, paired by a line.

    Args:
        shares: `LowFrequencyShare` results (`saa_low_frequency_shares`), in depth order.
        ax: Axes to draw into.
    """
    ax = new_axes(ax)
    x = np.arange(len(shares))
    before = np.array([s.saa_input for s in shares])
    after = np.array([s.modulator for s in shares])
    for i in range(len(shares)):
        up = after[i] >= before[i]
        ax.plot([x[i], x[i]], [before[i], after[i]], color=COLORS["output"] if up else COLORS["msa"], lw=0.8,
                zorder=1)
    ax.scatter(x, before, s=14, facecolors="white", edgecolors=COLORS["grey"], lw=0.8, zorder=2,
               label="SAA input")
    ax.scatter(x, after, s=14, color=COLORS["output"], zorder=3, label="SAA output (modulator)")
    ax.set_xticks(x, [block_label(s.block, short=True) for s in shares], rotation=0, fontsize="x-small")
    radius = shares[0].radius if len(shares) else 0.5
    ax.set_ylabel(f"low-freq. share ($|f| \\leq {radius:g}\\pi$)")
    ax.set_xlabel("SAM block (stage.block)")
    ax.set_ylim(0, 1)
    ax.set_xlim(-0.6, len(shares) - 0.4)
    ax.legend(fontsize="x-small", loc="lower right")
    return ax


def display_saa_spectrum(before, after) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                  tuple[float, float]]:
    """The curves of SAA's input and output (`FourierCurve`s) as drawn: (freq, value) of each, and the amplitude
    range that holds both: from 10% below the lowest value, rounded down to a whole unit (so that similar
    curves share a range), to 0.3 above zero frequency's 0."""
    import math

    fb, vb, fa, va = (to_numpy(v) for v in (before.freq, before.value, after.freq, after.value))
    lo = float(min(vb.min(), va.min()))
    return fb, vb, fa, va, (float(math.floor(lo - 0.1 * abs(lo) - 0.1)), 0.3)


@dataclass
class SpectrumArtists:
    """The two lines `plot_saa_spectrum` made."""
    ax: Any
    before: Any
    after: Any

    @property
    def figure(self):
        return self.ax.figure

    @property
    def dynamic(self) -> list:
        return [self.before, self.after]


def plot_saa_spectrum(before, after, *, ax=None, ylim: Optional[tuple[float, float]] = None) -> SpectrumArtists:
    """Relative log amplitude of SAA's input (`before`) and output (`after`), two `FourierCurve`s, on one axis:
    a curve that falls more slowly keeps more high-frequency signal. `ylim`: the amplitude range (default
    `display_saa_spectrum`'s). Returns the artists (`update_saa_spectrum`)."""
    ax = new_axes(ax)
    fb, vb, fa, va, fit = display_saa_spectrum(before, after)
    (lb,) = ax.plot(fb, vb, color=COLORS["grey"], lw=1.0, ls="--", marker="o", ms=2, label="SAA input")
    (la,) = ax.plot(fa, va, color=COLORS["output"], lw=1.2, marker="o", ms=2, label="SAA output")
    ax.set_xlabel(_FREQ_LABEL)
    ax.set_ylabel(_AMP_LABEL)
    ax.set_xlim(0, 1)
    ax.set_ylim(*(ylim or fit))
    ax.legend(fontsize="x-small", loc="lower left")
    return SpectrumArtists(ax, lb, la)


def update_saa_spectrum(artists: SpectrumArtists, before, after, *,
                        ylim: Optional[tuple[float, float]] = None) -> bool:
    """Set other curves on `plot_saa_spectrum`'s lines (and `ylim`, default `display_saa_spectrum`'s range);
    True when the amplitude range changed (its ticks, and so the layout, may change: draw afresh)."""
    fb, vb, fa, va, fit = display_saa_spectrum(before, after)
    artists.before.set_data(fb, vb)
    artists.after.set_data(fa, va)
    new = tuple(float(v) for v in (ylim or fit))
    if new != tuple(float(v) for v in artists.ax.get_ylim()):
        artists.ax.set_ylim(*new)
        return True
    return False
