"""The checks `viz run`, `viz figures`, `viz demo` and `viz explorable` make before any work (and the widgets can
call).

The shared rules (model name, checkpoint, image folder, ranges, output paths) are `smt.inputs`; this module
adds what only the analysis commands know: `viz run` result files and the figures that take them, figure
names, formats and venues, and each command's list of checks (`check_run_args`, `check_figures_args`,
`check_demo_args`, `check_explorable_args`). Each command calls its list first, so a bad input is one line
naming the option and the fix (exit code 2) before a model is built, an image read or the variant table
computed.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from smt.inputs import (
    Checks,
    InputError,
    check_checkpoint,
    check_choice,
    check_device,
    check_image_folder,
    check_model_name,
    check_output_file,
    check_output_folder,
    check_range,
)

__all__ = ["result_figures", "ONE_RESULT", "MAX_INPUT_SIZE", "read_result", "check_results", "check_figure_names",
           "check_formats", "check_venue", "figures_needing_source", "check_run_args", "check_figures_args",
           "check_demo_args", "check_explorable_args", "existing_figure_files", "check_source"]



def result_figures(figures: Mapping[str, Any], analysis: str) -> tuple[str, ...]:
    """The figures a `viz run` analysis feeds: those of `figures` (the set's registry, `viz.figures.FIGURES`)
    registered with `results=analysis`."""
    return tuple(name for name, spec in figures.items() if spec.results == analysis)


#: Analyses of which a figure draws one file (erf and cam draw one column per file).
ONE_RESULT = ("spectrum", "distance")
#: The largest square input size the commands accept (a sanity bound: 4096 px is 16M pixels per image).
MAX_INPUT_SIZE = 4096


# ---- results files ----------------------------------------------------------------------------------

def read_result(path: os.PathLike, option: str = "--results") -> dict:
    """A file written by `python -m viz run`, or an `InputError` saying what the file is instead."""
    from .run import load_result

    try:
        return load_result(path)
    except (FileNotFoundError, ValueError) as e:
        raise InputError(option, str(e)) from None


def check_results(paths: Sequence[os.PathLike], figures: Sequence[str], registry: Mapping[str, Any],
                  option: str = "--results") -> list[tuple[str, dict]]:
    """Read every results file and check that a requested figure (of `figures`, names in `registry`) draws it;
    returns (path, record) pairs.

    A file that is not a result, or whose analysis no requested figure takes, is an error naming the analysis
    and the figures that take it; two files for a figure that draws one (fourier, distance) too.
    """
    checks = Checks()
    out = []
    for p in paths:
        rec = checks(read_result, p, option)
        if rec is None:
            continue
        analysis = rec["analysis"]
        takers = result_figures(registry, analysis)
        if not takers:
            checks.add(option, f"{p} holds a `viz run {analysis}` result, which no figure draws; give it to "
                               f"`python -m viz claims --results` instead, or drop the file")
            continue
        if not set(takers) & set(figures):
            checks.add(option, f"{p} holds a `viz run {analysis}` result, which only the figure "
                               f"{' and '.join(takers)} draws, and --only asks for {', '.join(figures)}; add "
                               f"{takers[0]} to --only or drop the file")
            continue
        out.append((str(p), rec))
    for analysis in ONE_RESULT:
        same = [p for p, r in out if r["analysis"] == analysis]
        if len(same) > 1:
            checks.add(option, f"{len(same)} `{analysis}` results ({', '.join(Path(p).name for p in same)}); "
                               f"{result_figures(registry, analysis)[0]} draws one: give one of them")
    checks.done()
    return out


# ---- figures ----------------------------------------------------------------------------------------

def check_figure_names(only: Optional[str], figures: Sequence[str], option: str = "--only") -> list[str]:
    """The names `--only` gives, each one of `figures` (the figure set's, `viz.figures.FIGURES`); all when None."""
    FIGURES = list(figures)
    if only is None:
        return list(FIGURES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    if not names:
        raise InputError(option, f"no figure named; give comma-separated names from {', '.join(FIGURES)}")
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise InputError(option, f"unknown figure(s) {', '.join(unknown)}; the figures are {', '.join(FIGURES)}")
    return names


def check_formats(formats: str, option: str = "--format") -> list[str]:
    out = [f.strip().lower().lstrip(".") for f in formats.split(",") if f.strip()]
    bad = [f for f in out if f not in ("pdf", "png", "svg")]
    if not out or bad:
        raise InputError(option, f"{'unknown format(s) ' + ', '.join(bad) if bad else 'no format'}; give "
                                 f"comma-separated pdf, png, svg")
    return out


def check_venue(venue: str, option: str = "--venue") -> str:
    from .style import VENUES

    return check_choice(venue, option, list(VENUES), "venue")


def figures_needing_source(names: Sequence[str], results: Sequence[tuple[str, dict]], registry: Mapping[str, Any]
                           ) -> list[str]:
    """The requested figures that need the model and images: all but the variant table and those drawn from
    results."""
    served = {f for _, r in results for f in result_figures(registry, r["analysis"])}
    return [n for n in names if n != "summary" and n not in served]


def existing_figure_files(out: os.PathLike, names: Sequence[str]) -> list[str]:
    """Files of `names` (any suffix) and `index.html` already in `out`: what a render would replace."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = sorted(p.name for n in names for p in out.glob(f"{n}.*") if p.is_file())
    return found + (["index.html"] if (out / "index.html").is_file() else [])


def _check_variants(variants: Optional[str], option: str = "--variants") -> None:
    from smt.model import VARIANTS

    if variants is None:
        return
    names = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise InputError(option, f"unknown variant(s) {', '.join(unknown) or '(none given)'}; registered: "
                                 f"{', '.join(VARIANTS)}")


def _check_out_folder(checks: Checks, out: str, names: Sequence[str], overwrite: bool, option: str) -> None:
    existing = existing_figure_files(out, names) if Path(out).is_dir() else []
    checks(check_output_folder, out, option, files=existing, overwrite=overwrite)


def check_source(fs, names: Sequence[str], *, checkpoint: Optional[str], option: str = "--checkpoint") -> None:
    """Build a `FigureSet`'s source (model and images) now, so that weights that do not fit the model are one
    error before any figure, not one per figure; then check `--sam-block` against the model."""
    from smt.reader import CheckpointError

    try:
        _ = fs.source  # built and cached
    except CheckpointError as e:
        raise InputError(option, str(e)) from None  # names the file, both architectures and the fix
    except RuntimeError as e:
        if checkpoint is None:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(option, f"{checkpoint} does not fit the model: {first}; give the weights of the model "
                                 f"--model names (`python -m smt inspect FILE` shows what a file holds)") from None
    if "sam_block" in names and fs.is_smt:
        from .analysis import sam_block_names

        blocks = sam_block_names(fs.model)
        if fs.settings.sam_block not in blocks:
            raise InputError("--sam-block", f"{fs.settings.sam_block} is not a SAM block of {fs.source.name}; "
                                            f"give one of {', '.join(blocks)}")


# ---- each command's checks ----------------------------------------------------------------------------

def _check_smt_model(name: str, analysis: str, option: str = "--model") -> None:
    """`spectrum` and `distance` read SMT's block outputs and SAM taps: an SMT variant only."""
    from smt.demo import DEMO_MODELS
    from smt.model import VARIANTS

    if analysis not in ("spectrum", "distance") or name.split(".")[0] in VARIANTS or name in DEMO_MODELS:
        return
    other = {"spectrum": "viz.analysis.block_fourier_profile (any timm model with blocks)",
             "distance": "viz.analysis.timm_attention_profile (ViT, Swin)"}[analysis]
    raise InputError(option, f"`viz run {analysis}` runs on SMT models ({', '.join(VARIANTS)}), and {name} is not "
                             f"one; for other models use {other} from Python, or `viz run erf` / `viz run cam`, "
                             f"which run on any timm model")


def check_run_args(args) -> None:
    """`python -m viz run`: every input checked, all problems reported together."""
    from .analysis.cam import CAM_METHODS

    c = Checks()
    c(check_model_name, args.model, "--model")
    c(check_checkpoint, args.checkpoint, "--checkpoint")
    c(check_device, getattr(args, "device", None))
    c(check_image_folder, args.images, "--images")
    c(check_range, args.num_images, "--num-images", 1)
    c(check_range, args.batch_size, "--batch-size", 1)
    c(check_range, args.workers, "--workers", 0)
    c(check_range, args.input_size, "--input-size", 16, MAX_INPUT_SIZE)
    c(check_range, args.num_classes, "--num-classes", 0)
    c(check_range, args.queries, "--queries", 1)
    c(check_range, args.seed, "--seed", 0)
    c(check_range, args.stage, "--stage", -4, 3, what="stages 1-4 are 0-3; negative counts from the last")
    if args.analysis == "cam":
        c(check_choice, args.cam_method, "--cam-method", list(CAM_METHODS), "CAM method")
    if not any(e.option == "--model" for e in c.errors):  # a known name: is it one the analysis runs on?
        c(_check_smt_model, args.model, args.analysis)
    c(check_output_file, args.out, "--out", overwrite=getattr(args, "overwrite", False),
      example=f"{args.analysis}.pt")
    c.done()


def check_figures_args(args, figures: Mapping[str, Any]) -> tuple[list[str], list[str], list[tuple[str, dict]]]:
    """`python -m viz figures` (`figures`: the set's names): returns (figure names, formats, results); raises
    `InputErrors`."""
    c = Checks()
    names = c(check_figure_names, args.only, figures) or []
    formats = c(check_formats, args.format) or []
    c(check_venue, args.venue)
    results = c(check_results, args.results, names, figures) if names else None
    results = results or []
    if args.model is not None and (figures_needing_source(names, results, figures) or not names):
        c(check_model_name, args.model, "--model")  # None: the default (main, or --checkpoint alone)
    c(check_checkpoint, args.checkpoint, "--checkpoint")
    c(check_device, getattr(args, "device", None))
    c(check_image_folder, args.images, "--images")
    c(check_range, args.num_images, "--num-images", 1)
    c(check_range, args.rows, "--rows", 1, 64)
    c(check_range, args.input_size, "--input-size", 16, MAX_INPUT_SIZE)
    c(check_range, args.seed, "--seed", 0)
    c(_check_variants, args.variants)
    _check_out_folder(c, args.out, names, getattr(args, "overwrite", False), "--out")
    c.done()
    return names, formats, results


def check_demo_args(args, figures: Sequence[str]) -> tuple[list[str], list[str]]:
    """`python -m viz demo` (`figures`: the set's names): returns (figure names, formats); raises `InputErrors`."""
    from smt.demo import BACKBONES, DEMO_MODELS

    c = Checks()
    if args.model in BACKBONES:  # the report reads SMT's stages and SAM blocks
        smt_demos = ", ".join(n for n in DEMO_MODELS if n not in BACKBONES)
        c.add("--model", f"{args.model} is a comparison backbone, drawn beside SMT in the figures; the demo "
                         f"reports on an SMT model: give one of {smt_demos}, an SMT variant or an SMT checkpoint")
    elif args.model is not None:
        c(check_model_name, args.model, "--model")
    c(check_checkpoint, args.checkpoint, "--checkpoint" if not os.environ.get("SMT_CHECKPOINT") else
      "--checkpoint (or SMT_CHECKPOINT)")
    c(check_device, getattr(args, "device", None))
    c(check_range, args.num_images, "--num-images", 1, 512, what="the shipped canvases")
    names = c(check_figure_names, args.only, figures) or []
    if args.no_summary and not args.only and "summary" in names:
        names.remove("summary")
    formats = c(check_formats, args.format) or []
    c(check_venue, args.venue)
    if not args.no_figures:
        _check_out_folder(c, args.figures, names, args.overwrite, "--figures")
    c.done()
    return names, formats


def _check_figure_folder(folder: Optional[str], option: str = "--figures") -> None:
    if folder is None:
        return
    p = Path(folder)
    fix = "give the folder `python -m viz figures --out DIR` (or `make demo`) wrote"
    if p.exists() and not p.is_dir():
        raise InputError(option, f"{p} is a file, not a folder; {fix}")
    if not p.is_dir():
        raise InputError(option, f"{p} does not exist; {fix}")


def check_explorable_args(args, outputs: Sequence[str], model_set: Callable[..., Any]):
    """`python -m viz explorable`: every input checked, all problems together. `outputs`: the names the command
    writes at the top of --out; `model_set`: `viz.explorable.model_set` (passed in: no import circle), which
    loads the first model to check that it is an SMT model with SAM blocks. Returns its model set; raises
    `InputErrors`."""
    c = Checks()
    c(check_range, args.num_images, "--num-images", 1)
    c(check_range, args.workers, "--workers", 1)
    c(check_range, args.seed, "--seed", 0, 2 ** 31 - 1)
    if args.device != "cpu":
        c.add("--device", f"{args.device}: the explorable is built on the CPU (a few forward passes per model; other "
                          f"devices round differently, so the files would not be byte-identical); give --device cpu")
    if args.images not in (None, "canvases", "photos"):
        c(check_image_folder, args.images, "--images")
    c(_check_figure_folder, args.figures)
    out = Path(args.out)
    existing = [n for n in outputs if (out / n).exists()] if out.is_dir() else []
    c(check_output_folder, args.out, "--out", files=existing, overwrite=args.overwrite)
    ms = c(model_set, args.model, seed=args.seed) if args.seed is not None and args.seed >= 0 else None
    c.done()
    return ms
