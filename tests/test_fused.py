"""The fused forward path of SMT against the literal per-head one (`model.set_fused(False)`)."""
import itertools
import os

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

import smt  # noqa: F401
from smt import fused as smt_fused
from smt import model as smt_model
from smt.model import ScaleAwareAggregation, ScaleAwareModulation

ATOL = 1e-5


def _randomise_bn(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics, so that folding them is actually exercised."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def _both(model: nn.Module, fn):
    """fn() on the literal path, then on the fused path; the model ends up fused (the default)."""
    model.set_fused(False)
    ref = fn()
    model.set_fused(True)
    return ref, fn()


@pytest.fixture(autouse=True)
def _restore_switches():
    saved = dict(smt_fused.FUSE)
    yield
    smt_fused.FUSE.clear()
    smt_fused.FUSE.update(saved)


@pytest.fixture
def no_fused_sam(monkeypatch):
    """Make the fused SAM path raise, to see which path a forward takes."""
    def boom(*args, **kwargs):
        raise AssertionError("fused SAM path taken")
    monkeypatch.setattr(ScaleAwareModulation, "forward_fused", boom)


@pytest.mark.slow
@pytest.mark.parametrize("name,hw", [
    ("test_smt", (64, 64)), ("test_smt", (72, 40)), ("smt_nano", (40, 88)), ("smt_tiny", (64, 96)),
    ("smt_small", (96, 64)), ("smt_base", (64, 72)), ("smt_large", (72, 64)),
])
def test_fused_equals_literal_on_every_variant(name, hw):
    model = _randomise_bn(timm.create_model(name)).eval()
    x = torch.randn(1, 3, *hw)
    with torch.inference_mode():
        ref, out = _both(model, lambda: model.forward_features(x))
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < ATOL
    assert model.forward_head(out).sub(model.forward_head(ref)).abs().max() < ATOL


@pytest.mark.parametrize("kwargs", [
    dict(saa=False),
    dict(sam_heads=2, kernel_sizes=((3, 7), (5, 3), (3, 5), None)),
    dict(sam_heads=(1, 4, 8, 4), kernel_sizes=((5,), None, (3, 3, 5, 5, 7, 7, 9, 9), None)),
    dict(qkv_bias=False, layer_scale=0.5, block_types=("mix", "msa", "sam", "mix")),
])
def test_fused_equals_literal_on_configurations(kwargs):
    model = _randomise_bn(timm.create_model("test_smt", **kwargs)).eval()
    x = torch.randn(2, 3, 56, 72)
    with torch.no_grad():
        ref, out = _both(model, lambda: model(x))
    assert (out - ref).abs().max() < ATOL


def test_every_switch_combination_computes_the_same():
    model = _randomise_bn(timm.create_model("test_smt")).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        model.set_fused(False)
        ref = model(x)
        model.set_fused(True)
        names = ["one_dwconv", "fold_bn", "tokens", "channels_last", "dw_residual", "inplace", "onednn_linear",
                 "onednn_gelu", "sdpa"]
        # all on, each off on its own, all off; with either form of SAA's grouped conv
        combos = [dict.fromkeys(names, True)] + [dict(dict.fromkeys(names, True), **{n: False}) for n in names]
        combos.append(dict.fromkeys(names, False))
        for values, expand in itertools.product(combos, ("dense", "conv")):
            smt_fused.FUSE.update(values, expand=expand)
            assert (model(x) - ref).abs().max() < ATOL, (values, expand)


def test_set_fused_selects_the_path(no_fused_sam):
    model = timm.create_model("test_smt").eval()
    x = torch.randn(1, 3, 64, 64)
    model.set_fused(False)
    model(x)  # literal: the fused path is never called
    model.set_fused(True)
    with pytest.raises(AssertionError, match="fused SAM path taken"):
        model(x)


@pytest.mark.skipif(smt_fused.ONEDNN_LINEAR is None, reason="this PyTorch build has no oneDNN linear")
@pytest.mark.parametrize("gelu", [False, True])
def test_onednn_linear_equals_linear(gelu, monkeypatch):
    calls = []
    op = smt_fused.ONEDNN_LINEAR
    monkeypatch.setattr(smt_fused, "ONEDNN_LINEAR", lambda *a: calls.append(1) or op(*a))
    x = torch.randn(2, 37, 24).transpose(0, 1)[:, ::2]  # non-contiguous, odd sizes
    w, b = torch.randn(40, 24), torch.randn(40)
    want = F.linear(x, w, b)
    want = F.gelu(want) if gelu else want
    with torch.no_grad():
        got = smt_fused.linear(x, w, b, gelu=gelu)
        nobias = smt_fused.linear(x, w, None, gelu=gelu)
    assert got.shape == want.shape and (got - want).abs().max() < 1e-5
    assert (nobias - (F.gelu(F.linear(x, w)) if gelu else F.linear(x, w))).abs().max() < 1e-5
    assert len(calls) == 2  # both ran as oneDNN calls
    w.requires_grad_(True)  # with autograd on, the plain ops run and gradients flow
    smt_fused.linear(x, w, b, gelu=gelu).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0 and len(calls) == 2


@pytest.mark.skipif(smt_fused.ONEDNN_CONV is None, reason="this PyTorch build has no oneDNN conv")
def test_onednn_dwconv_gelu_equals_conv_then_gelu(monkeypatch):
    calls = []
    op = smt_fused.ONEDNN_CONV
    monkeypatch.setattr(smt_fused, "ONEDNN_CONV", lambda *a: calls.append(1) or op(*a))
    x = torch.randn(2, 24, 9, 7).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(24, 1, 5, 5), torch.randn(24)
    want = F.gelu(F.conv2d(x, w, b, padding=2, groups=24))
    for inp in (x, x.contiguous()):
        with torch.no_grad():
            got = smt_fused.dwconv_gelu(inp, w, b, nn.GELU())
        assert got.shape == want.shape and (got - want).abs().max() < 1e-5
    assert len(calls) == 2
    with torch.no_grad():  # another activation: not fused, still applied
        relu = smt_fused.dwconv_gelu(x, w, b, nn.ReLU())
    assert torch.allclose(relu, F.relu(F.conv2d(x, w, b, padding=2, groups=24))) and len(calls) == 2


def test_msa_uses_sdpa_only_on_the_fused_path(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    model = timm.create_model("test_smt").eval()
    n_msa = sum(isinstance(m, smt_model.Attention) for m in model.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref, out = _both(model, lambda: model(x))
    assert n_msa > 0 and len(calls) == n_msa  # the fused forward only: the literal one materialises
    assert (out - ref).abs().max() < ATOL


def test_input_and_parameter_gradients_equal():
    model = _randomise_bn(timm.create_model("test_smt")).eval()
    x = torch.randn(2, 3, 64, 56)

    def grads():
        model.zero_grad()
        xi = x.clone().requires_grad_(True)
        model(xi).square().sum().backward()
        return xi.grad, {n: p.grad.clone() for n, p in model.named_parameters()}

    (gx_ref, gp_ref), (gx, gp) = _both(model, grads)
    assert gx.abs().max() > 0
    assert (gx - gx_ref).abs().max() < ATOL * gx_ref.abs().max()
    for n in gp_ref:
        assert (gp[n] - gp_ref[n]).abs().max() <= ATOL * max(gp_ref[n].abs().max(), 1.0), n


def test_training_mode_equal_outputs_and_running_stats():
    ref_model = _randomise_bn(timm.create_model("test_smt")).train()
    fused_model = timm.create_model("test_smt").train()
    fused_model.load_state_dict(ref_model.state_dict())
    ref_model.set_fused(False)
    x = torch.randn(3, 3, 64, 64)
    ref, out = ref_model(x), fused_model(x)
    assert (out - ref).abs().max() < ATOL
    for (n, a), b in zip(ref_model.state_dict().items(), fused_model.state_dict().values()):
        if a.is_floating_point():
            assert (a - b).abs().max() < ATOL, n


def test_state_dict_is_unchanged_and_weights_are_not_cached():
    model = _randomise_bn(timm.create_model("test_smt")).eval()
    keys = list(model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model(x)
        model.set_fused(False)
        model.set_fused(True)
        assert list(model.state_dict()) == keys
        # change weights in place: the fused path follows at once
        blk = model.stages[0].blocks[0].attn
        blk.mhmc.convs[2].weight.mul_(-2.0)
        blk.s.bias.add_(0.3)
        blk.saa.bn.running_var.mul_(3.0)
        model.stages[2].blocks[1].attn.kv.weight.mul_(0.5)
        ref, out = _both(model, lambda: model(x))
    assert (out - ref).abs().max() < ATOL
    model.set_fused(False)
    sd = model.state_dict()
    model.set_fused(True)
    assert all(torch.equal(a, b) for a, b in zip(sd.values(), model.state_dict().values()))


def _capture(model, names, x, replace=None):
    """Outputs of the named taps (and the logits); hooks removed afterwards."""
    got, handles = {}, []
    try:
        for n in names:
            def hook(mod, inp, out, n=n):
                got[n] = out.detach().clone()
                return replace(out) if replace is not None and n.endswith("modulator") else None
            handles.append(model.get_submodule(n).register_forward_hook(hook))
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return got, logits


@pytest.mark.parametrize("tap", ["attn.mhmc.heads.{h}", "attn.saa_input", "attn.modulator"])
def test_taps_fire_on_the_fused_path(tap):
    model = _randomise_bn(timm.create_model("test_smt")).eval()
    x = torch.randn(2, 3, 64, 48)
    names = [f"stages.{i}.blocks.0." + tap.format(h=h) for i in (0, 2) for h in (0, 3)]
    names = sorted(set(names))
    ref, out = _both(model, lambda: _capture(model, names, x))
    assert set(out[0]) == set(names)
    for n in names:  # the hooked block runs literally; upstream blocks fused (float rounding only)
        assert (out[0][n] - ref[0][n]).abs().max() < ATOL, n
    assert (out[1] - ref[1]).abs().max() < ATOL


def test_modulator_hook_replaces_output_on_the_fused_path():
    model = timm.create_model("test_smt").eval()
    x = torch.randn(1, 3, 64, 64)
    name = "stages.1.blocks.0.attn.modulator"
    ref, out = _both(model, lambda: _capture(model, [name], x, replace=torch.zeros_like)[1])
    plain = model(x)
    assert (out - ref).abs().max() < ATOL
    assert (out - plain).abs().max() > 1e-4  # the replacement changed the result


def test_hooked_block_goes_literal_others_stay_fused(monkeypatch):
    model = timm.create_model("test_smt").eval()
    calls = []
    original = ScaleAwareModulation.forward_fused
    monkeypatch.setattr(ScaleAwareModulation, "forward_fused",
                        lambda self, *a: calls.append(self) or original(self, *a))
    x = torch.randn(1, 3, 64, 64)
    handle = model.stages[0].blocks[0].attn.saa.act.register_forward_hook(lambda *a: None)
    try:
        model(x)
    finally:
        handle.remove()
    sams = [b.attn for s in model.stages for b in s.blocks if b.block_type == "sam"]
    assert calls == sams[1:]


def test_model_surgery_falls_back_to_literal():
    model = timm.create_model("test_smt").eval()
    x = torch.randn(1, 3, 64, 64)
    attn = model.stages[1].blocks[0].attn
    attn.mhmc.convs[1] = nn.Identity()  # ablate head 1's conv
    ref, out = _both(model, lambda: model(x))
    assert (out - ref).abs().max() < ATOL


def test_saa_fused_returns_tokens_of_forward():
    saa = _randomise_bn(ScaleAwareAggregation(32, 4)).eval()
    x = torch.randn(2, 32, 5, 7)
    with torch.no_grad():
        ref = saa(x).flatten(2).transpose(1, 2)
        for expand in ("dense", "conv"):
            smt_fused.FUSE["expand"] = expand
            assert (saa.forward_fused(x) - ref).abs().max() < ATOL


_INDUCTOR = pytest.mark.skipif(not os.environ.get("SMT_TEST_INDUCTOR"),
                               reason="inductor compiles C++ for minutes on a 2-core CPU; set SMT_TEST_INDUCTOR=1")


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=_INDUCTOR)])
@pytest.mark.parametrize("fused", [True, False])
def test_torch_compile_on_both_paths(fused, backend):
    # aot_eager: Dynamo and AOTAutograd trace the whole model (fullgraph: no graph break), forward
    # and backward, in seconds; inductor's C++ code generation takes minutes here (opt-in).
    model = _randomise_bn(timm.create_model("test_smt")).eval()
    x = torch.randn(1, 3, 64, 64)
    model.set_fused(False)
    with torch.no_grad():
        ref = model(x)
    model.set_fused(fused)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    with torch.no_grad():
        assert (compiled(x) - ref).abs().max() < ATOL
    xi = x.clone().requires_grad_(True)
    compiled(xi).sum().backward()
    assert xi.grad is not None and xi.grad.abs().max() > 0
