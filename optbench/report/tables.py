"""The report's tables, one pandas DataFrame per (model, data) group and question, in
shown units (meV/atom, meV/Å, seconds): the summary over seeds, outliers, the overview,
the comparison with the baseline, equal-budget and time-to-target views and the flags of
runs to read with care; and their defaults (budgets, target).

Each table has the columns "model" and "data" first, so that the groups' tables concatenate.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from optbench.report import stats
from optbench.report.groups import (
    AXES,
    OUTLIER_QUANTITIES,
    QUANTITIES,
    Group,
    line_search_failure,
    shown_values,
    stopped_without_converging,
)
from optbench.report.render import fmt
from optbench.status import UNSUCCESSFUL


def _status_counts(runs: pd.DataFrame) -> str:
    return ", ".join(f"{s} {n}" for s, n in runs["status"].value_counts().items())


def _success_count(runs: pd.DataFrame) -> str:
    s = runs["success"].dropna()
    return f"{int(s.sum())} of {len(s)}" if len(s) else "n/a"


def summary_table(g: Group) -> pd.DataFrame:
    """Long table: per variant and quantity (QUANTITIES, shown units) n, mean, median,
    std (ddof=1), min, max over the variant's runs with a finite value."""
    rows = []
    for q, (_, _, unit, label) in QUANTITIES.items():
        for v in g.variants:
            rows.append({"model": g.model, "data": g.data, "variant": v, "quantity": label, "unit": unit,
                         **stats.summarize(shown_values(g.of(v), q))})
    return pd.DataFrame(rows)


def outlier_table(g: Group) -> pd.DataFrame:
    """Runs whose validation EPA (meV/atom) or force RMSE (meV/Å) has |robust z| > 3.5
    within its variant (stats.outliers), with the value, the variant's median (same unit)
    and the robust z."""
    rows = []
    for v in g.variants:
        runs = g.of(v)
        for q in OUTLIER_QUANTITIES:
            vals = shown_values(runs, q)
            z = stats.robust_z(vals)
            for i in np.nonzero(stats.outliers(vals))[0]:
                rows.append({"model": g.model, "data": g.data, "variant": v, "seed": int(runs["seed"].iloc[i]),
                             "key": runs["key"].iloc[i], "quantity": QUANTITIES[q][3], "unit": QUANTITIES[q][2],
                             "value": vals[i], "median": float(np.nanmedian(vals)), "robust_z": float(z[i])})
    return pd.DataFrame(rows, columns=["model", "data", "variant", "seed", "key", "quantity", "unit", "value",
                                       "median", "robust_z"])


def overview_table(g: Group, outliers: pd.DataFrame) -> pd.DataFrame:
    """Per variant: optimizer, runs, statuses, SciPy success count, mean validation EPA
    (meV/atom) with its 95 % bootstrap CI, mean force RMSE (meV/Å), mean train seconds
    and the seeds flagged as outliers."""
    rows = []
    for v in g.variants:
        runs = g.of(v)
        epa = shown_values(runs, "valid_epa")
        lo, hi = stats.bootstrap_ci(epa)
        out_seeds = sorted(set(outliers.loc[outliers["variant"] == v, "seed"]))
        rows.append({"model": g.model, "data": g.data, "variant": v, "optimizer": runs["optimizer"].iloc[0],
                     "runs": len(runs), "statuses": _status_counts(runs), "scipy_success": _success_count(runs),
                     "n_epa": int(np.isfinite(epa).sum()),
                     "epa_mean_mev": stats.summarize(epa)["mean"], "epa_ci_lo_mev": lo, "epa_ci_hi_mev": hi,
                     "force_mean_mev": stats.summarize(shown_values(runs, "valid_force"))["mean"],
                     "seconds_mean": stats.summarize(shown_values(runs, "train_seconds"))["mean"],
                     "outlier_seeds": ", ".join(map(str, out_seeds))})
    return pd.DataFrame(rows)


def _by_seed(runs: pd.DataFrame, quantity: str) -> dict[int, float]:
    # One value per seed; a repeated seed (should not happen) keeps its first run.
    vals = shown_values(runs, quantity)
    out: dict[int, float] = {}
    for s, x in zip(runs["seed"], vals):
        out.setdefault(int(s), float(x))
    return out


def baseline_table(g: Group) -> pd.DataFrame:
    """Per variant: ratios of its mean validation EPA, force RMSE and train time to the
    baseline's (the study's "vs BFGS" tables), and Wilcoxon signed-rank tests of its EPA
    and force RMSE against the baseline's over the seeds both have (stats.paired_test:
    statistic W, two-sided p, the smallest p the seeds allow, mean per-seed ratio and
    median difference in meV/atom). Empty when the group has no baseline."""
    rows = []
    if g.baseline is None:
        return pd.DataFrame(rows)
    base = g.of(g.baseline)
    for v in g.variants:
        runs = g.of(v)
        row = {"model": g.model, "data": g.data, "variant": v, "baseline": g.baseline}
        for q, name in (("valid_epa", "epa"), ("valid_force", "force"), ("train_seconds", "time")):
            m, mb = stats.summarize(shown_values(runs, q))["mean"], stats.summarize(shown_values(base, q))["mean"]
            row[f"{name}_ratio"] = m / mb if mb and math.isfinite(mb) else math.nan
        for q, name in (("valid_epa", "epa"), ("valid_force", "force")):
            t = stats.paired_test(_by_seed(runs, q), _by_seed(base, q)) if v != g.baseline else None
            row[f"{name}_n_pairs"] = t["n_pairs"] if t else math.nan
            row[f"{name}_mean_seed_ratio"] = t["mean_ratio"] if t else math.nan
            row[f"{name}_median_diff_mev"] = t["median_diff"] if t else math.nan
            row[f"{name}_wilcoxon_W"] = t["statistic"] if t else math.nan
            row[f"{name}_p"] = t["p_value"] if t else math.nan
            row[f"{name}_min_p"] = t["min_p"] if t else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def eval_points(row: pd.Series, history: dict) -> list[dict]:
    """A run's evaluations (seconds, configs, valid_epa_rmse in eV/atom, ...); a run with
    none (an outside trainer, an empty history) gets its final metrics as one point."""
    evals = list(history.get("evals") or [])
    if not evals and np.isfinite(row["valid_epa_rmse"]):
        evals = [{"seconds": row["train_seconds"], "configs": row["configs_evaluated"],
                  "valid_epa_rmse": row["valid_epa_rmse"], "valid_force_rmse": row["valid_force_rmse"]}]
    return evals


def _run_extent(row: pd.Series, points: list[dict], axis: str) -> float:
    """How far a run went along `axis`: its total from the runs table, else its last
    evaluation."""
    total = row[AXES[axis][0]]
    if np.isfinite(total):
        return float(total)
    xs = [p[axis] for p in points if stats.is_finite_number(p.get(axis))]
    return float(max(xs)) if xs else math.nan


def _nice_up(x: float) -> float:
    """x rounded up to 3 significant digits (a budget that includes x)."""
    if not (math.isfinite(x) and x > 0):
        return x
    e = math.floor(math.log10(x)) - 2
    return math.ceil(x / 10 ** e - 1e-9) * 10 ** e


def default_budgets(g: Group, axis: str) -> list[float]:
    """Budgets along `axis` (train seconds for "seconds", configurations evaluated for
    "configs"), ascending: 10 % and 50 % of the shortest run's extent (the early race,
    which every run ran) and the 0, 50 and 100 % quantiles of the runs' extents, rounded
    up to 3 digits; the shortest run's extent is a budget every run had in full."""
    ext = [_run_extent(r, eval_points(r, g.histories[r["key"]]), axis) for _, r in g.runs.iterrows()]
    ext = np.array([e for e in ext if math.isfinite(e) and e > 0])
    if not ext.size:
        return []
    marks = [0.1 * ext.min(), 0.5 * ext.min(), *np.quantile(ext, [0.0, 0.5, 1.0])]
    return sorted({_nice_up(float(q)) for q in marks})


def equal_budget_table(g: Group, budgets: dict[str, list[float]]) -> pd.DataFrame:
    """Per variant, axis ("seconds": train seconds, "configs": configurations evaluated)
    and budget: the best validation EPA (meV/atom) each run reached within the budget,
    summarised over seeds (median, mean, min, max, n with an evaluation by then) and how
    many runs ended before the budget (they keep their final best)."""
    rows = []
    for axis, marks in budgets.items():
        for b in marks:
            for v in g.variants:
                best, ended = [], 0
                for _, r in g.of(v).iterrows():
                    pts = eval_points(r, g.histories[r["key"]])
                    best.append(1e3 * stats.best_within_budget(pts, b, axis))
                    ended += _run_extent(r, pts, axis) < b
                s = stats.summarize(best)
                rows.append({"model": g.model, "data": g.data, "variant": v, "axis": axis, "budget": b,
                             "runs": len(best), "n_with_eval": s["n"], "median_mev": s["median"],
                             "mean_mev": s["mean"], "min_mev": s["min"], "max_mev": s["max"], "ended_before": ended})
    return pd.DataFrame(rows)


def default_target(g: Group) -> float:
    """The baseline's median final validation EPA (meV/atom); the whole group's when the
    baseline has none; NaN when no run has one."""
    base = stats.summarize(shown_values(g.of(g.baseline), "valid_epa"))["median"] if g.baseline else math.nan
    return base if math.isfinite(base) else stats.summarize(shown_values(g.runs, "valid_epa"))["median"]


def time_to_target_table(g: Group, target_mev: float) -> pd.DataFrame:
    """Per variant: how many seeds' validation EPA reached `target_mev` (meV/atom) at an
    evaluation, and the median (never = inf, stats.median_time_to_target) and fastest
    train seconds and configurations to get there."""
    rows = []
    for v in g.variants:
        secs, confs = [], []
        for _, r in g.of(v).iterrows():
            pts = eval_points(r, g.histories[r["key"]])
            secs.append(stats.time_to_target(pts, target_mev / 1e3, "seconds"))
            confs.append(stats.time_to_target(pts, target_mev / 1e3, "configs"))
        reached = [t for t in secs if t is not None]
        reached_c = [c for c in confs if c is not None]
        rows.append({"model": g.model, "data": g.data, "variant": v, "target_mev": target_mev, "runs": len(secs),
                     "reached": len(reached), "median_seconds": stats.median_time_to_target(secs),
                     "min_seconds": min(reached) if reached else math.nan,
                     "median_configs": stats.median_time_to_target(confs),
                     "min_configs": min(reached_c) if reached_c else math.nan})
    return pd.DataFrame(rows)


def flag_table(g: Group) -> pd.DataFrame:
    """Runs to read with care, one row per (run, flag): results identical across seeds,
    a stop on a line-search failure (status "stopped" or a message naming a line
    search, precision loss or ABNORMAL: not converged), diverged / failed / timed-out
    runs, finished runs without validation metrics or without a history."""
    rows = []

    def add(r, flag, detail):
        rows.append({"model": g.model, "data": g.data, "variant": r["variant"], "seed": int(r["seed"]),
                     "key": r["key"], "status": r["status"], "flag": flag, "detail": detail})

    for v in g.variants:
        runs = g.of(v)
        # Final loss and validation EPA (train EPA for a run without validation).
        epa = runs["valid_epa_rmse"].where(np.isfinite(runs["valid_epa_rmse"]), runs["train_epa_rmse"])
        for grp in stats.identical_groups(list(zip(runs["final_loss"], epa))):
            seeds = ", ".join(str(int(runs["seed"].iloc[i])) for i in grp)
            r0 = runs.iloc[grp[0]]
            for i in grp:
                add(runs.iloc[i], "identical across seeds",
                    f"seeds {seeds}: final loss {r0['final_loss']:.12g}, EPA {1e3 * epa.iloc[grp[0]]:.6g} "
                    "meV/atom (the seed did not change the run)")
    for _, r in g.runs.iterrows():
        msg = r["message"] if isinstance(r["message"], str) else ""
        if stopped_without_converging(r["status"], msg):
            add(r, "not converged: line-search failure" if line_search_failure(msg) else "not converged: stopped",
                f"status {r['status']}, SciPy success {fmt(r['success'])}: {msg or 'no message'}")
        if r["status"] in UNSUCCESSFUL:
            add(r, r["status"], msg or "no message")
        elif not np.isfinite(r["valid_epa_rmse"]):
            add(r, "no validation metrics", "finished without a validation EPA (no validation set, or not evaluated)")
        if not g.histories.get(r["key"]) or not g.histories[r["key"]].get("loss"):
            add(r, "no history", "no loss history stored")
    return pd.DataFrame(rows, columns=["model", "data", "variant", "seed", "key", "status", "flag", "detail"])


def test_set_table(g: Group) -> pd.DataFrame:
    """Per variant and held-out test set (the data's ``tests``, metrics split
    "test:LABEL"): runs, mean and std (ddof=1) over seeds of the EPA RMSE (meV/atom) and
    force RMSE (meV/Å) of the best-validation parameters. Empty when there are none."""
    labels = sorted({c[len("best_test:"):-len("_epa_rmse")] for c in g.runs.columns
                     if c.startswith("best_test:") and c.endswith("_epa_rmse")})
    rows = []
    for label in labels:
        for v in g.variants:
            runs = g.of(v)
            epa = 1e3 * runs[f"best_test:{label}_epa_rmse"].to_numpy(dtype=float)
            force = 1e3 * runs.get(f"best_test:{label}_force_rmse", pd.Series(np.nan, index=runs.index)).to_numpy(
                dtype=float)
            e, f = stats.summarize(epa), stats.summarize(force)
            rows.append({"model": g.model, "data": g.data, "test set": label, "variant": v, "n": e["n"],
                         "EPA mean": e["mean"], "EPA std": e["std"], "force mean": f["mean"], "force std": f["std"]})
    return pd.DataFrame(rows, columns=["model", "data", "test set", "variant", "n", "EPA mean", "EPA std",
                                       "force mean", "force std"])
