"""`smt.resolve`: one way to name a model (and its errors), class names that follow the outputs, the device."""
import pytest
import torch

import smt  # noqa: F401  (registers the variants)
from smt.checkpoint import CheckpointError
from smt.resolve import ModelNameError, class_names, resolve_device, resolve_model

# Fashion-MNIST's classes as its authors list them (Xiao et al. 2017, the dataset's README), in label order.
FASHION_MNIST = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"]


@pytest.fixture(scope="module")
def release_file(tmp_path_factory):
    """A test_smt file in the authors' release layout (pickled yacs config, optimizer state), 1000 classes."""
    from checkpoint_files import official_file

    path = tmp_path_factory.mktemp("ck") / "test_smt.pth"
    official_file(path, "test_smt")
    return path


# ---- class names: the four cases and the length mismatch --------------------------------------------------

def test_ten_outputs_are_scaled_fashion_mnist():
    assert class_names(10) == FASHION_MNIST


def test_imagenet_1k_and_22k_names_come_from_their_own_lists():
    from timm.data import ImageNetInfo

    in1k = class_names(1000)
    assert len(in1k) == 1000 and in1k[0] == "tench" and in1k[3] == "tiger shark"  # WordNet n01440764, n01491361
    in22k = class_names(21841)
    info = ImageNetInfo("imagenet-22k")
    assert len(in22k) == 21841 == info.num_classes()
    assert in22k[5000] == info.index_to_description(5000).split(",")[0]
    assert in22k[:1000] != in1k  # the 22k list is ordered by synset, not the 1k list extended
    assert "Dress" not in in1k[:10]  # never another dataset's names


def test_labels_file_gives_the_names(tmp_path):
    f = tmp_path / "labels.txt"
    f.write_text("cat\ndog\nbird\n")
    assert class_names(3, f) == ["cat", "dog", "bird"]
    assert class_names(3, str(f)) == ["cat", "dog", "bird"]
    assert class_names(10, ["a"] * 10) == ["a"] * 10  # a list overrides the Fashion-MNIST names


def test_any_other_size_is_numbered():
    assert class_names(11) == [f"class {i}" for i in range(11)]
    assert class_names(0) == []


def test_labels_file_of_the_wrong_length_names_both_numbers(tmp_path):
    f = tmp_path / "labels.txt"
    f.write_text("cat\ndog\nbird\n")
    with pytest.raises(ValueError, match=r"has 3 names but the model has 1000 outputs"):
        class_names(1000, f)
    with pytest.raises(FileNotFoundError, match="one class name per line"):
        class_names(3, tmp_path / "missing.txt")


# ---- the model-naming function ------------------------------------------------------------------------

def test_every_form_names_the_same_kind_of_thing(release_file):
    by_path = resolve_model(release_file, device="cpu")
    assert by_path.name == "test_smt.pth" and by_path.checkpoint == str(release_file) and by_path.demo is None
    assert by_path.architecture == "test_smt" and by_path.num_classes == 1000 and by_path.class_names[0] == "tench"
    by_name = resolve_model("test_smt", checkpoint=release_file, device="cpu")
    also_path = resolve_model(None, checkpoint=release_file, device="cpu")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = by_path.model(x)
        assert torch.equal(ref, by_name.model(x)) and torch.equal(ref, also_path.model(x))
    assert not by_path.model.training and by_path.device == torch.device("cpu")
    obj = resolve_model(by_path.model)
    assert obj.model is by_path.model and obj.class_names == by_path.class_names
    demo = resolve_model("heads2", device="cpu")
    assert demo.demo == "heads2" and demo.input_size == 112 and demo.class_names == FASHION_MNIST
    assert demo.checkpoint.endswith("smt_nano_sfmnist_heads2.safetensors")


def test_random_rebuild_is_the_same_architecture_seeded(release_file):
    r = resolve_model(release_file, device="cpu")
    a, b, c = r.build_random(0), r.build_random(0), r.build_random(1)
    assert [k for k in a.state_dict()] == [k for k in r.model.state_dict()]
    assert all(v.shape == r.model.state_dict()[k].shape for k, v in a.state_dict().items())
    w = "stages.0.blocks.0.attn.mhmc.convs.0.weight"
    assert torch.equal(a.state_dict()[w], b.state_dict()[w]) and not torch.equal(a.state_dict()[w], c.state_dict()[w])
    demo = resolve_model("heads2", device="cpu").build_random(0)
    assert demo.num_classes == 10 and len(demo.stages[0].blocks[0].attn.mhmc.convs) == 2


def test_a_missing_path_is_a_clear_error(tmp_path):
    for given in (tmp_path / "missing.pth", str(tmp_path / "missing.pth"), "weights/smt.safetensors"):
        with pytest.raises(FileNotFoundError, match=r"does not exist.*a demo model \(main.*a timm model name.*"
                                                    r"checkpoint file alone"):
            resolve_model(given)
    with pytest.raises(FileNotFoundError, match="checkpoint .*missing.pth does not exist"):
        resolve_model("test_smt", checkpoint=tmp_path / "missing.pth")


def test_a_file_that_is_not_a_checkpoint_is_a_clear_error(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not weights\n")
    with pytest.raises(CheckpointError, match=r"not a checkpoint.*\n\(a model is named by one of: a demo model"):
        resolve_model(text)
    with pytest.raises(ModelNameError, match="is a directory, not a checkpoint file"):
        resolve_model(tmp_path)
    other = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    with pytest.raises(CheckpointError, match="not SMT"):
        resolve_model(other)


def test_a_name_that_is_neither_demo_nor_timm_is_a_clear_error():
    with pytest.raises(ModelNameError, match=r"unknown model 'smt_tinyy': it is not a demo model, not a timm model "
                                             r"and not an existing file; .*heads2.*smt_tiny"):
        resolve_model("smt_tinyy")


def test_the_weights_are_named_once(release_file):
    with pytest.raises(ModelNameError, match="name the weights once"):
        resolve_model(release_file, checkpoint=release_file)


def test_device_defaults_to_cuda_when_available_else_cpu():
    assert resolve_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="use cpu, cuda or cuda:N"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
