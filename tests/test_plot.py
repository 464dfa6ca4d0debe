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
    fig2 = plot_head_erf(fields, (3, 5, 7, 9)).figure
    crops = [ax.images[0].get_array() for ax in fig2.axes if ax.images]
    assert [c.shape for c in crops] == [(13, 13)] * 4
    assert [int((c > 0).sum()) for c in crops] == [9, 25, 49, 81]  # the footprints survive the crop


def test_cam_overlay_marks_the_maximum_and_the_box():
    cam = torch.zeros(4, 4)
    cam[1, 2] = 1.0
    ax = plot_cam(np.zeros((32, 32, 3), np.uint8), cam, box=(0, 0, 8, 8)).ax
    assert len(ax.images) == 1 and len(ax.patches) == 1
    x, y = ax.get_lines()[0].get_xydata()[0]
    assert 16 <= x < 24 and 8 <= y < 16  # the cell (1, 2) of a 4x4 map on 32 px
    fig = plot_cam_grid(np.zeros((2, 32, 32, 3), np.uint8), [torch.rand(2, 4, 4), torch.rand(2, 2, 2)],
                        columns=["stage 2", "stage 3"], row_labels=["a", "b"])
    assert sum(len(a.images) for a in fig.axes) == 6
    rgb = overlay(torch.rand(3, 8, 8), torch.rand(8, 8))
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8


def test_ablation_panels():
    rows = [AblationRow(f"N = {n}", n, True, 70.0 + n, {0.5: 0.1 * n}, -0.01 * n) for n in (1, 2, 4)]
    rows.append(AblationRow("SAA off (N = 4)", 4, False, 66.0, {0.5: 0.3}, None))
    fig = plot_ablation(rows)
    bars = [[p.get_height() for p in ax.patches] for ax in fig.axes]
    np.testing.assert_allclose(bars[0], [71, 72, 74, 66])
    np.testing.assert_allclose(bars[2], [-0.01, -0.02, -0.04, 0])  # SAA off has no low-frequency change
    assert any(t.get_text() == "n/a" for t in fig.axes[2].texts)


def test_the_remaining_single_panel_plots():
    from viz.plot import plot_erf, plot_group_channels, plot_head_maps, plot_image, plot_overlay, plot_saa_spectrum

    freq = torch.linspace(0, 1, 5, dtype=torch.float64)
    ax = plot_saa_spectrum(FourierCurve(freq, -freq), FourierCurve(freq, -2 * freq)).ax
    assert len(ax.get_lines()) == 2 and "rad" in ax.get_xlabel() and "log amplitude" in ax.get_ylabel()
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), -2 * freq.numpy())
    ax = plot_overlay(np.zeros((32, 32, 3), np.uint8), torch.rand(4, 4)).ax
    assert ax.images[0].get_array().shape == (32, 32, 3)
    fig = plot_group_channels(torch.randn(4, 8, 8), kernel_sizes=(3, 5, 7, 9))
    ims = [a.images[0] for a in fig.axes if a.images]
    assert len(ims) == 4 and ims[0].norm.vmin == -ims[0].norm.vmax  # signed: centred at zero
    fig = plot_head_maps(torch.rand(2, 8, 8), (3, 5)).figure
    assert [a.get_title() for a in fig.axes if a.images] == ["head 1: 3$\\times$3", "head 2: 5$\\times$5"]
    assert plot_image(torch.rand(3, 8, 8)).images[0].get_array().shape == (8, 8, 3)
    ax = plot_erf(torch.rand(8, 8), colorbar=True)
    assert (ax.images[0].norm.vmin, ax.images[0].norm.vmax) == (0, 1) and len(ax.figure.axes) == 2
    with pytest.raises(ValueError, match="kernel size per head"):
        plot_head_maps(torch.rand(2, 8, 8), (3, 5, 7))


# -- views updated in place: building with A and updating with B draws what building with B draws ----------------
def _pixels(fig) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()


def _ax(size=(3.0, 3.0)):
    from viz.plot import new_figure

    return new_figure(*size).add_subplot()


def _curve(power, scale=1.0):
    freq = torch.linspace(0, 1, 8, dtype=torch.float64)
    return FourierCurve(freq, -scale * freq ** power)


def _views():
    from viz.plot import (
        plot_head_erf,
        plot_head_maps,
        plot_overlay,
        plot_relative_map,
        plot_saa_maps,
        update_cam,
        update_head_erf,
        update_head_maps,
        update_overlay,
        update_relative_map,
        update_saa_maps,
    )

    g = torch.Generator().manual_seed(0)
    img = [torch.randint(0, 256, (32, 32, 3), generator=g).numpy().astype(np.uint8) for _ in range(2)]
    rand = [torch.rand(4, 8, 8, generator=g) * s for s in (1.0, 7.0)]
    fields = []
    for shift in (0, 1):
        f = torch.zeros(4, 15, 15)
        for h, k in enumerate((3, 5, 7, 9)):
            c = 7 + shift
            f[h, c - k // 2:c + k // 2 + 1, c - k // 2:c + k // 2 + 1] = torch.rand(k, k, generator=g)
        fields.append(f)
    return {
        "overlay": (lambda a: plot_overlay(a[0], a[1], ax=_ax()), lambda h, b: update_overlay(h, b[0], b[1]),
                    (img[0], rand[0][0]), (img[1], rand[1][1])),
        "head maps": (lambda a: plot_head_maps(a, (3, 5, 7, 9), width=7.0),
                      lambda h, b: update_head_maps(h, b, (3, 5, 7, 9)), rand[0], rand[1]),
        "head erf": (lambda a: plot_head_erf(a, (3, 5, 7, 9), width=7.0),
                     lambda h, b: update_head_erf(h, b, (3, 5, 7, 9)), fields[0], fields[1]),
        "map, new grid of the same aspect": (lambda a: plot_relative_map(a, ax=_ax(), title="t"),
                                             lambda h, b: update_relative_map(h, b, title="t"),
                                             torch.rand(28, 28, generator=g), torch.rand(7, 7, generator=g)),
        "signed map": (lambda a: plot_relative_map(a, signed=True, ax=_ax(), title="t"),
                       lambda h, b: update_relative_map(h, b, signed=True, title="t"),
                       torch.randn(7, 7, generator=g), 5 * torch.randn(7, 7, generator=g)),
        "SAA maps and spectra": (  # both pairs of curves reach -1: the same amplitude range
            lambda a: plot_saa_maps(a[0][0], a[0][1], _curve(a[1]), _curve(a[1] + 1)),
            lambda h, b: update_saa_maps(h, b[0][0], b[0][1], _curve(b[1]), _curve(b[1] + 1)),
            (rand[0], 2.0), (rand[1], 1.0)),
        "CAM": (lambda a: plot_cam(a[0], a[1], ax=_ax(), title="t"), lambda h, b: update_cam(h, b[0], b[1]),
                (img[0], rand[0][0]), (img[1], rand[1][2])),
    }


@pytest.mark.parametrize("name", list(_views()))
def test_a_view_built_with_a_and_updated_with_b_draws_what_b_draws(name):
    plot, update, a, b = _views()[name]
    fresh_a, fresh_b = _pixels(plot(a).figure), _pixels(plot(b).figure)
    assert not np.array_equal(fresh_a, fresh_b)  # A and B differ, so the comparison below can fail
    handles = plot(a)
    _pixels(handles.figure)  # drawn once with A, and its layout frozen, as a widget shows it
    handles.figure.set_layout_engine("none")
    assert update(handles, b) is False  # nothing outside the dynamic artists changed
    np.testing.assert_array_equal(_pixels(handles.figure), fresh_b)


def test_an_update_that_changes_more_than_data_says_so():
    """A new grid, a switch between magnitude and signed colours, or a wider amplitude range change ticks and
    thus the layout: `update_*` returns True, and a widget's view then draws the figure afresh."""
    from viz.plot import plot_relative_map, plot_saa_spectrum, update_relative_map, update_saa_spectrum

    h = plot_relative_map(torch.rand(7, 7), ax=_ax())
    assert update_relative_map(h, torch.rand(7, 7)) is False
    assert update_relative_map(h, torch.rand(14, 14)) is False and h.ax.get_xlim() == (-0.5, 13.5)  # same aspect
    assert update_relative_map(h, torch.rand(14, 7)) is True
    assert update_relative_map(h, torch.randn(14, 14), signed=True) is True
    assert h.image.get_cmap().name == "RdBu_r" and (h.image.norm.vmin, h.image.norm.vmax) == (-1, 1)
    s = plot_saa_spectrum(_curve(1), _curve(2))
    assert s.ax.get_ylim() == (-2.0, 0.3)  # -1 less 10% and 0.1, rounded down to a whole unit
    assert update_saa_spectrum(s, _curve(2, 1.2), _curve(1)) is False  # -1.2: the same whole-unit range
    assert update_saa_spectrum(s, _curve(1, 3.0), _curve(2)) is True and s.ax.get_ylim() == (-4.0, 0.3)
    assert update_saa_spectrum(s, _curve(1), _curve(2), ylim=(-4.0, 0.3)) is False  # a range the caller keeps
    assert update_saa_spectrum(s, _curve(1), _curve(2)) is True and s.ax.get_ylim() == (-2.0, 0.3)


def test_display_transforms_are_the_ones_the_plots_draw():
    from viz.plot import display_cam, display_head_erf, display_overlay, display_relative, plot_head_erf

    fields = torch.zeros(2, 21, 21)
    fields[0, 10, 10], fields[1, 9:12, 9:12] = 2.0, 4.0
    d = display_head_erf(fields, (1, 3))
    assert d.maps.shape == (2, 7, 7) and d.support == (1, 9) and d.maps.max() == 1.0
    art = plot_head_erf(fields, (1, 3))
    np.testing.assert_array_equal(art.heads.images[1].get_array(), d.maps[1])
    assert [t.get_text() for t in art.support] == ["1 pos.", "9 pos."]
    m, top = display_relative(torch.tensor([[-4.0, 2.0]]))
    assert top == 4.0 and m.tolist() == [[-1.0, 0.5]]
    assert display_relative(torch.zeros(2, 2))[1] == 1.0
    cam = torch.zeros(4, 4)
    cam[3, 0] = 1.0
    c = display_cam(np.zeros((32, 32, 3), np.uint8), cam)
    assert c.rgb.shape == (32, 32, 3) and c.peak[0] < 8 and c.peak[1] >= 24
    o = display_overlay(np.full((16, 16, 3), 255, np.uint8), torch.rand(4, 4))
    assert o.shape == (16, 16, 3) and o.dtype == np.uint8
