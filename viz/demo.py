"""`python -m viz demo` (`make demo`): the main job on the bundled defaults.

1. The variant table: size, multiply-adds, feature sizes, and whether the authors' logits are
   reproduced (`smt.summary`).
2. The demo model (SMT-nano trained by this project on Scaled Fashion-MNIST, `smt.demo`) on the
   shipped evaluation subset: top-1 overall and per class, and the Grad-CAM pointing game against
   the items' boxes for each stage's output, next to the hit rate of a uniformly random point.
3. What Scale-Aware Modulation does in it: the ERF's high-contribution area ratios, the per-head
   receptive fields of the first SAM block, and the low-frequency share of SAA input vs output per
   SAM block.
4. The figure set (`python -m viz figures`) into `figures/` with `index.html`, drawn from the same
   analyses as the report (one `viz.figures.FigureSet`), then the list of written files and each
   figure's wall time.

A user's own checkpoint (an official release file, say) is one flag or variable away:
`--checkpoint PATH` or `SMT_CHECKPOINT=PATH` (the architecture is read from the file); steps 2-4
then run on it, at its own input size, on the photographs in `data/images`, without the accuracy and
the pointing game (other classes, no boxes).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Optional

import torch


def _pct(x: float) -> str:
    return f"{x:5.1f}%"


def report(fs) -> None:
    """Print the demo's analyses of a `viz.figures.FigureSet`'s source (the figures reuse what it computes)."""
    from .analysis import sam_block_names
    from .analysis.erf import high_contribution_area_ratio

    src = fs.source
    model = src.model
    if src.labels is not None:
        correct = fs.predictions == src.labels
        print(f"\ntop-1 on the {len(src.labels)} shipped test canvases: {_pct(100 * correct.float().mean().item())}")
        for c, name in enumerate(src.class_names):
            sel = src.labels == c
            print(f"  {name:<12} {_pct(100 * correct[sel].float().mean().item())}  ({int(sel.sum())} images)")
    if src.boxes is not None:
        n = len(fs.images())
        b = src.boxes[:n].float()
        chance = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) / fs.input_size ** 2).mean().item()
        print(f"Grad-CAM (true class) pointing game vs item boxes (a uniformly random point: {_pct(100 * chance)}), "
              f"{n} canvases:")
        for s, hits in fs.pointing.items():
            cams = fs.cams[s]
            print(f"  stage {s + 1} output ({cams.shape[-2]}x{cams.shape[-1]}) {_pct(100 * hits)}")

    last = len(model.stages) - 1
    r, display = fs.erf(last)
    ratios = high_contribution_area_ratio(display, fs.settings.thresholds)
    text = ", ".join(f"t={t}: {'n/a' if v is None else f'{v:.4f}'}" for t, v in ratios.items())
    print(f"\nERF of the last stage ({r.num_images} images, {r.num_skipped} skipped): area ratio {text}")

    first = sam_block_names(model)[0]
    maps = fs.head_erf(first)
    support = [int((m > 1e-6 * m.max()).sum()) for m in maps]
    kernels = [c.kernel_size[0] for c in model.get_submodule(first).attn.mhmc.convs]
    print(f"per-head receptive field of {first}: kernels {kernels} -> non-zero positions {support}")

    if not fs.low_frequency:
        print("\nSAA is off in this model: no low-frequency share before/after SAA")
        return
    print(f"\nlow-frequency share (radius {fs.settings.radius} pi) of SAA input -> output, per SAM block "
          f"({len(fs.images())} images):")
    for s in fs.low_frequency:
        print(f"  {s.block:<20} {s.saa_input:.3f} -> {s.modulator:.3f}")


def _checkpoint_source(path: str, num_images: Optional[int]):
    import smt

    from .figures import DATA_IMAGES, folder_source

    model = smt.create_model_from_checkpoint(path)
    name = model.pretrained_cfg.get("architecture", "smt") if hasattr(model, "pretrained_cfg") else "smt"
    size = model.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
    src = folder_source(name, DATA_IMAGES, checkpoint=path, num_images=num_images, input_size=size,
                        num_classes=model.num_classes)
    src.name = Path(path).name
    return src


def main(argv: Optional[list[str]] = None) -> int:
    from .figures import FIGURES

    p = argparse.ArgumentParser(prog="python -m viz demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=os.environ.get("SMT_CHECKPOINT"),
                   help="an SMT checkpoint to analyse instead of the demo model (env SMT_CHECKPOINT)")
    p.add_argument("--demo-model", default="main",
                   help="which shipped demo model (main, heads1, heads2, heads4, heads8, nosaa)")
    p.add_argument("--no-summary", action="store_true", help="skip the variant table")
    p.add_argument("--num-images", type=int, default=512, help="shipped canvases to evaluate (at most 512); "
                                                                "the analyses use at most 128 of them")
    p.add_argument("--figures", default="figures", help="folder for the figure set (default: figures)")
    p.add_argument("--no-figures", action="store_true", help="print the report only")
    p.add_argument("--only", help="comma-separated figures (" + ", ".join(FIGURES) + ")")
    p.add_argument("--format", default="pdf,png", help="figure formats: pdf, png, svg")
    p.add_argument("--venue", default="cvpr2024", help="style preset (cvpr2024, eccv2024, neurips2024, ...)")
    p.add_argument("--overwrite", action="store_true", help="replace the figures' files in --figures")
    p.add_argument("--debug", action="store_true", help="show tracebacks (of an input error or a failing figure)")
    args = p.parse_args(argv)
    from smt.inputs import cli_errors

    with cli_errors(args.debug) as code:
        return _run(args, argv)
    return code[0]


def _run(args: argparse.Namespace, argv: Optional[list[str]]) -> int:
    from .figures import FIGURES, FigureSet, Settings, load_source, print_outcomes, render
    from .validation import check_demo_args, check_source

    names, formats = check_demo_args(args, FIGURES)  # every input, before the variant table or any model
    t0 = time.perf_counter()
    torch.manual_seed(0)
    settings = Settings(num_images=min(args.num_images, 128), venue=args.venue)
    if args.checkpoint:
        fs = FigureSet(lambda: _checkpoint_source(args.checkpoint, args.num_images), settings)
        check_source(fs, (), checkpoint=args.checkpoint)
        source = fs.source
        print(f"\n== {args.checkpoint} ({sum(p.numel() for p in fs.model.parameters()) / 1e6:.2f}M params), "
              f"{len(source.images)} images of data/images at {fs.input_size}px ==")
    else:
        fs = FigureSet(load_source(args.demo_model, num_images=args.num_images), settings)
    if not args.no_summary:
        from smt.reference import reference_path
        from smt.summary import format_table

        rows = fs.summary
        print(format_table(rows))
        print(f"\nreference facts: {reference_path()}")
        bad = [r.name for r in rows if r.reference and not r.reference.startswith("ok")]
        if bad:
            print(f"reference logits NOT reproduced for: {', '.join(bad)}")
            return 1
    if not args.checkpoint:
        print(f"\n== demo model {args.demo_model!r}: smt_nano trained on Scaled Fashion-MNIST "
              f"(data/demo/; model card next to the weights) ==")
    report(fs)
    print(f"\nreport: {time.perf_counter() - t0:.1f} s")
    if args.no_figures:
        return 0
    out = Path(args.figures)
    shown = [a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--overwrite", "--debug")]
    command = "python -m viz demo " + " ".join(shown)
    outcomes = render(fs, out, names, formats=formats, command=command.strip(), debug=args.debug)
    print_outcomes(outcomes, out)
    print(f"total: {time.perf_counter() - t0:.1f} s")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
