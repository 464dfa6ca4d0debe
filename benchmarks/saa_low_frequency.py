"""Low-frequency share of the SAA input vs its output (the modulator) in every SAM block of an SMT model.

    python benchmarks/saa_low_frequency.py [--variant smt_tiny] [--weights FILE] [--radius 0.25 0.5]

A measurement, not a timing. Images: 2 Gaussian-noise images and 2 simple synthetic scenes (a disc on a
smooth ramp; large bars), 224 px, seed 0. Without `--weights` the model is randomly initialised (seed 0).
The share is the fraction of non-DC spectral energy within `radius` (units of pi) of zero frequency,
after removing each channel's mean (`viz.analysis.low_frequency_share`).
"""
from __future__ import annotations

import argparse

import timm
import torch

import smt  # noqa: F401
from viz.analysis import saa_low_frequency_shares


def images(size: int = 224) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(2, 3, size, size, generator=g)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    disc = ((yy ** 2 + xx ** 2) < 0.4 ** 2).float() * 2 - 1 + 0.5 * xx
    bars = torch.sign(torch.sin(xx * 3.14159 * 4))
    scenes = torch.stack([torch.stack([disc, disc * 0.5, -disc]), torch.stack([bars, -bars, bars * 0.3])])
    return torch.cat([noise, scenes])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="smt_tiny")
    p.add_argument("--weights", default=None)
    p.add_argument("--radius", nargs="+", type=float, default=[0.25, 0.5])
    args = p.parse_args()
    torch.manual_seed(0)
    model = timm.create_model(args.variant)
    if args.weights:
        model.load_pretrained(args.weights)
    model.eval()
    x = images()
    print(f"{args.variant} ({'weights ' + args.weights if args.weights else 'random init, seed 0'}), "
          f"4 images at 224 px")
    for subset, sl in (("noise", slice(0, 2)), ("scenes", slice(2, 4))):
        for r in args.radius:
            print(f"\n{subset}, radius {r} pi: share of non-DC energy at |f| <= r")
            print(f"{'block':<20} {'SAA input':>10} {'modulator':>10} {'after-before':>13}")
            for row in saa_low_frequency_shares(model, x[sl], radius=r):
                print(f"{row.block:<20} {row.saa_input:10.4f} {row.modulator:10.4f} "
                      f"{row.modulator - row.saa_input:+13.4f}")


if __name__ == "__main__":
    main()
