"""ImageNet-style validation: counts, sharding, preprocessing, and torchrun with 2 CPU processes."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_model_data_config

from smt.checkpoint import create_model_from_checkpoint
from smt.model import to_official_state_dict
from smt.validate import DatasetError, shard_indices, subset_indices, validate

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["n01", "n02", "n10"]  # sorted order is the class index order


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 class folders of 5 random RGB images of assorted sizes, and a 3-class test_smt checkpoint."""
    root = tmp_path_factory.mktemp("val")
    g = torch.Generator().manual_seed(0)
    for c in CLASSES:
        (root / "images" / c).mkdir(parents=True)
        for i in range(5):
            h, w = 40 + 7 * i, 72 - 5 * i
            pixels = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(root / "images" / c / f"{i}.png")
    torch.manual_seed(1)
    model = timm.create_model("test_smt", num_classes=len(CLASSES))
    torch.save({"model": to_official_state_dict(model.state_dict()), "epoch": 1}, root / "test_smt.pth")
    return root


def test_subset_and_shards_are_disjoint_and_complete():
    assert subset_indices(10) == list(range(10))
    assert subset_indices(10, 4) == [0, 2, 5, 7]
    indices = subset_indices(11, 7)
    for world in (1, 2, 3, 4, 8):
        shards = [shard_indices(indices, r, world) for r in range(world)]
        flat = [i for s in shards for i in s]
        assert sorted(flat) == indices and len(set(flat)) == len(flat)  # no duplicates, no padding
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_counts_match_a_direct_computation(folder):
    model = create_model_from_checkpoint(folder / "test_smt.pth")
    model.train()
    result = validate(model, folder / "images", batch_size=4, workers=0, progress=False)
    assert model.training  # mode restored
    config = resolve_model_data_config(model)
    assert config["input_size"] == (3, 64, 64) and config["interpolation"] == "bicubic"
    assert config["crop_pct"] == 0.875
    transform = create_transform(**config, is_training=False)
    model.eval()
    c1 = c5 = n = 0
    for target, c in enumerate(CLASSES):
        for path in sorted((folder / "images" / c).iterdir()):
            with torch.no_grad():
                logits = model(transform(Image.open(path).convert("RGB"))[None])[0]
            order = logits.argsort(descending=True).tolist()
            c1 += order[0] == target
            c5 += target in order[:3]  # 3 classes: top-5 is top-3, so every image counts
            n += 1
    assert (result.correct1, result.correct5, result.count) == (c1, c5, n) == (c1, 15, 15)
    assert result.top1 == pytest.approx(100 * c1 / 15) and result.world_size == 1
    assert result.images_per_second > 0
    limited = validate(model, folder / "images", batch_size=4, workers=0, limit=4, progress=False)
    assert limited.count == 4


def test_class_count_must_match(folder):
    model = timm.create_model("test_smt", num_classes=10)
    with pytest.raises(DatasetError, match="3 class folders but the model predicts 10 classes"):
        validate(model, folder / "images", workers=0, progress=False)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        validate(model, folder / "nope", workers=0, progress=False)


def test_torchrun_two_processes_equal_one(folder, tmp_path, capsys):
    from smt.__main__ import main

    args = ["validate", "--model", "test_smt", "--checkpoint", str(folder / "test_smt.pth"), "--data",
            str(folder / "images"), "--batch-size", "4", "--workers", "0", "--device", "cpu", "--no-progress"]
    assert main(args + ["--results-json", str(tmp_path / "one.json")]) == 0
    assert "top-1" in capsys.readouterr().out
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "smt"]
        + args + ["--results-json", str(tmp_path / "two.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    print(f"torchrun 2 processes: {time.perf_counter() - start:.1f} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("top-1") == 1  # rank 0 prints, once
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert (two["correct1"], two["correct5"], two["count"]) == (one["correct1"], one["correct5"], one["count"]) \
        == (one["correct1"], 15, 15)


def test_unreadable_images_are_skipped_named_and_left_out_of_the_accuracy(folder, tmp_path, capsys):
    """A broken file in a class folder: `viz run`'s rule (skip, count, name); accuracy over the images read."""
    import shutil

    from smt.__main__ import main

    data = tmp_path / "images"
    shutil.copytree(folder / "images", data)
    (data / CLASSES[1] / "zz_broken.png").write_text("not a png")
    (data / CLASSES[2] / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    args = ["validate", "--model", "test_smt", "--checkpoint", str(folder / "test_smt.pth"), "--batch-size", "4",
            "--workers", "0", "--device", "cpu", "--no-progress"]
    assert main(args + ["--data", str(folder / "images"), "--results-json", str(tmp_path / "clean.json")]) == 0
    capsys.readouterr()
    assert main(args + ["--data", str(data), "--results-json", str(tmp_path / "broken.json")]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "top-1" in out
    assert "skipped 2 unreadable file(s) of 17: zz_broken.png, truncated.jpg" in err  # sorted by path
    assert "over the 15 images read" in err
    clean = json.loads((tmp_path / "clean.json").read_text())
    broken = json.loads((tmp_path / "broken.json").read_text())
    assert broken["num_unreadable"] == 2 and [Path(p).name for p in broken["unreadable"]] == ["zz_broken.png",
                                                                                             "truncated.jpg"]
    # the same 15 readable images, so the same counts as the clean folder
    assert (broken["correct1"], broken["correct5"], broken["count"]) == (clean["correct1"], clean["correct5"], 15)
    assert broken["top1"] == pytest.approx(clean["top1"])
