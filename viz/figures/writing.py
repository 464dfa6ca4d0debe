"""Writing a figure set: every format, `NAME.npz` and `NAME.json` per figure, and `index.html`; nothing outside
the output folder, reproducible data files."""
from __future__ import annotations

import html
import io
import json
import math
import os
import sys
import time
import traceback
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .catalog import FIGURES
from .figureset import FigureSet, SkipFigure
from .source import sha256

__all__ = ["Outcome", "render", "write_npz", "write_index", "print_outcomes"]


def write_npz(path: os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """`np.savez` with fixed zip entry times and sorted names, so the same arrays give the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name.replace("/", "__") + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            data = io.BytesIO()
            np.lib.format.write_array(data, np.ascontiguousarray(np.asarray(arrays[name])), allow_pickle=False)
            zf.writestr(info, data.getvalue())
    _atomic_write(Path(path), buf.getvalue())


def _atomic_write(path: Path, data: bytes) -> None:
    from smt.files import atomic_write_bytes

    atomic_write_bytes(path, data)


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, torch.Tensor):
        return _jsonable(x.tolist())
    return x


def _version() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    from smt.train import git_revision

    try:
        v = version("smt-lab")
    except PackageNotFoundError:
        v = None
    return {"smt_lab": v, "git_revision": git_revision(), "torch": torch.__version__}


def _save_figure(fig, path: Path, fmt: str) -> None:
    meta = {"pdf": {"CreationDate": None, "Producer": None}, "svg": {"Date": None}, "png": {"Software": None}}
    fig.savefig(path, format=fmt, metadata=meta.get(fmt))


@dataclass
class Outcome:
    name: str
    status: str  # "ok", "skipped", "failed"
    seconds: float
    files: list[Path] = field(default_factory=list)
    message: str = ""
    caption: str = ""


def render(fs: FigureSet, out: os.PathLike, names: Optional[Sequence[str]] = None, *,
           formats: Sequence[str] = ("pdf", "png"), command: str = "", progress: bool = True,
           debug: bool = False) -> list[Outcome]:
    """Render figures into `out`: each figure in every format, `NAME.npz`, `NAME.json`, then `index.html`.

    A figure's files appear together or not at all: they are written into a temporary folder inside `out`
    and moved into place once all are written; the folder is removed whatever happens. A figure that fails
    is reported (name and error; the traceback with `debug`) and the others still render; a figure the
    setting cannot make (`SkipFigure`) is skipped with its reason. Returns one `Outcome` per figure.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    names = list(names) if names is not None else list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; the figures are {', '.join(FIGURES)}")
    bad = [f for f in formats if f not in ("pdf", "png", "svg")]
    if bad:
        raise ValueError(f"unknown format(s) {bad}; use pdf, png, svg")
    out.mkdir(parents=True, exist_ok=True)
    version = _version()
    outcomes = []
    bar = tqdm(names, desc="figures", unit="fig", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        spec = FIGURES[name]
        t0 = time.perf_counter()
        try:
            reason = spec.unmet(fs)  # a figure the setting cannot make is skipped with the reason
            if reason is not None:
                raise SkipFigure(reason)
            outcomes.append(_render_one(fs, name, spec.draw, spec.width, out, formats, version, command, t0))
        except SkipFigure as e:
            outcomes.append(Outcome(name, "skipped", time.perf_counter() - t0, message=str(e)))
        except Exception as e:  # one figure's failure must not stop the others
            msg = f"{type(e).__name__}: {e}"
            print(f"\nfigure {name} failed: {msg}" + ("" if debug else " (--debug shows the traceback)"),
                  file=sys.stderr)
            if debug:
                traceback.print_exc(file=sys.stderr)
            outcomes.append(Outcome(name, "failed", time.perf_counter() - t0, message=msg))
        fs.timings[name] = outcomes[-1].seconds
    bar.close()
    write_index(out, outcomes, command)
    return outcomes


def _render_one(fs: FigureSet, name: str, fn: Callable, width: str, out: Path, formats: Sequence[str],
                version: dict, command: str, t0: float) -> Outcome:
    import shutil
    import tempfile

    from ..style import paper
    from ..validation import result_figures

    staging = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}.", suffix=".partial"))
    try:
        names = []
        with paper(fs.settings.venue, width):  # built and saved inside the venue's style (fonts, sizes)
            r = fn(fs)
            try:
                for fmt in formats if r.fig is not None else ():
                    names.append(f"{name}.{fmt}")
                    _save_figure(r.fig, staging / names[-1], fmt)
            finally:
                if r.fig is not None:
                    r.fig.clear()
        for suffix, text in r.texts.items():
            names.append(f"{name}{suffix}")
            (staging / names[-1]).write_bytes(text.encode())
        write_npz(staging / f"{name}.npz", r.arrays)
        used = [(p, rec) for p, rec in fs.results if name in result_figures(FIGURES, rec.get("analysis"))]
        record = {"figure": name, "caption": r.caption, "numbers": r.numbers, "settings": vars(fs.settings),
                  "results": [{"file": os.path.basename(p), "sha256": sha256(p), "analysis": rec["analysis"],
                               "model": rec.get("model")} for p, rec in used],
                  "source": fs.provenance() if fs.source_loaded else None, "version": version, "command": command}
        (staging / f"{name}.json").write_bytes(
            (json.dumps(_jsonable(record), indent=1, sort_keys=True) + "\n").encode())
        names += [f"{name}.npz", f"{name}.json"]
        for n in names:  # every file is complete: move them in (renames within one folder)
            os.replace(staging / n, out / n)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Outcome(name, "ok", time.perf_counter() - t0, [out / n for n in names], caption=r.caption)


def write_index(out: Path, outcomes: Sequence[Outcome], command: str) -> Path:
    """`index.html`: every PNG with its caption and the command that made it (tables inline)."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>SMT figures</title><style>"
             "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "figure{margin:2em 0;border-top:1px solid #ddd;padding-top:1em}img{max-width:100%}"
             "figcaption{font-size:0.9em;line-height:1.4}code,pre{background:#f4f4f4;padding:0.1em 0.3em}"
             "table{border-collapse:collapse;font-size:0.85em}td,th{border-bottom:1px solid #ccc;padding:0.2em 0.6em}"
             ".skip{color:#777}.fail{color:#b00}</style></head><body>",
             "<h1>SMT figures</h1>", f"<p>Made by <code>{html.escape(command)}</code></p>"]
    for o in outcomes:
        parts.append(f"<figure id='{o.name}'><h2>{o.name}</h2>")
        if o.status == "ok":
            png = next((f for f in o.files if f.suffix == ".png"), None)
            md = next((f for f in o.files if f.suffix == ".md"), None)
            if png is not None:
                parts.append(f"<img src='{png.name}' alt='{o.name}'>")
            elif md is not None:
                parts.append(_markdown_table_html(md.read_text()))
            links = " ".join(f"<a href='{f.name}'>{f.suffix[1:]}</a>" for f in o.files)
            parts.append(f"<figcaption>{html.escape(o.caption)}<br>files: {links}</figcaption>")
        elif o.status == "skipped":
            parts.append(f"<p class='skip'>skipped: {html.escape(o.message)}</p>")
        else:
            parts.append(f"<p class='fail'>failed: {html.escape(o.message)}</p>")
        parts.append("</figure>")
    parts.append("</body></html>\n")
    path = out / "index.html"
    _atomic_write(path, "\n".join(parts).encode())
    return path


def _markdown_table_html(md: str) -> str:
    lines = [ln.strip().strip("|").split("|") for ln in md.strip().splitlines() if ln.strip()]
    head, body = lines[0], lines[2:]
    row = "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip().strip('`'))}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><tr>{row}</tr>{rows}</table>"


def print_outcomes(outcomes: Sequence[Outcome], out: Path) -> None:
    print(f"\nwritten to {out}/:")
    for o in outcomes:
        if o.status == "ok":
            print(f"  {o.name:<15} {o.seconds:6.1f} s  " + ", ".join(f.name for f in o.files))
    skipped = [o for o in outcomes if o.status == "skipped"]
    failed = [o for o in outcomes if o.status == "failed"]
    for o in skipped:
        print(f"  skipped {o.name}: {o.message}")
    for o in failed:
        print(f"  FAILED {o.name}: {o.message}")
    print(f"  index.html ({out / 'index.html'})")
