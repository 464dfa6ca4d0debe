"""Reading weight files into SMT models."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from .model import checkpoint_filter_fn


def read_checkpoint(path: os.PathLike) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint file, in this project's key layout."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    return checkpoint_filter_fn(state)


def load_weights(model: nn.Module, path: os.PathLike) -> None:
    """Load a checkpoint file into `model`; a classifier of another size is left as initialised."""
    state = read_checkpoint(path)
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, nn.Linear) and state.get("head.weight") is not None \
            and state["head.weight"].shape != head.weight.shape:
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert not unexpected and all(k.startswith("head.") for k in missing), (missing, unexpected)
        return
    if not isinstance(head, nn.Linear):
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    model.load_state_dict(state, strict=True)
