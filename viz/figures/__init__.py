"""The figure set: which analyses feed which plots, computed once per image set, written where.

    python -m viz figures --out figures/                          # demo model `main`, shipped canvases
    python -m viz figures --out figs --model smt_small --checkpoint smt_small.pth   # ImageNet model, data/images
    python -m viz figures --out figs --results erf.pt spectrum.pt distance.pt       # from `viz run` files

`FigureSet` holds the source (a model and an image set, loaded on first use) and caches every
analysis, so one captured forward pass (`smt_forward`) feeds every figure that needs taps, and the
figure command, `make demo`'s report, the widgets and the notebooks share one set of numbers;
`fs.with_settings(...)` gives a set with other settings that keeps every analysis those settings do not
change. Each figure is a function `FigureSet -> Rendered` (the matplotlib Figure, the arrays it plots, its
caption, the numbers the caption quotes), registered where it is defined by `@figure(name, width=...,
needs=...)` in `FIGURES`; a figure whose needs the set lacks (an SMT model, the trained ablation set) is
skipped with the reason. `render` writes every requested format plus `NAME.npz` (the arrays)
and `NAME.json` (provenance and numbers), and `index.html` over all of them. It is the only code in
the project that writes figure files, and it writes nothing outside `out`.

Data files are reproducible: the same inputs give byte-identical `.npz` and `.json` (fixed zip entry
times, sorted keys, no clock readings); PDF and SVG carry no creation date.
"""
from .catalog import FIGURES, draw
from .cli import add_arguments, main
from .figureset import FigureSet, Rendered, Settings, SkipFigure
from .registry import NEEDS, FigureSpec, figure
from .source import DATA_IMAGES, Source, demo_source, folder_source, load_source
from .writing import Outcome, print_outcomes, render, write_index, write_npz

__all__ = ["FIGURES", "FigureSpec", "NEEDS", "figure", "draw", "FigureSet", "Rendered", "Settings", "SkipFigure",
           "Source", "DATA_IMAGES", "demo_source", "folder_source", "load_source", "Outcome", "print_outcomes",
           "render", "write_index", "write_npz", "main", "add_arguments"]
