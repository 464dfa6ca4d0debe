"""Latency of the widgets' controls: time from a value change to the updated view, per control.

    python benchmarks/bench_widgets.py [--repeats 20]

Drives every control of `SAMPlayground` and `ModelExplorer` programmatically on the demo model
(`main`, shipped canvases), with no debounce, so a handler runs to the end (new PNGs in the image
widgets) before the call returns. Controls that need no new model visit new values (a new image is
a new forward pass, not a cache hit); controls that load or build a model start from an empty
model cache each time (the worst case: reading the checkpoint or building the network). Prints p50
and p95 per control, then `p95_ms=<worst p95 of the controls that need no new model>`.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import time


def _percentile(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _time(widget, set_value, repeats):
    out = []
    for i in range(repeats):
        t0 = time.perf_counter()
        set_value(i)
        out.append(1000 * (time.perf_counter() - t0))
        if widget.last_error:
            raise RuntimeError(f"the widget reported an error: {widget.last_error}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    import torch

    from viz.widgets import ModelExplorer, SAMPlayground

    n = args.repeats
    rows = []  # (widget, control, needs new model, times)
    pg = SAMPlayground()
    c = pg.controls()
    masks = c["masks"]
    blocks = [v for _, v in c["block"].options]

    def set_mask(i):
        b = masks[i % len(masks)]
        b.value = not b.value

    no_model = {
        "image": lambda i: setattr(c["image"], "value", 1 + i),
        "block": lambda i: setattr(c["block"], "value", blocks[(i + 1) % len(blocks)]),
        "mask head": set_mask,
        "image source": lambda i: setattr(c["source"], "value", ("photos", "canvases")[i % 2]),
    }
    for name, fn in no_model.items():
        rows.append(("SAMPlayground", name, False, _time(pg, fn, n)))
    for b in masks:
        b.value = False
    c["block"].value = blocks[0]

    def fresh(fn):
        def run(i):
            pg.resolver._cache.clear()
            fn(i)
        return run

    heads = itertools.cycle([2, 8, 1, 4])
    firsts = itertools.cycle([5, 3])
    steps = itertools.cycle([4, 2])
    new_model = {
        "heads N (trained checkpoint)": fresh(lambda i: setattr(c["heads"], "value", next(heads))),
        "first kernel (resized kernels)": fresh(lambda i: setattr(c["first kernel"], "value", next(firsts))),
        "kernel step (resized kernels)": fresh(lambda i: setattr(c["kernel step"], "value", next(steps))),
        "kernel list (resized kernels)": fresh(lambda i: setattr(c["kernels"], "value",
                                                                 ("3,5,7,11", "1,5,7,9")[i % 2])),
        "expand ratio (random init.)": fresh(lambda i: setattr(c["expand ratio"], "value", (4.0, 2.0)[i % 2])),
        "SAA on/off (trained checkpoint)": fresh(lambda i: setattr(c["saa"], "value", bool(i % 2))),
        "model: random init.": fresh(lambda i: setattr(c["model"], "value", ("random", "main")[i % 2])),
    }
    for name, fn in new_model.items():
        rows.append(("SAMPlayground", name, True, _time(pg, fn, max(4, n // 2))))
        c["kernels"].value = ""
        c["first kernel"].value, c["kernel step"].value, c["heads"].value = 3, 2, 4

    ex = ModelExplorer()
    e = ex.controls()
    stages = [v for _, v in e["stage"].options]
    methods = ["GradCAM", "GradCAMPlusPlus", "XGradCAM", "LayerCAM", "HiResCAM", "EigenCAM"]
    def options(name):
        return [v for _, v in e[name].options]

    explorer = {
        "image": lambda i: setattr(e["image"], "value", 1 + i),
        "stage": lambda i: setattr(e["stage"], "value", stages[(i + 1) % len(stages)]),
        "block": lambda i: setattr(e["block"], "value", options("block")[i % len(options("block"))]),
        "tap": lambda i: setattr(e["tap"], "value", options("tap")[(i + 1) % len(options("tap"))]),
        "view": lambda i: setattr(e["view"], "value", ("channel", "mean")[i % 2]),
        "channel": lambda i: setattr(e["channel"], "value", (i + 1) % (e["channel"].max + 1)),
        "Grad-CAM method": lambda i: setattr(e["method"], "value", methods[(i + 1) % len(methods)]),
        "target class": lambda i: setattr(e["target"], "value", i % 10),
        "CAM layer": lambda i: setattr(e["CAM layer"], "value", (i + 1) % len(stages)),
    }
    e["view"].value = "channel"
    for name, fn in explorer.items():
        rows.append(("ModelExplorer", name, False, _time(ex, fn, n)))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {n} events per control "
          f"({max(4, n // 2)} for those that load or build a model)\n")
    print("| widget | control | new model | p50 ms | p95 ms |\n|---|---|---|---|---|")
    for w, name, new, times in rows:
        print(f"| {w} | {name} | {'yes' if new else 'no'} | {statistics.median(times):.0f} | "
              f"{_percentile(times, 0.95):.0f} |")
    worst = max(_percentile(t, 0.95) for _, _, new, t in rows if not new)
    worst_new = max(_percentile(t, 0.95) for _, _, new, t in rows if new)
    print(f"\nworst p95 of the controls that load or build a model: {worst_new:.0f} ms")
    print(f"p95_ms={worst:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
