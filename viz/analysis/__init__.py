"""Analyses as pure functions over captured tensors: tensors in, tensors or small frozen dataclasses out.

Nothing here imports matplotlib; plots live in `viz.plot`.
"""
from .common import (block_index, block_names, msa_block_names, require_eval, require_smt, sam_block_names,
                     sam_module, stage_grid, stage_grids, stage_stride, tokens_to_map)
from .distance import (AttentionSpec, BlockDistance, attention_distances, footprint_mean_distance,
                       fused_attn_disabled, gradient_distance, mean_attention_distance, modulation_distance,
                       smt_attention_distances, smt_attention_specs, smt_distance_profile, smt_modulation_distances,
                       swin_attention_specs, timm_attention_profile, token_distances, vit_attention_specs)
from .features import (SAMFeatures, SMTForward, authors_modulator_maps, group_channel_maps, head_activation_maps,
                       last_sam_blocks, mask_heads, modulator_map, regroup_heads, sam_features, smt_forward)
from .spectrum import (BlockFourier, block_fourier_profile, block_low_frequency_shares, FourierCurve, LowFrequencyShare, PowerSpectrum2D, RadialSpectrum,
                       fourier_profile, frequency_grid, low_frequency_share, low_frequency_shares, power_spectrum_2d,
                       radial_power_spectrum, relative_log_amplitude, saa_low_frequency_shares, smt_fourier_profile)

__all__ = [
    "block_index", "block_names", "msa_block_names", "require_eval", "require_smt", "sam_block_names", "sam_module",
    "stage_grid", "stage_grids", "stage_stride", "tokens_to_map",
    "AttentionSpec", "BlockDistance", "attention_distances", "footprint_mean_distance", "fused_attn_disabled",
    "gradient_distance", "mean_attention_distance", "modulation_distance", "smt_attention_distances",
    "smt_attention_specs", "smt_distance_profile", "smt_modulation_distances", "swin_attention_specs",
    "token_distances", "vit_attention_specs", "timm_attention_profile", "block_fourier_profile",
    "block_low_frequency_shares",
    "SAMFeatures", "SMTForward", "authors_modulator_maps", "group_channel_maps", "head_activation_maps",
    "last_sam_blocks", "mask_heads", "modulator_map", "regroup_heads", "sam_features", "smt_forward",
    "BlockFourier", "FourierCurve", "LowFrequencyShare", "PowerSpectrum2D", "RadialSpectrum", "fourier_profile",
    "frequency_grid", "low_frequency_share", "low_frequency_shares", "power_spectrum_2d", "radial_power_spectrum",
    "relative_log_amplitude", "saa_low_frequency_shares", "smt_fourier_profile",
]
