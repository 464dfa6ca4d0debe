"""Class activation maps through the `grad-cam` package (pytorch_grad_cam), returned raw.

Selvaraju et al., "Grad-CAM", ICCV 2017, and the package's other methods (GradCAM++, XGradCAM,
EigenCAM, LayerCAM, ScoreCAM, HiResCAM, ...). This module does not re-implement any method: it
runs the package's method class with three changes that matter for analysis:

- maps come back raw, signed and at the target layer's resolution (the package applies ReLU,
  min-max normalises each map and resizes it to the input; here those are separate steps:
  `cam_to_image` here and `viz.plot.cam.overlay` do them on request);
- one target per image is required (the package silently zips targets and images, dropping the
  surplus of the longer list);
- the model's train/eval mode of every submodule is restored afterwards (the package calls
  `model.eval()` and leaves it so), and the package's hooks are always released.

SMT stage outputs are NCHW, so stages need no reshape transform; blocks return tokens (B, N, C),
and `token_reshape(grid_hw)` turns them into maps with the grid given explicitly.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import stage_grid, tokens_to_map

__all__ = ["CAM_METHODS", "GRADIENT_METHODS", "class_activation_maps", "LayerGradients", "layer_gradients",
           "ClassGradients", "cam_from_gradients",
           "token_reshape", "default_target_layers", "stage_grid", "cam_to_image", "pointing_game",
           "pointing_hits"]

CAM_METHODS = ("GradCAM", "GradCAMPlusPlus", "XGradCAM", "EigenCAM", "EigenGradCAM", "LayerCAM", "ScoreCAM",
               "HiResCAM", "GradCAMElementWise", "KPCA_CAM", "RandomCAM", "AblationCAM", "FullGrad", "ShapleyCAM",
               "FinerCAM", "FEM")


def token_reshape(grid_hw: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Reshape transform for token outputs (B, N, C) -> (B, C, H, W) with an explicit grid (`tokens_to_map`)."""
    grid_hw = (int(grid_hw[0]), int(grid_hw[1]))

    def reshape(t: torch.Tensor) -> torch.Tensor:
        return tokens_to_map(t, grid_hw)

    return reshape


def default_target_layers(model: nn.Module, stage: int = -1) -> list[nn.Module]:
    """The output of SMT stage `stage` (NCHW after the stage norm): the usual Grad-CAM target."""
    if not hasattr(model, "stages"):
        raise ValueError(f"{type(model).__name__} has no `stages`; pass target_layers explicitly")
    return [model.stages[stage]]


def _method_class(method: Union[str, type]) -> type:
    import pytorch_grad_cam

    if isinstance(method, type):
        return method
    cls = getattr(pytorch_grad_cam, method, None)
    if cls is None or not isinstance(cls, type):
        raise ValueError(f"unknown CAM method {method!r}; pytorch_grad_cam has {', '.join(CAM_METHODS)}")
    return cls


def class_activation_maps(
        model: nn.Module,
        images: torch.Tensor,
        targets: Sequence[Union[int, Callable]],
        *,
        method: Union[str, type] = "GradCAM",
        target_layers: Optional[Sequence[nn.Module]] = None,
        reshape_transform: Optional[Callable] = None,
        eigen_smooth: bool = False,
        per_layer: bool = False,
        **method_kwargs,
) -> Union[torch.Tensor, list[torch.Tensor]]:
    """Raw CAMs, one per image, at the target layer's resolution.

    Args:
        model: A classifier (any mode; every submodule's mode is restored afterwards).
        images: Normalised images (B, C, H, W).
        targets: One per image: a class index or a pytorch_grad_cam target callable.
        method: A method class name of pytorch_grad_cam (see `CAM_METHODS`) or the class.
        target_layers: Layers to explain; default the last SMT stage. Several layers are averaged
            (they must share a grid) unless `per_layer`.
        reshape_transform: For layers with token outputs: `token_reshape(grid_hw)`.
        eigen_smooth: The package's first-principal-component smoothing.
        per_layer: Return one map tensor per target layer, all from the same forward and backward
            pass (the gradient of a class score at one layer does not depend on which other layers
            are hooked, so this equals one call per layer at a fraction of the cost).
        **method_kwargs: Passed to the method class (e.g. `batch_size` for ScoreCAM).

    Returns:
        (B, h, w) float32 maps, signed, not normalised (ReLU, resizing and overlay are separate);
        with `per_layer`, a list of them in the order of `target_layers`.
    """
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if images.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
    if len(targets) != images.shape[0]:
        raise ValueError(f"{len(targets)} targets for {images.shape[0]} images: give exactly one target per "
                         f"image (the grad-cam package would silently drop the surplus)")
    targets = [ClassifierOutputTarget(int(t)) if isinstance(t, (int, np.integer)) else t for t in targets]
    target_layers = list(target_layers) if target_layers is not None else default_target_layers(model)
    base = _method_class(method)

    class Raw(base):  # the package's method, minus ReLU / normalisation / resizing
        def compute_cam_per_layer(self, input_tensor, targets, eigen_smooth):
            acts = [a.cpu().data.numpy() for a in self.activations_and_grads.activations]
            grads = [g.cpu().data.numpy() for g in self.activations_and_grads.gradients]
            return [self.get_cam_image(input_tensor, layer, targets, acts[i] if i < len(acts) else None,
                                       grads[i] if i < len(grads) else None, eigen_smooth)[:, None]
                    for i, layer in enumerate(self.target_layers)]

        def aggregate_multi_layers(self, cam_per_target_layer):
            if per_layer:
                return [c[:, 0] for c in cam_per_target_layer]
            grids = {c.shape[2:] for c in cam_per_target_layer}
            if len(grids) > 1:
                raise ValueError(f"the target layers' maps have different grids {sorted(grids)}, so they cannot "
                                 f"be averaged; pass per_layer=True to get one map per layer")
            return np.mean(np.concatenate(cam_per_target_layer, axis=1), axis=1)

    modes = {m: m.training for m in model.modules()}
    cam = None
    try:
        cam = Raw(model=model, target_layers=target_layers, reshape_transform=reshape_transform, **method_kwargs)
        maps = cam(input_tensor=images, targets=targets, eigen_smooth=eigen_smooth)
    finally:
        if cam is not None:
            cam.activations_and_grads.release()
        for m, training in modes.items():
            m.training = training
    if per_layer:
        return [torch.from_numpy(np.ascontiguousarray(layer_maps)).float() for layer_maps in maps]
    return torch.from_numpy(np.ascontiguousarray(maps)).float()


#: Methods that need only a layer's activations and gradients (`cam_from_gradients` can apply them to recorded ones).
GRADIENT_METHODS = ("GradCAM", "GradCAMPlusPlus", "XGradCAM", "EigenCAM", "EigenGradCAM", "LayerCAM", "HiResCAM",
                    "GradCAMElementWise")


@dataclass(frozen=True)
class LayerGradients:
    """One forward and one backward pass: the logits, the target of each image, and for each named module its
    output and the gradient of the targets' summed logits with respect to it (`layers`: name -> (out, grad))."""
    logits: torch.Tensor
    targets: tuple[int, ...]
    layers: dict[str, tuple[torch.Tensor, torch.Tensor]]


class ClassGradients:
    """One forward pass kept with its graph: `gradients(targets)` gives the outputs of the named modules and the
    gradients of the targets' scores with respect to them by one backward pass, for any targets, without a
    new forward (an explorer's target menu). The graph (the saved activations) lives as long as this object.

    Only the gradients with respect to the modules' outputs are computed (`torch.autograd.grad`): nothing
    accumulates in the parameters' `.grad`. The modes of the model are not changed (use eval mode, as for any
    CAM). The hooks that record the outputs are removed before the constructor returns.
    """

    def __init__(self, model: nn.Module, images: torch.Tensor, layers: Sequence[str]):
        from ..capture import capture

        self.layers = list(layers)
        with torch.enable_grad(), capture(model, self.layers, to=None, keep_graph=True) as cap:
            self._logits = model(images)
            self._outputs = [cap[n] for n in self.layers]
        self.logits = self._logits.detach()

    def gradients(self, targets: Optional[Sequence[int]] = None) -> LayerGradients:
        """The score is the logit of each image's target class (None: its predicted class), summed over the
        batch, as `class_activation_maps` uses it."""
        n = self.logits.shape[0]
        if targets is not None and len(targets) != n:
            raise ValueError(f"{len(targets)} targets for {n} images: give one target per image")
        chosen = tuple(int(t) for t in (targets if targets is not None else self.logits.argmax(1)))
        with torch.enable_grad():
            score = self._logits[torch.arange(n), torch.as_tensor(chosen)].sum()
            grads = torch.autograd.grad(score, self._outputs, retain_graph=True)
        return LayerGradients(self.logits, chosen, {name: (a.detach(), g) for name, a, g in
                                                    zip(self.layers, self._outputs, grads)})


def layer_gradients(model: nn.Module, images: torch.Tensor, targets: Optional[Sequence[int]],
                    layers: Sequence[str]) -> LayerGradients:
    """Outputs and gradients of the target class scores at the named modules, from one forward and one backward
    pass (e.g. every SMT stage output, for `cam_from_gradients`, plus any tap); `ClassGradients` keeps the
    forward for other targets."""
    if targets is not None and len(targets) != images.shape[0]:
        raise ValueError(f"{len(targets)} targets for {images.shape[0]} images: give one target per image")
    return ClassGradients(model, images, layers).gradients(targets)


def cam_from_gradients(method: Union[str, type], activations: torch.Tensor, gradients: torch.Tensor, *,
                       eigen_smooth: bool = False) -> torch.Tensor:
    """A pytorch_grad_cam method applied to a layer's recorded activations and gradients (`layer_gradients`),
    without running the model: raw (B, h, w) maps, equal to `class_activation_maps` for that layer.

    For the methods in `GRADIENT_METHODS`, which need nothing else (the package's `get_cam_image`). The
    method object is built on a stand-in module, and its hooks are released at once.
    """
    base = _method_class(method)
    if base.__name__ not in GRADIENT_METHODS:
        raise ValueError(f"{base.__name__} needs more than activations and gradients (it runs the model again); "
                         f"use class_activation_maps, or one of {', '.join(GRADIENT_METHODS)}")
    if activations.ndim != 4 or activations.shape != gradients.shape:
        raise ValueError(f"activations {tuple(activations.shape)} and gradients {tuple(gradients.shape)} must be the "
                         f"same (B, C, h, w)")
    stand_in = nn.Linear(1, 1)
    cam = base(model=stand_in, target_layers=[stand_in])
    try:
        acts, grads = activations.detach().cpu().numpy(), gradients.detach().cpu().numpy()
        x = torch.empty(acts.shape[0], 1, *acts.shape[2:])
        maps = cam.get_cam_image(x, stand_in, None, acts, grads, eigen_smooth)
    finally:
        cam.activations_and_grads.release()
    return torch.from_numpy(np.ascontiguousarray(maps)).float()


def cam_to_image(cams: torch.Tensor, size: tuple[int, int], *, relu: bool = True, normalize: bool = True
                 ) -> torch.Tensor:
    """Display transform: ReLU, bilinear upsampling to `size`, per-map min-max to [0, 1]."""
    x = cams.float()[:, None]
    if relu:
        x = x.clamp_min(0)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)[:, 0]
    if normalize:
        lo = x.flatten(1).min(1).values[:, None, None]
        hi = x.flatten(1).max(1).values[:, None, None]
        x = (x - lo) / (hi - lo).clamp_min(1e-12)
    return x


def pointing_game(cams: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int], *, tolerance: int = 0
                  ) -> float:
    """Fraction of images whose CAM maximum falls inside the image's box (the mean of `pointing_hits`;
    `viz.analysis.stats.proportion_interval` of the hits gives its Wilson interval)."""
    return pointing_hits(cams, boxes, image_size, tolerance=tolerance).float().mean().item()


def pointing_hits(cams: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int], *, tolerance: int = 0
                  ) -> torch.Tensor:
    """Per image, whether its CAM maximum falls inside its box: (B,) bool.

    Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016. Each (h, w) map is
    upsampled bilinearly to the image size; its arg-max pixel is a hit when it lies inside the box
    `(x0, y0, x1, y1)` (pixels, x1/y1 exclusive) grown by `tolerance` pixels.

    Args:
        cams: (B, h, w) raw maps.
        boxes: (B, 4) boxes in image pixels.
        image_size: (H, W) of the images.
        tolerance: Margin in pixels (the original uses 15 at 224).
    """
    if cams.shape[0] != boxes.shape[0]:
        raise ValueError(f"{cams.shape[0]} maps but {boxes.shape[0]} boxes; give one box per map")
    up = F.interpolate(cams.float()[:, None], size=image_size, mode="bilinear", align_corners=False)[:, 0]
    idx = up.flatten(1).argmax(1)
    y, x = idx // image_size[1], idx % image_size[1]
    b = boxes.float()
    hit = ((x >= b[:, 0] - tolerance) & (x < b[:, 2] + tolerance)
           & (y >= b[:, 1] - tolerance) & (y < b[:, 3] + tolerance))
    return hit
