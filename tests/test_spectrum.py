"""Spectra on maps whose spectrum is known by hand: constant, checkerboard, sinusoid."""
import math

import numpy as np
import pytest
import torch

from viz.analysis import (
    low_frequency_share,
    power_spectrum_2d,
    radial_power_spectrum,
    relative_log_amplitude,
    tokens_to_map,
)

H = 16


def _grid():
    i, j = np.indices((H, H))
    return i, j


def test_constant_map():
    x = torch.full((2, 3, H, H), 2.5, dtype=torch.float64)
    curve = relative_log_amplitude(x)
    np.testing.assert_allclose(curve.freq.numpy(), np.arange(H // 2 + 1) * 2 / H)
    expected = np.log(1e-6) - np.log(2.5 * H * H + 1e-6)  # every non-zero frequency has amplitude 0
    assert curve.value[0] == 0
    np.testing.assert_allclose(curve.value[1:].numpy(), expected, rtol=1e-6)
    ps = power_spectrum_2d(x, log=False)
    assert ps.freq_y[H // 2] == 0 and ps.freq_x[H // 2] == 0
    assert ps.power[H // 2, H // 2] == pytest.approx((2.5 * H * H) ** 2)
    assert ps.power.sum() == pytest.approx(ps.power[H // 2, H // 2].item())
    rad = radial_power_spectrum(x)
    assert rad.power[0] == pytest.approx((2.5 * H * H) ** 2) and torch.all(rad.power[1:] == 0)
    assert math.isnan(low_frequency_share(x).item())  # no energy once the mean is removed


def test_checkerboard_is_all_highest_frequency():
    i, j = _grid()
    x = torch.from_numpy((-1.0) ** (i + j))[None, None]
    curve = relative_log_amplitude(x)
    assert curve.freq[-1] == 1.0
    assert int(curve.value.argmax()) == H // 2
    assert curve.highest == pytest.approx(np.log(H * H + 1e-6) - np.log(1e-6), rel=1e-6)
    ps = power_spectrum_2d(x, log=False)
    assert ps.freq_y[0] == -1.0 and ps.power[0, 0] == pytest.approx((H * H) ** 2)
    assert ps.power.sum() == pytest.approx((H * H) ** 2)
    assert low_frequency_share(x, radius=0.5).item() == 0.0
    assert low_frequency_share(x, radius=1.0).item() == 0.0  # the corner sits at sqrt(2) pi
    assert low_frequency_share(x, radius=1.5).item() == pytest.approx(1.0)


@pytest.mark.parametrize("k0", [1, 3])
def test_diagonal_sinusoid_at_its_bin(k0):
    i, j = _grid()
    xn = np.cos(2 * np.pi * k0 * (i + j) / H)
    x = torch.from_numpy(xn)[None, None]
    curve = relative_log_amplitude(x)
    assert int(curve.value.argmax()) == k0
    assert curve.freq[k0] == pytest.approx(2 * k0 / H)
    ps = power_spectrum_2d(x, log=False)
    ref = np.fft.fftshift(np.abs(np.fft.fft2(xn)) ** 2)  # independent: numpy
    np.testing.assert_allclose(ps.power.numpy(), ref, atol=1e-6)
    assert ps.power[H // 2 + k0, H // 2 + k0] == pytest.approx((H * H / 2) ** 2)
    r = math.sqrt(2) * 2 * k0 / H  # radius of the peak in units of pi
    assert low_frequency_share(x, radius=r + 0.01).item() == pytest.approx(1.0)
    assert low_frequency_share(x, radius=r - 0.01).item() == pytest.approx(0.0, abs=1e-12)


def test_radial_spectrum_axis_sinusoid():
    i, _ = _grid()
    x = torch.from_numpy(np.sin(2 * np.pi * 5 * i / H))[None]
    rad = radial_power_spectrum(x)
    assert int(rad.power.argmax()) == 5 and rad.freq[5] == pytest.approx(10 / H)
    assert rad.counts.sum() == H * H


def test_odd_grid_frequency_axis_and_errors():
    curve = relative_log_amplitude(torch.randn(1, 2, 15, 15))
    np.testing.assert_allclose(curve.freq.numpy(), np.arange(8) * 2 / 15)
    with pytest.raises(ValueError, match="square"):
        relative_log_amplitude(torch.randn(1, 1, 8, 10))
    with pytest.raises(ValueError, match="tokens_to_map"):
        relative_log_amplitude(torch.randn(10))


def test_tokens_to_map_uses_the_given_grid():
    b, h, w, c = 2, 3, 5, 4
    x = torch.randn(b, 1 + h * w, c)
    m = tokens_to_map(x, (h, w), num_prefix_tokens=1)
    assert m.shape == (b, c, h, w)
    assert torch.equal(m[1, 2, 1, 3], x[1, 1 + 1 * w + 3, 2])
    with pytest.raises(ValueError, match="grid_hw"):
        tokens_to_map(torch.randn(1, 16, 4), (2, 4))


def test_smt_fourier_profile_uses_each_stage_grid():
    import timm

    from viz.analysis import smt_fourier_profile
    from viz.capture import capture

    model = timm.create_model("test_smt").eval()
    x = torch.randn(2, 3, 64, 64)
    prof = smt_fourier_profile(model, x)
    assert [p.kind for p in prof] == ["sam", "sam", "sam", "msa", "msa"]
    assert [p.depth for p in prof] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert [len(p.curve.freq) for p in prof] == [9, 5, 3, 3, 2]  # grids 16, 8, 4, 4, 2
    with capture(model, "stages.1.blocks.0") as cap, torch.no_grad():
        model(x)
    tokens = cap["stages.1.blocks.0"]  # (B, 64, C) on the 8x8 grid, row-major
    ref = np.log(np.abs(np.fft.fft2(tokens.numpy().reshape(2, 8, 8, -1), axes=(1, 2))) + 1e-6).mean((0, 3))
    k = np.arange(5)
    np.testing.assert_allclose(prof[1].curve.value.numpy(), ref[k, k] - ref[0, 0], rtol=1e-4, atol=1e-4)


def test_vit_block_profile_equals_the_map_built_by_hand_from_its_tokens():
    """ViT tokens (B, 1 + H*W, C): the class token dropped, the rest row-major on the explicit patch grid."""
    import timm

    from viz.analysis import block_fourier_profile, block_low_frequency_shares

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                            dynamic_img_size=True, num_classes=3).eval()
    x = torch.randn(2, 3, 48, 48)  # not the built size: a 6x6 grid, so nothing can fall back on sqrt(N) of 64
    seen = {}
    handle = vit.blocks[1].register_forward_hook(lambda m, a, out: seen.setdefault("out", out.detach()))
    try:
        profile = block_fourier_profile(vit, x)
    finally:
        handle.remove()
    tokens = seen["out"]
    assert tokens.shape == (2, 1 + 36, 32)
    by_hand = tokens[:, 1:].reshape(2, 6, 6, 32).permute(0, 3, 1, 2)
    expected = relative_log_amplitude(by_hand)
    assert [b.name for b in profile] == ["blocks.0", "blocks.1"] and profile[1].kind == "msa"
    torch.testing.assert_close(profile[1].curve.value, expected.value, rtol=0, atol=1e-12)
    torch.testing.assert_close(profile[1].curve.freq, expected.freq)
    shares = dict(block_low_frequency_shares(vit, x))
    assert shares["blocks.1"] == pytest.approx(float(low_frequency_share(by_hand, 0.5)))


def test_swin_and_convnext_block_maps():
    import timm

    from viz.analysis import block_fourier_profile

    swin = timm.create_model("swin_tiny_patch4_window7_224", img_size=32, embed_dim=16, depths=(1, 1),
                             num_heads=(1, 2), window_size=4, num_classes=3).eval()
    prof = block_fourier_profile(swin, torch.randn(1, 3, 32, 32))
    assert [b.name for b in prof] == ["layers.0.blocks.0", "layers.1.blocks.0"]
    assert [len(b.curve.freq) for b in prof] == [5, 3]  # 8x8 then 4x4 grids (NHWC outputs permuted)
    conv = timm.create_model("convnext_atto", dims=(8, 16, 32, 64), depths=(1, 1, 1, 1), num_classes=3).eval()
    prof = block_fourier_profile(conv, torch.randn(1, 3, 64, 64))
    assert [b.kind for b in prof] == ["conv"] * 4 and len(prof[0].curve.freq) == 9


def test_low_frequency_terms_three_definitions_by_hand():
    from viz.analysis import low_frequency_terms

    i, j = _grid()
    low = torch.tensor(np.cos(2 * np.pi * i / H))           # |f| = 2/16 pi: low
    high = torch.tensor(np.cos(2 * np.pi * 6 * i / H))      # |f| = 12/16 pi: high
    # image 0: a strong high-frequency channel and a weak low one; image 1: only a low channel
    x = torch.stack([torch.stack([10 * high, low]), torch.stack([low, 0 * low])]).float()
    e = low_frequency_terms(x, 0.5, "energy")
    assert e[0, 0] / e[0, 1] == pytest.approx(1 / 101, rel=1e-5)  # energy 1 : 100
    # the energy-weighted ratio of sums over images is the batch's low_frequency_share
    assert float(e[:, 0].sum() / e[:, 1].sum()) == pytest.approx(float(low_frequency_share(x, 0.5)), rel=1e-12)
    c = low_frequency_terms(x, 0.5, "channel")
    assert c[0].tolist() == pytest.approx([1.0, 2.0]) and c[1].tolist() == pytest.approx([1.0, 1.0])  # flat map
    d = low_frequency_terms(x, 0.5, "display")
    assert d[:, 1].tolist() == [1.0, 1.0] and 0 <= d[0, 0] <= 1 and d[1, 0] == pytest.approx(
        float(low_frequency_share(x[1:].abs().mean(1), 0.5)))
    with pytest.raises(ValueError, match="definition"):
        low_frequency_terms(x, 0.5, "mean")


def test_relative_log_amplitude_per_image_averages_to_the_batch_curve():
    from viz.analysis import relative_log_amplitude_per_image

    x = torch.randn(5, 3, H, H)
    rows = relative_log_amplitude_per_image(x)
    assert rows.shape == (5, H // 2 + 1)
    torch.testing.assert_close(rows.mean(0), relative_log_amplitude(x).value)
    torch.testing.assert_close(rows[2], relative_log_amplitude(x[2:3]).value)


def test_low_frequency_shares_keep_terms_and_give_paired_intervals():
    import timm

    from viz.analysis import low_frequency_shares, sam_features

    model = timm.create_model("test_smt").eval()
    x = torch.randn(6, 3, 64, 64)
    feats = sam_features(model, x)
    for definition in ("energy", "channel", "display"):
        for s in low_frequency_shares(feats, 0.5, definition):
            assert s.input_terms.shape == (6, 2) and s.definition == definition
            e = s.change_interval(resamples=200)
            assert e.n == 6 and e.estimate == pytest.approx(s.change, abs=1e-9) and e.low <= e.estimate <= e.high
            # the interval of one image set equals the set's change computed afresh
            one = low_frequency_shares({s.block: sam_features(model, x[:3])[s.block]}, 0.5, definition)[0]
            part = type(s)(s.block, 0.5, 0, 0, s.input_terms[:3], s.modulator_terms[:3], definition)
            assert part.change_interval().estimate == pytest.approx(one.change, abs=1e-9)
