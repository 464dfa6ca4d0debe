"""Facts measured on the authors' SMT code, and the deterministic weights they were measured with.

`data/reference/smt_official_reference.json` holds, per released variant, every key of the authors'
state dict with its shape, the parameter count, fvcore's multiply-adds at 224, and the float64
logits for the weights of `fill_official_state_dict` on the input of `reference_input`
(`data/reference/README.md` gives the recipe). They let anyone check that this implementation
computes what the authors' code computes, without their weights.
"""
from __future__ import annotations

import json
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

REFERENCE_FILE = Path(__file__).resolve().parent.parent / "data" / "reference" / "smt_official_reference.json"


def reference_path() -> Path:
    """The reference file: `$SMT_REFERENCE` if set, else the copy in `data/reference/`."""
    return Path(os.environ.get("SMT_REFERENCE", REFERENCE_FILE))


def load_reference(path: Optional[os.PathLike] = None) -> dict:
    """The `variants` table of the reference file."""
    path = Path(path) if path is not None else reference_path()
    if not path.is_file():
        raise FileNotFoundError(f"reference facts not found at {path}; set SMT_REFERENCE to the "
                                f"smt_official_reference.json file")
    return json.loads(path.read_text())["variants"]


def fill_official_state_dict(shapes: dict[str, list[int]], dtype: torch.dtype = torch.float64
                             ) -> dict[str, torch.Tensor]:
    """Deterministic weights for an official key list (the reference's fill rule).

    Each key seeds its own generator with crc32(key), so the values do not depend on key order.
    """
    out = {}
    for k, shape in shapes.items():
        g = torch.Generator().manual_seed(zlib.crc32(k.encode()))
        last = k.split(".")[-1]
        if k.endswith("num_batches_tracked"):
            out[k] = torch.zeros(shape, dtype=torch.long)
            continue
        if k.endswith("running_var"):
            t = 1.0 + 0.1 * torch.rand(shape, generator=g, dtype=torch.float64)
        elif k.endswith("running_mean"):
            t = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif (len(shape) == 1 and k.endswith("weight")) or last.startswith("gamma"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif len(shape) == 1:
            t = 0.02 * torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            t = torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(math.prod(shape[1:]))
        out[k] = t.to(dtype)
    return out


def reference_input() -> torch.Tensor:
    """The reference input: randn(2, 3, 224, 224) from seed 0, float32."""
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@dataclass(frozen=True)
class ReferenceCheck:
    """How far a model's float64 logits are from the reference's."""

    variant: str
    max_abs_first16: float
    max_abs_sum: float
    argmax_equal: bool

    @property
    def max_abs(self) -> float:
        return max(self.max_abs_first16, self.max_abs_sum)


def check_against_reference(variant: str, reference: Optional[dict] = None) -> ReferenceCheck:
    """Build `variant`, load the fill-rule weights through the official-key converter, compare logits (float64).

    The reference logits come from a float32 model filled by the rule and then cast with `.double()`:
    its weights are the float32-rounded values (filling a float64 model directly differs by ~2e-7).
    """
    import timm

    from .model import checkpoint_filter_fn

    ref = (reference or load_reference())[variant]
    model = timm.create_model(variant).eval()
    state = checkpoint_filter_fn({"model": fill_official_state_dict(ref["state_dict"], torch.float32)})
    model.load_state_dict(state, strict=True)
    model = model.double()
    with torch.no_grad():
        logits = model(reference_input().double())
    first16 = torch.tensor(ref["logits_float64_first16"], dtype=torch.float64)
    sums = torch.tensor(ref["logits_float64_sum"], dtype=torch.float64)
    return ReferenceCheck(
        variant=variant,
        max_abs_first16=(logits[:, :16] - first16).abs().max().item(),
        max_abs_sum=(logits.sum(1) - sums).abs().max().item(),
        argmax_equal=logits.argmax(1).tolist() == ref["logits_float64_argmax"],
    )
