"""Bad input at every entry point: exit code 2, one line naming the option, no traceback, nothing written.

Each row calls a command's `main(argv)` in this process (`viz` run/figures/demo, `smt` validate/convert/inspect)
and states the exit code and a phrase the message must contain. Every check runs before any work, so the rows
take milliseconds except the two that build the model to find that the weights or the block do not fit it.
Then: atomic output (a figure that fails leaves no file of it, a failed write no temporary file), and the
checks run before the variant table.
"""
import argparse
import dataclasses
import shlex
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from smt.files import atomic_output
from smt.inputs import InputErrors

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Inputs good and bad, in one folder; outputs go to `out/` inside it."""
    w = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    for sub in ("imgs", "val/c0", "val/c1"):
        (w / sub).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(w / sub / f"{i}.png")
    (w / "empty").mkdir()
    (w / "broken").mkdir()
    (w / "broken" / "x.jpg").write_text("not a jpeg")
    (w / "notes.txt").write_text("hello")
    (w / "empty.pth").write_bytes(b"")
    import timm
    from safetensors.torch import save_file

    import smt  # noqa: F401  (registers test_smt)

    save_file(timm.create_model("test_smt", num_classes=2).state_dict(), str(w / "test_smt.safetensors"))
    save_file(timm.create_model("test_smt", embed_dims=(24, 48, 96, 192)).state_dict(), str(w / "other.safetensors"))
    torch.save(torch.nn.Linear(3, 2).state_dict(), w / "linear.pth")
    from viz.run import _RESULT_KEYS

    for name, analysis in (("erf", "erf"), ("spec1", "spectrum"), ("spec2", "spectrum"), ("alien", "pca")):
        torch.save({"analysis": analysis, "model": "test_smt", "settings": {}, "data_config": {}, "num_files": 1,
                    "result": {k: torch.zeros(2) for k in _RESULT_KEYS.get(analysis, ("x",))}}, w / f"{name}.pt")
    torch.save({"analysis": "erf", "result": {"erf": torch.zeros(2)}}, w / "partial.pt")
    torch.save([1, 2, 3], w / "list.pt")
    (w / "existing.pt").write_bytes(b"keep me")
    (w / "done").mkdir()
    for f in ("erf.png", "erf.json", "index.html"):
        (w / "done" / f).write_text("an earlier run")
    return w


RUN = "run erf --model test_smt --images {w}/imgs --out {w}/out/r.pt --input-size 32"
FIG = "figures --out {w}/out --model test_smt --images {w}/imgs --input-size 32 --no-progress"
DEMO = "demo --no-summary --figures {w}/out"
VAL = "validate --model test_smt --checkpoint {w}/test_smt.safetensors --data {w}/val --workers 0 --no-progress"

#: (entry point, arguments, exit code, phrase the message must contain)
ROWS = [
    # viz run: numbers
    ("viz", RUN + " --batch-size 0", 2, "--batch-size: 0 is out of range"),
    ("viz", RUN + " --workers -1", 2, "--workers: -1"),
    ("viz", RUN + " --num-images 0", 2, "--num-images: 0"),
    ("viz", RUN + " --input-size 0", 2, "--input-size: 0"),
    ("viz", RUN + " --seed -1", 2, "--seed: -1"),
    ("viz", RUN + " --stage 9", 2, "--stage: 9"),
    ("viz", RUN + " --num-classes -3", 2, "--num-classes: -3"),
    ("viz", RUN.replace("erf", "distance", 1) + " --queries 0", 2, "--queries: 0"),
    ("viz", RUN.replace("erf", "cam", 1) + " --cam-method GradKAM", 2, "--cam-method: unknown CAM method 'GradKAM'"),
    ("viz", RUN + " --batch-size many", 2, "argument --batch-size: invalid int value"),
    ("viz", RUN.replace("erf", "pca", 1), 2, "invalid choice: 'pca'"),
    # viz run: model, weights, images, output
    ("viz", RUN.replace("test_smt", "not_a_model"), 2, "--model: unknown model 'not_a_model'"),
    ("viz", RUN.replace("test_smt", "smt_tiy"), 2, "did you mean smt_tiny"),
    ("viz", RUN.replace("erf", "spectrum", 1).replace("test_smt", "resnet18"), 2, "--model: `viz run spectrum` runs "
                                                                                   "on SMT models"),
    ("viz", RUN + " --checkpoint {w}/missing.pth", 2, "--checkpoint: {w}/missing.pth does not exist"),
    ("viz", RUN + " --checkpoint {w}/imgs", 2, "--checkpoint: {w}/imgs is a folder, not a weights file"),
    ("viz", RUN + " --checkpoint {w}/notes.txt", 2, "--checkpoint: {w}/notes.txt: this is a text file"),
    ("viz", RUN + " --checkpoint {w}/empty.pth", 2, "--checkpoint: {w}/empty.pth: the file is empty"),
    ("viz", RUN + " --checkpoint {w}/linear.pth", 2, "--checkpoint: {w}/linear.pth: holds weights of another"),
    ("viz", RUN + " --checkpoint {w}/other.safetensors", 2, "--checkpoint: {w}/other.safetensors: holds a custom SMT"),
    ("viz", RUN.replace("{w}/imgs", "{w}/nowhere"), 2, "--images: {w}/nowhere does not exist"),
    ("viz", RUN.replace("{w}/imgs", "{w}/notes.txt"), 2, "--images: {w}/notes.txt is a file, not a folder"),
    ("viz", RUN.replace("{w}/imgs", "{w}/empty"), 2, "--images: no image files under {w}/empty"),
    ("viz", RUN.replace("{w}/imgs", "{w}/broken"), 2, "--images: none of the 1 image files"),
    ("viz", RUN.replace("{w}/out/r.pt", "{w}/imgs"), 2, "--out: {w}/imgs is a folder"),
    ("viz", RUN.replace("{w}/out/r.pt", "{w}/existing.pt"), 2, "--out: {w}/existing.pt exists; pass --overwrite"),
    ("viz", RUN.replace("{w}/out/r.pt", "{w}/notes.txt/r.pt"), 2, "--out: {w}/notes.txt is a file"),
    # viz figures
    ("viz", FIG + " --only nope", 2, "--only: unknown figure(s) nope"),
    ("viz", FIG + " --format gif", 2, "--format: unknown format(s) gif"),
    ("viz", FIG + " --venue cvpr1999", 2, "--venue: unknown venue 'cvpr1999'"),
    ("viz", FIG + " --num-images 0", 2, "--num-images: 0"),
    ("viz", FIG + " --rows 0", 2, "--rows: 0"),
    ("viz", FIG + " --input-size 5", 2, "--input-size: 5"),
    ("viz", FIG + " --seed -2", 2, "--seed: -2"),
    ("viz", FIG + " --variants smt_huge", 2, "--variants: unknown variant(s) smt_huge"),
    ("viz", FIG.replace("test_smt", "no_such_model"), 2, "--model: unknown model 'no_such_model'"),
    ("viz", FIG + " --checkpoint {w}/missing.pth", 2, "--checkpoint: {w}/missing.pth does not exist"),
    ("viz", FIG.replace("{w}/imgs", "{w}/empty"), 2, "--images: no image files"),
    ("viz", FIG.replace("{w}/out", "{w}/notes.txt"), 2, "--out: {w}/notes.txt is a file"),
    ("viz", FIG.replace("{w}/out", "{w}/done") + " --only erf", 2, "--out: {w}/done already holds erf.json"),
    ("viz", FIG + " --only fourier --results {w}/erf.pt", 2, "--results: {w}/erf.pt holds a `viz run erf` result"),
    ("viz", FIG + " --only erf --results {w}/notes.txt", 2, "--results: {w}/notes.txt is not a `viz run` result (it is"
                                                            " a text file)"),
    ("viz", FIG + " --only erf --results {w}/test_smt.safetensors", 2, "weights, which go to --checkpoint"),
    ("viz", FIG + " --only erf --results {w}/linear.pth", 2, "a state dict of 2 tensors"),
    ("viz", FIG + " --only erf --results {w}/list.pt", 2, "holding list, not a result record"),
    ("viz", FIG + " --only erf --results {w}/alien.pt", 2, "analysis 'pca', which is none of"),
    ("viz", FIG + " --only erf --results {w}/missing.pt", 2, "--results: {w}/missing.pt does not exist"),
    ("viz", FIG + " --only erf --results {w}/partial.pt", 2, "an incomplete `viz run erf` result (no model, settings, "
                                                             "data_config, num_files, result['num_counted'])"),
    ("viz", FIG + " --only fourier --results {w}/spec1.pt {w}/spec2.pt", 2, "--results: 2 `spectrum` results"),
    ("viz", FIG + " --only sam_block --sam-block stages.7.blocks.0", 2, "--sam-block: stages.7.blocks.0 is not a SAM"),
    ("viz", FIG + " --only erf --checkpoint {w}/other.safetensors", 2, "--checkpoint: {w}/other.safetensors: holds"),
    # viz demo
    ("viz", DEMO + " --demo-model heads3", 2, "--model: unknown model 'heads3'; did you mean heads"),
    ("viz", DEMO + " --demo-model vit", 2, "--model: vit is a comparison backbone"),
    ("viz", DEMO + " --num-images 0", 2, "--num-images: 0 is out of range"),
    ("viz", DEMO + " --num-images 100000", 2, "--num-images: 100000 is out of range"),
    ("viz", DEMO + " --checkpoint {w}/missing.pth", 2, "--checkpoint: {w}/missing.pth does not exist"),
    ("viz", DEMO.replace("{w}/out", "{w}/notes.txt"), 2, "--figures: {w}/notes.txt is a file"),
    ("viz", DEMO + " --only nope", 2, "--only: unknown figure(s) nope"),
    ("viz", DEMO + " --format tiff", 2, "--format: unknown format(s) tiff"),
    # smt validate
    ("smt", VAL.replace("--model test_smt --checkpoint {w}/test_smt.safetensors ", ""), 2, "--model: give --model"),
    ("smt", VAL.replace("--model test_smt", "--model nope"), 2, "--model: unknown model 'nope'"),
    ("smt", VAL.replace("{w}/val", "{w}/nowhere"), 2, "--data: {w}/nowhere does not exist"),
    ("smt", VAL.replace("{w}/val", "{w}/imgs"), 2, "--data: {w}/imgs holds 2 images but no class sub-folders"),
    ("smt", VAL + " --batch-size 0", 2, "--batch-size: 0"),
    ("smt", VAL.replace("--workers 0", "--workers -2"), 2, "--workers: -2"),
    ("smt", VAL + " --limit 0", 2, "--limit: 0"),
    ("smt", VAL + " --img-size 0", 2, "--img-size: 0"),
    ("smt", VAL + " --crop-pct 1.5", 2, "--crop-pct: 1.5 is out of range"),
    ("smt", VAL + " --crop-pct 0", 2, "--crop-pct: 0 is out of range"),
    ("smt", VAL + " --device gpu", 2, "--device: 'gpu' is not a device"),
    ("smt", VAL + " --results-json {w}/existing.pt", 2, "--results-json: {w}/existing.pt exists"),
    ("smt", VAL + " --results-json {w}/imgs", 2, "--results-json: {w}/imgs is a folder"),
    ("smt", VAL + " --checkpoint {w}/notes.txt", 2, "--checkpoint: {w}/notes.txt: this is a text file"),
    # smt convert, inspect
    ("smt", "convert {w}/missing.pth {w}/out/x.safetensors", 2, "src: {w}/missing.pth does not exist"),
    ("smt", "convert {w}/notes.txt {w}/out/x.safetensors", 2, "src: {w}/notes.txt: this is a text file"),
    ("smt", "convert {w}/test_smt.safetensors {w}/existing.pt", 2, "dst: {w}/existing.pt exists; pass --overwrite"),
    ("smt", "convert {w}/test_smt.safetensors {w}/imgs", 2, "dst: {w}/imgs is a folder"),
    ("smt", "inspect {w}/missing.pth", 2, "{w}/missing.pth: no such file"),
]


def _snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def _call(entry: str, argv: list[str]) -> int:
    if entry == "viz":
        from viz.__main__ import main
    else:
        from smt.__main__ import main
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors
        return e.code


@pytest.mark.parametrize("entry,args,code,phrase", ROWS, ids=[f"{e} {a.split()[0]} {p[:40]}" for e, a, _, p in ROWS])
def test_bad_input(entry, args, code, phrase, work, capsys, monkeypatch, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("SMT_CHECKPOINT", raising=False)
    before = _snapshot(work)
    argv = shlex.split(args.format(w=work))
    assert _call(entry, argv) == code
    err = capsys.readouterr().err
    assert phrase.format(w=work) in err, err
    assert "Traceback" not in err, err
    after = _snapshot(work)
    outside = {k for k in set(before) | set(after) if before.get(k) != after.get(k) and not k.startswith("out/")}
    assert not outside, outside  # nothing written outside the output folder
    assert not (work / "out").exists() or not any((work / "out").rglob("*"))  # nor in it: no work was done
    assert not any(cwd.iterdir())


def test_there_are_at_least_40_rows_and_they_cover_every_entry_point():
    assert len(ROWS) >= 40
    commands = {a.split()[0] for _, a, _, _ in ROWS}
    assert commands == {"run", "figures", "demo", "validate", "convert", "inspect"}


def test_all_problems_at_once_and_a_traceback_with_debug(work, capsys):
    from viz.__main__ import main

    argv = shlex.split((RUN + " --batch-size 0 --workers -1").format(w=work).replace("test_smt", "nope"))
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].strip() for line in err] == ["--model", "--batch-size", "--workers"]
    with pytest.raises(InputErrors) as e:
        main(argv + ["--debug"])
    assert [x.option for x in e.value.errors] == ["--model", "--batch-size", "--workers"]


def test_the_variant_table_never_runs_before_the_checks(work, capsys, monkeypatch):
    import smt.summary

    def fail(*a, **k):
        raise AssertionError("the variant table ran")

    monkeypatch.setattr(smt.summary, "summarize", fail)
    from viz.__main__ import main

    assert main(["demo", "--num-images", "0", "--figures", str(work / "out")]) == 2
    assert "--num-images" in capsys.readouterr().err


# ---- atomic output ------------------------------------------------------------------------------------

def _fake_figure(fail_in_npz: bool):
    from matplotlib.figure import Figure

    import viz.figures as F

    def fig(fs):
        f = Figure()
        f.add_subplot().plot([0, 1])
        arrays = {"bad": np.array([object()], dtype=object)} if fail_in_npz else {"x": np.arange(3)}
        return F.Rendered(f, arrays, "caption")

    return fig


def test_a_figure_that_fails_leaves_no_partial_files(tmp_path, monkeypatch):
    """The failing figure writes its PDF and PNG, then fails on its data: none of its files appear; the
    other figure is complete; no temporary file or folder is left."""
    import viz.figures as F
    from viz.figures.figureset import FigureSet, Settings

    for name, fail in (("fourier", True), ("distance", False)):
        spec = dataclasses.replace(F.FIGURES[name], draw=_fake_figure(fail_in_npz=fail), needs=(), results=None)
        monkeypatch.setitem(F.FIGURES, name, spec)
    out = tmp_path / "out"
    fs = FigureSet(lambda: None, Settings())
    outcomes = F.render(fs, out, ["fourier", "distance"], formats=["pdf", "png"], progress=False)
    assert [o.status for o in outcomes] == ["failed", "ok"]
    assert sorted(p.name for p in out.iterdir()) == ["distance.json", "distance.npz", "distance.pdf",
                                                     "distance.png", "index.html"]


def test_a_failing_format_leaves_no_files_and_keeps_the_earlier_ones(tmp_path, monkeypatch):
    import viz.figures as F
    import viz.figures.writing as W
    from viz.figures.figureset import FigureSet, Settings

    monkeypatch.setitem(F.FIGURES, "distance", dataclasses.replace(
        F.FIGURES["distance"], draw=_fake_figure(fail_in_npz=False), needs=(), results=None))
    out = tmp_path / "out"
    out.mkdir()
    (out / "distance.pdf").write_bytes(b"an earlier run")
    save = W._save_figure

    def fail_png(fig, path, fmt):
        if fmt == "png":
            raise OSError("disk full")
        save(fig, path, fmt)

    monkeypatch.setattr(W, "_save_figure", fail_png)
    outcomes = F.render(FigureSet(lambda: None, Settings()), out, ["distance"], formats=["pdf", "png"],
                        progress=False)
    assert outcomes[0].status == "failed" and "disk full" in outcomes[0].message
    assert sorted(p.name for p in out.iterdir()) == ["distance.pdf", "index.html"]
    assert (out / "distance.pdf").read_bytes() == b"an earlier run"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "r.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["r.pt"] and target.read_bytes() == b"old"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path  # the temporary file lives beside the output
        tmp.write_bytes(b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["r.pt"] and target.read_bytes() == b"new"


def test_smt_convert_overwrites_only_when_asked(work, tmp_path, capsys):
    from smt.__main__ import main

    dst = tmp_path / "w.safetensors"
    assert main(["convert", str(work / "test_smt.safetensors"), str(dst)]) == 0
    first = dst.read_bytes()
    assert main(["convert", str(work / "test_smt.safetensors"), str(dst), "--to-official"]) == 2
    assert dst.read_bytes() == first and "--overwrite" in capsys.readouterr().err
    assert main(["convert", str(work / "test_smt.safetensors"), str(dst), "--to-official", "--overwrite"]) == 0
    assert dst.read_bytes() != first and [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_the_figure_command_without_model_takes_the_default(tmp_path):
    """`python -m viz figures --out DIR` (no --model: main, or --checkpoint alone) passes the checks."""
    from viz.figures import FIGURES
    from viz.figures.cli import add_arguments
    from viz.validation import check_figures_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    names, formats, results = check_figures_args(p.parse_args(["--out", str(tmp_path / "figs")]), FIGURES)
    assert names == list(FIGURES) and results == [] and formats
