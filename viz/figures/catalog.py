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
from .registry import FIGURES, figure

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
    per_image = r.get("per_image", {})
    return [BlockFourier(b, k, float(d), FourierCurve(r["freq"][b], r["relative_log_amplitude"][b]), per_image.get(b))
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
    from ..analysis.stats import mean_interval
    from ..plot import plot_fourier

    profile, from_results, others = _profiles(fs, _fourier_from_results, lambda: fs.fourier, fs.backbone_fourier)
    bands = [mean_interval(b.per_image[:, -1]) for b in profile] if all(b.per_image is not None for b in profile) \
        else []
    fig = plot_fourier(profile, others=others or None,
                       band=([e.low for e in bands], [e.high for e in bands]) if bands else None)
    high = {b.name: round(b.curve.highest, 4) for b in profile}
    msa = [b.curve.highest for b in profile if b.kind == "msa"]
    sam = [b.curve.highest for b in profile if b.kind == "sam"]
    caption = ("Relative log amplitude of the Fourier-transformed block outputs (Park and Kim, ICLR 2022): "
               "(a) every block over frequency, coloured by depth (dashed: MSA blocks); (b) the value at the "
               f"highest frequency against normalised depth, MSA blocks shaded. Mean at pi: SAM blocks "
               f"{np.mean(sam):.2f}, MSA blocks {np.mean(msa) if msa else float('nan'):.2f}"
               + (f"; beside SMT: {', '.join(others)}" if others else "") + "."
               + (f" The band in (b) is the 95% bootstrap interval of the mean over N={bands[0].n} images." if bands
                  else ""))
    arrays = {f"freq/{b.name}": b.curve.freq.numpy() for b in profile}
    if bands:
        arrays["highest_low"] = np.array([e.low for e in bands])
        arrays["highest_high"] = np.array([e.high for e in bands])
    arrays.update({f"value/{b.name}": b.curve.value.numpy() for b in profile})
    arrays["depth"] = np.array([b.depth for b in profile])
    for name, prof in others.items():
        arrays[f"{name}/depth"] = np.array([b.depth for b in prof])
        arrays[f"{name}/highest"] = np.array([b.curve.highest for b in prof])
    numbers = {"highest": high, "mean_highest_sam": float(np.mean(sam)) if sam else None,
               "mean_highest_msa": float(np.mean(msa)) if msa else None, "from_results": from_results,
               "highest_interval": {b.name: e.to_dict() for b, e in zip(profile, bands)},
               "others_highest": {k: [round(b.curve.highest, 4) for b in v] for k, v in others.items()}}
    return Rendered(fig, arrays, caption, numbers)


@figure("low_frequency", width="column", needs=("smt", "saa"))
def fig_low_frequency(fs: FigureSet) -> Rendered:
    """Low-frequency share of SAA's input and output in every SAM block."""
    from ..plot import plot_low_frequency_shares

    shares = fs.low_frequency
    ax = plot_low_frequency_shares(shares)
    changes = {s.block: s.change_interval() for s in shares}  # paired bootstrap over the same images
    up = sum(e.low > 0 for e in changes.values())
    down = sum(e.high < 0 for e in changes.values())
    n = len(fs.images())
    caption = (f"Low-frequency share (|f| <= {fs.settings.radius:g} pi, DC excluded, energy-weighted over channels) "
               f"of SAA's input and output (the modulator) in every SAM block of {fs.source.name}, N={n} images. "
               f"Change (output - input) with its 95% paired-bootstrap interval: "
               + "; ".join(f"{b} {e.estimate:+.3f} [{e.low:+.3f}, {e.high:+.3f}]" for b, e in changes.items())
               + f". The interval lies above zero in {up} and below zero in {down} of {len(shares)} blocks.")
    arrays = {"saa_input": np.array([s.saa_input for s in shares]),
              "modulator": np.array([s.modulator for s in shares]),
              "change": np.array([e.estimate for e in changes.values()]),
              "change_low": np.array([e.low for e in changes.values()]),
              "change_high": np.array([e.high for e in changes.values()])}
    numbers = {"shares": {s.block: {"saa_input": round(s.saa_input, 4), "modulator": round(s.modulator, 4),
                                    "change": changes[s.block].to_dict()} for s in shares},
               "blocks_where_output_is_higher": up, "blocks_where_output_is_lower": down, "num_blocks": len(shares),
               "num_images": n, "definition": "energy"}
    return Rendered(ax.figure, arrays, caption, numbers)


def _distance_from_results(fs: FigureSet) -> Optional[list]:
    from ..analysis.distance import BlockDistance

    recs = fs.result_record("distance")
    if not recs:
        return None
    r = recs[0][1]["result"]
    per_image = r.get("per_image", {})
    return [BlockDistance(b, k, r["per_head"][b], float(v), per_image.get(b))
            for b, k, v in zip(r["blocks"], r["kinds"], r["block"].tolist())]


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
    intervals = {b.name: b.interval() for b in profile if b.per_image is not None}
    caption = ("Distance against depth, in input pixels: modulation distance of SAM blocks (gradient-mass "
               "distance of the modulator, " + (f"{fs.settings.queries} query tokens, " if not from_results else "")
               + "one dot per MHMC head) and mean attention distance of MSA blocks (one dot per attention head); "
               "the line is the block's distance. Per stage: "
               + ", ".join(f"{k} {v:.1f} px" for k, v in per_stage.items())
               + (f". Beside SMT: {', '.join(others)}" if others else "") + "."
               + (f" Per block, mean over N={next(iter(intervals.values())).n} images with its 95% bootstrap "
                  "interval: " + "; ".join(f"{b} {e.estimate:.1f} [{e.low:.1f}, {e.high:.1f}] px"
                                           for b, e in intervals.items()) + "." if intervals else ""))
    arrays = {f"per_head/{b.name}": b.per_head.numpy() if hasattr(b.per_head, "numpy") else np.asarray(b.per_head)
              for b in profile}
    arrays.update({f"per_image/{b.name}": np.asarray(b.per_image) for b in profile if b.per_image is not None})
    arrays["distance"] = np.array([b.distance for b in profile])
    for name, prof in others.items():
        arrays[f"{name}/distance"] = np.array([b.distance for b in prof])
    numbers = {"per_stage_px": per_stage, "per_block_px": {b.name: round(b.distance, 2) for b in profile},
               "per_block_interval_px": {b: e.to_dict() for b, e in intervals.items()},
               "from_results": from_results,
               "others_per_block_px": {k: [round(b.distance, 2) for b in v] for k, v in others.items()}}
    return Rendered(ax.figure, arrays, caption, numbers)


@figure("erf", width="full", needs="smt", results="erf")
def fig_erf(fs: FigureSet) -> Rendered:
    """Effective receptive field of every stage, trained and at random initialisation, with area ratios."""
    from ..analysis.erf import area_ratio_intervals, erf_display, high_contribution_area_ratio
    from ..plot import area_ratio_table, plot_erf_grid

    ts = fs.settings.thresholds
    maps: dict[str, list] = {}   # row label -> display map per column
    raw: dict[str, np.ndarray] = {}
    intervals: dict[str, dict] = {}  # "row, column" -> {t: Estimate} (bootstrap over images)
    recs = fs.result_record("erf")
    if recs:
        columns = []
        maps["viz run"] = []
        for _, rec in recs:
            stage = rec["settings"].get("stage")
            columns.append("last stage" if stage is None else f"stage {int(stage) + 1}")
            maps["viz run"].append(erf_display(rec["result"]["erf"]))
            raw[f"viz run/{columns[-1]}"] = to_numpy(rec["result"]["erf"])
            if "per_image" in rec["result"]:
                intervals[f"viz run, {columns[-1]}"] = area_ratio_intervals(rec["result"]["per_image"], ts)
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
                if r.per_image is not None:
                    intervals[f"{label}, stage {s + 1}"] = r.area_ratio_intervals(ts)
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
    last_ci = intervals.get(f"{first}, {columns[-1]}", {})
    caption = ("Effective receptive fields (RepLKNet's measure: the gradient of the central output feature with "
               "respect to the input, ReLU, averaged over images; shown as log10(g + 1) / max on one scale) of "
               f"{what}. Under each map, the high-contribution area ratio (the smallest centred square holding a "
               f"fraction t of the map) at t = {' / '.join(f'{t:g}' for t in ts)}; {first}, {columns[-1]}: "
               + ", ".join(f"t={t:g}: {'n/a' if v is None else f'{v:.3f}'}"
                           + (f" [{last_ci[t].low:.3f}, {last_ci[t].high:.3f}]" if t in last_ci
                              and last_ci[t].has_interval else "") for t, v in last.items())
               + (f" (95% bootstrap interval over N={next(iter(last_ci.values())).n} images)" if last_ci else "")
               + (". The other backbones' last stage is in the table (erf.md)"
                  if len(table) > sum(map(len, ratios.values())) else "") + ".")
    arrays = {f"display/{label}/{col}": to_numpy(d) for label, row in maps.items() for col, d in zip(columns, row)}
    arrays.update({f"raw/{k}": v for k, v in raw.items()})
    numbers = {"area_ratios": {k: {str(t): (None if v is None else round(v, 4)) for t, v in r.items()}
                               for k, r in table.items()},
               "area_ratio_intervals": {k: {str(t): e.to_dict() for t, e in r.items()} for k, r in intervals.items()}}
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
    wilson = {}
    if pg:
        from ..analysis.cam import pointing_hits
        from ..analysis.stats import proportion_interval

        wilson = {s: proportion_interval(pointing_hits(fs.cams[s], fs.source.boxes[:n],
                                                       (fs.input_size, fs.input_size))) for s in pg}
        caption += (f" Pointing game over N={n} images, with 95% Wilson intervals: "
                    + ", ".join(f"stage {s + 1} {100 * e.estimate:.1f}% [{100 * e.low:.1f}, {100 * e.high:.1f}]"
                                for s, e in wilson.items())
                    + f" (a uniformly random point: {100 * chance:.1f}%).")
    arrays = {f"cam/stage{s + 1}": fs.cams[s].numpy() for s in stages}
    arrays["images"] = fs.source.display[:rows]
    numbers = {"pointing_game": {f"stage {s + 1}": round(v, 4) for s, v in pg.items()},
               "pointing_game_wilson": {f"stage {s + 1}": e.to_dict() for s, e in wilson.items()},
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
    """The trained ablation set (N = 1, 2, 4, 8 heads; SAA off), each training seed a dot, the mean with its
    interval across seeds and images: top-1, ERF area ratio, low-frequency change."""
    from ..analysis.stats import grouped_bootstrap
    from ..claims import ABLATION, ERF_THRESHOLD, _erf_statistic, _values, ablation_set
    from ..plot import AblationRow, plot_ablation

    if fs.source.demo is None or fs.source.labels is None:
        raise SkipFigure("the ablation set is trained on Scaled Fashion-MNIST: it needs the shipped canvases "
                         "(run without --images and with a demo --model)")
    sets = ablation_set(fs, getattr(fs, "ablation_records", None))
    missing = [c for c in ABLATION if c not in sets]
    if missing:
        raise SkipFigure(f"the trained ablation set is incomplete (missing {', '.join(missing)} in data/demo)")

    def interval(values, statistic=np.mean):
        e = grouped_bootstrap([values], lambda v: v[0], statistic)
        return (e.low, e.high), e

    rows, numbers = [], {}
    for cfg, seeds in sets.items():
        heads, saa = ABLATION[cfg]
        top1_ci, top1 = interval(_values(seeds, "top1"))
        erf_values = _values(seeds, "erf")
        erf_ci, erf = interval(erf_values, _erf_statistic) if all(v is not None for v in erf_values) else \
            ((np.nan, np.nan), None)
        lf = [s.low_frequency_change for s in seeds]
        lf_ci, lf_e = interval(lf) if saa and all(v is not None for v in lf) else ((np.nan, np.nan), None)
        label = f"N = {heads}" if saa else f"SAA off (N = {heads})"
        rows.append(AblationRow(label, heads, saa, top1.estimate, {ERF_THRESHOLD: None if erf is None else
                                                                   erf.estimate},
                                None if lf_e is None else lf_e.estimate,
                                seeds=tuple({"top1": s.top1, "erf_area": s.erf_area,
                                             "low_frequency_change": s.low_frequency_change} for s in seeds),
                                intervals={"top1": top1_ci, "erf_area": erf_ci, "low_frequency_change": lf_ci}))
        numbers[label] = {"seeds": [s.seed for s in seeds], "top1_per_seed": [round(s.top1, 2) for s in seeds],
                          "top1": top1.to_dict(), "erf_area_per_seed": [s.erf_area for s in seeds],
                          "erf_area": None if erf is None else erf.to_dict(),
                          "low_frequency_change_per_seed": lf, "low_frequency_change": None if lf_e is None
                          else lf_e.to_dict(), "num_images": [s.num_images for s in seeds]}
    fig = plot_ablation(rows)
    n_seeds = sorted({len(s) for s in sets.values()})
    caption = (f"The trained ablation set (smt_nano, 900 steps each, {'/'.join(map(str, n_seeds))} seed(s) per "
               f"configuration): top-1 on {numbers[rows[0].label]['num_images'][0]} canvases, the "
               f"last stage's ERF area ratio (t = {ERF_THRESHOLD:g}, {fs.settings.erf_images} canvases) and SAA's "
               f"mean low-frequency change ({len(fs.images())} canvases). Dots: seeds; diamonds: the mean over seeds "
               f"with its 95% interval across seeds and images (none for a single seed's low-frequency change); "
               + "; ".join(f"{r.label}: {r.top1:.1f}% [{r.intervals['top1'][0]:.1f}, {r.intervals['top1'][1]:.1f}]"
                           for r in rows)
               + (". With one seed per configuration the interval covers images only; differences smaller than "
                  "the seed spread are not findings." if n_seeds == [1] else "."))
    arrays = {"top1": np.array([r.top1 for r in rows]),
              "top1_low": np.array([r.intervals["top1"][0] for r in rows]),
              "top1_high": np.array([r.intervals["top1"][1] for r in rows]),
              "erf_area_0.5": np.array([np.nan if r.erf_area.get(0.5) is None else r.erf_area[0.5] for r in rows]),
              "low_frequency_change": np.array([np.nan if r.low_frequency_change is None else r.low_frequency_change
                                                for r in rows])}
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


@figure("claims", width="column", needs="smt")
def fig_claims(fs: FigureSet) -> Rendered:
    """The paper's claims: each effect with its 95% interval and N, and the verdict its interval gives (a table)."""
    from ..claims import claims_rendered

    return claims_rendered(fs, ablation_records=getattr(fs, "ablation_records", None))


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
