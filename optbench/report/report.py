"""A sweep's report from its results store: report.md and a self-contained report.html
(figures embedded as PNG data URIs, inline CSS, no external URL) plus the PNGs.

    from optbench.report.report import write_report
    out = write_report("results/sweep.sqlite", baseline="bfgs")
    out["html"], out["tables"]["vs_baseline"]

Per (model, data) group it gives what the study gave (mean / median / std / min / max over
seeds, outliers, ratios to the BFGS baseline, loss histories, quality vs train time) and
what it lacked: bootstrap confidence intervals, paired tests over shared seeds, equal-budget
and time-to-target views, and flags for results identical across seeds, runs that stopped
on a line-search failure (never counted as converged) and runs that failed.

Units: the store holds eV/atom, eV/A and seconds; tables and figures show meV/atom and
meV/A. The report never fails on a partial store: what is missing is said in it.
"""

from __future__ import annotations

import base64
import hashlib
import datetime as _dt
import html
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optbench.report import stats
from optbench.experiments.store import FINISHED, Store

# (column in the runs frame, scale to the shown unit, unit, label) per summarised quantity.
QUANTITIES = {
    "valid_epa": ("valid_epa_rmse", 1e3, "meV/atom", "validation EPA RMSE"),
    "valid_force": ("valid_force_rmse", 1e3, "meV/Å", "validation force RMSE"),
    "train_epa": ("train_epa_rmse", 1e3, "meV/atom", "train EPA RMSE"),
    "train_seconds": ("train_seconds", 1.0, "s", "train time"),
    "final_loss": ("final_loss", 1.0, "", "final loss"),
    "steps": ("steps", 1.0, "", "steps"),
    "configs": ("configs_evaluated", 1.0, "", "configurations evaluated"),
    "nit": ("nit", 1.0, "", "SciPy nit"),
}
METRIC_COLUMNS = ("valid_epa_rmse", "valid_force_rmse", "valid_energy_rmse", "valid_force_component_rmse",
                  "train_epa_rmse", "train_force_rmse", "best_valid_epa_rmse", "best_valid_force_rmse")
SWEEP_SETTINGS = ("lr", "clip", "batch_size", "init_interval", "perturb_sigma")
# An optimizer that gave up in its line search has not converged, whatever it says.
LINE_SEARCH = re.compile(r"line[ _-]?search|precision loss|ABNORMAL", re.IGNORECASE)
FAILED_STATUSES = ("diverged", "failed", "timed_out")
DEFAULT_BASELINES = ("bfgs", "native")  # SciPy BFGS, then MLIP's own (BFGS), as in the study
AXES = {"seconds": ("train_seconds", "train seconds", "s"), "configs": ("configs_evaluated", "configurations", "")}
OUTLIER_QUANTITIES = ("valid_epa", "valid_force")


# ---------------------------------------------------------------------- loading

@dataclass
class Group:
    """One (model, data) group: its runs (finished ones, one row each), their
    histories by key (empty dict when none), the variants in report order (baseline
    first) and the baseline variant (None when the group has no run at all)."""

    model: str
    data: str
    runs: pd.DataFrame
    histories: dict[str, dict]
    variants: list[str]
    baseline: str | None
    baseline_note: str
    colours: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.model} on {self.data}"

    @property
    def slug(self) -> str:
        # The hash keeps labels that reduce to one slug ("mtp 8", "mtp-8") in separate files.
        label = f"{self.model}\0{self.data}"
        return f"{_slug(f'{self.model}_{self.data}')}-{hashlib.sha1(label.encode()).hexdigest()[:6]}"

    def of(self, variant: str) -> pd.DataFrame:
        """The runs of `variant`, sorted by seed."""
        return self.runs[self.runs["variant"] == variant].sort_values("seed")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def _load_frame(store: Store, experiment: str | None, keys=None) -> pd.DataFrame:
    """Finished runs (only `keys` when given) with every metric column present (NaN when
    the store has none)."""
    runs = store.runs_frame(experiment)
    if keys is not None:
        runs = runs[runs["key"].isin(set(keys))].reset_index(drop=True)
    for col in METRIC_COLUMNS:
        if col not in runs.columns:
            runs[col] = np.nan
    for col in ("nit", "nfev", "steps", "configs_evaluated", "train_seconds", "wall_seconds", "final_loss"):
        runs[col] = pd.to_numeric(runs[col], errors="coerce").astype(float)
    return runs


def _histories(store: Store, keys) -> dict[str, dict]:
    out = {}
    for key in keys:
        try:
            out[key] = store.history(key)
        except KeyError:
            out[key] = {}
    return out


def choose_baseline(runs: pd.DataFrame, requested: str | None) -> tuple[str | None, str]:
    """The baseline variant of one group's runs and a sentence saying how it was chosen.
    `requested` names a variant or an optimizer; by default the first variant of SciPy
    BFGS, else of MLIP's native trainer, else the first variant."""
    variants = list(dict.fromkeys(runs["variant"]))
    if not variants:
        return None, "no runs"
    names = [requested] if requested else list(DEFAULT_BASELINES)
    for name in names:
        if name in variants:
            return name, f"baseline: variant {name!r}" + (" (requested)" if requested else "")
        of_opt = list(dict.fromkeys(runs.loc[runs["optimizer"] == name, "variant"]))
        if of_opt:
            # Several variants of the optimizer: take the one with most runs (ties: first).
            counts = runs[runs["variant"].isin(of_opt)]["variant"].value_counts()
            pick = max(of_opt, key=lambda v: counts[v])
            extra = f"; other {name} variants: {', '.join(v for v in of_opt if v != pick)}" if len(of_opt) > 1 else ""
            return pick, f"baseline: {pick!r}, a variant of optimizer {name!r}{extra}"
    first = variants[0]
    if requested:
        return first, f"requested baseline {requested!r} has no runs in this group; using the first variant {first!r}"
    return first, f"no BFGS run in this group; baseline: the first variant {first!r}"


def _groups(runs: pd.DataFrame, histories: dict, requested: str | None) -> list[Group]:
    from matplotlib import colormaps

    groups = []
    for (model, data), sub in runs.groupby(["model", "data"], sort=False):
        baseline, note = choose_baseline(sub, requested)
        variants = list(dict.fromkeys(sub["variant"]))
        variants.sort(key=lambda v: v != baseline)  # stable: baseline first, then first appearance
        cmap = colormaps["tab10" if len(variants) <= 10 else "tab20"]
        colours = {v: cmap(i % cmap.N) for i, v in enumerate(variants)}
        groups.append(Group(model, data, sub, {k: histories[k] for k in sub["key"]}, variants, baseline, note,
                            colours))
    return groups


# ---------------------------------------------------------------------- tables

def _values(runs: pd.DataFrame, quantity: str) -> np.ndarray:
    col, scale, _, _ = QUANTITIES[quantity]
    return runs[col].to_numpy(dtype=float) * scale


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
                         **stats.summarize(_values(g.of(v), q))})
    return pd.DataFrame(rows)


def outlier_table(g: Group) -> pd.DataFrame:
    """Runs whose validation EPA or force RMSE has |robust z| > 3.5 within its variant."""
    rows = []
    for v in g.variants:
        runs = g.of(v)
        for q in OUTLIER_QUANTITIES:
            vals = _values(runs, q)
            z = stats.robust_z(vals)
            for i in np.nonzero(stats.outliers(vals))[0]:
                rows.append({"model": g.model, "data": g.data, "variant": v, "seed": int(runs["seed"].iloc[i]),
                             "key": runs["key"].iloc[i], "quantity": QUANTITIES[q][3], "unit": QUANTITIES[q][2],
                             "value": vals[i], "median": float(np.nanmedian(vals)), "robust_z": float(z[i])})
    return pd.DataFrame(rows, columns=["model", "data", "variant", "seed", "key", "quantity", "unit", "value",
                                       "median", "robust_z"])


def overview_table(g: Group, outliers: pd.DataFrame) -> pd.DataFrame:
    """Per variant: optimizer, runs, statuses, SciPy success count, mean validation EPA
    (meV/atom) with its 95 % bootstrap CI, mean force RMSE (meV/A), mean train seconds
    and the seeds flagged as outliers."""
    rows = []
    for v in g.variants:
        runs = g.of(v)
        epa = _values(runs, "valid_epa")
        lo, hi = stats.bootstrap_ci(epa)
        out_seeds = sorted(set(outliers.loc[outliers["variant"] == v, "seed"]))
        rows.append({"model": g.model, "data": g.data, "variant": v, "optimizer": runs["optimizer"].iloc[0],
                     "runs": len(runs), "statuses": _status_counts(runs), "scipy_success": _success_count(runs),
                     "n_epa": int(np.isfinite(epa).sum()),
                     "epa_mean_mev": stats.summarize(epa)["mean"], "epa_ci_lo_mev": lo, "epa_ci_hi_mev": hi,
                     "force_mean_mev": stats.summarize(_values(runs, "valid_force"))["mean"],
                     "seconds_mean": stats.summarize(_values(runs, "train_seconds"))["mean"],
                     "outlier_seeds": ", ".join(map(str, out_seeds))})
    return pd.DataFrame(rows)


def _by_seed(runs: pd.DataFrame, quantity: str) -> dict[int, float]:
    # One value per seed; a repeated seed (should not happen) keeps its first run.
    vals = _values(runs, quantity)
    out: dict[int, float] = {}
    for s, x in zip(runs["seed"], vals):
        out.setdefault(int(s), float(x))
    return out


def baseline_table(g: Group) -> pd.DataFrame:
    """Per variant: ratios of its mean validation EPA, force RMSE and train time to the
    baseline's (the study's "vs BFGS" tables), and Wilcoxon signed-rank tests of its EPA
    and force RMSE against the baseline's over the seeds both have (stats.paired_test)."""
    rows = []
    if g.baseline is None:
        return pd.DataFrame(rows)
    base = g.of(g.baseline)
    for v in g.variants:
        runs = g.of(v)
        row = {"model": g.model, "data": g.data, "variant": v, "baseline": g.baseline}
        for q, name in (("valid_epa", "epa"), ("valid_force", "force"), ("train_seconds", "time")):
            m, mb = stats.summarize(_values(runs, q))["mean"], stats.summarize(_values(base, q))["mean"]
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
    """Budgets along `axis`: 10 % and 50 % of the shortest run's extent (the early race,
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
    for axis, values in budgets.items():
        for b in values:
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
    base = stats.summarize(_values(g.of(g.baseline), "valid_epa"))["median"] if g.baseline else math.nan
    return base if math.isfinite(base) else stats.summarize(_values(g.runs, "valid_epa"))["median"]


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
        if r["status"] == "stopped" or LINE_SEARCH.search(msg):
            add(r, "not converged: line-search failure" if LINE_SEARCH.search(msg) else "not converged: stopped",
                f"status {r['status']}, SciPy success {_fmt(r['success'])}: {msg or 'no message'}")
        if r["status"] in FAILED_STATUSES:
            add(r, r["status"], msg or "no message")
        elif not np.isfinite(r["valid_epa_rmse"]):
            add(r, "no validation metrics", "finished without a validation EPA (no validation set, or not evaluated)")
        if not g.histories.get(r["key"]) or not g.histories[r["key"]].get("loss"):
            add(r, "no history", "no loss history stored")
    return pd.DataFrame(rows, columns=["model", "data", "variant", "seed", "key", "status", "flag", "detail"])


# ---------------------------------------------------------------------- figures

def _figure(width: float = 7.5, height: float = 4.2, ncols: int = 1):
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _png(fig) -> bytes:
    buf = io.BytesIO()
    # No "Software" text chunk: it carries a URL, and the report holds none.
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()


def _log_if_positive(ax, which: str, values) -> None:
    """Log scale on axis `which` ("x"/"y") when all finite values are positive and span
    more than a factor 20 (a linear axis reads better otherwise)."""
    a = stats.finite(values)
    if a.size and a.min() > 0 and a.max() / a.min() > 20:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")


def _curve_on_grid(x, y, grid) -> np.ndarray:
    """y(x) interpolated (in log x) at `grid`, NaN outside the run's own x range: a
    run is not extended past its end."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    out = np.full(grid.shape, np.nan)
    if ok.sum() < 1:
        return out
    x, y = x[ok], y[ok]
    inside = (grid >= x[0]) & (grid <= x[-1])
    out[inside] = np.exp(np.interp(np.log(grid[inside]), np.log(x), np.log(y)))
    return out


def _band(ax, grid, curves: list[np.ndarray], colour, label: str) -> bool:
    """Median over runs with a min-max band, from where every run has started to where
    fewer than half the runs go on (a median over the one or two runs that started
    first, or ran longest, would jump as runs come and go); False when there is
    nothing to draw."""
    if not curves:
        return False
    m = np.vstack(curves)
    covered = np.isfinite(m)
    started = np.maximum.accumulate(covered, axis=1).all(axis=0)
    have = started & (covered.sum(axis=0) >= math.ceil(len(curves) / 2))
    if not have.any():
        return False
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are masked below
            med, lo, hi = np.nanmedian(m, 0), np.nanmin(m, 0), np.nanmax(m, 0)
    ax.plot(grid[have], med[have], color=colour, lw=1.6, label=f"{label} (n={len(curves)})")
    ax.fill_between(grid[have], lo[have], hi[have], color=colour, alpha=0.18, lw=0)
    return True


def _log_grid(extents: list[tuple[float, float]], n: int = 200) -> np.ndarray:
    lo = min(a for a, _ in extents)
    hi = max(b for _, b in extents)
    return np.geomspace(lo, hi, n) if hi > lo else np.array([lo])


def _legend_once(*axes) -> None:
    """A legend on the first of `axes` that has labelled lines (both panels share one)."""
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
            return


def fig_loss(g: Group, smooth: int | None) -> bytes | None:
    """Smoothed training loss per variant (median over seeds, min-max band), log-log,
    against configurations evaluated and against train seconds. None when no run has a
    loss history."""
    fig, (ax_c, ax_s) = _figure(11, 4.2, ncols=2)
    smoothed = {}
    for key, h in g.histories.items():
        if h and h.get("loss"):
            window = smooth if smooth is not None else max(1, len(h["loss"]) // 50)
            smoothed[key] = stats.moving_average(h["loss"], window)
    drawn = False
    for ax, axis, xlabel in ((ax_c, "configs", "configurations evaluated"), (ax_s, "seconds", "train seconds")):
        series = {}
        for v in g.variants:
            for key in g.of(v)["key"]:
                if key in smoothed:
                    series.setdefault(v, []).append((np.asarray(g.histories[key][axis], float), smoothed[key]))
        ext = [(x[x > 0].min(), x.max()) for runs in series.values() for x, _ in runs if (x > 0).any()]
        if not ext:
            continue
        grid = _log_grid(ext)
        for v, runs in series.items():
            drawn |= _band(ax, grid, [_curve_on_grid(x, y, grid) for x, y in runs], g.colours[v], v)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training loss (smoothed)")
        ax.grid(True, which="major", alpha=0.3)
    if not drawn:
        return None
    _legend_once(ax_c, ax_s)
    fig.suptitle(f"{g.title}: loss histories (median over seeds, min-max band)", fontsize=10)
    return _png(fig)


def fig_quality_cost(g: Group) -> bytes | None:
    """Validation EPA (meV/atom) against train seconds, one marker per run, colour per
    variant; an x marks a run that stopped without converging (line search). None
    when no run has both."""
    fig, (ax,) = _figure()
    xs, ys = [], []
    for v in g.variants:
        runs = g.of(v)
        x, y = runs["train_seconds"].to_numpy(float), _values(runs, "valid_epa")
        stopped = np.array([s == "stopped" or bool(LINE_SEARCH.search(m if isinstance(m, str) else ""))
                            for s, m in zip(runs["status"], runs["message"])], dtype=bool)
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any():
            continue
        ax.scatter(x[ok & ~stopped], y[ok & ~stopped], color=g.colours[v], s=28, label=v, alpha=0.85)
        if (ok & stopped).any():
            ax.scatter(x[ok & stopped], y[ok & stopped], color=g.colours[v], marker="x", s=40,
                       label=f"{v} (stopped)")
        xs += list(x[ok])
        ys += list(y[ok])
    if not xs:
        return None
    _log_if_positive(ax, "x", xs)
    _log_if_positive(ax, "y", ys)
    ax.set_xlabel("train seconds")
    ax.set_ylabel("validation EPA RMSE (meV/atom)")
    ax.set_title(f"{g.title}: quality vs cost (one marker per run)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def fig_box(g: Group, outliers: pd.DataFrame) -> bytes | None:
    """Box plot per variant of the seeds' validation EPA (meV/atom), every run drawn as
    a dot, robust-z outliers circled in red. None when no run has a validation EPA."""
    data = [(v, _values(g.of(v), "valid_epa"), g.of(v)["seed"].to_numpy()) for v in g.variants]
    data = [(v, y[np.isfinite(y)], s[np.isfinite(y)]) for v, y, s in data if np.isfinite(y).any()]
    if not data:
        return None
    fig, (ax,) = _figure(max(5.0, 1.1 * len(data) + 2), 4.5)
    ax.boxplot([y for _, y, _ in data], showfliers=False, widths=0.5)
    flagged = outliers[outliers["quantity"] == QUANTITIES["valid_epa"][3]]
    rng = np.random.default_rng(0)  # fixed jitter: the same report draws the same figure
    for i, (v, y, seeds) in enumerate(data, start=1):
        jx = i + rng.uniform(-0.12, 0.12, y.size)
        ax.scatter(jx, y, color=g.colours[v], s=18, zorder=3)
        bad = np.isin(seeds, flagged.loc[flagged["variant"] == v, "seed"].to_numpy())
        ax.scatter(jx[bad], y[bad], facecolors="none", edgecolors="red", s=110, lw=1.5, zorder=4,
                   label="robust-z outlier" if bad.any() else None)
    ax.set_xticks(range(1, len(data) + 1), [_wrap(v) for v, _, _ in data], fontsize=7)
    _log_if_positive(ax, "y", np.concatenate([y for _, y, _ in data]))
    ax.set_ylabel("validation EPA RMSE (meV/atom)")
    ax.set_title(f"{g.title}: ensembles over seeds", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    if len(flagged):
        ax.legend(fontsize=7)
    return _png(fig)


def _wrap(label: str, width: int = 18) -> str:
    words, lines, cur = label.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    return "\n".join(lines + [cur])


def sweep_settings(runs: pd.DataFrame) -> list[str]:
    """The settings of SWEEP_SETTINGS that take 2 or more values among `runs`."""
    return [s for s in SWEEP_SETTINGS if runs[s].dropna().nunique() > 1]


def fig_sweep(g: Group, optimizer: str, setting: str) -> bytes | None:
    """Validation EPA (meV/atom, median over seeds with min-max bars, every run a faint dot) against
    `setting` for the runs of `optimizer`, log x; one line per combination of the
    other settings that vary (e.g. clip in an lr x clip grid). None without data."""
    runs = g.runs[(g.runs["optimizer"] == optimizer) & g.runs[setting].notna()].copy()
    runs["epa_mev"] = _values(runs, "valid_epa")
    runs = runs[np.isfinite(runs["epa_mev"])]
    if runs[setting].nunique() < 2:
        return None
    others = [s for s in sweep_settings(runs) if s != setting] + (["hyper"] if runs["hyper"].nunique() > 1 else [])
    fig, (ax,) = _figure()
    from matplotlib import colormaps

    combos = list(runs.groupby(others, dropna=False, sort=True)) if others else [((), runs)]
    cmap = colormaps["viridis"]
    for i, (combo, sub) in enumerate(combos):
        # One line crosses several variants, so it takes no variant's colour.
        colour = cmap(0.85 * i / max(1, len(combos) - 1)) if len(combos) > 1 else "0.2"
        combo = combo if isinstance(combo, tuple) else (combo,)
        label = ", ".join(f"{k}={_short(v)}" for k, v in zip(others, combo)) or optimizer
        agg = sub.groupby(setting)["epa_mev"].agg(["median", "min", "max"]).reset_index()
        xv, med = agg[setting].to_numpy(float), agg["median"].to_numpy(float)
        bars = np.vstack([med - agg["min"].to_numpy(float), agg["max"].to_numpy(float) - med])
        ax.errorbar(xv, med, yerr=bars, color=colour, marker="o", capsize=3, lw=1.3, label=label)
        ax.scatter(sub[setting].to_numpy(float), sub["epa_mev"], color=colour, s=10, alpha=0.35)
    if (runs[setting].to_numpy(float) > 0).all():
        ax.set_xscale("log")
    _log_if_positive(ax, "y", runs["epa_mev"])
    ax.set_xlabel(setting)
    ax.set_ylabel("validation EPA RMSE (meV/atom)")
    ax.set_title(f"{g.title}: {optimizer}, EPA vs {setting} (median over seeds, bars min–max)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def fig_equal_budget(g: Group) -> bytes | None:
    """Best validation EPA (meV/atom) reached within a budget of train seconds and of
    configurations, per variant: median over seeds, min-max band; a run with no
    evaluation yet counts as no model (infinite error). None without evaluations."""
    fig, axes = _figure(11, 4.2, ncols=2)
    drawn = False
    pts = {r["key"]: eval_points(r, g.histories[r["key"]]) for _, r in g.runs.iterrows()}
    for ax, axis in zip(axes, ("seconds", "configs")):
        xs = [p[axis] for ps in pts.values() for p in ps
              if stats.is_finite_number(p.get(axis)) and stats.is_finite_number(p.get("valid_epa_rmse")) and p[axis] > 0]
        if not xs:
            continue
        grid = _log_grid([(min(xs), max(xs))], 60)
        for v in g.variants:
            curves = []
            for key in g.of(v)["key"]:
                if not pts[key]:
                    continue
                c = np.array([1e3 * stats.best_within_budget(pts[key], b, axis) for b in grid])
                curves.append(np.where(np.isnan(c), np.inf, c))
            if curves:
                with np.errstate(invalid="ignore"):
                    med = np.median(np.vstack(curves), axis=0)
                    lo, hi = np.min(np.vstack(curves), 0), np.max(np.vstack(curves), 0)
                ok = np.isfinite(med)
                if ok.any():
                    ax.plot(grid[ok], med[ok], color=g.colours[v], lw=1.6, label=f"{v} (n={len(curves)})")
                    band = np.isfinite(lo) & np.isfinite(hi)
                    ax.fill_between(grid[band], lo[band], hi[band], color=g.colours[v], alpha=0.15, lw=0)
                    drawn = True
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"budget: {AXES[axis][1]}")
        ax.set_ylabel("best validation EPA RMSE within budget (meV/atom)")
        ax.grid(True, alpha=0.3)
    if not drawn:
        return None
    _legend_once(*axes)
    fig.suptitle(f"{g.title}: equal-budget quality (median over seeds, min-max band)", fontsize=10)
    return _png(fig)


# ---------------------------------------------------------------------- rendering

def _fmt(v, digits: int = 4) -> str:
    """A table cell: numbers to `digits` significant digits, NaN/None as "n/a", inf as
    "never" (a target not reached)."""
    if v is None or v is pd.NA:
        return "n/a"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "never" if v > 0 else "-inf"
        return str(int(v)) if v == int(v) and abs(v) < 1e9 else f"{v:.{digits}g}"
    return str(v)


def _display(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """`df`'s `columns` (name -> shown header), every cell formatted as text."""
    out = pd.DataFrame({head: [_fmt(x) for x in df[col]] for col, head in columns.items() if col in df})
    return out


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(none)_\n"
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(esc(x) for x in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


_NUMBER = re.compile(r"^(-?[0-9.]+(e[-+]?[0-9]+)?|n/a|never|-inf)$")


def _html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p class='none'>(none)</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    # Numbers right-aligned (digits line up), text left-aligned.
    cell = lambda x: f"<td{' class=num' if _NUMBER.match(str(x)) else ''}>{html.escape(str(x))}</td>"  # noqa: E731
    body = "".join("<tr>" + "".join(cell(x) for x in row) + "</tr>" for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _Doc:
    """The report as a list of blocks, rendered to Markdown and to HTML alike."""

    def __init__(self):
        self.blocks: list[tuple[str, Any]] = []

    def heading(self, level: int, text: str):
        self.blocks.append(("h", (level, text)))

    def para(self, text: str):
        self.blocks.append(("p", text))

    def bullets(self, items: list[str]):
        if items:
            self.blocks.append(("ul", items))

    def table(self, df: pd.DataFrame):
        self.blocks.append(("table", df))

    def figure(self, rel_path: str, png: bytes, caption: str):
        self.blocks.append(("fig", (rel_path, png, caption)))

    def markdown(self) -> str:
        out = []
        for kind, b in self.blocks:
            if kind == "h":
                out.append("#" * b[0] + " " + b[1] + "\n")
            elif kind == "p":
                out.append(b + "\n")
            elif kind == "ul":
                out.append("".join(f"- {x}\n" for x in b))
            elif kind == "table":
                out.append(_md_table(b))
            else:
                out.append(f"![{b[2]}]({b[0]})\n\n_{b[2]}_\n")
        return "\n".join(out)

    def html(self, title: str) -> str:
        parts = []
        for kind, b in self.blocks:
            if kind == "h":
                parts.append(f"<h{b[0]}>{html.escape(b[1])}</h{b[0]}>")
            elif kind == "p":
                parts.append(f"<p>{html.escape(b)}</p>")
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in b) + "</ul>")
            elif kind == "table":
                parts.append(f"<div class='scroll'>{_html_table(b)}</div>")
            else:
                data = base64.b64encode(b[1]).decode("ascii")
                parts.append(f"<figure><img src=\"data:image/png;base64,{data}\" alt=\"{html.escape(b[2])}\">"
                             f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
        return _HTML.format(title=html.escape(title), css=_CSS, script=_SCRIPT, body="\n".join(parts))


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ccc; margin-top: 2em; } h3 { margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
th { background: #f0f0f0; } td.num { text-align: right; white-space: nowrap; } td:first-child { white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafafa; }
.scroll { overflow-x: auto; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
.warn { background: #fdd; border: 2px solid #c00; padding: 0.6em; font-weight: bold; margin-bottom: 1em; }
.none { color: #888; font-style: italic; }
"""

# On load, mark each figure rendered (data-ok="1") or not, and show a banner when any
# failed: scripts/check_report_html.py reads the marks, a reader sees the banner.
_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.querySelectorAll("img"), bad = 0;
  for (var i = 0; i < imgs.length; i++) {
    var ok = imgs[i].complete && imgs[i].naturalWidth > 0;
    imgs[i].setAttribute("data-ok", ok ? "1" : "0");
    if (!ok) bad++;
  }
  document.body.setAttribute("data-figures", (imgs.length - bad) + "/" + imgs.length);
  if (bad) {
    var d = document.createElement("div");
    d.className = "warn";
    d.id = "figure-warning";
    d.textContent = bad + " of " + imgs.length + " figures failed to render in this browser.";
    document.body.insertBefore(d, document.body.firstChild);
  }
});
"""

_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
<script>{script}</script>
</head><body>
{body}
</body></html>
"""


# ---------------------------------------------------------------------- the report

_OVERVIEW_COLS = {"variant": "variant", "optimizer": "optimizer", "runs": "runs", "statuses": "statuses",
                  "scipy_success": "SciPy success", "n_epa": "n with EPA", "epa_mean_mev": "EPA mean (meV/atom)",
                  "epa_ci_lo_mev": "95% CI low", "epa_ci_hi_mev": "95% CI high",
                  "force_mean_mev": "force mean (meV/Å)", "seconds_mean": "train s mean",
                  "outlier_seeds": "outlier seeds"}
_SUMMARY_COLS = {"quantity": "quantity", "unit": "unit", "variant": "variant", "n": "n", "mean": "mean",
                 "median": "median", "std": "std", "min": "min", "max": "max"}
_BASELINE_COLS = {"variant": "variant", "epa_ratio": "EPA mean / base", "force_ratio": "force mean / base",
                  "time_ratio": "time mean / base", "epa_n_pairs": "shared seeds",
                  "epa_mean_seed_ratio": "EPA per-seed ratio (mean)",
                  "epa_median_diff_mev": "EPA median diff (meV/atom)",
                  "epa_wilcoxon_W": "EPA W", "epa_p": "EPA p", "force_p": "force p", "epa_min_p": "smallest p possible"}
_TTT_COLS = {"variant": "variant", "reached": "seeds reached", "runs": "runs",
             "median_seconds": "median s (never if ≤ half)", "min_seconds": "fastest s",
             "median_configs": "median configs", "min_configs": "fewest configs"}
_FLAG_COLS = {"variant": "variant", "seed": "seed", "status": "status", "flag": "flag", "detail": "detail"}
_OUTLIER_COLS = {"variant": "variant", "seed": "seed", "quantity": "quantity", "unit": "unit", "value": "value",
                 "median": "variant median", "robust_z": "robust z"}


def _budget_display(tab: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Rows variant, one column per budget: "median [min-max] (n)" of best EPA meV/atom."""
    sub = tab[tab["axis"] == axis]
    unit = AXES[axis][2]
    out = {"variant": list(dict.fromkeys(sub["variant"]))}
    for b in dict.fromkeys(sub["budget"]):
        cells = []
        for v in out["variant"]:
            r = sub[(sub["variant"] == v) & (sub["budget"] == b)].iloc[0]
            cells.append("no eval" if r["n_with_eval"] == 0 else
                         f"{_fmt(r['median_mev'])} [{_fmt(r['min_mev'])}–{_fmt(r['max_mev'])}] "
                         f"({r['n_with_eval']}/{r['runs']})")
        out[f"≤ {_fmt(b)} {unit}".strip()] = cells
    return pd.DataFrame(out)


def _option_for(value, g: Group):
    """An option given for all groups, or per group as {"model/data": value}."""
    if isinstance(value, dict):
        return value.get(f"{g.model}/{g.data}")
    return value


def _unfinished(store: Store, experiment: str | None) -> list[str]:
    """Lines for the runs that are not finished (running, or interrupted: runner gone)."""
    every = store.runs_frame(experiment, finished_only=False)
    every = every[~every["status"].isin(FINISHED)]
    if every.empty:
        return []
    now = store.statuses(every["key"])
    counts = pd.Series([now.get(k, s) for k, s in zip(every["key"], every["status"])]).value_counts()
    return [f"{n} run(s) {s}, not in this report (no result yet)" for s, n in counts.items()]


def write_report(store, out_dir=None, *, experiment: str | None = None, baseline: str | None = None,
                 options: dict | None = None, keys=None) -> dict:
    """Write report.md, report.html (self-contained) and figures/*.png for the finished
    runs of `store` (a Store or the path of one), of `experiment` when given, only the
    runs `keys` when given (an experiment's runs on the current code: results of older
    code versions stay in the store but are not pooled with them), into
    `out_dir` (default: the store's folder / "report"); PNGs left in out_dir/figures by
    an earlier report and not drawn again are removed.

    baseline: a variant label or an optimizer name (default: options["baseline"], else
    SciPy BFGS, else MLIP's native trainer, else each group's first variant).
    options: target_epa_mev (time-to-target, meV/atom; default the baseline's median
    final validation EPA), budgets_seconds / budgets_configs (equal-budget tables;
    default: see `default_budgets`), smooth (loss moving-average
    window in points; default len/50), baseline. target and budgets may be
    {"model/data": value} dicts.

    Returns {"markdown", "html", "out_dir": Path, "figures": [Path], "tables":
    {name: DataFrame} (overview, summary, outliers, vs_baseline, equal_budget,
    time_to_target, flags; shown units), "problems": [str] (what is missing),
    "baselines" and "targets_mev": {(model, data): ...}}."""
    options = dict(options or {})
    unknown = set(options) - {"target_epa_mev", "budgets_seconds", "budgets_configs", "smooth", "baseline"}
    if unknown:
        raise ValueError(f"report options: unknown {', '.join(sorted(unknown))}")
    own = not isinstance(store, Store)
    if own:
        if not Path(store).is_file():
            raise FileNotFoundError(f"{store}: no results store there")
        store = Store(store)
    try:
        return _write(store, out_dir, experiment, baseline or options.get("baseline"), options, keys)
    finally:
        if own:
            store.close()


def _write(store: Store, out_dir, experiment, baseline, options, keys=None) -> dict:
    out = Path(out_dir) if out_dir is not None else store.path.parent / "report"
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    runs = _load_frame(store, experiment, keys)
    left_out = 0 if keys is None else len(store.runs_frame(experiment)) - len(runs)
    histories = _histories(store, runs["key"])
    groups = _groups(runs, histories, baseline)
    problems = _unfinished(store, experiment)
    if runs["code_version"].nunique() > 1:
        problems.append(f"runs of {runs['code_version'].nunique()} code versions are pooled; report the experiment "
                        "file (optbench report FILE.toml) to see only the current code's runs")
    if left_out:
        problems.append(f"{left_out} finished run(s) of other code versions (or no longer in the experiment file) "
                        "are in the store but not in this report; `optbench run` computes the current code's, "
                        "`optbench report STORE.sqlite` shows everything pooled")
    if runs.empty:
        problems.append("the store has no finished run" + (f" of experiment {experiment!r}" if experiment else "")
                        + (" on the current code" if keys is not None else ""))
    elif experiment is None and runs["experiment"].nunique() > 1:
        names = sorted(set(runs["experiment"]))
        problems.append(f"runs of {len(names)} experiments ({', '.join(names)}) are pooled by (model, data, "
                        "variant); pass experiment= to report one")
    doc = _Doc()
    title = f"optbench report: {experiment or 'all experiments'}"
    doc.heading(1, title)
    doc.para(f"Store {store.path.name}; {len(runs)} finished run(s) in {len(groups)} (model, data) group(s); "
             f"generated {_dt.datetime.now().isoformat(timespec='seconds')}; code version(s): "
             f"{', '.join(sorted(set(runs['code_version']))) or 'n/a'}.")
    doc.para("Units: EPA RMSE in meV/atom, force RMSE in meV/Å (norm of the per-atom force error), times in "
             "training seconds (evaluations excluded). Statistics are over seeds; std uses ddof=1; the 95% CI "
             "is a percentile bootstrap of the mean (2000 resamples). With 3-5 seeds the exact Wilcoxon "
             "two-sided p-value cannot go below 0.25 / 0.125 / 0.0625: the column 'smallest p possible' says "
             "what the seeds allow.")
    problems_at = len(doc.blocks)  # the list of problems goes here once all are known
    tables: dict[str, list[pd.DataFrame]] = {k: [] for k in ("overview", "summary", "outliers", "vs_baseline",
                                                             "equal_budget", "time_to_target", "flags")}
    figures: list[Path] = []
    baselines, targets = {}, {}
    for g in groups:
        _group_section(doc, g, options, tables, figures, fig_dir, problems, baselines, targets)
    doc.blocks.insert(problems_at, ("h", (2, "What is missing or suspect")))
    doc.blocks.insert(problems_at + 1, ("ul", problems) if problems else ("p", "Nothing: every run has results."))
    for old in set(fig_dir.glob("*.png")) - set(figures):
        old.unlink()  # a figure of an earlier report that this one did not draw again
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(doc.markdown(), encoding="utf-8")
    html_path.write_text(doc.html(title), encoding="utf-8")
    frames = {k: (pd.concat(v, ignore_index=True) if any(len(x) for x in v) else pd.DataFrame())
              for k, v in tables.items()}
    return {"markdown": md_path, "html": html_path, "out_dir": out, "figures": figures, "tables": frames,
            "problems": problems, "baselines": baselines, "targets_mev": targets}


def _group_section(doc: _Doc, g: Group, options: dict, tables: dict, figures: list, fig_dir: Path,
                   problems: list, baselines: dict, targets: dict) -> None:
    """All tables and figures of one (model, data) group, into `doc` and the collectors."""
    doc.heading(2, g.title)
    doc.para(f"{len(g.runs)} run(s), {len(g.variants)} variant(s); {g.baseline_note}.")
    baselines[(g.model, g.data)] = g.baseline
    _note_missing(g, problems)

    outl = outlier_table(g)
    overview = overview_table(g, outl)
    summary = summary_table(g)
    vs_base = baseline_table(g)
    flags = flag_table(g)
    for flag, n in flags["flag"].value_counts().items():
        problems.append(f"{g.title}: {n} run(s) flagged '{flag}' (see Flags)")
    doc.heading(3, "Overview")
    doc.table(_display(overview, _OVERVIEW_COLS))
    doc.heading(3, "Flags")
    doc.para("Runs to read with care. A run that stopped on a line-search failure did not converge, whatever "
             "its optimizer's success flag; identical results across seeds mean the seed never reached the run.")
    doc.table(_display(flags, _FLAG_COLS))
    doc.heading(3, "Summary over seeds")
    doc.table(_display(summary, _SUMMARY_COLS))
    doc.heading(3, "Outliers (|robust z| > 3.5, median/MAD within the variant)")
    doc.table(_display(outl, _OUTLIER_COLS))
    doc.heading(3, f"Against the baseline ({g.baseline})")
    doc.para("Ratios of means (< 1: better or faster than the baseline); paired Wilcoxon signed-rank tests over "
             "the seeds both have (two-sided).")
    doc.table(_display(vs_base, _BASELINE_COLS))

    budgets = {axis: _option_for(options.get(f"budgets_{axis}"), g) or default_budgets(g, axis)
               for axis in ("seconds", "configs")}
    eq = equal_budget_table(g, budgets)
    doc.heading(3, "Equal budget: best validation EPA (meV/atom) within a budget")
    doc.para("Cells: median over seeds [min–max] (runs with an evaluation within the budget / runs). Compare "
             "variants at the same budget, not by their final numbers after runs of different lengths.")
    for axis in budgets:
        doc.table(_budget_display(eq, axis) if len(eq) else pd.DataFrame())

    target = _option_for(options.get("target_epa_mev"), g)
    target = float(target) if target is not None else default_target(g)
    targets[(g.model, g.data)] = target
    doc.heading(3, f"Time to target: validation EPA ≤ {_fmt(target)} meV/atom")
    if math.isfinite(target):
        ttt = time_to_target_table(g, target)
        how = ("given" if _option_for(options.get("target_epa_mev"), g) is not None
               else "default: the baseline's median final validation EPA")
        doc.para(f"Target {how}. A median is 'never' when half the seeds or more never reached the target.")
        doc.table(_display(ttt, _TTT_COLS))
    else:
        ttt = pd.DataFrame()
        doc.para("No target: no run of this group has a validation EPA.")

    for name, df in (("overview", overview), ("summary", summary), ("outliers", outl), ("vs_baseline", vs_base),
                     ("equal_budget", eq), ("time_to_target", ttt), ("flags", flags)):
        tables[name].append(df)
    _group_figures(doc, g, options, outl, figures, fig_dir, problems)


def _note_missing(g: Group, problems: list) -> None:
    """Lines for what this group lacks: seeds, validation metrics, histories, baseline."""
    for v in g.variants:
        runs = g.of(v)
        if len(runs) < 2:
            problems.append(f"{g.title}, {v}: one run only (no std, CI or outlier test)")
        n_epa = int(np.isfinite(runs["valid_epa_rmse"]).sum())
        if n_epa < len(runs):
            problems.append(f"{g.title}, {v}: {len(runs) - n_epa} of {len(runs)} run(s) without a validation EPA")
        empty = sum(not (g.histories.get(k) or {}).get("loss") for k in runs["key"])
        if empty:
            problems.append(f"{g.title}, {v}: {empty} run(s) without a loss history")
        repeated = runs["seed"].value_counts()
        repeated = sorted(int(s) for s in repeated[repeated > 1].index)
        if repeated:
            problems.append(f"{g.title}, {v}: seed(s) {', '.join(map(str, repeated))} run more than once (other "
                            "code versions or experiments?); statistics pool them, paired tests take the first")
    if "no BFGS" in g.baseline_note or "has no runs" in g.baseline_note:
        problems.append(f"{g.title}: {g.baseline_note}")


def _group_figures(doc: _Doc, g: Group, options: dict, outl: pd.DataFrame, figures: list, fig_dir: Path,
                   problems: list) -> None:
    doc.heading(3, "Figures")
    todo = [("loss", "loss histories", fig_loss, (g, options.get("smooth"))),
            ("quality_cost", "validation EPA vs train time", fig_quality_cost, (g,)),
            ("ensembles", "validation EPA per variant over seeds", fig_box, (g, outl)),
            ("equal_budget", "best validation EPA within a budget", fig_equal_budget, (g,))]
    for opt in dict.fromkeys(g.runs["optimizer"]):
        for s in sweep_settings(g.runs[g.runs["optimizer"] == opt]):
            todo.append((f"sweep_{opt}_{s}", f"{opt}: validation EPA vs {s}", fig_sweep, (g, opt, s)))
    for name, caption, fn, args in todo:
        try:
            png = fn(*args)
        except Exception as err:  # noqa: BLE001 - one bad figure must not cost the report; it is reported
            problems.append(f"{g.title}: figure '{caption}' could not be drawn: {type(err).__name__}: {err}")
            doc.para(f"(Figure '{caption}' could not be drawn: {type(err).__name__}: {err}.)")
            continue
        if png is None:
            doc.para(f"(No figure '{caption}': no data for it.)")
            continue
        path = fig_dir / f"{g.slug}_{_slug(name)}.png"
        path.write_bytes(png)
        figures.append(path)
        doc.figure(os.path.relpath(path, fig_dir.parent), png, f"{g.title}: {caption}")
