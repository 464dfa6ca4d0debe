"""Screenshots of both widgets in JupyterLab (headless Chromium), as a user sees them.

    python benchmarks/shoot_widgets.py [--checkpoint smt_tiny|FILE] [--out test-artifacts/browser]

Without `--checkpoint`: the demo model on the shipped canvases (`playground.png`, `model_explorer.png`). With
it: the user's path, the playground and the explorer on that SMT checkpoint at its own input size over the
photographs (`data/images`), with its class names (ImageNet-1k for a 1000-class file). A variant name
(`smt_tiny`) builds a release-format file of it first (the authors' key layout, a pickled yacs-like config,
random weights, seed 0), so its predictions are meaningless; the screenshots show the interface
(`playground_<name>.png`, `model_explorer_<name>.png`).

A scratch notebook with the widget cells is written into the server's own copy of `notebooks/`, run from
Lab's menu, and each widget's output area is captured once every image in it has rendered. Needs Chromium
and Playwright (`make sysdeps`, the test extras).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def cells(checkpoint) -> list[str]:
    if checkpoint is None:
        return ["from viz.widgets import SAMPlayground, ModelExplorer",
                "pg = SAMPlayground()\npg", "ex = ModelExplorer()\nex"]
    path = repr(str(checkpoint))
    return ["from viz.widgets import SAMPlayground, ModelExplorer",
            f"pg = SAMPlayground({path}, images='photos')\npg",
            f"ex = ModelExplorer({path}, images='photos')\nex"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="an SMT checkpoint file, or a variant name to build a release-format file of")
    p.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "browser")
    args = p.parse_args()

    import nbformat

    from browser_harness import (
        by_class,
        chromium,
        error_outputs,
        image_info,
        jupyter_lab,
        missing,
        open_notebook,
        output_area,
        run_all_cells,
    )

    why = missing()
    if why:
        p.error(why)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, suffix = args.checkpoint, ""
        if checkpoint is not None:
            from bench_widgets import checkpoint_file

            try:
                checkpoint = checkpoint_file(checkpoint, tmp).resolve()
            except ValueError as e:
                p.error(str(e))
            suffix = "_" + checkpoint.stem
        args.out.mkdir(parents=True, exist_ok=True)
        with jupyter_lab() as lab, chromium(width=1500, height=2200) as b:
            nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells(checkpoint)])
            nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                         "language": "python"}
            nbformat.write(nb, lab.root / "screenshots.ipynb")
            open_notebook(b, lab, "screenshots.ipynb")
            run_all_cells(b, timeout=300)
            for code, css, name in (("SAMPlayground(", "viz-sam-playground", "playground"),
                                    ("ModelExplorer(", "viz-model-explorer", "model_explorer")):
                out = output_area(b, code)
                app = by_class(out, css)
                app.wait_for(timeout=120_000)
                for img in app.locator("img.widget-image").all():
                    info = image_info(img)
                    if info["width"] < 50:
                        raise RuntimeError(f"{name}: an image did not render ({info})")
                status = by_class(app, "viz-status").inner_text().strip()
                path = args.out / f"{name}{suffix}.png"
                app.screenshot(path=str(path))
                print(f"{path}" + (f"  (the widget's status line: {status})" if status else ""))
            errors = error_outputs(b) + b.problems()
            for e in errors:
                print(f"problem: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
