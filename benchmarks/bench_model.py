"""Images per second of SMT on this machine's CPU (float32, eval): the fused path against the literal one.

    python benchmarks/bench_model.py                      # smt_tiny, smt_base; batch 1, 8; 224 px
    python benchmarks/bench_model.py --variants test_smt --resolution 64 --repeats 2   # seconds
    python benchmarks/bench_model.py --ablate --variants smt_tiny --batch-sizes 8 --passes fwd

`ref` is the literal path (`model.set_fused(False)`: the authors' computation, loop over MHMC
heads, concatenation, regrouping; MSA with explicit softmax weights), `fused` the default. `fwd` is a forward pass under
`torch.inference_mode`, `fwd+bwd` a forward pass and the backward pass to the input image (parameters
frozen, as for an effective receptive field or a saliency map). Within one configuration the paths
are timed alternately (the order rotating), `--repeats` times each after a warm-up, so that load on
a shared machine hits both alike; the table shows median images per second and the median of the per-repeat ratios.

`--ablate` adds one column per optimisation of the fused path, switched off on its own
(`smt.fused.FUSE`): time without it over time with all on, so above 1 is what it contributes.
`--clock cpu` times this process's CPU time instead of elapsed time: on a machine shared with other
jobs that is steadier (with one thread, `--threads 1`, it equals the elapsed time of an idle machine).
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import timm
import torch

import smt  # noqa: F401
from smt import fused as smt_fused

# name -> switches changed from the default fused path (None: the literal path)
ABLATIONS: dict[str, dict | None] = {
    "no one_dwconv": {"one_dwconv": False},
    "no fold_bn": {"fold_bn": False},
    "expand=conv": {"expand": "conv"},
    "expand=dense": {"expand": "dense"},
    "no tokens": {"tokens": False},
    "no inplace": {"inplace": False},
    "no dw_residual": {"dw_residual": False},
    "no channels_last": {"channels_last": False},
    "no onednn_linear": {"onednn_linear": False},
    "no onednn_gelu": {"onednn_gelu": False},
    "no sdpa": {"sdpa": False},
}


def make_step(model: torch.nn.Module, x: torch.Tensor, passes: str) -> Callable[[], None]:
    if passes == "fwd":
        def step() -> None:
            with torch.inference_mode():
                model(x)
    else:
        def step() -> None:
            xi = x.clone().requires_grad_(True)
            model(xi).sum().backward()
    return step


def run_config(model: torch.nn.Module, x: torch.Tensor, passes: str, paths: dict[str, dict | None],
               repeats: int, clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds per call for each path, the paths timed alternately."""
    default = dict(smt_fused.FUSE)

    def select(switches: dict | None) -> None:
        smt_fused.FUSE.clear()
        smt_fused.FUSE.update(default, **(switches or {}))
        model.set_fused(switches is not None)

    step = make_step(model, x, passes)
    times: dict[str, list[float]] = {k: [] for k in paths}
    try:
        for sw in paths.values():  # warm-up
            select(sw)
            step()
        order = list(paths.items())
        for r in range(repeats):
            for name, sw in order[r % len(order):] + order[:r % len(order)]:  # rotate: no path always first
                select(sw)
                t0 = clock()
                step()
                times[name].append(clock() - t0)
    finally:
        smt_fused.FUSE.clear()
        smt_fused.FUSE.update(default)
        model.set_fused(True)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["smt_tiny", "smt_base"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    p.add_argument("--passes", nargs="+", choices=["fwd", "fwd+bwd"], default=["fwd", "fwd+bwd"])
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--ablate", action="store_true", help="also time the fused path with each optimisation off")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: elapsed time; cpu: this process's CPU time (steadier on a shared machine)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    paths: dict[str, dict | None] = {"ref": None, "fused": {}}
    if args.ablate:
        paths.update(ABLATIONS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU float32, {args.resolution}px, "
          f"median of {args.repeats} alternating repeats, {args.clock} clock")
    extra = [k for k in paths if k not in ("ref", "fused")]
    head = f"{'variant':<10} {'batch':>5} {'pass':<8} {'ref img/s':>10} {'fused img/s':>12} {'fused/ref':>10}"
    head += "".join(f" {k + ' /fused':>20}" for k in extra)
    print(head)
    for name in args.variants:
        model = timm.create_model(name).eval()
        for prm in model.parameters():
            prm.requires_grad_(False)
        for bs in args.batch_sizes:
            x = torch.randn(bs, 3, args.resolution, args.resolution)
            for passes in args.passes:
                t = run_config(model, x, passes, paths, args.repeats, clock)
                ips = {k: bs / statistics.median(v) for k, v in t.items()}
                ratio = statistics.median(r / f for r, f in zip(t["ref"], t["fused"]))
                row = f"{name:<10} {bs:>5} {passes:<8} {ips['ref']:>10.2f} {ips['fused']:>12.2f} {ratio:>9.2f}x"
                # > 1 means the fused path gets slower without that optimisation
                row += "".join(f" {statistics.median(a / f for a, f in zip(t[k], t['fused'])):>19.2f}x"
                               for k in extra)
                print(row, flush=True)


if __name__ == "__main__":
    main()
