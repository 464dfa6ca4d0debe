"""viz.sessions: which model a configuration means, and the sessions' views, caches and prefetch, without widgets."""
import gc

import numpy as np
import pytest
import timm
import torch

from viz.sessions import (
    Config,
    ExplorerSession,
    ImageSet,
    ModelResolver,
    Prefetcher,
    SAMSession,
    TorchThreads,
    default_kernels,
    resize_kernels,
)


def _images(n=3, size=64, seed=0):
    g = np.random.default_rng(seed)
    return ImageSet(g.integers(0, 256, (n, size, size, 3), dtype=np.uint8), [f"noise {i}" for i in range(n)],
                    [i % 10 for i in range(n)])


def test_resize_kernels_crops_and_pads_the_trained_weights():
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
    # the key names the configuration: one per trained model, kernels and seed are part of it
    assert r.resolve(Config()).key == ("demo", "main")
    assert r.resolve(Config(kernels=(3, 5, 7, 11))).key == ("resized", "main", (3, 5, 7, 11))
    assert r.resolve(Config(base="random", seed=1)).key != r.resolve(Config(base="random", seed=2)).key


def test_two_configurations_never_share_a_cache_entry_after_a_model_is_freed():
    """Keyed by id(model), a capture of a freed model would be handed to a new model that CPython put at the
    same address; keyed by the configuration, never."""
    resolver = ModelResolver(cache_size=1)
    session = SAMSession([f"class {i}" for i in range(10)])
    images = _images(1, size=112)
    key, x = images.key(0), images.model_input(0)
    block = "stages.0.blocks.0"
    views, ids = {}, set()
    for seed in (0, 1, 2, 3):
        resolved = resolver.resolve(Config(base="random", seed=seed))
        ids.add(id(resolved.model))
        views[seed] = session.block_view(resolved, key, x, block)
        with torch.no_grad():
            expected = resolved.model(x)
        del resolved  # the resolver keeps one model: the next resolve evicts this one
        gc.collect()
        assert views[seed].top5[0][1] == pytest.approx(float(torch.softmax(expected[0].double(), 0).max()))
    assert len(session.forwards) == 4 and len(session.fields_cache) == 4
    mods = [views[s].modulator for s in views]
    assert all(not torch.equal(a, b) for k, a in enumerate(mods) for b in mods[k + 1:])
    # the same configuration built again (evicted, rebuilt: a new object) finds its entry
    again = resolver.resolve(Config(base="random", seed=0))
    n = session.forwards.hits
    torch.testing.assert_close(session.block_view(again, key, x, block).modulator, views[0].modulator)
    assert session.forwards.hits == n + 1


def test_image_keys_name_the_content():
    a = _images(2)
    b = ImageSet(a.display[::-1].copy(), list(a.names))  # same names, other pixels
    assert a.key(0) != b.key(0) and a.key(0) == _images(2).key(0)


def test_sam_session_views_and_masks_on_test_smt():
    torch.manual_seed(0)
    model = timm.create_model("test_smt", num_classes=10).eval()
    from viz.sessions import Resolved

    resolved = Resolved(model, "random", "test_smt", "a tiny test model", ("test", "test_smt"))
    s = SAMSession([f"class {i}" for i in range(10)])
    images = _images(1)
    block = "stages.0.blocks.0"
    v = s.block_view(resolved, images.key(0), images.model_input(0), block)
    n = len(v.kernel_sizes)
    assert v.head_maps.shape[0] == n and v.head_fields.shape[0] == n and len(v.top5) == 5
    masked = s.block_view(resolved, images.key(0), images.model_input(0), block, (0,))
    assert masked.masked == (0,) and float(masked.head_maps[0].abs().max()) == 0.0
    assert torch.equal(masked.head_fields, v.head_fields)  # the fields come from the unmasked pass


def test_forward_batch_caches_each_image_as_its_own_forward_would():
    """One pass over a batch gives each image the views a pass of its own gives, cached under its own key (the
    views after it compute no forward pass)."""
    from viz.sessions import Resolved

    torch.manual_seed(0)
    model = timm.create_model("test_smt", num_classes=10).eval()
    resolved = Resolved(model, "random", "test_smt", "a tiny test model", ("test", "test_smt"))
    images, block = _images(3), "stages.1.blocks.0"
    keys = [images.key(i) for i in range(3)]
    x = torch.cat([images.model_input(i) for i in range(3)])
    alone = SAMSession([f"class {i}" for i in range(10)])
    for masked in ((), (1,)):
        batched = SAMSession([f"class {i}" for i in range(10)], cache_size=6)
        fwds = batched.forward_batch(resolved, keys, x, block, masked)
        assert len(fwds) == 3 and all(f.logits.shape == (1, 10) for f in fwds)
        misses = batched.forwards.misses
        for i in range(3):
            one = alone.block_view(resolved, keys[i], images.model_input(i), block, masked)
            many = batched.block_view(resolved, keys[i], images.model_input(i), block, masked)
            for name in ("head_maps", "saa_input", "modulator"):
                torch.testing.assert_close(getattr(many, name), getattr(one, name), rtol=1e-4, atol=1e-5)
            assert [c for c, _ in many.top5] == [c for c, _ in one.top5] and many.masked == tuple(masked)
        # the masked views' fields need the unmasked forward, which this session has not run: one miss each
        assert batched.forwards.misses - misses == (0 if not masked else 3)
    with pytest.raises(ValueError, match="one key per image"):
        alone.forward_batch(resolved, keys[:2], x, block)
    with pytest.raises(ValueError, match="cache_size >= 3"):
        SAMSession(["a"], cache_size=2).forward_batch(resolved, keys, x, block)


def test_explain_says_what_the_model_is_and_what_a_mask_did():
    from viz.sessions import explain

    assert explain("the main model", "stages.0.blocks.1", (), ("cat", 0.5), ("cat", 0.5)) == "the main model"
    line = explain("the main model", "stages.0.blocks.1", (0, 2), ("cat", 0.5), ("dog", 0.125))
    assert line == "the main model. Masking heads 1, 3 of stages.0.blocks.1: top-1 cat 50.0% → dog 12.5%"
    assert "Masking head 2 of" in explain("m", "b", (1,), ("cat", 0.5), ("dog", 0.25))


def test_explorer_session_without_widgets_on_test_smt():
    from viz.capture import capture

    torch.manual_seed(0)
    model = timm.create_model("test_smt", num_classes=10).eval()
    images = _images(3)
    s = ExplorerSession(model, images)
    assert [b for _, b in s.blocks(2)] == ["stages.2.blocks.0", "stages.2.blocks.1"]
    taps = [t for _, t in s.taps("stages.0.blocks.0")]
    assert taps[-2:] == ["output", "stage"] and "modulator" in taps and [t for _, t in s.taps("stages.2.blocks.1")][0] \
        == "attn_weights"
    # a tap's view equals the tap recorded independently
    with torch.no_grad(), capture(model, ["stages.0.blocks.0.attn.modulator"]) as cap:
        logits = model(images.model_input(1))
    mod = cap["stages.0.blocks.0.attn.modulator"][0]
    t = s.tap_view(1, "stages.0.blocks.0", "modulator")
    torch.testing.assert_close(t.values, mod.abs().mean(0).double(), rtol=1e-5, atol=1e-6)
    assert not t.signed and t.channels == mod.shape[0] and "mean over" in t.label
    ch = s.tap_view(1, "stages.0.blocks.0", "modulator", "channel", 3)
    torch.testing.assert_close(ch.values, mod[3].double(), rtol=1e-5, atol=1e-6)
    assert ch.signed and ch.label.endswith("channel 3")
    assert s.tap_view(1, "stages.0.blocks.0", "modulator", "channel", 10 ** 6).label.endswith(
        f"channel {mod.shape[0] - 1}")  # clamped to the last channel
    a = s.tap_view(1, "stages.2.blocks.1", "attn_weights")
    assert abs(float(a.values.sum()) - 1.0) < 1e-4  # mean over heads of one softmax row
    # top-5 from the logits of the same image
    probs = torch.softmax(logits[0].double(), 0)
    top = s.top5(1, "stages.0.blocks.0")
    assert [p for _, p in top] == pytest.approx(torch.topk(probs, 5).values.tolist(), rel=1e-5)
    assert s.truth(1) == s.class_names[1]
    # CAM: the predicted class by default, one backward pass per (image, target) for every method and layer
    cam = s.cam_view(1)
    assert cam.target == int(logits.argmax()) and cam.cam.shape == (4, 4) and "stage 3" in cam.label
    assert s.cam_view(1, "LayerCAM", layer=1).cam.shape == (8, 8) and len(s.gradients) == 1
    assert s.cam_view(1, target=3).target == 3 and len(s.gradients) == 2
    assert len(s.graphs) == 1 and s.graphs.misses == 1  # another target: a backward on the kept forward
    with pytest.raises(ValueError, match="choose 'mean' or 'channel'"):
        s.tap_view(0, "stages.0.blocks.0", "modulator", "max")


def test_prefetch_fills_the_cache_in_the_background_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = timm.create_model("test_smt", num_classes=10).eval()
    s = ExplorerSession(model, _images(3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s.prefetch([1, 2], "stages.0.blocks.0")
    assert s.prefetcher.idle(60)
    assert not s.prefetcher.errors and len(s.captures) == 2 and len(s.gradients) == 2
    hits = s.captures.hits
    fwd, _ = s.capture(2, "stages.0.blocks.0")  # a hit: computed by the prefetch
    assert s.captures.hits == hits + 1
    with torch.no_grad():
        torch.testing.assert_close(fwd.logits, model(s.images.model_input(2)))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks for m in model.modules())  # no hook left on the caller's model


def test_the_prefetch_copies_the_model_only_while_the_caller_is_not_computing_on_it():
    """`Replicas.copy` (on the prefetch thread) waits while the caller computes under `using` (its hooks and
    masks exist then), so a copy never carries them; the copies themselves run without the lock."""
    import threading

    from viz.sessions import Replicas

    r, model, out = Replicas(1), torch.nn.Linear(2, 2), []
    with r.using(model):
        hook = model.register_forward_hook(lambda *a: None)
        t = threading.Thread(target=lambda: out.append(r.copy("k", model)))
        t.start()
        t.join(0.3)
        assert t.is_alive() and not out  # waiting for the caller's computation to end
        hook.remove()
    t.join(10)
    (twin,) = out
    assert twin is not model and not twin._forward_hooks and r.copy("k", model) is twin
    assert r.using(twin) is not r.using(model)  # the copy runs in parallel with the caller


def test_prefetcher_runs_the_latest_request_and_records_failures():
    p, ran = Prefetcher(), []
    p.request([lambda: ran.append(1), lambda: (_ for _ in ()).throw(RuntimeError("bad"))])
    assert p.idle(10) and ran == [1] and p.errors == ["RuntimeError: bad"]
    p.cancel()
    p.close()


def test_torch_threads_restores_the_callers_count():
    n = torch.get_num_threads()
    t = TorchThreads(1)
    with t:
        with t:
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n


def test_default_kernels():
    assert default_kernels(4) == (3, 5, 7, 9)


# -- the user's own SMT: a release-format file (the authors' key layout, a pickled yacs config) ------------------

@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A release-format test_smt file (1000 outputs, input 64), and an ablation folder with N = 2 and SAA off."""
    from checkpoint_files import official_file
    from smt.model import to_official_state_dict

    root = tmp_path_factory.mktemp("release")
    official_file(root / "test_smt.pth", "test_smt")
    folder = root / "ablations"
    folder.mkdir()
    for name, kwargs in (("heads2.pth", dict(sam_heads=2)), ("nosaa.pth", dict(saa=False))):
        torch.manual_seed(1)
        official_file(folder / name, state=to_official_state_dict(timm.create_model("test_smt", **kwargs).state_dict()))
    (folder / "notes.txt").write_text("not a checkpoint")
    return root / "test_smt.pth", folder


def _user(path, **kwargs):
    return Config(base="checkpoint", checkpoint=str(path), **kwargs)


def test_a_release_file_resizes_its_kernels_in_every_sam_stage_or_one(release):
    path, _ = release
    r = ModelResolver(device="cpu")
    saved = r.resolve(_user(path))
    assert saved.kind == "checkpoint" and saved.input_size == 64 and len(saved.class_names) == 1000
    x = ImageSet.canvases(size=64).model_input(0)
    s = SAMSession(["unused"] * 10)
    base = s.block_view(saved, ("c", 0), x, "stages.0.blocks.0")
    from smt.resolve import class_names

    assert {c for c, _ in base.top5} <= set(class_names(1000))  # ImageNet names, from the model's 1000 outputs

    cropped = r.resolve(_user(path, kernels=(1, 3, 5, 7)))
    assert cropped.kind == "resized" and "centre-cropped" in cropped.explanation
    assert not torch.allclose(s.block_view(cropped, ("c", 0), x, "stages.0.blocks.0").head_maps, base.head_maps)

    padded = r.resolve(_user(path, kernels=(5, 7, 9, 11)))
    assert "zero-padded (output unchanged)" in padded.explanation
    with torch.no_grad():
        torch.testing.assert_close(padded.model(x), saved.model(x), rtol=1e-5, atol=1e-5)

    one = r.resolve(_user(path, kernels=(1, 3, 5, 7), stage=1))
    assert one.model.stage_kernel_sizes[1] == (1, 3, 5, 7) and "stage 2 (stages.1)" in one.explanation
    assert one.model.stage_kernel_sizes[0] == one.model.stage_kernel_sizes[2] == (3, 5, 7, 9)
    torch.testing.assert_close(one.model.stages[0].blocks[0].attn.mhmc.convs[3].weight,
                               saved.model.stages[0].blocks[0].attn.mhmc.convs[3].weight)
    with pytest.raises(ValueError, match="stage 4 .*has no SAM blocks"):
        r.resolve(_user(path, stage=3))


def test_an_ablation_folder_switches_to_the_file_with_that_setting(release):
    path, folder = release
    r = ModelResolver(device="cpu", ablations=folder)
    two = r.resolve(_user(path, heads=2, kernels=(3, 5)))
    assert two.kind == "trained" and two.name == "heads2.pth" and "heads2.pth" in two.explanation
    assert len(two.model.stages[0].blocks[0].attn.mhmc.convs) == 2
    off = r.resolve(_user(path, saa=False))
    assert off.name == "nosaa.pth" and isinstance(off.model.stages[0].blocks[0].attn.saa, torch.nn.Identity)
    resized = r.resolve(_user(path, heads=2, kernels=(5, 7)))  # the file's kernels resized, as the demo set's
    assert resized.kind == "resized" and "heads2.pth" in resized.explanation
    eight = r.resolve(_user(path, heads=8, kernels=default_kernels(8), seed=3))
    assert eight.kind == "random" and "no file of the ablation folder has N = 8" in eight.explanation
    assert "seed 3" in eight.explanation and "notes.txt" not in eight.explanation  # not a checkpoint: not read
    files, _ = r.ablation_files()
    assert [f.path.rsplit("/", 1)[-1] for f in files] == ["heads2.pth", "nosaa.pth"]

    alone = ModelResolver(device="cpu").resolve(_user(path, heads=2, kernels=(3, 5), seed=3))
    assert alone.kind == "random" and "no ablation folder is given" in alone.explanation
    torch.manual_seed(3)
    again = timm.create_model("test_smt", sam_heads=(2, 2, 2, 4), kernel_sizes=((3, 5),) * 3 + (None,)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():  # the stated seed, the stated architecture
        torch.testing.assert_close(alone.model(x), again(x))


def test_the_explorer_session_names_the_classes_of_the_model():
    from smt.resolve import class_names

    model = timm.create_model("test_smt").eval()
    s = ExplorerSession(model, _images(2))
    assert s.class_names == class_names(1000) and s.truth(0) is None  # the canvases' labels are other classes
    assert {c for c, _ in s.top5(0, "stages.0.blocks.0")} <= set(class_names(1000))
