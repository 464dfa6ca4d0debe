"""The fused forward path of SMT: switches, oneDNN kernels, weight folding, hook checks, token layouts.

`smt.model` computes every block two ways with the same numbers: literally (the authors' per-head
computation) and fused (fewer, larger ops). This module holds what the fused path needs and the model
parts do not define themselves:

- `FUSE`: one switch per optimisation, to measure what each contributes
  (`benchmarks/bench_model.py --ablate`); every combination computes the same numbers.
- oneDNN kernels for CPU float32 inference (`linear` with its bias and GELU inside the matmul,
  `dwconv_gelu`), falling back to the plain PyTorch ops elsewhere and whenever autograd is on.
- Weight rewrites derived from the parameters on every call (`fold_bn`, `regroup_rows`).
- `structure` / `fusable`: a module runs fused only while nothing (a hook, a swapped submodule)
  expects its submodules to be called.
- `tokens_to_map` / `map_to_tokens`: (B, N, C) tokens and (B, C, H, W) maps in channels-last memory.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["FUSE", "DENSE_EXPAND_MAX_CHANNELS", "ONEDNN_LINEAR", "ONEDNN_CONV", "linear", "dwconv_gelu", "fold_bn",
           "regroup_rows", "is_exact_gelu", "apply_act", "structure", "fusable", "tokens_to_map", "map_to_tokens"]

#: Switches of the fused path, for measuring what each optimisation contributes
#: (`benchmarks/bench_model.py --ablate`). Every combination computes the same numbers.
FUSE = {
    "one_dwconv": True,    # inference: MHMC as one depthwise conv, kernels zero-padded, in regrouped order
    "fold_bn": True,       # eval: SAA's BN folded into its grouped 1x1 conv (and the stem's BN into its conv)
    "expand": "auto",      # SAA grouped 1x1 conv: "dense" (block-diagonal matmul on tokens), "conv", "auto"
    "tokens": True,        # stage tokens made contiguous once (else the residual stream stays transposed)
    "channels_last": True,  # the stem's convs on a channels-last image
    "dw_residual": True,   # MLP: h + dwconv(h) as one depthwise conv (centre tap + 1)
    "inplace": True,       # inference: residual adds, SAM's product and the MLP's GELU in place
    "onednn_linear": True,  # CPU float32 inference: linears as one oneDNN call, bias (and SAA's GELU) fused
    "onednn_gelu": True,   # CPU float32 inference: the MLP's GELU inside its depthwise conv (one oneDNN call)
    "sdpa": True,          # MSA: F.scaled_dot_product_attention instead of explicit softmax weights
}

#: With `FUSE["expand"] == "auto"`, SAA's grouped 1x1 conv runs as a block-diagonal matmul up to this many
#: channels (measured faster), as a grouped conv above.
DENSE_EXPAND_MAX_CHANNELS = 128


def onednn_op(name: str) -> Optional[Callable]:
    """oneDNN's fused CPU kernel `torch.ops.mkldnn.<name>`, when this PyTorch build has it."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(getattr(torch.ops, "mkldnn", None), name, None)


ONEDNN_LINEAR = onednn_op("_linear_pointwise")
ONEDNN_CONV = onednn_op("_convolution_pointwise")


def onednn_inference(x: torch.Tensor, weight: torch.Tensor, switch: str) -> bool:
    """True where a oneDNN kernel may stand in: CPU float32 inference (no autograd, no autocast, not
    being compiled) with the switch on."""
    return (FUSE[switch] and not torch.is_grad_enabled() and x.dtype == torch.float32
            and weight.dtype == torch.float32 and x.device.type == "cpu"
            and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling())


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
           gelu: bool = False) -> torch.Tensor:
    """`F.linear(x, weight, bias)`, followed by exact GELU when `gelu`.

    At CPU float32 inference this is one oneDNN call with the bias and the GELU applied inside the
    matmul; the numbers are those of `F.linear` and `F.gelu` (tested). Elsewhere, and when gradients
    are needed, the plain ops run.
    """
    if ONEDNN_LINEAR is not None and onednn_inference(x, weight, "onednn_linear"):
        return ONEDNN_LINEAR(x, weight, bias, "gelu" if gelu else "none", [None], "none" if gelu else "")
    x = F.linear(x, weight, bias)
    return F.gelu(x) if gelu else x


def dwconv_gelu(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], act: nn.Module) -> torch.Tensor:
    """`act(depthwise_conv(x))` with stride 1 and 'same' padding; one oneDNN call at CPU float32
    inference when `act` is exact GELU (same numbers to float32 rounding, tested)."""
    k, C = weight.shape[-1], weight.shape[0]
    if ONEDNN_CONV is not None and is_exact_gelu(act) and onednn_inference(x, weight, "onednn_gelu"):
        return ONEDNN_CONV(x, weight, bias, [k // 2] * 2, [1, 1], [1, 1], C, "gelu", [None], "none")
    return apply_act(act, F.conv2d(x, weight, bias, padding=k // 2, groups=C))


def fold_bn(w: torch.Tensor, b: Optional[torch.Tensor], bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weight and bias with an eval-mode BatchNorm after the conv folded in."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    b = -bn.running_mean if b is None else b - bn.running_mean
    return w * scale.reshape(-1, *([1] * (w.ndim - 1))), b * scale + bn.bias


def regroup_rows(t: Optional[torch.Tensor], num_heads: int) -> Optional[torch.Tensor]:
    """`HeadRegroup` applied to the first dim: row h*C/N + g moves to g*N + h."""
    if t is None:
        return None
    return t.reshape(num_heads, t.shape[0] // num_heads, *t.shape[1:]).transpose(0, 1).reshape(t.shape)


def is_exact_gelu(act: nn.Module) -> bool:
    """True for `nn.GELU()` without the tanh approximation (what oneDNN's fused GELU computes)."""
    return type(act) is nn.GELU and act.approximate == "none"


def apply_act(act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`act(x)`; GELU in place at inference (x is a fresh intermediate)."""
    if FUSE["inplace"] and not torch.is_grad_enabled() and type(act) is nn.GELU:
        return torch.ops.aten.gelu_(x, approximate=act.approximate)
    return act(x)


def structure(module: nn.Module) -> tuple:
    """Types of `module`'s submodules in order: recorded at construction, compared before fusing."""
    return tuple(type(m) for m in module.modules())


def fusable(module: nn.Module) -> bool:
    """True when a fused forward may stand in for `module`'s literal one.

    That is: no hook (forward or backward, global or on a submodule) would miss its call, and the
    submodules are still of the types `module` was built with (`module._built_structure`, from
    `structure`; model surgery, such as swapping a conv for another module, falls back to the literal
    path). Hooks on `module` itself are fine.
    """
    mod = nn.modules.module
    if (mod._global_forward_hooks or mod._global_forward_pre_hooks or mod._global_backward_hooks
            or mod._global_backward_pre_hooks):
        return False
    built = module._built_structure
    i = -1
    for i, m in enumerate(module.modules()):
        if i >= len(built) or type(m) is not built[i]:
            return False
        if i and (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks):
            return False
    return i + 1 == len(built)


def tokens_to_map(x: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """(B, N, C) tokens -> (B, C, H, W) in channels-last memory (a view when the tokens are contiguous)."""
    B, N, C = x.shape
    return x.transpose(1, 2).reshape(B, C, H, W).contiguous(memory_format=torch.channels_last)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C) tokens (a view when the map is channels-last)."""
    return x.flatten(2).transpose(1, 2)
