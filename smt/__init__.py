"""SMT, the Scale-Aware Modulation Transformer (Lin et al., ICCV 2023), as timm models with named taps.

Importing `smt` registers `smt_tiny`, `smt_small`, `smt_base`, `smt_large`, `smt_nano` and
`test_smt` with timm, so `timm.create_model("smt_tiny")` works.
"""
from .checkpoint import create_model_from_checkpoint, read_checkpoint
from .demo import CLASS_NAMES, demo_images, demo_model  # the shipped demo models and images
from .model import SMT, TAPS, VARIANTS, checkpoint_filter_fn, to_official_state_dict

__all__ = ["SMT", "TAPS", "VARIANTS", "checkpoint_filter_fn", "to_official_state_dict",
           "read_checkpoint", "create_model_from_checkpoint", "CLASS_NAMES", "demo_images", "demo_model"]
