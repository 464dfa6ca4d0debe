"""Train a classifier on Scaled Fashion-MNIST: `python -m smt.train` (also under `torchrun`).

Any timm model trains: an SMT variant (`--model smt_nano`, the default, with `--sam-heads` /
`--no-saa` for the ablations), any other timm name with `--model-kwargs '{"depth": 6, ...}'`, or a
named comparison backbone (`--preset vit | swin | convnext`, `smt.presets`).

AdamW (timm's `create_optimizer_v2`; PyTorch's fused kernel on CPU and CUDA), linear warm-up then
cosine decay (set per step), label smoothing, a checkpoint at the end of every epoch (`--resume` continues
from it) and an optional wall-clock budget (`--time-budget`, minutes) after which training stops with a
checkpoint. An "epoch" is `--epoch-steps` optimiser steps (default: one pass over the training set).
With `--time-budget` and `--schedule time`, the cosine runs over wall-clock time instead of steps
(epoch e is the e-th of `--epochs` equal slices of the budget), so a run on a shared machine always
finishes its schedule on time; the number of steps it made is recorded. `--low-res S --low-res-frac F`
renders the first F of training at S px (the same canvases, downsampled), a cheap progressive-resizing
phase.

Under `torchrun` each process takes every `world_size`-th item of the epoch's permutation (as
`DistributedSampler` does) and the model is wrapped in `DistributedDataParallel` (gloo on CPU, NCCL
on GPU); `--batch-size` is per process. Mixed precision (`--amp`, bfloat16) is used on GPU only.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import timm
import torch
import torch.distributed as dist
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.optim import create_optimizer_v2
from tqdm.auto import tqdm

from . import model as _model  # registers the variants
from .data import CLASS_NAMES, ScaledFashionMNIST, load_fashion_mnist
from .distributed import init_distributed

__all__ = ["build_parser", "main", "train", "evaluate", "make_optimizer", "normalize", "save_safetensors",
           "git_revision", "model_name", "arch_kwargs"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m smt.train", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smt_nano",
                   help="timm model name: an SMT variant (default smt_nano) or any other timm model")
    p.add_argument("--model-kwargs", default=None, type=_json_object,
                   help="keyword arguments of timm.create_model as a JSON object, e.g. '{\"depth\": 6}'")
    p.add_argument("--preset", default=None, help="a named comparison backbone (smt.presets: vit, swin, convnext)")
    p.add_argument("--sam-heads", type=int, default=None, help="MHMC head count N (SMT only; default the variant's)")
    p.add_argument("--no-saa", action="store_true", help="turn scale-aware aggregation off (SMT only; ablation)")
    p.add_argument("--drop-path", type=float, default=0.0, help="stochastic depth rate")
    p.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST idx files")
    p.add_argument("--canvas-size", type=int, default=112)
    p.add_argument("--scale-min", type=float, default=0.5)
    p.add_argument("--scale-max", type=float, default=3.0)
    p.add_argument("--low-res", type=int, default=0, help="render the first --low-res-frac of steps at this size")
    p.add_argument("--low-res-frac", type=float, default=0.0)
    p.add_argument("--low-res-crop", action="store_true",
                   help="the low-res phase renders a --low-res window of the canvas around the item at full "
                        "pixel scale, instead of the whole canvas downsampled")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--epoch-steps", type=int, default=0, help="steps per epoch (0: one pass over the data)")
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=2e-5)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0, help="seed of the model init, the data order and the canvases")
    p.add_argument("--test-seed", type=int, default=12345, help="seed of the test canvases")
    p.add_argument("--val-size", type=int, default=512, help="test canvases evaluated after each epoch")
    p.add_argument("--final-eval", type=int, default=10000, help="test canvases evaluated at the end (0: none)")
    p.add_argument("--output", default="output/train", help="folder for checkpoints and results")
    p.add_argument("--resume", default="", help="checkpoint to continue from ('auto': OUTPUT/last.pth if any)")
    p.add_argument("--time-budget", type=float, default=0.0, help="stop after this many minutes of training")
    p.add_argument("--schedule", choices=("steps", "time"), default="steps",
                   help="what the cosine runs over: optimiser steps, or the --time-budget's wall-clock time")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads on CPU (0: leave as is)")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (GPU only)")
    p.add_argument("--no-fused-optimizer", dest="fused_optimizer", action="store_false",
                   help="use AdamW's per-parameter loop instead of its fused kernel (same update)")
    p.add_argument("--limit-train", type=int, default=0, help="use only the first N training items (tests)")
    p.add_argument("--no-progress", action="store_true")
    return p


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}); write e.g. '{{\"depth\": 6}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object of keyword arguments, got {text!r}")
    return value


def normalize(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB (B, 3, H, W) -> model input (ImageNet mean/std, the variants' `pretrained_cfg`)."""
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def git_revision() -> str:
    """The commit of the source tree (with `-dirty` when it has changes), or 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def model_name(args: argparse.Namespace) -> str:
    """The timm model a run trains: `--preset`'s, else `--model` (default smt_nano)."""
    if args.preset:
        from .presets import preset

        if args.model != "smt_nano":
            raise ValueError(f"--preset {args.preset} names its own model; drop --model {args.model} "
                             f"(use --model-kwargs to change the preset)")
        return preset(args.preset)[0]
    return args.model


def arch_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The architecture overrides of a run (what `timm.create_model` needs besides the name)."""
    from .presets import preset

    name = model_name(args)
    kw: dict[str, Any] = {"num_classes": len(CLASS_NAMES)}
    if args.preset:
        kw.update(preset(args.preset)[1])
    kw.update(args.model_kwargs or {})
    if args.sam_heads is not None or args.no_saa:
        if name.split(".")[0] not in _model.VARIANTS:
            raise ValueError(f"--sam-heads and --no-saa configure SMT's modulation; {name} is not an SMT variant")
        if args.sam_heads is not None:
            kw["sam_heads"] = args.sam_heads
        if args.no_saa:
            kw["saa"] = False
    return kw


@torch.no_grad()
def evaluate(model: nn.Module, dataset: ScaledFashionMNIST, indices: Sequence[int], batch_size: int = 128,
             device: torch.device = torch.device("cpu"), progress: bool = False,
             per_canvas: bool = False) -> dict[str, Any]:
    """Top-1 accuracy (%) and per-class accuracy of `model` on the canvases `indices` (epoch 0).

    With `per_canvas`, the result also holds "correct": a bool tensor, one entry per index, in order.
    The caller's train/eval mode is restored afterwards.
    """
    idx = torch.as_tensor(indices)
    if len(idx) == 0:
        raise ValueError("evaluate: no canvases to evaluate; pass at least one index")
    was_training = model.training
    model.eval()
    hits, ys = [], []
    try:
        for start in tqdm(range(0, len(idx), batch_size), disable=not progress, desc="eval", leave=False):
            images, labels, _ = dataset.render(idx[start:start + batch_size], epoch=0)
            hits.append(model(normalize(images.to(device))).argmax(1).cpu() == labels)
            ys.append(labels)
    finally:
        model.train(was_training)
    hit, y = torch.cat(hits), torch.cat(ys)
    total = torch.bincount(y, minlength=len(CLASS_NAMES)).float()
    correct = torch.bincount(y[hit], minlength=len(CLASS_NAMES)).float()
    per_class = (100 * correct / total.clamp(min=1)).tolist()
    result = {"top1": float(100 * correct.sum() / total.sum()), "n": int(total.sum()),
              "per_class": dict(zip(CLASS_NAMES, per_class))}
    if per_canvas:
        result["correct"] = hit
    return result


def save_safetensors(model: nn.Module, path: os.PathLike, dtype: Optional[torch.dtype] = None,
                     metadata: Optional[dict[str, str]] = None) -> None:
    """Write the model's weights as .safetensors (optionally cast, e.g. to float16)."""
    from safetensors.torch import save_file

    model = model.module if hasattr(model, "module") else model
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def make_optimizer(model: nn.Module, args: argparse.Namespace, device: torch.device) -> torch.optim.Optimizer:
    """AdamW with `--lr` and `--weight-decay` (no decay on biases and norms, timm's default).

    On CPU and CUDA it is PyTorch's fused AdamW unless `--no-fused-optimizer`: the same update as the
    per-parameter loop (to float32 rounding) in one kernel: 3x faster on CPU for `smt_nano`, 5% off a step
    (`benchmarks/bench_train_step.py`).
    """
    fused = {"fused": True} if args.fused_optimizer and device.type in ("cpu", "cuda") else {}
    return create_optimizer_v2(model, opt="adamw", lr=args.lr, weight_decay=args.weight_decay, **fused)


def _lr_at(args: argparse.Namespace, step: int, progress: float) -> float:
    """Linear warm-up over `--warmup-steps` steps times a cosine from `--lr` to `--min-lr` over progress [0, 1]."""
    warm = min(1.0, (step + 1) / args.warmup_steps) if args.warmup_steps else 1.0
    cosine = args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))
    return warm * cosine


def _elapsed(t0: float, distributed: bool, device: torch.device) -> float:
    """Seconds since t0 on rank 0 (broadcast, so that time-based decisions agree across processes)."""
    if not distributed:
        return time.time() - t0
    t = torch.tensor([time.time() - t0], dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return float(t.item())


def _set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run one training job (see `build_parser` for the options); returns the results dict."""
    if args.schedule == "time" and not args.time_budget:
        raise ValueError("--schedule time needs --time-budget (minutes)")
    rank, world, device = init_distributed()
    distributed = world > 1
    local_rank = device.index or 0
    if args.threads:
        torch.set_num_threads(args.threads)
    amp = bool(args.amp and device.type == "cuda")
    revision = git_revision()  # of the code as the run starts
    is_main = rank == 0
    out = Path(args.output)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)

    _set_seed(args.seed)
    images, labels = load_fashion_mnist("train", args.data_dir)
    if args.limit_train:
        images, labels = images[:args.limit_train], labels[:args.limit_train]
    test_images, test_labels = load_fashion_mnist("test", args.data_dir)
    scale = (args.scale_min, args.scale_max)
    train_set = ScaledFashionMNIST(images, labels, args.canvas_size, scale, seed=args.seed, flip=True)
    test_set = ScaledFashionMNIST(test_images, test_labels, args.canvas_size, scale, seed=args.test_seed)

    model = timm.create_model(model_name(args), drop_path_rate=args.drop_path, **arch_kwargs(args)).to(device)
    steps_per_epoch = args.epoch_steps or max(1, len(train_set) // (args.batch_size * world))
    total_steps = steps_per_epoch * args.epochs
    by_time = args.schedule == "time"
    optimizer = make_optimizer(model, args, device)
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)

    start_epoch, step, history, elapsed_before = 0, 0, [], 0.0
    resume = args.resume
    if resume == "auto":
        resume = str(out / "last.pth") if (out / "last.pth").is_file() else ""
    if resume:
        ckpt = torch.load(resume, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"])
        start_epoch, step, history = ckpt["epoch"] + 1, ckpt["step"], ckpt["history"]
        elapsed_before = ckpt["train_seconds"]
    ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda"
                                                    else None) if distributed else model

    budget_s = args.time_budget * 60 if args.time_budget else math.inf
    t0 = time.time() - elapsed_before
    stopped_early = False
    model.train()
    for epoch in range(start_epoch, args.epochs):
        # Every process draws the same permutation (seeded by epoch) and takes its own shard of it,
        # cycling through it again when an epoch is longer than a pass.
        g = torch.Generator().manual_seed(args.seed * 7919 + epoch)
        shard = torch.randperm(len(train_set), generator=g)[rank::world]
        epoch_end_s = budget_s * (epoch + 1) / args.epochs if by_time else math.inf
        bar = tqdm(total=None if by_time else steps_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}",
                   disable=args.no_progress or not is_main, mininterval=2.0)
        loss_sum = correct = seen = 0.0
        i = 0
        while True:
            elapsed = _elapsed(t0, distributed, device)  # rank 0's clock, so every rank stops together
            if (elapsed >= epoch_end_s) if by_time else (i >= steps_per_epoch):
                break
            progress = elapsed / budget_s if by_time else step / total_steps
            lr = _lr_at(args, step, min(progress, 1.0))
            for group in optimizer.param_groups:
                group["lr"] = lr
            size = args.low_res if args.low_res and progress < args.low_res_frac else args.canvas_size
            start = (i * args.batch_size) % max(1, len(shard) - args.batch_size + 1)
            x, y, _ = train_set.render(shard[start:start + args.batch_size], epoch, size,
                                       crop=args.low_res_crop and size != args.canvas_size)
            x, y = normalize(x.to(device, non_blocking=True)), y.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = ddp_model(x)
                loss = criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step, i = step + 1, i + 1
            loss_sum += loss.item() * y.numel()
            correct += (logits.argmax(1) == y).sum().item()
            seen += y.numel()
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}",
                            lr=f"{lr:.1e}", res=size, refresh=False)
            if not by_time and _elapsed(t0, distributed, device) > budget_s:
                stopped_early = True
                break
        bar.close()
        train_seconds = time.time() - t0
        val = evaluate(model, test_set, range(min(args.val_size, len(test_set))), device=device) \
            if args.val_size else None
        record = {"epoch": epoch + 1, "steps": step, "train_loss": loss_sum / max(seen, 1),
                  "train_acc": 100 * correct / max(seen, 1), "val_top1": val["top1"] if val else None,
                  "train_seconds": round(train_seconds, 1)}
        history.append(record)
        if is_main:
            print(json.dumps(record), flush=True)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                        "rng": _rng_state(), "epoch": epoch, "history": history,
                        "train_seconds": train_seconds, "args": vars(args)}, out / "last.pth")
        t0 += time.time() - t0 - train_seconds  # evaluation and saving do not count as training time
        if stopped_early:
            break
    result = {"model": model_name(args), "arch": arch_kwargs(args), "args": vars(args), "history": history,
              "train_seconds": history[-1]["train_seconds"] if history else 0.0,
              "steps_done": history[-1]["steps"] if history else 0, "total_steps": step if by_time else total_steps,
              "stopped_by_time_budget": stopped_early, "git_revision": revision,
              "torch": torch.__version__, "timm": timm.__version__, "world_size": world,
              "threads": torch.get_num_threads()}
    if is_main:
        if args.final_eval:
            result["test"] = evaluate(model, test_set, range(min(args.final_eval, len(test_set))),
                                      device=device, progress=not args.no_progress)
            print(json.dumps({"test": result["test"]}), flush=True)
        save_safetensors(model, out / "model.safetensors")
        (out / "result.json").write_text(json.dumps(result, indent=1))
    if distributed:
        dist.destroy_process_group()
    return result


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        train(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
