"""The report's figures of physical properties (report/properties.py holds the tables):
relative errors of a, C11, C12, C44, B, nu per optimizer (the study's Figure 3), property
error against validation force error across runs, phonon bands of each optimizer's
potential over the reference, MD temperature traces and radial distribution functions.
Each returns PNG bytes, or None when the group has no data for it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from optbench.report.figures import _figure, _png
from optbench.report.groups import Group

__all__ = ["FIG3_QUANTITIES", "fig_property_errors", "fig_error_vs_force", "fig_phonons", "fig_md"]

# The study's Figure 3: lattice constant and elastic moduli.
FIG3_QUANTITIES = (("eos", "a"), ("elastic", "C11"), ("elastic", "C12"), ("elastic", "C44"), ("elastic", "B"),
                   ("elastic", "nu"))


def fig_property_errors(vals: pd.DataFrame, g: Group) -> bytes | None:
    """Bars of the mean relative error (%) over seeds of a, C11, C12, C44, B and nu, one
    panel per structure, one bar per variant, the std over seeds as error bars."""
    vals = vals[np.isfinite(vals["error"])]
    keep = vals[[(p, q) in FIG3_QUANTITIES for p, q in zip(vals["property"], vals["quantity"])]]
    if keep.empty:
        return None
    structures = list(dict.fromkeys(keep["structure"]))
    variants = [v for v in g.variants if v in set(keep["variant"])]
    fig, axes = _figure(width=max(6.0, 3.6 * len(structures)), height=3.8, ncols=len(structures))
    width = 0.8 / max(1, len(variants))
    for ax, structure in zip(axes, structures):
        sub = keep[keep["structure"] == structure]
        labels = [q for p, q in FIG3_QUANTITIES if ((sub["property"] == p) & (sub["quantity"] == q)).any()]
        x = np.arange(len(labels))
        for i, v in enumerate(variants):
            means, stds = [], []
            for q in labels:
                e = sub.loc[(sub["variant"] == v) & (sub["quantity"] == q), "error"].to_numpy(float)
                means.append(e.mean() if e.size else np.nan)
                stds.append(e.std(ddof=1) if e.size > 1 else 0.0)
            ax.bar(x + (i - (len(variants) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
                   color=g.colours.get(v), label=v)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xticks(x, labels)
        ax.set_title(structure)
        ax.set_ylabel("relative error (%)")
    axes[0].legend(fontsize=7)
    return _png(fig)


def fig_error_vs_force(vals: pd.DataFrame, g: Group) -> bytes | None:
    """|relative error| (%) of each Figure-3 quantity against the run's validation force
    RMSE (meV/A), one point per run and quantity, coloured by variant."""
    force = g.best_force_rmse()
    vals = vals[np.isfinite(vals["error"])]
    keep = vals[[(p, q) in FIG3_QUANTITIES for p, q in zip(vals["property"], vals["quantity"])]]
    if keep.empty:
        return None
    fig, (ax,) = _figure()
    markers = dict(zip([q for _, q in FIG3_QUANTITIES], "osD^vP"))
    for v in [v for v in g.variants if v in set(keep["variant"])]:
        sub = keep[keep["variant"] == v]
        for q, part in sub.groupby("quantity"):
            f = np.array([force.get(k, np.nan) for k in part["key"]], float) * 1e3
            ax.scatter(f, np.abs(part["error"]), color=g.colours.get(v), marker=markers.get(q, "o"), s=18,
                       label=f"{v} {q}")
    ax.set_xlabel("validation force RMSE (meV/Å)")
    ax.set_ylabel("|relative error| (%)")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.legend(fontsize=6, ncol=2)
    return _png(fig)


def _first_seed(props: pd.DataFrame, name: str, structure: str, g: Group) -> list[tuple[str, dict]]:
    """(variant, data) of each variant's lowest-seed run that has property `name` of
    `structure` with status ok or unstable."""
    seeds = dict(zip(g.runs["key"], g.runs["seed"]))
    variants = dict(zip(g.runs["key"], g.runs["variant"]))
    best: dict[str, tuple[int, dict]] = {}
    for key, res in zip(props["key"], props["result"]):
        if key not in seeds or res["name"] != name or res["structure"] != structure or not res.get("data"):
            continue
        v = variants[key]
        if v not in best or seeds[key] < best[v][0]:
            best[v] = (seeds[key], res["data"])
    return [(v, best[v][1]) for v in g.variants if v in best]


def _reference_data(refs: pd.DataFrame | None, name: str, structure: str) -> tuple[str, dict] | None:
    """(the reference's label, its data) for property `name` of `structure`, or None."""
    if refs is None or refs.empty:
        return None
    for label, res in zip(refs["label"], refs["result"]):
        if res["name"] == name and res["structure"] == structure and res.get("data"):
            return label, res["data"]
    return None


def fig_phonons(props: pd.DataFrame, refs: pd.DataFrame | None, g: Group, structure: str) -> bytes | None:
    """Phonon bands of each variant's lowest-seed potential over the reference's (black)."""
    from optbench.properties.phonons import plot_band_structure

    results = _first_seed(props, "phonons", structure, g)
    if not results:
        return None
    fig, (ax,) = _figure(height=4.6)
    plot_band_structure(results, ax=ax, reference=_reference_data(refs, "phonons", structure))
    ax.set_title(f"{structure}: phonon bands")
    return _png(fig)


def fig_md(props: pd.DataFrame, refs: pd.DataFrame | None, g: Group, structure: str) -> bytes | None:
    """MD temperature traces (NVT then NVE) and radial distribution functions of each
    variant's lowest-seed potential, the reference's in black."""
    from optbench.properties.md import plot_rdf, plot_temperature

    results = _first_seed(props, "md", structure, g)
    if not results:
        return None
    fig, axes = _figure(width=10.0, height=4.0, ncols=2)
    ref = _reference_data(refs, "md", structure)
    plot_temperature(results, ax=axes[0], reference=ref)
    plot_rdf(results, ax=axes[1], reference=ref)
    axes[0].set_title(f"{structure}: temperature")
    axes[1].set_title(f"{structure}: g(r)")
    return _png(fig)
