"""Attention distance and modulation distance against values worked out by hand or with numpy."""
import math

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn

from viz.analysis import (
    attention_distances,
    footprint_mean_distance,
    gradient_distance,
    mean_attention_distance,
    modulation_distance,
    smt_distance_profile,
    vit_attention_specs,
)


def _numpy_uniform_mean_distance(h, w, stride):
    pos = np.stack(np.indices((h, w)), -1).reshape(-1, 2) * stride
    return np.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1)).mean()


def test_uniform_attention_14x14_stride16():
    n = 14 * 14
    attn = torch.full((2, 3, n, n), 1.0 / n, dtype=torch.float64)
    d = mean_attention_distance(attn, (14, 14), 16)
    ref = _numpy_uniform_mean_distance(14, 14, 16)
    assert ref == pytest.approx(116.49, abs=0.005)
    np.testing.assert_allclose(d.numpy(), ref, rtol=1e-9)
    dn = mean_attention_distance(attn, (14, 14), 16, normalize=True)
    np.testing.assert_allclose(dn.numpy(), ref / (16 * math.hypot(14, 14)), rtol=1e-9)


def test_identity_attention_is_zero():
    attn = torch.eye(12).expand(1, 2, 12, 12)
    assert torch.all(mean_attention_distance(attn, (3, 4), 8) == 0)


def test_two_by_two_by_hand():
    # tokens (0,0) (0,1) (1,0) (1,1); head 0 rows chosen by hand, head 1 uniform
    a0 = torch.tensor([[0.5, 0.5, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    a1 = torch.full((4, 4), 0.25)
    d = mean_attention_distance(torch.stack([a0, a1])[None], (2, 2), stride=1)
    s2 = math.sqrt(2)
    head0 = (0.5 * 1 + 1 * 1 + 1 * s2 + 0.25 * (s2 + 1 + 1 + 0)) / 4
    head1 = (0 + 1 + 1 + s2) / 4  # every query sees distances {0, 1, 1, sqrt 2}
    np.testing.assert_allclose(d.numpy(), [head0, head1])
    # a class token is dropped and the rows renormalised
    cls = torch.zeros(1, 2, 5, 5)
    cls[..., 1:, 1:] = torch.stack([a0, a1])[None] * 0.5
    cls[..., :, 0] = 0.5
    np.testing.assert_allclose(mean_attention_distance(cls, (2, 2), 1, num_prefix_tokens=1).numpy(), [head0, head1])
    with pytest.raises(ValueError, match="grid_hw"):
        mean_attention_distance(torch.stack([a0, a1])[None], (4, 4))


@pytest.mark.parametrize("k", [3, 5])
def test_modulation_distance_of_uniform_depthwise_conv_is_its_footprint(k):
    conv = nn.Conv2d(3, 3, k, padding=k // 2, groups=3, bias=False)
    nn.init.constant_(conv.weight, 1.0 / (k * k))
    r = k // 2
    queries = [(i, j) for i in range(r, 11 - r) for j in range(r, 11 - r)]  # interior: full footprint
    d = gradient_distance(conv, torch.randn(2, 3, 11, 11), stride=4, queries=queries)
    off = np.arange(k) - r
    ref = np.sqrt(off[:, None] ** 2 + off[None, :] ** 2).mean() * 4  # numpy, independent of the library
    assert float(d) == pytest.approx(ref, rel=1e-9)
    assert footprint_mean_distance(k, 4) == pytest.approx(ref, rel=1e-12)


def test_sam_modulation_distance_stays_inside_each_head_footprint():
    model = timm.create_model("test_smt").eval()
    block = model.stages[0].blocks[0]
    x = torch.randn(2, 16 * 16, 16)
    per_head, whole, n = modulation_distance(block, x, (16, 16), stride=4, queries=[(8, 8), (3, 12)])
    assert n == 4
    ks = model.stage_kernel_sizes[0]  # (3, 5, 7, 9)
    for d, k in zip(per_head.tolist(), ks):  # support of head h is its k x k window
        assert 0 < d <= (k // 2) * math.sqrt(2) * 4
    assert 0 < whole <= (ks[-1] // 2) * math.sqrt(2) * 4


def test_vit_and_smt_profiles():
    vit = timm.create_model("vit_tiny_patch16_224", img_size=64).eval()
    flags = [m.fused_attn for m in vit.modules() if hasattr(m, "fused_attn")]
    res = attention_distances(vit, torch.randn(3, 3, 64, 64), vit_attention_specs(vit), batch_size=2,
                              progress=False)
    assert len(res) == 12 and all(v.shape == (3,) for v in res.values())
    ref_max = 16 * math.hypot(3, 3)
    assert all(0 < float(v.min()) and float(v.max()) < ref_max for v in res.values())
    assert flags == [m.fused_attn for m in vit.modules() if hasattr(m, "fused_attn")]

    model = timm.create_model("test_smt").eval()
    prof = smt_distance_profile(model, torch.randn(2, 3, 64, 64), queries=3, batch_size=1, progress=False)
    assert [p.name for p in prof] == ["stages.0.blocks.0", "stages.1.blocks.0", "stages.2.blocks.0",
                                      "stages.2.blocks.1", "stages.3.blocks.0"]
    assert [p.kind for p in prof] == ["sam", "sam", "sam", "msa", "msa"]
    assert [len(p.per_head) for p in prof] == [4, 4, 4, 2, 4]
    assert all(p.distance > 0 for p in prof)
    with pytest.raises(RuntimeError, match="eval"):
        smt_distance_profile(model.train(), torch.randn(1, 3, 64, 64), progress=False)
    assert model.training


def test_swin_windows():
    from viz.analysis import swin_attention_specs

    sw = timm.create_model("swin_tiny_patch4_window7_224", img_size=56, embed_dim=16, depths=(2, 2),
                           num_heads=(1, 2), window_size=7).eval()
    specs = swin_attention_specs(sw)
    assert [(s.grid_hw, s.stride) for s in specs] == [((7, 7), 4)] * 2 + [((7, 7), 8)] * 2
    res = attention_distances(sw, torch.randn(2, 3, 56, 56), specs, progress=False)
    for s in specs:  # inside a 7x7 window: at most the window's diagonal
        assert 0 < float(res[s.module].min()) and float(res[s.module].max()) < s.stride * 6 * math.sqrt(2)


def test_distance_profile_keeps_per_image_distances():
    model = timm.create_model("test_smt").eval()
    x = torch.randn(5, 3, 64, 64)
    prof = smt_distance_profile(model, x, queries=4, batch_size=2, progress=False)
    for b in prof:
        assert b.per_image.shape == (5,)
        assert float(b.per_image.mean()) == pytest.approx(b.distance, rel=1e-9)
        e = b.interval(resamples=100)
        assert e.n == 5 and e.low <= b.distance <= e.high
    # a per-image value is that image's own distance (same queries: the seed depends on the batch index only)
    alone = smt_distance_profile(model, x[:2], queries=4, batch_size=2, progress=False)
    for b, a in zip(prof, alone):
        torch.testing.assert_close(b.per_image[:2], a.per_image)


def test_vit_per_image_attention_distances_average_to_the_set():
    from viz.analysis import attention_distance_samples

    vit = timm.create_model("vit_tiny_patch16_224", img_size=64, depth=2, num_classes=0).eval()
    x = torch.randn(3, 3, 64, 64)
    specs = vit_attention_specs(vit)
    samples = attention_distance_samples(vit, x, specs, batch_size=2, progress=False)
    whole = attention_distances(vit, x, specs, batch_size=3, progress=False)
    for s in specs:
        assert samples[s.module].shape == (3, 3)
        torch.testing.assert_close(samples[s.module].mean(0), whole[s.module])
        one = attention_distances(vit, x[1:2], specs, progress=False)[s.module]
        torch.testing.assert_close(samples[s.module][1], one)
