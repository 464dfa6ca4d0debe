"""ImageNet-style validation of SMT models (Lin et al., ICCV 2023): top-1 / top-5 on a class-folder dataset.

`python -m smt validate --model smt_tiny --checkpoint smt_tiny.pth --data imagenet/val` evaluates with the
variant's own preprocessing (timm's data config: resize to 224/0.875 bicubic, centre crop 224, ImageNet
mean/std; `smt_large.in22k_ft_in1k_384` crops 384 at 1.0) and prints top-1, top-5 and images per second.
The authors report SMT-T 82.2, SMT-S 83.7, SMT-B 84.3, SMT-L (22k->1k) 87.1 at 224 and 88.1 at 384.

Under `torchrun --nproc_per_node K` (one or more nodes) each rank evaluates a disjoint shard
(samples rank, rank+K, rank+2K, ...: no sample twice, no padding), the counts are summed with
`all_reduce` and rank 0 prints. Gloo on CPU, NCCL on GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn

from .distributed import init_distributed, rank_and_world

__all__ = ["DatasetError", "ValidationResult", "validate", "subset_indices", "shard_indices", "main"]


class DatasetError(ValueError):
    """The image folder does not fit the model (class count)."""


@dataclass(frozen=True)
class ValidationResult:
    """Counts over all ranks; accuracies in percent."""

    top1: float
    top5: float
    correct1: int
    correct5: int
    count: int
    seconds: float
    images_per_second: float
    world_size: int
    num_unreadable: int = 0
    unreadable: tuple[str, ...] = ()


def subset_indices(n: int, limit: Optional[int] = None) -> list[int]:
    """All n indices, or `limit` of them spread evenly over the dataset (every class folder is visited)."""
    if limit is None or limit >= n:
        return list(range(n))
    if limit < 1:
        raise ValueError(f"limit={limit}: evaluate at least one image")
    return [i * n // limit for i in range(limit)]


def shard_indices(indices: Sequence[int], rank: int, world_size: int) -> list[int]:
    """The indices rank `rank` of `world_size` evaluates: every world_size-th, disjoint, nothing padded."""
    return list(indices[rank::world_size])


def _path(path: str) -> str:
    return path


class _Images(torch.utils.data.Dataset):
    """An ImageFolder's samples read by `smt.images.open_rgb`; an unreadable file gives (None, target, path)."""

    def __init__(self, folder, transform: Any):
        self.folder, self.transform = folder, transform

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int):
        from .images import UNREADABLE, open_rgb

        path, target = self.folder.samples[i]
        try:
            image = open_rgb(path)
        except UNREADABLE:
            return None, target, path
        return self.transform(image) if self.transform is not None else image, target, path


def _collate(batch):
    """Readable images stacked, their targets, and the paths of the unreadable ones."""
    good = [(x, t) for x, t, _ in batch if x is not None]
    bad = [p for x, _, p in batch if x is None]
    if not good:
        return None, None, bad
    return torch.stack([x for x, _ in good]), torch.tensor([t for _, t in good]), bad


def image_folder(root: os.PathLike, transform: Any = None):
    """An ImageFolder-layout dataset (class folders in sorted order = class indices), with clear errors.

    `dataset[i]` is (image tensor, target, path), or (None, target, path) for a file that can not be read;
    files are read by `smt.images.open_rgb` (16-bit, alpha, EXIF orientation). `.classes` as ImageFolder's.
    """
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory; --data takes a folder with one sub-folder per class "
                                f"(ImageNet val: 1000 synset folders n01440764 ... in sorted order)")
    try:
        folder = ImageFolder(str(root), loader=_path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{root}: {e}; --data takes a folder with one sub-folder of images per class") \
            from None
    dataset = _Images(folder, transform)
    dataset.classes = folder.classes
    return dataset


def validate(
        model: nn.Module,
        data_dir: os.PathLike,
        *,
        batch_size: int = 64,
        workers: int = 4,
        limit: Optional[int] = None,
        data_config: Optional[dict] = None,
        progress: bool = True,
) -> ValidationResult:
    """Top-1 / top-5 accuracy of `model` on an ImageFolder-layout dataset, on the model's device.

    Inside an initialised process group each rank evaluates its shard and the returned counts are the
    totals of all ranks (every rank returns them). The model's train/eval mode is restored on return.

    Args:
        model: Classifier whose outputs index the class folders in sorted order.
        data_dir: Folder with one sub-folder per class.
        batch_size: Images per forward pass (per rank).
        workers: DataLoader worker processes (per rank).
        limit: Evaluate only this many images, spread evenly over the dataset (before sharding).
        data_config: timm data config (input_size, interpolation, crop_pct, mean, std); default: the model's.
        progress: Show a progress bar (rank 0 only).
    """
    from timm.data import create_transform, resolve_model_data_config
    from tqdm import tqdm

    rank, world = rank_and_world()
    device = next(model.parameters()).device
    config = data_config or resolve_model_data_config(model)
    dataset = image_folder(data_dir, create_transform(**config, is_training=False))
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None and len(dataset.classes) != num_classes:
        raise DatasetError(f"{data_dir}: {len(dataset.classes)} class folders but the model predicts {num_classes} "
                         f"classes; targets are folder positions in sorted order, so the folder needs exactly one "
                         f"sub-folder per class of the model (ImageNet: all 1000)")
    shard = shard_indices(subset_indices(len(dataset), limit), rank, world)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, shard), batch_size=batch_size, shuffle=False, num_workers=workers,
        pin_memory=device.type == "cuda", collate_fn=_collate)
    k = min(5, num_classes or 5)
    counts = torch.zeros(3, dtype=torch.int64)  # correct top-1, correct top-k, images read
    unreadable: list[str] = []
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            for images, targets, bad in tqdm(loader, desc="validate", unit="batch", disable=not progress or rank != 0):
                unreadable += bad
                if images is None:
                    continue
                logits = model(images.to(device, non_blocking=True))  # (B, num_classes)
                top = logits.topk(k, dim=1).indices.cpu()  # (B, k)
                hit = top == targets[:, None]
                counts += torch.tensor([int(hit[:, 0].sum()), int(hit.any(1).sum()), len(targets)])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - start
    if world > 1:
        on = device if dist.get_backend() == "nccl" else torch.device("cpu")
        counts_t, seconds_t = counts.to(on), torch.tensor([seconds], dtype=torch.float64, device=on)
        dist.all_reduce(counts_t, op=dist.ReduceOp.SUM)
        dist.all_reduce(seconds_t, op=dist.ReduceOp.MAX)
        counts, seconds = counts_t.cpu(), seconds_t.item()
        gathered: list = [None] * world
        dist.all_gather_object(gathered, unreadable)
        unreadable = [p for g in gathered for p in g]
    c1, c5, n = (int(v) for v in counts)
    return ValidationResult(top1=100.0 * c1 / max(n, 1), top5=100.0 * c5 / max(n, 1), correct1=c1, correct5=c5,
                            count=n, seconds=seconds, images_per_second=n / seconds if seconds > 0 else 0.0,
                            world_size=world, num_unreadable=len(unreadable), unreadable=tuple(sorted(unreadable)))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="timm name, optionally with a tag (smt_large.in22k_ft_in1k_384 for the 384 "
                                   "preprocessing); default: read the architecture from --checkpoint")
    p.add_argument("--checkpoint", help="weights file (the authors' .pth, ours, or .safetensors); default: the "
                                        "released weights of --model, downloaded")
    p.add_argument("--data", required=True, help="folder with one sub-folder of images per class (sorted order)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass per process (default 64)")
    p.add_argument("--workers", type=int, default=4, help="data loading processes per process (default 4)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only N images, spread over the dataset")
    p.add_argument("--img-size", type=int, default=None, help="override the crop size")
    p.add_argument("--crop-pct", type=float, default=None, help="override the centre-crop fraction")
    p.add_argument("--device", default=None, help="default: cuda (cuda:LOCAL_RANK under torchrun) if available")
    p.add_argument("--results-json", default=None, help="write the result as JSON here (rank 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help="replace --results-json if it exists")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")


def check_args(args: argparse.Namespace) -> None:
    """Every input of `python -m smt validate`, before a model is built (`smt.inputs`: one line each)."""
    from .inputs import Checks, check_checkpoint, check_class_folders, check_model_name, check_output_file, check_range

    c = Checks()
    if args.model is None and args.checkpoint is None:
        c.add("--model", "give --model, --checkpoint or both (the architecture is read from the checkpoint)")
    if args.model is not None:
        c(check_model_name, args.model, "--model", demo_names=False)
    c(check_checkpoint, args.checkpoint, "--checkpoint")
    c(check_class_folders, args.data, "--data")
    c(check_range, args.batch_size, "--batch-size", 1)
    c(check_range, args.workers, "--workers", 0)
    c(check_range, args.limit, "--limit", 1)
    c(check_range, args.img_size, "--img-size", 16, 4096)
    c(check_range, args.crop_pct, "--crop-pct", 0, 1, low_open=True, what="the centre crop's share of the resized "
                                                                          "image; timm's default is 0.875")
    c(_check_device, args.device)
    if args.results_json is not None:
        c(check_output_file, args.results_json, "--results-json", overwrite=args.overwrite, example="result.json")
    c.done()


def _check_device(device: Optional[str], option: str = "--device") -> None:
    from .inputs import InputError

    if device is None:
        return
    try:
        d = torch.device(device)
    except (RuntimeError, ValueError):
        raise InputError(option, f"{device!r} is not a device; give cpu, cuda or cuda:N") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise InputError(option, f"{device}: CUDA is not available here; give cpu")
    if d.type == "cuda" and d.index is not None and d.index >= torch.cuda.device_count():
        raise InputError(option, f"{device}: there are {torch.cuda.device_count()} CUDA devices; give cuda:0 to "
                                 f"cuda:{torch.cuda.device_count() - 1}")


def _build_model(args: argparse.Namespace) -> nn.Module:
    import timm

    from .checkpoint import _load_state, create_model_from_checkpoint, read_checkpoint

    if args.model is None:
        return create_model_from_checkpoint(args.checkpoint)
    if args.checkpoint is None:
        return timm.create_model(args.model, pretrained=True)
    state = read_checkpoint(args.checkpoint)
    num_classes = state["head.weight"].shape[0] if "head.weight" in state else 0
    model = timm.create_model(args.model, num_classes=num_classes)
    _load_state(model, state, Path(args.checkpoint))
    return model


def main(args: argparse.Namespace) -> int:
    from timm.data import resolve_model_data_config

    check_args(args)  # every input, before any work
    _, _, device = init_distributed(args.device)
    try:
        model = _build_model(args).to(device)
        overrides = {k: v for k, v in (("img_size", args.img_size), ("crop_pct", args.crop_pct)) if v is not None}
        config = resolve_model_data_config(model, args=overrides)
        result = validate(model, args.data, batch_size=args.batch_size, workers=args.workers, limit=args.limit,
                          data_config=config, progress=not args.no_progress)
        if result.count == 0:
            raise ValueError(f"none of the {result.num_unreadable} images under {args.data} could be read")
        if rank_and_world()[0] == 0:
            name = args.model or getattr(model, "pretrained_cfg", {}).get("architecture", "model")
            print(f"{name} on {args.data} ({result.count} images, {result.world_size} process"
                  f"{'es' if result.world_size > 1 else ''}, crop {config['input_size'][-1]} at "
                  f"{config['crop_pct']}, {config['interpolation']}): top-1 {result.top1:.3f}  top-5 "
                  f"{result.top5:.3f}  {result.images_per_second:.1f} img/s")
            if result.num_unreadable:
                names = ", ".join(Path(p).name for p in result.unreadable[:10])
                print(f"skipped {result.num_unreadable} unreadable file(s) of {result.count + result.num_unreadable}"
                      f": {names}{' ...' if result.num_unreadable > 10 else ''}; the accuracy is over the "
                      f"{result.count} images read", file=sys.stderr)
            if args.results_json:
                from .files import atomic_write_bytes

                atomic_write_bytes(Path(args.results_json), (json.dumps(asdict(result), indent=1) + "\n").encode())
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
