"""Plots of the analyses' results: arrays and result objects in, matplotlib Axes or Figures out.

One function per result type, `plot_x(result, *, ax=None, ...)`; multi-panel layouts call the
single-panel functions per axis. Nothing here shows, saves or changes global settings: draw inside
`viz.style.paper(...)` (figures for papers) or `viz.style.screen()` (widgets), and save there. Without
`ax`, a function builds a `matplotlib.figure.Figure` without pyplot, so plots work headless and in
widgets. The figure command (`python -m viz figures`), the widgets and the notebooks all draw with
these functions.
"""
from .ablation import AblationRow, plot_ablation
from .base import block_label, new_figure, stage_label
from .cam import overlay, plot_cam, plot_cam_grid
from .distance import plot_distance_profile
from .erf import area_ratio_table, plot_erf, plot_erf_grid
from .maps import (
                   plot_group_channels,
                   plot_head_erf,
                   plot_head_maps,
                   plot_image,
                   plot_map,
                   plot_modulator_maps,
                   plot_overlay,
                   plot_sam_block,
)
from .spectrum import (
                   plot_fourier,
                   plot_fourier_curves,
                   plot_fourier_highest,
                   plot_low_frequency_shares,
                   plot_saa_spectrum,
)

__all__ = [
    "AblationRow", "plot_ablation", "block_label", "new_figure", "stage_label", "overlay", "plot_cam",
    "plot_cam_grid", "plot_distance_profile", "area_ratio_table", "plot_erf", "plot_erf_grid", "plot_group_channels",
    "plot_head_erf",
    "plot_head_maps", "plot_image", "plot_map", "plot_modulator_maps", "plot_sam_block", "plot_fourier",
    "plot_fourier_curves", "plot_fourier_highest", "plot_low_frequency_shares", "plot_overlay", "plot_saa_spectrum",
]
