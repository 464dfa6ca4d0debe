"""Reading checkpoint files safely: release-format files, variant inference, conversion, clear errors."""
import io
import pickle
import re
import sys
import warnings
import zipfile

import pytest
import timm
import torch

import smt
from checkpoint_files import REFERENCE, Marker, filled_state, official_file
from smt.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    UnknownObject,
    UnsafeCheckpointError,
    create_model_from_checkpoint,
    identify_variant,
    infer_config,
    read_checkpoint,
    safe_load,
)
from smt.model import VARIANTS, checkpoint_filter_fn, to_official_state_dict
from smt.reference import reference_input


def _zeros(variant):
    return {k: torch.zeros(shape) for k, shape in REFERENCE[variant]["state_dict"].items()}


def _expected(state):
    return checkpoint_filter_fn(state)


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def _reference_logits_ok(model, variant):
    ref = REFERENCE[variant]
    model = model.double().eval()
    with torch.no_grad():
        logits = model(reference_input().double())
    first16 = torch.tensor(ref["logits_float64_first16"], dtype=torch.float64)
    assert (logits[:, :16] - first16).abs().max().item() < 1e-8
    assert logits.argmax(1).tolist() == ref["logits_float64_argmax"]


# ---- release-format files -------------------------------------------------------------------------

@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_official_file_reads_without_yacs(tmp_path, legacy):
    path = tmp_path / "smt_tiny.pth"
    state = official_file(path, legacy=legacy)
    assert "yacs" not in sys.modules
    with pytest.raises(pickle.UnpicklingError):  # torch's own safe mode refuses the release files
        torch.load(path, weights_only=True)
    _assert_same(read_checkpoint(path), _expected(state))
    full = safe_load(path)
    assert full["epoch"] == 299 and full["max_accuracy"] == 82.2
    config = full["config"]
    assert isinstance(config, UnknownObject) and config.pickled_class == "yacs.config.CfgNode"
    assert config["MODEL"]["NAME"] == "test_smt" and config.DATA.IMG_SIZE == 224
    assert config.pickled_state["__renamed_keys__"] == {"OLD": ("NEW", "renamed")}
    assert torch.equal(full["optimizer"]["state"][0]["exp_avg"], torch.full((4,), 0.1))
    assert "yacs" not in sys.modules


def test_official_file_through_all_three_entry_points_gives_reference_logits(tmp_path):
    path = tmp_path / "smt_tiny.pth"
    official_file(path, variant="smt_tiny")
    via_timm = timm.create_model("smt_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    inferred = create_model_from_checkpoint(path)
    assert inferred.pretrained_cfg["architecture"] == "smt_tiny"
    model = timm.create_model("smt_tiny")
    model.load_state_dict(smt.read_checkpoint(path))
    # the same architecture with bit-identical weights computes the same logits: one float64 forward suffices
    _assert_same(inferred.state_dict(), via_timm.state_dict())
    _assert_same(model.state_dict(), via_timm.state_dict())
    _reference_logits_ok(via_timm, "smt_tiny")


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "module_prefix"])
def test_other_wrappings(tmp_path, wrap):
    state = filled_state("test_smt")
    obj = {"bare": state, "state_dict": {"state_dict": state, "epoch": 3},
           "module_prefix": {"model": {"module." + k: v for k, v in state.items()}}}[wrap]
    torch.save(obj, tmp_path / "w.pth")
    _assert_same(read_checkpoint(tmp_path / "w.pth"), _expected(state))


def test_native_and_safetensors_files(tmp_path):
    model = timm.create_model("test_smt")
    torch.save(model.state_dict(), tmp_path / "native.pth")
    _assert_same(read_checkpoint(tmp_path / "native.pth"), model.state_dict())
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(tmp_path / "native.safetensors"))
    _assert_same(read_checkpoint(tmp_path / "native.safetensors"), model.state_dict())


def test_shared_storage_views_survive(tmp_path):
    base = torch.arange(12, dtype=torch.float32)
    torch.save({"a": base, "b": base[2:8].view(2, 3), "c": base.view(3, 4).t()}, tmp_path / "v.pth")
    out = safe_load(tmp_path / "v.pth")
    assert torch.equal(out["b"], base[2:8].view(2, 3)) and torch.equal(out["c"], base.view(3, 4).t())
    out["a"][3] = -1.0
    assert out["b"][0, 1] == -1.0  # still one storage, as torch.load gives it


# ---- variant inference ----------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["smt_tiny", "smt_small", "smt_base", "smt_large"])
def test_identify_released_variants_from_their_keys(variant):
    state = _expected({k: torch.empty(shape, device="meta") for k, shape in REFERENCE[variant]["state_dict"].items()})
    config = infer_config(state)
    assert identify_variant(config) == variant
    assert config["layer_scale"] is not None if variant == "smt_large" else config["layer_scale"] is None
    assert config["stem_kernel"] == VARIANTS[variant]["stem_kernel"]


def test_custom_architecture_is_inferred_and_rebuilt(tmp_path):
    kwargs = dict(sam_heads=(2, 2, 4, 4), kernel_sizes=((3, 7), (5, 5), None, None), saa=(True, False, True, True),
                  block_types=("sam", "sam", ("msa", "sam"), "msa"), num_classes=7, layer_scale=1e-5)
    model = timm.create_model("test_smt", **kwargs).eval()
    torch.save(to_official_state_dict(model.state_dict()), tmp_path / "custom.pth")
    rebuilt = create_model_from_checkpoint(tmp_path / "custom.pth").eval()
    assert rebuilt.stage_kernel_sizes == model.stage_kernel_sizes
    assert rebuilt.stage_block_types == model.stage_block_types
    assert rebuilt.num_classes == 7
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        # test_smt's MSA head counts are not in the weights: the architecture is not a registered variant, so
        # create_model_from_checkpoint assumes head dim 32, which gives other attention maps
        assert identify_variant(infer_config(rebuilt.state_dict())) is None
        same_heads = create_model_from_checkpoint(tmp_path / "custom.pth", msa_heads=VARIANTS["test_smt"]["msa_heads"])
        assert torch.allclose(same_heads.eval()(x), model(x), atol=1e-5)
    assert [b.attn.num_heads for b in rebuilt.stages[3].blocks] == [128 // 32]


def test_create_model_from_checkpoint_kwargs_override(tmp_path):
    model = timm.create_model("test_smt", num_classes=5)
    torch.save(model.state_dict(), tmp_path / "t.pth")
    ten = create_model_from_checkpoint(tmp_path / "t.pth", num_classes=10)
    assert ten.num_classes == 10 and torch.equal(ten.stem.conv1.weight, model.stem.conv1.weight)


# ---- tampered files run nothing -------------------------------------------------------------------

@pytest.mark.parametrize("how", ["os.system", "eval", "subprocess"])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_tampered_file_runs_nothing(tmp_path, how, legacy):
    marker = tmp_path / "marker"
    path = tmp_path / "tampered.pth"
    official_file(path, legacy=legacy, extra={"notes": Marker(marker, how)})
    for reader in (read_checkpoint, safe_load, create_model_from_checkpoint):
        with pytest.raises(UnsafeCheckpointError, match=r"not a plain checkpoint: unpickling it would call "
                                                        r"(posix\.system|builtins\.eval|subprocess\.call).*"
                                                        r"Nothing from the file was run"):
            reader(path)
    with pytest.raises(UnsafeCheckpointError):
        timm.create_model("test_smt", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert not marker.exists()
    # the same pickle would run its payload if unpickled normally: the test's file really is dangerous
    pickle.loads(pickle.dumps(Marker(marker, how)))
    assert marker.exists()


def test_placeholder_classes_cannot_be_called_through_reduce(tmp_path):
    # a class outside the allow-list asked to be *called* (REDUCE) is refused even if harmless-looking
    path = tmp_path / "ns.pth"
    import datetime

    torch.save({"model": timm.create_model("test_smt").state_dict(), "when": datetime.date(2023, 7, 17)}, path)
    with pytest.raises(UnsafeCheckpointError, match="datetime.date"):
        read_checkpoint(path)
    # plain instances (argparse.Namespace, the yacs config) are created without calling anything: fine
    import argparse

    torch.save({"model": timm.create_model("test_smt").state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    assert safe_load(path)["args"].lr == 0.1


@pytest.mark.parametrize("target", [b"torch\nFloatStorage\n", b"torch._utils\n_rebuild_tensor_v2\n",
                                    b"yacs.config\nCfgNode\n"])
def test_a_file_cannot_change_the_allow_list(target):
    # GLOBAL target; BUILD (None, {"dtype": torch.int8}): pickle's way to set attributes on what it just loaded
    attack = b"\x80\x02c" + target + b"(N}X\x05\x00\x00\x00dtypectorch\nint8\nst" + b"b."
    from smt import reader as ck

    with pytest.raises(ck._Refused):
        ck._unpickle(io.BytesIO(attack), lambda *a: None)
    assert ck._ALLOWED[("torch", "FloatStorage")].dtype is torch.float32
    assert "dtype" not in vars(ck._placeholder("yacs.config", "CfgNode"))


# ---- a file of another variant ---------------------------------------------------------------------

def test_small_file_into_tiny_names_both(tmp_path):
    path = tmp_path / "smt_small.pth"
    official_file(path, variant="smt_small", state=_zeros("smt_small"))
    with pytest.raises(CheckpointMismatchError) as err:
        timm.create_model("smt_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    msg = str(err.value)
    assert str(path) in msg
    assert re.search(r"holds smt_small .* but the model is smt_tiny", msg)
    assert "depths 3-4-18-2" in msg and "depths 2-2-8-1" in msg
    # compact: counts and a few names per stage, not hundreds of keys
    assert "unexpected keys (in the file, not in the model), 372" in msg
    assert "stages.2: 255 (blocks.8.*, blocks.9.*, blocks.10.*, ...)" in msg
    assert len(msg) < 1200
    small_file = tmp_path / "test_smt.pth"
    official_file(small_file, variant="test_smt")
    with pytest.raises(CheckpointMismatchError, match=r"(?s)holds test_smt .* the model is smt_nano.*missing keys"
                                                      r".*shape mismatches \(file vs model\), \d+: stem.conv1.weight"):
        smt.SMT(**VARIANTS["smt_nano"]).load_pretrained(str(small_file))


# ---- conversion -----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_convert_round_trip_is_exact(tmp_path, suffix):
    from smt.__main__ import main

    src = tmp_path / "smt_tiny.pth"
    state = official_file(src)
    ours, back = tmp_path / f"ours{suffix}", tmp_path / f"back{suffix}"
    assert main(["convert", str(src), str(ours)]) == 0
    _assert_same(read_checkpoint(ours), _expected(state))
    assert main(["convert", str(ours), str(back), "--to-official"]) == 0
    if suffix == ".pth":
        raw = torch.load(back, weights_only=True)["model"]  # plain file: torch's safe mode reads it
    else:
        from safetensors.torch import load_file

        raw = load_file(str(back))
    _assert_same(raw, state)


# ---- bad input: one clear error each --------------------------------------------------------------

def _bad_files(tmp_path):
    good = tmp_path / "good.pth"
    official_file(good)
    data = good.read_bytes()
    files = {}

    def put(name, content):
        files[name] = tmp_path / name
        files[name].write_bytes(content) if isinstance(content, bytes) else files[name].write_text(content)

    put("empty.pth", b"")
    put("truncated.pth", data[: len(data) // 2])
    corrupt = bytearray(data)
    i = data.index(b"data.pkl") + 200  # inside the pickle record: its CRC no longer matches
    corrupt[i:i + 64] = bytes(64)
    put("corrupt.pth", bytes(corrupt))
    put("notes.txt", "epoch 299, top-1 82.2\n")
    put("page.pth", "<!DOCTYPE html><html><body>Not Found</body></html>")
    put("lfs.pth", "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    put("random.bin", bytes(range(256)) * 4)
    legacy = tmp_path / "legacy.pth"
    official_file(legacy, legacy=True)
    put("legacy_truncated.pth", legacy.read_bytes()[:-1000])
    put("plain.pkl", pickle.dumps({"a": 1}))
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "resnet18.pth")
    files["resnet18.pth"] = tmp_path / "resnet18.pth"
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "no_weights.pth")
    files["no_weights.pth"] = tmp_path / "no_weights.pth"
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")
    files["module.pth"] = tmp_path / "module.pth"
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    files["list.pth"] = tmp_path / "list.pth"
    native = timm.create_model("test_smt").state_dict()
    torch.save({"model": dict(native, extra=3)}, tmp_path / "non_tensor.pth")
    files["non_tensor.pth"] = tmp_path / "non_tensor.pth"
    torch.save(dict(to_official_state_dict(native), **{"decode_head.conv.weight": torch.zeros(1)}),
               tmp_path / "detection.pth")
    files["detection.pth"] = tmp_path / "detection.pth"
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme.txt", "hello")
    files["other.zip"] = tmp_path / "other.zip"
    from safetensors.torch import save_file

    save_file({"stem.conv1.weight": torch.zeros(16, 3, 3, 3)}, str(tmp_path / "full.safetensors"))
    put("truncated.safetensors", (tmp_path / "full.safetensors").read_bytes()[:-100])
    with warnings.catch_warnings():  # torch.jit is deprecated but still writes these archives
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "scripted.pt")
    files["scripted.pt"] = tmp_path / "scripted.pt"
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "ckpts" / "smt_tiny.pth").write_bytes(data)
    files["ckpts"] = tmp_path / "ckpts"
    return files


EXPECTED_ERRORS = {
    "empty.pth": (CheckpointError, r"the file is empty \(0 bytes\)"),
    "truncated.pth": (CheckpointError, r"truncated or corrupt \(its zip archive cannot be read"),
    "corrupt.pth": (CheckpointError, r"truncated or corrupt \(BadZipFile: Bad CRC-32"),
    "notes.txt": (CheckpointError, r"is a text file, not a checkpoint \(it starts with 'epoch 299"),
    "page.pth": (CheckpointError, r"is an HTML page"),
    "lfs.pth": (CheckpointError, r"Git LFS pointer.*git lfs pull"),
    "random.bin": (CheckpointError, r"not a checkpoint format this reader knows"),
    "legacy_truncated.pth": (CheckpointError, r"truncated or corrupt"),
    "plain.pkl": (CheckpointError, r"a pickle file but not a PyTorch checkpoint"),
    "resnet18.pth": (CheckpointError, r"another architecture, not SMT.*122 keys \(conv1.weight"),
    "no_weights.pth": (CheckpointError, r"holds no weights.*'epoch', 'lr'"),
    "module.pth": (CheckpointError, r"pickled torch.nn.modules.linear.Linear object, not a state dict"),
    "list.pth": (CheckpointError, r"holds a list, not a state dict"),
    "non_tensor.pth": (CheckpointError, r"is not a state dict: key 'extra' holds an int, not a tensor"),
    "detection.pth": (CheckpointError, r"authors' layout but also 1 key\(s\) SMT has no place for "
                                       r"\(decode_head.conv.weight\)"),
    "other.zip": (CheckpointError, r"zip archive but not a PyTorch checkpoint.*readme.txt"),
    "truncated.safetensors": (CheckpointError, r"truncated or corrupt \(safetensors: "),
    "scripted.pt": (CheckpointError, r"TorchScript archive \(torch.jit.save\), not a weights file"),
    "ckpts": (CheckpointError, r"is a directory.*smt_tiny.pth"),
}


def test_bad_files_get_clear_errors(tmp_path):
    files = _bad_files(tmp_path)
    assert set(files) == set(EXPECTED_ERRORS)
    for name, path in files.items():
        cls, pattern = EXPECTED_ERRORS[name]
        with pytest.raises(cls) as err:
            read_checkpoint(path)
        msg = str(err.value)
        assert msg.startswith(str(path)), msg
        assert re.search(pattern, msg, re.S), (name, msg)
        assert err.value.__cause__ is None  # the message is the whole story, no chained pickle traceback
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_checkpoint(tmp_path / "missing.pth")


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    from smt.__main__ import main

    (tmp_path / "empty.pth").write_bytes(b"")
    assert main(["convert", str(tmp_path / "empty.pth"), str(tmp_path / "o.pth")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: src: {tmp_path / 'empty.pth'}: the file is empty") and "Traceback" not in err
    assert not (tmp_path / "o.pth").exists()
