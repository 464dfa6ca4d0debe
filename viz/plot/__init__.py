"""Plots of the analyses' results: arrays and result objects in, matplotlib Axes or Figures out.

One function per result type, `plot_x(result, *, ax=None, ...)`; multi-panel layouts call the
single-panel functions per axis. Nothing here shows, saves or changes global settings: draw inside
`viz.style.paper(...)` (figures for papers) or `viz.style.screen()` (widgets), and save there. Without
`ax`, a function builds a `matplotlib.figure.Figure` without pyplot, so plots work headless and in
widgets. The figure command (`python -m viz figures`), the widgets and the notebooks all draw with
these functions.

A view that a widget updates in place has three functions beside each other: `display_x` (results in,
the arrays drawn out; pure), `plot_x` (draws them, returns handles to its artists) and `update_x` (sets
new data on those handles). The paper figure and the widget call the same three, so they can not disagree.
"""
from .ablation import AblationRow, plot_ablation
from .base import block_label, display_relative, new_figure, stage_label
from .cam import CamArtists, CamDisplay, display_cam, overlay, plot_cam, plot_cam_grid, update_cam
from .distance import plot_distance_profile
from .erf import area_ratio_table, plot_erf, plot_erf_grid
from .maps import (
                   HeadErfArtists,
                   HeadErfDisplay,
                   HeadMapsArtists,
                   MapArtists,
                   OverlayArtists,
                   SAAArtists,
                   centre_crop,
                   display_head_erf,
                   display_head_maps,
                   display_overlay,
                   display_saa_maps,
                   plot_group_channels,
                   plot_head_erf,
                   plot_head_maps,
                   plot_image,
                   plot_map,
                   plot_modulator_maps,
                   plot_overlay,
                   plot_relative_map,
                   plot_saa_maps,
                   plot_sam_block,
                   update_head_erf,
                   update_head_maps,
                   update_overlay,
                   update_relative_map,
                   update_saa_maps,
)
from .spectrum import (
                   SpectrumArtists,
                   display_saa_spectrum,
                   plot_fourier,
                   plot_fourier_curves,
                   plot_fourier_highest,
                   plot_low_frequency_shares,
                   plot_saa_spectrum,
                   update_saa_spectrum,
)

__all__ = [
    "AblationRow", "plot_ablation", "block_label", "new_figure", "stage_label", "overlay", "plot_cam",
    "plot_cam_grid", "plot_distance_profile", "area_ratio_table", "plot_erf", "plot_erf_grid", "plot_group_channels",
    "plot_head_erf",
    "plot_head_maps", "plot_image", "plot_map", "plot_modulator_maps", "plot_sam_block", "plot_fourier",
    "plot_fourier_curves", "plot_fourier_highest", "plot_low_frequency_shares", "plot_overlay", "plot_saa_spectrum",
    "display_relative", "CamArtists", "CamDisplay", "display_cam", "update_cam", "HeadErfArtists", "HeadErfDisplay",
    "HeadMapsArtists", "MapArtists", "OverlayArtists", "SAAArtists", "centre_crop", "display_head_erf",
    "display_head_maps", "display_overlay", "display_saa_maps", "plot_relative_map", "plot_saa_maps",
    "update_head_erf", "update_head_maps", "update_overlay", "update_relative_map", "update_saa_maps",
    "SpectrumArtists", "display_saa_spectrum", "update_saa_spectrum",
]
