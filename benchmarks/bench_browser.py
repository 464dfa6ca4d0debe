"""Latency of the SAM playground as a user feels it: key press or click in Chromium to the new image in the page.

    python benchmarks/bench_browser.py [--moves 20] [--fast] [--kernel-threads N]

Starts JupyterLab and headless Chromium as the browser test does (tests/browser_harness.py), runs notebook 01
from the menu, then moves each control `--moves` times, one move at a time: the image slider (ArrowRight: a
new canvas each time, no new model), the head masks (clicks cycling through heads 1-4, no new model) and the
head-count slider (N = 2, 8, 1, 4, ... typed into its readout: the trained checkpoints of the ablation set,
loaded once, then from the widget's cache).

Times are measured in the page with `performance.now()`, from the keydown/mousedown event to the `load` event
of the heads view's new `<img>` ("image"), and to the end of the whole update ("all": the readout line and
every image that changed). "kernel" is the widget's own record of its handler's run time
(`SAMPlayground.latency`): the part spent in Python. Without `--fast` the notebook runs with its default
debounce (50 ms, part of every time). Prints p50/p95 per control and
`p95_ms=<worst "all" p95 of the controls that need no new model>`. Needs Chromium and Playwright.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_widgets import _percentile

import browser_harness as bh


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--moves", type=int, default=20)
    p.add_argument("--fast", action="store_true", help="run the notebook in fast mode (no debounce)")
    p.add_argument("--kernel-threads", type=int, default=None,
                   help="OMP_NUM_THREADS of the kernel (torch's intra-op threads; default: one per core)")
    args = p.parse_args()
    reason = bh.missing()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    n = args.moves
    rows = []  # (control, needs new model, [{"image": ms, "all": ms}])
    t0 = time.perf_counter()
    env = {"OMP_NUM_THREADS": str(args.kernel_threads)} if args.kernel_threads else {}
    with bh.jupyter_lab(fast=args.fast, env=env) as lab, bh.chromium() as b:
        bh.open_notebook(b, lab, "01_sam_playground.ipynb")
        bh.run_all_cells(b)
        print(f"JupyterLab started and notebook 01 ran in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        out = bh.output_area(b, "SAMPlayground(")
        # the heads view is the second <img> of the playground (after the overlay)
        lat = bh.Latency(b, out, bh.by_class(out, "viz-readout"), watched=1)

        image = bh.control_handle(out, "image")
        rows.append(("image slider (ArrowRight)", False,
                     [lat.measure(lambda: image.press("ArrowRight")) for _ in range(n)]))

        def click(h):
            return lambda: bh.toggle_button(out, f"head {h}").click()

        rows.append(("mask head (click)", False, [lat.measure(click(1 + i % 4)) for i in range(n)]))

        # N = 2, 8, 1, 4, ... typed into the slider's readout (the keyboard's single steps pass through N = 3,
        # 5, 6, 7, which do not divide smt_nano's 32 channels); the trained checkpoints load once, then are
        # cached. A new N comes with new, unmasked head buttons.
        readout = bh.control_readout(out, "heads")
        rows.append(("heads N (typed, Enter)", True,
                     [lat.measure(lambda: readout.press("Enter"), prepare=lambda v=v: readout.fill(str(v)), timeout=120)
                      for v in itertools.islice(itertools.cycle([2, 8, 1, 4]), n)]))
        kernel = json.loads(bh.run_code(b, "import json; print(json.dumps(playground.latency))").strip())
        problems = b.problems() + bh.error_outputs(b)

    debounce = "no debounce (fast mode)" if args.fast else "the notebook's default debounce (50 ms)"
    print(f"\nSAM playground in headless Chromium, JupyterLab on localhost; {n} moves per control, {debounce}; "
          f"ms from keydown/mousedown to the heads view's new image (image) and to the end of the update (all)\n")
    print("| control | new model | image p50 | image p95 | all p50 | all p95 | kernel p50 |\n"
          "|---|---|---|---|---|---|---|")
    for (name, new, times), key in zip(rows, ("image", "mask", "heads")):
        img, full = [t["image"] for t in times], [t["all"] for t in times]
        handler = kernel.get(key, [])[-len(times):]  # the widget's own record of its handlers' run time
        print(f"| {name} | {'yes' if new else 'no'} | {statistics.median(img):.0f} | {_percentile(img, 0.95):.0f} | "
              f"{statistics.median(full):.0f} | {_percentile(full, 0.95):.0f} | "
              f"{statistics.median(handler) if handler else float('nan'):.0f} |")
    if problems:
        print("\nproblems seen in the page:\n  " + "\n  ".join(problems))
    worst = max(_percentile([t["all"] for t in times], 0.95) for _, new, times in rows if not new)
    print(f"\np95_ms={worst:.0f}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
