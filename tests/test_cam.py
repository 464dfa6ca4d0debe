"""Grad-CAM through pytorch_grad_cam: raw maps, one target per image, mode restored, pointing game."""
import numpy as np
import pytest
import timm
import torch

from viz.analysis.cam import (
    cam_to_image,
    class_activation_maps,
    default_target_layers,
    pointing_game,
    stage_grid,
    token_reshape,
)


@pytest.fixture(scope="module")
def model():
    import smt  # noqa: F401

    torch.manual_seed(0)
    return timm.create_model("test_smt", num_classes=5)


@pytest.mark.parametrize("method", ["GradCAM", "GradCAMPlusPlus", "XGradCAM", "EigenCAM", "LayerCAM", "HiResCAM"])
def test_one_map_per_image_and_mode_restored(model, method):
    model.train()
    model.stages[1].eval()  # a mixed state must come back exactly as it was
    before = {n: m.training for n, m in model.named_modules()}
    x = torch.randn(3, 3, 64, 96)
    cams = class_activation_maps(model, x, [0, 3, 4], method=method)
    assert cams.shape == (3, 2, 3)  # the last stage's grid for 64x96
    assert {n: m.training for n, m in model.named_modules()} == before
    assert all(not m._forward_hooks for m in model.modules())


def test_gradcam_is_raw_and_matches_a_direct_computation(model):
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    cams = class_activation_maps(model, x, [1, 2])
    # Grad-CAM by hand: channel weights = spatial mean of d score / d A; map = sum_c w_c A_c (no ReLU)
    acts = {}
    h = model.stages[-1].register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    try:
        out = model(x)
    finally:
        h.remove()
    a = acts["a"]
    for b, c in enumerate([1, 2]):
        (g,) = torch.autograd.grad(out[b, c], a, retain_graph=True)
        w = g[b].mean(dim=(1, 2))
        ref = (w[:, None, None] * a[b]).sum(0)
        assert torch.allclose(cams[b], ref.detach(), atol=1e-5)
    assert (cams < 0).any() or (cams > 0).all()  # signed values are kept


def test_target_count_must_match(model):
    with pytest.raises(ValueError, match="2 targets for 3 images"):
        class_activation_maps(model.eval(), torch.randn(3, 3, 64, 64), [0, 1])


def test_unknown_method(model):
    with pytest.raises(ValueError, match="unknown CAM method 'GradCam'"):
        class_activation_maps(model.eval(), torch.randn(1, 3, 64, 64), [0], method="GradCam")


def test_token_layer_with_explicit_grid(model):
    model.eval()
    grid = stage_grid(model, 2, (64, 96))
    assert grid == (4, 6)
    cams = class_activation_maps(model, torch.randn(2, 3, 64, 96), [0, 1],
                                 target_layers=[model.stages[2].blocks[-1]], reshape_transform=token_reshape(grid))
    assert cams.shape == (2, 4, 6)
    with pytest.raises(ValueError, match="do not fit the grid 6x4"):
        token_reshape((6, 4))(torch.randn(1, 25, 8))
    assert default_target_layers(model, 1)[0] is model.stages[1]


@pytest.mark.parametrize("method", ["GradCAM", "LayerCAM"])
def test_per_layer_maps_from_one_pass_equal_one_call_per_layer(model, method):
    model.eval()
    x, targets = torch.randn(3, 3, 64, 64), [0, 2, 4]
    layers = [model.stages[1], model.stages[2], model.stages[3]]
    calls = []
    h = model.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        maps = class_activation_maps(model, x, targets, method=method, target_layers=layers, per_layer=True)
    finally:
        h.remove()
    assert len(calls) == 1  # one forward (and so one backward) for all three layers
    assert [tuple(m.shape) for m in maps] == [(3, 8, 8), (3, 4, 4), (3, 2, 2)]
    for layer, m in zip(layers, maps):
        assert torch.allclose(m, class_activation_maps(model, x, targets, method=method, target_layers=[layer]),
                              atol=1e-6)
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="different grids.*per_layer=True"):
        class_activation_maps(model, x, targets, target_layers=layers)


def test_display_helpers_and_pointing_game():
    cams = torch.zeros(2, 4, 4)
    cams[0, 0, 0] = 1.0  # top-left cell
    cams[1, 3, 3] = 1.0  # bottom-right cell
    img = cam_to_image(cams, (32, 32))
    assert img.shape == (2, 32, 32) and img.min() >= 0 and img.max() == 1
    boxes = torch.tensor([[0, 0, 8, 8], [0, 0, 8, 8]])
    assert pointing_game(cams, boxes, (32, 32)) == 0.5
    assert pointing_game(cams, torch.tensor([[0, 0, 8, 8], [24, 24, 32, 32]]), (32, 32)) == 1.0
    from viz.analysis.cam import pointing_hits

    assert pointing_hits(cams, boxes, (32, 32)).tolist() == [True, False]
    from viz.plot.cam import overlay  # the display blend lives in the plot layer

    rgb = overlay(torch.rand(3, 32, 32), img[0])
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8


@pytest.mark.parametrize("method", ["GradCAM", "GradCAMPlusPlus", "XGradCAM", "EigenCAM", "LayerCAM", "HiResCAM"])
def test_cams_from_recorded_gradients_equal_the_package_run(model, method):
    from viz.analysis.cam import cam_from_gradients, layer_gradients

    model.eval()
    model.zero_grad(set_to_none=True)  # the module-scoped model may carry gradients of earlier package runs
    x = torch.randn(2, 3, 64, 64)
    recorded = layer_gradients(model, x, [1, 4], ["stages.2", "stages.3"])
    assert recorded.targets == (1, 4) and recorded.logits.shape[0] == 2
    assert all(p.grad is None for p in model.parameters())  # only the layers' gradients were computed
    for i, name in ((2, "stages.2"), (3, "stages.3")):
        expected = class_activation_maps(model, x, [1, 4], method=method, target_layers=[model.stages[i]])
        got = cam_from_gradients(method, *recorded.layers[name])
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="runs the model again"):
        cam_from_gradients("ScoreCAM", *recorded.layers["stages.2"])
    predicted = layer_gradients(model, x, None, ["stages.3"])
    assert predicted.targets == tuple(predicted.logits.argmax(1).tolist())


def test_a_kept_forward_gives_each_targets_gradients_as_a_fresh_forward_and_backward_does(model):
    """`ClassGradients`: one forward with its graph, then a backward per target, equal to `layer_gradients` (a new
    forward each time) for every target asked, in any order, and no hook left on the model."""
    from viz.analysis.cam import ClassGradients, layer_gradients

    model.eval()
    x = torch.randn(2, 3, 64, 64)
    kept = ClassGradients(model, x, ["stages.1", "stages.3"])
    assert all(not m._forward_hooks for m in model.modules())
    for targets in ([1, 4], [3, 0], None, [1, 4]):
        got, expected = kept.gradients(targets), layer_gradients(model, x, targets, ["stages.1", "stages.3"])
        assert got.targets == expected.targets
        torch.testing.assert_close(got.logits, expected.logits)
        for name in ("stages.1", "stages.3"):
            for a, b in zip(got.layers[name], expected.layers[name]):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="give one target per image"):
        kept.gradients([1])
