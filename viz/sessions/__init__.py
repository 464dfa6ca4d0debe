"""Compute sessions, no widgets: what the SAM playground and the model explorer compute, cached, for scripts and
tests to drive without a browser. The widgets (`viz.widgets`) only wire their controls to these objects.

- `ModelResolver` (`models.py`): which model a playground `Config` means, the one place that decides it;
- `SAMSession` (`sam.py`): one SAM block's view of an image under a model (captures and receptive fields,
  cached);
- `ExplorerSession` (`explorer.py`): any tap of one captured forward pass of a fixed model, a Grad-CAM view
  and the top-5;
- `ImageSet`, `load_image` (`images.py`): the images both show;
- `TorchThreads`, `Prefetcher`, `Replicas` (`background.py`): torch's thread count, the background thread
  and the copies of the model it runs on.

The SAM playground lets a researcher change SMT's modulation (head count N, kernel sizes, expand
ratio, SAA on/off) and see what that does. Every change means one of four things, and
`ModelResolver.resolve` returns the model together with the one line that says which:

- a head count / SAA setting that a trained checkpoint of the ablation set has (N = 1, 2, 4, 8 with
  SAA on; N = 4 with SAA off), with the default kernels and expand ratio, switches to that checkpoint
  (`main` for N = 4 when the main model is selected);
- kernel sizes that differ from the trained ones resize the trained kernels: a smaller kernel is the
  centre crop of the trained one (the output changes), a larger one the trained kernel zero-padded
  (the output is exactly unchanged);
- anything else (N = 3, expand ratio 4, ...) builds that configuration at random initialisation
  with the stated seed;
- masking a head zeroes it in the trained model (`viz.analysis.mask_heads`), so the modulator and
  the prediction show what the head contributed.

Every cache is a `viz.cache.LRU` keyed by what determines its content: a model by its configuration
key (`Resolved.key`), a capture by (model key, image key, block, mask), never by `id()` of an object a
cache may free. Both sessions run torch with `threads` intra-op threads (default 1): the demo models at
112 px gain nothing from more, and on a shared 2-core CPU two spinning OpenMP threads made one forward
pass 10-20x slower (measured: 1387 ms with 2 threads, 72 ms with 1, while other work ran). A background
`Prefetcher` computes the neighbouring images' captures between events; it never blocks the caller.
"""
from __future__ import annotations

from .background import Prefetcher, Replicas, TorchThreads
from .explorer import CamView, ExplorerSession, TapView
from .images import ImageSet, load_image
from .models import (
                     TRAINED,
                     AblationFile,
                     Config,
                     ModelResolver,
                     Resolved,
                     architecture,
                     default_kernels,
                     resize_kernels,
                     sam_stages,
                     scan_ablations,
                     stage_setting,
                     with_kernels,
)
from .sam import BlockView, SAMSession, explain, image_of_batch

__all__ = ["Config", "Resolved", "ModelResolver", "default_kernels", "resize_kernels", "with_kernels", "ImageSet",
           "architecture", "sam_stages", "stage_setting", "AblationFile", "scan_ablations",
           "load_image", "SAMSession", "BlockView", "explain", "image_of_batch", "ExplorerSession", "TapView",
           "CamView", "Prefetcher", "TorchThreads", "Replicas", "TRAINED"]
