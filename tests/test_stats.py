"""viz.analysis.stats: bootstrap coverage, paired differences, Wilson's closed form, verdicts, formatting."""
import math

import numpy as np
import pytest
import torch

from viz.analysis.stats import (
    Estimate,
    bootstrap,
    format_estimate,
    grouped_bootstrap,
    mean_interval,
    paired_difference,
    paired_ratio_difference,
    proportion_interval,
    ratio_interval,
    verdict,
    wilson_interval,
)


def test_bootstrap_interval_covers_the_true_mean_about_95_percent():
    rng = np.random.default_rng(1)
    trials, covered = 200, 0
    for t in range(trials):
        x = rng.normal(2.0, 1.5, size=60)
        e = mean_interval(x, resamples=400, seed=t)
        covered += e.low <= 2.0 <= e.high
        assert e.n == 60 and e.low < e.estimate < e.high
    # the percentile bootstrap undercovers a little at N=60; 200 trials put the binomial spread near 1.6 points
    assert 0.88 <= covered / trials <= 0.99


def test_bootstrap_is_seeded_and_takes_tensors():
    x = torch.linspace(0, 1, 50)
    a, b = mean_interval(x, seed=3), mean_interval(x.numpy(), seed=3)
    assert a == b
    assert mean_interval(x, seed=4) != a
    assert a.estimate == pytest.approx(float(x.mean()))


def test_paired_constant_shift_is_detected_with_zero_width():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 5, size=40)  # far more spread between images than the shift
    e = paired_difference(a + 0.3, a)
    assert e.estimate == pytest.approx(0.3)
    assert e.low == pytest.approx(0.3) and e.high == pytest.approx(0.3)
    assert verdict(e) == "supported"
    assert verdict(paired_difference(a - 0.3, a)) == "contradicted"
    # unpaired, the same shift is lost in the spread between images
    lo, hi = mean_interval(a + 0.3).low - mean_interval(a).high, mean_interval(a + 0.3).high - mean_interval(a).low
    assert lo < 0 < hi


def test_identical_inputs_give_a_zero_width_difference():
    a = np.random.default_rng(2).random(30)
    e = paired_difference(a, a.copy())
    assert (e.estimate, e.low, e.high) == (0.0, 0.0, 0.0)
    rows = np.stack([a, np.ones_like(a)], 1)
    r = paired_ratio_difference(rows, rows.copy())
    assert (r.estimate, r.low, r.high) == (0.0, 0.0, 0.0)


def test_paired_needs_the_same_images():
    with pytest.raises(ValueError, match="same images"):
        paired_difference(np.ones(3), np.ones(4))


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (37, 128), (366, 512)])
def test_wilson_matches_its_closed_form(k, n):
    z = 1.959963984540054
    p = k / n
    centre = (p + z ** 2 / (2 * n)) / (1 + z ** 2 / n)
    half = z / (1 + z ** 2 / n) * math.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2))
    e = wilson_interval(k, n)
    assert e.estimate == p and e.n == n and e.method == "wilson"
    assert e.low == pytest.approx(max(0.0, centre - half), abs=1e-12)
    assert e.high == pytest.approx(min(1.0, centre + half), abs=1e-12)
    hits = np.zeros(n, bool)
    hits[:k] = True
    assert proportion_interval(hits) == e


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError, match="at least one trial"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="must lie in"):
        wilson_interval(5, 4)


def test_ratio_interval_equals_the_ratio_of_sums():
    rows = np.array([[1.0, 4.0], [2.0, 4.0], [0.0, 2.0]])
    assert ratio_interval(rows).estimate == pytest.approx(3 / 10)


def test_verdicts_follow_the_interval():
    assert verdict(Estimate(0.2, 0.1, 0.3, 10, "bootstrap")) == "supported"
    assert verdict(Estimate(-0.2, -0.3, -0.1, 10, "bootstrap")) == "contradicted"
    assert verdict(Estimate(0.2, -0.1, 0.3, 10, "bootstrap")) == "inconclusive"
    assert verdict(Estimate(0.2, float("nan"), float("nan"), 1, "bootstrap")) == "inconclusive"
    # one training seed: the spread across seeds is unknown, whatever the interval over images
    assert verdict(Estimate(0.2, 0.1, 0.3, 10, "bootstrap", seeds=1)) == "inconclusive"
    assert verdict(Estimate(0.2, 0.1, 0.3, 10, "bootstrap", seeds=3)) == "supported"


def test_format():
    e = Estimate(0.1234, 0.1011, 0.1449, 128, "bootstrap")
    assert format_estimate(e) == "0.123 [0.101, 0.145], N=128"
    assert f"{e:.2f}" == "0.12 [0.10, 0.14], N=128"
    assert format_estimate(Estimate(1.0, float("nan"), float("nan"), 1, "x", seeds=1)) == \
        "1.000 [no interval], N=1, 1 seed"
    assert e.scaled(100).estimate == pytest.approx(12.34)
    assert e.to_dict()["n"] == 128


def test_grouped_bootstrap_seeds_and_images():
    rng = np.random.default_rng(0)
    a = [rng.random(50) + 0.5 for _ in range(3)]
    b = [rng.random(50) for _ in range(3)]
    e = grouped_bootstrap([a, b], lambda v: v[0] - v[1], resamples=300)
    assert e.seeds == 3 and e.n == 50
    assert e.estimate == pytest.approx(np.mean([x.mean() for x in a]) - np.mean([x.mean() for x in b]))
    assert verdict(e) == "supported"
    one = grouped_bootstrap([a[:1], b[:1]], lambda v: v[0] - v[1], resamples=300)
    assert one.seeds == 1 and one.has_interval and verdict(one) == "inconclusive"
    # per-seed records (one number each): only the seeds vary
    rec = grouped_bootstrap([[0.7, 0.72, 0.71], [0.6, 0.61, 0.62]], lambda v: v[0] - v[1], resamples=300)
    assert rec.n == 1 and rec.seeds == 3 and 0.08 <= rec.low <= rec.high <= 0.12
    lone = grouped_bootstrap([[0.7], [0.6]], lambda v: v[0] - v[1])
    assert not lone.has_interval and verdict(lone) == "inconclusive"


def test_bootstrap_needs_per_image_values():
    with pytest.raises(ValueError, match="one entry per image"):
        bootstrap(np.float64(3.0))
    assert not bootstrap(np.array([1.0])).has_interval
