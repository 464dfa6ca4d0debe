"""Analyses of SMT (and other timm models) built on named tap points.

`viz.capture` records module outputs by name; `viz.analysis` holds the analyses (pure functions).
Importing `viz` does not import matplotlib.
"""
from .analysis import (
                       low_frequency_share,
                       mask_heads,
                       mean_attention_distance,
                       modulation_distance,
                       power_spectrum_2d,
                       radial_power_spectrum,
                       relative_log_amplitude,
                       sam_features,
                       smt_distance_profile,
                       tokens_to_map,
)
from .capture import TAP_SHORTCUTS, Captured, capture

__all__ = [
    "capture", "Captured", "TAP_SHORTCUTS", "low_frequency_share", "mask_heads", "mean_attention_distance",
    "modulation_distance", "power_spectrum_2d", "radial_power_spectrum", "relative_log_amplitude",
    "sam_features", "smt_distance_profile", "tokens_to_map",
]
