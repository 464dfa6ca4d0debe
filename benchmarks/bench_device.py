"""Wall times on whatever device there is: the figure set, the widgets' controls and `viz run erf`.

    python benchmarks/bench_device.py [--device cuda] [--quick]

Builds a release-format `smt_tiny.pth` (the authors' key layout, optimizer state and a pickled yacs-like
config; random weights, seed 0) in a temporary folder, then prints the device and one line each for:

- every figure of the figure set on it at 224 px over the four photographs in `data/images`
  (`python -m viz figures --model smt_tiny.pth --device D`, PNG only, the summary table of smt_tiny alone);
- each widget control once, warm (after one event of the same control), on the same file;
- `python -m viz run erf` over 64 images (crops and flips of the four photographs, 224 px) on the device.

`--quick` checks the script in a minute: three figures, the playground's controls, 8 images for the ERF.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def release_file(path: Path, seed: int = 0) -> Path:
    """smt_tiny at random initialisation, saved as the authors' release files are (`checkpoint_files.official_file`
    of the tests)."""
    import timm
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from checkpoint_files import official_file
    from smt.model import to_official_state_dict

    torch.manual_seed(seed)
    official_file(path, "smt_tiny", state=to_official_state_dict(timm.create_model("smt_tiny").state_dict()))
    return path


def image_folder(folder: Path, n: int) -> Path:
    """`n` images: the photographs of `data/images`, mirrored and cropped in turn (each file differs)."""
    from PIL import Image, ImageOps

    from viz.figures import DATA_IMAGES
    from viz.images import list_images

    photos = [Image.open(f).convert("RGB") for f in list_images(DATA_IMAGES)]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = photos[i % len(photos)]
        k = i // len(photos)
        im = ImageOps.mirror(im) if k % 2 else im
        w, h = im.size
        c = 0.04 * (k // 2)  # crop a little more each round
        im.crop((int(c * w), int(c * h), int((1 - c) * w), int((1 - c) * h))).save(folder / f"img{i:03d}.png")
    return folder


def _line(what: str, seconds: float, note: str = "") -> None:
    print(f"| {what} | {seconds:.2f} |{' ' + note if note else ''}", flush=True)


def figures(path: Path, device, only, out: Path) -> None:
    from viz.figures import FIGURES, FigureSet, Settings, load_source, render

    t0 = time.perf_counter()
    source = load_source(str(path), device=device)
    fs = FigureSet(source, Settings(num_images=len(source.images), variants=("smt_tiny",)))
    _line(f"load {path.name} + {len(source.images)} photographs at {fs.input_size} px", time.perf_counter() - t0)
    for o in render(fs, out, only or list(FIGURES), formats=["png"], progress=False):
        _line(f"figure {o.name}", o.seconds, "" if o.status == "ok" else f"({o.status}: {o.message[:80]})")


def widgets(path: Path, device, quick: bool) -> None:
    """Each control once, warm, both widgets on the device (device=)."""
    from viz.widgets import ModelExplorer, SAMPlayground

    pg = SAMPlayground(model=str(path), images="photos", device=device)
    c = pg.controls()
    blocks = [v for _, v in c["block"].options]
    events = {
        "playground: image": (c["image"], [1, 2]),
        "playground: block": (c["block"], [blocks[1 % len(blocks)], blocks[2 % len(blocks)]]),
        "playground: mask head 1": (c["masks"][0], [True, False]),
        "playground: image source": (c["source"], ["canvases", "photos"]),
    }
    rows = [("playground", pg, events)]
    if not quick:
        ex = ModelExplorer(model=str(path), images="photos", device=device)
        e = ex.controls()

        def opts(name):
            return [v for _, v in e[name].options]

        rows.append(("explorer", ex, {
            "explorer: image": (e["image"], [1, 2]),
            "explorer: stage": (e["stage"], opts("stage")[1:3]),
            "explorer: tap": (e["tap"], opts("tap")[1:3]),
            "explorer: view": (e["view"], ["channel", "mean"]),
            "explorer: Grad-CAM method": (e["method"], ["XGradCAM", "LayerCAM"]),
            "explorer: CAM layer": (e["CAM layer"], opts("CAM layer")[:2]),
        }))
    for _, widget, evs in rows:
        for name, (control, (warm, timed)) in evs.items():
            control.value = warm  # the warm-up event
            t0 = time.perf_counter()
            control.value = timed
            dt = time.perf_counter() - t0
            _line(name, dt, f"(error: {widget.last_error})" if widget.last_error else "")


def run_erf(path: Path, device, images: Path, n: int, out: Path) -> None:
    import torch

    from viz.__main__ import main

    t0 = time.perf_counter()
    rc = main(["run", "erf", "--model", str(path), "--images", str(images), "--num-images", str(n), "--out",
               str(out), "--batch-size", "16", "--device", str(device)])
    if device.type == "cuda":
        torch.cuda.synchronize()
    _line(f"viz run erf, {n} images", time.perf_counter() - t0, "" if rc == 0 else f"(exit {rc})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", help="default: cuda when available, else cpu")
    p.add_argument("--quick", action="store_true", help="three figures, the playground, 8 ERF images")
    p.add_argument("--erf-images", type=int, default=64)
    args = p.parse_args()
    import os

    import torch

    from smt.resolve import resolve_device

    device = resolve_device(args.device)
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads")
    print(f"device: {device} ({name}); torch {torch.__version__}")
    n_erf = 8 if args.quick else args.erf_images
    only = ["modulator_maps", "sam_block", "erf"] if args.quick else None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = release_file(tmp / "smt_tiny.pth")
        images = image_folder(tmp / "images", n_erf)
        print("\n| step | seconds |\n|---|---|")
        figures(path, device, only, tmp / "figs")
        widgets(path, device, args.quick)
        run_erf(path, device, images, n_erf, tmp / "erf.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
