"""The model explorer's compute: `ExplorerSession` (any tap of one captured forward pass, Grad-CAM, top-5)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from ..analysis.common import block_index
from ..cache import LRU
from .background import Prefetcher, Replicas, TorchThreads
from .images import ImageSet
from .sam import _device, _top5


@dataclass(frozen=True)
class TapView:
    """One map of a tap: `values` (H, W) as computed, signed or magnitude, and what it is."""
    values: torch.Tensor
    signed: bool
    label: str     # e.g. "stages.0.blocks.0.attn.modulator: mean over 64 channels"
    channels: int  # how many channels (or heads) the tap has


@dataclass(frozen=True)
class CamView:
    """A raw class activation map (h, w) of one image, its image and what it shows."""
    image: np.ndarray
    cam: torch.Tensor
    label: str
    target: int


class ExplorerSession:
    """Any tap of one captured forward pass of a fixed model, its Grad-CAM maps and top-5, cached per image.

    Args:
        model: An SMT model in eval mode.
        images: The images.
        class_names: Names of the model's classes (default the demo's 10, or "class i").
        cache_size: Entries kept by each cache.
        threads: Intra-op threads of torch while computing (None: leave the caller's).
        keep_graphs: Forward passes kept with their autograd graphs (the saved activations of one image: about
            0.1 GB for smt_tiny at 224 px), so that another target class costs one backward pass.
    """

    def __init__(self, model: nn.Module, images: ImageSet, class_names: Optional[Sequence[str]] = None,
                 cache_size: int = 64, threads: Optional[int] = 1, keep_graphs: int = 3):
        from smt.resolve import class_names as names_of

        if not hasattr(model, "stage_block_types"):
            raise ValueError(f"the explorer shows SMT models (stages of SAM and MSA blocks and their named taps); "
                             f"{type(model).__name__} has none: use viz.analysis.cam.class_activation_maps or "
                             f"viz.capture on its own modules")
        self.model, self.images = model, images
        n = int(getattr(model, "num_classes", 10))
        self.class_names = list(class_names) if class_names is not None else names_of(n)
        self.captures = LRU(cache_size)   # (image key, block) -> one forward pass's taps
        self.gradients = LRU(cache_size)  # (image key, target) -> every stage's activations and gradients
        # image key -> its forward pass with the graph (a new target: one backward, no forward); the shown image
        # and the two the prefetch computes
        self.graphs = LRU(keep_graphs)
        self.threads = TorchThreads(threads)
        self.prefetcher = Prefetcher()
        self.replicas = Replicas(1)  # the prefetch's copy of the model (the caller's hooks stay on the caller's)

    # -- what the controls offer --------------------------------------------------------------------------
    def blocks(self, stage: int) -> list[tuple[str, str]]:
        """(kind, block name) of each block of a stage."""
        kinds = self.model.stage_block_types[stage]
        return [(k, f"stages.{stage}.blocks.{j}") for j, k in enumerate(kinds)]

    def taps(self, block: str) -> list[tuple[str, str]]:
        """(label, tap) of each tap of a block."""
        stage, j = block_index(block)
        taps = [("block output", "output"), ("stage output", "stage")]
        if self.model.stage_block_types[stage][j] == "sam":
            n = len(self.model.get_submodule(block).attn.mhmc.convs)
            return [(f"attn.mhmc.heads.{h}", f"heads.{h}") for h in range(n)] + [
                ("attn.saa_input", "saa_input"), ("attn.modulator", "modulator")] + taps
        return [("attn.attn_weights (centre query)", "attn_weights")] + taps

    # -- compute --------------------------------------------------------------------------------------------
    def capture(self, i: int, block: str, *, model: Optional[nn.Module] = None):
        """The taps, output and stage outputs of `block` for image i (one forward pass, cached; other blocks run
        unhooked). `model`: a copy of the session's model to run (the prefetch's)."""
        model = model if model is not None else self.model

        def run():
            from ..analysis import smt_forward
            from ..capture import capture

            x = self.images.model_input(i).to(_device(model))
            stage, j = block_index(block)
            sam = model.stage_block_types[stage][j] == "sam"
            extra = [block] + ([] if sam else [f"{block}.attn.attn_weights"])
            with self.replicas.using(model), self.threads, capture(model, extra) as cap:
                fwd = smt_forward(model, x, [block] if sam else [], block_outputs=False)
                return fwd, {n: cap[n] for n in extra}
        return self.captures.get((self.images.key(i), block), run)

    def tap_tensor(self, i: int, block: str, tap: str) -> tuple[torch.Tensor, str]:
        """The tap of image i as (channels, H, W) and its name."""
        from ..analysis import tokens_to_map

        fwd, extra = self.capture(i, block)
        stage = block_index(block)[0]
        if tap == "stage":
            return fwd.stage_outputs[stage][0], f"stages.{stage} output"
        if tap == "output":
            return tokens_to_map(extra[block], fwd.grid(block))[0], f"{block} output"
        if tap == "attn_weights":
            a = extra[f"{block}.attn.attn_weights"][0]  # (heads, N, N)
            h, w = fwd.grid(block)
            q = (h // 2) * w + w // 2
            return a[:, q, :].reshape(a.shape[0], h, w), f"{block}.attn.attn_weights, query at the centre"
        f = fwd.sam[block]
        if tap.startswith("heads."):
            return f.heads[int(tap.removeprefix("heads."))][0], f"{block}.attn.mhmc.{tap}"
        return (f.saa_input if tap == "saa_input" else f.modulator)[0], f"{block}.attn.{tap}"

    def tap_view(self, i: int, block: str, tap: str, view: str = "mean", channel: int = 0) -> TapView:
        """The map a tap view shows: the mean |activation| over channels (the mean over heads of attention
        weights), or one channel (signed; attention weights are not)."""
        t, what = self.tap_tensor(i, block, tap)
        attn = tap == "attn_weights"
        unit = "heads" if attn else "channels"
        if view == "mean":
            m = t.mean(0) if attn else t.abs().mean(0)
            return TapView(m.double().cpu(), False, f"{what}: mean over {t.shape[0]} {unit}", t.shape[0])
        if view != "channel":
            raise ValueError(f"view {view!r}: choose 'mean' or 'channel'")
        c = min(max(channel, 0), t.shape[0] - 1)
        return TapView(t[c].double().cpu(), not attn, f"{what}: {'head' if attn else 'channel'} {c}", t.shape[0])

    def cam_view(self, i: int, method: str = "GradCAM", target: int = -1, layer: int = -1) -> CamView:
        """A Grad-CAM-family map of image i at stage `layer` (-1: the second-to-last) for class `target` (-1: the
        predicted one); one backward pass per (image, target) serves every method and layer."""
        from ..analysis.cam import cam_from_gradients

        recorded = self._gradients(i, target)
        t = recorded.targets[0]
        layer = layer if layer >= 0 else max(len(self.model.stages) - 2, 0)
        acts, grads = recorded.layers[f"stages.{layer}"]
        with self.threads:
            cam = cam_from_gradients(method, acts, grads)[0].cpu()
        return CamView(self.images.display[i], cam, f"{method}, {self.class_names[t]}, stage {layer + 1}", t)

    def _gradients(self, i: int, target: int, *, model: Optional[nn.Module] = None):
        from ..analysis.cam import ClassGradients

        model = model if model is not None else self.model

        def graph():  # the forward pass with its graph, kept for the image's other targets
            stages = [f"stages.{s}" for s in range(len(model.stages))]
            with self.replicas.using(model), self.threads:
                return ClassGradients(model, self.images.model_input(i).to(_device(model)), stages)

        def run():
            recorded = self.graphs.get(self.images.key(i), graph)
            with self.threads:
                return recorded.gradients(None if target < 0 else [target])
        return self.gradients.get((self.images.key(i), target), run)

    def top5(self, i: int, block: str) -> list[tuple[str, float]]:
        """(class name, probability) of the five most probable classes of image i (from `block`'s capture)."""
        fwd, _ = self.capture(i, block)
        return _top5(fwd.logits[0].cpu(), self.class_names)

    def truth(self, i: int) -> Optional[str]:
        """The true class of image i, when known (the canvases' labels name the demo models' 10 classes: another
        model's classes are other classes)."""
        labels = self.images.labels
        if labels is None or labels[i] is None or len(self.class_names) != 10:
            return None
        return self.class_names[labels[i]]

    def prefetch(self, indices: Sequence[int], block: str, target: int = -1) -> None:
        """Capture these images' `block` and gradients in the background (replacing earlier jobs not started), on
        a copy of the model (`Replicas`)."""
        def twin():
            return self.replicas.copy("model", self.model)
        n, jobs = len(self.images.display), []
        for i in (i for i in indices if 0 <= i < n):
            jobs += [lambda i=i: self.capture(i, block, model=twin()),
                     lambda i=i: self._gradients(i, target, model=twin())]
        self.prefetcher.request(jobs)
