"""`python -m viz run`: image folders, saved results, and 1 vs 2 processes under torchrun."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from viz.__main__ import main
from viz.images import list_images
from viz.run import load_result

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(7):
        Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(d / f"rgb{i}.png")
    Image.fromarray(rng.integers(0, 255, (40, 52), dtype=np.uint8)).save(d / "gray.png")
    Image.fromarray(rng.integers(0, 255, (40, 52, 4), dtype=np.uint8)).save(d / "sub_rgba.png")
    (d / "broken.jpg").write_text("not an image")
    (d / "notes.txt").write_text("ignored: not an image extension")
    return d


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def test_list_images_sorted_and_errors(folder, tmp_path):
    files = list_images(folder)
    assert [f.name for f in files] == sorted(f.name for f in files) and len(files) == 10
    assert len(list_images(folder, 3)) == 3
    with pytest.raises(ValueError, match="no image files"):
        list_images(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_images(tmp_path / "missing")


def test_run_erf_single_process_skips_unreadable(folder, tmp_path, capsys):
    out = tmp_path / "erf.pt"
    with pytest.warns(UserWarning, match="broken.jpg"):
        rc = main(["run", "erf", "--model", "test_smt", "--images", str(folder), "--out", str(out),
                   "--batch-size", "4", "--input-size", "64"])
    assert rc == 0
    rec = load_result(out)
    assert rec["analysis"] == "erf" and rec["model"] == "test_smt"
    assert rec["num_files"] == 10 and rec["num_unreadable"] == 1 and rec["unreadable"][0].endswith("broken.jpg")
    assert rec["result"]["num_counted"] == 9 and rec["result"]["erf"].shape == (64, 64)
    assert "skipped 1 unreadable" in capsys.readouterr().err


def test_run_empty_folder_is_an_error(tmp_path, capsys):
    assert main(["run", "erf", "--model", "test_smt", "--images", str(tmp_path), "--out", str(tmp_path / "x.pt")]) == 2
    assert "no image files" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_run_cam(folder, tmp_path):
    out = tmp_path / "cam.pt"
    assert main(["run", "cam", "--model", "test_smt", "--images", str(folder), "--num-images", "4",
                 "--out", str(out), "--input-size", "64"]) == 0
    res = load_result(out)["result"]  # the first 4 files by name include broken.jpg
    assert res["cams"].shape == (3, 2, 2) and res["predicted"].shape == (3,)
    assert [Path(p).name for p in res["paths"]] == ["gray.png", "rgb0.png", "rgb1.png"]


def _one_and_two_processes(common, tmp_path):
    """The same `python -m viz run ...` in one process and under torchrun with two: both records."""
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    subprocess.run([sys.executable, "-m", "viz", *common, "--out", str(one)], check=True, env=_env(),
                   capture_output=True, timeout=300)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run([*torchrun, "-m", "viz", *common, "--out", str(two)], env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return load_result(one), load_result(two)


@pytest.mark.parametrize("analysis", ["erf", "spectrum"])
def test_two_processes_equal_one(folder, tmp_path, analysis):
    common = ["run", analysis, "--model", "test_smt", "--images", str(folder), "--batch-size", "2",
              "--input-size", "64"]
    a, b = _one_and_two_processes(common, tmp_path)
    assert b["world_size"] == 2 and a["world_size"] == 1
    assert a["num_unreadable"] == b["num_unreadable"] == 1
    ra, rb = a["result"], b["result"]
    if analysis == "erf":
        assert ra["num_counted"] == rb["num_counted"] == 9
        assert torch.allclose(ra["erf"], rb["erf"], atol=1e-9, rtol=0)
    else:
        assert ra["num_images"] == rb["num_images"] == 9 and ra["blocks"] == rb["blocks"]
        assert ra["kinds"] == ["sam", "sam", "sam", "msa", "msa"]
        for blk in ra["blocks"]:
            assert torch.allclose(ra["relative_log_amplitude"][blk], rb["relative_log_amplitude"][blk], atol=1e-9)
        assert torch.allclose(ra["highest"], rb["highest"], atol=1e-9)


def test_more_processes_than_batches_equal_one_process(folder, tmp_path):
    """Two processes and one batch: the idle rank adds nothing, and the result is the single process's."""
    common = ["run", "erf", "--model", "test_smt", "--images", str(folder), "--num-images", "3", "--batch-size", "4",
              "--input-size", "64"]
    a, b = _one_and_two_processes(common, tmp_path)
    # the first 3 files by name: broken.jpg (unreadable), gray.png, rgb0.png
    assert b["world_size"] == 2 and a["result"]["num_counted"] == b["result"]["num_counted"] == 2
    assert torch.equal(a["result"]["erf_total"], b["result"]["erf_total"])


def test_shard_batches_gives_every_batch_to_one_rank():
    from viz.run import shard_batches

    for world in (1, 2, 3, 5):
        shards = [shard_batches(7, 3, r, world) for r in range(world)]
        flat = sorted(i for sh in shards for b in sh for i in b)
        assert flat == list(range(7))
        assert all(len(b) == 3 for sh in shards for b in sh if b[0] != 6)
    assert shard_batches(2, 4, 1, 2) == []  # a rank may get nothing


def test_run_distance(folder, tmp_path):
    out = tmp_path / "d.pt"
    assert main(["run", "distance", "--model", "test_smt", "--images", str(folder), "--num-images", "2",
                 "--out", str(out), "--input-size", "64", "--queries", "3"]) == 0
    res = load_result(out)["result"]
    assert res["kinds"] == ["sam", "sam", "sam", "msa", "msa"]
    assert res["per_head"]["stages.0.blocks.0"].shape == (4,) and (res["block"] > 0).all()


def test_checkpoint_keeps_its_classifier_and_identity_is_recorded(folder, tmp_path):
    import hashlib

    import timm
    from safetensors.torch import save_file

    model = timm.create_model("test_smt", num_classes=3)
    ckpt = tmp_path / "three.safetensors"
    save_file(model.state_dict(), str(ckpt))
    out = tmp_path / "cam3.pt"
    assert main(["run", "cam", "--model", "test_smt", "--checkpoint", str(ckpt), "--images", str(folder),
                 "--num-images", "3", "--out", str(out), "--input-size", "64"]) == 0
    rec = load_result(out)
    assert rec["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert (rec["result"]["predicted"] < 3).all()


def test_results_are_in_depth_order_beyond_ten_blocks():
    import argparse

    import timm

    from viz.run import DistanceAnalysis, SpectrumAnalysis

    model = timm.create_model("test_smt", depths=(1, 1, 11, 1)).eval()
    args = argparse.Namespace(analysis="spectrum", model="test_smt", queries=2, seed=0)
    expected = [f"stages.{i}.blocks.{j}" for i, d in enumerate((1, 1, 11, 1)) for j in range(d)]
    for cls in (SpectrumAnalysis, DistanceAnalysis):
        a = cls(model, args)
        a.update(model, torch.randn(1, 3, 32, 32), ["x.png"])
        res = a.finalize({k: a.sums[k] for k in sorted(a.sums)}, a.rows, a.meta)
        assert res["blocks"] == expected, cls.__name__
