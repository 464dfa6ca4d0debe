"""Uncertainty of the numbers the analyses report: bootstrap intervals over images (and seeds), Wilson intervals.

- A mean over images: percentile bootstrap over images (seeded; 1000 resamples by default), reported with N.
- A proportion (top-1, pointing game): Wilson score interval.
- A difference on the same images (SAA input vs output; model A vs model B): paired bootstrap, every
  resample draws one set of image indices for both sides.
- Several training seeds per configuration: a two-level bootstrap (seeds with replacement, then images
  with replacement within each drawn seed). With one seed the spread across seeds is unknown, so the
  result says `seeds=1` and `verdict` calls it inconclusive whatever its interval over images.

Every function returns an `Estimate` (estimate, low, high, n, method; `seeds` where seeds enter);
`format_estimate` writes it as `0.123 [0.101, 0.145], N=128`. A verdict follows from the interval only.
Statistics that are not plain means (a ratio of per-image sums, the ERF area ratio of a mean map) go
through `bootstrap` with a `statistic` of the resampled per-image rows.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["Estimate", "format_estimate", "verdict", "VERDICTS", "bootstrap", "mean_interval", "ratio_interval",
           "paired_difference", "paired_ratio_difference", "wilson_interval", "proportion_interval",
           "grouped_bootstrap", "ratio_of_sums"]

#: The three verdicts a claim can get from its interval.
VERDICTS = ("supported", "contradicted", "inconclusive")

RESAMPLES = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A number with its interval.

    Attributes:
        estimate: The statistic on the data as given.
        low: Lower end of the interval (NaN when none can be formed).
        high: Upper end.
        n: Images (or trials) the statistic is computed over.
        method: How the interval was formed ("bootstrap", "paired bootstrap", "wilson", ...).
        level: Coverage the interval aims at.
        seeds: Training seeds behind the estimate, where seeds enter (None: one model, seeds not considered).
    """
    estimate: float
    low: float
    high: float
    n: int
    method: str
    level: float = LEVEL
    seeds: Optional[int] = None

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def scaled(self, factor: float) -> "Estimate":
        """The same estimate in other units (e.g. 100 for per cent)."""
        lo, hi = sorted((self.low * factor, self.high * factor))
        return Estimate(self.estimate * factor, lo, hi, self.n, self.method, self.level, self.seeds)

    def to_dict(self, digits: int = 6) -> dict:
        """Plain numbers for a .json file (NaN as None)."""
        def r(v: float):
            return round(float(v), digits) if math.isfinite(v) else None
        out = {"estimate": r(self.estimate), "low": r(self.low), "high": r(self.high), "n": int(self.n),
               "method": self.method, "level": self.level}
        if self.seeds is not None:
            out["seeds"] = int(self.seeds)
        return out

    def __format__(self, spec: str) -> str:
        return format_estimate(self, spec or ".3f")


def format_estimate(e: Estimate, spec: str = ".3f", unit: str = "") -> str:
    """`0.123 [0.101, 0.145], N=128` (with `, 3 seeds` where seeds enter); `spec` formats each number."""
    def f(v: float) -> str:
        return format(v, spec) + unit if math.isfinite(v) else "n/a"
    ci = f"[{f(e.low)}, {f(e.high)}]" if e.has_interval else "[no interval]"
    seeds = "" if e.seeds is None else f", {e.seeds} seed{'s' if e.seeds != 1 else ''}"
    return f"{f(e.estimate)} {ci}, N={e.n}{seeds}"


def verdict(e: Estimate) -> str:
    """"supported" when the interval lies above zero, "contradicted" when below, "inconclusive" when it spans
    zero, when there is no interval, or when a comparison of trained models rests on a single seed."""
    if not e.has_interval or (e.seeds is not None and e.seeds < 2):
        return "inconclusive"
    if e.low > 0:
        return "supported"
    if e.high < 0:
        return "contradicted"
    return "inconclusive"


def _rows(values) -> np.ndarray:
    x = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("per-image values must have one entry per image (got a scalar); keep the per-image "
                         "values (or sums) of the analysis, not its mean")
    return x


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(samples, a)), float(np.quantile(samples, 1 - a))


def bootstrap(values, statistic: Callable[[np.ndarray], float] = np.mean, *, resamples: int = RESAMPLES,
              seed: int = 0, level: float = LEVEL, method: str = "bootstrap") -> Estimate:
    """Percentile bootstrap over images of `statistic` (rows of `values` are images).

    Args:
        values: (N, ...) per-image values or per-image sums (a tensor or an array).
        statistic: Rows -> number; the mean by default (use `ratio_of_sums` for a ratio of per-image sums).
        resamples: Bootstrap resamples.
        seed: Seed of the resampling (the same seed gives the same interval).
        level: Coverage (0.95).
    """
    x = _rows(values)
    n = x.shape[0]
    if n == 0:
        raise ValueError("no per-image values: the interval needs at least one image")
    est = float(statistic(x))
    if n < 2:
        return Estimate(est, float("nan"), float("nan"), n, method, level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    samples = np.array([statistic(x[i]) for i in idx], dtype=np.float64)
    lo, hi = _percentiles(samples, level)
    return Estimate(est, lo, hi, n, method, level)


def mean_interval(values, **kwargs) -> Estimate:
    """Mean over images with a percentile-bootstrap interval (`bootstrap`)."""
    return bootstrap(values, np.mean, **kwargs)


def ratio_of_sums(rows: np.ndarray) -> float:
    """sum(rows[:, 0]) / sum(rows[:, 1]): a ratio over images of per-image numerators and denominators."""
    den = rows[:, 1].sum()
    return float(rows[:, 0].sum() / den) if den != 0 else float("nan")


def ratio_interval(num_den, **kwargs) -> Estimate:
    """sum(num) / sum(den) over images, from per-image (N, 2) rows (numerator, denominator), bootstrapped."""
    return bootstrap(num_den, ratio_of_sums, **kwargs)


def _paired(a, b) -> np.ndarray:
    a, b = _rows(a), _rows(b)
    if a.shape != b.shape:
        raise ValueError(f"a paired comparison needs the same images on both sides: shapes {a.shape} and {b.shape}")
    return np.stack([a, b], axis=1)


def paired_difference(a, b, **kwargs) -> Estimate:
    """mean(a) - mean(b) over the same images, with a paired bootstrap (one resample of images for both)."""
    kwargs.setdefault("method", "paired bootstrap")
    return bootstrap(_paired(a, b), lambda r: float(r[:, 0].mean() - r[:, 1].mean()), **kwargs)


def paired_ratio_difference(a, b, **kwargs) -> Estimate:
    """ratio_of_sums(a) - ratio_of_sums(b) for per-image (N, 2) rows of the same images, paired bootstrap."""
    kwargs.setdefault("method", "paired bootstrap")
    return bootstrap(_paired(a, b), lambda r: ratio_of_sums(r[:, 0]) - ratio_of_sums(r[:, 1]), **kwargs)


def wilson_interval(successes: int, n: int, *, level: float = LEVEL) -> Estimate:
    """Wilson score interval of a proportion successes / n.

    (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z the two-sided normal quantile of `level`.
    """
    if n <= 0:
        raise ValueError(f"n={n}: a proportion needs at least one trial")
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must lie in [0, n={n}]")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), int(n), "wilson", level)


def proportion_interval(hits, *, level: float = LEVEL) -> Estimate:
    """Wilson interval of the share of true entries of a per-image boolean (hit, correct) array."""
    x = _rows(hits)
    return wilson_interval(int(x.sum()), int(x.size), level=level)


def grouped_bootstrap(groups: Sequence[Sequence], combine: Callable[[list[float]], float],
                      statistic: Callable[[np.ndarray], float] = np.mean, *, resamples: int = RESAMPLES,
                      seed: int = 0, level: float = LEVEL, method: str = "bootstrap over seeds and images"
                      ) -> Estimate:
    """An effect across configurations, each trained with several seeds: two-level bootstrap.

    `groups[c][s]` holds seed s of configuration c: per-image rows (N, ...), or a single number (a seed's
    recorded metric, e.g. top-1 from a model card: only the seeds vary then). Each resample draws, per
    configuration, its seeds with replacement and, per drawn seed, images with replacement; when every
    array has the same number of rows the image draw is shared (the same images, a paired comparison).
    A configuration's value is the mean over its drawn seeds of `statistic(rows)`; `combine` turns the
    configurations' values into the effect (e.g. `lambda v: v[0] - v[1]`).

    Returns an `Estimate` with `seeds` = the fewest seeds of any configuration (`verdict` is inconclusive
    below 2: the spread across seeds is then unknown) and `n` = the fewest images of any seed.
    """
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("every configuration needs at least one seed")
    data = [[np.atleast_1d(np.asarray(v, dtype=np.float64)) if np.ndim(v) == 0 else _rows(v) for v in g]
            for g in groups]
    sizes = {a.shape[0] for g in data for a in g}
    shared = len(sizes) == 1
    est = float(combine([float(np.mean([statistic(a) for a in g])) for g in data]))
    seeds = min(len(g) for g in data)
    n = min(sizes)
    rng = np.random.default_rng(seed)
    samples = np.empty(resamples)
    for r in range(resamples):
        common = rng.integers(0, n, size=n) if shared else None
        values = []
        for g in data:
            picks = rng.integers(0, len(g), size=len(g))
            values.append(float(np.mean([statistic(g[s][common if shared else rng.integers(0, len(g[s]),
                                                                                              size=len(g[s]))])
                                         for s in picks])))
        samples[r] = combine(values)
    lo, hi = _percentiles(samples, level) if n > 1 or seeds > 1 else (float("nan"), float("nan"))
    return Estimate(est, lo, hi, int(n), method, level, seeds)
