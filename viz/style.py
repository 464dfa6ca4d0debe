"""Figure styles: venue presets for papers, a screen style for widgets, colour maps and one colorbar style.

    with viz.style.paper(venue="cvpr2024", width="column") as st:
        fig = viz.plot.plot_fourier(profile, width=st.width)
        fig.savefig("fourier.pdf")        # save inside the context: fonts and PDF settings come from it

`paper()` and `screen()` are contexts (`matplotlib.rc_context`): nothing changes matplotlib's global
settings, and everything is restored on exit, also after an error. Column and text widths and font
sizes come from the `tueplots` bundles (usetex off); PDF and PostScript embed TrueType fonts (Type 42,
never Type 3), SVG keeps text as text, and saved files carry no creation date (the same figure gives
the same bytes). The serif font is the venue's (Times for CVPR/ICCV/NeurIPS/ICLR/ICML, Computer
Modern for ECCV) when installed, else the first installed of Liberation Serif (metric-compatible with
Times; Debian's `fonts-liberation2`) and DejaVu Serif, so matplotlib never warns about a missing font.

Colour: magnitudes use viridis (`MAGNITUDE_CMAP`), signed values a diverging map with its norm
centred at zero (`SIGNED_CMAP`, `signed_norm`), heat maps over images inferno, categories the
Okabe-Ito palette (`COLORS`); all colour-blind-safe.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

__all__ = ["VENUES", "MAGNITUDE_CMAP", "SIGNED_CMAP", "OVERLAY_CMAP", "COLORS", "PaperStyle", "paper", "screen",
           "venue_style", "signed_norm", "magnitude_norm", "add_colorbar", "installed_font"]

MAGNITUDE_CMAP = "viridis"
SIGNED_CMAP = "RdBu_r"
OVERLAY_CMAP = "inferno"
#: Okabe-Ito, "Color Universal Design" (colour-blind-safe categories).
COLORS = {"sam": "#0072B2", "msa": "#D55E00", "smt": "#0072B2", "vit": "#E69F00", "swin": "#009E73",
          "convnext": "#CC79A7", "input": "#56B4E9", "output": "#0072B2", "grey": "#7f7f7f", "black": "#000000"}

#: Venue -> (tueplots bundle name, whether the venue has two columns). ICCV uses CVPR's template.
VENUES: dict[str, tuple[str, bool]] = {
    "cvpr2024": ("cvpr2024", True),
    "iccv2023": ("cvpr2024", True),
    "iccv2025": ("cvpr2024", True),
    "icml2024": ("icml2024", True),
    "eccv2024": ("eccv2024", False),
    "neurips2024": ("neurips2024", False),
    "iclr2024": ("iclr2024", False),
}


@dataclass(frozen=True)
class PaperStyle:
    """What a figure needs to know about the page it is drawn for.

    Attributes:
        venue: The venue preset's name.
        width: Figure width in inches (a column, or the text width).
        text_width: The venue's full text width in inches.
        font_size: Base font size in points (axis labels, titles); ticks and legends are smaller.
        rc: The matplotlib settings the context applies.
    """
    venue: str
    width: float
    text_width: float
    font_size: float
    rc: dict

    def height(self, aspect: float) -> float:
        """Height in inches of a figure of this width and `aspect` = height / width."""
        return self.width * aspect


def installed_font(candidates: Sequence[str], fallback: str = "DejaVu Serif") -> list[str]:
    """The installed fonts among `candidates` (in order), then `fallback` (matplotlib ships DejaVu)."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    found = [c for c in candidates if c in names]
    return found + [fallback] if fallback not in found else found


def venue_style(venue: str = "cvpr2024", width: str = "column") -> PaperStyle:
    """The settings of a venue preset, without applying them (see `paper`).

    Args:
        venue: One of `VENUES` (cvpr2024 also serves ICCV).
        width: "column" (one column of a two-column venue; half the text width of a one-column venue)
            or "full" (the text width).
    """
    from tueplots import bundles

    if venue not in VENUES:
        raise ValueError(f"unknown venue {venue!r}; presets: {', '.join(VENUES)}")
    if width not in ("column", "full"):
        raise ValueError(f"width={width!r}: use 'column' or 'full'")
    bundle_name, two_columns = VENUES[venue]
    make = getattr(bundles, bundle_name)
    kwargs: dict[str, Any] = {"family": "serif"}
    if bundle_name in ("neurips2024", "iclr2024"):
        kwargs["usetex"] = False
    if two_columns:
        full = make(column="full", usetex=False, **kwargs)
        half = make(column="half", usetex=False, **kwargs)
        text_width = full["figure.figsize"][0]
        fig_width = half["figure.figsize"][0] if width == "column" else text_width
        rc = dict(full if width == "full" else half)
    else:
        rc = dict(make(**kwargs))
        text_width = rc["figure.figsize"][0]
        fig_width = text_width / 2 if width == "column" else text_width
    rc.pop("text.usetex", None)
    serif = installed_font(list(rc.get("font.serif", [])) + ["Liberation Serif"])
    rc.update({
        "text.usetex": False,
        "font.family": "serif",
        "font.serif": serif,
        "mathtext.fontset": "dejavuserif" if serif[0].startswith("DejaVu") else "stix",
        "figure.figsize": (fig_width, fig_width * 0.62),
        "figure.constrained_layout.use": True,
        "figure.dpi": 100,
        "savefig.dpi": 300,
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "svg.fonttype": "none",
        "svg.hashsalt": "smt-lab",
        "image.cmap": MAGNITUDE_CMAP,
        "image.interpolation": "nearest",
        "axes.linewidth": 0.5,
        "axes.titlepad": 3.0,
        "axes.labelpad": 2.0,
        "xtick.major.width": 0.5,
        "ytick.major.width": 0.5,
        "xtick.major.size": 2.5,
        "ytick.major.size": 2.5,
        "xtick.major.pad": 1.5,
        "ytick.major.pad": 1.5,
        "lines.linewidth": 1.0,
        "lines.markersize": 3.0,
        "legend.frameon": False,
        "legend.handlelength": 1.5,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.constrained_layout.h_pad": 0.02,
        "figure.constrained_layout.w_pad": 0.02,
    })
    return PaperStyle(venue, float(fig_width), float(text_width), float(rc.get("font.size", 8)), rc)


@contextmanager
def paper(venue: str = "cvpr2024", width: str = "column") -> Iterator[PaperStyle]:
    """Apply a venue preset for the duration of the block (a `matplotlib.rc_context`); yields its `PaperStyle`.

    Args:
        venue: One of `VENUES` (cvpr2024 also serves ICCV; eccv2024, neurips2024, iclr2024, icml2024).
        width: "column" or "full" (see `venue_style`).
    """
    import matplotlib

    style = venue_style(venue, width)
    with matplotlib.rc_context(style.rc):
        yield style


@contextmanager
def screen(width: float = 7.0, font_size: float = 9.0) -> Iterator[PaperStyle]:
    """The style for widgets and notebooks: the paper settings at screen size (sans-serif, 100 dpi)."""
    import matplotlib

    base = venue_style("cvpr2024", "full")
    rc = dict(base.rc)
    small = font_size - 1
    rc.update({"font.family": "sans-serif", "font.sans-serif": installed_font([], "DejaVu Sans"),
               "mathtext.fontset": "dejavusans", "font.size": font_size, "axes.labelsize": font_size,
               "axes.titlesize": font_size, "xtick.labelsize": small, "ytick.labelsize": small,
               "legend.fontsize": small, "figure.figsize": (width, width * 0.62), "savefig.dpi": 100})
    with matplotlib.rc_context(rc):
        yield PaperStyle("screen", width, width, font_size, rc)


def signed_norm(values: Any, *, quantile: float = 1.0):
    """A colour norm for signed values, centred at zero and symmetric: [-m, m], m = max |values|
    (or its `quantile`, so that a few outliers do not wash the map out). Share one norm across panels."""
    from matplotlib.colors import Normalize

    a = np.abs(np.asarray(values, dtype=np.float64))
    m = float(np.quantile(a, quantile)) if a.size else 1.0
    m = m if m > 0 else 1.0
    return Normalize(vmin=-m, vmax=m)


def magnitude_norm(values: Any, *, vmin: Optional[float] = 0.0, quantile: float = 1.0):
    """A colour norm for non-negative magnitudes, [vmin, max] (or the max's `quantile`); share it across panels."""
    from matplotlib.colors import Normalize

    a = np.asarray(values, dtype=np.float64)
    hi = float(np.quantile(a, quantile)) if a.size else 1.0
    lo = float(np.min(a)) if vmin is None and a.size else (vmin or 0.0)
    return Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1.0)


def add_colorbar(mappable, axes, *, label: str = "", location: str = "right", ticks: Optional[Sequence] = None):
    """The one colorbar style: thin, beside `axes` (an Axes or a list of them, which it then spans)."""
    fig = mappable.figure if getattr(mappable, "figure", None) is not None else np.ravel(axes)[0].figure
    horizontal = location in ("top", "bottom")
    cb = fig.colorbar(mappable, ax=axes, location=location, fraction=0.05 if horizontal else 0.04,
                      aspect=30 if horizontal else 20, pad=0.02, ticks=ticks)
    cb.outline.set_linewidth(0.4)
    cb.ax.tick_params(width=0.4, length=2, pad=1)
    if label:
        cb.set_label(label, labelpad=2)
    return cb
