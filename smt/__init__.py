"""SMT, the Scale-Aware Modulation Transformer (Lin et al., ICCV 2023), as timm models with named taps.

Importing `smt` registers `smt_tiny`, `smt_small`, `smt_base`, `smt_large`, `smt_nano` and
`test_smt` with timm, so `timm.create_model("smt_tiny")` works.
"""
from .model import SMT, TAPS, VARIANTS, checkpoint_filter_fn, to_official_state_dict
from .checkpoint import create_model_from_checkpoint, read_checkpoint

__all__ = ["SMT", "TAPS", "VARIANTS", "checkpoint_filter_fn", "to_official_state_dict",
           "read_checkpoint", "create_model_from_checkpoint"]
from .demo import CLASS_NAMES, demo_images, demo_model  # noqa: E402  (the shipped demo models and images)

__all__ += ["CLASS_NAMES", "demo_images", "demo_model"]
