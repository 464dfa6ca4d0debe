"""SMT beside a plain ViT, a Swin and a ConvNeXt trained on the same data: one table of the local-to-global measures.

    python benchmarks/compare_backbones.py [--images 64] [--queries 16]

For the demo models `nano2k` (SMT-nano), `vit`, `swin` and `convnext`, trained with one recipe for the same
number of steps (their cards), and `main` (the flagship SMT-nano, trained longer) for reference; those in
`data/demo`. On the shipped test canvases (112 px): training steps and minutes (from each card), parameters,
multiply-adds of one image, top-1 on the 10000 test canvases (the card's, Wilson interval), mean attention
distance (ViT, Swin and SMT's MSA blocks) and modulation distance (SMT's SAM blocks) per stage (ViT: per third
of its depth; 16 canvases), the last stage's ERF area ratio at t = 0.5 (32 canvases), and the highest-frequency
relative log amplitude per stage (mean over its blocks; `--images` canvases). Every average over images is
given with its 95% bootstrap interval over those images (`viz.analysis.stats`). Distances are in input pixels.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _groups(names: list[str], model) -> list[list[int]]:
    """Indices of the blocks of each stage (SMT, Swin, ConvNeXt) or of each third of a plain ViT."""
    if names and names[0].startswith("blocks."):
        n = len(names)
        return [list(range(round(n * g / 3), round(n * (g + 1) / 3))) for g in range(3)]
    out: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        out.setdefault(name.split(".blocks.")[0], []).append(i)
    return list(out.values())


def _fmt(estimates, digits=1) -> str:
    """Estimates (or None) as "m [lo, hi]" joined by " / "."""
    return " / ".join("-" if e is None else f"{e.estimate:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"
                      for e in estimates)


def card(name: str) -> dict:
    """Steps, training minutes and top-1 on the 10000 test canvases that a shipped model's card states."""
    import re

    from smt.demo import demo_weights_path

    text = demo_weights_path(name).with_suffix(".md").read_text()
    made = re.search(r"Made (\d+) steps \(\d+ canvases\) in ([\d.]+) minutes", text)
    top1 = re.search(r"10000 canvases \(seed \d+\), shipped float16 weights \| \*\*([\d.]+)\*\*", text)
    return {"steps": int(made.group(1)) if made else None, "minutes": float(made.group(2)) if made else None,
            "top1_10k": float(top1.group(1)) if top1 else None}


def measure(name: str, n_images: int, queries: int) -> dict:
    from smt.demo import demo_images, demo_model
    from smt.summary import count_macs
    from viz.analysis import block_fourier_profile, smt_distance_profile, timm_attention_profile
    from viz.analysis.erf import area_ratio_intervals, effective_receptive_field
    from viz.analysis.stats import mean_interval, wilson_interval

    model = demo_model(name)
    x = demo_images().model_input()
    imgs = x[:n_images]
    t0 = time.perf_counter()
    profile = block_fourier_profile(model, imgs)
    names = [b.name for b in profile]
    groups = _groups(names, model)
    high = [mean_interval(np.mean([profile[i].per_image[:, -1].numpy() for i in g], axis=0)) for g in groups]
    if hasattr(model, "stage_block_types"):
        dist = smt_distance_profile(model, imgs[:16], queries=queries, progress=False)
    else:
        try:
            dist = timm_attention_profile(model, imgs[:16], progress=False)
        except ValueError:
            dist = []
    by_name = {d.name: d for d in dist}

    def stage_mean(g, kind):
        rows = [by_name[names[i]].per_image.double().numpy() for i in g
                if names[i] in by_name and by_name[names[i]].kind == kind]
        return mean_interval(np.mean(rows, axis=0)) if rows else None

    attention = [stage_mean(g, "msa") for g in groups]
    modulation = [stage_mean(g, "sam") for g in groups]
    erf = effective_receptive_field(model, imgs[:32], batch_size=8, keep_per_image=True)
    area = area_ratio_intervals(erf.per_image, (0.5,))[0.5]
    c = card(name)
    top1 = wilson_interval(round(c["top1_10k"] * 100), 10000) if c["top1_10k"] is not None else None
    return {"name": name, "params": sum(p.numel() for p in model.parameters()), "macs": count_macs(model, 112),
            "top1": top1, "attention": attention, "modulation": modulation, "area": area, "highest": high,
            "seconds": time.perf_counter() - t0, "groups": len(groups), **c}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=64, help="canvases for the spectra (distances use 16, ERF 32)")
    p.add_argument("--queries", type=int, default=16, help="query tokens per SAM block for modulation distance")
    args = p.parse_args()
    from smt.demo import STEP_MATCHED_SMT, available_backbones, demo_weights_path

    names = [n for n in (STEP_MATCHED_SMT, *available_backbones(), "main") if demo_weights_path(n).is_file()]
    rows = [measure(n, args.images, args.queries) for n in names]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; each average over images with its 95% "
          f"bootstrap interval [low, high] over those images; distances in input pixels per stage (ViT: per third "
          f"of its blocks), '-' where a stage has no such block\n")
    print("| model | steps | train min | params | MMACs @112 | top-1 % (10000 canvases) | attention distance px "
          "(16 canvases) | modulation distance px (16) | ERF area ratio, last stage, t = 0.5 (32) | highest-freq. "
          f"rel. log amplitude ({args.images}) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        top1 = "-" if r["top1"] is None else f"{100 * r['top1'].estimate:.1f} [{100 * r['top1'].low:.1f}, " \
                                             f"{100 * r['top1'].high:.1f}]"
        print(f"| {r['name']} | {r['steps']} | {r['minutes']:.1f} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e6:.0f} "
              f"| {top1} | {_fmt(r['attention'])} | {_fmt(r['modulation'])} | {_fmt([r['area']], 3)} | "
              f"{_fmt(r['highest'], 2)} |")
    steps = {r["name"]: r["steps"] for r in rows}
    equal = sorted(n for n in steps if n != "main" and steps[n] == steps.get(STEP_MATCHED_SMT))
    print(f"\nat equal steps ({steps.get(STEP_MATCHED_SMT)}): {', '.join(equal) or 'none'}; main: {steps.get('main')} "
          f"steps (the flagship, for reference)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
