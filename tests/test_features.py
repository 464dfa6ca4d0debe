"""SAM pre/post-aggregation maps and head masking."""
import pytest
import timm
import torch

from viz.analysis import (
    authors_modulator_maps,
    group_channel_maps,
    head_activation_maps,
    mask_heads,
    modulator_map,
    regroup_heads,
    sam_block_names,
    sam_features,
)


@pytest.fixture(scope="module")
def model():
    return timm.create_model("test_smt").eval()


def test_regrouped_heads_equal_saa_input(model):
    feats = sam_features(model, torch.randn(2, 3, 64, 64))
    assert list(feats) == sam_block_names(model) == ["stages.0.blocks.0", "stages.1.blocks.0", "stages.2.blocks.0"]
    for f in feats.values():
        assert torch.equal(regroup_heads(f.heads), f.saa_input)
        n = f.num_heads
        g = 3
        gm = group_channel_maps(f.saa_input, n, g)
        for h in range(n):  # group g holds channel g of every head
            assert torch.equal(gm[:, h], f.heads[h][:, g])
        hm = head_activation_maps(f.heads)
        assert hm.shape == (2, n) + f.heads[0].shape[-2:]
        assert torch.allclose(hm[:, 1], f.heads[1].abs().mean(1))


def test_modulator_maps(model):
    x = torch.randn(2, 3, 64, 64)
    f = sam_features(model, x, ["stages.1.blocks.0"])["stages.1.blocks.0"]
    raw = modulator_map(f.modulator)
    assert raw.shape == (2, 8, 8) and torch.allclose(raw, f.modulator.abs().mean(1))
    maps = authors_modulator_maps(model, x)
    assert [tuple(m.shape) for m in maps.values()] == [(2, 64, 64), (2, 32, 32), (2, 16, 16)]
    with pytest.raises(ValueError, match="no SAM block"):
        authors_modulator_maps(model, x, stages=(3,))


def test_mask_heads_zeroes_exactly_those_channels_and_restores(model):
    x = torch.randn(2, 3, 64, 64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    block = "stages.0.blocks.0"
    plain = sam_features(model, x, [block])[block]
    masked = sam_features(model, x, [block], mask={block: [1, 3]})[block]
    n, c = masked.num_heads, masked.saa_input.shape[1]
    for h in range(n):
        if h in (1, 3):
            assert torch.all(masked.heads[h] == 0)
        else:
            assert torch.equal(masked.heads[h], plain.heads[h])
    zero = torch.tensor([ch % n in (1, 3) for ch in range(c)])  # regrouped channel g*N + h
    assert torch.all(masked.saa_input[:, zero] == 0)
    assert torch.equal(masked.saa_input[:, ~zero], plain.saa_input[:, ~zero])
    assert not torch.equal(masked.modulator, plain.modulator)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit-exact

    with pytest.raises(KeyboardInterrupt):
        with mask_heads(model, {block: 0}):
            assert torch.all(model.stages[0].blocks[0].attn.mhmc.convs[0].weight == 0)
            raise KeyboardInterrupt
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bad_input_errors(model):
    with pytest.raises(ValueError, match="heads 0..3"):
        with mask_heads(model, {"stages.0.blocks.0": [4]}):
            pass
    with pytest.raises(ValueError, match="not a SAM block"):
        sam_features(model, torch.randn(1, 3, 64, 64), ["stages.3.blocks.0"])
    model.train()
    try:
        with pytest.raises(RuntimeError, match="eval"):
            sam_features(model, torch.randn(1, 3, 64, 64))
        assert model.training
    finally:
        model.eval()


def test_saa_low_frequency_shares_match_the_spectrum_function(model):
    from viz.analysis import low_frequency_share, saa_low_frequency_shares

    x = torch.randn(2, 3, 64, 64)
    res = saa_low_frequency_shares(model, x, radius=0.5)
    feats = sam_features(model, x)
    assert [r.block for r in res] == list(feats)
    for r in res:
        assert r.saa_input == float(low_frequency_share(feats[r.block].saa_input, 0.5))
        assert r.modulator == float(low_frequency_share(feats[r.block].modulator, 0.5))
        assert 0 < r.saa_input < 1 and 0 < r.modulator < 1
