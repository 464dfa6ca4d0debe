"""viz.widgets: each control changes the view's data as it should, says what it means, and survives bad input."""
import numpy as np
import pytest
import torch

from viz.playground import Config, ModelResolver, default_kernels, resize_kernels
from viz.widgets import ModelExplorer, SAMPlayground


@pytest.fixture(scope="module")
def pg():
    return SAMPlayground()


def _view(w):
    return w._view_data[1]


def _reset(w):
    c = w.controls()
    for b in c["masks"]:
        b.value = False
    c["kernels"].value = ""
    c["first kernel"].value, c["kernel step"].value = 3, 2
    c["heads"].value, c["saa"].value, c["expand ratio"].value, c["model"].value = 4, True, 2.0, "main"
    c["source"].value, c["image"].value, c["block"].value = "canvases", 0, "stages.0.blocks.0"
    assert w.last_error is None


def test_starts_on_the_main_model_and_the_first_canvas(pg):
    _reset(pg)
    v = _view(pg)
    assert pg.resolved.kind == "trained" and pg.resolved.name == "main"
    assert "the main model" in pg.explanation_text and v.kernel_sizes == (3, 5, 7, 9)
    assert v.head_maps.shape == (4, 28, 28) and len(v.top5) == 5
    assert all(len(x.image.value) > 100 for x in (pg.v_heads, pg.v_fields, pg.v_saa, pg.v_overlay))


def test_image_and_block_controls_change_the_maps(pg):
    _reset(pg)
    c = pg.controls()
    before = _view(pg).head_maps.clone()
    png = pg.v_heads.image.value
    c["image"].value = 5
    assert not torch.equal(before, _view(pg).head_maps) and pg.v_heads.image.value != png
    c["block"].value = "stages.1.blocks.0"
    assert _view(pg).block == "stages.1.blocks.0" and _view(pg).head_maps.shape == (4, 14, 14)
    c["source"].value = "photos"
    assert "astronaut" in pg.w_readout.value and pg.last_error is None


def test_head_count_switches_to_the_trained_checkpoint(pg):
    _reset(pg)
    c = pg.controls()
    c["heads"].value = 2
    assert pg.resolved.kind == "trained" and pg.resolved.name == "heads2"
    assert "trained checkpoint 'heads2'" in pg.resolved.explanation and _view(pg).kernel_sizes == (3, 5)
    assert len(pg.controls()["masks"]) == 2 and len(_view(pg).head_maps) == 2
    c["heads"].value = 8
    assert pg.resolved.name == "heads8" and _view(pg).kernel_sizes == default_kernels(8)
    c["heads"].value, c["saa"].value = 4, False
    assert pg.resolved.name == "nosaa" and "SAA off" in pg.explanation_text


def test_larger_kernels_are_zero_padded_and_leave_the_output_unchanged(pg):
    _reset(pg)
    c = pg.controls()
    main = _view(pg)
    c["kernels"].value = "3,5,7,11"
    padded = _view(pg)
    assert pg.resolved.kind == "resized" and "9x9 → 11x11 zero-padded (output unchanged)" in pg.explanation_text
    assert padded.kernel_sizes == (3, 5, 7, 11)
    torch.testing.assert_close(padded.modulator, main.modulator, rtol=1e-5, atol=1e-5)
    assert [n for n, _ in padded.top5] == [n for n, _ in main.top5]
    c["kernels"].value = "1,5,7,9"  # a smaller kernel is a centre crop: the output changes
    assert "3x3 → 1x1 centre-cropped (output changes)" in pg.explanation_text
    assert not torch.allclose(_view(pg).modulator, main.modulator, atol=1e-4)


def test_other_configurations_are_random_initialisations_with_the_stated_seed(pg):
    _reset(pg)
    c = pg.controls()
    c["expand ratio"].value = 4.0
    assert pg.resolved.kind == "random" and "no trained checkpoint has expand ratio 4" in pg.explanation_text
    assert "seed 0" in pg.explanation_text
    a = _view(pg).modulator.clone()
    c["seed"].value = 1
    assert "seed 1" in pg.explanation_text and not torch.equal(a, _view(pg).modulator)
    c["seed"].value = 0
    torch.testing.assert_close(_view(pg).modulator, a)  # the same seed gives the same model


def test_masking_a_head_zeroes_it_and_says_what_the_prediction_does(pg):
    _reset(pg)
    c = pg.controls()
    before = _view(pg)
    c["masks"][3].value = True
    after = _view(pg)
    assert after.masked == (3,) and float(after.head_maps[3].abs().max()) == 0.0
    assert not torch.allclose(after.modulator, before.modulator)
    assert "Masking head 4 of stages.0.blocks.0: top-1" in pg.explanation_text
    c["masks"][3].value = False
    torch.testing.assert_close(_view(pg).modulator, before.modulator)  # the weights came back


def test_bad_combinations_are_shown_in_the_widget_and_it_stays_usable(pg, tmp_path):
    _reset(pg)
    c = pg.controls()
    c["heads"].value = 3
    assert "not divisible by sam_heads=3" in pg.status.value.lower() and pg.last_error
    assert pg.resolved.name == "main"  # the view still shows the last good model
    c["heads"].value = 2
    assert pg.last_error is None and pg.status.value == "" and pg.resolved.name == "heads2"
    c["heads"].value = 4
    c["kernels"].value = "3,5,7,8"
    assert "kernel size 8 is even" in pg.status.value.lower()
    c["kernels"].value = "3,5,7"
    assert "3 kernel sizes for n = 4 heads" in pg.status.value.lower()
    c["kernels"].value = ""
    assert pg.last_error is None
    c["file"].value = str(tmp_path / "missing.pth")
    c["model"].value = "checkpoint"
    assert "does not exist" in pg.status.value.lower()
    c["model"].value = "main"
    assert pg.last_error is None


def test_a_checkpoint_file_sets_the_controls_to_its_architecture(pg, tmp_path):
    import timm
    from safetensors.torch import save_file

    _reset(pg)
    path = tmp_path / "two.safetensors"
    save_file(timm.create_model("smt_nano", num_classes=10, sam_heads=2).state_dict(), str(path))
    c = pg.controls()
    c["file"].value = str(path)
    c["model"].value = "checkpoint"
    assert pg.last_error is None and pg.resolved.kind == "checkpoint" and c["heads"].value == 2
    assert "two.safetensors" in pg.explanation_text
    _reset(pg)


def test_resize_kernels_crops_and_pads_the_trained_weights():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_smt").eval()
    big = resize_kernels(model, (5, 5, 9, 11))
    w0 = model.stages[0].blocks[0].attn.mhmc.convs[0].weight
    w1 = big.stages[0].blocks[0].attn.mhmc.convs[0].weight
    assert w1.shape[-1] == 5 and torch.equal(w1[..., 1:4, 1:4], w0) and float(w1[..., 0, :].detach().abs().sum()) == 0
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(big(x), model(x), rtol=1e-5, atol=1e-5)
    small = resize_kernels(model, (1, 3, 5, 7))
    assert torch.equal(small.stages[0].blocks[0].attn.mhmc.convs[1].weight,
                       model.stages[0].blocks[0].attn.mhmc.convs[1].weight[..., 1:4, 1:4])


def test_resolver_rules():
    r = ModelResolver()
    with pytest.raises(ValueError, match="even"):
        r.resolve(Config(kernels=(3, 5, 7, 10)))
    with pytest.raises(ValueError, match="one kernel per head"):
        r.resolve(Config(heads=2))
    assert r.resolve(Config(heads=1, kernels=(3,))).name == "heads1"
    assert r.resolve(Config(heads=4, kernels=(3, 5, 7, 9), saa=False)).name == "nosaa"
    assert r.resolve(Config(base="random")).kind == "random"


def test_explorer_taps_views_and_grad_cam():
    ex = ModelExplorer()
    c = ex.controls()
    assert ex.last_error is None and "top-5" in ex.w_top5.value
    first = ex._tap[0].clone()
    c["tap"].value = "modulator"
    assert not torch.equal(first, ex._tap[0]) and "modulator" in ex._tap[2]
    c["stage"].value = 2
    assert [v for _, v in c["block"].options] == [f"stages.2.blocks.{j}" for j in range(4)]
    c["block"].value = "stages.2.blocks.1"  # an MSA block: its attention weights
    assert c["tap"].value == "attn_weights" and ex._tap[0].shape == (7, 7)
    assert abs(float(ex._tap[0].sum()) - 1.0) < 1e-4  # mean over heads of one softmax row
    c["view"].value = "channel"
    c["channel"].value = 1
    assert "head 1" in ex._tap[2]
    cam = ex._cam[1].clone()
    c["method"].value = "LayerCAM"
    assert not torch.equal(cam, ex._cam[1]) and "LayerCAM" in ex._cam[2]
    c["target"].value = 3
    assert "Dress" in ex._cam[2]
    c["CAM layer"].value = 1
    assert ex._cam[1].shape == (14, 14)
    c["image"].value = 4
    assert ex.last_error is None and len(ex.v_cam.image.value) > 100
    assert np.isfinite(ex._tap[0].numpy()).all()


def test_debounced_events_coalesce_and_flush_runs_them_now(pg):
    import asyncio

    _reset(pg)
    c = pg.controls()
    c["image"].value = 3
    readout = pg.w_readout.value  # what image 3 shows, for comparison
    c["image"].value = 0
    pg.debounce = 60.0  # longer than the test: only flush() can run the update
    try:
        async def burst():
            before, maps = len(pg.latency.get("image", [])), _view(pg).head_maps
            for i in (1, 2, 3):
                c["image"].value = i
            assert len(pg.latency.get("image", [])) == before and _view(pg).head_maps is maps
            pg.flush()
            assert len(pg.latency.get("image", [])) == before + 1  # three events, one update, of the last value
            assert not pg._pending and not torch.equal(_view(pg).head_maps, maps)
            assert pg.w_readout.value == readout

        asyncio.run(burst())
    finally:
        pg.debounce = 0.0
    _reset(pg)


def test_caches_keep_the_most_recently_used_entries():
    from collections import OrderedDict

    from viz.playground import cached

    store, built = OrderedDict(), []

    def maker(k):
        return lambda: built.append(k) or 10 * k

    assert [cached(store, k, maker(k), size=2) for k in (1, 2, 1, 3)] == [10, 20, 10, 30]
    assert built == [1, 2, 3] and list(store) == [1, 3]  # 1 was used after 2, so 2 went
