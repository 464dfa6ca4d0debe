"""Analyses as pure functions over captured tensors: tensors in, tensors or small frozen dataclasses out.

Nothing here imports matplotlib; plots live in `viz.plot`.
"""
from .distance import (AttentionSpec, BlockDistance, attention_distances, footprint_mean_distance,
                       fused_attn_disabled, gradient_distance, mean_attention_distance, modulation_distance,
                       smt_attention_distances, smt_attention_specs, smt_distance_profile, smt_modulation_distances,
                       swin_attention_specs, token_distances, vit_attention_specs)
from .features import (LowFrequencyShare, SAMFeatures, saa_low_frequency_shares, authors_modulator_maps, group_channel_maps, head_activation_maps, mask_heads,
                       modulator_map, msa_block_names, regroup_heads, require_eval, sam_block_names, sam_features)
from .spectrum import (BlockFourier, FourierCurve, smt_fourier_profile, PowerSpectrum2D, RadialSpectrum, frequency_grid, low_frequency_share,
                       power_spectrum_2d, radial_power_spectrum, relative_log_amplitude, tokens_to_map)

__all__ = [
    "AttentionSpec", "BlockDistance", "attention_distances", "footprint_mean_distance", "fused_attn_disabled",
    "gradient_distance", "mean_attention_distance", "modulation_distance", "smt_attention_distances",
    "smt_attention_specs", "smt_distance_profile", "smt_modulation_distances", "swin_attention_specs",
    "token_distances", "vit_attention_specs",
    "LowFrequencyShare", "saa_low_frequency_shares", "SAMFeatures", "authors_modulator_maps", "group_channel_maps", "head_activation_maps", "mask_heads",
    "modulator_map", "msa_block_names", "regroup_heads", "require_eval", "sam_block_names", "sam_features",
    "BlockFourier", "smt_fourier_profile", "FourierCurve", "PowerSpectrum2D", "RadialSpectrum", "frequency_grid", "low_frequency_share",
    "power_spectrum_2d", "radial_power_spectrum", "relative_log_amplitude", "tokens_to_map",
]
