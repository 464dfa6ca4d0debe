"""JupyterLab apps (ipywidgets 8): the SAM playground and the model explorer.

    from viz.widgets import SAMPlayground, ModelExplorer
    SAMPlayground()          # the demo model `main` on the shipped canvases
    ModelExplorer()

Each class owns its controls and views. A control's handler recomputes only what that control
changes, from cached captures (`viz.playground.Session`), and updates the views in place: every view
is one matplotlib Figure built once with the same `viz.plot` functions the paper figures use; an
update sets its artists' data and sends the re-rendered PNG to a `widgets.Image`. A view is rebuilt
only when its panel count changes (a new head count). Errors never escape a handler: they are shown
in the widget's status line, and the widget stays usable. `debounce` (seconds) coalesces bursts of
events (a slider dragged with the keyboard) into one update when an event loop runs (as in Jupyter);
without one, updates are immediate.
"""
from __future__ import annotations

import asyncio
import html
import io
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Optional

import numpy as np
import torch

from .analysis.common import block_index
from .playground import Config, ImageSet, ModelResolver, Session, cached, default_kernels, load_image

__all__ = ["SAMPlayground", "ModelExplorer"]


def _png(rgba: np.ndarray) -> bytes:
    """RGBA pixels as PNG bytes (fast zlib level: the browser decodes either)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class _View:
    """One figure shown as a `widgets.Image`, updated in place.

    `build(data)` draws the figure once with the `viz.plot` functions; `refresh(fig, data)` sets the
    new data on its artists and returns the artists that change (images, lines, titles); it sets
    `fig._viz_redraw` when something static changed (an axis range) and the background must be drawn
    again. Between
    events only the changing artists are drawn over a cached background (blitting), and the pixels
    go to the browser as PNG bytes.
    """

    def __init__(self, build: Callable, refresh: Callable, *, dpi: int = 96, layout=None):
        import ipywidgets as W

        self.build, self.refresh, self.dpi = build, refresh, dpi
        self.fig = None
        self.shape = None
        self._background = None
        self._dynamic: list = []
        self._key = None
        self.image = W.Image(format="png", layout=layout or W.Layout(max_width="100%"))
        self.renders = 0

    def show(self, data: Any, shape: Any, key: Any = None) -> None:
        """Show `data`; `shape` (panel count, ...) decides when the figure is rebuilt; the same `key` object as
        the last call's (not None; compared by identity, and held so that it stays alive) means the same
        picture, and nothing is drawn."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        from .style import screen

        if key is not None and key is self._key and shape == self.shape and self.fig is not None:
            return
        self._key = key
        with screen():
            if self.fig is None or shape != self.shape:
                self.fig = self.build(data)
                self.fig.set_dpi(self.dpi)
                FigureCanvasAgg(self.fig)
                self._dynamic = list(self.refresh(self.fig, data))
                self.fig.canvas.draw()  # lay out once (constrained layout), then freeze the positions
                self.fig.set_layout_engine("none")
                self.shape = shape
                self._background = None
            else:
                self._dynamic = list(self.refresh(self.fig, data))
            if self._background is None or getattr(self.fig, "_viz_redraw", False):
                self.fig._viz_redraw = False
                self._capture_background()
            canvas = self.fig.canvas
            canvas.restore_region(self._background)
            for artist in self._dynamic:
                self.fig.draw_artist(artist)
            self.image.value = _png(np.asarray(canvas.buffer_rgba()))
        self.renders += 1

    def _capture_background(self) -> None:
        shown = [a.get_visible() for a in self._dynamic]
        for a in self._dynamic:
            a.set_visible(False)
        self.fig.canvas.draw()
        self._background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        for a, v in zip(self._dynamic, shown):
            a.set_visible(v)


def _set_images(axes, maps, *, scale: Optional[float] = None, signed: bool = False) -> float:
    """Show each map divided by one shared scale (max |value| by default) on the views' fixed [0, 1]
    ([-1, 1] when `signed`) colour range; returns the scale."""
    arrs = [np.asarray(m, dtype=np.float64) for m in maps]
    top = scale if scale is not None else max((float(np.abs(a).max()) for a in arrs), default=1.0)
    top = top if top > 0 else 1.0
    for ax, a in zip(axes, arrs):
        im = ax.images[0]
        im.set_data(a / top)
        im.set_clim(-1.0 if signed else 0.0, 1.0)
    return top


def _retitle(ax, text: str) -> None:
    """Set a title; titles are part of the cached background, so a changed one redraws it."""
    if ax.get_title() != text:
        ax.set_title(text)
        ax.figure._viz_redraw = True


def _masked_mark(ax, masked: bool):
    """A "masked" label over a head's panel, shown while the head is masked (drawn over the cached background,
    so toggling a mask redraws no title)."""
    t = getattr(ax, "_viz_masked", None)
    if t is None:
        t = ax.text(0.5, 0.5, "masked", transform=ax.transAxes, ha="center", va="center", fontsize="small",
                    color="white", bbox={"facecolor": "black", "alpha": 0.6, "lw": 0, "pad": 2})
        ax._viz_masked = t
    t.set_visible(masked)
    return t


def _image_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.images]


def _scale_text(fig, text: str):
    """The figure's one dynamic text, under its panels (the shared scale of its maps); made on the first
    refresh, before the layout, so that the layout leaves room for it."""
    t = getattr(fig, "_viz_scale_text", None)
    if t is None:
        t = fig.supxlabel(text, x=0.98, ha="right", fontsize="x-small", color="0.3")
        fig._viz_scale_text = t
    t.set_text(text)
    return t


def _top5_html(top5, truth: Optional[str]) -> str:
    """The top-5 table from (class name, probability) pairs, with the true class when known."""
    rows = "".join(f"<tr><td style='white-space:nowrap'>{html.escape(c)}</td>"
                   f"<td style='text-align:right'>{100 * p:.1f}%</td></tr>" for c, p in top5)
    said = f"<br>true class: {html.escape(truth)}" if truth is not None else ""
    return f"<b>top-5</b>{said}<table>{rows}</table>"


def _top5_widget():
    """The top-5 table: its own width (class names are not wrapped or cut), moved under the views by a
    narrow page rather than squeezed."""
    import ipywidgets as W

    return W.HTML(layout=W.Layout(min_width="12em", flex="0 0 auto", margin="0 0 0 0.5em"))


def _row_layout():
    """A row of views that wraps on a narrow page."""
    import ipywidgets as W

    return W.Layout(flex_flow="row wrap", align_items="flex-start")


def _controls_layout(width: str):
    """The controls column: a fixed width that a long line in the views column can not squeeze."""
    import ipywidgets as W

    return W.Layout(width=width, flex="0 0 auto")


def _views_layout():
    """The views column: children keep their own width (a flex column would stretch a narrower image, blurred)."""
    import ipywidgets as W

    return W.Layout(align_items="flex-start")


class _Base:
    """Shared parts: the status line, error handling, debouncing and latency records."""

    def __init__(self, debounce: float):
        import ipywidgets as W

        self.debounce = debounce
        self.status = W.HTML(value="")
        self.explanation = W.HTML(value="")
        self.latency: dict[str, list[float]] = {}
        self._pending: dict[str, Any] = {}
        self.last_error: Optional[str] = None

    def _say(self, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "#555"
        self.status.value = f"<span style='color:{color}'>{html.escape(text)}</span>" if text else ""

    def _guard(self, name: str, fn: Callable[[], None]) -> None:
        """Run an update; record its latency; show any error in the status line (the widget stays usable)."""
        t0 = time.perf_counter()
        try:
            fn()
            self.last_error = None
            self._say("")
        except Exception as e:
            self.last_error = f"{type(e).__name__}: {e}"
            self._say(f"{self._plain(e)}", error=True)
            self._traceback = traceback.format_exc()
        self.latency.setdefault(name, []).append(1000 * (time.perf_counter() - t0))

    @staticmethod
    def _plain(e: Exception) -> str:
        text = str(e).strip("'\"")
        return text[0].upper() + text[1:] if text else type(e).__name__

    def _on(self, name: str, fn: Callable[[], None]) -> Callable:
        """An `observe` handler for control `name` that runs `fn` (debounced when an event loop runs)."""
        def handler(change=None):
            if self._busy:
                return
            if self.debounce > 0:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    loop = None
                if loop is not None:
                    old = self._pending.pop(name, None)
                    if old is not None:
                        old[0].cancel()
                    self._pending[name] = (loop.call_later(self.debounce, lambda: self._run_pending(name)), fn)
                    return
            self._guard(name, fn)
        return handler

    def _run_pending(self, name: str) -> None:
        entry = self._pending.pop(name, None)
        if entry is not None:
            self._guard(name, entry[1])

    def flush(self) -> None:
        """Run the debounced updates that are still waiting, now (e.g. before reading `explanation_text` in
        the same notebook cell that set a control: the event loop does not run between a cell's lines)."""
        for name in list(self._pending):
            if name in self._pending:  # an update run here may have settled another one
                self._pending[name][0].cancel()
                self._run_pending(name)

    _busy = False


class SAMPlayground(_Base):
    """Slide SMT's modulation and see what it does: heads, kernels, expand ratio, SAA, masks.

    Args:
        model: "main" (the trained model and its ablation set), "random", or a checkpoint path.
        images: "canvases" (the shipped test canvases), "photos" (`data/images`), or an `ImageSet`.
        block: The SAM block shown first.
        seed: Seed of random initialisations.
        debounce: Seconds to coalesce bursts of events (0: immediate).
    """

    def __init__(self, model: str = "main", images: Any = "canvases", *, block: str = "stages.0.blocks.0",
                 seed: int = 0, debounce: float = 0.0):
        import ipywidgets as W

        from smt.data import CLASS_NAMES

        super().__init__(debounce)
        self.resolver = ModelResolver()
        self.session = Session(list(CLASS_NAMES))
        self.images = {"canvases": None, "photos": None, "upload": None}
        base = model if model in ("main", "random") else "checkpoint"
        self.cfg = Config(base=base, seed=seed, checkpoint=None if base != "checkpoint" else str(model))
        style = {"description_width": "initial"}
        self.w_model = W.Dropdown(options=[("trained (main + ablation set)", "main"), ("checkpoint file", "checkpoint"),
                                           ("random initialisation", "random")], value=base, description="model",
                                  style=style)
        self.w_path = W.Text(value=self.cfg.checkpoint or "", placeholder="path/to/checkpoint.pth",
                             description="file", style=style, continuous_update=False)
        self.w_seed = W.BoundedIntText(value=seed, min=0, max=2 ** 31 - 1, description="seed", style=style,
                                       layout=W.Layout(width="9em"))
        sources = [("shipped canvases", "canvases"), ("photos (data/images)", "photos"), ("upload", "upload")]
        self.w_source = W.Dropdown(options=sources, value=images if isinstance(images, str) else "canvases",
                                   description="images", style=style)
        if isinstance(images, ImageSet):
            self.images["canvases"] = images
        self.w_index = W.IntSlider(value=0, min=0, max=1, description="image", continuous_update=False, style=style)
        self.w_upload = W.FileUpload(accept="image/*", multiple=False, description="upload")
        self.w_block = W.Dropdown(description="SAM block", style=style, layout=W.Layout(width="98%"))
        self.w_heads = W.IntSlider(value=4, min=1, max=8, description="heads N", continuous_update=False, style=style)
        half = W.Layout(width="50%")  # two sliders share a row: without a width each keeps a few px of track
        self.w_first = W.IntSlider(value=3, min=1, max=15, step=2, description="first kernel", continuous_update=False,
                                   style=style, layout=half)
        self.w_step = W.IntSlider(value=2, min=0, max=6, step=2, description="kernel step", continuous_update=False,
                                  style=style, layout=half)
        self.w_kernels = W.Text(value="", placeholder="or a list: 3,5,7,9", description="kernels", style=style,
                                continuous_update=False)
        self.w_expand = W.Dropdown(options=[0.5, 1.0, 2.0, 4.0], value=2.0, description="expand ratio", style=style)
        self.w_saa = W.Checkbox(value=True, description="SAA", indent=False)
        self.w_masks = W.HBox([])
        self.w_readout = W.HTML()
        self.w_top5 = _top5_widget()
        self.v_overlay = _View(self._build_overlay, self._refresh_overlay, layout=W.Layout(width="200px"))
        self.v_heads = _View(self._build_heads, self._refresh_heads)
        self.v_fields = _View(self._build_fields, self._refresh_fields)
        self.v_saa = _View(self._build_saa, self._refresh_saa)
        self._view_data = None

        self.w_model.observe(self._on("model", self._model_changed), "value")
        self.w_path.observe(self._on("model", self._model_changed), "value")
        self.w_seed.observe(self._on("seed", self._model_changed), "value")
        self.w_source.observe(self._on("image source", self._source_changed), "value")
        self.w_index.observe(self._on("image", self._refresh_all), "value")
        self.w_upload.observe(self._on("upload", self._uploaded), "value")
        self.w_block.observe(self._on("block", self._block_changed), "value")
        self.w_heads.observe(self._on("heads", self._heads_changed), "value")
        for w in (self.w_first, self.w_step):
            w.observe(self._on("kernels", self._model_changed), "value")
        self.w_kernels.observe(self._on("kernels", self._model_changed), "value")
        self.w_expand.observe(self._on("expand ratio", self._model_changed), "value")
        self.w_saa.observe(self._on("SAA", self._model_changed), "value")

        controls = W.VBox([W.HBox([self.w_model, self.w_seed]), self.w_path,
                           W.HBox([self.w_source, self.w_upload]), self.w_index, self.w_block,
                           self.w_heads, W.HBox([self.w_first, self.w_step]), self.w_kernels,
                           W.HBox([self.w_expand, self.w_saa]), W.HTML("<b>mask heads</b> (zero them)"), self.w_masks],
                          layout=_controls_layout("430px"))
        views = W.VBox([self.explanation, self.status,
                        W.HBox([self.v_overlay.image, self.w_top5], layout=_row_layout()),
                        W.HTML("<b>MHMC heads</b>: mean |output| of each head (kernel in the title)"),
                        self.v_heads.image, W.HTML("<b>receptive field of each head</b> (gradient of its central "
                                                   "output w.r.t. the block input)"), self.v_fields.image,
                        W.HTML("<b>SAA</b>: input vs output (the modulator) and their spectra"), self.v_saa.image,
                        self.w_readout], layout=_views_layout())
        self.widget = W.HBox([controls, views], layout=W.Layout(align_items="flex-start"))
        self._guard("init", self._start)

    # -- ipywidgets display -------------------------------------------------------------------------------
    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # -- state ----------------------------------------------------------------------------------------------
    def _imageset(self) -> ImageSet:
        src = self.w_source.value
        if self.images[src] is None:
            if src == "canvases":
                self.images[src] = ImageSet.canvases()
            elif src == "photos":
                self.images[src] = ImageSet.photos()
            else:
                raise ValueError("no image uploaded yet: choose a PNG or JPEG file with the upload button")
        return self.images[src]

    def _requested(self) -> Config:
        heads = self.w_heads.value
        text = self.w_kernels.value.strip()
        if text:
            try:
                kernels = tuple(int(t) for t in text.replace(" ", ",").split(",") if t)
            except ValueError:
                raise ValueError(f"kernels {text!r}: write odd integers separated by commas, e.g. 3,5,7,9") from None
        else:
            kernels = tuple(self.w_first.value + self.w_step.value * h for h in range(heads))
        return replace(self.cfg, base=self.w_model.value, heads=heads, kernels=kernels,
                       expand_ratio=float(self.w_expand.value), saa=bool(self.w_saa.value),
                       seed=int(self.w_seed.value), checkpoint=self.w_path.value.strip() or None)

    def _start(self) -> None:
        self._busy = True
        try:
            self.w_index.max = max(0, len(self._imageset().display) - 1)
        finally:
            self._busy = False
        self._model_changed()

    def _set_block_options(self) -> None:
        from .analysis import sam_block_names
        from .plot import block_label

        names = sam_block_names(self.model)
        current = self.w_block.value
        self._busy = True
        try:
            self.w_block.options = [(f"{block_label(n)} ({n})", n) for n in names]
            self.w_block.value = current if current in names else names[0]
        finally:
            self._busy = False

    def _set_masks(self) -> None:
        import ipywidgets as W

        n = len(self.model.get_submodule(self.w_block.value).attn.mhmc.convs)
        if len(self.w_masks.children) != n:
            boxes = [W.ToggleButton(value=False, description=f"head {h + 1}", layout=W.Layout(width="5.5em"))
                     for h in range(n)]
            for b in boxes:
                b.observe(self._on("mask", self._refresh_all), "value")
            self.w_masks.children = boxes
        else:
            self._busy = True
            try:
                for b in self.w_masks.children:
                    b.value = False
            finally:
                self._busy = False

    def _masked(self) -> tuple[int, ...]:
        return tuple(h for h, b in enumerate(self.w_masks.children) if b.value)

    # -- handlers -------------------------------------------------------------------------------------------
    def _model_changed(self) -> None:
        cfg = self._requested()
        resolved = self.resolver.resolve(cfg)
        self.cfg, self.model, self.resolved = cfg, resolved.model, resolved
        if resolved.kind == "checkpoint":
            self._sync_controls_to_model()
        self._set_block_options()
        self._set_masks()
        self._refresh_all()

    def _sync_controls_to_model(self) -> None:
        stage = next(i for i, t in enumerate(self.model.stage_block_types) if "sam" in t)
        kernels = tuple(self.model.stage_kernel_sizes[stage])
        self._busy = True
        try:
            self.w_heads.value = len(kernels)
            self.w_kernels.value = ",".join(map(str, kernels))
        finally:
            self._busy = False

    def _heads_changed(self) -> None:
        n = self.w_heads.value
        self._busy = True
        try:
            if self.w_kernels.value.strip():  # an explicit list follows the head count with the default kernels
                self.w_kernels.value = ",".join(map(str, default_kernels(n)))
        finally:
            self._busy = False
        self._model_changed()

    def _source_changed(self) -> None:
        self._busy = True
        try:
            self.w_index.value = 0
            self.w_index.max = max(0, len(self._imageset().display) - 1)
        finally:
            self._busy = False
        self._refresh_all()

    def _uploaded(self) -> None:
        files = self.w_upload.value
        if not files:
            return
        f = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        content = f["content"] if isinstance(f, dict) else f.content
        name = f["name"] if isinstance(f, dict) else f.name
        self.images["upload"] = ImageSet(load_image(bytes(content))[None], [name])
        self._busy = True
        try:
            self.w_source.value = "upload"
            self.w_index.value, self.w_index.max = 0, 0
        finally:
            self._busy = False
        self._refresh_all()

    def _block_changed(self) -> None:
        self._set_masks()
        self._refresh_all()

    def _refresh_all(self) -> None:
        imgs = self._imageset()
        i = min(self.w_index.value, len(imgs.display) - 1)
        key = (self.w_source.value, i, imgs.names[i])
        x = imgs.model_input(i)
        block = self.w_block.value
        masked = self._masked()
        view = self.session.block_view(self.model, key, x, block, masked)
        self._view_data = (imgs.display[i], view)
        n = len(view.kernel_sizes)
        self.v_overlay.show(self._view_data, None)
        self.v_heads.show(view, n)
        # the crop follows the largest kernel; the fields depend on the model, the image and the block, not on masks
        self.v_fields.show(view, (n, max(view.kernel_sizes)), key=view.head_fields)
        self.v_saa.show(view, None)
        label = imgs.labels[i] if imgs.labels is not None else None
        names = self.session.class_names
        self.w_top5.value = _top5_html(view.top5, None if label is None else names[label])
        self.explanation_text = self._explain(masked)
        self.explanation.value = "<b>" + html.escape(self.explanation_text) + "</b>"
        self.w_readout.value = html.escape(
            f"{block}: N = {n}, kernels {'/'.join(map(str, view.kernel_sizes))}, expand ratio "
            f"{self.cfg.expand_ratio:g}, SAA {'on' if self.cfg.saa else 'off'}, masked heads "
            f"{[h + 1 for h in masked] or 'none'}; image {imgs.names[i]}")

    def _explain(self, masked: Sequence[int]) -> str:
        text = self.resolved.explanation
        if masked:
            unmasked = self.session.block_view(self.model, (self.w_source.value, self.w_index.value,
                                                            self._imageset().names[self.w_index.value]),
                                               self._imageset().model_input(self.w_index.value), self.w_block.value)
            masked_view = self._view_data[1]
            (c0, p0), (c1, p1) = unmasked.top5[0], masked_view.top5[0]
            text += (f". Masking head{'s' if len(masked) > 1 else ''} {', '.join(str(h + 1) for h in masked)} of "
                     f"{self.w_block.value}: top-1 {c0} {100 * p0:.1f}% → {c1} {100 * p1:.1f}%")
        return text

    # -- views ------------------------------------------------------------------------------------------------
    def _build_overlay(self, data):
        from .plot import new_figure, plot_overlay

        image, view = data
        fig = new_figure(2.2, 2.2)
        plot_overlay(image, view.modulator, ax=fig.add_subplot(), title="modulator over the image")
        return fig

    def _refresh_overlay(self, fig, data):
        import torch.nn.functional as F

        from .plot.cam import overlay

        image, view = data
        chw = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)
        h = F.interpolate(view.modulator[None, None].float(), size=chw.shape[-2:], mode="bilinear",
                          align_corners=False)[0, 0]
        h = (h - h.min()) / (h.max() - h.min()).clamp_min(1e-12)
        im = fig.axes[0].images[0]
        im.set_data(overlay(chw, h, alpha=0.55))
        return [im]

    def _build_heads(self, view):
        from .plot import plot_head_maps

        m = view.head_maps / view.head_maps.max().clamp_min(1e-12)
        return plot_head_maps(m, view.kernel_sizes, width=1.5 * len(view.kernel_sizes) + 1.0,
                              colorbar=r"mean $|$head$|$ / max")

    def _refresh_heads(self, fig, view):
        axes = _image_axes(fig)[:len(view.kernel_sizes)]
        top = _set_images(axes, view.head_maps)
        marks = []
        for h, (ax, k) in enumerate(zip(axes, view.kernel_sizes)):
            _retitle(ax, f"head {h + 1}: {k}$\\times${k}")
            marks.append(_masked_mark(ax, h in view.masked))
        caption = _scale_text(fig, f"maps divided by their shared maximum, {top:.3g}")
        return [ax.images[0] for ax in axes] + marks + [caption]

    def _build_fields(self, view):
        from .plot import plot_head_erf

        return plot_head_erf(view.head_fields, view.kernel_sizes, width=1.5 * len(view.kernel_sizes) + 1.0)

    def _refresh_fields(self, fig, view):
        from .plot.maps import centre_crop

        m = centre_crop(view.head_fields.numpy(), max(view.kernel_sizes) + 4)
        peak = m.reshape(m.shape[0], -1).max(1).reshape(-1, 1, 1)
        m = m / np.where(peak > 0, peak, 1)
        axes = _image_axes(fig)[:len(view.kernel_sizes)]
        _set_images(axes, m, scale=1.0)
        for h, (ax, k) in enumerate(zip(axes, view.kernel_sizes)):
            _retitle(ax, f"head {h + 1}: {k}$\\times${k}")
            ax.texts[0].set_text(f"{int((m[h] > 1e-6).sum())} pos.")
        return [ax.images[0] for ax in axes] + [ax.texts[0] for ax in axes]

    def _build_saa(self, view):
        from .plot import new_figure, plot_map, plot_saa_spectrum
        from .style import magnitude_norm

        fig = new_figure(7.0, 2.1)
        a, b, c = fig.subplots(1, 3, width_ratios=[1, 1, 1.6])
        norm = magnitude_norm([0.0, 1.0])
        top = float(max(view.saa_input.max(), view.modulator.max())) or 1.0
        plot_map(view.saa_input / top, ax=a, norm=norm, title="mean |SAA input|")
        plot_map(view.modulator / top, ax=b, norm=norm, title="mean |modulator|", colorbar="/ max of both")
        plot_saa_spectrum(view.spectrum_before, view.spectrum_after, ax=c)
        return fig

    def _refresh_saa(self, fig, view):
        a, b = _image_axes(fig)[:2]
        top = _set_images([a, b], [view.saa_input, view.modulator])
        c = [ax for ax in fig.axes if ax.get_lines()][0]
        lines = c.get_lines()[:2]
        for line, curve in zip(lines, (view.spectrum_before, view.spectrum_after)):
            line.set_data(curve.freq.numpy(), curve.value.numpy())
        lo = min(float(curve.value.min()) for curve in (view.spectrum_before, view.spectrum_after))
        caption = _scale_text(fig, f"maps divided by their shared maximum, {top:.3g}")
        # One amplitude range per model, widened (never narrowed) as blocks, images and masks need it: curves
        # of different blocks compare by eye, and a mask moves the curve, not the axis.
        model = (self.resolved.kind, self.resolved.name)
        if getattr(c, "_viz_model", None) != model or lo < c.get_ylim()[0]:
            c.set_ylim(lo - 0.1 * abs(lo) - 0.1, 0.3)
            c._viz_model = model
            fig._viz_redraw = True
        return [a.images[0], b.images[0], *lines, caption]

    # -- programmatic driving (benchmarks, tests) -------------------------------------------------------------
    def controls(self) -> dict[str, Any]:
        """The controls by name (for scripts: `w.controls()["heads"].value = 2`)."""
        return {"model": self.w_model, "file": self.w_path, "seed": self.w_seed, "source": self.w_source,
                "image": self.w_index, "upload": self.w_upload, "block": self.w_block, "heads": self.w_heads,
                "first kernel": self.w_first, "kernel step": self.w_step, "kernels": self.w_kernels,
                "expand ratio": self.w_expand, "saa": self.w_saa, "masks": list(self.w_masks.children)}


class ModelExplorer(_Base):
    """Any tap of one captured forward pass, Grad-CAM and the top-5, for one model and an image set.

    Args:
        model: A demo model name ("main", "heads2", ...) or an SMT model (eval mode).
        images: "canvases", "photos", or an `ImageSet`.
        debounce: Seconds to coalesce bursts of events (0: immediate).
    """

    def __init__(self, model: Any = "main", images: Any = "canvases", *, debounce: float = 0.0):
        import ipywidgets as W

        from smt.data import CLASS_NAMES

        from .analysis.cam import GRADIENT_METHODS

        super().__init__(debounce)
        if isinstance(model, str):
            from smt.demo import demo_model

            model = demo_model(model)
        self.model = model
        self.class_names = list(CLASS_NAMES) if getattr(model, "num_classes", 10) == 10 else [
            f"class {i}" for i in range(model.num_classes)]
        self.imageset = images if isinstance(images, ImageSet) else (
            ImageSet.photos() if images == "photos" else ImageSet.canvases())
        self._captures = OrderedDict()   # (image, block) -> one forward pass's taps (least recently used dropped)
        self._gradients = OrderedDict()  # (image, target) -> every stage's activations and gradients
        style = {"description_width": "initial"}
        self.w_index = W.IntSlider(value=0, min=0, max=len(self.imageset.display) - 1, description="image",
                                   continuous_update=False, style=style)
        self.w_stage = W.Dropdown(options=[(f"stage {i + 1}", i) for i in range(len(model.stages))], value=0,
                                  description="stage", style=style)
        self.w_block = W.Dropdown(description="block", style=style)
        self.w_tap = W.Dropdown(description="tap", style=style, layout=W.Layout(width="24em"))
        self.w_view = W.ToggleButtons(options=[("mean |activation|", "mean"), ("one channel", "channel")],
                                      value="mean", style={"button_width": "11em"})
        self.w_channel = W.IntSlider(value=0, min=0, max=0, description="channel", continuous_update=False,
                                     style=style)
        # the methods that work from one recorded backward pass, so a method or layer change runs no model
        self.w_method = W.Dropdown(options=list(GRADIENT_METHODS), value="GradCAM", description="Grad-CAM method",
                                   style=style)
        self.w_target = W.Dropdown(options=[("predicted class", -1)] + [(c, i) for i, c in enumerate(self.class_names)],
                                   value=-1, description="target class", style=style)
        # the second-to-last stage by default: SMT-nano's 7x7 stage 3 localises best (`make demo`'s pointing game)
        self.w_cam_stage = W.Dropdown(options=[(f"stage {i + 1}", i) for i in range(len(model.stages))],
                                      value=max(len(model.stages) - 2, 0), description="CAM layer", style=style)
        self.w_top5 = _top5_widget()
        self.w_readout = W.HTML()
        self.v_tap = _View(self._build_tap, self._refresh_tap, layout=W.Layout(width="300px"))
        self.v_cam = _View(self._build_cam, self._refresh_cam, layout=W.Layout(width="300px"))

        self.w_index.observe(self._on("image", self._update_all), "value")
        self.w_stage.observe(self._on("stage", self._stage_changed), "value")
        self.w_block.observe(self._on("block", self._block_changed), "value")
        self.w_tap.observe(self._on("tap", self._tap_changed), "value")
        self.w_view.observe(self._on("view", self._update_tap), "value")
        self.w_channel.observe(self._on("channel", self._update_tap), "value")
        for name, w in (("method", self.w_method), ("target", self.w_target), ("CAM layer", self.w_cam_stage)):
            w.observe(self._on(name, self._update_cam), "value")

        controls = W.VBox([self.w_index, self.w_stage, self.w_block, self.w_tap, self.w_view, self.w_channel,
                           W.HTML("<b>Grad-CAM</b>"), self.w_method, self.w_target, self.w_cam_stage],
                          layout=_controls_layout("400px"))
        views = W.VBox([self.status, W.HBox([self.v_tap.image, self.v_cam.image, self.w_top5], layout=_row_layout()),
                        self.w_readout],
                       layout=_views_layout())
        self.widget = W.HBox([controls, views], layout=W.Layout(align_items="flex-start"))
        self._guard("init", self._start)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def _start(self) -> None:
        self._busy = True
        try:
            self._fill_blocks()
        finally:
            self._busy = False
        self._update_all()

    # -- capture --------------------------------------------------------------------------------------------
    def _capture(self, i: int, block: str):
        """The taps, output and stage outputs of `block` for image i (one forward pass, cached; other blocks run
        unhooked)."""
        def run():
            from .analysis import smt_forward
            from .capture import capture

            x = self.imageset.model_input(i)
            stage, j = block_index(block)
            sam = self.model.stage_block_types[stage][j] == "sam"
            extra = [block] + ([] if sam else [f"{block}.attn.attn_weights"])
            with capture(self.model, extra) as cap:
                fwd = smt_forward(self.model, x, [block] if sam else [], block_outputs=False)
            return fwd, {n: cap[n] for n in extra}
        return cached(self._captures, (i, block), run)

    def _fill_blocks(self) -> None:
        from .plot import block_label

        s = self.w_stage.value
        names = [f"stages.{s}.blocks.{j}" for j in range(len(self.model.stage_block_types[s]))]
        kinds = self.model.stage_block_types[s]
        self.w_block.options = [(f"{block_label(n)} ({k.upper()})", n) for n, k in zip(names, kinds)]
        self.w_block.value = names[0]
        self._fill_taps()

    def _fill_taps(self) -> None:
        b = self.w_block.value
        stage, j = block_index(b)
        kind = self.model.stage_block_types[stage][j]
        taps = [("block output", "output"), ("stage output", "stage")]
        if kind == "sam":
            n = len(self.model.get_submodule(b).attn.mhmc.convs)
            taps = [(f"attn.mhmc.heads.{h}", f"heads.{h}") for h in range(n)] + [
                ("attn.saa_input", "saa_input"), ("attn.modulator", "modulator")] + taps
        else:
            taps = [("attn.attn_weights (centre query)", "attn_weights")] + taps
        self.w_tap.options = taps
        self.w_tap.value = taps[0][1]

    def _tensor(self) -> tuple[torch.Tensor, str]:
        """The selected tap of the current image as (channels, H, W) and its description."""
        from .analysis import tokens_to_map

        b, tap = self.w_block.value, self.w_tap.value
        fwd, extra = self._capture(self.w_index.value, b)
        stage = block_index(b)[0]
        if tap == "stage":
            return fwd.stage_outputs[stage][0], f"stages.{stage} output"
        if tap == "output":
            return tokens_to_map(extra[b], fwd.grid(b))[0], f"{b} output"
        if tap == "attn_weights":
            a = extra[f"{b}.attn.attn_weights"][0]  # (heads, N, N)
            h, w = fwd.grid(b)
            q = (h // 2) * w + w // 2
            return a[:, q, :].reshape(a.shape[0], h, w), f"{b}.attn.attn_weights, query at the centre"
        f = fwd.sam[b]
        if tap.startswith("heads."):
            return f.heads[int(tap.removeprefix("heads."))][0], f"{b}.attn.mhmc.{tap}"
        return (f.saa_input if tap == "saa_input" else f.modulator)[0], f"{b}.attn.{tap}"

    # -- handlers -------------------------------------------------------------------------------------------
    def _update_all(self) -> None:
        self._update_tap()
        self._update_cam()
        fwd, _ = self._capture(self.w_index.value, self.w_block.value)
        probs = torch.softmax(fwd.logits[0].double(), 0)
        top = torch.topk(probs, min(5, probs.numel()))
        label = self.imageset.labels[self.w_index.value] if self.imageset.labels is not None else None
        self.w_top5.value = _top5_html([(self.class_names[int(c)], float(p)) for c, p in zip(top.indices, top.values)],
                                       None if label is None else self.class_names[label])

    def _stage_changed(self) -> None:
        self._busy = True
        try:
            self._fill_blocks()
        finally:
            self._busy = False
        self._update_tap()

    def _block_changed(self) -> None:
        self._busy = True
        try:
            self._fill_taps()
        finally:
            self._busy = False
        self._update_tap()

    def _tap_changed(self) -> None:
        self._update_tap()

    def _update_tap(self) -> None:
        t, what = self._tensor()
        self._busy = True
        try:
            self.w_channel.max = t.shape[0] - 1
        finally:
            self._busy = False
        if self.w_view.value == "mean":
            m = t.abs().mean(0) if self.w_tap.value != "attn_weights" else t.mean(0)
            label = f"{what}: mean over {t.shape[0]} {'heads' if self.w_tap.value == 'attn_weights' else 'channels'}"
            signed = False
        else:
            c = min(self.w_channel.value, t.shape[0] - 1)
            m = t[c]
            label = f"{what}: {'head' if self.w_tap.value == 'attn_weights' else 'channel'} {c}"
            signed = self.w_tap.value != "attn_weights"
        self._tap = (m.double(), signed, label)
        self.v_tap.show(self._tap, None)
        self.w_readout.value = html.escape(f"{label}; map {m.shape[0]}x{m.shape[1]}, range "
                                           f"[{float(m.min()):.3g}, {float(m.max()):.3g}]")

    def _update_cam(self) -> None:
        from .analysis.cam import cam_from_gradients, layer_gradients

        i = self.w_index.value
        fwd, _ = self._capture(i, self.w_block.value)
        target = self.w_target.value if self.w_target.value >= 0 else int(fwd.logits[0].argmax())
        stages = [f"stages.{s}" for s in range(len(self.model.stages))]
        recorded = cached(self._gradients, (i, target),  # one backward pass serves every method and layer
                          lambda: layer_gradients(self.model, self.imageset.model_input(i), [target], stages))
        acts, grads = recorded.layers[f"stages.{self.w_cam_stage.value}"]
        cam = cam_from_gradients(self.w_method.value, acts, grads)[0]
        self._cam = (self.imageset.display[i], cam,
                     f"{self.w_method.value}, {self.class_names[target]}, stage {self.w_cam_stage.value + 1}")
        self.v_cam.show(self._cam, None)

    # -- views -------------------------------------------------------------------------------------------------
    def _build_tap(self, data):
        from .plot import new_figure, plot_map
        from .style import magnitude_norm, signed_norm

        m, signed, label = data
        fig = new_figure(3.0, 3.0)
        norm = signed_norm([-1.0, 1.0]) if signed else magnitude_norm([0.0, 1.0])
        plot_map(m / (m.abs().max().clamp_min(1e-12)), ax=fig.add_subplot(), signed=signed, norm=norm,
                 title=label.split(": ")[-1], colorbar="/ max |value|")
        return fig

    def _refresh_tap(self, fig, data):
        from .style import MAGNITUDE_CMAP, SIGNED_CMAP

        m, signed, label = data
        ax = _image_axes(fig)[0]
        im = ax.images[0]
        h, w = m.shape
        if im.get_array().shape != (h, w):  # another grid: the same axes, new extent
            im.set_extent((-0.5, w - 0.5, h - 0.5, -0.5))
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
            fig._viz_redraw = True  # the axes' box may change with the aspect
        cmap = SIGNED_CMAP if signed else MAGNITUDE_CMAP
        if im.get_cmap().name != cmap:  # signed <-> magnitude: the colorbar changes, so the background too
            im.set_cmap(cmap)
            fig._viz_redraw = True
        top = _set_images([ax], [m.numpy()], signed=signed)
        _retitle(ax, label.split(": ")[-1])
        return [im, _scale_text(fig, f"divided by max |value| = {top:.3g}")]

    def _build_cam(self, data):
        from .plot import new_figure, plot_cam

        image, cam, label = data
        fig = new_figure(3.0, 3.0)
        plot_cam(image, cam, ax=fig.add_subplot(), title=label)
        return fig

    def _refresh_cam(self, fig, data):
        from .analysis.cam import cam_to_image
        from .plot.cam import overlay

        image, cam, label = data
        ax = fig.axes[0]
        h, w = image.shape[:2]
        raw = cam.float()[None]
        heat = cam_to_image(raw, (h, w))[0]
        up = cam_to_image(raw, (h, w), relu=False, normalize=False)[0]
        chw = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)
        ax.images[0].set_data(overlay(chw, heat, alpha=0.5))
        idx = int(up.flatten().argmax())
        marker = ax.get_lines()[0]
        marker.set_data([idx % w], [idx // w])
        _retitle(ax, label)
        return [ax.images[0], marker]

    def controls(self) -> dict[str, Any]:
        """The controls by name (for scripts and benchmarks)."""
        return {"image": self.w_index, "stage": self.w_stage, "block": self.w_block, "tap": self.w_tap,
                "view": self.w_view, "channel": self.w_channel, "method": self.w_method, "target": self.w_target,
                "CAM layer": self.w_cam_stage}
