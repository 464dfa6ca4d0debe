"""viz.claims: the claims table runs on test_smt, verdicts follow from intervals, seeds enter (d) and (e)."""
import json
from pathlib import Path

import numpy as np
import pytest

from viz.__main__ import main
from viz.analysis.stats import Estimate
from viz.claims import Claim, SeedMeasure, claim_d, claim_e, claims_markdown, load_ablation_records

DATA_IMAGES = Path(__file__).resolve().parent.parent / "data" / "images"


def _claim(low, high):
    return Claim("x", "a claim", "Sec. 0", "an effect", Estimate((low + high) / 2, low, high, 10, "bootstrap"))


def test_a_hand_built_result_gets_each_verdict():
    assert _claim(0.1, 0.3).verdict == "supported"
    assert _claim(-0.3, -0.1).verdict == "contradicted"
    assert _claim(-0.1, 0.3).verdict == "inconclusive"
    md = claims_markdown([_claim(0.1, 0.3), _claim(-0.3, -0.1)])
    assert "**supported**" in md and "**contradicted**" in md and "[0.1, 0.3], N=10" in md


def _seeds(cfg, accs, n=200, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s, a in enumerate(accs):
        correct = rng.random(n) < a
        out.append(SeedMeasure(cfg, s, 100 * correct.mean(), n, correct=correct))
    return out


def test_claim_e_across_seeds():
    on, off = _seeds("heads4", [0.9, 0.88, 0.91]), _seeds("nosaa", [0.5, 0.52, 0.49], seed=1)
    e = claim_e({"heads4": on, "nosaa": off}, resamples=200)
    assert e.effect.seeds == 3 and e.effect.n == 200 and e.verdict == "supported"
    assert claim_e({"heads4": off, "nosaa": on}, resamples=200).verdict == "contradicted"
    # one seed each: the interval over images is there, the spread across seeds is not
    one = claim_e({"heads4": on[:1], "nosaa": off[:1]}, resamples=200)
    assert one.effect.seeds == 1 and one.effect.has_interval and one.verdict == "inconclusive"
    close = claim_e({"heads4": _seeds("heads4", [0.7, 0.72, 0.68]),
                     "nosaa": _seeds("nosaa", [0.71, 0.69, 0.7], seed=2)}, resamples=200)
    assert close.verdict == "inconclusive"


def test_claim_d_from_per_seed_records(tmp_path):
    records = {c: [{"seed": s, "top1": 70.0, "num_images": 10000, "erf_area": {"0.5": a + 0.001 * s}}
                   for s in range(3)]
               for c, a in (("heads1", 0.02), ("heads2", 0.03), ("heads4", 0.04), ("heads8", 0.05))}
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps(records))
    d = claim_d(load_ablation_records(str(path)), resamples=200)
    assert d.effect.estimate == pytest.approx(0.01) and d.effect.seeds == 3 and d.verdict == "supported"
    with pytest.raises(ValueError, match="unknown config"):
        path.write_text(json.dumps({"heads3": []}))
        load_ablation_records(str(path))


def test_viz_claims_runs_on_test_smt(tmp_path, capsys):
    out = tmp_path / "figs"
    rc = main(["claims", "--out", str(out), "--model", "test_smt", "--num-images", "4", "--no-progress"])
    assert rc == 0
    numbers = json.loads((out / "claims.json").read_text())["numbers"]
    keys = set(numbers)
    assert {"a", "b", "d", "e", "f", "g"} <= keys
    assert {f"c stage {s} ({d})" for s in (1, 2, 3) for d in ("energy", "channel", "display")} <= keys
    for k, row in numbers.items():
        assert row["verdict"] in ("supported", "contradicted", "inconclusive"), k
        e = row["effect"]
        if e["low"] is not None:
            want = "supported" if e["low"] > 0 else "contradicted" if e["high"] < 0 else "inconclusive"
            assert row["verdict"] == want or row["effect"].get("seeds") == 1, k
    assert numbers["f"]["verdict"] == "supported"  # MHMC heads are k x k depthwise convolutions
    assert "claims" in (out / "index.html").read_text()
    assert "| a |" in (out / "claims.md").read_text() and "| a |" in capsys.readouterr().out


def test_claims_from_viz_run_results(tmp_path):
    files = []
    for analysis in ("distance", "lowfreq"):
        files.append(str(tmp_path / f"{analysis}.pt"))
        assert main(["run", analysis, "--model", "test_smt", "--images", str(DATA_IMAGES), "--out", files[-1],
                     "--input-size", "32", "--queries", "4", "--num-images", "3"]) == 0
    out = tmp_path / "figs"
    assert main(["claims", "--out", str(out), "--model", "test_smt", "--num-images", "2", "--results", *files,
                 "--no-progress"]) == 0
    numbers = json.loads((out / "claims.json").read_text())["numbers"]
    assert numbers["a"]["from_results"] and numbers["a"]["effect"]["n"] == 3
    assert numbers["c stage 1 (display)"]["from_results"] and numbers["c stage 1 (display)"]["effect"]["n"] == 3
    assert not numbers["f"]["from_results"]


def test_claims_d_e_take_several_seeded_models_per_config():
    import timm
    import torch

    from viz.claims import ABLATION, measure_model

    torch.manual_seed(0)
    x, labels = torch.randn(6, 3, 32, 32), torch.randint(0, 10, (6,))
    ablation = {}
    for cfg, (heads, saa) in ABLATION.items():
        ablation[cfg] = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            arch = {"sam_heads": heads} if saa else {"saa": False}
            model = timm.create_model("test_smt", num_classes=10, **arch).eval()
            m = measure_model(cfg, model, x, labels, erf_images=4, lf_images=4, radius=0.5, seed=seed)
            assert m.correct.shape == (6,) and m.erf_maps.shape == (4, 32, 32)
            assert (m.low_frequency_change is None) == (not saa)
            ablation[cfg].append(m)
    d, e = claim_d(ablation, resamples=100), claim_e(ablation, resamples=100)
    assert d.effect.seeds == e.effect.seeds == 2 and d.effect.n == 4 and e.effect.n == 6
    assert e.effect.estimate == pytest.approx(np.mean([s.top1 for s in ablation["heads4"]])
                                              - np.mean([s.top1 for s in ablation["nosaa"]]))
    assert d.effect.has_interval and d.numbers["seeds"]["heads8"] == [0, 1]
