"""`viz.figures.FigureSet`: caches keyed by content, `with_settings` sharing exactly what the change leaves valid."""
import dataclasses
import gc
from types import SimpleNamespace
from typing import Optional

import numpy as np
import pytest
import torch

import smt.summary
import viz.analysis
import viz.analysis.cam
import viz.analysis.erf
import viz.figures.figureset as figureset
from smt.model import SMT, VARIANTS
from viz.figures import FigureSet, Settings, Source

BLOCK = "stages.0.blocks.0"


def _build(seed: int, into: Optional[SMT] = None) -> SMT:
    """test_smt with 3 classes at random initialisation (seed), built in `into` (an allocated, bare SMT) if given."""
    torch.manual_seed(seed)
    model = SMT.__new__(SMT) if into is None else into
    model.__init__(**VARIANTS["test_smt"], num_classes=3)
    return model.eval()


def _source(n: int = 4, size: int = 32) -> Source:
    g = torch.Generator().manual_seed(0)
    return Source(name="test_smt", model=_build(0), images=torch.randn(n, 3, size, size, generator=g),
                  display=np.zeros((n, size, size, 3), np.uint8), class_names=["a", "b", "c"],
                  labels=torch.arange(n) % 3, boxes=torch.tensor([[0, 0, size // 2, size // 2]] * n),
                  image_source="random tensors", build_random=_build)


# Every cached analysis, read from a set (the keyed ones at one key): the names in DEPENDS_ON, and the random
# model's ERF apart (the ERF cache holds both models, keyed by model and seed).
READ = {
    "source": lambda fs: fs.source,
    "predictions": lambda fs: fs.predictions,
    "forward": lambda fs: fs.forward,
    "fourier": lambda fs: fs.fourier,
    "low_frequency": lambda fs: fs.low_frequency,
    "erf": lambda fs: fs.erf(0),
    "erf of the random model": lambda fs: fs.erf(0, "random"),
    "head_erf": lambda fs: fs.head_erf(BLOCK),
    "random_model": lambda fs: fs.random_model,
    "distance": lambda fs: fs.distance,
    "cams": lambda fs: fs.cams,
    "pointing": lambda fs: fs.pointing,
    "backbones": lambda fs: fs.backbones,
    "backbone_fourier": lambda fs: fs.backbone_fourier("other"),
    "backbone_distance": lambda fs: fs.backbone_distance("other"),
    "backbone_erf": lambda fs: fs.backbone_erf("other"),
    "summary": lambda fs: fs.summary,
    "ablation_source": lambda fs: fs.ablation_source("heads1"),
    "ablation_top1": lambda fs: fs.ablation_top1("heads1"),
    "ablation_erf": lambda fs: fs.ablation_erf("heads1"),
    "ablation_low_frequency": lambda fs: fs.ablation_low_frequency("heads1"),
}

# What each analysis reads, worked out from what it computes (not from DEPENDS_ON): a change of one of these
# settings must recompute it, a change of any other must not.
READS = {
    "num_images": {"forward", "fourier", "low_frequency", "cams", "pointing", "backbones", "backbone_fourier",
                   "backbone_distance", "backbone_erf", "ablation_low_frequency"},
    "rows": set(),
    "sam_block": set(),
    "group": set(),
    "radius": {"low_frequency", "ablation_low_frequency"},
    "thresholds": set(),
    "erf_images": {"erf", "erf of the random model", "backbone_erf", "ablation_erf"},
    "distance_images": {"distance", "backbone_distance"},
    "queries": {"distance"},
    "cam_method": {"cams", "pointing"},
    "seed": {"random_model", "erf of the random model", "distance"},
    "venue": set(),
    "variants": {"summary"},
}
# The counted functions behind each analysis (pointing: one pointing game per stage 2-4; summary: per variant).
USES = {
    "forward": ["smt_forward"], "fourier": ["fourier_profile"], "low_frequency": ["low_frequency_shares"],
    "erf": ["stage_erfs"], "erf of the random model": ["stage_erfs"], "head_erf": ["head_erf"],
    "distance": ["smt_distance_profile"], "cams": ["class_activation_maps"], "pointing": ["pointing_game"] * 3,
    "predictions": ["predicted_classes"], "backbone_fourier": ["block_fourier_profile"],
    "backbone_distance": ["timm_attention_profile"], "backbone_erf": ["effective_receptive_field"],
    "summary": ["summarize"], "ablation_source": ["demo_source"], "ablation_top1": ["predicted_classes"],
    "ablation_erf": ["effective_receptive_field"], "ablation_low_frequency": ["sam_features", "low_frequency_shares"],
}
BASE = Settings(num_images=4, erf_images=4, distance_images=4, queries=2, variants=("test_smt",))
CHANGE = {"num_images": 2, "rows": 1, "sam_block": "stages.1.blocks.0", "group": 1, "radius": 0.25,
          "thresholds": (0.5,), "erf_images": 2, "distance_images": 2, "queries": 1, "cam_method": "GradCAMPlusPlus",
          "seed": 1, "venue": "neurips2024", "variants": ("test_smt", "smt_nano")}


@pytest.fixture
def calls(monkeypatch):
    """Every expensive analysis replaced by a counting stand-in that returns a new object per call."""
    counts: dict[str, int] = {}

    def counting(name, result):
        def fake(*args, **kwargs):
            counts[name] = counts.get(name, 0) + 1
            return result(*args, **kwargs)
        return fake

    def forward(model, images):
        return SimpleNamespace(sam={b: None for b in viz.analysis.sam_block_names(model)}, n=len(images))

    def stage_erfs(model, images, stages, batch_size):
        return {s: SimpleNamespace(erf=torch.rand(5, 5)) for s in stages}

    def cams(model, x, targets, method, target_layers, per_layer):
        return [torch.rand(len(x), 2, 2) for _ in target_layers]

    for module, name, result in [
            (viz.analysis, "smt_forward", forward),
            (viz.analysis, "fourier_profile", lambda forward: [forward.n]),
            (viz.analysis, "low_frequency_shares", lambda feats, radius: [radius]),
            (viz.analysis, "sam_features", lambda model, images: {BLOCK: None}),
            (viz.analysis, "smt_distance_profile", lambda *a, **k: [k["queries"]]),
            (viz.analysis, "block_fourier_profile", lambda model, images: [len(images)]),
            (viz.analysis, "timm_attention_profile", lambda model, images, progress: [len(images)]),
            (viz.analysis.erf, "stage_erfs", stage_erfs),
            (viz.analysis.erf, "head_erf", lambda model, images, block: torch.rand(2, 3, 3)),
            (viz.analysis.erf, "effective_receptive_field", lambda *a, **k: SimpleNamespace(erf=torch.rand(5, 5))),
            (viz.analysis.cam, "class_activation_maps", cams),
            (viz.analysis.cam, "pointing_game", lambda cam, boxes, size: float(len(cam))),
            (figureset, "predicted_classes", lambda model, images: torch.zeros(len(images), dtype=torch.long)),
            (figureset, "demo_source", lambda name: _source()),
            (smt.summary, "summarize", lambda name: SimpleNamespace(name=name))]:
        monkeypatch.setattr(module, name, counting(name, result))
    return counts


def _read_all(fs):
    return {name: read(fs) for name, read in READ.items()}


def _same(a: dict, b: dict) -> bool:
    """Whether every analysis is the very same object (a cache hit) in both readings."""
    return all(a[k] is b[k] for k in a)


def test_every_analysis_and_setting_is_covered():
    assert set(READ) == set(FigureSet.DEPENDS_ON) | {"erf of the random model"}
    assert set(READS) == set(CHANGE) == {f.name for f in dataclasses.fields(Settings)}


@pytest.mark.parametrize("setting", list(CHANGE))
def test_with_settings_recomputes_only_what_the_change_touches(setting, calls):
    other = _source()
    fs = FigureSet(_source(), BASE, backbones={"other": other})
    before = _read_all(fs)
    assert _same(before, _read_all(fs))  # cached: reading again computes nothing
    counted = dict(calls)
    new = fs.with_settings(**{setting: CHANGE[setting]})
    assert getattr(new.settings, setting) == CHANGE[setting] and getattr(fs.settings, setting) != CHANGE[setting]
    after = _read_all(new)
    recomputed = {name for name in READ if after[name] is not before[name]}
    assert recomputed == READS[setting]
    # the functions behind them ran again for each recomputed analysis, the others not at all
    expected = {}
    for name in recomputed:
        for fn in USES.get(name, []) * (len(new.settings.variants) if name == "summary" else 1):
            expected[fn] = expected.get(fn, 0) + 1
    assert {k: v - counted.get(k, 0) for k, v in calls.items() if v != counted.get(k, 0)} == expected
    # the first set still answers with its own settings' results
    assert _same(_read_all(fs), before)


def test_shared_caches_serve_both_sets(calls):
    fs = FigureSet(_source(), BASE)
    new = fs.with_settings(sam_block="stages.1.blocks.0", radius=0.25)
    assert new.head_erf("stages.1.blocks.0") is fs.head_erf("stages.1.blocks.0")  # computed by one, used by both
    assert calls["head_erf"] == 1
    assert new.low_frequency == [0.25] and fs.low_frequency == [BASE.radius]
    assert new.forward is fs.forward and calls["smt_forward"] == 1


def test_settings_are_fixed_and_changes_are_checked(calls):
    fs = FigureSet(_source(), BASE, backbones={"other": _source()})
    with pytest.raises(AttributeError, match="with_settings"):
        fs.settings = dataclasses.replace(fs.settings, sam_block="stages.1.blocks.0")
    with pytest.raises(ValueError, match="unknown setting.*'blocks'"):
        fs.with_settings(blocks=3)
    before = _read_all(fs)
    same = fs.with_settings(seed=BASE.seed)  # no change: everything is shared
    assert _same(_read_all(same), before)


def test_two_models_at_one_address_never_share_an_erf():
    """The random-initialisation model of seed 0 is freed and the one of seed 1 is built at its address: the
    ERF cache (shared by the two sets, as it does not depend on the seed) must not answer with seed 0's maps."""
    images = _source().images[:2]
    held: dict[str, SMT] = {}
    src = dataclasses.replace(_source(), build_random=lambda seed: held.pop("next") if seed == 1 else _build(seed))
    fs = FigureSet(src, Settings(erf_images=2))
    first = fs.erf(0, "random")[0].erf
    address = id(fs.random_model)
    later = fs.with_settings(seed=1)
    assert later.erf(0) is fs.erf(0)  # the ERF cache is shared: it does not depend on the seed
    del fs  # the only holder of seed 0's model: evict it
    gc.collect()
    keep = []  # bare SMT objects take the free blocks of their size, until one takes the freed model's
    for _ in range(200_000):
        bare = SMT.__new__(SMT)
        if id(bare) == address:
            break
        keep.append(bare)
    else:
        pytest.fail("no SMT object was allocated at the freed model's address: the collision was not forced")
    del keep
    held["next"] = _build(1, into=bare)
    del bare
    second = later.erf(0, "random")[0].erf
    assert id(later.random_model) == address  # the same id() as seed 0's model had
    expected = viz.analysis.erf.stage_erfs(_build(1), images, [0], batch_size=8)[0].erf
    assert torch.equal(second, expected) and not torch.equal(second, first)


def test_each_cache_keeps_cache_size_entries(calls):
    small = FigureSet(_source(), BASE, cache_size=1)
    a = small.head_erf(BLOCK)
    small.head_erf("stages.1.blocks.0")  # evicts the first block's fields
    assert small.head_erf(BLOCK) is not a and calls["head_erf"] == 3
    assert [small.erf(s)[0].erf.shape for s in range(4)] == [(5, 5)] * 4  # one stage kept: computed per stage
    assert calls["stage_erfs"] == 4
    large = FigureSet(_source(), BASE)
    assert large.head_erf(BLOCK) is large.head_erf(BLOCK) and calls["head_erf"] == 4
    assert all(large.erf(s) is large.erf(s) for s in range(4)) and calls["stage_erfs"] == 4 + 1


def test_the_ablation_figure_draws_from_the_sets_cached_analyses(monkeypatch):
    from viz.figures import draw
    from viz.figures.registry import ABLATION_SET

    loaded = []

    def demo(name):  # every model of the ablation set is test_smt (seed 0) on the same random canvases
        loaded.append(name)
        return dataclasses.replace(_source(), name=name, demo=name)

    monkeypatch.setattr(figureset, "demo_source", demo)
    fs = FigureSet(dataclasses.replace(_source(), demo="main"), Settings(num_images=4, erf_images=2))
    first = draw(fs, "ablation")
    assert loaded == list(ABLATION_SET) and first.png
    src = _source()
    with torch.no_grad():
        top1 = float(100 * (src.model(src.images).argmax(1) == src.labels).float().mean())
    assert [row["top1"] for row in first.numbers.values()] == [round(top1, 2)] * 5
    assert list(first.numbers) == ["N = 1", "N = 2", "N = 4", "N = 8", "SAA off (N = 4)"]
    assert first.numbers["SAA off (N = 4)"]["low_frequency_change"] is None
    again = draw(fs.with_settings(radius=0.25), "ablation")  # only the low-frequency shares depend on the radius
    assert loaded == list(ABLATION_SET)
    assert np.array_equal(again.arrays["top1"], first.arrays["top1"])
    assert np.array_equal(again.arrays["erf_area_0.5"], first.arrays["erf_area_0.5"], equal_nan=True)
    change = fs.with_settings(radius=0.25).ablation_low_frequency("heads1")
    assert [s.radius for s in change] == [0.25] * len(change)
    assert again.numbers["N = 1"]["low_frequency_change"] == round(float(np.mean([s.change for s in change])), 4)
