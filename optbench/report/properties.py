"""The report's physical properties: for one (model, data) group, each variant's property
values over seeds beside the reference's, the errors against it, whether a better fit
gave better physics (rank correlation of property error with validation force error
across runs), and the figures (relative errors per optimizer, phonon bands over the
reference, MD temperature traces and RDFs).

Reads only the store's tables `properties` and `property_references` (Store.properties_frame
and references_frame); a group without properties gets no section.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from optbench.report.groups import Group
from optbench.report.render import fmt
from optbench.report.stats import rank_correlation

__all__ = ["RELATIVE", "drop_symmetry_zeros", "is_relative", "property_error", "with_errors", "property_values", "property_table",
           "error_table", "correlation_table", "reference_values"]

# Quantities compared by relative error (%); the rest (near zero by nature: imaginary
# modes, drifts, temperature offsets, a crystal's diffusion coefficient) by difference in
# their own unit.
RELATIVE = {"a", "V0", "B", "G", "E", "nu", "E_vac", "usf", "max_frequency", "mean_frequency", "rdf_first_peak",
            "T_std", "T_mean"}
# Values left out of the tables (raw bookkeeping rather than physics).
_SKIP = {"exploded_at_ps", "usf_position"}


def is_relative(key: str) -> bool:
    """Whether quantity `key` is compared by relative error (else by difference)."""
    return key in RELATIVE or key.startswith("gamma") or (key.startswith("C") and key[1:].isdigit())


def property_values(props: pd.DataFrame, g: Group) -> pd.DataFrame:
    """One row per (run, structure, property, value) of group `g` whose result is ok:
    key, variant, seed, structure, property, quantity, unit, value. Unstable and failed
    results stay out of means and errors (the report lists them apart)."""
    rows = []
    keys = set(g.runs["key"])
    seeds = dict(zip(g.runs["key"], g.runs["seed"]))
    variants = dict(zip(g.runs["key"], g.runs["variant"]))
    for key, res in zip(props["key"], props["result"]):
        if key not in keys or res.get("status", "ok") != "ok":
            continue
        for q, v in (res.get("values") or {}).items():
            if q in _SKIP:
                continue
            rows.append({"key": key, "variant": variants[key], "seed": seeds[key], "structure": res["structure"],
                         "property": res["name"], "quantity": q, "unit": (res.get("units") or {}).get(q, ""),
                         "value": np.nan if v is None else float(v)})
    return pd.DataFrame(rows, columns=["key", "variant", "seed", "structure", "property", "quantity", "unit",
                                       "value"])


def reference_values(refs: pd.DataFrame) -> tuple[dict, str | None]:
    """({(structure, property, quantity): value}, the reference's label) of the stored
    reference results (the first label when several)."""
    if refs is None or refs.empty:
        return {}, None
    label = refs["label"].iloc[0]
    out = {}
    for lab, res in zip(refs["label"], refs["result"]):
        if lab != label or res.get("status", "ok") != "ok":
            continue
        for q, v in (res.get("values") or {}).items():
            if v is not None:
                out[(res["structure"], res["name"], q)] = float(v)
    return out, label


def property_error(value: float, ref: float, quantity: str) -> float:
    """The error of `value` against `ref`: in % of |ref| for relative quantities
    (is_relative), else the difference; NaN when either is missing."""
    if not (math.isfinite(value) and math.isfinite(ref)):
        return np.nan
    if is_relative(quantity):
        return 100.0 * (value - ref) / abs(ref) if ref != 0 else np.nan
    return value - ref


def with_errors(values: pd.DataFrame, ref: dict) -> pd.DataFrame:
    """`values` with the reference value and the error of each row ("error": % for the
    RELATIVE quantities, else the difference in the quantity's unit; NaN without one)."""
    out = values.copy()
    out["reference"] = [ref.get((s, p, q), np.nan) for s, p, q in zip(out["structure"], out["property"],
                                                                        out["quantity"])]
    out["error"] = [property_error(v, r, q) for v, r, q in zip(out["value"], out["reference"], out["quantity"])]
    return out


def drop_symmetry_zeros(vals: pd.DataFrame, tol_gpa: float = 0.01) -> pd.DataFrame:
    """`vals` without the elastic constants that vanish by symmetry: C_ij whose reference
    and every run's value are below `tol_gpa` (GPa) in magnitude (a tetragonal crystal's
    C14 ... C56: numerical zeros of 1e-12 GPa that would fill the tables)."""
    if vals.empty:
        return vals
    is_c = (vals["property"] == "elastic") & vals["quantity"].str.fullmatch(r"C\d\d")
    small = vals["value"].abs().lt(tol_gpa) & (vals["reference"].abs().lt(tol_gpa) | vals["reference"].isna())
    keys = ["structure", "property", "quantity"]
    zero = (small | ~is_c).groupby([vals[k] for k in keys]).transform("all") & is_c
    return vals[~zero]


def _cell(x: pd.Series) -> str:
    x = x[np.isfinite(x)]
    if not len(x):
        return "n/a"
    return fmt(x.mean()) if len(x) == 1 else f"{fmt(x.mean())} ± {fmt(x.std(ddof=1), 2)}"


def _order(df: pd.DataFrame, g: Group) -> list[str]:
    return [v for v in g.variants if v in set(df["variant"])]


def property_table(vals: pd.DataFrame, g: Group, ref_label: str | None) -> pd.DataFrame:
    """Rows (structure, quantity with unit); columns the reference then each variant's
    mean ± std over seeds (ddof=1) of the value (text cells)."""
    if vals.empty:
        return pd.DataFrame()
    rows = []
    for (structure, prop, q), sub in vals.groupby(["structure", "property", "quantity"], sort=False):
        unit = sub["unit"].iloc[0]
        row = {"structure": structure, "quantity": f"{prop} {q}" + (f" ({unit})" if unit else "")}
        if ref_label:
            row[ref_label] = fmt(sub["reference"].iloc[0])
        for v in _order(vals, g):
            row[v] = _cell(sub.loc[sub["variant"] == v, "value"])
        rows.append(row)
    return pd.DataFrame(rows)


def error_table(vals: pd.DataFrame, g: Group) -> pd.DataFrame:
    """Rows (structure, quantity) that have a reference; columns each variant's error,
    mean ± std over seeds: % for relative quantities, else the difference (text cells)."""
    vals = vals[np.isfinite(vals["reference"])]
    if vals.empty:
        return pd.DataFrame()
    rows = []
    for (structure, prop, q), sub in vals.groupby(["structure", "property", "quantity"], sort=False):
        unit = "%" if is_relative(q) else (sub["unit"].iloc[0] or "")
        row = {"structure": structure, "quantity": f"{prop} {q}", "error in": unit}
        for v in _order(vals, g):
            row[v] = _cell(sub.loc[sub["variant"] == v, "error"])
        rows.append(row)
    return pd.DataFrame(rows)


def correlation_table(vals: pd.DataFrame, g: Group) -> pd.DataFrame:
    """Does a better fit give better physics? Per (structure, quantity) with a reference:
    Spearman's rank correlation across runs of |error| with the run's validation force
    RMSE of the same (best) parameters, n runs and the two-sided p-value. rho > 0: runs
    that fit the forces better also got this property closer."""
    vals = vals[np.isfinite(vals["error"])]
    force = g.best_force_rmse()
    rows = []
    for (structure, prop, q), sub in vals.groupby(["structure", "property", "quantity"], sort=False):
        f = [force.get(k, np.nan) for k in sub["key"]]
        rows.append({"structure": structure, "quantity": f"{prop} {q}",
                     **rank_correlation(f, np.abs(sub["error"].to_numpy(float)))})
    return pd.DataFrame(rows)
