"""Latency of the widgets' controls: time from a value change to the updated view, per control.

    python benchmarks/bench_widgets.py [--repeats 20] [--runs 3] [--pause 0.25] [--checkpoint FILE|smt_tiny]

Drives every control of `SAMPlayground` and `ModelExplorer` programmatically on the demo model
(`main`, shipped canvases), with no debounce, so a handler runs to the end (new PNGs in the image
widgets) before the call returns. Controls that need no new model visit new values (a new image is
a new forward pass unless the background prefetch has computed it); between two events the script
waits `--pause` seconds, untimed, as a user between two key presses (the prefetch works then; 0
measures back-to-back events). Controls that load or build a model start from empty model and
capture caches each time (the worst case: reading the checkpoint or building the network, then the
forward pass and the receptive fields).

With `--checkpoint FILE` the same controls run on that SMT checkpoint at its own input size (a release
file of smt_tiny: 224 px) over the canvases resized to it (512 images: each image event is a new image) and
the four photographs (`data/images`, the image source control); the
model-changing controls are those of a user's model: kernels resized (every SAM stage, one stage), and
N, SAA or expand ratio built at random initialisation (no ablation folder). `--checkpoint smt_tiny` (or
any SMT variant name) builds a release-format file of that variant first, as the authors save theirs
(their key layout, optimizer state, a pickled yacs-like config; random weights, seed 0), in a
temporary folder.

The whole measurement runs `--runs` times in one process, the previous run's widgets collected before each
(`gc.collect()`: left as garbage, their reference cycles made the interpreter's full collections, which
stop every thread for 250-400 ms with torch and matplotlib loaded, fall inside later runs' events); the
table gives each control's p50 and p95
(the median over the runs) and every run's p95, and the script ends with
`p95_ms=<worst median p95 of the controls that need no new model>` and
`model_p95_ms=<worst median p95 of the controls that load or build a model>`.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import time


def _percentile(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _time(widget, set_value, repeats, pause):
    out = []
    for i in range(repeats):
        if pause:
            time.sleep(pause)
        t0 = time.perf_counter()
        set_value(i)
        out.append(1000 * (time.perf_counter() - t0))
        if widget.last_error:
            raise RuntimeError(f"the widget reported an error: {widget.last_error}")
    return out


def _set(widget, value) -> None:
    """Set a control's value; an error if the control kept another (a clamped slider: the event would change
    nothing, and its time would be no measurement)."""
    widget.value = value
    if widget.value != value:
        raise RuntimeError(f"control {widget.description!r} took {widget.value!r}, not {value!r}")


def checkpoint_file(name: str, folder):
    """`--checkpoint`: an existing file as given, or a variant name built as a release-format file in `folder`
    (`release_file`); ValueError for anything else."""
    from pathlib import Path

    from smt.variants import VARIANTS

    if Path(name).is_file():
        return Path(name)
    if name not in VARIANTS:
        raise ValueError(f"--checkpoint {name}: no such file, and not an SMT variant ({', '.join(VARIANTS)})")
    return release_file(Path(folder) / f"{name}.pth", name)


def release_file(path, variant: str = "smt_tiny", seed: int = 0):
    """`variant` at random initialisation, saved as the authors' release files are (the tests'
    `checkpoint_files.official_file`)."""
    import sys
    from pathlib import Path

    import timm
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from checkpoint_files import official_file
    from smt.model import to_official_state_dict

    torch.manual_seed(seed)
    official_file(path, variant, state=to_official_state_dict(timm.create_model(variant).state_dict()))
    return path


def run_once(n: int, pause: float, checkpoint=None) -> list[tuple[str, str, bool, list[float]]]:
    """One measurement of every control: (widget, control, needs a new model, times in ms)."""
    from viz.widgets import ModelExplorer, SAMPlayground

    rows = []
    # the canvases (512) on a user's checkpoint too: every image event is an image not seen before (the four
    # photographs would be cache hits after one round); the image source control switches to the photographs
    pg = SAMPlayground() if checkpoint is None else SAMPlayground(str(checkpoint), images="canvases", device="cpu")
    c = pg.controls()
    masks = c["masks"]
    blocks = [v for _, v in c["block"].options]

    def set_mask(i):
        b = masks[i % len(masks)]
        b.value = not b.value

    no_model = {
        "image": lambda i: _set(c["image"], 1 + i),
        "block": lambda i: setattr(c["block"], "value", blocks[(i + 1) % len(blocks)]),
        "mask head": set_mask,
        "image source": lambda i: setattr(c["source"], "value", ("photos", "canvases")[i % 2]),
    }
    for name, fn in no_model.items():
        rows.append(("SAMPlayground", name, False, _time(pg, fn, n, pause)))
    for b in masks:
        b.value = False
    c["block"].value = blocks[0]

    def fresh(fn):
        def run(i):
            pg.session.prefetcher.idle()  # the last event's prefetch does not run into this one's timing
            for cache in (pg.resolver.models, pg.session.forwards, pg.session.fields_cache):
                cache.clear()
            fn(i)
        return run

    heads = itertools.cycle([2, 8, 1, 4])
    firsts = itertools.cycle([5, 3])
    steps = itertools.cycle([4, 2])
    if checkpoint is not None:
        stages = [v for _, v in c["stage"].options]
        kernels = itertools.cycle(["1,3,5,7", "5,7,9,11"])
        new_model = {
            "heads N (random init.)": fresh(lambda i: setattr(c["heads"], "value", next(heads))),
            "first kernel (resized kernels)": fresh(lambda i: setattr(c["first kernel"], "value", next(firsts))),
            "kernel step (resized kernels)": fresh(lambda i: setattr(c["kernel step"], "value", next(steps))),
            "stage picker (one stage resized)": fresh(lambda i: (setattr(c["stage"], "value", stages[1 + i % 2]),
                                                                 setattr(c["kernels"], "value", next(kernels)))),
            "expand ratio (random init.)": fresh(lambda i: setattr(c["expand ratio"], "value", (4.0, 2.0)[i % 2])),
            "SAA on/off (random init.)": fresh(lambda i: setattr(c["saa"], "value", bool(i % 2))),
        }
        for name, fn in new_model.items():
            rows.append(("SAMPlayground", name, True, _time(pg, fn, max(4, n // 2), pause)))
            c["kernels"].value = ""
            c["stage"].value = -1
            c["first kernel"].value, c["kernel step"].value, c["heads"].value = 3, 2, 4
            c["saa"].value, c["expand ratio"].value = True, 2.0
        pg.session.prefetcher.close()
    new_model = {} if checkpoint is not None else {
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
        rows.append(("SAMPlayground", name, True, _time(pg, fn, max(4, n // 2), pause)))
        c["kernels"].value = ""
        c["first kernel"].value, c["kernel step"].value, c["heads"].value = 3, 2, 4
    if checkpoint is None:
        pg.session.prefetcher.close()

    ex = ModelExplorer() if checkpoint is None else ModelExplorer(str(checkpoint), images="canvases", device="cpu")
    e = ex.controls()
    stages = [v for _, v in e["stage"].options]
    methods = ["GradCAM", "GradCAMPlusPlus", "XGradCAM", "LayerCAM", "HiResCAM", "EigenCAM"]

    def options(name):
        return [v for _, v in e[name].options]

    explorer = {
        "image": lambda i: _set(e["image"], 1 + i),
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
        rows.append(("ModelExplorer", name, False, _time(ex, fn, n, pause)))
    ex.session.prefetcher.close()
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=20, help="events per control (half for model changes, >= 4)")
    p.add_argument("--runs", type=int, default=3, help="whole measurements; the table gives the median p95")
    p.add_argument("--pause", type=float, default=0.25, help="untimed seconds between two events")
    p.add_argument("--checkpoint", help="an SMT checkpoint file to run the controls on (at its input size), or a "
                                        "variant name (smt_tiny) to build a release-format file of it first")
    args = p.parse_args()
    import os
    import tempfile
    from pathlib import Path

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        built = args.checkpoint is not None and not Path(args.checkpoint).is_file()  # a variant name: built here
        try:
            checkpoint = None if args.checkpoint is None else checkpoint_file(args.checkpoint, tmp)
        except ValueError as e:
            p.error(str(e))
        runs = []
        for r in range(args.runs):
            gc.collect()  # the previous run's widgets (reference cycles): each run starts from the same state
            t0 = time.perf_counter()
            runs.append(run_once(args.repeats, args.pause, checkpoint))
            print(f"run {r + 1}/{args.runs}: {time.perf_counter() - t0:.0f} s", flush=True)
    n = args.repeats
    what = "the demo model (main, 112 px)" if checkpoint is None else (
        f"{Path(checkpoint).name} ({'release-format, random weights, ' if built else ''}"
        f"its input size)")
    print(f"\n{what}")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; "
          f"{n} events per control ({max(4, n // 2)} for those that load or build a model), {args.pause:g} s "
          f"between events; median over {args.runs} runs\n")
    print("| widget | control | new model | p50 ms | p95 ms | p95 of each run |\n|---|---|---|---|---|---|")
    table = []
    for k, (w, name, new, _) in enumerate(runs[0]):
        p50 = statistics.median(statistics.median(run[k][3]) for run in runs)
        p95s = [_percentile(run[k][3], 0.95) for run in runs]
        table.append((new, statistics.median(p95s)))
        print(f"| {w} | {name} | {'yes' if new else 'no'} | {p50:.0f} | {statistics.median(p95s):.0f} | "
              f"{', '.join(f'{v:.0f}' for v in p95s)} |")
    worst = max(v for new, v in table if not new)
    worst_new = max(v for new, v in table if new)
    print(f"\np95_ms={worst:.0f}")
    print(f"model_p95_ms={worst_new:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
