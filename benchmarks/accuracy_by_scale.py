"""Top-1 of a demo model on the Scaled Fashion-MNIST test canvases, by the item's scale.

    python benchmarks/accuracy_by_scale.py [--model main] [--checkpoint FILE] [--n 10000] [--data-dir DIR]

A measurement, not a timing. The test canvases are the ones the model cards report (seed 12345, epoch 0);
each is binned by its item's resize factor (1.0 = the 28-px item at 28 px on the 112-px canvas). Needs
the Fashion-MNIST idx files (`make data`, or `--data-dir`).
"""
from __future__ import annotations

import argparse

from smt.data import ScaledFashionMNIST, load_fashion_mnist
from smt.demo import DEMO_MODELS
from smt.resolve import resolve_model
from smt.train import evaluate

EDGES = (0.5, 0.7, 1.0, 1.4, 2.0, 3.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="main", choices=sorted(DEMO_MODELS))
    p.add_argument("--checkpoint", default=None, help="a file of the same architecture instead of the shipped one")
    p.add_argument("--n", type=int, default=10000, help="test canvases")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    model = resolve_model(args.model, checkpoint=args.checkpoint, device="cpu").model
    images, labels = load_fashion_mnist("test", args.data_dir)
    test = ScaledFashionMNIST(images, labels, seed=12345)
    n = min(args.n, len(test))
    scale = test.params(0).size[:n] * test.canvas_size / 28  # resize factor of the 28-px item
    correct = evaluate(model, test, range(n), batch_size=250, progress=True, per_canvas=True)["correct"]
    print(f"{args.model}: top-1 {100 * correct.float().mean():.2f}% on {n} test canvases")
    print("| item scale | item side (px) | canvases | top-1 |\n|---|---|---|---|")
    for lo, hi in zip(EDGES[:-1], EDGES[1:]):
        sel = (scale >= lo) & (scale < hi) if hi < EDGES[-1] else (scale >= lo)
        acc = 100 * correct[sel].float().mean().item() if sel.any() else float("nan")
        print(f"| {lo:.1f}-{hi:.1f}x | {28 * lo:.0f}-{28 * hi:.0f} | {int(sel.sum())} | {acc:.1f} |")


if __name__ == "__main__":
    main()
