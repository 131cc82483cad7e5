"""The report's figures, one PNG (bytes) per (model, data) group and view: loss
histories, quality against cost, ensembles over seeds, hyperparameter sweeps and
equal-budget quality. Each function returns None when the group has no data for its
figure; the caller says so in the report.

Matplotlib is used without pyplot (no global backend or figure state), and the PNGs carry
no metadata that changes between runs, so the same store draws the same bytes.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pandas as pd

from optbench.report import stats
from optbench.report.groups import (
    AXES,
    QUANTITIES,
    SWEEP_SETTINGS,
    Group,
    shown_values,
    stopped_without_converging,
)
from optbench.report.tables import eval_points


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
    with np.errstate(all="ignore"), warnings.catch_warnings():
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
        x, y = runs["train_seconds"].to_numpy(float), shown_values(runs, "valid_epa")
        stopped = np.array([stopped_without_converging(s, m) for s, m in zip(runs["status"], runs["message"])],
                           dtype=bool)
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
    data = [(v, shown_values(g.of(v), "valid_epa"), g.of(v)["seed"].to_numpy()) for v in g.variants]
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
    runs["epa_mev"] = shown_values(runs, "valid_epa")
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
              if stats.is_finite_number(p.get(axis)) and stats.is_finite_number(p.get("valid_epa_rmse"))
              and p[axis] > 0]
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
