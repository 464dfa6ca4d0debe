"""The SAM playground: slide SMT's modulation (heads, kernels, expand ratio, SAA, masks) and see what it does.

The widget wires controls to `viz.sessions` (`ModelResolver` decides the model, `SAMSession` computes the
block's view, cached) and the view's data to the `viz.plot` functions the paper figures use.
"""
from __future__ import annotations

import functools
import hashlib
import html
import traceback
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Optional

from ..cache import LRU
from ..sessions import BlockView, Config, ImageSet, ModelResolver, SAMSession, default_kernels, explain, load_image
from .app import App
from .layout import controls_layout, row_layout, tagged, top5_html, top5_widget, views_layout
from .view import Panel, View, caption

__all__ = ["SAMPlayground", "plot_overlay_view", "update_overlay_view", "plot_heads_view", "update_heads_view",
           "plot_fields_view", "update_fields_view", "plot_saa_view", "update_saa_view"]


# -- the playground's four views: a `viz.plot` display/plot/update triple each, with the playground's captions and
# "masked" marks. The widget shows them through `View`; the offline explorable (`viz.explorable`) rasterises them.
def plot_overlay_view(data: tuple[Any, BlockView]):
    """The modulator over the image; `data` is (image shown, view)."""
    from ..plot import new_figure, plot_overlay

    image, view = data
    return plot_overlay(image, view.modulator, ax=new_figure(2.2, 2.2).add_subplot(), title="modulator over the image")


def update_overlay_view(artists, data: tuple[Any, BlockView]) -> bool:
    from ..plot import update_overlay

    image, view = data
    return update_overlay(artists, image, view.modulator)


def _heads_caption(view: BlockView) -> str:
    from ..plot import display_head_maps

    return f"maps divided by their shared maximum, {display_head_maps(view.head_maps)[1]:.3g}"


def plot_heads_view(view: BlockView) -> Panel:
    """Each head's mean |output| (kernel in the title), a "masked" mark on masked heads, the shared scale."""
    from ..plot import plot_head_maps

    art = plot_head_maps(view.head_maps, view.kernel_sizes, width=1.5 * len(view.kernel_sizes) + 1.0)
    marks = [ax.text(0.5, 0.5, "masked", transform=ax.transAxes, ha="center", va="center", fontsize="small",
                     color="white", bbox={"facecolor": "black", "alpha": 0.6, "lw": 0, "pad": 2},
                     visible=h in view.masked) for h, ax in enumerate(art.axes)]
    return Panel(art, marks + [caption(art.figure, _heads_caption(view))])


def update_heads_view(panel: Panel, view: BlockView) -> bool:
    from ..plot import update_head_maps

    changed = update_head_maps(panel.artists, view.head_maps, view.kernel_sizes)
    for h, mark in enumerate(panel.texts[:-1]):
        mark.set_visible(h in view.masked)
    panel.texts[-1].set_text(_heads_caption(view))
    return changed


def plot_fields_view(view: BlockView):
    """Each head's receptive field (cropped to the largest kernel)."""
    from ..plot import plot_head_erf

    return plot_head_erf(view.head_fields, view.kernel_sizes, width=1.5 * len(view.kernel_sizes) + 1.0)


def update_fields_view(artists, view: BlockView) -> bool:
    from ..plot import update_head_erf

    return update_head_erf(artists, view.head_fields, view.kernel_sizes)


def _saa_caption(view: BlockView) -> str:
    from ..plot import display_saa_maps

    return f"maps divided by their shared maximum, {display_saa_maps(view.saa_input, view.modulator)[2]:.3g}"


def plot_saa_view(view: BlockView, ylim: tuple[float, float]) -> Panel:
    """SAA's input and output (the modulator) and their spectra, on the amplitude range `ylim`."""
    from ..plot import plot_saa_maps

    art = plot_saa_maps(view.saa_input, view.modulator, view.spectrum_before, view.spectrum_after, ylim=ylim)
    return Panel(art, [caption(art.figure, _saa_caption(view))])


def update_saa_view(panel: Panel, view: BlockView, ylim: tuple[float, float]) -> bool:
    from ..plot import update_saa_maps

    changed = update_saa_maps(panel.artists, view.saa_input, view.modulator, view.spectrum_before,
                              view.spectrum_after, ylim=ylim)
    panel.texts[0].set_text(_saa_caption(view))
    return changed


class SAMPlayground(App):
    """Slide SMT's modulation and see what it does: heads, kernels, expand ratio, SAA, masks.

    Args:
        model: "main" (the trained demo model and its ablation set), "random", or your own model: an SMT checkpoint
            path (any variant; the architecture is read from the weights, the release files included), a timm
            name or an SMT model object (`smt.resolve.resolve_model`). Your model runs at its own input size
            with its own class names.
        images: "canvases" (the shipped test canvases), "photos" (`data/images`), a folder of your images (sorted;
            the first `num_images`), or an `ImageSet`.
        block: The SAM block shown first.
        seed: Seed of random initialisations.
        debounce: Seconds to coalesce bursts of events (0: immediate).
        prefetch: Compute the next and previous images' captures in the background after each update.
        ablations: A folder of your own checkpoints (e.g. N = 2, 4, 8; SAA off): a head count or SAA change
            switches to the file that has it, as the demo model switches within its ablation set. Without it,
            such a change builds the architecture at random initialisation (`seed`).
        labels: A labels file (one class name per line) or list of names for your model.
        device: Where models run (default CUDA when available, else the CPU).
        num_images: How many images of a folder are shown (the first, sorted by path).
        input_size: Your model's input size (default its own, e.g. 224 for smt_tiny).
    """

    def __init__(self, model: str = "main", images: Any = "canvases", *, block: str = "stages.0.blocks.0",
                 seed: int = 0, debounce: float = 0.0, prefetch: bool = True, ablations: Any = None,
                 labels: Any = None, device: Any = None, num_images: int = 16, input_size: Optional[int] = None):
        import os

        import ipywidgets as W
        from torch import nn

        from smt.data import CLASS_NAMES

        super().__init__(debounce)
        self.resolver = ModelResolver(device=device, ablations=ablations, labels=labels, input_size=input_size)
        self.session = SAMSession(list(CLASS_NAMES))
        self.compute = self.session.threads
        self.prefetch = prefetch
        self.num_images = num_images
        self._sets = LRU(8)  # (source, input size, upload digest) -> ImageSet
        self._upload: Optional[tuple[str, bytes, str]] = None  # (name, bytes, digest) of the uploaded image
        folder = os.fspath(images) if isinstance(images, (str, os.PathLike)) and images not in (
            "canvases", "photos", "upload") and os.path.isdir(images) else None
        self.folder = folder
        model = self.resolver.add_object(model) if isinstance(model, nn.Module) else os.fspath(model)
        base = model if model in ("main", "random") else "checkpoint"
        self.cfg = Config(base=base, seed=seed, checkpoint=None if base != "checkpoint" else str(model))
        self.resolved = None
        self.view_data: tuple | None = None  # (image shown, BlockView) of the last update
        self.explanation_text = ""
        self._saa_range: tuple = (None, None)  # (model key, amplitude range of the SAA spectrum)
        style = {"description_width": "initial"}

        def c(w, name):
            return tagged(w, f"viz-control-{name}")

        models = [("trained (main + ablation set)", "main"), ("your model (file, timm name, object)",
                                                                  "checkpoint"), ("random initialisation", "random")]
        self.w_model = c(W.Dropdown(options=models, value=base, description="model", style=style), "model")
        self.w_path = c(W.Text(value=self.cfg.checkpoint or "", placeholder="path/to/checkpoint.pth or smt_tiny",
                               description="file", style=style, continuous_update=False), "file")
        # any integer is shown as given (a bad seed is an error in the widget, not a silent clamp)
        self.w_seed = c(W.IntText(value=seed, description="seed", style=style, layout=W.Layout(width="9em")), "seed")
        sources = [("shipped canvases", "canvases"), ("photos (data/images)", "photos"), ("upload", "upload")]
        if folder is not None:
            sources.insert(0, (f"folder {os.path.basename(folder.rstrip(os.sep)) or folder}", "folder"))
        known = isinstance(images, ImageSet) or folder is not None or images in dict(sources).values()
        first = "folder" if folder is not None and known else images if isinstance(images, str) and known else (
            "canvases")
        self.w_source = c(W.Dropdown(options=sources, value=first, description="images", style=style), "source")
        self._given = images if isinstance(images, ImageSet) else None  # shown as "canvases", at its own size
        self.w_index = c(W.IntSlider(value=0, min=0, max=1, description="image", continuous_update=False,
                                     style=style), "image")
        self.w_upload = c(W.FileUpload(accept="image/*", multiple=False, description="upload"), "upload")
        self.w_block = c(W.Dropdown(description="SAM block", style=style, layout=W.Layout(width="98%")), "block")
        # which SAM stages heads, kernels, expand ratio and SAA apply to (-1: every one)
        self.w_stage = c(W.Dropdown(options=[("every SAM stage", -1)], value=-1, description="apply to",
                                    style=style, layout=W.Layout(width="98%")), "stage")
        self.w_heads = c(W.IntSlider(value=4, min=1, max=8, description="heads N", continuous_update=False,
                                     style=style), "heads")
        half = W.Layout(width="50%")  # two sliders share a row: without a width each keeps a few px of track
        self.w_first = c(W.IntSlider(value=3, min=1, max=15, step=2, description="first kernel",
                                     continuous_update=False, style=style, layout=half), "first-kernel")
        self.w_step = c(W.IntSlider(value=2, min=0, max=6, step=2, description="kernel step", continuous_update=False,
                                    style=style, layout=half), "kernel-step")
        self.w_kernels = c(W.Text(value="", placeholder="or a list: 3,5,7,9", description="kernels", style=style,
                                  continuous_update=False), "kernels")
        self.w_expand = c(W.Dropdown(options=[0.5, 1.0, 2.0, 4.0], value=2.0, description="expand ratio",
                                     style=style), "expand-ratio")
        self.w_saa = c(W.Checkbox(value=True, description="SAA", indent=False), "saa")
        self.w_masks = c(W.HBox([]), "masks")
        self.w_readout = tagged(W.HTML(), "viz-readout")
        self.w_top5 = top5_widget()
        self.v_overlay = View(plot_overlay_view, update_overlay_view, css="viz-view-overlay",
                              layout=W.Layout(width="200px"))
        self.v_heads = View(plot_heads_view, update_heads_view, css="viz-view-heads")
        self.v_fields = View(plot_fields_view, update_fields_view, css="viz-view-fields")
        self.v_saa = View(self._plot_saa, self._update_saa, css="viz-view-saa")

        for w in (self.w_model, self.w_path):
            w.observe(self.on("model", self._load_model), "value")
        self.w_stage.observe(self.on("stage", self._stage_changed), "value")
        self.w_seed.observe(self.on("seed", self._model_changed), "value")
        self.w_source.observe(self.on("image source", self._source_changed), "value")
        self.w_index.observe(self.on("image", self._refresh_all), "value")
        self.w_upload.observe(self.on("upload", self._uploaded), "value")
        self.w_block.observe(self.on("block", self._block_changed), "value")
        self.w_heads.observe(self.on("heads", self._heads_changed), "value")
        for w in (self.w_first, self.w_step, self.w_kernels):
            w.observe(self.on("kernels", self._model_changed), "value")
        self.w_expand.observe(self.on("expand ratio", self._model_changed), "value")
        self.w_saa.observe(self.on("SAA", self._model_changed), "value")

        controls = W.VBox([W.HBox([self.w_model, self.w_seed]), self.w_path,
                           W.HBox([self.w_source, self.w_upload]), self.w_index, self.w_block, self.w_stage,
                           self.w_heads, W.HBox([self.w_first, self.w_step]), self.w_kernels,
                           W.HBox([self.w_expand, self.w_saa]), W.HTML("<b>mask heads</b> (zero them)"), self.w_masks],
                          layout=controls_layout("430px"))
        views = W.VBox([self.explanation, self.status_box,
                        W.HBox([self.v_overlay.image, self.w_top5], layout=row_layout()),
                        W.HTML("<b>MHMC heads</b>: mean |output| of each head (kernel in the title)"),
                        self.v_heads.image, W.HTML("<b>receptive field of each head</b> (gradient of its central "
                                                   "output w.r.t. the block input)"), self.v_fields.image,
                        W.HTML("<b>SAA</b>: input vs output (the modulator) and their spectra"), self.v_saa.image,
                        self.w_readout], layout=views_layout())
        self.widget = W.HBox([tagged(controls, "viz-controls"), tagged(views, "viz-views")],
                             layout=W.Layout(align_items="flex-start"))
        self.widget.add_class("viz-app").add_class("viz-sam-playground")
        self._first_block = block
        if not known:
            self._bad_argument("images", ValueError(f"images {images!r}: choose 'canvases', 'photos' or 'upload', a "
                                                    f"folder of images, or pass an ImageSet; the shipped canvases are "
                                                    f"shown"))
        self.guard("init", self._start)

    def _bad_argument(self, what: str, e: Exception) -> None:
        """A constructor argument that can not be used: an error shown in the widget (never replaced silently)."""
        try:
            raise e
        except Exception:
            self.standing[what] = (e, traceback.format_exc())

    @property
    def model(self):
        return self.resolved.model

    @property
    def view(self) -> BlockView:
        """What the views show now (the last good update)."""
        return self.view_data[1]

    # -- state ----------------------------------------------------------------------------------------------
    def _size(self) -> int:
        """The input size of the model shown (the demo models': 112)."""
        return (self.resolved.input_size if self.resolved is not None else None) or 112

    def _imageset(self, source: Optional[str] = None) -> ImageSet:
        """The images of `source` (default the menu's) at the input size of the model shown, loaded once (by the
        UI thread or the prefetch, whichever asks first)."""
        src, size = source or self.w_source.value, self._size()
        upload = self._upload if src == "upload" else None
        if src == "upload" and upload is None:
            raise ValueError("no image uploaded yet: choose a PNG or JPEG file with the upload button")
        key = (src, size, None if upload is None else (upload[0], upload[2]))
        return self._sets.get(key, lambda: self._load_images(src, size, upload))

    def _load_images(self, src: str, size: int, upload: Optional[tuple[str, bytes, str]]) -> ImageSet:
        if src == "canvases":  # a given ImageSet is shown as "canvases", at its own size
            return self._given or ImageSet.canvases(size=None if size == 112 else size)
        if src == "photos":
            return ImageSet.photos(size=size)
        if src == "folder":
            return ImageSet.photos(self.folder, size=size, num_images=self.num_images)
        name, content, _ = upload
        return ImageSet(load_image(content, size)[None], [name])

    def _kernels(self) -> tuple[int, ...]:
        text = self.w_kernels.value.strip()
        if text:
            try:
                return tuple(int(t) for t in text.replace(" ", ",").split(",") if t)
            except ValueError:
                raise ValueError(f"kernels {text!r}: write odd integers separated by commas, e.g. 3,5,7,9") from None
        return tuple(self.w_first.value + self.w_step.value * h for h in range(self.w_heads.value))

    def _requested(self) -> Config:
        stage = self.w_stage.value
        return replace(self.cfg, base=self.w_model.value, heads=self.w_heads.value, kernels=self._kernels(),
                       expand_ratio=float(self.w_expand.value), saa=bool(self.w_saa.value),
                       seed=int(self.w_seed.value), checkpoint=self.w_path.value.strip() or None,
                       stage=None if stage == -1 else stage)

    def _start(self) -> None:
        self._load_model()

    def _set_block_options(self) -> None:
        from ..analysis import sam_block_names
        from ..plot import block_label

        names = sam_block_names(self.model)
        current = self.w_block.value
        if self._first_block is not None:  # the constructor's block, once
            current, self._first_block = self._first_block, None
            if current not in names:
                why = f"block {current!r} is not a SAM block of this model: choose one of {', '.join(names)}"
                self._bad_argument("block", ValueError(f"{why}; {names[0]} is shown"))
        with self.quiet():
            self.w_block.options = [(f"{block_label(n)} ({n})", n) for n in names]
            self.w_block.value = current if current in names else names[0]

    def _set_masks(self) -> None:
        import ipywidgets as W

        n = len(self.model.get_submodule(self.w_block.value).attn.mhmc.convs)
        if len(self.w_masks.children) != n:
            boxes = [tagged(W.ToggleButton(value=False, description=f"head {h + 1}", layout=W.Layout(width="5.5em")),
                            "viz-control-mask") for h in range(n)]
            for b in boxes:
                b.observe(self.on("mask", self._refresh_all), "value")
            self.w_masks.children = boxes
        else:
            with self.quiet():
                for b in self.w_masks.children:
                    b.value = False

    def _masked(self) -> tuple[int, ...]:
        return tuple(h for h, b in enumerate(self.w_masks.children) if b.value)

    # -- handlers -------------------------------------------------------------------------------------------
    def _load_model(self) -> None:
        """A new model (the model menu or the file): the stage picker and the N / kernel / SAA controls take
        its own setting, then it is shown."""
        with self.standing_error("model"):
            cfg = replace(self._requested(), stage=None)
            if cfg.base == "checkpoint":
                self._set_stage_options(cfg)
                self._sync_controls(cfg)
            else:
                with self.quiet():
                    self.w_stage.options, self.w_stage.value = [("every SAM stage", -1)], -1
        self._model_changed()

    def _set_stage_options(self, cfg: Config) -> None:
        from ..sessions import sam_stages

        stages = sam_stages(self.resolver.user_of(cfg).model)
        with self.quiet():
            self.w_stage.options = [("every SAM stage", -1)] + [(f"stage {i + 1} (stages.{i}) only", i)
                                                                 for i in stages]
            self.w_stage.value = -1

    def _sync_controls(self, cfg: Config) -> None:
        """Set N, kernels, SAA and expand ratio to the user's model's own in `cfg.stage` (the sliders when the
        kernels are 3, 5, 7, ...-like steps, else the list)."""
        heads, kernels, saa, ratio = self.resolver.native(cfg)
        step = kernels[1] - kernels[0] if len(kernels) > 1 else 2
        even = all(b - a == step for a, b in zip(kernels, kernels[1:])) and step in range(0, 7, 2) and (
            kernels[0] in range(1, 16, 2))
        with self.quiet():
            self.w_heads.value = heads
            if even:
                self.w_kernels.value = ""
                self.w_first.value, self.w_step.value = kernels[0], step
            else:
                self.w_kernels.value = ",".join(map(str, kernels))
            if ratio not in self.w_expand.options:
                self.w_expand.options = sorted(set(self.w_expand.options) | {ratio})
            self.w_expand.value, self.w_saa.value = ratio, saa

    def _stage_changed(self) -> None:
        """Another stage picked: the controls show that stage's own setting; the block moves into it."""
        cfg = self._requested()
        if cfg.base == "checkpoint":
            with self.standing_error("model"):
                self._sync_controls(cfg)
            if cfg.stage is not None and not self.w_block.value.startswith(f"stages.{cfg.stage}."):
                first = next((v for _, v in self.w_block.options if v.startswith(f"stages.{cfg.stage}.")), None)
                if first is not None:
                    with self.quiet():
                        self.w_block.value = first
        self._model_changed()

    def _model_changed(self) -> None:
        with self.standing_error("model"):  # a bad configuration stays reported until it is changed
            cfg = self._requested()
            resolved = self.resolver.resolve(cfg)
        self.cfg, self.resolved = cfg, resolved
        self._set_block_options()
        self._set_masks()
        self._set_enabled()
        self._refresh_all()

    def _set_enabled(self) -> None:
        """Disable each control that can not apply to what is shown, with a tooltip that says why (a control never
        moves and changes nothing)."""
        from ..sessions import sam_stages

        base, r = self.w_model.value, self.resolved
        why = {
            "file": None if base == "checkpoint" else "the file names your model: choose 'your model' in the model "
                                                      "menu first",
            "seed": None if r is None or r.kind == "random" else (
                f"the seed sets random initialisations; {r.name} is trained: choose random initialisation, or an N, "
                f"SAA or expand ratio that no trained checkpoint has"),
            "expand": None if self.w_saa.value else "SAA is off: there is no expansion to change",
            "slider kernels": None if not self.w_kernels.value.strip() else (
                "the kernel list is used: clear it to set the kernels with first kernel and step"),
            "stage": None,
        }
        if base != "checkpoint":
            why["stage"] = ("the demo models vary every SAM stage together; pick a stage on your own checkpoint "
                            "(model: your model)")
        elif r is not None and len(sam_stages(self.resolver.user_of(self.cfg).model)) < 2:
            why["stage"] = "this model has a single SAM stage: the setting applies to it"
        tips = {"file": [self.w_path], "seed": [self.w_seed], "expand": [self.w_expand],
                "slider kernels": [self.w_first, self.w_step], "stage": [self.w_stage]}
        for name, controls in tips.items():
            for w in controls:
                w.disabled = why[name] is not None
                w.tooltip = why[name]

    def _heads_changed(self) -> None:
        with self.quiet():
            if self.w_kernels.value.strip():  # an explicit list follows the head count with the default kernels
                self.w_kernels.value = ",".join(map(str, default_kernels(self.w_heads.value)))
        self._model_changed()

    def _source_changed(self) -> None:
        self.standing.pop("images", None)
        with self.quiet():
            self.w_index.value = 0
            self.w_index.max = max(0, len(self._imageset().display) - 1)
        self._refresh_all()

    def _uploaded(self) -> None:
        files = self.w_upload.value
        if not files:
            return
        f = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        content = bytes(f["content"] if isinstance(f, dict) else f.content)
        name = f["name"] if isinstance(f, dict) else f.name
        self._upload = (name, content, hashlib.blake2b(content, digest_size=12).hexdigest())
        self._imageset("upload")  # read now: an unreadable file is this event's error
        with self.quiet():
            self.w_source.value = "upload"
            self.w_index.value, self.w_index.max = 0, 0
        self._refresh_all()

    def _block_changed(self) -> None:
        self.standing.pop("block", None)  # a block chosen here replaces a bad constructor argument
        self._set_masks()
        self._refresh_all()

    def _refresh_all(self) -> None:
        if self.resolved is None:  # no configuration has worked yet: its error stays shown, nothing to draw
            return
        imgs = self._imageset()
        with self.quiet():
            self.w_index.max = max(0, len(imgs.display) - 1)
        i = min(self.w_index.value, len(imgs.display) - 1)
        key, x, block, masked = imgs.key(i), imgs.model_input(i), self.w_block.value, self._masked()
        view = self.session.block_view(self.resolved, key, x, block, masked)
        self.view_data = (imgs.display[i], view)
        n = len(view.kernel_sizes)
        self.v_overlay.show(self.view_data)
        self.v_heads.show(view, n)
        # the crop follows the largest kernel; the fields depend on the model, the image and the block, not on masks
        self.v_fields.show(view, (n, max(view.kernel_sizes)), key=(self.resolved.key, key, block))
        self.v_saa.show(view)
        label = imgs.labels[i] if imgs.labels is not None else None
        names = self.resolved.class_names or self.session.class_names
        # the canvases' labels are the demo models' 10 classes: another model's classes are other classes
        self.w_top5.value = top5_html(view.top5, None if label is None or len(names) != 10 else names[label])
        self.explanation_text = self._explain(imgs, i, masked)
        self.explanation.value = "<b>" + html.escape(self.explanation_text) + "</b>"
        self.w_readout.value = html.escape(
            f"{block}: N = {n}, kernels {'/'.join(map(str, view.kernel_sizes))}, expand ratio "
            f"{self.cfg.expand_ratio:g}, SAA {'on' if self.cfg.saa else 'off'}, masked heads "
            f"{[h + 1 for h in masked] or 'none'}; image {imgs.names[i]}")
        if self.prefetch:  # the neighbours, then the first image of each other source (a switch finds it ready)
            others = [v for _, v in self.w_source.options if v not in (self.w_source.value, "upload")]
            self.session.prefetch(self.resolved, imgs, [i + 1, i - 1], block, masked,
                                  also=[(functools.partial(self._imageset, v), 0) for v in others])

    def _explain(self, imgs: ImageSet, i: int, masked: Sequence[int]) -> str:
        unmasked = self.view
        if masked:
            unmasked = self.session.block_view(self.resolved, imgs.key(i), imgs.model_input(i), self.w_block.value)
        return explain(self.resolved.explanation, self.w_block.value, masked, unmasked.top5[0], self.view.top5[0])

    # -- views: the playground's view functions (module level, shared with the explorable) -------------------
    def _saa_ylim(self, view: BlockView) -> tuple[float, float]:
        """One amplitude range per model, widened (never narrowed) as blocks, images and masks need it: curves
        of different blocks compare by eye, and a mask moves the curve, not the axis."""
        from ..plot import display_saa_spectrum

        fit = display_saa_spectrum(view.spectrum_before, view.spectrum_after)[-1]
        model, old = self._saa_range
        rng = fit if model != self.resolved.key or old is None else (min(old[0], fit[0]), max(old[1], fit[1]))
        self._saa_range = (self.resolved.key, rng)
        return rng

    def _plot_saa(self, view: BlockView) -> Panel:
        return plot_saa_view(view, self._saa_ylim(view))

    def _update_saa(self, panel: Panel, view: BlockView) -> bool:
        return update_saa_view(panel, view, self._saa_ylim(view))

    # -- programmatic driving (benchmarks, tests) -------------------------------------------------------------
    def controls(self) -> dict[str, Any]:
        """The controls by name (for scripts: `w.controls()["heads"].value = 2`)."""
        return {"model": self.w_model, "file": self.w_path, "seed": self.w_seed, "source": self.w_source,
                "image": self.w_index, "upload": self.w_upload, "block": self.w_block, "stage": self.w_stage,
                "heads": self.w_heads,
                "first kernel": self.w_first, "kernel step": self.w_step, "kernels": self.w_kernels,
                "expand ratio": self.w_expand, "saa": self.w_saa, "masks": list(self.w_masks.children)}
