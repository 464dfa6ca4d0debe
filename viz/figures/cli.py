"""`python -m viz figures`: the command line of the figure set."""
from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from smt.inputs import cli_errors

from .catalog import FIGURES
from .figureset import FigureSet, Settings
from .source import Source, load_source
from .writing import print_outcomes, render

__all__ = ["main", "add_arguments", "settings_from_args", "figure_set_from_args", "run_command"]


def add_arguments(p) -> None:
    p.add_argument("--out", required=True, help="output folder (nothing is written outside it)")
    p.add_argument("--model", default="main",
                   help="a demo model (main, heads1, heads2, heads4, heads8, nosaa) or a timm model name (smt_small)")
    p.add_argument("--checkpoint", help="weights file for --model (official SMT release, ours, safetensors)")
    p.add_argument("--images", help="image folder (default: the shipped canvases for demo models, data/images else)")
    p.add_argument("--num-images", type=int, default=Settings.num_images, help="images the analyses average over")
    p.add_argument("--input-size", type=int, help="square input size (default the model's)")
    p.add_argument("--format", default="pdf,png", help="comma-separated: pdf, png, svg")
    p.add_argument("--venue", default="cvpr2024", help="style preset: cvpr2024 (also ICCV), eccv2024, neurips2024, "
                                                       "iclr2024, icml2024")
    p.add_argument("--only", help="comma-separated figure names (" + ", ".join(FIGURES) + ")")
    p.add_argument("--results", nargs="+", default=[], help="files from `python -m viz run` to draw erf, fourier, "
                                                             "distance and gradcam from")
    p.add_argument("--sam-block", default=Settings.sam_block, help="block of the sam_block figure")
    p.add_argument("--rows", type=int, default=Settings.rows, help="images shown in per-image figures")
    p.add_argument("--variants", help="comma-separated variants of the summary table (default: all registered)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="replace the requested figures' files in --out")
    p.add_argument("--debug", action="store_true", help="show tracebacks (of an input error or a failing figure)")


def settings_from_args(args) -> Settings:
    from ..style import VENUES

    if args.venue not in VENUES:
        raise ValueError(f"unknown venue {args.venue!r}; presets: {', '.join(VENUES)}")
    if args.num_images < 1:
        raise ValueError(f"--num-images {args.num_images}: use at least 1")
    variants = tuple(v.strip() for v in args.variants.split(",")) if args.variants else ()
    return Settings(num_images=args.num_images, rows=args.rows, sam_block=args.sam_block, seed=args.seed,
                    venue=args.venue, variants=variants)


def figure_set_from_args(args, results: Optional[list] = None) -> FigureSet:
    """The figure set the arguments describe; `results` as checked by `viz.validation.check_results` (read
    from `args.results` when not given)."""
    from ..run import load_result

    if results is None:
        results = [(p, load_result(p)) for p in args.results]
    settings = settings_from_args(args)

    def source() -> Source:
        return load_source(args.model, checkpoint=args.checkpoint, images=args.images, num_images=None,
                           input_size=args.input_size, seed=args.seed)

    return FigureSet(source, settings, results=results)


def run_command(args, command: str = "") -> int:
    from ..validation import check_figures_args, check_source, figures_needing_source

    names, formats, results = check_figures_args(args, FIGURES)  # every input, before any work
    out = Path(args.out)
    fs = figure_set_from_args(args, results)
    if figures_needing_source(names, results, FIGURES):  # the model and images once, before the first figure
        check_source(fs, names, checkpoint=args.checkpoint)
    outcomes = render(fs, out, names, formats=formats, command=command, progress=not args.no_progress,
                      debug=args.debug)
    print_outcomes(outcomes, out)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m viz figures ...` (argv without the word `figures`)."""
    import argparse

    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="python -m viz figures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    with cli_errors(args.debug) as code:
        return run_command(args, "python -m viz figures " + shlex.join(_without_out(argv)))
    return code[0]


def _without_out(argv: Sequence[str]) -> list[str]:
    """The arguments minus `--out DIR`, `--overwrite` and `--debug`: where the files go does not change what is
    in them (data files record the command, and the same inputs must give the same bytes in any folder)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--out":
            skip = True
        elif not a.startswith("--out=") and a not in ("--overwrite", "--debug"):
            out.append(a)
    return out
