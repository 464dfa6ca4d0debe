"""`python -m viz figures`: every figure on a tiny model, reproducible data files, failures, official files."""
import dataclasses
import json
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import viz.figures as F
from viz.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--model", "test_smt", "--input-size", "64", "--num-images", "4", "--rows", "2", "--no-progress",
        "--variants", "test_smt,smt_nano"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (48, 56, 3), dtype=np.uint8)).save(d / f"img{i}.png")
    return d


def _files(d):
    return sorted(p.relative_to(d).as_posix() for p in Path(d).rglob("*") if p.is_file())


@pytest.mark.parametrize("name", [n for n in F.FIGURES if n != "ablation"])
def test_each_figure_writes_itself_and_its_data(name, folder, tmp_path):
    out = tmp_path / "out"
    assert main(["figures", "--out", str(out), "--images", str(folder), "--only", name, "--format", "png,pdf",
                 *TINY]) == 0
    files = _files(out)
    data = json.loads((out / f"{name}.json").read_text())
    assert data["figure"] == name and data["caption"]
    assert data["settings"]["num_images"] == 4 and data["version"]["git_revision"]
    if name == "summary":
        assert {"summary.md", "summary.tex"} <= set(files)
        assert r"\toprule" in (out / "summary.tex").read_text() and "`test_smt`" in (out / "summary.md").read_text()
    else:
        assert {f"{name}.png", f"{name}.pdf"} <= set(files)
        assert data["source"]["model"] == "test_smt" and data["source"]["image_files"] == [
            f"img{i}.png" for i in range(4)]
        pdf = (out / f"{name}.pdf").read_bytes()
        assert b"/Type3" not in pdf  # TrueType fonts only
    with zipfile.ZipFile(out / f"{name}.npz") as zf:
        assert zf.namelist() and all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
    assert "index.html" in files and name in (out / "index.html").read_text()


def test_same_inputs_give_byte_identical_data_files(folder, tmp_path):
    only = "modulator_maps,fourier,low_frequency,distance,erf,gradcam"
    for d in ("a", "b"):
        assert main(["figures", "--out", str(tmp_path / d), "--images", str(folder), "--only", only, "--format",
                     "pdf", *TINY]) == 0
    data = [f for f in _files(tmp_path / "a") if f.endswith((".npz", ".json", ".pdf"))]
    assert len(data) == 18
    for f in data:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_a_failing_figure_leaves_the_others_and_the_exit_code_says_so(folder, tmp_path, monkeypatch, capsys):
    def broken(fs):
        raise RuntimeError("injected failure")

    monkeypatch.setitem(F.FIGURES, "fourier", dataclasses.replace(F.FIGURES["fourier"], draw=broken))
    out = tmp_path / "out"
    rc = main(["figures", "--out", str(out), "--images", str(folder), "--only", "fourier,low_frequency,ablation",
               *TINY])
    assert rc == 1
    assert (out / "low_frequency.png").is_file() and not (out / "fourier.png").exists()
    text = capsys.readouterr()
    assert "figure fourier failed: RuntimeError: injected failure" in text.err
    assert "skipped ablation:" in text.out and "FAILED fourier" in text.out
    assert "failed: RuntimeError: injected failure" in (out / "index.html").read_text()


def test_nothing_is_written_outside_out(folder, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT, capture_output=True, text=True)
    assert main(["figures", "--out", str(work / "figs"), "--images", str(folder), "--only", "erf,summary",
                 *TINY]) == 0
    assert {p.name for p in work.iterdir()} == {"figs"}
    after = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT, capture_output=True, text=True)
    assert after.stdout == status.stdout


def test_bad_input_is_a_clear_error(folder, tmp_path, capsys):
    assert main(["figures", "--out", str(tmp_path), "--only", "nope", *TINY]) == 2
    assert "--only: unknown figure(s) nope" in capsys.readouterr().err
    assert main(["figures", "--out", str(tmp_path), "--venue", "cvpr1999", *TINY]) == 2
    assert "--venue: unknown venue" in capsys.readouterr().err
    assert main(["figures", "--out", str(tmp_path), "--checkpoint", str(tmp_path / "missing.pth"), *TINY]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_official_checkpoint_on_the_sample_photos(tmp_path):
    from checkpoint_files import official_file

    ckpt = tmp_path / "smt_tiny.pth"
    official_file(ckpt, "smt_tiny")
    out = tmp_path / "out"
    assert main(["figures", "--out", str(out), "--model", "smt_tiny", "--checkpoint", str(ckpt), "--input-size", "64",
                 "--only", "modulator_maps,summary", "--variants", "smt_tiny", "--no-progress"]) == 0
    data = json.loads((out / "modulator_maps.json").read_text())
    assert data["source"]["image_files"] == ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"]
    assert data["source"]["checkpoint_sha256"] and len(data["numbers"]["predicted"]) == 4
    summary = json.loads((out / "summary.json").read_text())["numbers"]["smt_tiny"]
    assert summary["params"] == 11506536 and summary["reference"].startswith("ok")


def test_figures_from_viz_run_results_need_no_model(folder, tmp_path):
    for analysis in ("erf", "spectrum", "distance"):
        assert main(["run", analysis, "--model", "test_smt", "--images", str(folder), "--out",
                     str(tmp_path / f"{analysis}.pt"), "--input-size", "64", "--queries", "2"]) == 0
    out = tmp_path / "out"
    results = [str(tmp_path / f"{a}.pt") for a in ("erf", "spectrum", "distance")]
    # a model name that does not exist: the figures come from the files alone
    assert main(["figures", "--out", str(out), "--model", "no_such_model", "--only", "erf,fourier,distance",
                 "--results", *results, "--no-progress"]) == 0
    for name, analysis in (("erf", "erf"), ("fourier", "spectrum"), ("distance", "distance")):
        data = json.loads((out / f"{name}.json").read_text())  # each figure lists the result it drew, only
        assert data["source"] is None and [r["analysis"] for r in data["results"]] == [analysis]
        assert data["results"][0]["file"] == f"{analysis}.pt"
    assert json.loads((out / "fourier.json").read_text())["numbers"]["from_results"] is True
    assert re.search(r"viz run", json.loads((out / "erf.json").read_text())["caption"])
