import gzip
import json
import struct

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file

from smt.data import ScaledFashionMNIST
from smt.train import _lr_at, build_parser, evaluate, normalize, train


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tiny Fashion-MNIST look-alike: class k is a bar at row 2k (so it is learnable)."""
    d = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("t10k", 16)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 * k + 2:2 * k + 6, 4:24] = rng.integers(150, 256, size=(4, 20))
        _write_idx(d / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(d / f"{split}-labels-idx1-ubyte.gz", labels)
    return d


def _args(data_dir, out, *extra):
    return build_parser().parse_args([
        "--model", "test_smt", "--data-dir", str(data_dir), "--canvas-size", "64", "--scale-min", "1.0",
        "--scale-max", "2.0", "--batch-size", "8", "--epoch-steps", "1", "--warmup-steps", "1",
        "--val-size", "8", "--final-eval", "16", "--output", str(out), "--no-progress", "--lr", "1e-3",
        *extra])


def test_two_steps_checkpoint_and_resume_to_the_same_state(data_dir, tmp_path):
    straight = train(_args(data_dir, tmp_path / "a", "--epochs", "2"))
    assert straight["steps_done"] == 2 and len(straight["history"]) == 2
    assert (tmp_path / "a" / "last.pth").is_file() and (tmp_path / "a" / "model.safetensors").is_file()
    assert 0 <= straight["test"]["top1"] <= 100 and len(straight["test"]["per_class"]) == 10
    assert json.loads((tmp_path / "a" / "result.json").read_text())["steps_done"] == 2

    # One epoch, stop, then resume for the second: the same weights as the straight run.
    train(_args(data_dir, tmp_path / "b", "--epochs", "1"))
    first = torch.load(tmp_path / "b" / "last.pth", weights_only=False)
    assert first["step"] == 1 and first["epoch"] == 0
    resumed = train(_args(data_dir, tmp_path / "b", "--epochs", "2", "--resume", "auto"))
    assert resumed["steps_done"] == 2
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    # and the run did train: the weights moved away from the initialisation
    torch.manual_seed(0)
    init = timm.create_model("test_smt", num_classes=10).state_dict()
    assert any(not torch.equal(init[k], a[k]) for k in a if a[k].is_floating_point())


def test_two_steps_decrease_the_loss_on_a_repeated_batch(data_dir):
    from smt.data import load_fashion_mnist
    from smt.train import make_optimizer

    x, y = load_fashion_mnist("train", data_dir)
    images, labels, _ = ScaledFashionMNIST(x, y, canvas_size=64, scale_range=(1.0, 2.0)).render(range(16))
    model = timm.create_model("test_smt", num_classes=10)
    opt = make_optimizer(model, build_parser().parse_args(["--lr", "1e-3"]), torch.device("cpu"))  # as training does
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    losses = []
    for _ in range(3):
        loss = crit(model(normalize(images)), labels)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[2] < losses[1] < losses[0], losses


def test_fused_optimizer_makes_the_same_updates_as_the_loop(data_dir):
    from smt.data import load_fashion_mnist
    from smt.train import make_optimizer

    x, y = load_fashion_mnist("train", data_dir)
    images, labels, _ = ScaledFashionMNIST(x, y, canvas_size=64, scale_range=(1.0, 2.0)).render(range(8))
    models, opts = {}, {}
    for name, flags in (("loop", ["--no-fused-optimizer"]), ("fused", [])):
        torch.manual_seed(0)
        models[name] = timm.create_model("test_smt", num_classes=10)
        opts[name] = make_optimizer(models[name], build_parser().parse_args(["--lr", "1e-2"] + flags),
                                    torch.device("cpu"))
        assert bool(opts[name].defaults.get("fused")) == (name == "fused")
        assert {g["weight_decay"] for g in opts[name].param_groups} == {0.0, 0.05}  # none on biases and norms
    init = {k: v.detach().clone() for k, v in models["loop"].named_parameters()}
    loop, fused = models["loop"], models["fused"]
    for _ in range(3):
        # Both optimisers get the same gradients: some are rounding noise (a conv bias ahead of a
        # BatchNorm), which Adam scales to full-size steps, so separate backward passes would diverge there.
        opts["loop"].zero_grad()
        torch.nn.functional.cross_entropy(loop(normalize(images)), labels).backward()
        for p_fused, p_loop in zip(fused.parameters(), loop.parameters()):
            p_fused.grad = p_loop.grad.clone()
        opts["loop"].step()
        opts["fused"].step()
    moved = 0
    for (k, a), b in zip(loop.named_parameters(), fused.parameters()):  # (only the loop model ran forward)
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
        moved += not torch.equal(a, init[k])
    assert moved > 10  # the steps did change the weights


def test_low_res_phase_renders_crops_or_downsampled_canvases(data_dir, tmp_path, monkeypatch):
    calls = []
    render = ScaledFashionMNIST.render

    def spy(self, indices, epoch=0, canvas_size=None, crop=False):
        calls.append((canvas_size, crop))
        return render(self, indices, epoch, canvas_size, crop)

    monkeypatch.setattr(ScaledFashionMNIST, "render", spy)
    low = ("--epochs", "2", "--low-res", "32", "--low-res-frac", "0.5", "--val-size", "0", "--final-eval", "0")
    train(_args(data_dir, tmp_path / "crop", *low, "--low-res-crop"))
    assert calls == [(32, True), (64, False)]  # step 1 of 2 in the low-res phase, step 2 at full size
    calls.clear()
    train(_args(data_dir, tmp_path / "down", *low))
    assert calls == [(32, False), (64, False)]


def test_evaluate_counts_and_per_canvas_hits(data_dir):
    from smt.data import CLASS_NAMES, load_fashion_mnist

    images, labels = load_fashion_mnist("test", str(data_dir))
    test = ScaledFashionMNIST(images, labels, 64, (1.0, 2.0), seed=3)
    torch.manual_seed(0)
    model = timm.create_model("test_smt", num_classes=10).train()
    idx = [5, 0, 11, 3, 7, 2, 9]
    res = evaluate(model, test, idx, batch_size=3, per_canvas=True)
    assert model.training  # mode restored
    with torch.no_grad():
        x, y, _ = test.render(torch.tensor(idx), epoch=0)
        pred = model.eval()(normalize(x)).argmax(1)
    assert torch.equal(res["correct"], pred == y)
    assert res["n"] == 7 and res["top1"] == pytest.approx(100 * (pred == y).float().mean().item())
    for c, name in enumerate(CLASS_NAMES):
        if (y == c).any():
            assert res["per_class"][name] == pytest.approx(100 * (pred[y == c] == c).float().mean().item())
    assert "correct" not in evaluate(model, test, idx)  # JSON-ready unless asked
    with pytest.raises(ValueError, match="no canvases"):
        evaluate(model, test, [])


def test_time_schedule_and_lr_shape(data_dir, tmp_path):
    p = build_parser()
    args = p.parse_args(["--lr", "1e-3", "--min-lr", "1e-5", "--warmup-steps", "10"])
    assert _lr_at(args, 0, 0.0) == pytest.approx(1e-4)  # warm-up: 1/10 of the peak
    assert _lr_at(args, 100, 0.0) == pytest.approx(1e-3)
    assert _lr_at(args, 100, 0.5) == pytest.approx((1e-3 + 1e-5) / 2)
    assert _lr_at(args, 100, 1.0) == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="--time-budget"):
        train(_args(data_dir, tmp_path, "--schedule", "time"))
    res = train(_args(data_dir, tmp_path, "--schedule", "time", "--time-budget", "0.02", "--epochs", "2",
                      "--final-eval", "0"))
    assert len(res["history"]) == 2 and res["steps_done"] >= 1  # two time slices (a checkpoint each)
    assert res["total_steps"] == res["steps_done"]


def test_export_run_ships_fp16_weights_with_a_card(data_dir, tmp_path):
    from smt.demo import _command, demo_model, export_run

    res = train(_args(data_dir, tmp_path / "run", "--model", "smt_nano", "--canvas-size", "112", "--epochs", "1",
                      "--batch-size", "4", "--final-eval", "8"))
    info = export_run(tmp_path / "run", "main", test_size=8, out_dir=tmp_path / "ship", data_dir=str(data_dir))
    target = tmp_path / "ship" / "smt_nano_sfmnist_main.safetensors"
    assert all(v.dtype == torch.float16 for v in load_file(str(target)).values() if v.is_floating_point())
    card = target.with_suffix(".md").read_text()
    assert f"**{info['shipped_top1']:.2f}**" in card and f"| {res['test']['top1']:.2f}% (float32" in card
    assert "python -m smt.train --model" not in card  # smt_nano is the default: not repeated
    assert "--canvas-size 112" not in card and "--batch-size 4" in card and "1 thread" in card
    model = demo_model("main", checkpoint=target)
    assert model.num_classes == 10 and not model.training
    # a torchrun run is written as the torchrun command, with the global batch
    assert _command(res["args"], world=2).startswith(
        "torchrun --standalone --nproc_per_node 2 -m smt.train ")


TINY_BACKBONES = {
    "vit": ["--model", "vit_tiny_patch16_224", "--model-kwargs",
            '{"img_size": 64, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "dynamic_img_size": true}'],
    "swin": ["--model", "swin_tiny_patch4_window7_224", "--model-kwargs",
             '{"img_size": 64, "embed_dim": 16, "depths": [1, 1], "num_heads": [1, 2], "window_size": [4, 4], '
             '"dynamic_img_size": true}'],
}


@pytest.mark.parametrize("name", sorted(TINY_BACKBONES))
def test_other_timm_models_train_and_resume(data_dir, tmp_path, name):
    """A tiny ViT and a tiny Swin: two steps (the first at the 32-px low-res size) run and resume to the same
    weights."""
    extra = [*TINY_BACKBONES[name], "--low-res", "32", "--low-res-frac", "0.5", "--low-res-crop"]
    straight = train(_args(data_dir, tmp_path / "a", "--epochs", "2", *extra))
    assert straight["steps_done"] == 2 and straight["model"] == TINY_BACKBONES[name][1]
    assert straight["arch"]["embed_dim"] in (16, 32) and straight["arch"]["num_classes"] == 10
    train(_args(data_dir, tmp_path / "b", "--epochs", "1", *extra))
    train(_args(data_dir, tmp_path / "b", "--epochs", "2", "--resume", "auto", *extra))
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_model_options_are_checked():
    from smt.train import arch_kwargs, model_name

    args = build_parser().parse_args(["--preset", "swin"])
    assert model_name(args) == "swin_tiny_patch4_window7_224" and arch_kwargs(args)["window_size"] == [4, 2, 7]
    args = build_parser().parse_args(["--preset", "vit", "--model-kwargs", '{"depth": 2}'])
    assert arch_kwargs(args)["depth"] == 2 and arch_kwargs(args)["patch_size"] == 8
    with pytest.raises(ValueError, match="names its own model"):
        model_name(build_parser().parse_args(["--preset", "vit", "--model", "resnet18"]))
    with pytest.raises(ValueError, match="not an SMT variant"):
        arch_kwargs(build_parser().parse_args(["--model", "resnet18", "--sam-heads", "2"]))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--model-kwargs", "[1, 2]"])
