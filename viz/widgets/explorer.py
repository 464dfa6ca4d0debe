"""The model explorer: any tap of one captured forward pass, Grad-CAM and the top-5, for one model and an image set.

The widget wires controls to `viz.sessions.ExplorerSession` (captures, tap views, CAM views, top-5, cached)
and the views' data to the `viz.plot` functions the paper figures use.
"""
from __future__ import annotations

import html
import traceback
from typing import Any

from ..sessions import CamView, ExplorerSession, ImageSet, TapView
from .app import App
from .layout import controls_layout, row_layout, tagged, top5_html, top5_widget, views_layout
from .view import Panel, View, caption

__all__ = ["ModelExplorer"]


class ModelExplorer(App):
    """Any tap of one captured forward pass, Grad-CAM and the top-5, for one model and an image set.

    Args:
        model: A demo model name ("main", "heads2", ...) or an SMT model (eval mode).
        images: "canvases", "photos", or an `ImageSet`.
        debounce: Seconds to coalesce bursts of events (0: immediate).
        prefetch: Capture the next and previous images in the background after each update.
    """

    def __init__(self, model: Any = "main", images: Any = "canvases", *, debounce: float = 0.0,
                 prefetch: bool = True):
        import ipywidgets as W

        from ..analysis.cam import GRADIENT_METHODS

        super().__init__(debounce)
        if isinstance(model, str):
            from smt.demo import demo_model

            model = demo_model(model)
        if not isinstance(images, ImageSet) and images not in ("canvases", "photos"):
            raise ValueError(f"images {images!r}: choose 'canvases' or 'photos', or pass an ImageSet")
        imageset = images if isinstance(images, ImageSet) else (
            ImageSet.photos() if images == "photos" else ImageSet.canvases())
        self.tap: TapView | None = None  # what the views show now
        self.cam: CamView | None = None
        try:
            self.session = ExplorerSession(model, imageset)
        except ValueError as e:  # a model the explorer can not show: the widget says so, and shows nothing else
            self._set_error(e, "".join(traceback.format_exception(e)))
            self.session = None
            self.widget = W.VBox([self.status_box]).add_class("viz-app").add_class("viz-model-explorer")
            return
        self.compute = self.session.threads
        self.prefetch = prefetch
        stages = len(model.stages)
        style = {"description_width": "initial"}

        def c(w, name):
            return tagged(w, f"viz-control-{name}")

        self.w_index = c(W.IntSlider(value=0, min=0, max=len(imageset.display) - 1, description="image",
                                     continuous_update=False, style=style), "image")
        self.w_stage = c(W.Dropdown(options=[(f"stage {i + 1}", i) for i in range(stages)], value=0,
                                    description="stage", style=style), "stage")
        self.w_block = c(W.Dropdown(description="block", style=style), "block")
        self.w_tap = c(W.Dropdown(description="tap", style=style, layout=W.Layout(width="24em")), "tap")
        self.w_view = c(W.ToggleButtons(options=[("mean |activation|", "mean"), ("one channel", "channel")],
                                        value="mean", style={"button_width": "11em"}), "view")
        self.w_channel = c(W.IntSlider(value=0, min=0, max=0, description="channel", continuous_update=False,
                                       style=style), "channel")
        # the methods that work from one recorded backward pass, so a method or layer change runs no model
        self.w_method = c(W.Dropdown(options=list(GRADIENT_METHODS), value="GradCAM", description="Grad-CAM method",
                                     style=style), "method")
        names = self.session.class_names
        self.w_target = c(W.Dropdown(options=[("predicted class", -1)] + [(n, i) for i, n in enumerate(names)],
                                     value=-1, description="target class", style=style), "target")
        # the second-to-last stage by default: SMT-nano's 7x7 stage 3 localises best (`make demo`'s pointing game)
        self.w_cam_stage = c(W.Dropdown(options=[(f"stage {i + 1}", i) for i in range(stages)],
                                        value=max(stages - 2, 0), description="CAM layer", style=style), "cam-layer")
        self.w_top5 = top5_widget()
        self.w_readout = tagged(W.HTML(), "viz-readout")
        self.v_tap = View(self._plot_tap, self._update_tap_view, css="viz-view-tap", layout=W.Layout(width="300px"))
        self.v_cam = View(self._plot_cam, self._update_cam_view, css="viz-view-cam", layout=W.Layout(width="300px"))
        # the CAM's label (method, class, layer) is a line above the view: a title of changing width would move
        # the frozen layout of the figure
        self.w_cam_label = tagged(W.HTML(layout=W.Layout(width="300px")), "viz-cam-label")

        self.w_index.observe(self.on("image", self._update_all), "value")
        self.w_stage.observe(self.on("stage", self._stage_changed), "value")
        self.w_block.observe(self.on("block", self._block_changed), "value")
        self.w_tap.observe(self.on("tap", self._update_tap), "value")
        self.w_view.observe(self.on("view", self._update_tap), "value")
        self.w_channel.observe(self.on("channel", self._update_tap), "value")
        for name, w in (("method", self.w_method), ("target", self.w_target), ("CAM layer", self.w_cam_stage)):
            w.observe(self.on(name, self._update_cam), "value")

        controls = W.VBox([self.w_index, self.w_stage, self.w_block, self.w_tap, self.w_view, self.w_channel,
                           W.HTML("<b>Grad-CAM</b>"), self.w_method, self.w_target, self.w_cam_stage],
                          layout=controls_layout("400px"))
        cam = W.VBox([self.w_cam_label, self.v_cam.image], layout=views_layout())
        views = W.VBox([self.status_box, W.HBox([self.v_tap.image, cam, self.w_top5], layout=row_layout()),
                        self.w_readout], layout=views_layout())
        self.widget = W.HBox([tagged(controls, "viz-controls"), tagged(views, "viz-views")],
                             layout=W.Layout(align_items="flex-start"))
        self.widget.add_class("viz-app").add_class("viz-model-explorer")
        self.guard("init", self._start)

    @property
    def model(self):
        return self.session.model

    def _start(self) -> None:
        with self.quiet():
            self._fill_blocks()
        self._update_all()

    def _fill_blocks(self) -> None:
        from ..plot import block_label

        blocks = self.session.blocks(self.w_stage.value)
        self.w_block.options = [(f"{block_label(n)} ({k.upper()})", n) for k, n in blocks]
        self.w_block.value = blocks[0][1]
        self._fill_taps()

    def _fill_taps(self) -> None:
        taps = self.session.taps(self.w_block.value)
        self.w_tap.options = taps
        self.w_tap.value = taps[0][1]

    # -- handlers -------------------------------------------------------------------------------------------
    def _update_all(self) -> None:
        i = self.w_index.value
        self._update_tap()
        self._update_cam()
        self.w_top5.value = top5_html(self.session.top5(i, self.w_block.value), self.session.truth(i))
        if self.prefetch:
            self.session.prefetch([i + 1, i - 1], self.w_block.value, self.w_target.value)

    def _stage_changed(self) -> None:
        with self.quiet():
            self._fill_blocks()
        self._update_tap()

    def _block_changed(self) -> None:
        with self.quiet():
            self._fill_taps()
        self._update_tap()

    def _update_tap(self) -> None:
        tap = self.session.tap_view(self.w_index.value, self.w_block.value, self.w_tap.value, self.w_view.value,
                                    self.w_channel.value)
        with self.quiet():
            self.w_channel.max = tap.channels - 1
        self.tap = tap
        self.v_tap.show(tap)
        m = tap.values
        self.w_readout.value = html.escape(f"{tap.label}; map {m.shape[0]}x{m.shape[1]}, range "
                                           f"[{float(m.min()):.3g}, {float(m.max()):.3g}]")

    def _update_cam(self) -> None:
        self.cam = self.session.cam_view(self.w_index.value, self.w_method.value, self.w_target.value,
                                         self.w_cam_stage.value)
        self.v_cam.show(self.cam)
        self.w_cam_label.value = f"<div style='text-align:center'>{html.escape(self.cam.label)}</div>"

    # -- views: the viz.plot functions and the widget's caption ---------------------------------------------------
    @staticmethod
    def _scale(tap: TapView) -> str:
        from ..plot import display_relative

        return f"divided by max |value| = {display_relative(tap.values)[1]:.3g}"

    def _plot_tap(self, tap: TapView) -> Panel:
        from ..plot import new_figure, plot_relative_map

        art = plot_relative_map(tap.values, ax=new_figure(3.0, 3.0).add_subplot(), signed=tap.signed,
                                title=tap.label.split(": ")[-1])
        return Panel(art, [caption(art.figure, self._scale(tap))])

    def _update_tap_view(self, panel: Panel, tap: TapView) -> bool:
        from ..plot import update_relative_map

        changed = update_relative_map(panel.artists, tap.values, signed=tap.signed, title=tap.label.split(": ")[-1])
        panel.texts[0].set_text(self._scale(tap))
        return changed

    @staticmethod
    def _plot_cam(cam: CamView):
        from ..plot import new_figure, plot_cam

        return plot_cam(cam.image, cam.cam, ax=new_figure(3.0, 3.0).add_subplot())

    @staticmethod
    def _update_cam_view(artists, cam: CamView) -> bool:
        from ..plot import update_cam

        return update_cam(artists, cam.image, cam.cam)

    def controls(self) -> dict[str, Any]:
        """The controls by name (for scripts and benchmarks); none for a model the explorer can not show."""
        if self.session is None:
            return {}
        return {"image": self.w_index, "stage": self.w_stage, "block": self.w_block, "tap": self.w_tap,
                "view": self.w_view, "channel": self.w_channel, "method": self.w_method, "target": self.w_target,
                "CAM layer": self.w_cam_stage}
