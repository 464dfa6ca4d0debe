"""`python -m viz demo` (`make demo`): the main job on the bundled defaults.

1. The variant table: size, multiply-adds, feature sizes, and whether the authors' logits are
   reproduced (`smt.summary`).
2. The demo model (SMT-nano trained by this project on Scaled Fashion-MNIST, `smt.demo`) on the
   shipped evaluation subset: top-1 overall and per class, and the Grad-CAM pointing game against
   the items' boxes for each stage's output, next to the hit rate of a uniformly random point.
3. What Scale-Aware Modulation does in it: the ERF's high-contribution area ratios, the per-head
   receptive fields of the first SAM block, and the low-frequency share of SAA input vs output per
   SAM block.

A user's own checkpoint (an official release file, say) is one flag or variable away:
`--checkpoint PATH` or `SMT_CHECKPOINT=PATH` (the architecture is read from the file); steps 2-3
then run on it, at its own input size, without the accuracy (other classes).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

import torch
import torch.nn.functional as F


def _pct(x: float) -> str:
    return f"{x:5.1f}%"


def report(model: torch.nn.Module, images: torch.Tensor, labels: Optional[torch.Tensor],
           boxes: Optional[torch.Tensor], class_names: Optional[tuple], *, num_erf: int = 32) -> None:
    """Print the demo's analyses of `model` (eval mode) on normalised `images` (B, 3, H, W)."""
    from .analysis.cam import class_activation_maps, default_target_layers, pointing_game
    from .analysis.erf import effective_receptive_field, erf_display, head_erf, high_contribution_area_ratio
    from .analysis import saa_low_frequency_shares, sam_block_names

    H, W = images.shape[-2:]
    if labels is not None:
        with torch.no_grad():
            pred = torch.cat([model(images[i:i + 128]).argmax(1) for i in range(0, len(images), 128)])
        correct = pred == labels
        print(f"\ntop-1 on the {len(labels)} shipped test canvases: {_pct(100 * correct.float().mean().item())}")
        for c, name in enumerate(class_names):
            sel = labels == c
            print(f"  {name:<12} {_pct(100 * correct[sel].float().mean().item())}  ({int(sel.sum())} images)")
        b = boxes.float()
        chance = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) / (H * W)).mean().item()
        print(f"Grad-CAM (true class) pointing game vs item boxes (a uniformly random point: "
              f"{_pct(100 * chance)}):")
        stages = range(1, len(model.stages))  # stage 0 (stride 4) is below Grad-CAM's usual depth
        layers = [default_target_layers(model, s)[0] for s in stages]
        batches = [class_activation_maps(model, images[i:i + 64], labels[i:i + 64].tolist(), target_layers=layers,
                                         per_layer=True) for i in range(0, len(images), 64)]  # one pass per batch
        for k, s in enumerate(stages):
            cams = torch.cat([maps[k] for maps in batches])
            hits = pointing_game(cams, boxes, (H, W))
            print(f"  stage {s} output ({cams.shape[-2]}x{cams.shape[-1]}) {_pct(100 * hits)}")

    r = effective_receptive_field(model, images[:num_erf])
    ratios = high_contribution_area_ratio(erf_display(r.erf))
    text = ", ".join(f"t={t}: {'n/a' if v is None else f'{v:.4f}'}" for t, v in ratios.items())
    print(f"\nERF of the last stage ({r.num_images} images, {r.num_skipped} skipped): area ratio {text}")

    first = sam_block_names(model)[0]
    maps = head_erf(model, images[:8], first)
    support = [int((m > 1e-6 * m.max()).sum()) for m in maps]
    kernels = [c.kernel_size[0] for c in model.get_submodule(first).attn.mhmc.convs]
    print(f"per-head receptive field of {first}: kernels {kernels} -> non-zero positions {support}")

    if isinstance(model.get_submodule(first).attn.saa, torch.nn.Identity):
        print("\nSAA is off in this model: no low-frequency share before/after SAA")
        return
    print("\nlow-frequency share (radius 0.5 pi) of SAA input -> output, per SAM block:")
    for s in saa_low_frequency_shares(model, images[:num_erf], radius=0.5):
        print(f"  {s.block:<20} {s.saa_input:.3f} -> {s.modulator:.3f}")


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m viz demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=os.environ.get("SMT_CHECKPOINT"),
                   help="an SMT checkpoint to analyse instead of the demo model (env SMT_CHECKPOINT)")
    p.add_argument("--demo-model", default="main", help="which shipped demo model (main, heads1, heads2, heads4, heads8, nosaa)")
    p.add_argument("--no-summary", action="store_true", help="skip the variant table")
    p.add_argument("--num-images", type=int, default=512, help="shipped canvases to evaluate (at most 512)")
    args = p.parse_args(argv)

    import smt
    from smt.demo import demo_images, demo_model

    if not args.no_summary:
        from smt.summary import main as summary

        if summary() != 0:
            return 1
    data = demo_images()
    n = min(args.num_images, len(data))
    images = data.model_input(slice(0, n))
    torch.manual_seed(0)
    if args.checkpoint:
        model = smt.create_model_from_checkpoint(args.checkpoint).eval()
        size = model.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        print(f"\n== {args.checkpoint} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params), "
              f"demo canvases resized to {size}px ==")
        report(model, images, None, None, None)
    else:
        model = demo_model(args.demo_model)
        print(f"\n== demo model {args.demo_model!r}: smt_nano trained on Scaled Fashion-MNIST "
              f"(data/demo/; model card next to the weights) ==")
        report(model, images, data.labels[:n], data.boxes[:n], data.class_names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
