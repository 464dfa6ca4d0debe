"""`python -m viz claims`: the paper's claims as a table computed on the shipped models, each with its measured
effect, a 95% interval, N, and a verdict that follows from the interval (`viz.analysis.stats.verdict`):
supported when the interval lies above zero, contradicted when below, inconclusive when it spans zero
(or when a comparison of trained models rests on one seed, whose spread is unknown).

    python -m viz claims                                  # demo model `main`, shipped canvases -> figures/
    python -m viz claims --out figs --results distance.pt lowfreq.pt     # (a)-(c) from `viz run` files
    python -m viz claims --ablation-records seeds.json    # (d), (e) across training seeds

The table is also the `claims` entry of the figure set, so `make demo` writes `claims.md` and
`claims.json` beside the figures and lists them in `index.html`.

The command line lives with the figure command (`viz.figures.cli.claims_main`), which draws the table
as the figure set's `claims` entry. `--ablation-records` is a JSON file {config: [record, ...]} with one
record per training seed, for configs heads1, heads2, heads4, heads8, nosaa: {"seed": 1, "top1": 69.9
(per cent), "num_images": 10000, "erf_area": {"0.5": 0.047}}. A config with records uses them (include
the shipped seed's own record); a config without uses its shipped models, measured on the shipped canvases.

Which definition of the low-frequency share answers which question (claim (c)):
- energy-weighted over channels: does SAA move the modulator's *energy* toward low frequencies? A few
  high-energy channels dominate it.
- every channel weighted equally (each channel's map normalised to unit energy): do SAA's output
  *channels*, one by one, carry more low-frequency structure than its input channels?
- the displayed map (channel mean of |x|): is the map the paper's modulator figure shows smoother
  than the same view of SAA's input? It speaks to the figure, not to the features.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .analysis.stats import (
    Estimate,
    format_estimate,
    grouped_bootstrap,
    paired_difference,
    paired_ratio_difference,
    verdict,
)

__all__ = ["Claim", "SeedMeasure", "compute_claims", "claims_markdown", "claims_numbers", "claims_rendered",
           "ablation_set", "load_ablation_records", "ABLATION"]

#: The ablation set: config -> (heads N, SAA on).
ABLATION = {"heads1": (1, True), "heads2": (2, True), "heads4": (4, True), "heads8": (8, True), "nosaa": (4, False)}
ERF_THRESHOLD = 0.5


@dataclass(frozen=True)
class Claim:
    """One row of the table.

    Attributes:
        key: "a", "b", "c stage 1 (energy)", ...
        claim: The claim in one line.
        source: Where it comes from (paper section or figure, or the write-up).
        measure: What the effect is, with its unit; positive means the claim holds.
        effect: The measured effect with its interval and N.
        detail: A short note shown beside the effect (counts, per-block values, caveats).
        numbers: More numbers for the .json (per block, per seed).
        from_results: Whether it was computed from `viz run` files.
    """
    key: str
    claim: str
    source: str
    measure: str
    effect: Estimate
    detail: str = ""
    numbers: dict = field(default_factory=dict)
    from_results: bool = False

    @property
    def verdict(self) -> str:
        return verdict(self.effect)


def _memo(fs, key: tuple, compute):
    """What the claims compute beyond the figure set's own analyses, kept with the figure set (keyed by what
    determines it: the analysis and the model's name), so the claims entry and the ablation figure share it."""
    cache = fs.__dict__.setdefault("_claims_cache", {})
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def _require_smt(fs) -> None:
    if not getattr(fs.model, "stage_block_types", None):
        from .figures.figureset import SkipFigure

        raise SkipFigure(f"the claims need an SMT model; {fs.source.name} is a {type(fs.model).__name__}")


def _none(n: int, method: str, seeds: Optional[int] = None) -> Estimate:
    return Estimate(float("nan"), float("nan"), float("nan"), n, method, seeds=seeds)


# ---- distances: (a), (b), (g) --------------------------------------------------------------------------

def _distance_profile(fs) -> tuple[list, bool]:
    """SMT's per-block distances with per-image values: from a `viz run distance` file, else computed."""
    from .analysis.distance import BlockDistance

    for _, rec in fs.result_record("distance"):
        r = rec["result"]
        if "per_image" in r:
            return [BlockDistance(b, k, r["per_head"][b], float(v), r["per_image"][b])
                    for b, k, v in zip(r["blocks"], r["kinds"], r["block"].tolist())], True
    _require_smt(fs)
    return fs.distance, False


def _stage_mean(profile, stages: Sequence[int], kind: str) -> Optional[torch.Tensor]:
    from .analysis import block_index

    rows = [b.per_image for b in profile if block_index(b.name)[0] in stages and b.kind == kind]
    return torch.stack(rows).double().mean(0) if rows else None


def claim_a(profile, from_results: bool = False) -> Claim:
    from .analysis import block_index

    sam_stages = sorted({block_index(b.name)[0] for b in profile if b.kind == "sam"})
    first, last = sam_stages[0], sam_stages[-1]
    lo, hi = _stage_mean(profile, [first], "sam"), _stage_mean(profile, [last], "sam")
    e = paired_difference(hi, lo)
    per_stage = {f"stage {s + 1}": float(_stage_mean(profile, [s], "sam").mean()) for s in sam_stages}
    return Claim("a", "SAM's modulation distance grows from stage 1 to stage 3 (local to global)",
                 "Sec. 3.1 and Fig. 1 (SAM's receptive fields, local to global)",
                 f"modulation distance, stage {last + 1} minus stage {first + 1} SAM blocks (input px)", e,
                 "per stage: " + ", ".join(f"{k} {v:.1f} px" for k, v in per_stage.items()),
                 {"per_stage_px": per_stage, "per_block": {b.name: b.interval().to_dict() for b in profile}},
                 from_results)


def claim_b(profile, from_results: bool = False) -> Claim:
    from .analysis import block_index

    last = max(block_index(b.name)[0] for b in profile)
    msa, sam = _stage_mean(profile, [last], "msa"), _stage_mean(profile, [0, 1], "sam")
    if msa is None or sam is None:
        return Claim("b", "Stage-4 attention distance exceeds SAM's modulation distance of stages 1-2",
                     "Sec. 3.2 (hybrid stages: SAM captures local, MSA global dependencies)",
                     "n/a", _none(0, "paired bootstrap"), "the model has no MSA stage or no SAM blocks in stages 1-2")
    return Claim("b", f"Stage-{last + 1} attention distance exceeds SAM's modulation distance of stages 1-2",
                 "Sec. 3.2 (hybrid stages: SAM captures local, MSA global dependencies)",
                 f"stage-{last + 1} mean attention distance minus stages 1-2 modulation distance (input px)",
                 paired_difference(msa, sam), f"stage {last + 1} MSA {float(msa.mean()):.1f} px, stages 1-2 SAM "
                 f"{float(sam.mean()):.1f} px", from_results=from_results)


def claim_g(fs, profile) -> Claim:
    """ViT against SMT at an equal number of training steps: beside the demo models the SMT side is the
    step-matched SMT-nano (`smt.demo.STEP_MATCHED_SMT`) when it is shipped, not the longer-trained `main`."""
    from smt.demo import STEP_MATCHED_SMT, demo_weights_path

    from .analysis import smt_distance_profile, timm_attention_profile

    text = "SMT's distance grows stage by stage while ViT's is global from its first block"
    source = "Sec. 1 and Fig. 1 (local-to-global vs ViT's global attention; step-matched backbones)"
    measure = ("first-block distance as a fraction of the last block's, ViT minus SMT (per image, same images; "
               "positive: ViT starts closer to global)")
    vit = fs.backbones.get("vit")
    if vit is None:
        return Claim("g", text, source, measure, _none(0, "paired bootstrap"),
                     "no ViT backbone beside this model (the shipped backbones come with the demo models)")
    n_img = fs.settings.distance_images
    vprof = _memo(fs, ("backbone-distance", "vit", n_img),
                  lambda: timm_attention_profile(vit.model, vit.images[:n_img], progress=False))
    smt_name = fs.source.demo if fs.source_loaded else None
    if smt_name is not None and demo_weights_path(STEP_MATCHED_SMT).is_file():
        from .figures.source import demo_source

        smt_name = STEP_MATCHED_SMT
        peer = _memo(fs, ("step-matched-smt", STEP_MATCHED_SMT), lambda: demo_source(
            STEP_MATCHED_SMT, num_images=n_img, device=vit.images.device))
        profile = _memo(fs, ("step-matched-distance", STEP_MATCHED_SMT, n_img, fs.settings.queries),
                        lambda: smt_distance_profile(peer.model, peer.images[:n_img], queries=fs.settings.queries,
                                                     seed=fs.settings.seed, batch_size=8, progress=False))
    smt_ratio = profile[0].per_image / profile[-1].per_image
    vit_ratio = vprof[0].per_image / vprof[-1].per_image
    n = min(len(smt_ratio), len(vit_ratio))
    steps = card_steps("vit"), card_steps(smt_name) if smt_name is not None else None
    smt_label = f"SMT ({smt_name})" if smt_name is not None else "SMT"
    return Claim("g", text, source, measure, paired_difference(vit_ratio[:n], smt_ratio[:n]),
                 f"ViT first/last {float(vit_ratio.mean()):.2f}, {smt_label} first/last {float(smt_ratio.mean()):.2f}"
                 f"; steps: ViT {steps[0]}, {smt_label} {steps[1]}"
                 + (" (not step-matched)" if steps[0] != steps[1] else " (step-matched)"),
                 {"vit_first_block_px": vprof[0].distance, "vit_last_block_px": vprof[-1].distance,
                  "smt_first_block_px": profile[0].distance, "smt_last_block_px": profile[-1].distance,
                  "smt_model": smt_name, "steps": {"vit": steps[0], "smt": steps[1]}})


def card_steps(name: str) -> Optional[int]:
    """Training steps a shipped model's card states ("Made N steps"), None when it says nothing."""
    from smt.demo import demo_weights_path

    card = demo_weights_path(name).with_suffix(".md")
    m = re.search(r"Made (\d+) steps", card.read_text()) if card.is_file() else None
    return int(m.group(1)) if m else None


# ---- low-frequency share: (c) ---------------------------------------------------------------------------

def _low_frequency_terms(fs) -> tuple[dict, int, bool]:
    """{definition: {block: (input terms (M, 2), modulator terms (M, 2))}}, N, from results."""
    from .analysis.spectrum import SHARE_DEFINITIONS, low_frequency_terms

    for _, rec in fs.result_record("lowfreq"):
        r = rec["result"]
        return ({d: {b: (t["saa_input"], t["modulator"]) for b, t in r["terms"][d].items()} for d in r["terms"]},
                int(r["num_images"]), True)
    _require_smt(fs)
    sam = {b: f for b, f in fs.forward.sam.items()
           if not isinstance(fs.model.get_submodule(b).attn.saa, torch.nn.Identity)}
    out = {d: {b: (low_frequency_terms(f.saa_input, fs.settings.radius, d),
                   low_frequency_terms(f.modulator, fs.settings.radius, d)) for b, f in sam.items()}
           for d in SHARE_DEFINITIONS}
    return out, len(fs.images()), False


def claims_c(fs) -> list[Claim]:
    from .analysis import block_index
    from .analysis.spectrum import SHARE_DEFINITIONS

    terms, n, from_results = _low_frequency_terms(fs)
    out = []
    for d, blocks in terms.items():
        if not blocks:
            continue
        per_block = {b: paired_ratio_difference(t_out, t_in) for b, (t_in, t_out) in blocks.items()}
        up = sum(e.estimate > 0 for e in per_block.values())
        for s in sorted({block_index(b)[0] for b in blocks}):
            inside = [b for b in blocks if block_index(b)[0] == s]
            t_in = sum(blocks[b][0] for b in inside)
            t_out = sum(blocks[b][1] for b in inside)
            e = paired_ratio_difference(t_out, t_in)
            out.append(Claim(f"c stage {s + 1} ({d})",
                             f"SAA raises the low-frequency share of the modulator over its input (stage {s + 1})",
                             "Sec. 3.1 (SAA strengthens low-frequency, semantic signal) and the modulator-map figure",
                             f"share of SAA output minus input, {SHARE_DEFINITIONS[d].split(':')[0]}", e,
                             "per block: " + ", ".join(f"{b} {per_block[b].estimate:+.3f}" for b in inside)
                             + f"; raised in {up} of {len(per_block)} SAM blocks under this definition",
                             {"definition": d, "per_block": {b: e.to_dict() for b, e in per_block.items()},
                              "blocks": inside}, from_results))
    return out


# ---- the ablation set: (d), (e) ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SeedMeasure:
    """What one training seed of an ablation config gives: top-1 (per-image correctness when measured here),
    the last stage's ERF (per-image maps when measured here) and SAA's low-frequency change."""
    config: str
    seed: Optional[int]
    top1: float                                  # per cent
    num_images: int
    correct: Optional[np.ndarray] = field(default=None, repr=False)    # (M,) bool
    erf_maps: Optional[np.ndarray] = field(default=None, repr=False)   # (M, H, W)
    erf_area: Optional[float] = None             # at ERF_THRESHOLD
    low_frequency_change: Optional[float] = None  # mean over SAM blocks, energy-weighted share
    source: str = ""


def load_ablation_records(path: Optional[str]) -> dict[str, list[SeedMeasure]]:
    """Per-seed records from a JSON file (module docstring); {} without a path."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ablation records {path} do not exist")
    data = json.loads(p.read_text())
    unknown = [k for k in data if k not in ABLATION]
    if unknown:
        raise ValueError(f"{path}: unknown config(s) {unknown}; the ablation set is {', '.join(ABLATION)}")
    out = {}
    for cfg, recs in data.items():
        out[cfg] = [SeedMeasure(cfg, r.get("seed"), float(r["top1"]), int(r.get("num_images", 0)),
                                erf_area=(r.get("erf_area") or {}).get(str(ERF_THRESHOLD)),
                                low_frequency_change=r.get("low_frequency_change"), source=str(p.name))
                    for r in recs]
    return out


def measure_model(config: str, model, images: torch.Tensor, labels: torch.Tensor, erf_images: int,
                  lf_images: int, radius: float, seed: Optional[int] = None) -> SeedMeasure:
    """One trained ablation model measured on the shipped canvases."""
    from .analysis import low_frequency_shares, sam_features
    from .analysis.erf import area_ratio_intervals, effective_receptive_field

    with torch.no_grad():
        pred = torch.cat([model(images[i:i + 128]).argmax(1) for i in range(0, len(images), 128)])
    correct = (pred == labels).numpy()
    r = effective_receptive_field(model, images[:erf_images], batch_size=8, keep_per_image=True)
    area = area_ratio_intervals(r.per_image, (ERF_THRESHOLD,), resamples=1)[ERF_THRESHOLD].estimate
    change = None
    if ABLATION.get(config, (0, True))[1]:
        shares = low_frequency_shares(sam_features(model, images[:lf_images]), radius)
        change = float(np.mean([s.change for s in shares])) if shares else None
    return SeedMeasure(config, seed, float(100 * correct.mean()), len(correct), correct, r.per_image.numpy(),
                       None if math.isnan(area) else area, change, "shipped model, measured here")


def ablation_set(fs, records: Optional[Mapping[str, Sequence[SeedMeasure]]] = None
                 ) -> dict[str, list[SeedMeasure]]:
    """{config: [SeedMeasure per seed]}: records where given, else every shipped seed's model (`heads2`,
    `heads2_s1`, ...; `smt.demo.ablation_seeds`) measured on the shipped canvases (kept with the figure set).
    Configs without shipped weights are left out."""
    from smt.demo import ablation_seeds

    from .figures.source import demo_source

    records = dict(records or {})
    out: dict[str, list[SeedMeasure]] = {}
    # the figure set's own (cached) ablation models where it has them
    source_of = getattr(fs, "ablation_source", None) or demo_source
    for cfg in ABLATION:
        if records.get(cfg):
            out[cfg] = list(records[cfg])
            continue
        seeds = []
        for name in ablation_seeds(cfg):
            def measure(name=name, cfg=cfg):
                src = source_of(name)  # top-1 over every shipped canvas, the analyses over the set's images
                seed = int(name.rsplit("_s", 1)[1]) if "_s" in name else 0
                return measure_model(cfg, src.model, src.images, src.labels, fs.settings.erf_images,
                                     len(fs.images()), fs.settings.radius, seed=seed)
            key = ("ablation", name, fs.settings.erf_images, len(fs.images()), fs.settings.radius)
            seeds.append(_memo(fs, key, measure))
        if seeds:
            out[cfg] = seeds
    return out


def _values(seeds: Sequence[SeedMeasure], what: str) -> list:
    if what == "top1":
        return [s.correct.astype(np.float64) * 100 if s.correct is not None else s.top1 for s in seeds]
    return [s.erf_maps if s.erf_maps is not None else s.erf_area for s in seeds]


def _erf_statistic(x: np.ndarray) -> float:
    from .analysis.erf import _area_ratios_np

    if x.ndim == 1:  # recorded area ratios (one number per seed)
        return float(x.mean())
    return _area_ratios_np(x.mean(0), [ERF_THRESHOLD])[0]


def claim_d(ablation: Mapping[str, Sequence[SeedMeasure]], resamples: int = 1000) -> Claim:
    cfgs = [c for c in ("heads1", "heads2", "heads4", "heads8") if c in ablation]
    text = "More MHMC heads (larger kernels) give a larger effective receptive field"
    source = "Sec. 3.1 (MHMC: more heads, kernels 3, 5, 7, 9, ... widen the receptive field) and Table 6"
    measure = f"slope of the last stage's ERF area ratio (t = {ERF_THRESHOLD:g}) per doubling of N"
    if len(cfgs) < 2 or any(v is None for c in cfgs for v in _values(ablation[c], "erf")):
        return Claim("d", text, source, measure, _none(0, "bootstrap over seeds and images"),
                     "the ablation set (heads1..heads8) is not available")
    x = np.log2([ABLATION[c][0] for c in cfgs])

    def slope(v: list[float]) -> float:
        return float(np.polyfit(x, v, 1)[0])

    e = grouped_bootstrap([_values(ablation[c], "erf") for c in cfgs], slope, _erf_statistic, resamples=resamples)
    per = {c: [s.erf_area for s in ablation[c]] for c in cfgs}
    return Claim("d", text, source, measure, e,
                 "area ratio per config (per seed): " + "; ".join(
                     f"N={ABLATION[c][0]} " + ", ".join(f"{v:.4f}" for v in per[c] if v is not None) for c in cfgs),
                 {"erf_area_per_seed": per, "seeds": {c: [s.seed for s in ablation[c]] for c in cfgs}})


def claim_e(ablation: Mapping[str, Sequence[SeedMeasure]], resamples: int = 1000) -> Claim:
    text = "SAA on beats SAA off in top-1"
    source = "Table 6 (ablation of SAA)"
    measure = "top-1, N = 4 with SAA minus N = 4 without (percentage points)"
    if "heads4" not in ablation or "nosaa" not in ablation:
        return Claim("e", text, source, measure, _none(0, "bootstrap over seeds and images"),
                     "the ablation set (heads4, nosaa) is not available")
    on, off = ablation["heads4"], ablation["nosaa"]
    e = grouped_bootstrap([_values(on, "top1"), _values(off, "top1")], lambda v: v[0] - v[1], resamples=resamples)
    return Claim("e", text, source, measure, e,
                 f"SAA on {', '.join(f'{s.top1:.1f}' for s in on)}%, off {', '.join(f'{s.top1:.1f}' for s in off)}% "
                 f"(per seed, {on[0].num_images} canvases)",
                 {"top1_per_seed": {"heads4": [s.top1 for s in on], "nosaa": [s.top1 for s in off]},
                  "seeds": {"heads4": [s.seed for s in on], "nosaa": [s.seed for s in off]},
                  "num_images": {"heads4": [s.num_images for s in on], "nosaa": [s.num_images for s in off]}})


# ---- per-head receptive fields: (f) ---------------------------------------------------------------------------

def claim_f(fs) -> Claim:
    from .analysis import block_index, sam_block_names, stage_grid

    _require_smt(fs)
    size = fs.input_size
    checked, exact, rows = 0, 0, {}
    for b in sam_block_names(fs.model):
        fields = fs.head_erf(b)
        h, w = stage_grid(fs.model, block_index(b)[0], (size, size))
        convs = fs.model.get_submodule(b).attn.mhmc.convs
        got, want = [], []
        for f, conv in zip(fields, convs):
            k = conv.kernel_size[0]
            cy, cx = h // 2, w // 2  # the k x k footprint around the central token, clipped to the grid
            rows_in = min(cy + k // 2, h - 1) - max(cy - k // 2, 0) + 1
            cols_in = min(cx + k // 2, w - 1) - max(cx - k // 2, 0) + 1
            got.append(int((f > 1e-6 * f.max()).sum()))
            want.append(rows_in * cols_in)
        rows[b] = {"support": got, "footprint": want, "kernels": [c.kernel_size[0] for c in convs]}
        checked += len(got)
        exact += sum(g == w_ for g, w_ in zip(got, want))
    value = 1.0 if exact == checked else -1.0
    return Claim("f", "A head's receptive field inside SAM is exactly its kernel (k x k non-zero positions)",
                 "Sec. 3.1 (MHMC: head i has a depthwise k_i x k_i kernel)",
                 "+1 if every head's non-zero gradient support equals its k x k footprint (clipped to the grid), "
                 "else -1 (exact count, no sampling)",
                 Estimate(value, value, value, checked, "exact count"),
                 f"{exact} of {checked} heads match", {"per_block": rows})


# ---- the table ------------------------------------------------------------------------------------------------

def compute_claims(fs, *, ablation_records: Optional[Mapping[str, Sequence[SeedMeasure]]] = None,
                   resamples: int = 1000) -> list[Claim]:
    """Every claim on a figure set's source (and its ablation set and backbones where it has them)."""
    profile, from_results = _distance_profile(fs)
    claims = [claim_a(profile, from_results), claim_b(profile, from_results)]
    claims += claims_c(fs)
    ablation = ablation_set(fs, ablation_records) if fs.source_loaded and fs.source.demo is not None else \
        dict(ablation_records or {})
    claims += [claim_d(ablation, resamples), claim_e(ablation, resamples), claim_f(fs), claim_g(fs, profile)]
    return claims


def _effect(c: Claim) -> str:
    return format_estimate(c.effect, ".3g")


def claims_markdown(claims: Sequence[Claim]) -> str:
    """The table as Markdown: claim, source, measured effect [95% interval], N, verdict."""
    head = "| | claim | source | measured effect | effect [95% interval], N | verdict |\n|---|---|---|---|---|---|\n"
    body = "".join(f"| {c.key} | {c.claim} | {c.source} | {c.measure}{'; ' + c.detail if c.detail else ''}"
                   f"{' (from viz run results)' if c.from_results else ''} | {_effect(c)} | **{c.verdict}** |\n"
                   for c in claims)
    return head + body


def claims_numbers(claims: Sequence[Claim]) -> dict[str, Any]:
    return {c.key: {"claim": c.claim, "source": c.source, "measure": c.measure, "effect": c.effect.to_dict(),
                    "verdict": c.verdict, "detail": c.detail, "from_results": c.from_results, **c.numbers}
            for c in claims}


def claims_rendered(fs, *, ablation_records=None):
    """The claims table as a figure-set entry (a table: `claims.md`, `claims.json`, listed in index.html)."""
    from .figures.figureset import Rendered

    claims = compute_claims(fs, ablation_records=ablation_records)
    counts = {v: sum(c.verdict == v for c in claims) for v in ("supported", "contradicted", "inconclusive")}
    caption = (f"The paper's claims measured on {fs.source.name if fs.source_loaded else 'viz run results'}: "
               f"each effect with its 95% interval and N (bootstrap over images; over seeds and images for the "
               f"ablation set; exact where nothing is sampled); verdicts follow from the intervals: "
               + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".")
    arrays = {"estimate": np.array([c.effect.estimate for c in claims]),
              "low": np.array([c.effect.low for c in claims]), "high": np.array([c.effect.high for c in claims])}
    return Rendered(None, arrays, caption, claims_numbers(claims), texts={".md": claims_markdown(claims)})
