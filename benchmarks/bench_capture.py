"""Cost of `viz.capture`: forward time of SMT with every tap captured to the CPU vs no capture.

    python benchmarks/bench_capture.py [--variant smt_tiny] [--batch-size 8] [--resolution 224] [--repeats 5]

Eval mode, no grad, float32. The two settings alternate (plain, capture, plain, capture, ...) after one
warm-up each, so drift on a shared machine hits both alike. The headline is the ratio of the best times (least
disturbed by other load); the ratio of medians and the median of paired ratios are printed too. Capturing
`attn.attn_weights` makes MSA blocks materialise the attention matrix instead of using fused SDPA:
that cost is part of capturing attention and is included. Goal: ratio <= 1.3.
"""
from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch

import smt  # noqa: F401
import viz


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="smt_tiny")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = timm.create_model(args.variant).eval()
    x = torch.randn(args.batch_size, 3, args.resolution, args.resolution)

    def plain() -> None:
        model(x)

    def captured() -> None:
        with viz.capture(model, "taps", to="cpu") as cap:
            model(x)
        captured.size = sum(t.numel() * t.element_size() for n in cap for t in cap.all(n))
        captured.count = len(cap)

    times = {"plain": [], "capture": []}
    with torch.no_grad():
        plain(), captured()  # warm-up
        for _ in range(args.repeats):
            for name, fn in (("plain", plain), ("capture", captured)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    pairs = statistics.median(c / p for p, c in zip(times["plain"], times["capture"]))
    print(f"{args.variant} {args.resolution}px batch {args.batch_size}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.repeats} alternating repeats")
    print(f"taps captured: {captured.count} modules, {captured.size / 2 ** 20:.1f} MiB per forward")
    for k in ("plain", "capture"):
        print(f"{k:<8} median {med[k] * 1000:8.1f} ms  (all: {', '.join(f'{t * 1000:.0f}' for t in times[k])})")
    print(f"ratio of medians {med['capture'] / med['plain']:.3f}, median of paired ratios {pairs:.3f}")
    print(f"ratio capture-all / plain (best of each): {best['capture'] / best['plain']:.3f}  (goal <= 1.3)")


if __name__ == "__main__":
    main()
