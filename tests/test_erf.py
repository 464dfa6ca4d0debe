"""ERF (RepLKNet): hand-checkable footprints, batching, area ratios, per-head fields."""
import pytest
import timm
import torch
import torch.nn as nn

from viz.analysis.erf import (
    ERFResult,
    effective_receptive_field,
    erf_display,
    head_erf,
    high_contribution_area_ratio,
    largest_square_area_ratio,
    stage_feature_map,
)


def _ones_conv(k: int) -> nn.Conv2d:
    conv = nn.Conv2d(1, 1, k, padding=k // 2, bias=False)
    nn.init.ones_(conv.weight)
    return conv


def _fmap(m, x):
    return m(x)


def test_erf_of_single_conv_is_its_footprint():
    for k in (3, 5):
        model = _ones_conv(k).eval()
        erf = effective_receptive_field(model, torch.rand(2, 1, 15, 15) + 0.1, _fmap).erf
        nz = (erf != 0).nonzero()
        assert nz.shape[0] == k * k
        assert nz[:, 0].min() == 7 - k // 2 and nz[:, 0].max() == 7 + k // 2
        assert nz[:, 1].min() == 7 - k // 2 and nz[:, 1].max() == 7 + k // 2


def test_erf_of_two_stacked_3x3_is_5x5():
    model = nn.Sequential(_ones_conv(3), _ones_conv(3)).eval()
    erf = effective_receptive_field(model, torch.rand(1, 1, 11, 11) + 0.1, _fmap).erf
    assert (erf != 0).sum() == 25 and (erf[3:8, 3:8] != 0).all()
    # the weights of 3x3 * 3x3: a 5x5 pyramid 1,2,3,2,1 (outer product), times one image
    row = torch.tensor([1.0, 2, 3, 2, 1], dtype=torch.float64)
    assert torch.equal(erf[3:8, 3:8], torch.outer(row, row))


def test_batched_equals_loop_on_smt():
    model = timm.create_model("test_smt").eval()
    x = torch.randn(6, 3, 64, 64)
    loop = effective_receptive_field(model, x, batch_size=1)
    batched = effective_receptive_field(model, x, batch_size=6)
    assert loop.num_images == batched.num_images == 6
    assert torch.allclose(loop.erf, batched.erf, atol=1e-6, rtol=1e-5)
    # any stage can be the target
    s1 = effective_receptive_field(model, x[:2], stage_feature_map(1))
    assert s1.erf.shape == (64, 64) and s1.erf.sum() > 0


def test_nan_images_are_skipped_and_counted():
    model = _ones_conv(3).eval()
    x = torch.rand(3, 1, 9, 9) + 0.1
    x[1, 0, 4, 4] = float("nan")

    def squared(m, x):  # d(x^2)/dx = 2x: NaN where the input is NaN
        return m(x * x)

    r = effective_receptive_field(model, x, squared)
    assert (r.num_images, r.num_skipped) == (2, 1)
    assert not torch.isnan(r.erf).any()
    clean = effective_receptive_field(model, x[[0, 2]], squared)
    assert torch.allclose(r.erf, clean.erf)


def test_train_mode_is_refused():
    model = timm.create_model("test_smt").train()
    with pytest.raises(RuntimeError, match=r"eval mode.*model.eval\(\)"):
        effective_receptive_field(model, torch.randn(1, 3, 32, 32))


def test_area_ratio_one_bright_pixel_and_unreachable_threshold():
    m = torch.zeros(9, 11)
    m[4, 5] = 3.0
    ratios = high_contribution_area_ratio(erf_display(m))
    assert ratios == {t: 1 / 99 for t in (0.2, 0.3, 0.5, 0.99)}
    # a uniform 9x11 map: centred squares of side 7 and 9 hold 49/99 and 81/99 (the largest that fits)
    uniform = torch.ones(9, 11)
    r = high_contribution_area_ratio(uniform, thresholds=(0.4, 0.5, 0.81, 0.9))
    assert r[0.4] == 49 / 99 and r[0.5] == 81 / 99 and r[0.81] == 81 / 99 and r[0.9] is None
    assert high_contribution_area_ratio(m, thresholds=(1.0,)) == {1.0: None}
    # the largest measurable square: 9x9 in 9x11; 111x111 in 112x112 (the centre is (56, 56))
    assert largest_square_area_ratio((9, 11)) == 81 / 99 == r[0.81]
    assert largest_square_area_ratio((112, 112)) == 111 ** 2 / 112 ** 2


def test_display_transform():
    m = torch.tensor([[0.0, 9.0], [99.0, 0.0]])
    d = erf_display(m)
    assert torch.allclose(d, torch.tensor([[0.0, 0.5], [1.0, 0.0]], dtype=torch.float64))


def test_head_erf_shows_kernel_footprints():
    model = timm.create_model("test_smt").eval()
    maps = head_erf(model, torch.randn(2, 3, 64, 64), "stages.0.blocks.0")
    assert maps.shape == (4, 16, 16)
    assert (maps != 0).sum(dim=(1, 2)).tolist() == [9, 25, 49, 81]
    with pytest.raises(ValueError, match="not a SAM block"):
        head_erf(model, torch.randn(1, 3, 64, 64), "stages.3.blocks.0")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_results_add():
    a = ERFResult(torch.ones(2, 2, dtype=torch.float64), 2, 1)
    b = ERFResult(torch.full((2, 2), 3.0, dtype=torch.float64), 2, 0)
    s = a + b
    assert s.num_images == 4 and s.num_skipped == 1 and torch.equal(s.erf, torch.ones(2, 2, dtype=torch.float64))


def test_stage_erfs_from_one_pass_equal_one_call_per_stage():
    from viz.analysis.erf import stage_erfs, stage_feature_map

    model = timm.create_model("test_smt").eval()
    x = torch.randn(3, 3, 64, 64)
    together = stage_erfs(model, x, [0, 2, 3], batch_size=2)
    assert sorted(together) == [0, 2, 3]
    for s, r in together.items():
        alone = effective_receptive_field(model, x, stage_feature_map(s), batch_size=2)
        assert r.num_images == alone.num_images == 3
        torch.testing.assert_close(r.total, alone.total, rtol=1e-9, atol=1e-12)


def test_per_image_maps_and_area_ratio_intervals():
    from viz.analysis.erf import area_ratio_intervals, stage_erfs

    model = timm.create_model("test_smt").eval()
    x = torch.randn(5, 3, 64, 64)
    r = effective_receptive_field(model, x, batch_size=2, keep_per_image=True)
    assert r.per_image.shape == (5, 64, 64)
    torch.testing.assert_close(r.per_image.double().sum(0), r.total, rtol=1e-6, atol=1e-9)
    s = stage_erfs(model, x, [1], batch_size=2, keep_per_image=True)[1]
    assert s.per_image.shape == (5, 64, 64)
    ts = (0.2, 0.5)
    iv = r.area_ratio_intervals(ts, resamples=200)
    ref = high_contribution_area_ratio(erf_display(r.per_image.double().mean(0)), ts)
    for t in ts:
        assert iv[t].n == 5 and iv[t].estimate == pytest.approx(ref[t])
        assert iv[t].low <= iv[t].estimate <= iv[t].high
    # identical images: every resample is the same map, a zero-width interval
    same = area_ratio_intervals(r.per_image[:1].repeat(4, 1, 1), ts, resamples=50)
    assert all(e.low == e.high == e.estimate for e in same.values())
    with pytest.raises(ValueError, match="keep_per_image"):
        effective_receptive_field(model, x[:1]).area_ratio_intervals()
