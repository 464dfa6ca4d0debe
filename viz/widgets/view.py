"""One figure shown as a `widgets.Image`, drawn once by a `viz.plot` function and updated in place."""
from __future__ import annotations

import io
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

__all__ = ["View", "Drawing", "Panel", "caption", "png", "capture_background", "freeze_layout", "blit"]


def png(rgba: np.ndarray) -> bytes:
    """RGBA pixels as PNG bytes (zlib level 1: the browser decodes either, level 6 took 3-4x longer)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@dataclass
class Panel:
    """A plot function's artists plus the texts a widget adds to its figure (a caption, "masked" marks) and the
    widget's own notes about what the figure shows (`state`), kept here rather than on matplotlib objects."""
    artists: Any
    texts: list = field(default_factory=list)
    state: dict = field(default_factory=dict)

    @property
    def figure(self):
        return self.artists.figure

    @property
    def dynamic(self) -> list:
        return list(self.artists.dynamic) + self.texts


def caption(fig, text: str):
    """A figure's one small line under its panels (e.g. the maps' shared scale); made before the layout is
    frozen, so that the layout leaves room for it."""
    return fig.supxlabel(text, x=0.98, ha="right", fontsize="x-small", color="0.3")


class Drawing:
    """The pixels of a view: `plot(data)` draws a figure once per `shape` (returning handles with `.figure` and
    `.dynamic` artists), `update(handles, data)` changes it in place (True when something outside `.dynamic`
    changed: ticks, ranges, colour maps). Between updates only the dynamic artists are drawn over a cached
    background (blitting), within the layout of the figure's first drawing.

    The figures of the last `keep` shapes are kept, laid out, with their backgrounds: going back to a shape
    seen before (N = 4 after N = 8) updates its figure instead of laying out a new one (constrained layout
    is most of a new figure's cost). `prepare(figure)` runs on a new figure before its layout (e.g. to fit a
    width). The widget's `View` and the explorable's renderer both draw through this class.
    """

    def __init__(self, plot: Callable[[Any], Any], update: Callable[[Any, Any], bool], *, dpi: int = 96,
                 keep: int = 8, prepare: Optional[Callable[[Any], None]] = None):
        from ..cache import LRU

        self.plot, self.update, self.dpi, self.prepare = plot, update, dpi, prepare
        self._figures = LRU(keep)  # shape -> [handles, background]
        self.handles: Any = None
        self.shape: Any = None
        self.builds = 0   # figures drawn afresh (a new layout)
        self.reuses = 0   # a kept figure of an earlier shape updated

    def draw(self, data: Any, shape: Any = None) -> np.ndarray:
        """The RGBA pixels of `data` (an (H, W, 4) array owned by the figure's canvas: copy or encode it before
        the next draw)."""
        entry = self._figures.peek(shape)
        fresh = entry is None
        if fresh:
            handles = self.plot(data)
            self.builds += 1
            if self.prepare is not None:
                self.prepare(handles.figure)
            freeze_layout(handles.figure, self.dpi)
            entry = [handles, None]
            self._figures.put(shape, entry)
        else:
            self._figures.get(shape, lambda: entry)  # the most recently used now
            self.reuses += shape != self.shape
            if self.update(entry[0], data):
                entry[1] = None
        self.handles, self.shape = entry[0], shape
        entry[1], rgba = blit(entry[0].figure, list(entry[0].dynamic), entry[1])
        return rgba


class View:
    """A `Drawing` shown as a `widgets.Image` (PNG bytes, CSS class `css`): `show(data, shape)` draws `data`.

    `plot(data)` draws a new figure (for a `shape` not kept: panel count, ...), `update(handles, data)` changes
    one in place; an updated view shows what a fresh one would (`tests/test_widgets.py`).
    """

    def __init__(self, plot: Callable[[Any], Any], update: Callable[[Any, Any], bool], *, css: str,
                 dpi: int = 96, layout=None, keep: int = 8):
        import ipywidgets as W

        self.drawing = Drawing(plot, update, dpi=dpi, keep=keep)
        self.plot, self.update = plot, update
        self.key: Optional[Hashable] = None
        self.image = W.Image(format="png", layout=layout or W.Layout(max_width="100%"))
        self.image.add_class("viz-view").add_class(css)
        self.renders = 0  # PNGs sent

    @property
    def handles(self) -> Any:
        return self.drawing.handles

    @property
    def figure(self):
        return None if self.handles is None else self.handles.figure

    @property
    def builds(self) -> int:
        return self.drawing.builds

    def show(self, data: Any, shape: Any = None, key: Optional[Hashable] = None) -> None:
        """Show `data`. A `key` equal to the last call's (not None) means the same picture: nothing is drawn."""
        from ..style import screen

        if key is not None and key == self.key and shape == self.drawing.shape and self.handles is not None:
            return
        self.key = key
        with screen():
            self.image.value = png(self.drawing.draw(data, shape))
        self.renders += 1


def capture_background(fig, dynamic: list):
    """The figure drawn without its `dynamic` artists (`canvas.copy_from_bbox`), for blitting them over it; their
    visibility and the place of hidden titles are restored."""
    shown = [a.get_visible() for a in dynamic]
    # a hidden title has an empty extent, and the axes' draw moves it off the figure: keep its place
    places = [a.get_position() if hasattr(a, "get_position") and hasattr(a, "get_text") else None
              for a in dynamic]
    for a in dynamic:
        a.set_visible(False)
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)
    for a, v, p in zip(dynamic, shown, places):
        a.set_visible(v)
        if p is not None:
            a.set_position(p)
    return background


def freeze_layout(fig, dpi: float) -> None:
    """Give a new figure an Agg canvas at `dpi`, lay it out once (constrained layout), then freeze the positions
    so that later updates only redraw artists."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(dpi)
    FigureCanvasAgg(fig)
    engine = fig.get_layout_engine()
    if engine is not None:  # the positions a draw would compute, without rendering (the background draws next)
        engine.execute(fig)
    fig.set_layout_engine("none")


def blit(fig, dynamic: list, background=None):
    """Draw the `dynamic` artists over the figure's cached background (captured when None); returns
    (background, RGBA pixels as an array)."""
    if background is None:
        background = capture_background(fig, dynamic)
    fig.canvas.restore_region(background)
    for artist in dynamic:
        fig.draw_artist(artist)
    return background, np.asarray(fig.canvas.buffer_rgba())
