"""SMT: Scale-Aware Modulation Transformer, as a timm model.

Paper: Weifeng Lin, Ziheng Wu, Jiayu Chen, Jun Huang, Lianwen Jin,
"Scale-Aware Modulation Meet Transformer", ICCV 2023 (arXiv:2307.08579).

Numerically this is the released SMT: with the release weights converted by `checkpoint_filter_fn`
it reproduces the authors' logits (float64, to 1e-9; see `tests/test_model.py`). What differs:

- Names follow timm (`stem`, `stages.{i}.downsample`, `stages.{i}.blocks.{j}`, `stages.{i}.norm`,
  `head`) instead of `patch_embed{i}`, `block{i}.{j}`, `norm{i}`. Inside a SAM block the per-head
  convolutions are `attn.mhmc.convs.{h}` (authors: `attn.local_conv_{h+1}`), SAA is
  `attn.saa.{expand,bn,reduce}` (authors: `attn.proj0`, `attn.bn`, `attn.proj1`), the MLP's
  depthwise conv is `mlp.dwconv` (authors: `mlp.dwconv.dwconv`) and layer scale is
  `ls{1,2}.gamma` (authors: `gamma_{1,2}`). `checkpoint_filter_fn` and `to_official_state_dict`
  (`smt.keys`) convert both ways, exactly.
- Named identity taps (no parameters, nothing in the state dict) expose what lives inside a block:
  `attn.mhmc.heads.{h}`, `attn.saa_input`, `attn.modulator` (SAM) and `attn.attn_weights` (MSA).
  `TAPS` documents them. The authors keep the modulator as an attribute (`self.modulator = ...`)
  instead, which holds a reference to the last batch.
- Stages take and return NCHW; `forward_features` returns the final stage as NCHW and the head
  mean-pools over H, W (the authors mean-pool the token sequence: the same numbers).
- MSA blocks use `F.scaled_dot_product_attention` on the fused path when nothing listens on
  `attn.attn_weights`; the literal path materialises the softmax weights, as the authors do.
- Two forward paths with the same numbers (to float32 rounding, 1e-5): the literal one
  (`model.set_fused(False)`; per-head convs, concatenation, regrouping, as the authors compute) and
  the fused default. The fused SAM permutes the s projection's output channels into the regrouped
  order and, at inference, runs MHMC as one depthwise conv whose per-head kernels are zero-padded to
  the largest, so the concatenation and the regrouping copy disappear (with autograd on each head
  keeps its own conv: the padded conv's backward costs the largest kernel on every channel); SAA's
  grouped 1x1 conv runs as a block-diagonal matmul on tokens up to 128 channels; BatchNorm (SAA,
  stem) is folded into the conv before it in eval mode; the MLP's `h + dwconv(h)` is one depthwise
  conv with 1 added to each kernel's centre tap; the stem runs channels-last so stage tokens are
  contiguous; at inference the residual adds and the MLP's GELU are in place, and on a CPU in
  float32 every linear layer is one oneDNN call with its bias (and SAA's GELU after a folded
  BatchNorm) applied inside the matmul, which saves the separate pass that `addmm` makes to
  broadcast the bias. Fused weights are derived from the parameters on every call: nothing is
  cached or saved, gradients flow to input and parameters alike, and the path is the same in
  training (BatchNorm then uses batch statistics, unfolded). A module whose taps or other
  submodules carry hooks, or whose submodules were swapped, runs the literal path, so every tap
  fires. The helpers and switches of the fused path are in `smt.fused`; `benchmarks/bench_model.py`
  measures both paths.
- Configurable beyond the release: SAM head count, kernel size per head, SAA on/off (ablation),
  the SAM/MSA pattern of each stage, `in_chans` (read and checked per stage by
  `smt.variants.resolve_stages`; the variants' architectures are `smt.variants.VARIANTS`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, LayerNorm2d, LayerScale, trunc_normal_
from timm.models import build_model_with_cfg, checkpoint, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices

from .checkpoint import load_weights
from .fused import (
    DENSE_EXPAND_MAX_CHANNELS,
    FUSE,
    apply_act,
    dwconv_gelu,
    fold_bn,
    fusable,
    is_exact_gelu,
    linear,
    map_to_tokens,
    regroup_rows,
    structure,
    tokens_to_map,
)
from .keys import (
    checkpoint_filter_fn,
    is_official_state_dict,
    official_key_to_ours,
    our_key_to_official,
    to_official_state_dict,
)
from .variants import BLOCK_TYPES, STAGE_PATTERNS, VARIANTS, default_kernel_sizes, expand_block_types, resolve_stages

# the key conversion (`smt.keys`) and the variant table (`smt.variants`) are also importable from here
__all__ = ["SMT", "TAPS", "VARIANTS", "BLOCK_TYPES", "STAGE_PATTERNS", "expand_block_types", "checkpoint_filter_fn",
           "to_official_state_dict", "official_key_to_ours", "our_key_to_official", "is_official_state_dict"]

#: Tap points: identity modules inside every block, by the suffix of their module name.
TAPS = {
    "attn.mhmc.heads.{h}": "SAM: output of MHMC head h, (B, C/N, H, W), its depthwise conv of kernel k_h",
    "attn.saa_input": "SAM: input of SAA, (B, C, H, W), channels regrouped so that group g holds channel "
                      "g of every head (channel g*N + h); with SAA off, the heads' outputs in head order",
    "attn.modulator": "SAM: output of SAA, the modulator that multiplies v, (B, C, H, W)",
    "attn.attn_weights": "MSA: softmax attention weights, (B, heads, N, N), N = H*W tokens in row-major order",
}


class MultiHeadMixedConv(nn.Module):
    """MHMC: split channels into N contiguous heads, depthwise conv of kernel k_h on head h."""

    def __init__(self, dim: int, kernel_sizes: Sequence[int]):
        """
        Args:
            dim: Channels C; head h owns channels [h*C/N, (h+1)*C/N).
            kernel_sizes: One odd kernel size per head (the paper: 3, 5, 7, ...).
        """
        super().__init__()
        self.num_heads = len(kernel_sizes)
        self.head_dim = dim // self.num_heads
        self.kernel_sizes = tuple(kernel_sizes)
        self.convs = nn.ModuleList(
            nn.Conv2d(self.head_dim, self.head_dim, k, padding=k // 2, groups=self.head_dim) for k in kernel_sizes)
        self.heads = nn.ModuleList(nn.Identity() for _ in kernel_sizes)  # taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W), head order
        chunks = x.split(self.head_dim, dim=1)
        return torch.cat([tap(conv(c)) for c, conv, tap in zip(chunks, self.convs, self.heads)], dim=1)


class HeadRegroup(nn.Module):
    """Reorder channels from head order (h*C/N + g) to group order (g*N + h): group g holds one channel per head."""

    def __init__(self, num_heads: int):
        """
        Args:
            num_heads: N, the number of MHMC heads.
        """
        super().__init__()
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        B, C, H, W = x.shape
        return x.reshape(B, self.num_heads, C // self.num_heads, H, W).transpose(1, 2).reshape(B, C, H, W)


class ScaleAwareAggregation(nn.Module):
    """SAA: grouped 1x1 conv inside each group of N channels (one per head), BN, GELU, dense 1x1 conv."""

    def __init__(self, dim: int, num_heads: int, expand_ratio: float = 2.0, act_layer: Callable = nn.GELU):
        """
        Args:
            dim: Channels C.
            num_heads: N; the expand conv has C/N groups of N input channels.
            expand_ratio: Hidden channels are expand_ratio * C.
            act_layer: Activation between the two convolutions.
        """
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.expand = nn.Conv2d(dim, hidden, 1, groups=dim // num_heads)
        self.bn = nn.BatchNorm2d(hidden)
        self.act = act_layer()
        self.reduce = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return self.reduce(self.act(self.bn(self.expand(x))))

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, H*W, C) tokens
        """`forward` returning tokens; in eval the BN is folded into the grouped conv."""
        B, C, H, W = x.shape
        e, bn = self.expand, self.bn
        fold = FUSE["fold_bn"] and not bn.training and bn.track_running_stats
        w, b = fold_bn(e.weight, e.bias, bn) if fold else (e.weight, e.bias)
        mode = FUSE["expand"]
        if mode == "auto":
            mode = "dense" if C <= DENSE_EXPAND_MAX_CHANNELS else "conv"
        if mode == "dense":
            # block-diagonal (hidden, C) matrix: row (g, m) reads the N channels of group g only
            G = e.groups
            wg = w.reshape(G, w.shape[0] // G, 1, w.shape[1])  # (G, hidden/G, 1, N)
            eye = torch.eye(G, dtype=w.dtype, device=w.device).reshape(G, 1, G, 1)
            gelu = fold and is_exact_gelu(self.act)  # with a folded BN the GELU follows the matmul
            h = linear(map_to_tokens(x), (wg * eye).reshape(w.shape[0], C), b, gelu=gelu)  # (B, HW, hidden)
            if not fold:
                h = map_to_tokens(bn(tokens_to_map(h, H, W)))
            if not gelu:
                h = apply_act(self.act, h)
        else:
            h = F.conv2d(x.contiguous(), w, b, groups=e.groups)  # (B, hidden, H, W)
            if not fold:
                h = bn(h)
            h = map_to_tokens(h.contiguous(memory_format=torch.channels_last))
            h = apply_act(self.act, h)
        return linear(h, self.reduce.weight.flatten(1), self.reduce.bias)


class ScaleAwareModulation(nn.Module):
    """SAM token mixer: x -> proj(SAA(regroup(MHMC(s(x)))) * v(x))."""

    def __init__(
            self,
            dim: int,
            num_heads: int = 4,
            kernel_sizes: Optional[Sequence[int]] = None,
            expand_ratio: float = 2.0,
            saa: bool = True,
            qkv_bias: bool = True,
            proj_drop: float = 0.0,
    ):
        """
        Args:
            dim: Channels C.
            num_heads: MHMC heads N.
            kernel_sizes: Kernel per head; default 3, 5, 7, ... (3 + 2h).
            expand_ratio: SAA hidden width over C.
            saa: False drops SAA (ablation): the MHMC output, in head order, is the modulator.
            qkv_bias: Bias in the v and s projections.
            proj_drop: Dropout after the output projection.
        """
        super().__init__()
        kernel_sizes = tuple(kernel_sizes) if kernel_sizes is not None else default_kernel_sizes(num_heads)
        self.num_heads = num_heads
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.s = nn.Linear(dim, dim, bias=qkv_bias)
        self.mhmc = MultiHeadMixedConv(dim, kernel_sizes)
        self.regroup = HeadRegroup(num_heads) if saa else nn.Identity()
        self.saa_input = nn.Identity()  # tap
        self.saa = ScaleAwareAggregation(dim, num_heads, expand_ratio) if saa else nn.Identity()
        self.modulator = nn.Identity()  # tap
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.fused = True
        self._built_structure = structure(self)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:  # (B, N, C)
        if self.fused and fusable(self):
            return self.forward_fused(x, H, W)
        return self.forward_literal(x, H, W)

    def forward_literal(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:  # (B, N, C)
        """The authors' computation: per-head convs, concatenation, regrouping; every tap fires."""
        B, N, C = x.shape
        v = self.v(x)
        s = self.s(x).transpose(1, 2).reshape(B, C, H, W)
        s = self.saa_input(self.regroup(self.mhmc(s)))
        m = self.modulator(self.saa(s))  # (B, C, H, W)
        x = m.flatten(2).transpose(1, 2) * v
        return self.proj_drop(self.proj(x))

    def forward_fused(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:  # (B, N, C)
        """Same numbers as `forward_literal`, fewer and larger ops; taps inside do not fire.

        The s projection's output rows are permuted into the regrouped channel order, so one
        depthwise conv (each head's kernel zero-padded to the largest) yields the SAA input directly,
        without the concatenation and the regrouping copy. Fused weights are derived from the
        parameters on every call (differentiable, nothing cached, the state dict is untouched).

        With autograd on, the heads keep their own convs: the backward of the zero-padded conv costs
        the largest kernel's area on every channel (measured: 1.35x slower than the literal path
        when training N = 8 heads, kernels up to 17).
        """
        B, N, C = x.shape
        regroup = isinstance(self.saa, ScaleAwareAggregation)
        mhmc = self.mhmc
        ws, bs = self.s.weight, self.s.bias
        one_dwconv = FUSE["one_dwconv"] and not torch.is_grad_enabled()
        if one_dwconv:
            K = max(c.weight.shape[-1] for c in mhmc.convs)
            kw = torch.cat([F.pad(c.weight, [(K - c.weight.shape[-1]) // 2] * 4) for c in mhmc.convs])  # (C, 1, K, K)
            kb = torch.cat([c.bias if c.bias is not None else c.weight.new_zeros(c.out_channels) for c in mhmc.convs])
            if regroup:
                ws, bs, kw, kb = (regroup_rows(t, self.num_heads) for t in (ws, bs, kw, kb))
        v, s = linear(x, self.v.weight, self.v.bias), linear(x, ws, bs)  # s rows in regrouped order
        s = tokens_to_map(s, H, W)  # (B, C, H, W) channels-last
        if one_dwconv:
            s = F.conv2d(s, kw, kb, padding=K // 2, groups=C)  # regrouped order when SAA is on
        else:
            s = self.regroup(torch.cat([conv(c) for c, conv in zip(s.split(mhmc.head_dim, dim=1), mhmc.convs)], 1))
        if regroup:
            m = self.saa.forward_fused(s)  # (B, N, C) tokens
        else:
            m = map_to_tokens(s)
        m = m.mul_(v) if FUSE["inplace"] and not torch.is_grad_enabled() else m * v
        return self.proj_drop(linear(m, self.proj.weight, self.proj.bias))


class Attention(nn.Module):
    """MSA token mixer: global multi-head self-attention plus a 3x3 depthwise conv on v."""

    def __init__(
            self,
            dim: int,
            num_heads: int = 8,
            qkv_bias: bool = True,
            attn_drop: float = 0.0,
            proj_drop: float = 0.0,
            fused_attn: bool = True,
    ):
        """
        Args:
            dim: Channels C.
            num_heads: Attention heads.
            qkv_bias: Bias in the q and kv projections.
            attn_drop: Dropout on the attention weights.
            proj_drop: Dropout after the output projection.
            fused_attn: Use `F.scaled_dot_product_attention` on the fused path while nothing listens
                on `attn_weights` (the literal path always materialises the weights, as the authors'
                code does).
        """
        super().__init__()
        self.fused = True
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = fused_attn
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.attn_weights = nn.Identity()  # tap
        self.attn_drop = nn.Dropout(attn_drop)
        self.local_conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._built_structure = structure(self)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:  # (B, N, C)
        B, N, C = x.shape
        fused = self.fused and fusable(self)  # no hooks inside: the linears may bypass their modules
        q = linear(x, self.q.weight, self.q.bias) if fused else self.q(x)
        kv = linear(x, self.kv.weight, self.kv.bias) if fused else self.kv(x)
        q = q.reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = kv.reshape(B, N, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if fused and self.fused_attn and FUSE["sdpa"]:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
            out = self.attn_drop(self.attn_weights(attn)) @ v  # (B, heads, N, head_dim)
        out = out.transpose(1, 2).reshape(B, N, C)
        v = v.transpose(1, 2).reshape(B, N, C).transpose(1, 2).reshape(B, C, H, W)
        out = out + self.local_conv(v).flatten(2).transpose(1, 2)
        out = linear(out, self.proj.weight, self.proj.bias) if fused else self.proj(out)
        return self.proj_drop(out)


class DWConvMlp(nn.Module):
    """MLP with a 3x3 depthwise conv on the hidden tokens: fc2(act(h + dwconv(h))), h = fc1(x)."""

    def __init__(self, dim: int, hidden_dim: int, act_layer: Callable = nn.GELU, drop: float = 0.0):
        """
        Args:
            dim: Input and output channels.
            hidden_dim: Hidden channels.
            act_layer: Activation.
            drop: Dropout after the activation and after fc2.
        """
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop2 = nn.Dropout(drop)
        self.fused = True
        self._built_structure = structure(self)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:  # (B, N, C)
        if self.fused and FUSE["dw_residual"] and fusable(self):
            return self.forward_fused(x, H, W)
        return self.forward_literal(x, H, W)

    def forward_fused(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:  # (B, N, C)
        """`forward_literal` with `h + dwconv(h)` as one depthwise conv: +1 on each kernel's centre tap."""
        x = linear(x, self.fc1.weight, self.fc1.bias)
        B, N, C = x.shape
        w = self.dwconv.weight  # (C, 1, k, k), k odd, padding k // 2
        k = w.shape[-1]
        centre = F.pad(w.new_ones(1, 1, 1, 1), [k // 2] * 4)  # (1, 1, k, k)
        x = dwconv_gelu(x.transpose(1, 2).reshape(B, C, H, W), w + centre, self.dwconv.bias, self.act)
        x = self.drop1(x.flatten(2).transpose(1, 2))  # channels-last: a view
        return self.drop2(linear(x, self.fc2.weight, self.fc2.bias))

    def forward_literal(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:  # (B, N, C)
        """fc1, depthwise conv, residual add, GELU, fc2 as separate ops."""
        x = self.fc1(x)
        B, N, C = x.shape
        d = self.dwconv(x.transpose(1, 2).reshape(B, C, H, W)).flatten(2).transpose(1, 2)
        x = self.drop1(self.act(x + d))
        return self.drop2(self.fc2(x))


class SMTBlock(nn.Module):
    """Pre-norm transformer block whose token mixer is SAM or MSA."""

    def __init__(
            self,
            dim: int,
            block_type: str = "sam",
            sam_heads: int = 4,
            kernel_sizes: Optional[Sequence[int]] = None,
            expand_ratio: float = 2.0,
            saa: bool = True,
            msa_heads: int = 8,
            mlp_ratio: float = 4.0,
            qkv_bias: bool = True,
            layer_scale: Optional[float] = None,
            proj_drop: float = 0.0,
            attn_drop: float = 0.0,
            drop_path: float = 0.0,
            fused_attn: bool = True,
    ):
        """
        Args:
            dim: Channels C.
            block_type: "sam" (scale-aware modulation) or "msa" (multi-head self-attention).
            sam_heads: MHMC heads N (SAM only).
            kernel_sizes: MHMC kernel per head (SAM only).
            expand_ratio: SAA expansion (SAM only).
            saa: SAA on or off (SAM only).
            msa_heads: Attention heads (MSA only).
            mlp_ratio: MLP hidden width over C.
            qkv_bias: Bias in the v/s or q/kv projections.
            layer_scale: Initial layer-scale value; None turns layer scale off.
            proj_drop: Dropout after projections and in the MLP.
            attn_drop: Dropout on attention weights.
            drop_path: Stochastic depth rate.
            fused_attn: See `Attention`.
        """
        super().__init__()
        self.block_type = block_type
        self.fused = True
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        if block_type == "sam":
            self.attn = ScaleAwareModulation(
                dim, sam_heads, kernel_sizes, expand_ratio, saa, qkv_bias=qkv_bias, proj_drop=proj_drop)
        else:
            self.attn = Attention(dim, msa_heads, qkv_bias, attn_drop, proj_drop, fused_attn=fused_attn)
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = DWConvMlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self._built_structure = structure(self)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:  # (B, N, C)
        if self.fused and FUSE["inplace"] and not torch.is_grad_enabled() and fusable(self):
            # inference: add the residual into the branch's fresh output instead of allocating another
            x = self.drop_path1(self.ls1(self.attn(self.norm1(x), H, W))).add_(x)
            return self.drop_path2(self.ls2(self.mlp(self.norm2(x), H, W))).add_(x)
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), H, W)))
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x), H, W)))
        return x


class Stem(nn.Module):
    """Stage-1 embedding: conv k x k stride 2, BN, ReLU, conv 2x2 stride 2, LayerNorm (stride 4)."""

    def __init__(self, in_chans: int, dim: int, kernel_size: int = 3):
        """
        Args:
            in_chans: Image channels.
            dim: Output channels.
            kernel_size: First conv's kernel: 3 (SMT-T/S) or 7 (SMT-B/L).
        """
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, dim, kernel_size, stride=2, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(dim)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(dim, dim, 2, stride=2)
        self.norm = LayerNorm2d(dim, eps=1e-5)
        self.fused = True
        self._built_structure = structure(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in_chans, H, W) -> (B, C, H/4, W/4)
        if not (self.fused and fusable(self)):
            return self.norm(self.conv2(self.act(self.bn(self.conv1(x)))))
        if FUSE["channels_last"]:  # faster convs, and the stage's tokens are then a view
            x = x.contiguous(memory_format=torch.channels_last)
        c, bn = self.conv1, self.bn
        if FUSE["fold_bn"] and not bn.training and bn.track_running_stats:
            w, b = fold_bn(c.weight, c.bias, bn)
            x = self.act(F.conv2d(x, w, b, c.stride, c.padding))
        else:
            x = self.act(bn(c(x)))
        return self.norm(self.conv2(x))


class Downsample(nn.Module):
    """Overlapping patch embedding between stages: conv 3x3 stride 2, LayerNorm."""

    def __init__(self, in_dim: int, out_dim: int):
        """
        Args:
            in_dim: Channels of the previous stage.
            out_dim: Channels of this stage.
        """
        super().__init__()
        self.proj = nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1)
        self.norm = LayerNorm2d(out_dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C, H/2, W/2)
        return self.norm(self.proj(x))


class SMTStage(nn.Module):
    """Downsample, then blocks on the token sequence, then LayerNorm; NCHW in and out."""

    def __init__(self, downsample: nn.Module, dim: int, block_types: Sequence[str], drop_path: Sequence[float],
                 **block_kwargs: Any):
        """
        Args:
            downsample: Module taking the previous stage's NCHW map to this stage's grid.
            dim: Channels of this stage.
            block_types: "sam" or "msa" for each block.
            drop_path: Stochastic depth rate for each block.
            **block_kwargs: Passed to every `SMTBlock`.
        """
        super().__init__()
        self.grad_checkpointing = False
        self.fused = True
        self.downsample = downsample
        self.blocks = nn.ModuleList(
            SMTBlock(dim, block_type=t, drop_path=dp, **block_kwargs) for t, dp in zip(block_types, drop_path))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)  # (B, C, H, W)
        B, C, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, N, C)
        if self.fused and FUSE["tokens"]:
            x = x.contiguous()  # else every residual add and LayerNorm works on the transposed layout
        for blk in self.blocks:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint(blk, x, H, W)
            else:
                x = blk(x, H, W)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(B, C, H, W)


class SMT(nn.Module):
    """Scale-Aware Modulation Transformer."""

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            embed_dims: Sequence[int] = (64, 128, 256, 512),
            depths: Sequence[int] = (2, 2, 8, 1),
            block_types: Sequence[Union[str, Sequence[str]]] = ("sam", "sam", "mix", "msa"),
            sam_heads: Union[int, Sequence[int]] = 4,
            kernel_sizes: Optional[Sequence[Optional[Sequence[int]]]] = None,
            expand_ratio: Union[float, Sequence[float]] = 2.0,
            saa: Union[bool, Sequence[bool]] = True,
            msa_heads: Union[int, Sequence[int]] = (2, 4, 8, 16),
            mlp_ratios: Union[float, Sequence[float]] = (4, 4, 4, 2),
            qkv_bias: bool = True,
            stem_kernel: int = 3,
            layer_scale: Optional[float] = None,
            drop_rate: float = 0.0,
            proj_drop_rate: float = 0.0,
            attn_drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
            fused_attn: bool = True,
    ):
        """
        Args:
            in_chans: Image channels.
            num_classes: Classifier outputs; 0 leaves the head out.
            global_pool: "avg", or "" for no pooling in `forward_head`.
            embed_dims: Channels per stage.
            depths: Blocks per stage.
            block_types: Per stage "sam", "msa", "mix" (even blocks SAM, odd MSA) or a list per block.
            sam_heads: MHMC heads N, per stage or one for all.
            kernel_sizes: Per stage, one odd kernel per head, or None for 3, 5, 7, ...
            expand_ratio: SAA expansion, per stage or one for all.
            saa: SAA on/off, per stage or one for all (off is an ablation).
            msa_heads: Attention heads of MSA blocks, per stage or one for all.
            mlp_ratios: MLP hidden width over channels, per stage or one for all.
            qkv_bias: Bias in the v/s and q/kv projections.
            stem_kernel: Kernel of the stem's first conv (3 for T/S, 7 for B/L).
            layer_scale: Initial layer-scale value (1e-4 in SMT-L); None turns it off.
            drop_rate: Dropout before the classifier.
            proj_drop_rate: Dropout after projections and in the MLP.
            attn_drop_rate: Dropout on attention weights.
            drop_path_rate: Stochastic depth, rising linearly over all blocks.
            fused_attn: Use SDPA in MSA blocks while nothing listens on the attention taps.
        """
        super().__init__()
        if in_chans < 1:
            raise ValueError(f"in_chans={in_chans}: an image needs at least one channel")
        if stem_kernel < 1 or stem_kernel % 2 == 0:
            raise ValueError(f"stem_kernel={stem_kernel} must be a positive odd integer (3 or 7 in the release)")
        stage_cfgs = resolve_stages(embed_dims, depths, block_types, sam_heads, kernel_sizes, expand_ratio, saa,
                                    msa_heads, mlp_ratios)

        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.embed_dims = tuple(embed_dims)
        self.num_features = self.head_hidden_size = embed_dims[-1]
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        # the rates are plain floats: computed on the CPU, also when the model is built on another device
        dpr = [x.tolist() for x in torch.linspace(0, drop_path_rate, sum(depths), device="cpu").split(list(depths))]
        self.stem = Stem(in_chans, embed_dims[0], stem_kernel)
        stages, self.feature_info, self.stage_block_types, self.stage_kernel_sizes = [], [], [], []
        for i, cfg in enumerate(stage_cfgs):
            self.stage_block_types.append(cfg.block_types)
            self.stage_kernel_sizes.append(cfg.kernel_sizes if "sam" in cfg.block_types else ())
            stages.append(SMTStage(
                nn.Identity() if i == 0 else Downsample(embed_dims[i - 1], cfg.dim), cfg.dim, cfg.block_types, dpr[i],
                sam_heads=cfg.sam_heads, kernel_sizes=cfg.kernel_sizes, expand_ratio=cfg.expand_ratio, saa=cfg.saa,
                msa_heads=cfg.msa_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=qkv_bias, layer_scale=layer_scale,
                proj_drop=proj_drop_rate, attn_drop=attn_drop_rate, fused_attn=fused_attn))
            self.feature_info.append(dict(num_chs=cfg.dim, reduction=2 ** (i + 2), module=f"stages.{i}"))
        self.stages = nn.Sequential(*stages)

        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    # ---- timm model API -------------------------------------------------------------------------

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return set()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(
            stem=r"^stem",
            blocks=r"^stages\.(\d+)" if coarse else [
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^stages\.(\d+)\.(downsample|norm)", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        for s in self.stages:
            s.grad_checkpointing = enable

    def set_fused(self, enable: bool = True) -> None:
        """Choose the fused forward (default) or the literal per-head one (the authors' computation).

        Both compute the same numbers (to float32 rounding) and gradients, in eval and training mode.
        A block whose taps or other submodules carry hooks takes the literal path on its own, so
        captured taps always fire.

        Args:
            enable: True for the fused path, False for the literal one.
        """
        for m in self.modules():
            if hasattr(m, "fused") and isinstance(m.fused, bool):
                m.fused = bool(enable)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool={global_pool!r}: SMT supports 'avg' or '' (no pooling)")
            self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected images of shape (B, {self.in_chans}, H, W), got {tuple(x.shape)}; "
                             f"build the model with in_chans={x.shape[1] if x.ndim == 4 else '...'} "
                             f"or convert the images")

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, list[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[list[torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]]:
        """Forward features, also returning the outputs of chosen stages (NCHW).

        Args:
            x: Images (B, in_chans, H, W).
            indices: Last n stages if int, all if None, else these stage indices.
            norm: Unused: every stage output is already normalised by its stage's LayerNorm.
            stop_early: Stop after the last requested stage.
            output_fmt: Only "NCHW".
            intermediates_only: Return only the intermediates.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt={output_fmt!r}: SMT intermediates are NCHW only")
        self._check_input(x)
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[:max_index + 1]
        intermediates = []
        x = self.stem(x)
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take_indices:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(self, indices: Union[int, list[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the stages (and head) that the requested intermediates do not need."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        prune_end = max_index < len(self.stages) - 1
        self.stages = self.stages[:max_index + 1]
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, in_chans, H, W) -> (B, C, H/32, W/32)
        self._check_input(x)
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=(2, 3))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def load_pretrained(self, path: str) -> None:
        """Load weights from a file in any supported format (timm calls this for `pretrained=True`)."""
        load_weights(self, path)


# ---- pretrained configs, creation, registry ------------------------------------------------------

_RELEASE = "https://github.com/AFeng-x/SMT/releases/download/v1.0.0/"


def _cfg(url: str = "", **kwargs: Any) -> dict:
    return {
        "url": url, "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bicubic", "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.conv1", "classifier": "head", "fixed_input_size": False, "custom_load": True,
        "license": "mit", "paper_ids": "arXiv:2307.08579", **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "smt_tiny.in1k": _cfg(_RELEASE + "smt_tiny.pth"),
    "smt_small.in1k": _cfg(_RELEASE + "smt_small.pth"),
    "smt_base.in1k": _cfg(_RELEASE + "smt_base.pth"),
    "smt_large.in22k_ft_in1k": _cfg(_RELEASE + "smt_large_22k_224_ft.pth"),
    "smt_large.in22k_ft_in1k_384": _cfg(
        _RELEASE + "smt_large_22k_384_ft.pth", input_size=(3, 384, 384), pool_size=(12, 12), crop_pct=1.0),
    "smt_large.in22k": _cfg(_RELEASE + "smt_large_22k.pth", num_classes=21841),
    "smt_nano.untrained": _cfg(),
    "test_smt.untrained": _cfg(input_size=(3, 64, 64), pool_size=(2, 2)),
})


def _create_smt(variant: str, pretrained: bool = False, **kwargs: Any) -> SMT:
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    # Weight files go through this project's safe reader (`SMT.load_pretrained`), also a user's own file.
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    overlay.setdefault("custom_load", True)
    return build_model_with_cfg(
        SMT, variant, pretrained,
        pretrained_cfg_overlay=overlay,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
        **kwargs,
    )


@register_model
def smt_tiny(pretrained: bool = False, **kwargs: Any) -> SMT:
    """SMT-T (11.5M): 64-128-256-512, depths 2-2-8-1."""
    return _create_smt("smt_tiny", pretrained, **dict(VARIANTS["smt_tiny"], **kwargs))


@register_model
def smt_small(pretrained: bool = False, **kwargs: Any) -> SMT:
    """SMT-S (22.6M as released): 64-128-256-512, depths 3-4-18-2."""
    return _create_smt("smt_small", pretrained, **dict(VARIANTS["smt_small"], **kwargs))


@register_model
def smt_base(pretrained: bool = False, **kwargs: Any) -> SMT:
    """SMT-B (32.0M): 64-128-256-512, depths 4-6-28-2, 7x7 stem."""
    return _create_smt("smt_base", pretrained, **dict(VARIANTS["smt_base"], **kwargs))


@register_model
def smt_large(pretrained: bool = False, **kwargs: Any) -> SMT:
    """SMT-L (80.6M): 96-192-384-768, depths 4-6-28-4, 7x7 stem, layer scale 1e-4."""
    return _create_smt("smt_large", pretrained, **dict(VARIANTS["smt_large"], **kwargs))


@register_model
def smt_nano(pretrained: bool = False, **kwargs: Any) -> SMT:
    """SMT-nano (about 2M, this project's demo model): 32-64-128-256, depths 2-2-4-1."""
    return _create_smt("smt_nano", pretrained, **dict(VARIANTS["smt_nano"], **kwargs))


@register_model
def test_smt(pretrained: bool = False, **kwargs: Any) -> SMT:
    """A tiny SMT for fast tests: 16-32-64-128, depths 1-1-2-1 (stage 3 is one SAM and one MSA block)."""
    return _create_smt("test_smt", pretrained, **dict(VARIANTS["test_smt"], **kwargs))
