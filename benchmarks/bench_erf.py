"""ERF throughput: per-image loop vs one backward pass per batch (RepLKNet's measure).

    python benchmarks/bench_erf.py [--variant smt_tiny] [--images 32] [--resolution 224] [--repeats 2]

Both ways compute the same map (checked here to 1e-6); the loop is what RepLKNet's script does.
Repeats alternate loop and batched runs; the table shows the median images per second and the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch

import smt  # noqa: F401
from viz.analysis.erf import effective_receptive_field


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="smt_tiny")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    torch.manual_seed(0)
    model = timm.create_model(args.variant).to(args.device).eval()
    x = torch.randn(args.images, 3, args.resolution, args.resolution, device=args.device)
    times: dict[str, list[float]] = {"loop": [], "batched": []}
    maps = {}
    for _ in range(args.repeats):
        for name, bs in (("loop", 1), ("batched", args.batch_size)):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            maps[name] = effective_receptive_field(model, x, batch_size=bs).erf
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    diff = (maps["loop"] - maps["batched"]).abs().max().item()
    ips = {k: args.images / statistics.median(v) for k, v in times.items()}
    print(f"{args.variant} @ {args.resolution}, {args.images} images, {args.device}, "
          f"{torch.get_num_threads()} threads, max |loop - batched| = {diff:.1e}")
    print(f"{'mode':<8} {'img/s':>8}")
    for k, v in ips.items():
        print(f"{k:<8} {v:>8.2f}")
    print(f"batched / loop: {ips['batched'] / ips['loop']:.2f}x")


if __name__ == "__main__":
    main()
