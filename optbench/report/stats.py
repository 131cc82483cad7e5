"""Small statistics over the seeds of a sweep: summaries, robust outliers, bootstrap
confidence intervals, paired tests against a baseline, equal-budget values and
time-to-target from a run's evaluation history, and smoothing of loss curves.

Every function is pure (numpy/scipy only, no store access; the robust z-score is
optbench.io.hygiene's) and ignores NaN/inf inputs where it says so, so that failed runs
(no metrics) do not poison a summary. Units are whatever the caller passes in; the report
passes eV/atom, eV/A and seconds.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

# The robust z-score is io.hygiene's: one rule for a data set's outliers and for a
# variant's seeds.
from optbench.io.hygiene import MAD_SCALE, MEAN_AD_SCALE, OUTLIER_Z, robust_z

__all__ = ["MAD_SCALE", "MEAN_AD_SCALE", "OUTLIER_Z", "robust_z", "outliers", "finite", "summarize", "bootstrap_ci",
           "min_wilcoxon_p", "paired_test", "is_finite_number", "best_within_budget", "time_to_target",
           "median_time_to_target", "moving_average", "all_identical", "identical_groups"]


def finite(values) -> np.ndarray:
    """The finite entries of `values` as a float array (None, NaN and inf dropped)."""
    a = np.array([np.nan if v is None else v for v in np.ravel(np.asarray(values, dtype=object))], dtype=float)
    return a[np.isfinite(a)]


def summarize(values) -> dict:
    """Mean, median, sample std (ddof=1; NaN below 2 values), min, max and n of the
    finite entries of `values` (n counts only those; NaN statistics when none)."""
    a = finite(values)
    if a.size == 0:
        return {"n": 0, "mean": math.nan, "median": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    return {"n": int(a.size), "mean": float(a.mean()), "median": float(np.median(a)),
            "std": float(a.std(ddof=1)) if a.size > 1 else math.nan, "min": float(a.min()), "max": float(a.max())}


def outliers(values, threshold: float = OUTLIER_Z) -> np.ndarray:
    """Boolean mask: |robust_z| > threshold (non-finite values are never outliers)."""
    z = robust_z(values)
    return np.abs(np.nan_to_num(z, nan=0.0)) > threshold


def bootstrap_ci(values, level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of the finite entries of
    `values`: resample them with replacement `n_resamples` times (numpy Generator seeded
    with `seed`, so a report is reproducible) and take the (1-level)/2 and (1+level)/2
    quantiles of the resampled means. (NaN, NaN) with fewer than 2 values.

    With 3-5 seeds the interval is rough (it can never be wider than the data's range)."""
    a = finite(values)
    if a.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = a[rng.integers(0, a.size, size=(n_resamples, a.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p-value the exact Wilcoxon signed-rank test can give with
    n nonzero paired differences: 2 / 2**n (all signs alike), e.g. 0.25 for 3 seeds,
    0.125 for 4, 0.0625 for 5, 0.03125 for 6."""
    return 2.0 / 2 ** n if n > 0 else math.nan


def paired_test(values: Mapping[int, float], baseline: Mapping[int, float]) -> dict:
    """Wilcoxon signed-rank test of `values` against `baseline` over the seeds both
    have (finite values only), two-sided, scipy.stats.wilcoxon with its default exact
    distribution for small samples and zero differences dropped ("wilcox").

    Returns n_pairs (shared seeds), n_nonzero (differences != 0), statistic and p_value
    (NaN when fewer than 2 nonzero differences: no test is possible), min_p (the
    smallest p the exact test can give with n_nonzero pairs, see `min_wilcoxon_p`),
    mean_ratio (mean over pairs of value / baseline; NaN if a baseline value is 0) and
    median_diff (median of value - baseline).

    With 3-5 seeds the exact two-sided p-value cannot go below 0.25 / 0.125 / 0.0625,
    however consistent the differences: "not significant at 0.05" is then a statement
    about the number of seeds, not about the optimizers."""
    from scipy.stats import wilcoxon

    seeds = sorted(s for s in set(values) & set(baseline)
                   if is_finite_number(values[s]) and is_finite_number(baseline[s]))
    a = np.array([values[s] for s in seeds], dtype=float)
    b = np.array([baseline[s] for s in seeds], dtype=float)
    d = a - b
    n_nonzero = int(np.count_nonzero(d))
    out = {"n_pairs": len(seeds), "n_nonzero": n_nonzero, "statistic": math.nan, "p_value": math.nan,
           "min_p": min_wilcoxon_p(n_nonzero),
           "mean_ratio": float(np.mean(a / b)) if len(seeds) and np.all(b != 0) else math.nan,
           "median_diff": float(np.median(d)) if len(seeds) else math.nan}
    if n_nonzero >= 2:
        res = wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
        out["statistic"], out["p_value"] = float(res.statistic), float(res.pvalue)
    return out


def rank_correlation(x, y, min_n: int = 4) -> dict:
    """Spearman's rank correlation of the pairs where both `x` and `y` are finite:
    {"runs": their number, "rho", "p" (two-sided)}; rho and p NaN with fewer than `min_n`
    pairs or no spread on either side."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    out = {"runs": int(ok.sum()), "rho": np.nan, "p": np.nan}
    if ok.sum() >= min_n and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
        r = spearmanr(x[ok], y[ok])
        out["rho"], out["p"] = float(r.statistic), float(r.pvalue)
    return out


def is_finite_number(v) -> bool:
    """Whether `v` is a real number (int, float or numpy scalar) that is finite; None,
    text, NaN and inf are not."""
    return v is not None and isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v)


def _eval_points(evals: Sequence[Mapping], axis: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(axis values, metric values) of the evaluations carrying both as finite numbers,
    in history order."""
    pts = [(e[axis], e[metric]) for e in evals if is_finite_number(e.get(axis)) and is_finite_number(e.get(metric))]
    if not pts:
        return np.empty(0), np.empty(0)
    x, y = np.array(pts, dtype=float).T
    return x, y


def best_within_budget(evals: Sequence[Mapping], budget: float, axis: str = "seconds",
                       metric: str = "valid_epa_rmse") -> float:
    """The lowest `metric` among a history's evaluations made within `budget` of `axis`
    ("seconds": training seconds, "configs": configurations evaluated), i.e. the best
    model one could have kept with that budget. NaN when no evaluation falls within it.
    A run that ended before the budget keeps its best value (it had nothing more)."""
    x, y = _eval_points(evals, axis, metric)
    within = x <= budget
    return float(y[within].min()) if within.any() else math.nan


def time_to_target(evals: Sequence[Mapping], target: float, axis: str = "seconds",
                   metric: str = "valid_epa_rmse") -> float | None:
    """The first `axis` value (training seconds or configurations evaluated) at which
    `metric` is at or below `target`, from a history's evaluations; None when never."""
    x, y = _eval_points(evals, axis, metric)
    hit = np.nonzero(y <= target)[0]
    return float(x[hit[0]]) if hit.size else None


def median_time_to_target(times: Sequence[float | None]) -> float:
    """Median over seeds of times-to-target, a run that never reached the target
    counting as infinitely slow: inf when half the runs or more never reached it, so
    that a variant is not credited with the speed of its few lucky seeds."""
    if not len(times):
        return math.nan
    return float(np.median([math.inf if t is None else t for t in times]))


def moving_average(y, window: int) -> np.ndarray:
    """Trailing moving average of `y` over `window` points, the same length as `y`
    (the first points average over what there is so far), so it stays aligned with the
    step / configs / seconds axis. Mini-batch losses are noisy; this shows the trend.
    Non-finite points are left out of every average that would include them."""
    y = np.asarray(y, dtype=float)
    if window <= 1 or y.size == 0:
        return y.copy()
    ok = np.isfinite(y)
    # Direct windowed sums (convolution), not differences of a cumulative sum: a loss
    # falling over many decades would lose its late values to cancellation.
    kernel = np.ones(window)
    sums = np.convolve(np.where(ok, y, 0.0), kernel)[:y.size]
    count = np.convolve(ok.astype(float), kernel)[:y.size]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, sums / count, np.nan)


def all_identical(values, rtol: float = 1e-12) -> bool:
    """Whether all entries of `values` (at least 2, all finite) agree to relative
    tolerance `rtol` with the first: different seeds giving the same result means the
    seed did not reach the run (a harness bug the study's tables did not catch)."""
    a = np.asarray(values, dtype=float)
    if a.size < 2 or not np.all(np.isfinite(a)):
        return False
    return bool(np.all(np.abs(a - a[0]) <= rtol * np.maximum(np.abs(a), np.abs(a[0]))))


def identical_groups(rows: Sequence[Sequence[float]], rtol: float = 1e-12) -> list[list[int]]:
    """Groups (lists of indices, each of 2 or more) of `rows` that agree entry by entry
    to relative tolerance `rtol`; rows with a non-finite entry are never grouped. Used
    on (final loss, validation EPA) of one variant's seeds: a group is a set of seeds
    whose runs came out the same."""
    groups: list[list[int]] = []
    for i, row in enumerate(rows):
        for g in groups:
            if all(all_identical([a, b], rtol) for a, b in zip(rows[g[0]], row)):
                g.append(i)
                break
        else:
            if len(row) and all(is_finite_number(v) for v in row):
                groups.append([i])
    return [g for g in groups if len(g) > 1]
