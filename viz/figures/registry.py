"""The figure registry: `@figure(...)` records each figure's spec where the figure is defined; what a figure
needs (an SMT model, the trained ablation set, ...) is checked here, once, before the figure is drawn."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

from smt.demo import ABLATION_SEEDS

if TYPE_CHECKING:
    from .figureset import FigureSet, Rendered

__all__ = ["FigureSpec", "Need", "NEEDS", "FIGURES", "figure"]

#: The models of the trained ablation set (seed 0 of each configuration of `smt.demo.ABLATION_SEEDS`), in the
#: ablation figure's order.
ABLATION_SET = tuple(ABLATION_SEEDS)


@dataclass(frozen=True)
class Need:
    """Something a figure needs: what it is (in words), and a check that says why a figure set lacks it.

    Attributes:
        what: The need in words ("an SMT model"), quoted in the skip reason.
        lacks: `FigureSet -> None` when the set has it, else a short reason ("main is a VisionTransformer").
    """
    what: str
    lacks: Callable[[FigureSet], Optional[str]]


def _lacks_smt(fs: FigureSet) -> Optional[str]:
    return None if fs.is_smt else f"{fs.source.name} is a {type(fs.model).__name__}"


def _lacks_saa(fs: FigureSet) -> Optional[str]:
    return None if fs.saa_blocks else f"{fs.source.name} has no SAM block with SAA (SAA is off)"


def _lacks_ablation_set(fs: FigureSet) -> Optional[str]:
    from smt.demo import DEMO_MODELS, demo_weights_path

    missing = [n for n in ABLATION_SET if n not in DEMO_MODELS or not demo_weights_path(n).is_file()]
    return f"missing {', '.join(missing)} in data/demo" if missing else None


def _lacks_demo_canvases(fs: FigureSet) -> Optional[str]:
    if fs.source.demo is not None and fs.source.labels is not None:
        return None
    return ("the ablation set is trained on Scaled Fashion-MNIST (run without --images and with a demo --model); "
            f"the images here are {fs.source.image_source}")


#: Every need a figure may name: name -> Need.
NEEDS: dict[str, Need] = {
    "smt": Need("an SMT model", _lacks_smt),
    "saa": Need("a SAM block with SAA", _lacks_saa),
    "ablation_set": Need(f"the trained ablation set ({', '.join(ABLATION_SET)})", _lacks_ablation_set),
    "demo_canvases": Need("the shipped canvases", _lacks_demo_canvases),
}


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the set.

    Attributes:
        name: The figure's name (its files are `NAME.pdf`, `NAME.npz`, ...).
        draw: The figure function, `FigureSet -> Rendered`.
        width: "column" or "full" (the venue's column or text width).
        needs: Names in `NEEDS`, checked in order before the figure is drawn.
        results: The `viz run` analysis that can stand in for the figure's own (`erf`, `spectrum`, ...): with
            such a record in the set's results, the figure draws from it and needs nothing.
        description: One line saying what the figure shows (the first line of the function's docstring).
    """
    name: str
    draw: Callable[[FigureSet], Rendered]
    width: str
    needs: tuple[str, ...] = ()
    results: Optional[str] = None
    description: str = ""

    def unmet(self, fs: FigureSet) -> Optional[str]:
        """Why `fs` cannot make this figure (the first unmet need, in words), or None when it can."""
        if self.results is not None and fs.result_record(self.results):
            return None
        for name in self.needs:
            need = NEEDS[name]
            reason = need.lacks(fs)
            if reason is not None:
                return f"{self.name} needs {need.what}; {reason}"
        return None


#: The figure set, in the order the figures are defined: name -> FigureSpec (filled by `@figure`).
FIGURES: dict[str, FigureSpec] = {}


def figure(name: str, *, width: str, needs: Union[str, tuple[str, ...]] = (), results: Optional[str] = None
           ) -> Callable[[Callable[[FigureSet], Rendered]], Callable[[FigureSet], Rendered]]:
    """Register the decorated function `FigureSet -> Rendered` as figure `name` (the function is returned as is).

    Args:
        name: The figure's name; unique.
        width: "column" or "full".
        needs: A name of `NEEDS`, or several (checked in order).
        results: The `viz run` analysis whose record, when given, replaces the figure's needs.
    """
    needs = (needs,) if isinstance(needs, str) else tuple(needs)
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise ValueError(f"figure {name!r} needs {unknown}, which are not known needs; known: {', '.join(NEEDS)}")
    if width not in ("column", "full"):
        raise ValueError(f"figure {name!r}: width {width!r}; use 'column' or 'full'")
    if name in FIGURES:
        raise ValueError(f"figure {name!r} is registered twice (by {FIGURES[name].draw.__qualname__})")

    def register(fn: Callable[[FigureSet], Rendered]) -> Callable[[FigureSet], Rendered]:
        doc = (fn.__doc__ or "").strip().splitlines()
        FIGURES[name] = FigureSpec(name, fn, width, needs, results, doc[0] if doc else "")
        return fn

    return register
