"""Capture module outputs (and their gradients) by module name, with every hook removed on exit.

The pattern follows captum (`captum/_utils/gradient.py`: hooks live for one call and are removed in
`finally`; a hook that never fired is an error) and pytorch-grad-cam (gradients are caught with
`tensor.register_hook` from inside the forward hook, not with module backward hooks).

    with viz.capture(model, "modulator") as cap:          # SMT shortcut: every SAM block's modulator
        model(images)
    cap["stages.2.blocks.0.attn.modulator"]               # (B, C, H, W), on the CPU

Patterns are module names (`model.named_modules()`), globs over them (`fnmatch`: `*` also crosses
dots) or the SMT shortcuts in `TAP_SHORTCUTS`. The model's train/eval mode is never changed.
`inputs=True` records what each module is called with instead (its positional arguments, as a
tuple), e.g. a block's input tokens and grid `(x, H, W)`; a module returning a tuple is recorded
as a tuple.
"""
from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Optional, Union

import torch
import torch.nn as nn

from smt.model import TAPS

__all__ = ["capture", "Captured", "TAP_SHORTCUTS", "resolve_patterns"]

def _shortcut(tap: str) -> str:
    """`attn.mhmc.heads.{h}` -> "heads", `attn.saa_input` -> "saa_input"."""
    parts = [p for p in tap.split(".") if "{" not in p]
    return parts[-1]


_TAP_GLOBS = {_shortcut(t): ("*" + t.replace("{h}", "*"),) for t in TAPS}

#: Shortcuts for the SMT tap points, derived from `smt.TAPS` (one glob over module names each), plus
#: "mhmc_heads" (= "heads") and "taps" (all of them).
TAP_SHORTCUTS: dict[str, tuple[str, ...]] = {
    **_TAP_GLOBS,
    "mhmc_heads": _TAP_GLOBS["heads"],
    "taps": tuple(g for globs in _TAP_GLOBS.values() for g in globs),
}


def resolve_patterns(model: nn.Module, patterns: Union[str, Sequence[str]]) -> list[str]:
    """Module names matched by `patterns`, in `named_modules()` order, without duplicates.

    Args:
        model: Any module.
        patterns: A name, a glob, an SMT shortcut (`TAP_SHORTCUTS`), or a sequence of these.

    Raises:
        ValueError: A pattern matches no module; the message lists the closest module names.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        raise ValueError("no pattern given: pass a module name, a glob such as 'stages.*.blocks.*.attn.modulator' "
                         f"or one of the shortcuts {sorted(TAP_SHORTCUTS)}")
    names = [n for n, _ in model.named_modules() if n]
    index = {n: i for i, n in enumerate(names)}
    chosen: set[str] = set()
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise TypeError(f"pattern {pattern!r} is a {type(pattern).__name__}; patterns are strings")
        if pattern in index:
            chosen.add(pattern)
            continue
        globs = TAP_SHORTCUTS.get(pattern, (pattern,))
        hits = [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs)]
        if not hits:
            close = difflib.get_close_matches(pattern, names, n=5, cutoff=0.3)
            hint = f"closest module names: {close}" if close else f"the model has modules such as {names[:5]}"
            raise ValueError(f"pattern {pattern!r} matches no module of {type(model).__name__}; {hint}. "
                             f"Globs use fnmatch ('*' crosses dots); SMT shortcuts: {sorted(TAP_SHORTCUTS)}")
        chosen.update(hits)
    return sorted(chosen, key=index.__getitem__)


class Captured:
    """Tensors recorded by `capture`, per module name, in call order (a module may fire more than once)."""

    def __init__(self, names: Sequence[str], grads: bool):
        self.names = tuple(names)
        self.activations: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        self.gradients: Optional[dict[str, list[Optional[torch.Tensor]]]] = {n: [] for n in names} if grads else None

    def __contains__(self, name: str) -> bool:
        return name in self.activations

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def _one(self, store: dict, name: str, what: str) -> torch.Tensor:
        if name not in store:
            close = difflib.get_close_matches(name, self.names, n=3, cutoff=0.3)
            raise KeyError(f"{name!r} was not captured; captured names close to it: {close}")
        values = store[name]
        if len(values) != 1:
            raise ValueError(f"{what} of {name!r} was recorded {len(values)} times (one per call); "
                             f"use .all({name!r}) for the list or .cat({name!r}) to concatenate along the batch")
        if values[0] is None:
            raise RuntimeError(f"the gradient of {name!r} never arrived: call .backward() inside the capture block")
        return values[0]

    def __getitem__(self, name: str) -> torch.Tensor:
        """The output of `name` when it fired exactly once."""
        return self._one(self.activations, name, "the output")

    def all(self, name: str) -> list[torch.Tensor]:
        """Every output of `name`, in call order."""
        return list(self.activations[name])

    def cat(self, name: str, dim: int = 0) -> torch.Tensor:
        """The outputs of `name` over all calls, concatenated along `dim` (the batch by default)."""
        return torch.cat(self.activations[name], dim=dim)

    def grad(self, name: str) -> torch.Tensor:
        """The gradient of the loss with respect to the output of `name` (single call)."""
        if self.gradients is None:
            raise RuntimeError("gradients were not captured: use capture(..., grads=True)")
        return self._one(self.gradients, name, "the gradient")

    def grads_all(self, name: str) -> list[Optional[torch.Tensor]]:
        """Gradients for every call of `name`, aligned with `all(name)` (None where none arrived)."""
        if self.gradients is None:
            raise RuntimeError("gradients were not captured: use capture(..., grads=True)")
        return list(self.gradients[name])

    def __repr__(self) -> str:
        return f"Captured({len(self.names)} modules, grads={self.gradients is not None})"


@contextmanager
def capture(
        model: nn.Module,
        patterns: Union[str, Sequence[str]],
        *,
        grads: bool = False,
        to: Optional[Union[str, torch.device]] = "cpu",
        dtype: Optional[torch.dtype] = None,
        keep_graph: bool = False,
        strict: bool = True,
        inputs: bool = False,
) -> Iterator[Captured]:
    """Record the outputs (and optionally output gradients) of the modules matched by `patterns`.

    Args:
        model: Any `nn.Module`; SMT tap names (`smt.TAPS`) and shortcuts (`TAP_SHORTCUTS`) work on SMT.
        patterns: Module names, fnmatch globs over `model.named_modules()`, or shortcuts.
        grads: Also record d(loss)/d(output) via `tensor.register_hook`; call `.backward()` in the block.
        to: Device each recorded tensor is moved to as it arrives; None keeps it where it is.
        dtype: Down-cast recorded tensors (e.g. `torch.float16`) as they arrive; None keeps the dtype.
        keep_graph: Record the live output (no detach, no copy) so it can be differentiated further;
            `to` and `dtype` must then be None.
        strict: On a clean exit, raise if a matched module never fired (or, with `grads`, if its
            gradient never arrived).
        inputs: Record each call's positional arguments (a tuple; tensors converted as outputs are,
            other values kept) instead of the output. Not combinable with `grads`.

    Yields:
        A `Captured`: `cap[name]`, `cap.all(name)`, `cap.cat(name)`, `cap.grad(name)`.

    Recorded tensors are detached copies (an in-place op later in the forward cannot change them).
    Hooks are removed in `finally`, also when the body raises (including `KeyboardInterrupt`).
    """
    if keep_graph and (to is not None or dtype is not None):
        raise ValueError("keep_graph=True records the live tensors: pass to=None and dtype=None")
    if inputs and grads:
        raise ValueError("inputs=True records what modules are called with; gradients are recorded for outputs "
                         "only (grads=True without inputs=True)")
    names = resolve_patterns(model, patterns)
    modules = dict(model.named_modules())
    result = Captured(names, grads)
    handles: list = []

    def convert(t: torch.Tensor) -> torch.Tensor:
        if keep_graph:
            return t
        return t.detach().to(device=to if to is not None else t.device, dtype=dtype or t.dtype, copy=True)

    def record(name: str, module: nn.Module, value):
        if isinstance(value, tuple):
            return tuple(convert(v) if isinstance(v, torch.Tensor) else v for v in value)
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"capture: module {name!r} ({type(module).__name__}) returned a "
                            f"{type(value).__name__}, not a tensor or a tuple; capture one of its submodules instead")
        return convert(value)

    def make_input_hook(name: str):
        def hook(module: nn.Module, args):
            result.activations[name].append(record(name, module, tuple(args)))
        return hook

    def make_hook(name: str):
        def hook(module: nn.Module, args, output):
            result.activations[name].append(record(name, module, output))
            if grads:
                slot = len(result.gradients[name])
                result.gradients[name].append(None)
                if isinstance(output, torch.Tensor) and output.requires_grad:
                    def grad_hook(g: torch.Tensor, slot: int = slot) -> None:
                        result.gradients[name][slot] = convert(g)
                    handles.append(output.register_hook(grad_hook))
        return hook

    try:
        for name in names:
            module = modules[name]
            handles.append(module.register_forward_pre_hook(make_input_hook(name)) if inputs
                           else module.register_forward_hook(make_hook(name)))
        yield result
    finally:
        for h in handles:
            h.remove()
        handles.clear()
    if strict:
        silent = [n for n in names if not result.activations[n]]
        if silent:
            raise RuntimeError(f"capture: {len(silent)} requested module(s) never fired, e.g. {silent[:3]}; "
                               f"run the forward pass inside the block, or capture fewer modules (strict=False)")
        if grads:
            missing = [n for n in names if any(g is None for g in result.gradients[n])]
            if missing:
                raise RuntimeError(f"capture: no gradient arrived for {missing[:3]}; call loss.backward() inside "
                                   f"the block with autograd enabled (not under torch.no_grad())")
