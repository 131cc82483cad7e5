"""The report's curvature section ([analysis]): why one optimizer beats another, from the
spectra of each run's loss (optbench/analysis/points.py) as the store keeps them.

Tables: per variant at the end of the runs, the Hessian's condition number over its
positive part, negative eigenvalues, the spread of log eigenvalues, the Gauss-Newton
matrix's and the optimizer's effective matrix's condition numbers, beside the final
validation force error, and the rank correlation of condition number with force error
across runs. Figures: eigenvalue densities per optimizer on one axis, the condition
number against training time, the effective spectrum's spread before and after an
L-BFGS refinement.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from optbench.report.figures import _figure, _png
from optbench.report.groups import Group
from optbench.report.render import fmt
from optbench.report.stats import rank_correlation

__all__ = ["curvature_rows", "curvature_table", "curvature_correlation", "fig_spectra", "fig_condition_vs_time",
           "fig_refinement"]


def _summary(res: dict, which: str) -> dict:
    return ((res.get(which) or {}).get("summary")) or {}


def curvature_rows(frame: pd.DataFrame, g: Group) -> pd.DataFrame:
    """One row per analysed point of the group's runs: key, variant, seed, step, stage,
    cond_H, n_negative, anisotropy_H, cond_GN, cond_eff, anisotropy_eff, preconditioner,
    result (the stored dict)."""
    keys = set(g.runs["key"])
    rows = []
    for key, step, stage, res, variant, seed in zip(frame["key"], frame["step"], frame["stage"], frame["result"],
                                                    frame["variant"], frame["seed"]):
        if key not in keys:
            continue
        h, gn, eff = _summary(res, "hessian"), _summary(res, "gauss_newton"), _summary(res, "effective")
        rows.append({"key": key, "variant": variant, "seed": seed, "step": int(step), "stage": stage,
                     "cond_H": h.get("condition_number"), "n_negative": h.get("n_negative"),
                     "anisotropy_H": h.get("anisotropy"), "cond_GN": gn.get("condition_number"),
                     "cond_eff": eff.get("condition_number"), "anisotropy_eff": eff.get("anisotropy"),
                     "preconditioner": (res.get("preconditioner") or {}).get("kind", ""), "result": res})
    cols = ["key", "variant", "seed", "step", "stage", "cond_H", "n_negative", "anisotropy_H", "cond_GN", "cond_eff",
            "anisotropy_eff", "preconditioner", "result"]
    out = pd.DataFrame(rows, columns=cols)
    for c in ("cond_H", "n_negative", "anisotropy_H", "cond_GN", "cond_eff", "anisotropy_eff"):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out


def _ends(rows: pd.DataFrame) -> pd.DataFrame:
    """Each run's last analysed point (the refinement's end when there is one)."""
    order = rows.assign(_r=(rows["stage"] == "refine").astype(int)).sort_values(["key", "_r", "step"])
    return order.groupby("key").tail(1).drop(columns="_r")


def _cell(x) -> str:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if not x.size:
        return "n/a"
    return fmt(float(np.exp(np.log(x).mean()))) if np.all(x > 0) and x.size > 1 else fmt(float(x.mean()))


def curvature_table(rows: pd.DataFrame, g: Group) -> pd.DataFrame:
    """Per variant at the runs' ends (text cells): condition numbers of H (positive
    part), of the Gauss-Newton matrix and of the optimizer's effective matrix (geometric
    means over seeds), negative eigenvalues and log-spread of H (means), the
    preconditioner, and the mean best validation force RMSE (meV/A)."""
    if rows.empty:
        return pd.DataFrame()
    ends = _ends(rows)
    force = g.best_force_rmse()
    out = []
    for v in [v for v in g.variants if v in set(ends["variant"])]:
        sub = ends[ends["variant"] == v]
        out.append({"variant": v, "runs": len(sub), "cond(H)": _cell(sub["cond_H"]),
                    "negative": fmt(float(sub["n_negative"].mean())), "log10 spread(H)": fmt(float(
                        sub["anisotropy_H"].mean())), "cond(GN)": _cell(sub["cond_GN"]),
                    "preconditioner": ", ".join(sorted(set(sub["preconditioner"]) - {""})) or "n/a",
                    "cond(P^-1/2 H P^-1/2)": _cell(sub["cond_eff"]),
                    "valid F (meV/Å)": fmt(float(np.nanmean([force.get(k, np.nan) for k in sub["key"]])) * 1e3)})
    return pd.DataFrame(out)


def curvature_correlation(rows: pd.DataFrame, g: Group) -> pd.DataFrame:
    """Spearman's rho across runs of each end-point curvature measure with the best
    validation force RMSE (n runs, two-sided p; n/a with fewer than 4 runs)."""
    if rows.empty:
        return pd.DataFrame()
    ends = _ends(rows)
    force = g.best_force_rmse()
    f = [force.get(k, np.nan) for k in ends["key"]]
    return pd.DataFrame([{"measure": label, **rank_correlation(ends[col].to_numpy(float), f)}
                         for col, label in (("cond_H", "cond(H)"), ("cond_GN", "cond(GN)"),
                                            ("cond_eff", "cond(effective)"), ("anisotropy_H", "log10 spread(H)"),
                                            ("n_negative", "negative eigenvalues"))])


def _first_seed_ends(rows: pd.DataFrame, g: Group) -> list[tuple[str, dict]]:
    ends = _ends(rows)
    out = []
    for v in [v for v in g.variants if v in set(ends["variant"])]:
        sub = ends[ends["variant"] == v].sort_values("seed")
        out.append((v, sub["result"].iloc[0]))
    return out


def fig_spectra(rows: pd.DataFrame, g: Group) -> bytes | None:
    """Eigenvalue densities of the Hessian at the end of each variant's lowest-seed run,
    on one log axis (positive eigenvalues; dense spectra as histograms, Lanczos ones as
    their SLQ density); negative eigenvalues are counted in the legend."""
    items = _first_seed_ends(rows, g) if not rows.empty else []
    if not items:
        return None
    fig, (ax,) = _figure()
    for v, res in items:
        h = res.get("hessian") or {}
        colour = g.colours.get(v)
        n_neg = (h.get("summary") or {}).get("n_negative", 0)
        if h.get("eigenvalues"):
            eig = np.asarray(h["eigenvalues"], float)
            pos = eig[eig > 0]
            if pos.size:
                ax.hist(np.log10(pos), bins=40, histtype="step", density=True, color=colour,
                        label=f"{v} ({n_neg} negative)")
        elif h.get("density"):
            grid, dens = np.asarray(h["density"]["grid"], float), np.asarray(h["density"]["density"], float)
            keep = grid > 0
            ax.plot(np.log10(grid[keep]), dens[keep] * grid[keep] * np.log(10), color=colour,
                    label=f"{v} (SLQ; {n_neg} negative)")
    ax.set_xlabel("log10 eigenvalue of the Hessian (loss units / parameter unit²)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    return _png(fig)


def fig_condition_vs_time(rows: pd.DataFrame, g: Group) -> bytes | None:
    """Condition number of H (solid) and of the effective matrix (dashed) against training
    seconds, each run's analysed points (steps mapped to seconds by its history)."""
    if rows.empty or rows["cond_H"].notna().sum() == 0:
        return None
    fig, (ax,) = _figure()
    for key, sub in rows.sort_values("step").groupby("key", sort=False):
        v = sub["variant"].iloc[0]
        hist = g.histories.get(key) or {}
        steps, secs = np.asarray(hist.get("step", []), float), np.asarray(hist.get("seconds", []), float)
        t = np.interp(sub["step"], steps, secs) if steps.size else sub["step"].to_numpy(float)
        t = np.maximum(t, 1e-3)
        ax.plot(t, sub["cond_H"], "-o", ms=3, color=g.colours.get(v), label=v)
        if sub["cond_eff"].notna().any():
            ax.plot(t, sub["cond_eff"], "--", color=g.colours.get(v))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("train seconds")
    ax.set_ylabel("condition number (positive part)")
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    ax.legend(seen.values(), seen.keys(), fontsize=7, title="solid H, dashed P^-1/2 H P^-1/2")
    return _png(fig)


def fig_refinement(rows: pd.DataFrame, g: Group) -> bytes | None:
    """Spread (std of log10 of the positive eigenvalues) of the Hessian (solid) and of the
    optimizer's effective matrix (dashed, where the state gives a preconditioner at both
    ends) at the end of the optimizer's stage and at the end of the L-BFGS refinement, per
    run that has one: does the refinement remove residual anisotropy?"""
    if rows.empty or not (rows["stage"] == "refine").any():
        return None
    fig, (ax,) = _figure()
    drawn = False
    for key, sub in rows.groupby("key"):
        before = sub[sub["stage"] != "refine"].sort_values("step")
        after = sub[sub["stage"] == "refine"].sort_values("step")
        if before.empty or after.empty:
            continue
        v = sub["variant"].iloc[0]
        ax.plot([0, 1], [before["anisotropy_H"].iloc[-1], after["anisotropy_H"].iloc[-1]], "-o",
                color=g.colours.get(v), label=f"{v}: H")
        drawn = True
        eff = [before["anisotropy_eff"].iloc[-1], after["anisotropy_eff"].iloc[-1]]
        if np.all(np.isfinite(eff)):
            ax.plot([0, 1], eff, "--s", color=g.colours.get(v), label=f"{v}: P^-1/2 H P^-1/2")
    if not drawn:
        return None
    ax.set_xticks([0, 1], ["end of optimizer", "end of L-BFGS"])
    ax.set_xlim(-0.3, 1.3)
    ax.set_ylabel("std of log10 positive eigenvalues")
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    ax.legend(seen.values(), seen.keys(), fontsize=7)
    return _png(fig)


def curvature_section(doc, g: Group, frame: pd.DataFrame | None, tables: dict, emit) -> None:
    """The section "Curvature" of group `g` into `doc` (render.Document) when the store
    has analysed points of its runs; its tables into `tables`, its figures through
    `emit(todo)` (write._emit_figures' list of (name, caption, function, args))."""
    from optbench.report.render import display

    rows = curvature_rows(frame, g) if frame is not None and len(frame) else pd.DataFrame()
    if rows.empty:
        return
    doc.heading(3, "Curvature at the end of the runs")
    doc.para("Spectra of the Hessian H of the mean training loss (dense: every eigenvalue), of the Gauss-Newton "
             "matrix GN and of the optimizer's effective matrix P^-1/2 H P^-1/2 (P read from its state: "
             "optbench/analysis/preconditioners.py). Condition numbers over the positive part, geometric means over "
             "seeds; the spread is the std of log10 of the positive eigenvalues.")
    table = curvature_table(rows, g)
    doc.table(table)
    corr = curvature_correlation(rows, g)
    doc.para("Rank correlation across runs of each measure with the best validation force RMSE (Spearman; rho > 0: "
             "worse conditioned, worse fit).")
    doc.table(display(corr, {"measure": "measure", "runs": "runs", "rho": "rho", "p": "p"}))
    tables.setdefault("curvature", []).append(table)
    tables.setdefault("curvature_correlation", []).append(corr)
    emit([("curvature_spectra", "Hessian eigenvalue densities per optimizer", fig_spectra, (rows, g)),
          ("curvature_condition", "condition number against training time", fig_condition_vs_time, (rows, g)),
          ("curvature_refinement", "spectrum spread before and after L-BFGS refinement", fig_refinement,
           (rows, g))])
