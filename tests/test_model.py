"""The SMT model: fidelity to the authors' code, the timm contract, taps and configuration."""
import re

import pytest
import timm
import torch
import torch.nn as nn

from smt.model import (
    SMT,
    TAPS,
    VARIANTS,
    checkpoint_filter_fn,
    is_official_state_dict,
    official_key_to_ours,
    to_official_state_dict,
)
from smt.reference import check_against_reference, fill_official_state_dict, load_reference

REFERENCE = load_reference()
RELEASED = ["smt_tiny", "smt_small", "smt_base", "smt_large"]
ALL = list(VARIANTS)


# ---- fidelity -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", RELEASED)
def test_reference_logits_float64(name):
    check = check_against_reference(name, REFERENCE)
    assert check.max_abs_first16 < 1e-8, check
    assert check.max_abs_sum < 1e-8, check
    assert check.argmax_equal


@pytest.mark.parametrize("name", RELEASED)
def test_parameter_count_and_keys_match_official(name):
    ref = REFERENCE[name]
    model = timm.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == ref["params"]
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    converted = {official_key_to_ours(k): shape for k, shape in ref["state_dict"].items()}
    assert converted == ours
    # and back: our keys map onto exactly the authors' keys
    back = to_official_state_dict(model.state_dict())
    assert {k: list(v.shape) for k, v in back.items()} == ref["state_dict"]


def test_filter_fn_unwraps_and_leaves_native_keys_alone():
    model = timm.create_model("test_smt")
    native = model.state_dict()
    assert checkpoint_filter_fn(native).keys() == native.keys()
    official = to_official_state_dict(native)
    assert is_official_state_dict(official) and not is_official_state_dict(native)
    for wrapped in ({"model": official}, {"state_dict": official}, official):
        out = checkpoint_filter_fn(wrapped)
        assert out.keys() == native.keys()
        assert all(out[k] is native[k] for k in native)


def test_timm_pretrained_file_with_official_keys(tmp_path):
    ref = REFERENCE["smt_tiny"]
    path = tmp_path / "smt_tiny_official.pth"
    torch.save({"model": fill_official_state_dict(ref["state_dict"], torch.float32)}, path)
    model = timm.create_model("smt_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    expected = checkpoint_filter_fn(fill_official_state_dict(ref["state_dict"], torch.float32))
    for k, v in model.state_dict().items():
        assert torch.equal(v, expected[k]), k
    # a different class count keeps the backbone and re-initialises the classifier
    model10 = timm.create_model("smt_tiny", pretrained=True, num_classes=10,
                                pretrained_cfg_overlay=dict(file=str(path)))
    assert model10.head.out_features == 10
    assert torch.equal(model10.stem.conv1.weight, expected["stem.conv1.weight"])


def test_pretrained_tags():
    cfgs = {n: timm.models.get_pretrained_cfg(n).to_dict() for n in timm.list_pretrained("smt_*")}
    assert cfgs["smt_large.in22k"]["num_classes"] == 21841
    assert cfgs["smt_large.in22k_ft_in1k_384"]["input_size"] == (3, 384, 384)
    assert cfgs["smt_large.in22k_ft_in1k_384"]["crop_pct"] == 1.0
    assert cfgs["smt_tiny.in1k"]["crop_pct"] == 0.875 and cfgs["smt_tiny.in1k"]["interpolation"] == "bicubic"
    released = {"smt_tiny.pth", "smt_small.pth", "smt_base.pth", "smt_large_22k.pth",
                "smt_large_22k_224_ft.pth", "smt_large_22k_384_ft.pth"}
    assert {c["url"].rsplit("/", 1)[-1] for c in cfgs.values() if c["url"]} == released


# ---- the timm contract, for every registered variant ---------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_timm_contract(name):
    model = timm.create_model(name, num_classes=7).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        feats = model.forward_features(x)
        final, inter = model.forward_intermediates(x)
        logits = model(x)
        pre = model.forward_head(feats, pre_logits=True)
    dims = VARIANTS[name]["embed_dims"]
    assert feats.shape == (2, dims[-1], 2, 3)  # NCHW, stride 32
    assert torch.equal(final, feats)
    assert [f.shape for f in inter] == [(2, d, 64 // 2 ** (i + 2), 96 // 2 ** (i + 2)) for i, d in enumerate(dims)]
    assert [i["num_chs"] for i in model.feature_info] == list(dims)
    assert [i["reduction"] for i in model.feature_info] == [4, 8, 16, 32]
    assert logits.shape == (2, 7) and pre.shape == (2, dims[-1])
    assert torch.allclose(model.get_classifier()(pre), logits, atol=1e-6)
    assert model.no_weight_decay() == set()
    matcher = model.group_matcher()
    assert set(matcher) == {"stem", "blocks"}
    with torch.no_grad():
        only = model.forward_intermediates(x, indices=[1, 2], intermediates_only=True, stop_early=True)
    assert [torch.equal(a, b) for a, b in zip(only, inter[1:3])] == [True, True]

    model.reset_classifier(3)
    assert model.get_classifier().out_features == 3
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(x).shape == (2, dims[-1])


@pytest.mark.parametrize("name", ALL)
def test_features_only_and_prune(name):
    fmodel = timm.create_model(name, features_only=True, out_indices=(1, 3)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs = fmodel(x)
    dims = VARIANTS[name]["embed_dims"]
    assert [o.shape[1] for o in outs] == [dims[1], dims[3]]
    assert fmodel.feature_info.channels() == [dims[1], dims[3]]
    assert fmodel.feature_info.reduction() == [8, 32]

    model = timm.create_model(name).eval()
    with torch.no_grad():
        ref = model.forward_intermediates(x, intermediates_only=True)
    kept = model.prune_intermediate_layers([0, 1])
    assert kept == [0, 1] and len(model.stages) == 2 and isinstance(model.head, nn.Identity)
    with torch.no_grad():
        pruned = model.forward_intermediates(x, intermediates_only=True)
    assert all(torch.equal(a, b) for a, b in zip(pruned, ref[:2]))


@pytest.mark.parametrize("name", ALL)
def test_every_parameter_gets_a_gradient_and_checkpointing_keeps_outputs(name):
    model = timm.create_model(name, num_classes=5)
    model.eval()  # BatchNorm statistics fixed, so both passes compute the same function
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    out.square().sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    model.set_grad_checkpointing(True)
    out2 = model(x)
    out2.square().sum().backward()
    assert torch.allclose(out, out2, atol=1e-6)
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, grads[n], atol=1e-5, rtol=1e-4), n


# ---- inputs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("hw", [(32, 32), (40, 72), (97, 33)])
def test_any_input_size(hw):
    model = timm.create_model("test_smt").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *hw)).shape == (1, 1000)


def test_in_chans_and_wrong_channel_count():
    model = timm.create_model("test_smt", in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 1000)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\).*in_chans=3"):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="expected images"):
        model(torch.randn(3, 32, 32))


# ---- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(sam_heads=3), r"stage 1 \(stages.0\): 16 channels are not divisible by sam_heads=3"),
    (dict(sam_heads=(4, 4, 64, 4), embed_dims=(16, 32, 48, 64)),
     r"stage 3 \(stages.2\): sam_heads=64 but the stage has 48"),
    (dict(kernel_sizes=((3, 4, 5, 7), None, None, None)),
     r"stage 1 \(stages.0\), head 1: kernel size 4 must be a positive odd"),
    (dict(kernel_sizes=((3, 5), None, None, None)), r"stage 1 \(stages.0\): 2 kernel sizes for 4 heads"),
    (dict(kernel_sizes=((-1, 3, 5, 7), None, None, None)), r"stage 1 \(stages.0\), head 0: kernel size -1"),
    (dict(block_types=("sam", "sam", "mixed", "msa")), r"stage 3 \(stages.2\): block type 'mixed' is not one of"),
    (dict(block_types=("sam", ("sam", "sam"), "mix", "msa")),
     r"stage 2 \(stages.1\): 2 block types given for 1 blocks"),
    (dict(block_types=("sam", "sam", ("sam", "attn"), "msa")),
     r"stage 3 \(stages.2\), block 1: block type 'attn' is neither"),
    (dict(msa_heads=(1, 1, 3, 4)), r"stage 3 \(stages.2\): 64 channels are not divisible by msa_heads=3"),
    (dict(sam_heads=(4, 4)), r"sam_heads has 2 entries but the model has 4 stages"),
    (dict(in_chans=0), r"in_chans=0"),
])
def test_bad_configuration_names_stage_and_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        timm.create_model("test_smt", **kwargs)


def test_heads_kernels_saa_and_block_types_are_configurable():
    model = timm.create_model(
        "test_smt", sam_heads=(2, 8, 2, 2), kernel_sizes=((1, 11), None, (3, 3), None), saa=(True, False, True, True),
        block_types=("sam", "msa", ("msa", "sam"), "sam"), expand_ratio=3).eval()
    s0 = model.stages[0].blocks[0].attn
    assert [c.kernel_size for c in s0.mhmc.convs] == [(1, 1), (11, 11)]
    assert s0.saa.expand.out_channels == 48 and s0.saa.expand.groups == 8
    assert model.stages[1].blocks[0].block_type == "msa"
    assert [b.block_type for b in model.stages[2].blocks] == ["msa", "sam"]
    assert [c.kernel_size[0] for c in model.stages[2].blocks[1].attn.mhmc.convs] == [3, 3]
    assert isinstance(model.stages[3].blocks[0].attn.saa, nn.Module)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
    off = timm.create_model("test_smt", saa=False)
    attn = off.stages[0].blocks[0].attn
    assert isinstance(attn.saa, nn.Identity) and isinstance(attn.regroup, nn.Identity)
    assert not any(".saa." in k for k in off.state_dict())


def test_default_kernels_are_3_5_7_9():
    model = timm.create_model("smt_tiny")
    for stage, types in zip(model.stages, model.stage_block_types):
        for blk, t in zip(stage.blocks, types):
            assert blk.block_type == t
            if t == "sam":
                assert [c.kernel_size[0] for c in blk.attn.mhmc.convs] == [3, 5, 7, 9]
    assert model.stage_block_types[2] == ("sam", "msa") * 4
    assert model.stage_block_types[3] == ("msa",)


# ---- taps ----------------------------------------------------------------------------------------

def _tap_names(model):
    patterns = [re.escape(t).replace(r"\{h\}", r"\d+") for t in TAPS]
    return [n for n, _ in model.named_modules() if any(re.search(rf"\.{p}$", n) for p in patterns)]


def test_taps_are_parameter_free_and_fire_with_documented_shapes():
    model = timm.create_model("test_smt").eval()
    names = _tap_names(model)
    modules = dict(model.named_modules())
    assert all(isinstance(modules[n], nn.Identity) for n in names)
    assert not any(k.startswith(tuple(names)) for k in model.state_dict())
    seen = {}
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.shape)) for n in names]
    try:
        with torch.no_grad():
            model(torch.randn(2, 3, 64, 96))
    finally:
        for h in handles:
            h.remove()
    assert set(seen) == set(names)
    assert seen["stages.0.blocks.0.attn.mhmc.heads.3"] == (2, 4, 16, 24)
    assert seen["stages.0.blocks.0.attn.saa_input"] == (2, 16, 16, 24)
    assert seen["stages.2.blocks.0.attn.modulator"] == (2, 64, 4, 6)
    assert seen["stages.2.blocks.1.attn.attn_weights"] == (2, 2, 24, 24)
    assert seen["stages.3.blocks.0.attn.attn_weights"] == (2, 4, 6, 6)


def test_sdpa_equals_materialised_attention():
    model = timm.create_model("test_smt").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fused = model(x)
    captured = []
    tap = model.stages[3].blocks[0].attn.attn_weights
    handle = tap.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        with torch.no_grad():
            explicit = model(x)
    finally:
        handle.remove()
    assert len(captured) == 1 and torch.allclose(captured[0].sum(-1), torch.ones(1))
    assert torch.allclose(fused, explicit, atol=1e-6)
    unfused = timm.create_model("test_smt", fused_attn=False).eval()
    unfused.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(unfused(x), fused, atol=1e-6)


def test_regrouped_saa_input_is_head_outputs_interleaved():
    model = timm.create_model("test_smt").eval()
    attn = model.stages[1].blocks[0].attn
    got = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: got.__setitem__(n, o))
             for n, m in [*((f"h{h}", t) for h, t in enumerate(attn.mhmc.heads)), ("saa_in", attn.saa_input)]]
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, 64, 64))
    finally:
        for h in hooks:
            h.remove()
    heads = [got[f"h{h}"] for h in range(4)]
    saa_in = got["saa_in"]
    C = saa_in.shape[1]
    for g in range(C // 4):
        for h in range(4):
            assert torch.equal(saa_in[:, g * 4 + h], heads[h][:, g])  # group g, head h -> channel g*N + h


def test_tap_table_names_match_modules():
    model = timm.create_model("smt_tiny")
    names = set(_tap_names(model))
    sam_blocks = sum(t == "sam" for types in model.stage_block_types for t in types)
    msa_blocks = sum(t == "msa" for types in model.stage_block_types for t in types)
    assert len(names) == sam_blocks * (4 + 2) + msa_blocks
    assert isinstance(SMT, type)
