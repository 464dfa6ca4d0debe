"""The SAM playground's compute: `SAMSession` (one SAM block's view of an image, cached) and `BlockView`."""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional

import torch
import torch.nn as nn

from ..cache import LRU
from .background import Prefetcher, Replicas, TorchThreads
from .images import ImageSet
from .models import Resolved


@dataclass(frozen=True)
class BlockView:
    """What the playground shows of one SAM block for one image (raw values at layer resolution)."""
    block: str
    kernel_sizes: tuple[int, ...]
    head_maps: torch.Tensor        # (N, H, W) mean |head output|
    head_fields: torch.Tensor      # (N, H, W) per-head receptive fields
    saa_input: torch.Tensor        # (H, W) mean |SAA input|
    modulator: torch.Tensor        # (H, W) mean |modulator|
    spectrum_before: Any           # FourierCurve of the SAA input
    spectrum_after: Any            # FourierCurve of the modulator
    top5: list[tuple[str, float]]  # (class name, probability)
    masked: tuple[int, ...] = ()


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _cpu(result: Any) -> Any:
    """A small result dataclass (a FourierCurve) with its tensors on the CPU."""
    import dataclasses

    if not dataclasses.is_dataclass(result):
        return result
    moved = {f.name: getattr(result, f.name).cpu() for f in dataclasses.fields(result)
             if isinstance(getattr(result, f.name), torch.Tensor)}
    return replace(result, **moved) if moved else result


def image_of_batch(fwd, i: int):
    """Image i of a batched `SMTForward` (every tensor sliced, batch dimension kept with size 1)."""
    s = slice(i, i + 1)
    sam = {b: replace(f, heads=tuple(h[s] for h in f.heads), saa_input=f.saa_input[s], modulator=f.modulator[s])
           for b, f in fwd.sam.items()}
    return replace(fwd, logits=fwd.logits[s], block_outputs={k: v[s] for k, v in fwd.block_outputs.items()},
                   stage_outputs=tuple(v[s] for v in fwd.stage_outputs), sam=sam,
                   sam_inputs={k: v[s] for k, v in fwd.sam_inputs.items()})


def explain(explanation: str, block: str, masked: Sequence[int], unmasked_top1: tuple[str, float],
            masked_top1: tuple[str, float]) -> str:
    """The playground's one-line explanation: what the model is (`Resolved.explanation`) and, when heads are
    masked, what masking them did to the top-1 ((class name, probability) without and with the mask)."""
    if not masked:
        return explanation
    (c0, p0), (c1, p1) = unmasked_top1, masked_top1
    return (f"{explanation}. Masking head{'s' if len(masked) > 1 else ''} {', '.join(str(h + 1) for h in masked)} "
            f"of {block}: top-1 {c0} {100 * p0:.1f}% → {c1} {100 * p1:.1f}%")


def _top5(logits: torch.Tensor, class_names: Sequence[str]) -> list[tuple[str, float]]:
    probs = torch.softmax(logits.double(), 0)
    top = torch.topk(probs, min(5, probs.numel()))
    return [(class_names[int(i)] if int(i) < len(class_names) else f"class {int(i)}", float(p))
            for i, p in zip(top.indices, top.values)]


class SAMSession:
    """Cached captures of the SAM playground: per (model key, image key, block, mask) forward passes, per
    (model key, image key, block) receptive fields.

    Args:
        class_names: Names of the model's classes (for the top-5).
        cache_size: Entries kept by each cache.
        threads: Intra-op threads of torch while computing (None: leave the caller's).
    """

    def __init__(self, class_names: Sequence[str], cache_size: int = 64, threads: Optional[int] = 1):
        self.class_names = list(class_names)
        self.forwards = LRU(cache_size)
        self.fields_cache = LRU(cache_size)
        self.threads = TorchThreads(threads)
        self.prefetcher = Prefetcher()
        self.replicas = Replicas(2)  # the prefetch runs on copies (the caller's hooks and masks stay its own)

    def forward(self, resolved: Resolved, image_key: Hashable, x: torch.Tensor, block: str,
                masked: Sequence[int] = ()):
        """One forward pass recording the taps and the input of `block` (other blocks run unhooked, fused)."""
        from ..analysis import smt_forward

        mkey = tuple(sorted(masked))

        def build():
            with self.replicas.using(resolved.model), self.threads:
                return smt_forward(resolved.model, x.to(_device(resolved.model)), [block], block_outputs=False,
                                   block_inputs=True, mask={block: list(mkey)} if mkey else None)
        return self.forwards.get((resolved.key, image_key, block, mkey), build)

    def forward_batch(self, resolved: Resolved, image_keys: Sequence[Hashable], x: torch.Tensor, block: str,
                      masked: Sequence[int] = ()) -> list:
        """`forward` for a batch of images in one pass: each image's capture is cached under its own key (so
        `block_view` finds it) and returned. A capture already cached is kept; the cache must hold the batch.

        Args:
            image_keys: One key per image of `x` (what determines its content, as `ImageSet.key` gives).
            x: (B, 3, H, W) model input.
        """
        from ..analysis import smt_forward

        if len(image_keys) != len(x):
            raise ValueError(f"{len(image_keys)} image keys for a batch of {len(x)} images: give one key per image")
        if len(image_keys) > self.forwards.size:
            raise ValueError(f"a batch of {len(image_keys)} images does not fit the session's cache of "
                             f"{self.forwards.size}: build the session with cache_size >= {len(image_keys)}")
        mkey = tuple(sorted(masked))
        with self.replicas.using(resolved.model), self.threads:
            fwd = smt_forward(resolved.model, x.to(_device(resolved.model)), [block], block_outputs=False,
                              block_inputs=True, mask={block: list(mkey)} if mkey else None)
        return [self.forwards.put((resolved.key, k, block, mkey), image_of_batch(fwd, i))
                for i, k in enumerate(image_keys)]

    def fields(self, resolved: Resolved, image_key: Hashable, x: torch.Tensor, block: str) -> torch.Tensor:
        """Per-head receptive fields of `block`, from the unmasked forward's recorded block input."""
        from ..analysis.erf import block_head_erf

        def build():
            fwd = self.forward(resolved, image_key, x, block)
            grid = fwd.sam[block].saa_input.shape[-2:]
            with self.replicas.using(resolved.model), self.threads:
                return block_head_erf(resolved.model.get_submodule(block), fwd.sam_inputs[block],
                                      (int(grid[0]), int(grid[1])))

        return self.fields_cache.get((resolved.key, image_key, block), build)

    def block_view(self, resolved: Resolved, image_key: Hashable, x: torch.Tensor, block: str,
                   masked: Sequence[int] = ()) -> BlockView:
        """What the playground shows of `block` for one image, `masked` heads zeroed."""
        from ..analysis import head_activation_maps, modulator_map, relative_log_amplitude

        fwd = self.forward(resolved, image_key, x, block, masked)
        fields = self.fields(resolved, image_key, x, block)
        f = fwd.sam[block]
        names = resolved.class_names if resolved.class_names is not None else self.class_names
        with self.threads:  # computed on the model's device; only the shown results come to the CPU
            return BlockView(block, tuple(f.kernel_sizes), head_activation_maps(f.heads)[0].cpu(), fields.cpu(),
                             f.saa_input[0].abs().mean(0).cpu(), modulator_map(f.modulator)[0].cpu(),
                             _cpu(relative_log_amplitude(f.saa_input)), _cpu(relative_log_amplitude(f.modulator)),
                             _top5(fwd.logits[0].cpu(), names), tuple(masked))

    def prefetch(self, resolved: Resolved, images: "ImageSet", indices: Sequence[int], block: str,
                 masked: Sequence[int] = (), *, also: Sequence[tuple[Callable[[], "ImageSet"], int]] = ()) -> None:
        """Compute, in the background, the captures `block_view` needs for these images (replacing the jobs
        of an earlier request that have not started), on a copy of the model (`Replicas`).

        Args:
            also: (a function that gives an image set, index) of images of other sets, computed after those of
                `images` (the function runs on the prefetch thread: it may load the set).
        """
        def job(get, i):
            def run():
                imgs = get()
                if not 0 <= i < len(imgs.display):
                    return None
                twin = replace(resolved, model=self.replicas.copy(resolved.key, resolved.model))
                return self.block_view(twin, imgs.key(i), imgs.model_input(i), block, masked)
            return run
        self.prefetcher.request([job(lambda: images, i) for i in indices] + [job(get, i) for get, i in also])
