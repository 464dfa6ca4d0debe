"""viz.capture: names, globs, shortcuts, conversion, gradients, errors, and that no hook is left behind."""
import os
import subprocess
import sys

import pytest
import timm
import torch
import torch.nn as nn

import viz
from viz.capture import resolve_patterns


@pytest.fixture(scope="module")
def model():
    return timm.create_model("test_smt").eval()


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_import_does_not_load_matplotlib():
    code = "import sys, viz, viz.capture, viz.analysis; sys.exit(1 if 'matplotlib' in sys.modules else 0)"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_names_globs_and_shortcuts(model):
    x = torch.randn(2, 3, 64, 64)
    with viz.capture(model, ["stages.0.blocks.0.attn.modulator", "stages.*.blocks.*.attn.saa_input",
                             "attn_weights"]) as cap:
        model(x)
    assert cap.names == ("stages.0.blocks.0.attn.saa_input", "stages.0.blocks.0.attn.modulator",
                         "stages.1.blocks.0.attn.saa_input", "stages.2.blocks.0.attn.saa_input",
                         "stages.2.blocks.1.attn.attn_weights", "stages.3.blocks.0.attn.attn_weights")
    assert cap["stages.0.blocks.0.attn.modulator"].shape == (2, 16, 16, 16)
    a = cap["stages.3.blocks.0.attn.attn_weights"]  # (B, heads, N, N), 2x2 grid at 64 px
    assert a.shape == (2, 4, 4, 4)
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 4, 4))
    # SMT shortcuts expand to every tap
    names = resolve_patterns(model, "taps")
    assert len(names) == 3 * (4 + 2) + 2


def test_repeated_calls_conversion_and_no_aliasing(model):
    x1, x2 = torch.randn(1, 3, 64, 64), torch.randn(3, 3, 64, 64)
    with viz.capture(model, ["stem.bn", "stages.1.blocks.0.attn.modulator"], dtype=torch.float16) as cap:
        model(x1)
        model(x2)
    outs = cap.all("stem.bn")
    assert [o.shape[0] for o in outs] == [1, 3] and all(o.dtype == torch.float16 for o in outs)
    assert cap.cat("stages.1.blocks.0.attn.modulator").shape[0] == 4
    with pytest.raises(ValueError, match="recorded 2 times"):
        cap["stem.bn"]
    # stem.bn feeds an in-place ReLU: the record must be a copy, negatives intact
    with torch.no_grad():
        expected = model.stem.bn(model.stem.conv1(x1))
    assert (expected < 0).any()
    torch.testing.assert_close(outs[0].float(), expected, atol=2e-3, rtol=2e-3)


def test_gradients_match_autograd(model):
    x = torch.randn(2, 3, 64, 64)
    tap = "stages.1.blocks.0.attn.modulator"
    with viz.capture(model, tap, grads=True) as cap:
        model(x).logsumexp(-1).sum().backward()
    with viz.capture(model, tap, to=None, keep_graph=True) as live:
        loss = model(x).logsumexp(-1).sum()
    (expected,) = torch.autograd.grad(loss, live[tap])
    torch.testing.assert_close(cap.grad(tap), expected)
    model.zero_grad(set_to_none=True)


def test_errors_name_the_problem(model):
    with pytest.raises(ValueError, match=r"stages\.0\.blocks\.0\.attn\.modulator"):
        with viz.capture(model, "stages.0.blocks.0.attn.modulater"):
            pass
    with pytest.raises(RuntimeError, match=r"never fired.*stages\.3\.blocks\.0\.attn\.attn_weights"):
        with viz.capture(model, "stages.3.blocks.0.attn.attn_weights"):
            model.forward_intermediates(torch.randn(1, 3, 64, 64), indices=[0], stop_early=True)
    with pytest.raises(RuntimeError, match="no gradient arrived"):
        with viz.capture(model, "stages.0.blocks.0.attn.modulator", grads=True), torch.no_grad():
            model(torch.randn(1, 3, 64, 64))
    assert _hooks(model) == 0


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_no_hook_left_after_exception(model, exc):
    assert _hooks(model) == 0
    with pytest.raises(exc):
        with viz.capture(model, "taps", grads=True):
            assert _hooks(model) == 20
            model(torch.randn(1, 3, 64, 64))
            raise exc("stop")
    assert _hooks(model) == 0
    with viz.capture(model, "taps"):
        model(torch.randn(1, 3, 64, 64))
    assert _hooks(model) == 0


@pytest.mark.parametrize("train", [True, False])
def test_mode_is_left_alone(train):
    m = timm.create_model("test_smt").train(train)
    with viz.capture(m, "modulator"), torch.no_grad():
        m(torch.randn(2, 3, 64, 64))
    assert all(mod.training == train for mod in m.modules())


def test_any_module_timm_vit():
    vit = timm.create_model("vit_tiny_patch16_224", img_size=64).eval()
    with viz.analysis.fused_attn_disabled(vit), viz.capture(vit, "blocks.*.attn.attn_drop") as cap, torch.no_grad():
        vit(torch.randn(2, 3, 64, 64))
    assert len(cap) == 12
    a = cap["blocks.0.attn.attn_drop"]  # (B, heads, 1 + 16, 1 + 16)
    assert a.shape == (2, 3, 17, 17)
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 3, 17))
    assert all(m.fused_attn == vit.blocks[0].attn.fused_attn for m in vit.modules() if hasattr(m, "fused_attn"))
