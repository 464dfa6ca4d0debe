"""viz.plot on small synthetic results: what is drawn, labels with units, no pyplot state, rcParams untouched."""
import matplotlib
import numpy as np
import pytest
import torch

from viz.analysis.distance import BlockDistance
from viz.analysis.spectrum import BlockFourier, FourierCurve, LowFrequencyShare
from viz.plot import (
    AblationRow,
    plot_ablation,
    plot_cam,
    plot_cam_grid,
    plot_distance_profile,
    plot_erf_grid,
    plot_fourier,
    plot_fourier_curves,
    plot_fourier_highest,
    plot_head_erf,
    plot_low_frequency_shares,
    plot_map,
    plot_modulator_maps,
    plot_sam_block,
)
from viz.plot.cam import overlay

KINDS = ["sam", "sam", "sam", "msa", "sam", "msa"]
NAMES = ["stages.0.blocks.0", "stages.0.blocks.1", "stages.1.blocks.0", "stages.2.blocks.1", "stages.2.blocks.2",
         "stages.3.blocks.0"]


@pytest.fixture(autouse=True)
def no_global_state():
    """Every test: rcParams unchanged afterwards and no figure registered with pyplot."""
    before = dict(matplotlib.rcParams)
    yield
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == [], "a plot function registered a pyplot figure"
    after = dict(matplotlib.rcParams)
    changed = [k for k in before
               if before[k] != after[k] and not (isinstance(before[k], float) and np.isnan(before[k]))]
    assert not changed, f"rcParams changed: {changed}"


def _profile():
    out = []
    for k, (n, kind) in enumerate(zip(NAMES, KINDS)):
        freq = torch.linspace(0, 1, 5, dtype=torch.float64)
        out.append(BlockFourier(n, kind, (k + 1) / len(NAMES), FourierCurve(freq, -freq * (k + 1))))
    return out


def _lines(ax):
    return [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]


def test_fourier_curves_one_line_per_block_with_units():
    ax = plot_fourier_curves(_profile())
    assert len(_lines(ax)) == len(NAMES)
    assert "rad" in ax.get_xlabel() and "log amplitude" in ax.get_ylabel()
    # the curve of the last block ends where its values end
    assert _lines(ax)[-1].get_ydata()[-1] == pytest.approx(-len(NAMES))


def test_fourier_highest_shades_msa_blocks_and_takes_several_models():
    ax = plot_fourier_highest(_profile())
    assert len(ax.patches) == KINDS.count("msa")
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [-(k + 1) for k in range(len(NAMES))])
    assert ax.get_xlabel() == "normalised depth"
    ax2 = plot_fourier_highest({"SMT": _profile(), "ViT": _profile()[:3]})
    assert len([ln for ln in ax2.get_lines() if ln.get_label() in ("SMT", "ViT")]) == 2
    fig = plot_fourier(_profile())
    assert len(fig.axes) == 3  # two panels and the depth colorbar


def test_low_frequency_pairs():
    shares = [LowFrequencyShare(n, 0.5, 0.3 + 0.1 * i, 0.6) for i, n in enumerate(NAMES[:3])]
    ax = plot_low_frequency_shares(shares)
    before, after = ax.collections[:2]
    np.testing.assert_allclose(before.get_offsets()[:, 1], [0.3, 0.4, 0.5])
    np.testing.assert_allclose(after.get_offsets()[:, 1], [0.6, 0.6, 0.6])
    assert "0.5" in ax.get_ylabel() and [t.get_text() for t in ax.get_xticklabels()] == ["S1.B1", "S1.B2", "S2.B1"]


def test_distance_profile_dots_per_head_and_a_line_per_model():
    prof = [BlockDistance(n, k, torch.arange(1.0, 5.0) * (i + 1), 2.5 * (i + 1))
            for i, (n, k) in enumerate(zip(NAMES, KINDS))]
    ax = plot_distance_profile(prof)
    assert sum(len(c.get_offsets()) for c in ax.collections) == 4 * len(NAMES)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [2.5 * (i + 1) for i in range(len(NAMES))])
    assert ax.get_ylabel() == "distance (px)"
    other = [BlockDistance(f"blocks.{i}", "msa", torch.ones(3) * 10, 10.0) for i in range(4)]
    ax2 = plot_distance_profile(prof, others={"ViT": other})
    assert any(ln.get_label().startswith("ViT") for ln in ax2.get_lines())


def test_draws_into_a_callers_axes():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert plot_fourier_curves(_profile(), ax=ax, colorbar=False) is ax
    assert plot_map(torch.rand(5, 5), ax=fig.add_subplot(2, 2, 1)).figure is fig


def test_erf_grid_shares_one_scale_and_prints_the_area_ratios():
    maps = {"trained": [torch.rand(16, 16) for _ in range(4)], "random init.": [torch.rand(16, 16) for _ in range(4)]}
    ratios = {k: [{0.2: 0.1, 0.5: None}] * 4 for k in maps}
    fig = plot_erf_grid(maps, ratios, columns=[f"stage {i}" for i in range(1, 5)], pixels=64)
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == 8
    assert {(im.norm.vmin, im.norm.vmax) for im in images} == {(0, 1)}
    assert fig.axes[0].get_xlabel() == "0.100 / n/a"


def test_modulator_maps_grid_and_shared_column_scale():
    maps = {"stages.0.blocks.1": torch.rand(3, 16, 16), "stages.1.blocks.1": torch.rand(3, 8, 8) * 5}
    fig = plot_modulator_maps(np.zeros((3, 16, 16, 3), np.uint8), maps, labels=["a", "b", "c"],
                              predictions=["a", "b", "a"])
    grid_axes = [ax for ax in fig.axes if ax.images]
    assert len(grid_axes) == 3 * 3
    col2 = [ax.images[0].norm.vmax for ax in grid_axes[2::3]]
    assert len(set(col2)) == 1 and col2[0] == pytest.approx(float(maps["stages.1.blocks.1"].max()))
    assert "pred. b" in grid_axes[3].get_ylabel()
    with pytest.raises(ValueError, match="3 images"):
        plot_modulator_maps(np.zeros((3, 8, 8, 3), np.uint8), {"x": torch.rand(2, 4, 4)})


def test_sam_block_panels_and_head_erf_crop():
    heads = torch.rand(4, 16, 16)
    fields = torch.zeros(4, 16, 16)
    for h, k in enumerate((3, 5, 7, 9)):
        fields[h, 8 - k // 2:8 + k // 2 + 1, 8 - k // 2:8 + k // 2 + 1] = 1.0
    fig = plot_sam_block(np.zeros((64, 64, 3), np.uint8), heads, fields, torch.randn(4, 16, 16), torch.rand(16, 16),
                         (3, 5, 7, 9), block="stages.0.blocks.0", stride=4)
    assert sum(len(ax.images) for ax in fig.axes) == 1 + 4 + 4 + 1 + 4
    fig2 = plot_head_erf(fields, (3, 5, 7, 9))
    crops = [ax.images[0].get_array() for ax in fig2.axes if ax.images]
    assert [c.shape for c in crops] == [(13, 13)] * 4
    assert [int((c > 0).sum()) for c in crops] == [9, 25, 49, 81]  # the footprints survive the crop


def test_cam_overlay_marks_the_maximum_and_the_box():
    cam = torch.zeros(4, 4)
    cam[1, 2] = 1.0
    ax = plot_cam(np.zeros((32, 32, 3), np.uint8), cam, box=(0, 0, 8, 8))
    assert len(ax.images) == 1 and len(ax.patches) == 1
    x, y = ax.get_lines()[0].get_xydata()[0]
    assert 16 <= x < 24 and 8 <= y < 16  # the cell (1, 2) of a 4x4 map on 32 px
    fig = plot_cam_grid(np.zeros((2, 32, 32, 3), np.uint8), [torch.rand(2, 4, 4), torch.rand(2, 2, 2)],
                        columns=["stage 2", "stage 3"], row_labels=["a", "b"])
    assert sum(len(a.images) for a in fig.axes) == 6
    rgb = overlay(torch.rand(3, 8, 8), torch.rand(8, 8))
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8


def test_ablation_panels_draw_seeds_and_means_with_intervals_not_bars():
    rows = [AblationRow(f"N = {n}", n, True, 70.0 + n, {0.5: 0.1 * n}, -0.01 * n,
                        seeds=({"top1": 69.0 + n, "erf_area": 0.1 * n, "low_frequency_change": -0.01 * n},
                               {"top1": 71.0 + n, "erf_area": 0.1 * n, "low_frequency_change": -0.01 * n}),
                        intervals={"top1": (68.5 + n, 71.5 + n)}) for n in (1, 2, 4)]
    rows.append(AblationRow("SAA off (N = 4)", 4, False, 66.0, {0.5: 0.3}, None, seeds=({"top1": 66.0},)))
    fig = plot_ablation(rows)
    top = fig.axes[0]
    assert not top.patches  # no bars (a bar axis would have to start at zero)
    offsets = [c.get_offsets() for c in top.collections if type(c).__name__ == "PathCollection"]
    means = [o[0][1] for o in offsets if len(o) == 1 and o[0][0] == round(o[0][0])]
    np.testing.assert_allclose(sorted(set(means)), [66, 71, 72, 74])
    dots = sorted(y for o in offsets if len(o) == 2 for y in o[:, 1])
    np.testing.assert_allclose(dots, [70, 71, 72, 73, 73, 75])  # two seeds each of N = 1, 2, 4
    bars = [seg for c in top.collections if type(c).__name__ == "LineCollection" for seg in c.get_segments()]
    np.testing.assert_allclose(sorted((s[0][1], s[1][1]) for s in bars), [(69.5, 72.5), (70.5, 73.5), (72.5, 75.5)])
    assert any(t.get_text() == "n/a" for t in fig.axes[2].texts)  # SAA off has no low-frequency change


def test_the_remaining_single_panel_plots():
    from viz.plot import plot_erf, plot_group_channels, plot_head_maps, plot_image, plot_overlay, plot_saa_spectrum

    freq = torch.linspace(0, 1, 5, dtype=torch.float64)
    ax = plot_saa_spectrum(FourierCurve(freq, -freq), FourierCurve(freq, -2 * freq))
    assert len(ax.get_lines()) == 2 and "rad" in ax.get_xlabel() and "log amplitude" in ax.get_ylabel()
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), -2 * freq.numpy())
    ax = plot_overlay(np.zeros((32, 32, 3), np.uint8), torch.rand(4, 4))
    assert ax.images[0].get_array().shape == (32, 32, 3)
    fig = plot_group_channels(torch.randn(4, 8, 8), kernel_sizes=(3, 5, 7, 9))
    ims = [a.images[0] for a in fig.axes if a.images]
    assert len(ims) == 4 and ims[0].norm.vmin == -ims[0].norm.vmax  # signed: centred at zero
    fig = plot_head_maps(torch.rand(2, 8, 8), (3, 5))
    assert [a.get_title() for a in fig.axes if a.images] == ["head 1: 3$\\times$3", "head 2: 5$\\times$5"]
    assert plot_image(torch.rand(3, 8, 8)).images[0].get_array().shape == (8, 8, 3)
    ax = plot_erf(torch.rand(8, 8), colorbar=True)
    assert (ax.images[0].norm.vmin, ax.images[0].norm.vmax) == (0, 1) and len(ax.figure.axes) == 2
    with pytest.raises(ValueError, match="kernel size per head"):
        plot_head_maps(torch.rand(2, 8, 8), (3, 5, 7))
