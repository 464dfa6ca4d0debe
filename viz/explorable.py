"""`python -m viz explorable`: the SAM playground and the figure set as a static folder that opens from disk.

    python -m viz explorable --out site/                 # demo model, its ablation set, 12 canvases
    python -m viz explorable --out site/ --model test_smt --num-images 2

Every state the page can show (image x SAM block x model of the set x head mask) is computed here with
the playground's compute (`viz.sessions`: `ModelResolver`, `SAMSession` with one batched forward pass per
block and mask, `ImageSet`, and `explain` for the explanation line) and drawn with the playground's own
view functions (`viz.widgets.playground.plot_*_view` / `update_*_view`, which call the `viz.plot`
display/plot/update triples the paper figures use), so the page, the widget and the figures show the
same pictures. Each view is one figure per model, built once; a state only sets its artists' data and is
blitted over a cached background, then written as a palette PNG. The page (`index.html`, plain
JavaScript, no network) loads one small script per (model, block) when a control first asks for it
(`<script>` tags work from `file://`, where `fetch` of a JSON file does not) and swaps PNGs; nothing is
computed in the browser.

What the page cannot do that the live playground can: other head counts, kernel sizes, expand ratios
or random initialisations, masking several heads at once, and uploaded images. Kernel sizes were left
out for the size and time budgets: padding a kernel by one step leaves every map unchanged (only the
titles would change), and cropping by one step means a second model, so each kernel setting doubles
the states (and the build time and size) of the default set.

The same inputs give byte-identical files; everything is written inside `--out` (a working folder
inside it, moved into place at the end). The command checks every option before any work (one line per
problem, exit code 2) and, like `viz figures`, refuses to replace a previous build's files in `--out`
unless `--overwrite` is given; `build()` from Python replaces them.
"""
from __future__ import annotations

import argparse
import html
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

__all__ = ["Variant", "ModelSet", "model_set", "build", "main", "ASSETS"]

ASSETS = Path(__file__).resolve().parent / "explorable_assets"
VIEWS = ("overlay", "heads", "fields", "saa")
#: The views column's width on a 1280-px window (CSS): a wider figure is made narrower, not scaled down.
VIEW_WIDTH_PX = 940
DPI = 96
#: The widgets' screen style with larger text (`viz.style.screen`'s 9 pt is small in a page at 100% zoom).
FONT_SIZE = 10.5
#: Names this command writes at the top of --out (replaced on a rebuild; anything else there is left alone).
OUTPUTS = ("index.html", "figures.html", "assets", "data", "figures")


@dataclass(frozen=True)
class Variant:
    """One model the page offers: how to load it and what to say about it.

    Attributes:
        label: The control's label ("N = 4, SAA on").
        spec: What `_load` builds: ("trained", heads, saa), ("demo", name), ("timm", name, seed) or ("file", path).
    """
    label: str
    spec: tuple


@dataclass(frozen=True)
class ModelSet:
    """The models of the page (one per trained head count / SAA setting, or one user model)."""
    name: str
    variants: tuple[Variant, ...]
    class_names: tuple[str, ...]


def _not_shown(what: str, why: str) -> ValueError:
    from smt.inputs import InputError

    return InputError("--model", f"{what} {why}: the explorable shows SMT's SAM blocks (MHMC heads, SAA). Use "
                      f"--model main (the demo model and its ablation set), a demo SMT (heads1, heads2, heads4, "
                      f"heads8, nosaa), an SMT timm name (test_smt, smt_tiny, ...), an SMT checkpoint file or a "
                      f"folder of them")


def _check_smt(model: torch.nn.Module, what: str) -> None:
    """A clear error for a model the playground can not show (not SMT, or no SAM block)."""
    from .analysis import sam_block_names

    if not hasattr(model, "stage_block_types"):
        raise _not_shown(what, f"is not an SMT model ({type(model).__name__})")
    if not sam_block_names(model):
        raise _not_shown(what, "has no SAM block")


def _load(spec: tuple, resolver=None):
    """The model of a variant's spec as a `viz.sessions.Resolved` (model in eval mode, the one-line explanation
    of what it is, and the key the session's caches use)."""
    from .sessions import Config, ModelResolver, Resolved, default_kernels

    resolver = resolver or ModelResolver()
    kind = spec[0]
    if kind == "trained":
        return resolver.resolve(Config(heads=spec[1], kernels=default_kernels(spec[1]), saa=spec[2]))
    if kind == "demo":
        return Resolved(resolver.demo(spec[1]), "trained", spec[1], f"demo model {spec[1]!r} as trained",
                        ("demo", spec[1]))
    if kind == "file":  # as saved: the configuration the file itself has
        cfg = Config(base="checkpoint", checkpoint=spec[1])
        heads, kernels, saa, expand_ratio = resolver.native(cfg)
        return resolver.resolve(replace(cfg, heads=heads, kernels=kernels, saa=saa, expand_ratio=expand_ratio))
    import timm

    torch.manual_seed(spec[2])
    model = timm.create_model(spec[1], num_classes=10).eval()
    return Resolved(model, "random", f"{spec[1]} (seed {spec[2]})",
                    f"{spec[1]} at random initialisation (seed {spec[2]}): untrained, so the maps show the "
                    f"architecture, not learnt features", ("timm", spec[1], spec[2]))


def model_set(model: str = "main", *, seed: int = 0) -> ModelSet:
    """The models for `--model`: "main" (the demo model and its trained ablation set), a demo name, an SMT
    timm name (random initialisation), a checkpoint file, or a folder of checkpoint files (a user's ablation
    set). Raises ValueError for a model the playground can not show."""
    from smt.data import CLASS_NAMES
    from smt.demo import DEMO_MODELS

    from .sessions import TRAINED

    path = Path(model)
    if model == "main":
        variants = tuple(Variant(f"N = {n}, SAA {'on' if saa else 'off'}", ("trained", n, saa))
                         for (n, saa) in sorted(TRAINED, key=lambda k: (not k[1], k[0])))
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".pth", ".pt", ".safetensors"))
        if not files:
            from smt.inputs import InputError

            raise InputError("--model", f"folder {model} has no checkpoint (.pth, .pt, .safetensors): give a folder "
                                        f"of SMT checkpoints, one per model of the ablation")
        variants = tuple(Variant(p.name, ("file", str(p))) for p in files)
    elif path.is_file():
        variants = (Variant(path.name, ("file", str(path))),)
    elif model in DEMO_MODELS:
        variants = (Variant(model, ("demo", model)),)
    else:
        import timm

        if not timm.is_model(model):
            from smt.inputs import InputError

            raise InputError("--model", f"{model!r} is neither a demo model ({', '.join(DEMO_MODELS)}), a timm model "
                             f"name nor an existing file or folder")
        variants = (Variant(f"{model} (random, seed {seed})", ("timm", model, seed)),)
    # check the first model before any work (the others of a set are built the same way)
    first = _load(variants[0].spec).model
    _check_smt(first, f"model {variants[0].label!r}")
    n = int(getattr(first, "num_classes", 10))
    names = tuple(CLASS_NAMES) if n == len(CLASS_NAMES) else tuple(f"class {i}" for i in range(n))
    return ModelSet(path.name if path.exists() else model, variants, names)  # no machine's path in the page


def _images(images: Optional[str], num_images: int):
    from .sessions import ImageSet

    if num_images < 1:
        raise ValueError(f"--num-images {num_images}: use at least 1")
    if images in (None, "canvases"):
        return ImageSet.canvases(num_images)
    if images == "photos":
        s = ImageSet.photos()
    elif Path(images).is_dir():
        s = ImageSet.photos(images)
    else:
        raise FileNotFoundError(f"--images {images}: use canvases, photos or an existing image folder")
    return ImageSet(s.display[:num_images], s.names[:num_images], None)


# -- drawing: the playground's views, rasterised once per state -----------------------------------------------
def _encode(rgba: np.ndarray) -> bytes:
    """RGB pixels as a 256-colour PNG (fast octree palette): about a fifth of the widget's RGB PNG bytes for these
    figures, and deterministic. zlib level 6, not 1: on one byte per pixel it costs about 3 ms more per picture
    and saves a quarter of the bytes, which the default set's 50 MB budget needs."""
    from PIL import Image

    buf = io.BytesIO()
    im = Image.fromarray(np.ascontiguousarray(rgba[..., :3])).quantize(256, method=Image.Quantize.FASTOCTREE)
    palette = np.array(im.getpalette(), dtype=np.uint8).reshape(-1, 3)
    palette[(palette >= 252).all(1)] = 255  # the octree's near-white back to the page's white
    im.putpalette(palette.ravel().tolist())
    im.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _encode_photo(rgba: np.ndarray) -> bytes:
    """A photograph-like view (the modulator blended over the image) as lossy WebP (quality 80, deterministic):
    about 3 KB against 6 KB as a palette PNG, which would band its smooth blend."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba[..., :3])).save(buf, format="WEBP", quality=80, method=4)
    return buf.getvalue()


class _Panel:
    """One view drawn as the widget's `View` draws it (`viz.widgets.view.Drawing`: a figure per shape, updated
    in place, the dynamic artists blitted over the cached background), each state then encoded (`encode`);
    a figure wider than the page's column is narrowed before its layout (the text keeps its size in px)."""

    def __init__(self, plot: Callable, update: Callable, *, encode: Callable[[np.ndarray], bytes] = _encode,
                 suffix: str = "png"):
        from .widgets.view import Drawing

        self.encode, self.suffix = encode, suffix
        self.drawing = Drawing(plot, update, dpi=DPI, prepare=_fit_width)

    def render(self, data: Any, shape: Any = None) -> tuple[bytes, tuple[int, int]]:
        """The picture of the view for `data` (bytes, `self.suffix`) and its (width, height) in px."""
        from .style import screen

        with screen(font_size=FONT_SIZE):
            rgba = self.drawing.draw(data, shape)
            return self.encode(rgba), (rgba.shape[1], rgba.shape[0])


def _fit_width(fig) -> None:
    width, height = (float(v) for v in fig.get_size_inches())
    if width * DPI > VIEW_WIDTH_PX:
        fig.set_size_inches(VIEW_WIDTH_PX / DPI, height * VIEW_WIDTH_PX / DPI / width)


def _panels(saa_ylim: tuple[float, float]) -> dict[str, _Panel]:
    """The playground's four views (`viz.widgets.playground`'s view functions), the spectrum's amplitude range
    fixed to the one that holds every state of the model (so that states compare by eye, whatever order they
    are drawn in, as the widget's range widens over what it has shown)."""
    from .widgets import playground as P

    return {"overlay": _Panel(P.plot_overlay_view, P.update_overlay_view, encode=_encode_photo, suffix="webp"),
            "heads": _Panel(P.plot_heads_view, P.update_heads_view),
            "fields": _Panel(P.plot_fields_view, P.update_fields_view),
            "saa": _Panel(lambda v: P.plot_saa_view(v, saa_ylim), lambda h, v: P.update_saa_view(h, v, saa_ylim))}


# -- one model of the set: every state of it ------------------------------------------------------------------
def _mask_key(masked: Sequence[int]) -> str:
    return "none" if not masked else "h" + "-".join(str(h + 1) for h in masked)


def render_variant(vi: int, variant: Variant, images, class_names: Sequence[str],
                   progress: Optional[Callable[[int], None]] = None) -> dict[str, Any]:
    """Every state of one model: {"files": {relative path: bytes}, "chunks": {chunk key: metadata}, "info": ...}.

    Chunk key "m{vi}-b{bi}" holds the states of one block for every image and mask.
    """
    from .analysis import sam_block_names
    from .plot import block_label, display_saa_spectrum
    from .sessions import SAMSession, explain

    torch.set_num_threads(1)  # one process per core: threads of several processes fight on a shared machine
    resolved = _load(variant.spec)
    model, explanation = resolved.model, resolved.explanation
    _check_smt(model, f"model {variant.label!r}")
    n_img = len(images.names)
    # one block at a time: the caches hold a mask's batch of captures, and every image's fields of the block
    session = SAMSession(list(class_names), cache_size=n_img + 2, threads=1)
    keys = [images.key(i) for i in range(n_img)]
    inputs = [images.model_input(i) for i in range(n_img)]
    batch = torch.cat(inputs)
    blocks = sam_block_names(model)
    views = {}
    for b in blocks:
        heads = len(model.get_submodule(b).attn.mhmc.convs)
        for masked in [()] + [(h,) for h in range(heads)]:
            session.forward_batch(resolved, keys, batch, b, masked)  # one pass for every image
            for i in range(n_img):
                views[b, i, masked] = session.block_view(resolved, keys[i], inputs[i], b, masked)
                if progress is not None:
                    progress(1)
    ranges = [display_saa_spectrum(v.spectrum_before, v.spectrum_after)[-1] for v in views.values()]
    panels = _panels((min(r[0] for r in ranges), max(r[1] for r in ranges)))
    files, chunks = {}, {}
    for bi, b in enumerate(blocks):
        heads = len(model.get_submodule(b).attn.mhmc.convs)
        states = {}
        where = f"m{vi}/b{bi}"
        for i in range(n_img):
            base = views[b, i, ()]
            png, size = panels["fields"].render(base, (heads, max(base.kernel_sizes)))
            fields = f"{where}/i{i}-fields.png"
            files[fields] = png
            sizes = {"fields": size}
            for masked in [()] + [(h,) for h in range(heads)]:
                v = views[b, i, masked]
                paths = {"fields": fields}
                for name, data, shape in (("overlay", (images.display[i], v), None), ("heads", v, heads),
                                          ("saa", v, None)):
                    png, sizes[name] = panels[name].render(data, shape)
                    paths[name] = f"{where}/i{i}-{_mask_key(masked)}-{name}.{panels[name].suffix}"
                    files[paths[name]] = png
                line = explain(explanation, b, masked, base.top5[0], v.top5[0])
                states[f"i{i}-{_mask_key(masked)}"] = {
                    "src": paths, "size": {k: sizes[k] for k in paths},
                    "top5": [[c, f"{100 * p:.1f}%"] for c, p in v.top5],  # as the explanation rounds them
                    "explanation": f"{images.names[i]}, {block_label(b)} ({b}): {line}",
                    "readout": (f"{b}: N = {heads}, kernels {'/'.join(map(str, v.kernel_sizes))}, SAA "
                                f"{'on' if _saa(model, b) else 'off'}, masked heads "
                                f"{[h + 1 for h in masked] or 'none'}; image {images.names[i]}")}
                if progress is not None:
                    progress(1)
        chunks[f"m{vi}-b{bi}"] = states
    info = {"label": variant.label, "explanation": explanation,
            "blocks": [{"name": b, "label": f"{block_label(b)} ({b})",
                        "heads": len(model.get_submodule(b).attn.mhmc.convs),
                        "kernels": list(views[b, 0, ()].kernel_sizes)} for b in blocks]}
    return {"files": files, "chunks": chunks, "info": info}


def _saa(model: torch.nn.Module, block: str) -> bool:
    saa = getattr(model.get_submodule(block).attn, "saa", None)
    return saa is not None and not isinstance(saa, torch.nn.Identity)


def _state_count(model: torch.nn.Module, n_img: int) -> int:
    from .analysis import sam_block_names

    return n_img * sum(1 + len(model.get_submodule(b).attn.mhmc.convs) for b in sam_block_names(model))


# -- the folder --------------------------------------------------------------------------------------------------
def _script(call: str, payload: Any) -> bytes:
    """A data file the page loads with a <script> tag (fetch of JSON fails from file://): `call(payload);`."""
    return f"{call}({json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(',', ':'))});\n".encode()


def _figures_page(figures: Optional[Path], out: Path, title: str) -> str:
    """figures.html: each figure's PNG with its caption and links to its PDF and data files; the claims table
    when claims.md or claims.json is in the figure folder. Copies the files into out/figures/."""
    from .figures.writing import _markdown_table_html

    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
             f"content='width=device-width'><title>{html.escape(title)}: figures</title>"
             "<link rel='stylesheet' href='assets/explorable.css'></head><body class='figures'>",
             "<header><h1>SMT figures</h1><nav><a href='index.html'>the SAM playground</a> · "
             "<a href='figures.html' aria-current='page'>figures</a></nav></header><main>"]
    if figures is None:
        parts.append("<p>No figure set was given. Render one with <code>python -m viz figures --out figures</code> "
                     "(or <code>make demo</code>) and build again with <code>--figures figures</code>.</p>")
    else:
        dest = out / "figures"
        dest.mkdir(parents=True, exist_ok=True)
        claims_md, claims_json = figures / "claims.md", figures / "claims.json"
        if claims_md.is_file() or claims_json.is_file():
            parts.append("<section id='claims'><h2>Claims</h2>")
            if claims_md.is_file():
                parts.append(_markdown_table_html(claims_md.read_text()))
            else:
                parts.append(_json_table(json.loads(claims_json.read_text())))
            links = [f for f in (claims_md, claims_json) if f.is_file()]
            for f in links:
                shutil.copyfile(f, dest / f.name)
            parts.append("<p>files: " + " ".join(f"<a href='figures/{f.name}'>{f.suffix[1:]}</a>" for f in links)
                         + "</p></section>")
        for record in sorted(figures.glob("*.json")):
            if record.name == "claims.json":
                continue
            try:
                meta = json.loads(record.read_text())
            except json.JSONDecodeError:
                continue
            if not isinstance(meta, dict) or "figure" not in meta:
                continue
            name = meta["figure"]
            own = sorted(f for f in figures.iterdir() if f.is_file() and f.stem == name)
            for f in own:
                shutil.copyfile(f, dest / f.name)
            caption = html.escape(str(meta.get("caption") or ""))
            parts.append(f"<figure id='{html.escape(name)}'><h2>{html.escape(name)}</h2>")
            png = figures / f"{name}.png"
            md = figures / f"{name}.md"
            if png.is_file():
                parts.append(f"<img src='figures/{html.escape(png.name)}' alt='{html.escape(name)}: {caption}'>")
            if md.is_file():  # the figure's table (the numbers under a plot, or a table-only figure)
                parts.append(_markdown_table_html(md.read_text()))
            links = " ".join(f"<a href='figures/{html.escape(f.name)}'>{html.escape(f.suffix[1:])}</a>" for f in own)
            parts.append(f"<figcaption>{caption}<br>files: {links}</figcaption></figure>")
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def _json_table(rows: Any) -> str:
    rows = rows.get("claims", rows) if isinstance(rows, dict) else rows
    if not rows or not isinstance(rows, list) or not isinstance(rows[0], dict):
        return f"<pre>{html.escape(json.dumps(rows, indent=1))}</pre>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _run_all(ms: ModelSet, images, workers: int, progress: bool) -> list[dict]:
    """Every model's states, in `workers` processes (the same bytes whatever the count)."""
    from tqdm.auto import tqdm

    counts = [_state_count(_load(v.spec).model, len(images.names)) for v in ms.variants]
    # two steps per state: its views computed, then drawn
    bar = tqdm(total=2 * sum(counts), desc="explorable (compute, draw)", unit="step", disable=not progress)
    try:
        if workers <= 1 or len(ms.variants) == 1:
            return [render_variant(vi, v, images, ms.class_names, bar.update) for vi, v in enumerate(ms.variants)]
        return _run_in_processes(ms, images, counts, workers, bar.update)
    finally:
        bar.close()


def _run_in_processes(ms: ModelSet, images, counts: Sequence[int], workers: int, step: Callable[[int], None]
                      ) -> list[dict]:
    """`render_variant` for every model in `workers` forked processes (largest models first, each to the least
    loaded process), which report through one queue (a pipe: no file, no server process)."""
    import multiprocessing as mp
    import queue as queue_errors

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    shares: list[list[int]] = [[] for _ in range(min(workers, len(ms.variants)))]
    for k in sorted(range(len(counts)), key=lambda k: (-counts[k], k)):
        min(shares, key=lambda share: sum(counts[i] for i in share)).append(k)
    messages = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(share, ms, images, messages), daemon=True) for share in shares]
    for proc in procs:
        proc.start()
    results: dict[int, dict] = {}
    try:
        while len(results) < len(ms.variants):
            try:
                kind, k, payload = messages.get(timeout=5.0)
            except queue_errors.Empty:
                if not any(proc.is_alive() for proc in procs):
                    raise RuntimeError("a worker process ended without its results (out of memory?); try "
                                       "--workers 1") from None
                continue
            if kind == "step":
                step(payload)
            elif kind == "done":
                results[k] = payload
            else:
                raise RuntimeError(f"model {ms.variants[k].label!r} failed in a worker process:\n{payload}")
    finally:
        for proc in procs:
            if proc.is_alive() and len(results) < len(ms.variants):
                proc.terminate()
            proc.join()
    return [results[k] for k in range(len(ms.variants))]


def _worker(share: Sequence[int], ms: ModelSet, images, messages) -> None:
    import traceback

    for k in share:
        try:
            r = render_variant(k, ms.variants[k], images, ms.class_names, lambda n, k=k: messages.put(("step", k, n)))
        except Exception:
            messages.put(("error", k, traceback.format_exc()))
            return
        messages.put(("done", k, r))


def build(out: os.PathLike, *, model: str | ModelSet = "main", images: Optional[str] = None, num_images: int = 12,
          figures: Optional[os.PathLike] = None, workers: int = 1, seed: int = 0, progress: bool = True
          ) -> dict[str, Any]:
    """Write the explorable into `out` (see the module docstring); returns {"states", "bytes", "files", "seconds"}.

    Args:
        out: Output folder (created; only the names in `OUTPUTS` are replaced there).
        model: See `model_set` (or the `ModelSet` it returned).
        images: "canvases" (default), "photos" (data/images) or an image folder.
        num_images: The first K images.
        figures: A figure folder (`python -m viz figures --out DIR`) shown on the second page.
        workers: Processes that render models in parallel.
        seed: Seed of a random initialisation.
        progress: Show a progress bar.
    """
    t0 = time.perf_counter()
    out = Path(out)
    figures = Path(figures) if figures is not None else None
    if figures is not None and not figures.is_dir():
        raise FileNotFoundError(f"--figures {figures}: no such folder; render one with python -m viz figures --out DIR")
    ms = model if isinstance(model, ModelSet) else model_set(model, seed=seed)
    imgs = _images(images, num_images)
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".explorable-partial"
    shutil.rmtree(work, ignore_errors=True)
    try:
        results = _run_all(ms, imgs, workers, progress)
        data = work / "data"
        for r in results:
            for rel, payload in r["files"].items():
                f = data / rel
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_bytes(payload)
            for key, states in r["chunks"].items():
                (data / f"{key}.js").write_bytes(_script("explorableChunk", {"key": key, "states": states}))
        labels = imgs.labels or [None] * len(imgs.names)
        first = next((k for k, v in enumerate(ms.variants) if v.spec == ("trained", 4, True)), 0)  # main model
        manifest = {"title": f"SMT SAM playground ({ms.name})", "models": [r["info"] for r in results],
                    "first_model": first,
                    "images": [{"name": n, "truth": None if t is None else ms.class_names[t]}
                               for n, t in zip(imgs.names, labels)],
                    "states": sum(len(c) for r in results for c in r["chunks"].values())}
        (data / "manifest.js").write_bytes(_script("explorableManifest", manifest))
        (work / "assets").mkdir()
        for f in sorted(ASSETS.iterdir()):
            if f.name != "index.html" and f.is_file():
                shutil.copyfile(f, work / "assets" / f.name)
        legend = "trained model" if any(v.spec[0] == "trained" for v in ms.variants) else "model"
        page = (ASSETS / "index.html").read_text().replace("{{title}}", html.escape(manifest["title"]))
        page = page.replace("{{model_legend}}", legend)
        (work / "index.html").write_text(page)
        (work / "figures.html").write_text(_figures_page(figures, work, manifest["title"]))
        for name in OUTPUTS:  # the finished folder replaces the previous build's names, nothing else
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            if (work / name).exists():
                os.replace(work / name, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    written = [f for name in OUTPUTS for f in ([out / name] if (out / name).is_file() else (out / name).rglob("*"))
               if f.is_file()]
    return {"states": manifest["states"], "bytes": sum(f.stat().st_size for f in written), "files": len(written),
            "seconds": time.perf_counter() - t0}


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m viz explorable ...` (argv without the word `explorable`)."""
    p = argparse.ArgumentParser(prog="python -m viz explorable", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (nothing is written outside it)")
    p.add_argument("--model", default="main", help="main (the demo model and its trained ablation set), a demo "
                   "SMT name, an SMT timm name (random initialisation), a checkpoint file or a folder of them")
    p.add_argument("--images", help="canvases (default), photos (data/images) or an image folder")
    p.add_argument("--num-images", type=int, default=12, help="the first K images (default 12)")
    p.add_argument("--figures", help="a figure folder (python -m viz figures --out DIR) for the second page")
    p.add_argument("--device", default="cpu", help="only cpu: the states are small, and a run on another device "
                   "would not give the same bytes")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of a random initialisation")
    p.add_argument("--overwrite", action="store_true", help="replace a previous build's files in --out (index.html, "
                   "figures.html, assets/, data/, figures/; other files there are left alone)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    from smt.inputs import cli_errors

    from .validation import check_explorable_args

    with cli_errors(args.debug) as code:
        ms = check_explorable_args(args, OUTPUTS, model_set)  # every option, before any work
        r = build(args.out, model=ms, images=args.images, num_images=args.num_images, figures=args.figures,
                  workers=args.workers, seed=args.seed, progress=not args.no_progress)
        print(f"{r['states']} states, {r['files']} files, {r['bytes'] / 1e6:.1f} MB in {args.out}/ "
              f"({r['seconds']:.0f} s); open {Path(args.out) / 'index.html'}")
    return code[0] if code else 0
