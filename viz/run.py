"""`python -m viz run {erf,cam,...}`: an analysis over an image folder, on one process or many.

    python -m viz run erf --model smt_tiny --images DIR --num-images 64 --out erf.pt
    torchrun --nproc_per_node 4 -m viz run erf --model smt_tiny --images DIR --num-images 1024 --out erf.pt

Under `torchrun` (one node or many) each rank takes a disjoint shard of the sorted file list in
whole batches (batch b goes to rank b % world), sums are all-reduced (gloo on CPU, NCCL on GPU) and
rank 0 writes the file. Every batch holds the same images whatever the number of processes, and
sums are float64, so K processes reproduce a single process to about 1e-12.
The file is a `torch.save` of plain tensors, numbers and strings (`load_result` reads it with
`weights_only=True`): the analysis, its settings, the model's identity and the result.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.nn as nn

from .images import ImageFiles, collate_skip_unreadable, list_images

__all__ = ["run", "load_result", "build_model", "shard_batches", "Analysis", "ANALYSES"]


# ---- analyses: one interface ------------------------------------------------------------------------

class Analysis:
    """An analysis over image batches, summed so that any number of processes gives the same result.

    `update(model, images, paths)` adds one batch to `sums` (named float64 tensors, all-reduced across
    ranks) and to `rows` (per-image records, gathered); `meta` holds what `finalize` needs besides the
    sums (block names in depth order, say), merged across ranks. `finalize(sums, rows, meta)` turns the
    reduced sums into the saved result. A rank that saw no batch contributes nothing.
    """

    name = ""

    def __init__(self, model: nn.Module, args: argparse.Namespace):
        self.sums: dict[str, torch.Tensor] = {}
        self.rows: list = []
        self.meta: dict[str, Any] = {}

    def _add(self, key: str, value: torch.Tensor) -> None:
        value = value.detach().double().cpu()
        self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()

    def update(self, model: nn.Module, images: torch.Tensor, paths: list[str]) -> None:
        raise NotImplementedError

    def finalize(self, sums: dict[str, torch.Tensor], rows: list, meta: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


def _require_smt_eval(model: nn.Module, args: argparse.Namespace, what: str) -> None:
    from .analysis.common import require_eval

    require_eval(model, what)
    if not hasattr(model, "stage_block_types"):
        raise ValueError(f"`{args.analysis}` runs on SMT models (block outputs on their stage grids); "
                         f"{args.model} is not one (for a timm ViT or Swin use viz.analysis.attention_distances)")


class ERFAnalysis(Analysis):
    """RepLKNet ERF of a stage's output (default the last)."""

    name = "erf"

    def __init__(self, model: nn.Module, args: argparse.Namespace):
        from .analysis.common import require_eval
        from .analysis.erf import final_feature_map, stage_feature_map

        super().__init__(model, args)
        require_eval(model, "The ERF")
        self.feature_fn = stage_feature_map(args.stage) if args.stage is not None else final_feature_map

    def update(self, model: nn.Module, images: torch.Tensor, paths: list[str]) -> None:
        from .analysis.erf import effective_receptive_field

        r = effective_receptive_field(model, images, self.feature_fn, batch_size=images.shape[0])
        self._add("erf_total", r.total)
        self._add("num_counted", torch.tensor(float(r.num_images), dtype=torch.float64))
        self._add("num_skipped_nan", torch.tensor(float(r.num_skipped), dtype=torch.float64))

    def finalize(self, sums: dict[str, torch.Tensor], rows: list, meta: dict[str, Any]) -> dict[str, Any]:
        n = int(sums["num_counted"])
        return {"erf": sums["erf_total"] / max(n, 1), "erf_total": sums["erf_total"], "num_counted": n,
                "num_skipped_nan": int(sums["num_skipped_nan"])}


class SpectrumAnalysis(Analysis):
    """Relative log amplitude (Park and Kim) of every SMT block's output: batch-weighted means over images."""

    name = "spectrum"

    def __init__(self, model: nn.Module, args: argparse.Namespace):
        super().__init__(model, args)
        _require_smt_eval(model, args, "The Fourier analysis")

    def update(self, model: nn.Module, images: torch.Tensor, paths: list[str]) -> None:
        from .analysis.spectrum import smt_fourier_profile

        profile = smt_fourier_profile(model, images)
        self.meta["blocks"] = [(b.name, b.kind, b.depth) for b in profile]
        n = images.shape[0]
        for b in profile:
            self._add(f"value/{b.name}", b.curve.value * n)
            self._add(f"freq/{b.name}", b.curve.freq * n)
        self._add("num_images", torch.tensor(float(n)))

    def finalize(self, sums: dict[str, torch.Tensor], rows: list, meta: dict[str, Any]) -> dict[str, Any]:
        n = sums["num_images"]
        names = [name for name, _, _ in meta["blocks"]]  # depth order (the sums' keys are sorted by name)
        return {"blocks": names, "kinds": [kind for _, kind, _ in meta["blocks"]],
                "depth": torch.tensor([d for _, _, d in meta["blocks"]]),
                "freq": {b: sums[f"freq/{b}"] / n for b in names},
                "relative_log_amplitude": {b: sums[f"value/{b}"] / n for b in names},
                "highest": torch.stack([sums[f"value/{b}"][-1] / n for b in names]), "num_images": int(n)}


class DistanceAnalysis(Analysis):
    """Per-head distance of every SMT block: modulation distance (SAM) and mean attention distance (MSA)."""

    name = "distance"

    def __init__(self, model: nn.Module, args: argparse.Namespace):
        super().__init__(model, args)
        _require_smt_eval(model, args, "The distance analysis")
        self.queries, self.seed = args.queries, args.seed

    def update(self, model: nn.Module, images: torch.Tensor, paths: list[str]) -> None:
        from .analysis.distance import smt_distance_profile

        # the same query tokens for every batch (seed fixed), so sharding does not change the result
        profile = smt_distance_profile(model, images, queries=self.queries, seed=self.seed,
                                       batch_size=images.shape[0], progress=False)
        self.meta["blocks"] = [(b.name, b.kind) for b in profile]
        n = images.shape[0]
        for b in profile:
            self._add(f"per_head/{b.name}", b.per_head * n)
            self._add(f"block/{b.name}", torch.tensor(b.distance) * n)
        self._add("num_images", torch.tensor(float(n)))

    def finalize(self, sums: dict[str, torch.Tensor], rows: list, meta: dict[str, Any]) -> dict[str, Any]:
        n = sums["num_images"]
        names = [name for name, _ in meta["blocks"]]  # depth order (the sums' keys are sorted by name)
        return {"blocks": names, "kinds": [kind for _, kind in meta["blocks"]],
                "per_head": {b: sums[f"per_head/{b}"] / n for b in names},
                "block": torch.stack([sums[f"block/{b}"] / n for b in names]), "num_images": int(n),
                "queries": self.queries, "unit": "input pixels"}


class CAMAnalysis(Analysis):
    """Raw CAMs of the predicted class, one per image (at the target layer's resolution)."""

    name = "cam"

    def __init__(self, model: nn.Module, args: argparse.Namespace):
        super().__init__(model, args)
        self.method = args.cam_method
        self.stage = args.stage if args.stage is not None else -1

    def update(self, model: nn.Module, images: torch.Tensor, paths: list[str]) -> None:
        from .analysis.cam import class_activation_maps, default_target_layers

        with torch.no_grad():
            pred = model(images).argmax(1)
        cams = class_activation_maps(model, images, pred.tolist(), method=self.method,
                                     target_layers=default_target_layers(model, self.stage))
        self.rows += [(p, int(c), m) for p, c, m in zip(paths, pred, cams)]

    def finalize(self, sums: dict[str, torch.Tensor], rows: list, meta: dict[str, Any]) -> dict[str, Any]:
        rows = sorted(rows, key=lambda r: r[0])
        return {"paths": [r[0] for r in rows], "predicted": torch.tensor([r[1] for r in rows]),
                "cams": torch.stack([r[2] for r in rows]) if rows else torch.empty(0),
                "method": self.method, "stage": self.stage}


ANALYSES = {"erf": ERFAnalysis, "spectrum": SpectrumAnalysis, "distance": DistanceAnalysis, "cam": CAMAnalysis}


# ---- running ---------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_model(name: str, checkpoint: Optional[str], num_classes: Optional[int]) -> nn.Module:
    """A timm model by name (SMT variants registered), with weights from `checkpoint` if given.

    For SMT the classifier size is read from the checkpoint unless `num_classes` is given, so a
    fine-tuned file (e.g. the 10-class demo model) keeps its trained head.
    """
    import timm

    import smt  # noqa: F401  (registers the SMT variants)
    from smt.model import VARIANTS

    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if not checkpoint:
        return timm.create_model(name, **kwargs)
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    if name.split(".")[0] in VARIANTS and num_classes is None:
        from smt.checkpoint import read_checkpoint

        head = read_checkpoint(checkpoint).get("head.weight")
        kwargs["num_classes"] = 0 if head is None else head.shape[0]
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(checkpoint)), **kwargs)


def shard_batches(num_files: int, batch_size: int, rank: int, world: int) -> list[list[int]]:
    """This rank's batches of file indices: batch b (whole, `batch_size` files) goes to rank b % world.

    Every batch holds the same images whatever the number of processes, so per-batch results are
    bit-identical and only the float64 sums' order differs. A rank may get no batch at all.
    """
    batches = [list(range(i, min(i + batch_size, num_files))) for i in range(0, num_files, batch_size)]
    return batches[rank::world]


def _reduce(analysis: Analysis, unreadable: list[str], world: int, device: torch.device
            ) -> tuple[dict[str, torch.Tensor], list, dict[str, Any], list[str]]:
    """All-reduce the sums (ranks that saw nothing add zeros), gather rows, merge meta and unreadable files."""
    sums = {k: analysis.sums[k].to(device) for k in sorted(analysis.sums)}
    if world == 1:
        return {k: v.cpu() for k, v in sums.items()}, analysis.rows, analysis.meta, sorted(unreadable)
    gathered: list = [None] * world
    dist.all_gather_object(gathered, (analysis.rows, unreadable, analysis.meta,
                                      {k: (tuple(v.shape), str(v.dtype)) for k, v in sums.items()}))
    shapes: dict[str, tuple] = {}
    meta: dict[str, Any] = {}
    for _, _, m, sh in gathered:
        shapes.update(sh)
        for k, v in m.items():
            meta.setdefault(k, v)
    for k in sorted(shapes):  # every rank reduces the same keys in the same order
        if k not in sums:
            shape, dtype = shapes[k]
            sums[k] = torch.zeros(shape, dtype=getattr(torch, dtype.split(".")[-1]), device=device)
    sums = {k: sums[k] for k in sorted(sums)}
    for v in sums.values():
        dist.all_reduce(v)
    rows = [r for g in gathered for r in g[0]]
    bad = sorted(p for g in gathered for p in g[1])
    return {k: v.cpu() for k, v in sums.items()}, rows, meta, bad


def _write(record: dict, out: Path) -> None:
    """Through a temporary file in `out`'s folder, renamed into place (removed if writing fails)."""
    from smt.files import atomic_output

    with atomic_output(out) as tmp:
        torch.save(record, tmp)


def _check_stage(model: nn.Module, stage: Optional[int]) -> None:
    from smt.inputs import InputError

    n = len(getattr(model, "stages", ())) or len(getattr(model, "feature_info", ()))
    if stage is not None and n and not -n <= stage < n:
        raise InputError("--stage", f"{stage} is out of range: the model has {n} stages, indexed 0-{n - 1} "
                                    f"(stage 1 is 0; negative counts from the last)")


def run(args: argparse.Namespace) -> Optional[dict]:
    """Run one analysis; returns the saved record on rank 0 (None on other ranks)."""
    from timm.data import create_transform, resolve_data_config
    from tqdm.auto import tqdm

    from smt.distributed import init_distributed
    from smt.inputs import InputError
    from smt.reader import CheckpointError

    rank, world, device = init_distributed()
    try:
        torch.manual_seed(args.seed)
        try:
            model = build_model(args.model, args.checkpoint, args.num_classes).to(device).eval()
        except CheckpointError as e:  # weights of another architecture
            raise InputError("--checkpoint", str(e)) from None
        _check_stage(model, args.stage)
        config = resolve_data_config({} if args.input_size is None else
                                     {"input_size": (3, args.input_size, args.input_size)}, model=model)
        files = list_images(args.images, args.num_images)
        loader = torch.utils.data.DataLoader(ImageFiles(files, create_transform(**config)),
                                             batch_sampler=shard_batches(len(files), args.batch_size, rank, world),
                                             num_workers=args.workers, collate_fn=collate_skip_unreadable)
        analysis = ANALYSES[args.analysis](model, args)
        unreadable: list[str] = []
        bar = tqdm(total=len(files), desc=f"{args.analysis} ({world} proc)", unit="img", disable=rank != 0)
        for images, paths, bad in loader:
            unreadable += bad
            if images is not None:
                analysis.update(model, images.to(device), paths)
            bar.update(min((len(paths) + len(bad)) * world, bar.total - bar.n))  # rank 0 speaks for all
        bar.close()
        sums, rows, meta, bad_all = _reduce(analysis, unreadable, world, device)
        if rank != 0:
            return None
        if not sums and not rows:
            raise ValueError(f"none of the {len(files)} images under {args.images} could be read")
        result = analysis.finalize(sums, rows, meta)
        if bad_all:
            print(f"skipped {len(bad_all)} unreadable file(s) of {len(files)}: "
                  + ", ".join(Path(p).name for p in bad_all[:10]) + (" ..." if len(bad_all) > 10 else ""),
                  file=sys.stderr)
        record = {
            "analysis": args.analysis,
            "model": args.model,
            "checkpoint": str(args.checkpoint) if args.checkpoint else None,
            "checkpoint_sha256": _sha256(Path(args.checkpoint)) if args.checkpoint else None,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                         if k not in ("func",)},
            "data_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()},
            "num_files": len(files),
            "num_unreadable": len(bad_all),
            "unreadable": bad_all,
            "world_size": world,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "result": result,
        }
        _write(record, Path(args.out))
        print(f"wrote {args.out}")
        return record
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


#: What every record `run` writes holds (and the figures read).
_RECORD_KEYS = ("analysis", "model", "settings", "data_config", "num_files", "result")
#: What each analysis's result holds (`finalize`), the parts the figures draw.
_RESULT_KEYS = {"erf": ("erf", "num_counted"),
                "spectrum": ("blocks", "kinds", "depth", "freq", "relative_log_amplitude"),
                "distance": ("blocks", "kinds", "per_head", "block"),
                "cam": ("paths", "predicted", "cams", "method", "stage")}


def load_result(path: os.PathLike) -> dict:
    """Read a file written by `python -m viz run` (no pickled code is executed).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a `viz run` result; the message says what it is (a checkpoint, a state
            dict, text, another torch.save file).
    """
    import pickle

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file written by `python -m viz run ... --out FILE.pt`")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; create it with `python -m viz run ... --out {path}`")
    fix = "give files written by `python -m viz run`"
    try:
        rec = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError,
            AttributeError, TypeError) as e:
        raise ValueError(f"{path} is not a `viz run` result ({_what_file(path, e)}); {fix}") from None
    if isinstance(rec, dict) and rec.get("analysis") in ANALYSES and isinstance(rec.get("result"), dict):
        missing = [k for k in _RECORD_KEYS if k not in rec]
        missing += [f"result['{k}']" for k in _RESULT_KEYS[rec["analysis"]] if k not in rec["result"]]
        if missing:
            raise ValueError(f"{path} is an incomplete `viz run {rec['analysis']}` result (no {', '.join(missing)});"
                             f" write it again with `python -m viz run`")
        return rec
    if isinstance(rec, dict) and rec and all(isinstance(v, torch.Tensor) for v in rec.values()):
        what = f"a state dict of {len(rec)} tensors: weights, which go to --checkpoint"
    elif isinstance(rec, dict) and "analysis" in rec:
        what = f"analysis {rec['analysis']!r}, which is none of {', '.join(ANALYSES)}"
    elif isinstance(rec, dict) and isinstance(rec.get("model"), dict):
        what = "a checkpoint: weights, which go to --checkpoint"
    else:
        what = f"a torch.save file holding {type(rec).__name__}, not a result record"
    raise ValueError(f"{path} is not a `viz run` result ({what}); {fix}")


def _what_file(path: Path, error: Exception) -> str:
    """What a file that `torch.load(weights_only=True)` refuses is, in a few words."""
    from smt.checkpoint import locate_weights
    from smt.reader import CheckpointError, open_checkpoint

    try:
        with open_checkpoint(path) as f:
            locate_weights(path, f.obj)
        return "it holds model weights: a checkpoint, which goes to --checkpoint"
    except CheckpointError:
        pass
    head = path.read_bytes()[:512]
    if not head:
        return "the file is empty"
    try:
        head.decode("utf-8")
        return "it is a text file"
    except UnicodeDecodeError:
        return f"torch.load could not read it: {type(error).__name__}"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an analysis over an image folder (torchrun-ready)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("analysis", choices=sorted(ANALYSES))
    p.add_argument("--model", required=True, help="timm model name, e.g. smt_tiny, resnet50")
    p.add_argument("--checkpoint", help="weights file (official SMT release, ours, or safetensors)")
    p.add_argument("--num-classes", type=int, help="classifier size, when the checkpoint's differs from the default")
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    p.add_argument("--num-images", type=int, help="use the first N images (sorted by path)")
    p.add_argument("--out", required=True, help="output file (.pt)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=0, help="data loader workers per process")
    p.add_argument("--input-size", type=int, help="square input size; default the model's")
    p.add_argument("--stage", type=int, help="stage whose output is analysed (default the last)")
    p.add_argument("--cam-method", default="GradCAM", help="pytorch_grad_cam method for `cam`")
    p.add_argument("--queries", type=int, default=16, help="query tokens per SAM block for `distance`")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    p.set_defaults(func=run)
