"""viz.widgets: each control changes the view's data as it should, says what it means, and survives bad input
(the compute behind the widgets is tested without them in test_sessions.py)."""
import numpy as np
import pytest
import torch

from viz.sessions import default_kernels
from viz.widgets import ModelExplorer, SAMPlayground


@pytest.fixture(scope="module")
def pg():
    return SAMPlayground()


def _view(w):
    return w.view


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


def test_explorer_taps_views_and_grad_cam():
    ex = ModelExplorer()
    c = ex.controls()
    assert ex.last_error is None and "top-5" in ex.w_top5.value
    first = ex.tap.values.clone()
    c["tap"].value = "modulator"
    assert not torch.equal(first, ex.tap.values) and "modulator" in ex.tap.label
    c["stage"].value = 2
    assert [v for _, v in c["block"].options] == [f"stages.2.blocks.{j}" for j in range(4)]
    c["block"].value = "stages.2.blocks.1"  # an MSA block: its attention weights
    assert c["tap"].value == "attn_weights" and ex.tap.values.shape == (7, 7)
    assert abs(float(ex.tap.values.sum()) - 1.0) < 1e-4  # mean over heads of one softmax row
    c["view"].value = "channel"
    c["channel"].value = 1
    assert "head 1" in ex.tap.label
    cam = ex.cam.cam.clone()
    c["method"].value = "LayerCAM"
    assert not torch.equal(cam, ex.cam.cam) and "LayerCAM" in ex.cam.label
    c["target"].value = 3
    assert "Dress" in ex.cam.label
    c["CAM layer"].value = 1
    assert ex.cam.cam.shape == (14, 14)
    c["image"].value = 4
    assert ex.last_error is None and len(ex.v_cam.image.value) > 100
    assert np.isfinite(ex.tap.values.numpy()).all()


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
            assert not pg.pending and not torch.equal(_view(pg).head_maps, maps)
            assert pg.w_readout.value == readout

        asyncio.run(burst())
    finally:
        pg.debounce = 0.0
    _reset(pg)


def test_a_failing_callback_shows_its_traceback_behind_details_and_the_widget_stays_usable(pg, monkeypatch):
    _reset(pg)
    c = pg.controls()
    assert pg.w_details.layout.display == "none" and pg.traceback is None

    def broken(*args, **kwargs):
        raise RuntimeError("the capture failed")

    monkeypatch.setattr(pg.session, "block_view", broken)
    c["image"].value = 2
    assert "The capture failed" in pg.status.value and pg.last_error == "RuntimeError: the capture failed"
    assert pg.w_details.layout.display != "none" and pg.w_traceback.layout.display == "none"  # folded
    pg.w_details.value = True
    assert pg.w_traceback.layout.display != "none"
    assert "Traceback (most recent call last)" in pg.w_traceback.value and "in broken" in pg.w_traceback.value
    assert "RuntimeError: the capture failed" in pg.traceback
    monkeypatch.undo()
    c["image"].value = 3
    assert pg.last_error is None and pg.status.value == "" and pg.w_details.layout.display == "none"
    assert pg.w_traceback.layout.display == "none" and pg.w_traceback.value == ""
    pg.w_details.value = False
    _reset(pg)


def test_controls_and_views_carry_css_classes_for_the_browser_tests(pg):
    ex = ModelExplorer(prefetch=False)
    for app, views in ((pg, ("overlay", "heads", "fields", "saa")), (ex, ("tap", "cam"))):
        classes = [c for w in app.controls().values() for c in (w if isinstance(w, list) else [w])
                   for c in c._dom_classes]
        assert all(any(k.startswith("viz-control-") for k in w._dom_classes)
                   for v in app.controls().values() for w in (v if isinstance(v, list) else [v]))
        assert len(classes) >= len(app.controls())
        shown = [c for v in vars(app).values() if hasattr(v, "image") and hasattr(v, "show")
                 for c in v.image._dom_classes]
        assert {f"viz-view-{v}" for v in views} <= set(shown)
        assert {"viz-status", "viz-error-details", "viz-traceback"} <= {
            c for w in (app.status, app.w_details, app.w_traceback) for c in w._dom_classes}


def test_updated_views_show_what_fresh_views_show(pg):
    """The blitted update of a view (built with the first image, then updated) gives the PNG a view built with the
    current data gives."""
    from viz.widgets.view import View

    _reset(pg)
    c = pg.controls()
    c["image"].value, c["masks"][1].value = 5, True
    n = len(pg.view.kernel_sizes)
    for v, data, shape in ((pg.v_overlay, pg.view_data, None), (pg.v_heads, pg.view, n),
                           (pg.v_fields, pg.view, (n, max(pg.view.kernel_sizes)))):
        assert v.renders > 1
        fresh = View(v.plot, v.update, css="fresh")
        fresh.show(data, shape)
        assert fresh.image.value == v.image.value
    _reset(pg)
    ex = ModelExplorer(prefetch=False)
    e = ex.controls()
    e["image"].value, e["method"].value, e["tap"].value = 3, "LayerCAM", "modulator"
    for v, data in ((ex.v_tap, ex.tap), (ex.v_cam, ex.cam)):
        fresh = View(v.plot, v.update, css="fresh")
        fresh.show(data)
        assert v.renders > 1 and fresh.image.value == v.image.value


def test_a_view_going_back_to_an_earlier_head_count_updates_its_kept_figure_and_shows_what_a_fresh_view_shows(pg):
    from viz.widgets.view import View

    _reset(pg)
    c = pg.controls()
    c["image"].value = 2
    c["heads"].value = 2
    c["image"].value = 3
    builds, reuses = pg.v_heads.builds, pg.v_heads.drawing.reuses
    c["heads"].value = 4  # the N = 4 figure kept from before, updated (no new layout)
    assert pg.v_heads.builds == builds and pg.v_heads.drawing.reuses == reuses + 1
    n = len(pg.view.kernel_sizes)
    for v, shape in ((pg.v_heads, n), (pg.v_fields, (n, max(pg.view.kernel_sizes)))):
        fresh = View(v.plot, v.update, css="fresh")
        fresh.show(pg.view, shape)
        assert fresh.image.value == v.image.value


def test_a_bad_value_stays_reported_while_other_controls_change_and_the_views_keep_the_last_good_model(pg):
    _reset(pg)
    c = pg.controls()
    c["heads"].value = 3  # smt_nano's channels do not split into 3 heads
    assert "not divisible by sam_heads=3" in pg.status.value.lower() and pg.standing
    png = pg.v_heads.image.value
    c["image"].value = 4  # another control works on the last good model ...
    assert pg.view.kernel_sizes == (3, 5, 7, 9) and pg.resolved.name == "main" and pg.v_heads.image.value != png
    assert "not divisible by sam_heads=3" in pg.status.value.lower()  # ... and the bad value is still reported
    assert c["heads"].value == 3 and pg.last_error and "sam_heads=3" in pg.traceback
    c["heads"].value = 4
    assert pg.last_error is None and not pg.standing
    c["kernels"].value = "3,5,7,8"  # an even kernel list, then a block change: the same
    assert "kernel size 8 is even" in pg.status.value.lower()
    c["block"].value = "stages.1.blocks.0"
    assert pg.view.block == "stages.1.blocks.0" and "kernel size 8 is even" in pg.status.value.lower()
    c["kernels"].value = ""
    assert pg.last_error is None and pg.status.value == "" and not pg.standing
    _reset(pg)


def test_constructor_arguments_that_can_not_be_used_are_errors_in_the_widget(tmp_path):
    w = SAMPlayground(images="nowhere", block="stages.9.blocks.0", seed=-1, prefetch=False)
    text = w.status.value.lower()
    assert "seed -1" in text and w.controls()["seed"].value == -1  # shown as given, not clamped
    assert set(w.standing) == {"images", "model"} and "images 'nowhere'" in str(w.standing["images"][0])
    w.controls()["seed"].value = 0  # fixed: the model works; its blocks show that the block argument is unusable
    assert w.resolved is not None and set(w.standing) == {"images", "block"} and w.last_error
    assert "stages.9.blocks.0" in str(w.standing["block"][0]) and "stages.9.blocks.0" in w.status.value
    assert w.controls()["block"].value == "stages.0.blocks.0"
    missing = SAMPlayground(str(tmp_path / "missing.pth"), prefetch=False)
    assert "does not exist" in missing.status.value and missing.resolved is None
    missing.controls()["image"].value = 1  # nothing to draw yet: the error stays, nothing else is said
    assert "does not exist" in missing.status.value and "attribute" not in missing.status.value


def test_the_explorer_says_in_the_widget_what_it_can_not_show_of_a_non_smt_model():
    ex = ModelExplorer(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), prefetch=False)
    assert "explorer shows smt models" in ex.status.value.lower() and "Sequential" in ex.status.value
    assert ex.last_error and ex.controls() == {} and "viz-model-explorer" in ex.widget._dom_classes
    with pytest.raises(ValueError, match="images 'nowhere'"):
        ModelExplorer(images="nowhere")


# -- the user's own SMT: a release-format file (the authors' key layout, a pickled yacs config) ------------------

@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A release-format test_smt file (1000 outputs, input 64), an ablation folder with N = 2, and an image
    folder."""
    import timm
    from PIL import Image

    from checkpoint_files import official_file
    from smt.model import to_official_state_dict

    root = tmp_path_factory.mktemp("release")
    official_file(root / "test_smt.pth", "test_smt")
    folder = root / "ablations"
    folder.mkdir()
    torch.manual_seed(1)
    official_file(folder / "my_n2.pth", state=to_official_state_dict(timm.create_model("test_smt", sam_heads=2)
                                                                     .state_dict()))
    images = root / "photos"
    images.mkdir()
    g = np.random.default_rng(0)
    for name in ("c.png", "a.png", "b.png"):
        Image.fromarray(g.integers(0, 256, (80, 100, 3), dtype=np.uint8)).save(images / name)
    return root / "test_smt.pth", folder, images


def test_the_playground_on_a_release_file(release):
    from smt.resolve import class_names

    path, folder, images = release
    w = SAMPlayground(str(path), images=images, ablations=folder, num_images=2, prefetch=False, device="cpu")
    c = w.controls()
    assert w.last_error is None and w.resolved.kind == "checkpoint" and "test_smt.pth as saved" in w.explanation_text
    # its own input size (64: 16x16 tokens in stage 1), its own class names, the folder's first two images
    assert w.view.head_maps.shape == (4, 16, 16) and {n for n, _ in w.view.top5} <= set(class_names(1000))
    assert c["source"].value == "folder" and w._imageset().names == ["a.png", "b.png"]
    assert c["heads"].value == 4 and (c["first kernel"].value, c["kernel step"].value) == (3, 2)

    maps = w.view.head_maps.clone()
    c["first kernel"].value = 1  # 1/3/5/7: every trained kernel centre-cropped
    assert w.resolved.kind == "resized" and "centre-cropped" in w.explanation_text
    assert not torch.allclose(w.view.head_maps, maps)
    c["first kernel"].value = 3

    before = w.view
    c["masks"][1].value = True
    assert not torch.allclose(w.view.modulator, before.modulator) and "Masking head 2" in w.explanation_text
    c["masks"][1].value = False

    c["heads"].value = 2  # the ablation folder has N = 2: the line names the file
    assert w.resolved.name == "my_n2.pth" and "ablation file my_n2.pth" in w.explanation_text
    assert len(w.view.kernel_sizes) == 2 and len(w.controls()["masks"]) == 2
    c["heads"].value = 8  # no file has N = 8: that architecture at random initialisation, and the line says so
    assert w.resolved.kind == "random" and "random initialisation (seed 0)" in w.explanation_text
    assert not c["seed"].disabled
    c["heads"].value = 4
    assert w.resolved.kind == "checkpoint"

    c["stage"].value = 1  # one stage at a time: the block moves into it
    c["kernels"].value = "1,3,5,7"
    assert w.resolved.model.stage_kernel_sizes[:3] == [(3, 5, 7, 9), (1, 3, 5, 7), (3, 5, 7, 9)]
    assert "stage 2 (stages.1)" in w.explanation_text and c["block"].value.startswith("stages.1.")
    assert w.last_error is None


def test_controls_that_can_not_apply_are_disabled_and_say_why(release):
    path, _, _ = release
    w = SAMPlayground(str(path), prefetch=False, device="cpu")
    c = w.controls()
    assert c["seed"].disabled and "the seed sets random initialisations" in c["seed"].tooltip
    assert not c["stage"].disabled and not c["heads"].disabled and not c["file"].disabled
    c["kernels"].value = "3,5,7,11"
    assert c["first kernel"].disabled and c["kernel step"].disabled and "kernel list" in c["first kernel"].tooltip
    c["kernels"].value = ""
    assert not c["first kernel"].disabled and c["first kernel"].tooltip is None
    c["saa"].value = False
    assert c["expand ratio"].disabled and "SAA is off" in c["expand ratio"].tooltip
    c["saa"].value = True
    assert not c["expand ratio"].disabled
    c["model"].value = "main"  # the demo set varies every SAM stage together; the file names no model now
    assert c["stage"].disabled and "every SAM stage together" in c["stage"].tooltip
    assert c["file"].disabled and "choose 'your model'" in c["file"].tooltip
    assert w.last_error is None and w.resolved.name == "main"


def test_the_explorer_takes_a_checkpoint_path_with_the_names_of_its_outputs(release):
    from smt.resolve import class_names

    path, _, images = release
    ex = ModelExplorer(str(path), images=images, prefetch=False, device="cpu")
    assert ex.last_error is None and ex.input_size == 64 and ex.session.class_names == class_names(1000)
    assert ex.session.class_names[3] == "tiger shark"  # never a Fashion-MNIST name ("Dress")
    top5 = ex.session.top5(0, "stages.0.blocks.0")
    assert {n for n, _ in top5} <= set(class_names(1000)) and ex.tap.values.shape == (16, 16)
    assert len(ex.controls()["target"].options) == 1001


def test_the_playground_takes_a_model_object_named_by_the_resolver_not_by_its_id():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_smt", num_classes=10).eval()
    w = SAMPlayground(model, prefetch=False)
    assert w.last_error is None and w.controls()["file"].value == "model object 1 (SMT)"
    assert w.resolved.key == ("user", "model object 1 (SMT)") and w.resolved.model is model
    with torch.no_grad():  # the top-5 is the object's own prediction on the shown image, at its input size
        expected = torch.softmax(model(w._imageset().model_input(0))[0].double(), 0).max()
    assert w.view.top5[0][1] == pytest.approx(float(expected), rel=1e-6)
    assert w.resolver.add_object(model) == "model object 1 (SMT)"  # the same object keeps its name
    assert w.resolver.add_object(torch.nn.Identity()) == "model object 2 (Identity)"


def test_an_uploaded_image_is_shown_and_a_second_upload_of_the_same_name_is_another_image(pg, tmp_path):
    import datetime
    import io

    from PIL import Image

    def png(colour):
        buf = io.BytesIO()
        Image.new("RGB", (40, 30), colour).save(buf, format="PNG")
        return buf.getvalue()

    _reset(pg)
    up = pg.controls()["upload"]

    def upload(content):
        up.value = ({"name": "mine.png", "type": "image/png", "size": len(content), "content": memoryview(content),
                     "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)},)

    upload(png((200, 30, 30)))
    assert pg.last_error is None and pg.controls()["source"].value == "upload"
    first = pg.view_data[0].copy()
    assert first.shape == (112, 112, 3) and tuple(first[56, 56]) == (200, 30, 30)
    upload(png((30, 30, 200)))  # the same name, other pixels: not the cached image
    assert pg.last_error is None and tuple(pg.view_data[0][56, 56]) == (30, 30, 200)
    upload(b"not an image")
    assert "could not read the image" in pg.status.value.lower()
    _reset(pg)
