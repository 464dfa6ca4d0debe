"""The model summary table: every registered variant, its size, cost and fidelity to the reference."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from .model import VARIANTS, default_cfgs
from .reference import check_against_reference, load_reference, reference_path


@dataclass(frozen=True)
class VariantSummary:
    name: str
    params: int
    resolution: int
    macs: int  # multiply-adds counted by torch.utils.flop_counter (matmul, conv, attention), one image
    feature_shapes: tuple  # (C, H, W) per stage
    reference: Optional[str]  # "ok (max |diff| ...)", "MISMATCH ...", or None when no reference exists


def count_macs(model: torch.nn.Module, resolution: int, in_chans: int = 3) -> int:
    """Multiply-adds of one forward pass on one image (`torch.utils.flop_counter` FLOPs / 2)."""
    x = torch.zeros(1, in_chans, resolution, resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def summarize(name: str, check_reference: bool = True) -> VariantSummary:
    """Summarise a registered variant at its default resolution."""
    cfg = default_cfgs[name].default.to_dict()
    res = cfg["input_size"][-1]
    model = timm.create_model(name).eval()
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        feats = model.forward_intermediates(torch.zeros(1, 3, res, res), intermediates_only=True)
    ref_text = None
    if check_reference:
        try:
            refs = load_reference()
        except FileNotFoundError:
            refs = {}
        if name in refs:
            check = check_against_reference(name, refs)
            ok = check.max_abs < 1e-8 and check.argmax_equal and params == refs[name]["params"]
            ref_text = f"{'ok' if ok else 'MISMATCH'} (max |diff| {check.max_abs:.1e})"
    return VariantSummary(name, params, res, count_macs(model, res), tuple(tuple(f.shape[1:]) for f in feats),
                          ref_text)


def format_table(rows: list[VariantSummary]) -> str:
    head = (f"{'variant':<10} {'params':>8} {'res':>4} {'GMACs':>6}  {'features per stage (C x H x W)':<52} "
            f"reference logits")
    lines = [head, "-" * len(head)]
    for r in rows:
        feats = ", ".join("x".join(str(d) for d in s) for s in r.feature_shapes)
        ref = r.reference if r.reference is not None else "no reference for this variant"
        lines.append(f"{r.name:<10} {r.params / 1e6:>7.2f}M {r.resolution:>4} {r.macs / 1e9:>6.2f}  {feats:<52} {ref}")
    return "\n".join(lines)


def main(check_reference: bool = True) -> int:
    from tqdm import tqdm

    rows = [summarize(n, check_reference) for n in tqdm(list(VARIANTS), desc="variants", leave=False)]
    print(format_table(rows))
    print(f"\nreference facts: {reference_path()}" if check_reference else "")
    bad = [r.name for r in rows if r.reference and not r.reference.startswith("ok")]
    if bad:
        print(f"reference logits NOT reproduced for: {', '.join(bad)}")
        return 1
    return 0
