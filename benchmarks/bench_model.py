"""Images per second of SMT forward passes on this machine's CPU (float32, eval, no grad).

    python benchmarks/bench_model.py [--variants smt_tiny smt_base] [--batch-sizes 1 8] [--repeats 5]

Each configuration is warmed up, then timed `--repeats` times; the table shows the median.
"""
from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch

import smt  # noqa: F401


def images_per_second(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        model(x)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return x.shape[0] / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["smt_tiny", "smt_base"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, {args.resolution}px")
    print(f"{'variant':<10} {'batch':>5} {'img/s':>8}")
    for name in args.variants:
        model = timm.create_model(name).eval()
        for bs in args.batch_sizes:
            x = torch.randn(bs, 3, args.resolution, args.resolution)
            print(f"{name:<10} {bs:>5} {images_per_second(model, x, args.repeats):>8.1f}", flush=True)


if __name__ == "__main__":
    main()
