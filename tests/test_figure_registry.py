"""`viz.figures.registry`: each figure's spec recorded where it is defined, its needs checked before it is drawn."""
import dataclasses

import numpy as np
import pytest
import timm
import torch

import smt  # noqa: F401  (registers the SMT variants with timm)
import viz.figures.registry as registry
from smt.model import SMT, VARIANTS
from viz.figures import FIGURES, FigureSet, FigureSpec, Settings, SkipFigure, Source, catalog, draw, render


def _source(model: torch.nn.Module, name: str) -> Source:
    return Source(name=name, model=model.eval(), images=torch.zeros(2, 3, 32, 32),
                  display=np.zeros((2, 32, 32, 3), np.uint8), class_names=["a", "b"], image_source="zeros")


def _vit() -> Source:
    return _source(timm.create_model("test_vit", img_size=32, num_classes=2), "test_vit")


def _smt(**arch) -> Source:
    torch.manual_seed(0)
    return _source(SMT(**dict(VARIANTS["test_smt"], **arch), num_classes=2), "test_smt")


def test_every_figure_is_registered_where_it_is_defined_in_order():
    assert list(FIGURES) == ["modulator_maps", "sam_block", "fourier", "low_frequency", "distance", "erf", "gradcam",
                             "ablation", "summary"]
    erf = FIGURES["erf"]
    assert erf == FigureSpec("erf", catalog.fig_erf, "full", ("smt",), "erf", erf.description)
    assert erf.description and erf.description == catalog.fig_erf.__doc__.strip().splitlines()[0]
    assert FIGURES["low_frequency"].needs == ("smt", "saa") and FIGURES["summary"].needs == ()
    assert FIGURES["ablation"].needs == ("ablation_set", "demo_canvases")
    for name, spec in FIGURES.items():
        assert spec.name == name and spec.width in ("column", "full") and set(spec.needs) <= set(registry.NEEDS)
        assert spec.draw is getattr(catalog, f"fig_{name}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        erf.width = "column"


def test_the_decorator_records_a_spec_and_rejects_a_bad_one(monkeypatch):
    monkeypatch.setattr(registry, "FIGURES", {})

    @registry.figure("probe", width="column", needs="smt", results="erf")
    def fig_probe(fs):
        """A probe.

        More words."""

    assert registry.FIGURES == {"probe": FigureSpec("probe", fig_probe, "column", ("smt",), "erf", "A probe.")}
    with pytest.raises(ValueError, match="registered twice"):
        registry.figure("probe", width="column")(fig_probe)
    with pytest.raises(ValueError, match=r"needs \['gpu'\], which are not known needs; known: smt, saa"):
        registry.figure("other", width="column", needs=("smt", "gpu"))
    with pytest.raises(ValueError, match="width 'half'"):
        registry.figure("other", width="half")
    assert list(registry.FIGURES) == ["probe"]


@pytest.fixture
def probe(monkeypatch):
    """A figure `probe` that needs an SMT model and records the sets it was drawn for."""
    drawn = []

    def fig_probe(fs):
        drawn.append(fs)
        return catalog.Rendered(None, {"x": np.zeros(1)}, "probe", texts={".md": "| a |\n|---|\n| 1 |\n"})

    monkeypatch.setitem(FIGURES, "probe", FigureSpec("probe", fig_probe, "column", ("smt",), "erf"))
    return drawn


def test_the_renderer_checks_needs_and_skips_with_the_reason(probe, tmp_path):
    fs = FigureSet(_vit(), Settings())
    [outcome] = render(fs, tmp_path, ["probe"], progress=False)
    assert outcome.status == "skipped" and probe == []
    assert outcome.message == "probe needs an SMT model; test_vit is a VisionTransformer"
    assert "skipped: probe needs an SMT model" in (tmp_path / "index.html").read_text()
    with pytest.raises(SkipFigure, match="probe needs an SMT model; test_vit is a VisionTransformer"):
        draw(fs, "probe")
    assert probe == []
    smt_set = FigureSet(_smt(), Settings())
    [outcome] = render(smt_set, tmp_path, ["probe"], progress=False)
    assert outcome.status == "ok" and probe == [smt_set]


def test_a_results_record_stands_in_for_the_needs(probe):
    fs = FigureSet(_vit(), Settings(), results=[("erf.pt", {"analysis": "erf"})])
    assert FIGURES["probe"].unmet(fs) is None
    draw(fs, "probe")
    assert probe == [fs]
    assert FIGURES["probe"].unmet(FigureSet(_vit(), Settings(), results=[("x.pt", {"analysis": "cam"})]))


def test_every_figure_that_needs_smt_is_skipped_on_another_model(tmp_path):
    needs_smt = [n for n, s in FIGURES.items() if "smt" in s.needs]
    assert len(needs_smt) == 7
    outcomes = render(FigureSet(_vit(), Settings()), tmp_path, needs_smt + ["ablation"], progress=False)
    assert [o.status for o in outcomes] == ["skipped"] * 8
    for o in outcomes[:-1]:
        assert o.message == f"{o.name} needs an SMT model; test_vit is a VisionTransformer"
    assert outcomes[-1].message.startswith("ablation needs ")


def test_needs_are_checked_in_order():
    off = FigureSet(_smt(saa=False), Settings())
    assert FIGURES["low_frequency"].unmet(off) == ("low_frequency needs a SAM block with SAA; test_smt has no SAM "
                                                   "block with SAA (SAA is off)")
    assert FIGURES["low_frequency"].unmet(FigureSet(_smt(), Settings())) is None
    assert FIGURES["low_frequency"].unmet(FigureSet(_vit(), Settings())).startswith("low_frequency needs an SMT")


def test_the_ablation_figure_needs_the_trained_set_and_the_shipped_canvases(monkeypatch):
    from smt.demo import DEMO_MODELS

    fs = FigureSet(_smt(), Settings())
    assert FIGURES["ablation"].unmet(fs) == ("ablation needs the shipped canvases; the ablation set is trained on "
                                             "Scaled Fashion-MNIST (run without --images and with a demo --model); "
                                             "the images here are zeros")
    monkeypatch.delitem(DEMO_MODELS, "heads2")
    assert FIGURES["ablation"].unmet(fs).startswith("ablation needs the trained ablation set (heads1, heads2, "
                                                    "heads4, heads8, nosaa); missing heads2 in data/demo")
