"""One figure shown as a `widgets.Image`, drawn once by a `viz.plot` function and updated in place."""
from __future__ import annotations

import io
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

__all__ = ["View", "Panel", "caption", "png", "capture_background", "freeze_layout", "blit"]


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


class View:
    """A figure that `plot(data)` draws once (returning handles with `.figure` and `.dynamic` artists) and
    `update(handles, data)` changes in place (returning True when something outside `.dynamic` changed).

    Between updates only the dynamic artists are drawn over a cached background (blitting), so an updated view
    shows what a fresh one would (`tests/test_widgets.py`). The figure is built afresh by `plot` when `shape`
    (panel count, ...) changes; when `update` says that more than the dynamic artists changed (ticks, ranges,
    colour maps), the whole figure is drawn again within the layout of its first drawing (a fresh figure's
    layout could differ by a few pixels where tick labels changed width).
    The pixels go to the browser as PNG bytes in `image` (a `widgets.Image` with CSS class `css`).
    """

    def __init__(self, plot: Callable[[Any], Any], update: Callable[[Any, Any], bool], *, css: str,
                 dpi: int = 96, layout=None):
        import ipywidgets as W

        self.plot, self.update, self.dpi = plot, update, dpi
        self.handles: Any = None
        self.shape: Any = None
        self.key: Optional[Hashable] = None
        self._background = None
        self.image = W.Image(format="png", layout=layout or W.Layout(max_width="100%"))
        self.image.add_class("viz-view").add_class(css)
        self.renders = 0  # PNGs sent
        self.builds = 0   # figures drawn afresh (a new layout); the other renders blit the dynamic artists

    @property
    def figure(self):
        return None if self.handles is None else self.handles.figure

    def show(self, data: Any, shape: Any = None, key: Optional[Hashable] = None) -> None:
        """Show `data`. A `key` equal to the last call's (not None) means the same picture: nothing is drawn."""

        from ..style import screen

        if key is not None and key == self.key and shape == self.shape and self.handles is not None:
            return
        self.key = key
        with screen():
            if self.handles is None or shape != self.shape:
                self.handles = self.plot(data)
                self.builds += 1
                freeze_layout(self.handles.figure, self.dpi)
                self.shape = shape
                self._background = None
            elif self.update(self.handles, data):
                self._background = None
            self._background, rgba = blit(self.handles.figure, list(self.handles.dynamic), self._background)
            self.image.value = png(rgba)
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
    fig.canvas.draw()
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
