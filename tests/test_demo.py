import re

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file

import smt
from smt.checkpoint import load_weights
from smt.demo import (
    ABLATION_SEEDS,
    DEMO_DIR,
    DEMO_MODELS,
    ablation_seeds,
    decode_images,
    demo_images,
    demo_model,
    demo_weights_path,
    encode_images,
    subset_accuracy,
)


def test_encode_decode_roundtrip():
    x = np.random.default_rng(0).integers(0, 256, size=(3, 9, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_images(encode_images(x)), x)


def test_shipped_subset():
    d = smt.demo_images()
    assert (DEMO_DIR / "eval_subset.npz").stat().st_size <= 3_000_000
    assert d.images.shape == (512, 112, 112, 3) and d.images.dtype == torch.uint8
    assert d.labels.shape == (512,) and set(d.labels.tolist()) == set(range(10))
    assert len(d.class_names) == 10 and d.class_names[0] == "T-shirt/top"
    x0, y0, x1, y1 = d.boxes.unbind(1)
    assert bool(((0 <= x0) & (x0 < x1) & (x1 <= 112) & (0 <= y0) & (y0 < y1) & (y1 <= 112)).all())
    assert d.model_input(slice(0, 2)).shape == (2, 3, 112, 112)


def test_shipped_subset_is_the_scaled_test_set():
    from smt.data import ScaledFashionMNIST, load_fashion_mnist, to_uint8

    try:
        images, labels = load_fashion_mnist("test")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST not installed (make data)")
    d = demo_images()
    x, y, boxes = ScaledFashionMNIST(images, labels, seed=d.seed).render(d.indices[:64])
    assert torch.equal(to_uint8(x), d.images[:64])
    assert torch.equal(y, d.labels[:64]) and torch.equal(boxes, d.boxes[:64])


#: The ablation seeds s > 0 ship as they finish training; every other demo model must be shipped.
SHIPPED = [n for n in sorted(DEMO_MODELS) if demo_weights_path(n).is_file()]


def test_every_demo_model_but_later_seeds_is_shipped():
    later_seeds = {n for names in ABLATION_SEEDS.values() for n in names[1:]}
    assert set(DEMO_MODELS) - later_seeds <= set(SHIPPED)
    for config, names in ABLATION_SEEDS.items():
        assert ablation_seeds(config) == [n for n in names if n in SHIPPED]
        assert all(DEMO_MODELS[n] == DEMO_MODELS[config] for n in names)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_loads_through_the_user_path(name):
    path = demo_weights_path(name)
    assert path.with_suffix(".md").is_file(), "every shipped checkpoint has a model card"
    variant, arch = DEMO_MODELS[name]
    user = timm.create_model(variant, pretrained=True, num_classes=10,
                             pretrained_cfg_overlay=dict(file=str(path), num_classes=10), **arch)
    state = load_file(str(path))
    for k, v in user.state_dict().items():
        torch.testing.assert_close(v, state[k].to(v.dtype), rtol=0, atol=0, msg=k)
    other = timm.create_model(variant, num_classes=10, **arch)
    if variant.startswith("smt"):
        load_weights(other, path)  # the SMT reader (key layouts, variant checks)
    else:
        other.load_state_dict({k: v.to(other.state_dict()[k].dtype) for k, v in state.items()})
    model = demo_model(name)
    assert not model.training
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(model(x), other.eval()(x))


def _card_number(text, row):
    m = re.search(re.escape(row) + r"[^|]*\| \*\*([0-9.]+)\*\* \|", text)
    assert m, f"the model card has no row {row!r}"
    return float(m.group(1))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_reaches_its_card_accuracy_on_the_shipped_subset(name):
    card = demo_weights_path(name).with_suffix(".md").read_text()
    claimed = _card_number(card, "shipped evaluation subset")
    acc = subset_accuracy(demo_model(name))
    assert abs(acc - claimed) <= 0.5, (acc, claimed)
    assert acc > 50  # far above the 10% of chance: the weights are trained


def test_demo_model_errors():
    with pytest.raises(ValueError, match="heads1"):
        demo_model("heads3")
    with pytest.raises(FileNotFoundError, match="checkpoint="):
        demo_model("main", checkpoint="no/such/file.safetensors")
