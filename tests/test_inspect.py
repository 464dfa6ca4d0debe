"""`python -m smt inspect`: what a checkpoint holds, read without running anything from it."""
import json
import re
import sys
from collections.abc import Mapping

import pytest
import timm
import torch

from checkpoint_files import Marker, official_file
from smt.__main__ import main
from smt.checkpoint import UnsafeCheckpointError, read_checkpoint, safe_load
from smt.inspection import format_inspection, inspect_checkpoint


def _inspect_json(path, capsys):
    assert main(["inspect", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _count_tensors(obj):
    if isinstance(obj, torch.Tensor):
        return 1
    if isinstance(obj, Mapping):
        return sum(_count_tensors(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_count_tensors(v) for v in obj)
    return 0


def _dtype_stats(state):
    stats = {}
    for v in state.values():
        d = stats.setdefault(str(v.dtype).removeprefix("torch."), dict(tensors=0, values=0, bytes=0))
        d["tensors"] += 1
        d["values"] += v.numel()
        d["bytes"] += v.numel() * v.element_size()
    return stats


def _parameters(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_official_file(tmp_path, capsys, legacy):
    path = tmp_path / "smt.pth"
    state = official_file(path, legacy=legacy)
    report = _inspect_json(path, capsys)
    assert report["format"] == ("legacy" if legacy else "zip")
    assert report["variant"] == "test_smt" and report["layout"] == "official" and report["nearest"] is None
    assert report["weights"]["entry"] == "model" and not report["weights"]["module_prefix"]
    assert report["weights"]["tensors"] == len(state)
    assert report["weights"]["parameters"] == _parameters(timm.create_model("test_smt"))
    assert report["weights"]["dtypes"] == _dtype_stats(state)
    assert report["weights"]["bytes"] == sum(s["bytes"] for s in _dtype_stats(state).values())
    assert report["tensors"] == _count_tensors(safe_load(path))  # the optimizer's tensors too
    assert report["tensors"] > len(state)
    entries = {e["name"]: e for e in report["entries"]}
    assert list(entries) == ["model", "optimizer", "lr_scheduler", "max_accuracy", "scaler", "epoch", "config"]
    assert entries["model"]["tensors"] == len(state) and entries["epoch"]["summary"] == "299"
    assert entries["config"]["type"] == "yacs.config.CfgNode"
    config = report["configs"]["config"]
    assert config["type"] == "yacs.config.CfgNode"
    assert config["values"] == {"MODEL": {"TYPE": "smt", "NAME": "test_smt"},
                                "DATA": {"IMG_SIZE": 224, "INTERPOLATION": "bicubic"}}
    assert report["architecture"]["depths"] == [1, 1, 2, 1]
    assert "yacs" not in sys.modules


def test_official_file_as_text(tmp_path, capsys):
    path = tmp_path / "smt_tiny.pth"
    state = official_file(path, variant="smt_tiny")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert out == format_inspection(inspect_checkpoint(path)) + "\n"
    lines = out.splitlines()
    assert lines[0] == str(path)
    assert re.search(r"^  format {8}PyTorch zip archive", out, re.M)
    assert re.search(rf"^  model {{9}}dict {{17}}{len(state)} tensors$", out, re.M)
    assert re.search(r"^  config {8}yacs\.config\.CfgNode  placeholder", out, re.M)
    assert re.search(r"^  variant {7}smt_tiny \(embed dims 64-128-256-512, depths 2-2-8-1", out, re.M)
    parameters = _parameters(timm.create_model("smt_tiny"))
    assert re.search(rf"^  tensors {{7}}{len(state)}: {parameters:,} parameters", out, re.M)
    assert re.search(r"^  layout {8}the authors'", out, re.M)
    # the config, nested keys: values
    config = out[out.index("\nconfig (yacs.config.CfgNode)\n"):].splitlines()[2:]
    assert config == ["  MODEL:", "    TYPE: smt", "    NAME: smt_tiny", "  DATA:", "    IMG_SIZE: 224",
                      "    INTERPOLATION: bicubic"]
    # sections are aligned: every field's value starts in the same column
    fields = [line for line in lines if re.match(r"  [a-z0-9_]+ +\S", line) and not line.startswith("    ")]
    assert len(fields) >= 10 and {re.match(r"  [a-z0-9_]+ +", f).end() for f in fields} == {16}


def test_our_state_dict(tmp_path, capsys):
    model = timm.create_model("test_smt", num_classes=10)
    path = tmp_path / "ours.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}, "epoch": 3}, path)
    report = _inspect_json(path, capsys)
    assert report["format"] == "zip" and report["layout"] == "timm" and report["variant"] == "test_smt"
    assert report["weights"]["entry"] == "state_dict" and report["weights"]["module_prefix"]
    assert report["weights"]["tensors"] == len(model.state_dict()) == report["tensors"]
    assert report["weights"]["parameters"] == _parameters(model)
    assert report["architecture"]["num_classes"] == 10
    assert report["configs"] == {} and report["problem"] is None


def test_safetensors_file(tmp_path, capsys):
    model = timm.create_model("test_smt")
    torch.save(model.state_dict(), tmp_path / "ours.pth")
    assert main(["convert", str(tmp_path / "ours.pth"), str(tmp_path / "ours.safetensors")]) == 0
    capsys.readouterr()
    report = _inspect_json(tmp_path / "ours.safetensors", capsys)
    assert report["format"] == "safetensors" and report["metadata"] == {"format": "pt", "layout": "timm"}
    assert report["holds"] == "state dict" and report["entries"] is None
    assert report["weights"]["tensors"] == len(model.state_dict()) == report["tensors"]
    assert report["weights"]["dtypes"] == _dtype_stats(model.state_dict())
    assert report["variant"] == "test_smt" and report["layout"] == "timm"


def test_custom_architecture_names_the_nearest_variant(tmp_path, capsys):
    model = timm.create_model("test_smt", depths=(1, 1, 3, 1), sam_heads=(2, 4, 4, 4), kernel_sizes=((3, 7), None,
                                                                                                         None, None))
    path = tmp_path / "custom.pth"
    torch.save(model.state_dict(), path)
    report = _inspect_json(path, capsys)
    assert report["variant"] is None
    near = report["nearest"]
    assert near["variant"] == "test_smt"
    assert near["differences"]["depths"] == {"file": [1, 1, 3, 1], "variant": [1, 1, 2, 1]}
    assert near["differences"]["sam_heads"] == {"file": [2, 4, 4, 4], "variant": [4, 4, 4, 4]}
    assert set(near["differences"]) == {"depths", "sam_heads", "kernel_sizes"}
    # block 2 of stage 3 (stages.2) is extra; stage 1's two-head SAM block lacks heads 2 and 3
    ours, variant = model.state_dict(), timm.create_model("test_smt").state_dict()
    assert near["unexpected_keys"] == {"stages.2": [k for k in ours if k.startswith("stages.2.blocks.2.")]}
    assert near["missing_keys"] == {"stages.0": [k for k in variant if k not in ours]}
    assert set(near["shape_mismatches"]) == {k for k in ours if k in variant and ours[k].shape != variant[k].shape}
    text = format_inspection(inspect_checkpoint(path))
    assert "nearest       test_smt, which differs in" in text
    assert "depths: 1-1-3-1 in the file, 1-1-2-1 in test_smt" in text
    assert f"unexpected keys (in the file, not in the variant), {len(near['unexpected_keys']['stages.2'])}: " \
           f"stages.2: " in text


def test_foreign_state_dict_is_described_not_refused(tmp_path, capsys):
    torch.save({"fc.weight": torch.zeros(3, 4), "fc.bias": torch.zeros(3)}, tmp_path / "linear.pth")
    report = _inspect_json(tmp_path / "linear.pth", capsys)
    assert report["holds"] == "state dict" and report["tensors"] == 2
    assert report["weights"] is None and report["variant"] is None
    assert "another architecture, not SMT" in report["problem"]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_tampered_file_is_refused_and_runs_nothing(tmp_path, capsys, legacy):
    marker = tmp_path / "marker"
    path = tmp_path / "tampered.pth"
    official_file(path, legacy=legacy, extra={"notes": Marker(marker, "os.system")})
    with pytest.raises(UnsafeCheckpointError) as inspected:
        inspect_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError) as read:
        read_checkpoint(path)
    assert str(inspected.value) == str(read.value)  # the same refusal as loading the file
    for args in (["inspect", str(path)], ["inspect", str(path), "--json"]):
        assert main(args) != 0
        out, err = capsys.readouterr()
        assert out == "" and err == f"error: {read.value}\n" and "Traceback" not in err
    assert not marker.exists()


def test_missing_and_empty_files_get_the_reading_errors(tmp_path, capsys):
    (tmp_path / "empty.pth").write_bytes(b"")
    assert main(["inspect", str(tmp_path / "empty.pth")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'empty.pth'}: the file is empty")
    assert main(["inspect", str(tmp_path / "missing.pth"), "--json"]) == 2
    assert "no such file" in capsys.readouterr().err
