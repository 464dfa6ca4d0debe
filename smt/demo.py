"""The demo models and images: SMT-nano trained by this project on Scaled Fashion-MNIST.

The SMT paper's models (Lin et al., ICCV 2023) are ImageNet models; this module ships small ones
trained here on Scaled Fashion-MNIST (`smt.data`), where objects appear at 14 to 84 px on a 112-px
canvas, so that multi-scale modulation has something to do and localisation can be measured.

- `demo_model("main")`: smt_nano with N = 4 MHMC heads and SAA (the main demo model).
- `demo_model("heads1" | "heads2" | "heads4" | "heads8")`: the head-count ablation (N = 1, 2, 4, 8;
  `heads4` is the main architecture trained like the other ablation models, their control).
- `demo_model("nosaa")`: N = 4 with scale-aware aggregation turned off.
- Seeds 1 and 2 of each ablation configuration: `heads2_s1`, `heads2_s2`, ... (`ablation_seeds`).
- `demo_model("vit" | "swin" | "convnext")`: timm's ViT, Swin and ConvNeXt at SMT-nano's size
  (`smt.presets.BACKBONES`), trained with the main model's recipe for 2000 steps, so SMT's analyses
  can be compared on trained weights (shipped when present: `available_backbones()`), and
  `demo_model("nano2k")` (`STEP_MATCHED_SMT`): SMT-nano trained the same way for the same 2000 steps, the
  SMT they compare with at equal steps (`main` trained longer).
- `demo_images()`: 512 fixed test canvases with labels and item boxes (`data/demo/eval_subset.npz`).

Weights load through the same path as a user's own checkpoint
(`timm.create_model(..., pretrained=True, pretrained_cfg_overlay=dict(file=...))`). Each weight file
has a model card (`.md`) next to it with the recipe, the command and the accuracy.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import timm
import torch
import torch.nn as nn

from . import model as _model  # noqa: F401  (registers the variants)
from .data import CLASS_NAMES
from .presets import BACKBONES, TITLES

__all__ = ["DEMO_DIR", "DEMO_MODELS", "STEP_MATCHED_SMT", "ABLATION_SEEDS", "ablation_seeds", "CLASS_NAMES",
           "DemoImages", "demo_model", "demo_images",
           "demo_weights_path", "available_backbones", "subset_accuracy", "encode_images", "decode_images",
           "export_run"]

#: Folder of the shipped weights, model cards and evaluation subset.
DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"

#: Shipped demo models: name -> (timm model name, architecture overrides).
DEMO_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "main": ("smt_nano", {}),
    "heads1": ("smt_nano", {"sam_heads": 1}),
    "heads2": ("smt_nano", {"sam_heads": 2}),
    "heads4": ("smt_nano", {"sam_heads": 4}),
    "heads8": ("smt_nano", {"sam_heads": 8}),
    "nosaa": ("smt_nano", {"saa": False}),
    # SMT-nano trained for the comparison backbones' step budget with their recipe: the SMT that compares with
    # them at equal steps (`main` is the flagship, trained longer)
    "nano2k": ("smt_nano", {}),
    **BACKBONES,
}

#: The demo model that compares with the backbones (`BACKBONES`) at an equal number of training steps.
STEP_MATCHED_SMT = "nano2k"

#: The ablation set's configurations and their training seeds: seed 0 is the model named after the
#: configuration (`heads2`), seed s > 0 is `heads2_s{s}`; every seed trains with the same command.
ABLATION_SEEDS: dict[str, tuple[str, ...]] = {
    name: (name, f"{name}_s1", f"{name}_s2") for name in ("heads1", "heads2", "heads4", "heads8", "nosaa")}
for _config, _names in ABLATION_SEEDS.items():
    for _name in _names[1:]:
        DEMO_MODELS[_name] = DEMO_MODELS[_config]


def ablation_seeds(config: str) -> list[str]:
    """The demo names of `config`'s training seeds whose weights are shipped, seed 0 first."""
    if config not in ABLATION_SEEDS:
        raise ValueError(f"unknown ablation configuration {config!r}; choose one of {sorted(ABLATION_SEEDS)}")
    return [n for n in ABLATION_SEEDS[config] if demo_weights_path(n).is_file()]


def _file_stem(name: str) -> str:
    return f"{name}_sfmnist" if name in BACKBONES else f"smt_nano_sfmnist_{name}"


def demo_weights_path(name: str = "main", folder: Optional[Path] = None) -> Path:
    """The .safetensors file of a shipped demo model (its model card is the same path with `.md`)."""
    if name not in DEMO_MODELS:
        raise ValueError(f"unknown demo model {name!r}; choose one of {sorted(DEMO_MODELS)}")
    return (folder if folder is not None else DEMO_DIR) / f"{_file_stem(name)}.safetensors"


def available_backbones() -> list[str]:
    """The comparison backbones (vit, swin, convnext) whose weights are in `data/demo`."""
    return [n for n in BACKBONES if demo_weights_path(n).is_file()]


def demo_model(name: str = "main", *, checkpoint: Optional[Union[str, os.PathLike]] = None) -> nn.Module:
    """A trained demo model in eval mode, built and loaded the way a user's checkpoint is.

    Args:
        name: "main", "heads1", "heads2", "heads4", "heads8", "nosaa", or a backbone "vit", "swin",
            "convnext" (see `DEMO_MODELS`).
        checkpoint: load this file instead of the shipped one (same architecture as `name`).

    Returns:
        The model (10 Fashion-MNIST classes, input: 112x112 RGB normalised with the model's
        `pretrained_cfg` mean/std, see `DemoImages.model_input`).
    """
    path = Path(checkpoint) if checkpoint is not None else demo_weights_path(name)
    variant, arch = DEMO_MODELS[name]
    overlay = {"file": str(path), "num_classes": len(CLASS_NAMES), "input_size": (3, 112, 112)}
    if name not in BACKBONES:
        overlay["pool_size"] = (4, 4)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; the demo weights ship in data/demo/ of the "
                                "source tree (or pass checkpoint= with your own file)")
    model = timm.create_model(variant, pretrained=True, num_classes=len(CLASS_NAMES), pretrained_cfg_overlay=overlay,
                              **arch)
    return model.eval()


@dataclass(frozen=True)
class DemoImages:
    """The shipped evaluation subset: the first canvases of the Scaled Fashion-MNIST test set.

    Attributes:
        images: (N, H, W, 3) uint8 RGB canvases.
        labels: (N,) int64 class indices into `class_names`.
        boxes: (N, 4) float (x0, y0, x1, y1) pixel box of the item, x1/y1 exclusive.
        class_names: the 10 Fashion-MNIST class names.
        indices: (N,) index of each canvas in the Fashion-MNIST test split.
        seed: the canvas seed (`ScaledFashionMNIST(..., seed=seed)`, epoch 0).
    """
    images: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    class_names: tuple[str, ...]
    indices: torch.Tensor
    seed: int

    def __len__(self) -> int:
        return self.labels.shape[0]

    def model_input(self, indices: Optional[Union[Sequence[int], slice, torch.Tensor]] = None) -> torch.Tensor:
        """Canvases as model input: (B, 3, H, W) float, ImageNet mean/std (the demo models' config)."""
        from .train import normalize

        x = self.images if indices is None else self.images[indices]
        return normalize(x.permute(0, 3, 1, 2).float().div(255))  # (B, 3, H, W)


@torch.no_grad()
def subset_accuracy(model: nn.Module, images: Optional[DemoImages] = None, batch_size: int = 128) -> float:
    """Top-1 (%) of `model` (in eval mode) on the shipped evaluation subset (or `images`)."""
    images = images if images is not None else demo_images()
    if model.training:
        raise ValueError("the model is in training mode; call model.eval() first (BatchNorm statistics)")
    pred = torch.cat([model(images.model_input(slice(i, i + batch_size))).argmax(1)
                      for i in range(0, len(images), batch_size)])
    return float(100 * (pred == images.labels).float().mean())


def encode_images(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 -> the same shape of uint8 differences along x then y (they compress ~2.4x better)."""
    d = np.diff(images, axis=2, prepend=np.zeros_like(images[:, :, :1])).astype(np.uint8)
    return np.diff(d, axis=1, prepend=np.zeros_like(d[:, :1])).astype(np.uint8)


def decode_images(encoded: np.ndarray) -> np.ndarray:
    """Inverse of `encode_images` (cumulative sums modulo 256)."""
    return np.cumsum(np.cumsum(encoded, axis=1, dtype=np.uint8), axis=2, dtype=np.uint8)


def demo_images(path: Optional[Union[str, os.PathLike]] = None) -> DemoImages:
    """The shipped evaluation subset (512 Scaled Fashion-MNIST test canvases, 112x112, labels and boxes)."""
    path = Path(path) if path is not None else DEMO_DIR / "eval_subset.npz"
    with np.load(path) as f:
        images = decode_images(f["images_dxy"])
        return DemoImages(images=torch.from_numpy(images), labels=torch.from_numpy(f["labels"].astype(np.int64)),
                          boxes=torch.from_numpy(f["boxes"].astype(np.float32)), class_names=CLASS_NAMES,
                          indices=torch.from_numpy(f["indices"].astype(np.int64)), seed=int(f["seed"]))


def write_eval_subset(path: Union[str, os.PathLike], n: int = 512, seed: int = 12345,
                      data_dir: Optional[str] = None) -> None:
    """Render the first `n` test canvases (seed `seed`) and write them as the shipped subset."""
    from .data import ScaledFashionMNIST, load_fashion_mnist, to_uint8

    images, labels = load_fashion_mnist("test", data_dir)
    ds = ScaledFashionMNIST(images, labels, seed=seed)
    x, y, boxes = ds.render(torch.arange(n), epoch=0)
    np.savez_compressed(path, images_dxy=encode_images(to_uint8(x).numpy()), labels=y.numpy().astype(np.uint8),
                        boxes=boxes.numpy().astype(np.int16), indices=np.arange(n, dtype=np.int32),
                        seed=np.int64(seed))


# ---- export of a training run to a shipped demo model (weights + model card) --------------------

def _command(args: dict[str, Any], world: int = 1) -> str:
    """The command line of a run (options that differ from the defaults); `torchrun` for `world` > 1 processes."""
    from .train import build_parser

    parser = build_parser()
    parts = [f"torchrun --standalone --nproc_per_node {world} -m smt.train" if world > 1 else "python -m smt.train"]
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = args.get(action.dest, action.default)
        if value == action.default or action.dest in ("output", "resume"):
            continue
        opt = action.option_strings[0]
        parts.append(opt if action.const is True else f"{opt} {value}")
    return " ".join(parts)


def export_run(run_dir: Union[str, os.PathLike], name: str, *, test_size: int = 10000, dtype: str = "float16",
               out_dir: Optional[Union[str, os.PathLike]] = None, data_dir: Optional[str] = None,
               budget_note: str = "") -> dict[str, Any]:
    """Ship a finished `smt.train` run as demo model `name`: weights (fp16 by default) and a model card.

    The shipped weights are evaluated again after the cast, on `test_size` canvases of the scaled test
    set and on the shipped subset, through `demo_model` (the user loading path).
    """
    import json

    from safetensors.torch import load_file, save_file

    from .data import ScaledFashionMNIST, load_fashion_mnist
    from .train import evaluate

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else DEMO_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    result = json.loads((run_dir / "result.json").read_text())
    args = result["args"]
    state = load_file(str(run_dir / "model.safetensors"))
    cast = getattr(torch, dtype)
    target = demo_weights_path(name, out_dir)
    save_file({k: v.to(cast) if v.is_floating_point() else v for k, v in state.items()}, str(target),
              metadata={"format": "pt", "model": DEMO_MODELS[name][0], "arch": json.dumps(DEMO_MODELS[name][1]),
                        "dataset": "Scaled Fashion-MNIST 112", "git_revision": result["git_revision"]})
    model = demo_model(name, checkpoint=target)
    test_images, test_labels = load_fashion_mnist("test", data_dir or args.get("data_dir"))
    test_set = ScaledFashionMNIST(test_images, test_labels, args["canvas_size"],
                                  (args["scale_min"], args["scale_max"]), seed=args["test_seed"])
    shipped = evaluate(model, test_set, range(min(test_size, len(test_set))), progress=True)
    subset = demo_images(out_dir / "eval_subset.npz") if (out_dir / "eval_subset.npz").is_file() else demo_images()
    subset_top1 = subset_accuracy(model, subset)
    subset_fp32 = subset_accuracy(demo_model(name, checkpoint=run_dir / "model.safetensors"), subset)
    n_params = sum(v.numel() for v in state.values() if not v.dtype == torch.int64)
    fp32 = result.get("test", {})
    info = {"name": name, "fp32_top1": fp32.get("top1"), "fp32_n": fp32.get("n"), "shipped_top1": shipped["top1"],
            "shipped_n": shipped["n"], "per_class": shipped["per_class"], "subset_top1": subset_top1,
            "subset_fp32_top1": subset_fp32,
            "subset_n": len(subset), "train_seconds": result["train_seconds"], "steps": result["steps_done"],
            "dtype": dtype, "file_mb": target.stat().st_size / 1e6}
    card = _model_card(name, result, info, n_params, budget_note)
    target.with_suffix(".md").write_text(card)
    return info


def _model_card(name: str, result: dict[str, Any], info: dict[str, Any], n_params: int, budget_note: str) -> str:
    args = result["args"]
    variant, arch = DEMO_MODELS[name]
    backbone = name in BACKBONES
    arch_txt = ", ".join(f"{k}={v!r}" for k, v in arch.items()) or "defaults (sam_heads=4, saa=True)"
    stem = _file_stem(name)
    title = TITLES[name] if backbone else "SMT-nano"
    what = (f"{title} (timm's `{variant}` with {arch_txt}; `smt.presets.BACKBONES`)" if backbone
            else f"SMT-nano (`{variant}`; {arch_txt})")
    hist = result["history"]
    world = int(result.get("world_size", 1))
    batch = (f"{args['batch_size']} per process x {world} processes (DistributedDataParallel, gloo)"
             if world > 1 else f"{args['batch_size']}")
    threads = int(result["threads"])
    procs = (f"{world} processes x " if world > 1 else "") + f"{threads} thread{'s' if threads > 1 else ''}"
    view = ("a window of the canvas around the item, at full pixel scale" if args.get("low_res_crop")
            else "the same canvases, downsampled")
    low = (f"the first {args['low_res_frac']:.0%} of the schedule at {args['low_res']} px ({view}), "
           f"the rest at {args['canvas_size']} px") if args.get("low_res") else f"{args['canvas_size']} px"
    shipped_row = (f"| Scaled Fashion-MNIST test, {info['shipped_n']} canvases (seed {args['test_seed']}), shipped "
                   f"{info['dtype']} weights | **{info['shipped_top1']:.2f}** |")
    subset_row = (f"| shipped evaluation subset `eval_subset.npz` ({info['subset_n']} canvases), shipped weights | "
                  f"**{info['subset_top1']:.2f}** |")
    schedule = (f"over wall-clock time: a budget of {args['time_budget']} minutes in {args['epochs']} equal epochs; "
                f"the cosine follows elapsed time, so the step count depends on the machine load"
                if args["schedule"] == "time" else f"{result['total_steps']} steps")
    made = (f"Made {result['steps_done']} steps ({result['steps_done'] * args['batch_size'] * world} canvases) in "
            f"{result['train_seconds'] / 60:.1f} minutes of training")
    per_class = "\n".join(f"| {c} | {a:.1f} |" for c, a in info["per_class"].items())
    hist_rows = "\n".join(f"| {h['epoch']} | {h['steps']} | {h['train_loss']:.3f} | {h['train_acc']:.1f} | "
                          f"{h['val_top1']:.1f} | {h['train_seconds'] / 60:.1f} |" for h in hist)
    load = (f'smt.demo_model("{name}")  # or, the same path a user\'s file takes:\n'
            f'timm.create_model("{variant}", pretrained=True, num_classes=10,'
            f' pretrained_cfg_overlay=dict(file="data/demo/{stem}.safetensors", num_classes=10)'
            + "".join(f", {k}={v!r}" for k, v in arch.items()) + ")")
    fp32 = (f"{info['fp32_top1']:.2f}% (float32 weights, {info['fp32_n']} canvases)"
            if info.get("fp32_top1") is not None else "not evaluated")
    return f"""# {title} on Scaled Fashion-MNIST: `{name}`

`{stem}.safetensors` ({info['dtype']}, {info['file_mb']:.1f} MB, {n_params / 1e6:.2f}M parameters):
{what} trained from scratch by this project, a demo model for the analyses,
not a benchmark result.

```python
{load}
```

## Accuracy (top-1, %)

| evaluation set | top-1 |
|---|---|
{shipped_row}
| the same, before the cast | {fp32} |
{subset_row}
| the same, before the cast | {info['subset_fp32_top1']:.2f} |

Per class on the scaled test set (shipped weights):

| class | top-1 |
|---|---|
{per_class}

## Data

Scaled Fashion-MNIST (`smt.data.ScaledFashionMNIST`): each Fashion-MNIST item is resized by a factor
drawn log-uniformly from [{args['scale_min']}, {args['scale_max']}] (14 to 84 px), pasted at a uniformly random
position on a {args['canvas_size']}x{args['canvas_size']} RGB canvas, tinted with a random bright colour over a dark
plain (50%) or lightly textured (50%) background; training items are flipped horizontally at
random. Training canvases: the 60000 training items, seed {args['seed']}, new draws each epoch; test canvases:
the 10000 test items, seed {args['test_seed']}, epoch 0. Raw data: the Debian package `dataset-fashion-mnist`.

## Training

```
{_command(args, world)}
```

- AdamW (lr {args['lr']}, weight decay {args['weight_decay']}), batch {batch}, {args['warmup_steps']} warm-up
  steps, cosine to {args['min_lr']}, label smoothing {args['label_smoothing']}, no stochastic depth.
- Resolution: {low}.
- Schedule: {schedule}{budget_note}.
- {made}
  on a 2-core CPU, {procs}, torch {result['torch']}, timm {result['timm']}.
- Source revision: `{result['git_revision']}`.

| epoch | steps | train loss | train acc | val top-1 (first {args['val_size']} test canvases) | minutes |
|---|---|---|---|---|---|
{hist_rows}
"""


def main(argv: Optional[list[str]] = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m smt.demo", description="ship demo weights and the evaluation subset")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="a finished `smt.train` run -> data/demo weights + model card")
    e.add_argument("run_dir")
    e.add_argument("name", choices=sorted(DEMO_MODELS))
    e.add_argument("--test-size", type=int, default=10000)
    e.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    e.add_argument("--budget-note", default="")
    s = sub.add_parser("subset", help="render the shipped evaluation subset")
    s.add_argument("--n", type=int, default=512)
    s.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    if a.command == "export":
        print(json.dumps(export_run(a.run_dir, a.name, test_size=a.test_size, dtype=a.dtype,
                                    budget_note=a.budget_note), indent=1))
    else:
        DEMO_DIR.mkdir(parents=True, exist_ok=True)
        write_eval_subset(DEMO_DIR / "eval_subset.npz", n=a.n, data_dir=a.data_dir)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
