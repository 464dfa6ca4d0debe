"""Cost of one training step of `python -m smt.train`: AdamW's fused kernel vs its per-parameter loop.

    python benchmarks/bench_train_step.py [--model smt_nano] [--batch-size 32] [--resolution 64] [--repeats 20]

One process, float32, on the CPU, with the optimiser `smt.train` builds (`make_optimizer`, weight decay
off for biases and norms). A step is forward, label-smoothed cross-entropy, backward and the optimiser
step; the optimiser step alone is timed too. The two settings alternate (loop, fused, loop, fused, ...)
after warm-up, so drift on a shared machine hits both alike. The headline ratios use the best time
of each setting (the least disturbed by other load); medians are printed too.
"""
from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch

import smt  # noqa: F401
from smt.train import build_parser, make_optimizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smt_nano")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: leave torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.resolution, args.resolution)
    y = torch.randint(0, 10, (args.batch_size,))
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    runs = {}
    for name, flag in (("loop", ["--no-fused-optimizer"]), ("fused", [])):
        model = timm.create_model(args.model, num_classes=10).train()
        runs[name] = (model, make_optimizer(model, build_parser().parse_args(flag), torch.device("cpu")))

    def step(model: torch.nn.Module, opt: torch.optim.Optimizer) -> float:
        loss = criterion(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t0 = time.perf_counter()
        opt.step()
        return time.perf_counter() - t0

    times = {k: {"step": [], "optimizer": []} for k in runs}
    for model, opt in runs.values():
        for _ in range(3):
            step(model, opt)
    for _ in range(args.repeats):
        for name, (model, opt) in runs.items():
            t0 = time.perf_counter()
            t_opt = step(model, opt)
            times[name]["step"].append(time.perf_counter() - t0)
            times[name]["optimizer"].append(t_opt)
    print(f"{args.model} {args.resolution}px batch {args.batch_size}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.repeats} alternating repeats")
    for name in runs:
        for part in ("step", "optimizer"):
            t = times[name][part]
            print(f"{name:<6} {part:<9} best {min(t) * 1000:7.1f} ms  median {statistics.median(t) * 1000:7.1f} ms")
    best = {k: {part: min(t) for part, t in v.items()} for k, v in times.items()}
    print(f"optimizer step, loop / fused (best): {best['loop']['optimizer'] / best['fused']['optimizer']:.2f}x")
    print(f"training step, loop / fused (best): {best['loop']['step'] / best['fused']['step']:.3f}x "
          f"({args.batch_size / best['fused']['step']:.0f} against {args.batch_size / best['loop']['step']:.0f} "
          f"images/s)")


if __name__ == "__main__":
    main()
