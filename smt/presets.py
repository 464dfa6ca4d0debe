"""Named architectures: a timm model name plus keyword arguments, for training (`--preset`) and the demo models.

The SMT demo models are `smt_nano` with an override or two (`DEMO_MODELS` in `smt.demo`). The
comparison backbones are timm's own ViT, Swin and ConvNeXt at SMT-nano's size (1.8-1.9M parameters
with a 10-class head, like SMT-nano's 1.95M, so that each ships as float16 in under 4 MB),
configured to take both training resolutions of Scaled Fashion-MNIST (64-px crops and 112-px
canvases) through timm's own options:

- `vit`: a plain ViT, global attention in every block, 8-px patches (14x14 tokens at 112 px, 8x8 at
  64), 160 channels, 6 blocks of 4 heads, a class token. `dynamic_img_size=True` interpolates the
  position embedding (learnt on the 14x14 grid) to the input's grid on every forward pass.
- `swin`: a Swin transformer, 4-px patches, three stages (44, 88, 176 channels; 2, 2, 4 blocks;
  2, 4, 8 heads of 22 channels) at strides 4, 8, 16. Windows of 4, 2 and 7 tokens: at 112 px the stage grids are
  28, 14 and 7, so every stage is tiled exactly (7x7, 7x7 and 1 window: stage 3 is global). At
  64 px the grids are 16, 8 and 4: stages 1-2 are tiled exactly (4x4 windows each), and stage 3's
  4x4 grid is one window that timm pads to 7x7. No window size of stage 3 tiles both 7 and 4 except
  1, so global attention in stage 3 at 112 px (where the models are analysed) was chosen.
  `dynamic_img_size=True` lets timm take both sizes.
- `convnext`: a ConvNeXt (depthwise 7x7 convolutions, no attention), timm's `convnext_atto` layout
  (2, 2, 6, 2 blocks) at 30, 60, 120, 240 channels. Convolutions take any size.
"""
from __future__ import annotations

from typing import Any

__all__ = ["BACKBONES", "TITLES", "preset"]

#: Comparison backbones: name -> (timm model name, keyword arguments).
BACKBONES: dict[str, tuple[str, dict[str, Any]]] = {
    "vit": ("vit_small_patch8_224", {"img_size": 112, "patch_size": 8, "embed_dim": 160, "depth": 6,
                                     "num_heads": 4, "dynamic_img_size": True}),
    "swin": ("swin_tiny_patch4_window7_224", {"img_size": 112, "embed_dim": 44, "depths": [2, 2, 4],
                                              "num_heads": [2, 4, 8], "window_size": [4, 2, 7],
                                              "dynamic_img_size": True}),
    "convnext": ("convnext_atto", {"dims": [30, 60, 120, 240], "depths": [2, 2, 6, 2]}),
}


#: How a backbone's name is written in words (legends, titles, cards).
TITLES = {"vit": "ViT", "swin": "Swin", "convnext": "ConvNeXt"}


def preset(name: str) -> tuple[str, dict[str, Any]]:
    """The (timm model name, keyword arguments) of a named backbone; a copy the caller may change."""
    if name not in BACKBONES:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(BACKBONES)} "
                         f"(or pass --model NAME --model-kwargs '{{...}}' for any timm model)")
    model, kwargs = BACKBONES[name]
    return model, dict(kwargs)
