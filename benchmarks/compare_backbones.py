"""SMT beside a plain ViT, a Swin and a ConvNeXt trained on the same data: one table of the local-to-global measures.

    python benchmarks/compare_backbones.py [--images 64] [--markdown]

For the demo models `main` (SMT-nano), `vit`, `swin` and `convnext` (`data/demo`, those present), on the
shipped test canvases (112 px): parameters, multiply-adds of one image, top-1 on the 512 shipped canvases,
mean attention distance (ViT, Swin and SMT's MSA blocks) and modulation distance (SMT's SAM blocks) per
stage (ViT: per third of its depth), the last stage's ERF area ratios (t = 0.2, 0.5, 0.99), and the
highest-frequency relative log amplitude per stage (mean over its blocks). Distances are in input pixels.
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


def _fmt(values, digits=1) -> str:
    return " / ".join("-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"
                      for v in values)


def measure(name: str, n_images: int, queries: int) -> dict:
    from smt.demo import demo_images, demo_model
    from smt.summary import count_macs
    from viz.analysis import block_fourier_profile, smt_distance_profile, timm_attention_profile
    from viz.analysis.erf import (
        effective_receptive_field,
        erf_display,
        high_contribution_area_ratio,
        largest_square_area_ratio,
    )

    model = demo_model(name)
    data = demo_images()
    x = data.model_input()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 128]).argmax(1) for i in range(0, len(x), 128)])
    top1 = float(100 * (pred == data.labels).float().mean())
    imgs = x[:n_images]
    t0 = time.perf_counter()
    profile = block_fourier_profile(model, imgs)
    names = [b.name for b in profile]
    groups = _groups(names, model)
    high = [float(np.mean([profile[i].curve.highest for i in g])) for g in groups]
    if hasattr(model, "stage_block_types"):
        dist = smt_distance_profile(model, imgs[:16], queries=queries, progress=False)
    else:
        try:
            dist = timm_attention_profile(model, imgs[:16], progress=False)
        except ValueError:
            dist = []
    by_name = {d.name: d for d in dist}
    attention, modulation = [], []
    for g in groups:
        att = [by_name[names[i]].distance for i in g if names[i] in by_name and by_name[names[i]].kind == "msa"]
        mod = [by_name[names[i]].distance for i in g if names[i] in by_name and by_name[names[i]].kind == "sam"]
        attention.append(float(np.mean(att)) if att else None)
        modulation.append(float(np.mean(mod)) if mod else None)
    erf = effective_receptive_field(model, imgs[:32], batch_size=8)
    display = erf_display(erf.erf)
    area = high_contribution_area_ratio(display, (0.2, 0.5, 0.99))
    area_max = largest_square_area_ratio(display.shape)
    return {"name": name, "params": sum(p.numel() for p in model.parameters()), "macs": count_macs(model, 112),
            "top1": top1, "attention": attention, "modulation": modulation, "area": area, "area_max": area_max,
            "highest": high, "seconds": time.perf_counter() - t0, "groups": len(groups)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=64, help="canvases for the spectra (distances use 16, ERF 32)")
    p.add_argument("--queries", type=int, default=16, help="query tokens per SAM block for modulation distance")
    args = p.parse_args()
    from smt.demo import available_backbones

    names = ["main", *available_backbones()]
    rows = [measure(n, args.images, args.queries) for n in names]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; distances in input pixels per stage "
          f"(ViT: per third of its blocks); '-' where a stage has no such block; an ERF area '> a' where the "
          f"largest centred square that fits (area ratio a) holds less than that share\n")
    print("| model | params | MMACs @112 | top-1 (shipped 512) | attention distance (px) | modulation distance (px) "
          "| ERF area, last stage (t = 0.2 / 0.5 / 0.99) | highest-freq. rel. log amplitude |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        area = " / ".join(f"{r['area'][t]:.3f}" if r["area"][t] is not None else f"> {r['area_max']:.3f}"
                          for t in (0.2, 0.5, 0.99))
        print(f"| {r['name']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e6:.0f} | {r['top1']:.1f} | "
              f"{_fmt(r['attention'])} | {_fmt(r['modulation'])} | {area} | {_fmt(r['highest'], 2)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
