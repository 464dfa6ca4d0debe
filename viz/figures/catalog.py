"""The figures of the set, one function each (`FigureSet -> Rendered`), each registered in `FIGURES` by `@figure`
with its width and what it needs (checked before it is drawn, `registry.FigureSpec.unmet`)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from smt.presets import TITLES

from ..plot.base import to_numpy
from .figureset import FigureSet, Rendered, SkipFigure
from .registry import ABLATION_SET, FIGURES, figure

__all__ = ["FIGURES", "draw"]


def _names(fs: FigureSet, idx: torch.Tensor) -> list[str]:
    return [fs.source.class_names[int(i)] for i in idx]


@figure("modulator_maps", width="column", needs="smt")
def fig_modulator_maps(fs: FigureSet) -> Rendered:
    """Mean |modulator| of the last SAM block of stages 1-3, per image."""
    from ..analysis import last_sam_blocks, modulator_map
    from ..plot import plot_modulator_maps

    stages = [s for s in (0, 1, 2) if any(t == "sam" for t in fs.model.stage_block_types[s])]
    blocks = last_sam_blocks(fs.model, stages)
    rows = min(fs.settings.rows, len(fs.images()))
    maps = {b: modulator_map(fs.forward.sam[b].modulator[:rows], 4.0) for b in blocks.values()}
    preds = _names(fs, fs.predictions[:rows])
    labels = _names(fs, fs.source.labels[:rows]) if fs.source.labels is not None else None
    fig = plot_modulator_maps(fs.source.display[:rows], maps, labels=labels, predictions=preds)
    caption = (f"Modulator maps of {fs.source.name}: for the last SAM block of stages "
               f"{', '.join(str(s + 1) for s in stages)}, the mean over channels of |modulator| upsampled x4 "
               f"bilinearly (the authors' visualisation), one colour scale per column.")
    arrays = {"images": fs.source.display[:rows], **{f"modulator/{b}": m.numpy() for b, m in maps.items()},
              "predicted": fs.predictions[:rows].numpy()}
    if fs.source.labels is not None:
        arrays["labels"] = fs.source.labels[:rows].numpy()
    return Rendered(fig, arrays, caption, {"blocks": list(maps), "predicted": preds, "labels": labels})


@figure("sam_block", width="full", needs="smt")
def fig_sam_block(fs: FigureSet) -> Rendered:
    """Inside one SAM block: each head's output and receptive field, SAA's input group and the modulator."""
    from ..analysis import block_index, group_channel_maps, head_activation_maps, modulator_map, stage_stride
    from ..plot import plot_sam_block

    block = fs.settings.sam_block
    feats = fs.forward.sam.get(block)
    if feats is None:
        from ..analysis import sam_block_names

        raise ValueError(f"--sam-block {block} is not a SAM block of {fs.source.name}; SAM blocks: "
                         f"{sam_block_names(fs.model)}")
    i = 0
    heads = head_activation_maps([h[i:i + 1] for h in feats.heads])[0]
    fields = fs.head_erf(block)
    group = group_channel_maps(feats.saa_input[i:i + 1], feats.num_heads, fs.settings.group)[0]
    mod = modulator_map(feats.modulator[i:i + 1])[0]
    stride = stage_stride(fs.model, block_index(block)[0])
    fig = plot_sam_block(fs.source.display[i], heads, fields, group, mod, feats.kernel_sizes, block=block,
                         group_index=fs.settings.group, stride=stride)
    support = [int((f > 1e-6 * f.max()).sum()) for f in fields]
    caption = (f"Inside {block} of {fs.source.name} (image 1): top, each MHMC head's mean |output| (kernels "
               f"{', '.join(f'{k}x{k}' for k in feats.kernel_sizes)}); middle, each head's receptive field with "
               f"respect to the block input (gradient of the head's central output, 8 images), non-zero on "
               f"{', '.join(map(str, support))} positions; bottom, SAA's input for group {fs.settings.group + 1} "
               f"(one channel of every head) beside the mean |modulator| it produces.")
    arrays = {"image": fs.source.display[i], "head_maps": heads.numpy(), "head_erf": fields.numpy(),
              "saa_group": group.numpy(), "modulator": mod.numpy()}
    return Rendered(fig, arrays, caption, {"block": block, "kernel_sizes": list(feats.kernel_sizes),
                                           "head_erf_support": support})


def _fourier_from_results(fs: FigureSet) -> Optional[list]:
    from ..analysis.spectrum import BlockFourier, FourierCurve

    recs = fs.result_record("spectrum")
    if not recs:
        return None
    r = recs[0][1]["result"]
    return [BlockFourier(b, k, float(d), FourierCurve(r["freq"][b], r["relative_log_amplitude"][b]))
            for b, k, d in zip(r["blocks"], r["kinds"], r["depth"].tolist())]


def _profiles(fs: FigureSet, from_results: Callable, computed: Callable, backbone: Callable
              ) -> tuple[list, bool, dict]:
    """(SMT's profile, whether it came from `viz run` results, {backbone title: profile}): results files stand
    alone; a computed profile gets the shipped backbones beside it (those that have one)."""
    profile = from_results(fs)
    if profile is not None:
        return profile, True, {}
    others = {TITLES.get(name, name): backbone(name) for name in fs.backbones}
    return computed(), False, {k: v for k, v in others.items() if v is not None}


@figure("fourier", width="full", needs="smt", results="spectrum")
def fig_fourier(fs: FigureSet) -> Rendered:
    """Relative log amplitude of every block's Fourier-transformed output, against frequency and depth."""
    from ..plot import plot_fourier

    profile, from_results, others = _profiles(fs, _fourier_from_results, lambda: fs.fourier, fs.backbone_fourier)
    fig = plot_fourier(profile, others=others or None)
    high = {b.name: round(b.curve.highest, 4) for b in profile}
    msa = [b.curve.highest for b in profile if b.kind == "msa"]
    sam = [b.curve.highest for b in profile if b.kind == "sam"]
    caption = ("Relative log amplitude of the Fourier-transformed block outputs (Park and Kim, ICLR 2022): "
               "(a) every block over frequency, coloured by depth (dashed: MSA blocks); (b) the value at the "
               f"highest frequency against normalised depth, MSA blocks shaded. Mean at pi: SAM blocks "
               f"{np.mean(sam):.2f}, MSA blocks {np.mean(msa) if msa else float('nan'):.2f}"
               + (f"; beside SMT: {', '.join(others)}" if others else "") + ".")
    arrays = {f"freq/{b.name}": b.curve.freq.numpy() for b in profile}
    arrays.update({f"value/{b.name}": b.curve.value.numpy() for b in profile})
    arrays["depth"] = np.array([b.depth for b in profile])
    for name, prof in others.items():
        arrays[f"{name}/depth"] = np.array([b.depth for b in prof])
        arrays[f"{name}/highest"] = np.array([b.curve.highest for b in prof])
    numbers = {"highest": high, "mean_highest_sam": float(np.mean(sam)) if sam else None,
               "mean_highest_msa": float(np.mean(msa)) if msa else None, "from_results": from_results,
               "others_highest": {k: [round(b.curve.highest, 4) for b in v] for k, v in others.items()}}
    return Rendered(fig, arrays, caption, numbers)


@figure("low_frequency", width="column", needs=("smt", "saa"))
def fig_low_frequency(fs: FigureSet) -> Rendered:
    """Low-frequency share of SAA's input and output in every SAM block."""
    from ..plot import plot_low_frequency_shares

    shares = fs.low_frequency
    ax = plot_low_frequency_shares(shares)
    up = sum(s.modulator > s.saa_input for s in shares)
    change = float(np.mean([s.change for s in shares]))
    caption = (f"Low-frequency share (|f| <= {fs.settings.radius:g} pi, DC excluded) of SAA's input and output "
               f"(the modulator) in every SAM block of {fs.source.name}, over {len(fs.images())} images: the output "
               f"share is higher in {up} of {len(shares)} blocks (mean change {change:+.3f}).")
    arrays = {"saa_input": np.array([s.saa_input for s in shares]),
              "modulator": np.array([s.modulator for s in shares])}
    numbers = {"shares": {s.block: {"saa_input": round(s.saa_input, 4), "modulator": round(s.modulator, 4)}
                          for s in shares}, "blocks_where_output_is_higher": up, "num_blocks": len(shares)}
    return Rendered(ax.figure, arrays, caption, numbers)


def _distance_from_results(fs: FigureSet) -> Optional[list]:
    from ..analysis.distance import BlockDistance

    recs = fs.result_record("distance")
    if not recs:
        return None
    r = recs[0][1]["result"]
    return [BlockDistance(b, k, r["per_head"][b], float(v)) for b, k, v in zip(r["blocks"], r["kinds"],
                                                                               r["block"].tolist())]


@figure("distance", width="column", needs="smt", results="distance")
def fig_distance(fs: FigureSet) -> Rendered:
    """Modulation distance of SAM blocks and attention distance of MSA blocks, in pixels, against depth."""
    from ..analysis import block_index
    from ..plot import plot_distance_profile

    profile, from_results, others = _profiles(fs, _distance_from_results, lambda: fs.distance,
                                              fs.backbone_distance)
    ax = plot_distance_profile(profile, others=others or None)
    per_stage: dict[str, float] = {}
    for s in sorted({block_index(b.name)[0] for b in profile}):
        for kind in ("sam", "msa"):
            v = [b.distance for b in profile if block_index(b.name)[0] == s and b.kind == kind]
            if v:
                per_stage[f"stage {s + 1} {kind.upper()}"] = round(float(np.mean(v)), 2)
    caption = ("Distance against depth, in input pixels: modulation distance of SAM blocks (gradient-mass "
               "distance of the modulator, " + (f"{fs.settings.queries} query tokens, " if not from_results else "")
               + "one dot per MHMC head) and mean attention distance of MSA blocks (one dot per attention head); "
               "the line is the block's distance. Per stage: "
               + ", ".join(f"{k} {v:.1f} px" for k, v in per_stage.items())
               + (f". Beside SMT: {', '.join(others)}" if others else "") + ".")
    arrays = {f"per_head/{b.name}": b.per_head.numpy() if hasattr(b.per_head, "numpy") else np.asarray(b.per_head)
              for b in profile}
    arrays["distance"] = np.array([b.distance for b in profile])
    for name, prof in others.items():
        arrays[f"{name}/distance"] = np.array([b.distance for b in prof])
    numbers = {"per_stage_px": per_stage, "per_block_px": {b.name: round(b.distance, 2) for b in profile},
               "from_results": from_results,
               "others_per_block_px": {k: [round(b.distance, 2) for b in v] for k, v in others.items()}}
    return Rendered(ax.figure, arrays, caption, numbers)


@figure("erf", width="full", needs="smt", results="erf")
def fig_erf(fs: FigureSet) -> Rendered:
    """Effective receptive field of every stage, trained and at random initialisation, with area ratios."""
    from ..analysis.erf import erf_display, high_contribution_area_ratio
    from ..plot import area_ratio_table, plot_erf_grid

    ts = fs.settings.thresholds
    maps: dict[str, list] = {}   # row label -> display map per column
    raw: dict[str, np.ndarray] = {}
    recs = fs.result_record("erf")
    if recs:
        columns = []
        maps["viz run"] = []
        for _, rec in recs:
            stage = rec["settings"].get("stage")
            columns.append("last stage" if stage is None else f"stage {int(stage) + 1}")
            maps["viz run"].append(erf_display(rec["result"]["erf"]))
            raw[f"viz run/{columns[-1]}"] = to_numpy(rec["result"]["erf"])
        counted = sorted({int(r["result"]["num_counted"]) for _, r in recs})
        pixels = int(recs[0][1]["data_config"]["input_size"][-1])
        what = f"`viz run erf` results over {'/'.join(map(str, counted))} images"
    else:
        stages = list(range(len(fs.model.stages)))
        columns = [f"stage {s + 1}" for s in stages]
        models = {"trained": "trained"}
        if fs.source.build_random is not None:
            models["random init."] = "random"
        for label, m in models.items():
            maps[label] = []
            for s in stages:
                r, d = fs.erf(s, m)
                maps[label].append(d)
                raw[f"{label}/stage {s + 1}"] = to_numpy(r.erf)
        pixels = fs.input_size
        init = f", trained and at random initialisation (seed {fs.settings.seed})" if len(models) > 1 else ""
        what = f"every stage of {fs.source.name}{init}, {len(fs.images(fs.settings.erf_images))} images"
    ratios = {label: [high_contribution_area_ratio(d, ts) for d in row] for label, row in maps.items()}
    table = {f"{label}, {col}": r for label, row in ratios.items() for col, r in zip(columns, row)}
    for name in ({} if recs else fs.backbones):  # results files stand alone
        display = fs.backbone_erf(name)
        table[f"{TITLES.get(name, name)}, last stage"] = high_contribution_area_ratio(display, ts)
        raw[f"{name}/last stage"] = to_numpy(display)
    fig = plot_erf_grid(maps, ratios, columns=columns, pixels=pixels)
    first = next(iter(maps))
    last = ratios[first][-1]
    caption = ("Effective receptive fields (RepLKNet's measure: the gradient of the central output feature with "
               "respect to the input, ReLU, averaged over images; shown as log10(g + 1) / max on one scale) of "
               f"{what}. Under each map, the high-contribution area ratio (the smallest centred square holding a "
               f"fraction t of the map) at t = {' / '.join(f'{t:g}' for t in ts)}; {first}, {columns[-1]}: "
               + ", ".join(f"t={t:g}: {'n/a' if v is None else f'{v:.3f}'}" for t, v in last.items())
               + (". The other backbones' last stage is in the table (erf.md)"
                  if len(table) > sum(map(len, ratios.values())) else "") + ".")
    arrays = {f"display/{label}/{col}": to_numpy(d) for label, row in maps.items() for col, d in zip(columns, row)}
    arrays.update({f"raw/{k}": v for k, v in raw.items()})
    numbers = {"area_ratios": {k: {str(t): (None if v is None else round(v, 4)) for t, v in r.items()}
                               for k, r in table.items()}}
    return Rendered(fig, arrays, caption, numbers,
                    texts={".md": area_ratio_table(table), ".tex": area_ratio_table(table, latex=True)})


@figure("gradcam", width="column", needs="smt", results="cam")
def fig_gradcam(fs: FigureSet) -> Rendered:
    """Grad-CAM of the true class at the output of stages 2-4, with the pointing game against item boxes."""
    from ..plot import plot_cam_grid

    recs = fs.result_record("cam")
    if recs:
        return _gradcam_from_results(fs, recs)
    rows = min(fs.settings.rows, len(fs.images()))
    stages = sorted(fs.cams)
    cams = [fs.cams[s][:rows] for s in stages]
    labels = fs.source.labels
    target = labels if labels is not None else fs.predictions
    row_labels = [fs.source.class_names[int(t)] for t in target[:rows]]
    boxes = fs.source.boxes[:rows] if fs.source.boxes is not None else None
    fig = plot_cam_grid(fs.source.display[:rows], cams, columns=[f"stage {s + 1}" for s in stages], boxes=boxes,
                        row_labels=row_labels)
    pg = fs.pointing
    n = len(fs.images())
    chance = None
    if fs.source.boxes is not None:
        b = fs.source.boxes[:n].float()
        chance = float(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).mean() / fs.input_size ** 2)
    caption = (f"{fs.settings.cam_method} of the {'true' if labels is not None else 'predicted'} class at the output "
               f"of stages {', '.join(str(s + 1) for s in stages)} of {fs.source.name} (ReLU, bilinear upsampling, "
               f"min-max per map; + marks the maximum"
               + ("; boxes: the items" if boxes is not None else "") + ").")
    if pg:
        caption += (f" Pointing game over {n} images: "
                    + ", ".join(f"stage {s + 1} {100 * v:.1f}%" for s, v in pg.items())
                    + f" (a uniformly random point: {100 * chance:.1f}%).")
    arrays = {f"cam/stage{s + 1}": fs.cams[s].numpy() for s in stages}
    arrays["images"] = fs.source.display[:rows]
    numbers = {"pointing_game": {f"stage {s + 1}": round(v, 4) for s, v in pg.items()},
               "random_point_hit_rate": None if chance is None else round(chance, 4), "num_images": n,
               "method": fs.settings.cam_method}
    return Rendered(fig, arrays, caption, numbers)


def _gradcam_from_results(fs: FigureSet, recs) -> Rendered:
    from PIL import Image

    from smt.images import open_rgb

    from ..plot import plot_cam_grid

    rows = fs.settings.rows
    columns, cams, paths = [], [], None
    for _, rec in recs:
        r = rec["result"]
        stage = r["stage"]
        columns.append("last stage" if stage == -1 else f"stage {int(stage) + 1}")
        cams.append(r["cams"][:rows])
        paths = paths or r["paths"][:rows]
    size = int(rec["data_config"]["input_size"][-1])
    display = []
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p} (an image of the results file) is not readable here; Grad-CAM overlays need "
                                    f"the images: run on a machine that has them, or draw only erf, fourier, distance")
        im = open_rgb(p)  # the project's one loader (16-bit, alpha, EXIF orientation)
        s = size / min(im.size)
        im = im.resize((max(size, round(im.size[0] * s)), max(size, round(im.size[1] * s))), Image.BICUBIC)
        x0, y0 = (im.size[0] - size) // 2, (im.size[1] - size) // 2
        display.append(np.asarray(im.crop((x0, y0, x0 + size, y0 + size))))
    display = np.stack(display)
    fig = plot_cam_grid(display, cams, columns=columns)
    caption = f"{recs[0][1]['result']['method']} maps of the predicted class from `viz run cam` results."
    return Rendered(fig, {f"cam/{c}": c_.numpy() for c, c_ in zip(columns, cams)}, caption,
                    {"from_results": True})


@figure("ablation", width="full", needs=("ablation_set", "demo_canvases"))
def fig_ablation(fs: FigureSet) -> Rendered:
    """The trained ablation set (N = 1, 2, 4, 8 heads; SAA off): top-1, ERF area ratio, low-frequency change."""
    from smt.demo import DEMO_MODELS

    from ..analysis.erf import high_contribution_area_ratio
    from ..plot import AblationRow, plot_ablation

    rows = []
    n_images = len(fs.images())
    for n in ABLATION_SET:  # top-1 over every shipped canvas; the analyses over the set's images
        area = high_contribution_area_ratio(fs.ablation_erf(n), fs.settings.thresholds)
        _, arch = DEMO_MODELS[n]
        saa = arch.get("saa", True)
        shares = fs.ablation_low_frequency(n) if saa else None
        change = None if shares is None else float(np.mean([s.change for s in shares]))
        heads = int(arch.get("sam_heads", 4))
        rows.append(AblationRow(f"N = {heads}" if saa else f"SAA off (N = {heads})", heads, saa, fs.ablation_top1(n),
                                area, change))
    fig = plot_ablation(rows)
    canvases = len(fs.ablation_source(ABLATION_SET[-1]).images)
    caption = (f"The trained ablation set (smt_nano, 900 steps each, one seed): top-1 on the {canvases} shipped "
               f"canvases, the last stage's ERF area ratio (t = 0.5, {fs.settings.erf_images} canvases) and SAA's "
               f"mean low-frequency change ({n_images} canvases); "
               + "; ".join(f"{r.label}: {r.top1:.1f}%" for r in rows) + ".")
    arrays = {"top1": np.array([r.top1 for r in rows]),
              "erf_area_0.5": np.array([np.nan if r.erf_area.get(0.5) is None else r.erf_area[0.5] for r in rows]),
              "low_frequency_change": np.array([np.nan if r.low_frequency_change is None else r.low_frequency_change
                                                for r in rows])}
    numbers = {r.label: {"top1": round(r.top1, 2), "erf_area": {str(t): v for t, v in r.erf_area.items()},
                         "low_frequency_change": None if r.low_frequency_change is None
                         else round(r.low_frequency_change, 4)} for r in rows}
    return Rendered(fig, arrays, caption, numbers)


@figure("summary", width="column")
def fig_summary(fs: FigureSet) -> Rendered:
    """The registered SMT variants: parameters, multiply-adds and feature sizes (a table)."""
    rows = fs.summary
    head = ["model", "params (M)", "GMACs", "input", "features per stage (C x H x W)"]
    body = [[r.name, f"{r.params / 1e6:.2f}", f"{r.macs / 1e9:.2f}", f"{r.resolution}",
             ", ".join("x".join(str(d) for d in s) for s in r.feature_shapes)] for r in rows]
    md = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "".join(
        "| " + " | ".join(f"`{c}`" if i == 0 else c for i, c in enumerate(row)) + " |\n" for row in body)
    tex_rows = "".join(" & ".join([row[0].replace("_", r"\_")] + row[1:4] + [row[4].replace("x", r"$\times$")])
                       + r" \\" + "\n" for row in body)
    tex = (r"\begin{tabular}{lrrrl}" + "\n" + r"\toprule" + "\n"
           + r"Model & Params (M) & GMACs & Input & Features per stage ($C\times H\times W$) \\" + "\n"
           + r"\midrule" + "\n" + tex_rows + r"\bottomrule" + "\n" + r"\end{tabular}" + "\n")
    caption = ("The registered SMT variants: parameters, multiply-adds of one image at the default input size "
               "(torch.utils.flop_counter: matmuls, convolutions, attention), and the feature map of each stage. "
               "Reference logits: " + "; ".join(f"{r.name} {r.reference}" for r in rows if r.reference) + ".")
    arrays = {"params": np.array([r.params for r in rows]), "macs": np.array([r.macs for r in rows]),
              "resolution": np.array([r.resolution for r in rows])}
    numbers = {r.name: {"params": r.params, "macs": r.macs, "resolution": r.resolution,
                        "feature_shapes": [list(s) for s in r.feature_shapes], "reference": r.reference}
               for r in rows}
    return Rendered(None, arrays, caption, numbers, texts={".md": md, ".tex": tex})


def draw(fs: FigureSet, name: str, *, venue: Optional[str] = None, dpi: int = 110) -> Rendered:
    """One figure of the set, for a notebook: drawn in the screen style (or a venue's), with its PNG, data and
    caption (a notebook cell ending in `draw(fs, "fourier")` shows it)."""
    import io

    from ..style import paper, screen

    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; the figures are {', '.join(FIGURES)}")
    spec = FIGURES[name]
    reason = spec.unmet(fs)
    if reason is not None:
        raise SkipFigure(reason)
    with (paper(venue, spec.width) if venue else screen()):
        r = spec.draw(fs)
        if r.fig is not None:
            buf = io.BytesIO()
            r.fig.savefig(buf, format="png", dpi=dpi)
            r.png = buf.getvalue()
    return r
