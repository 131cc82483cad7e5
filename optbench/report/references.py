"""optbench's results beside reference results (another code's per-seed results, e.g. a
published study's): per (model, data) group and variant, both sides' means and the ratios
optbench / reference, in shown units (meV/atom, meV/Å, seconds, core-seconds).

The reference rows come as a plain DataFrame (an experiment file's [[references]], see
optbench/experiments/references.py, or any frame with REQUIRED_COLUMNS): one row per
seed, eV/atom, eV/Å, wall seconds, and the cores the reference ran on. Core-seconds are
wall seconds x cores for the reference, train seconds x the run's engine threads for
optbench (x 1 for MLIP's native trainer: `mlp train` is one process).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from optbench.experiments.references import REFERENCE_COLUMNS
from optbench.report import stats
from optbench.report.groups import Group, shown_values

# The reference frame's columns (experiments.references), less the source file it names.
REQUIRED_COLUMNS = tuple(c for c in REFERENCE_COLUMNS if c != "file")
NATIVE = "native"  # optbench.optim's name of MLIP's own trainer
_NUMERIC = ("valid_epa_rmse", "valid_force_rmse", "train_seconds", "cores")
# (column of the table, quantity) for both sides; core-seconds are computed.
_SIDES = (("epa_mev", "valid_epa"), ("force_mev", "valid_force"), ("seconds", "train_seconds"))


def check_references(refs: pd.DataFrame | None) -> pd.DataFrame:
    """`refs` with its quantities as floats (an empty frame for None); ValueError naming
    the columns it lacks."""
    if refs is None:
        return pd.DataFrame(columns=list(REQUIRED_COLUMNS))
    missing = [c for c in REQUIRED_COLUMNS if c not in refs.columns]
    if missing:
        raise ValueError(f"references: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED_COLUMNS)}")
    refs = refs.copy()
    for col in _NUMERIC:
        refs[col] = pd.to_numeric(refs[col], errors="coerce").astype(float)
    return refs


def of_group(refs: pd.DataFrame, model: str, data: str) -> pd.DataFrame:
    """The reference rows of one (model, data) group."""
    return refs[(refs["model"] == model) & (refs["data"] == data)]


def run_threads(runs: pd.DataFrame) -> np.ndarray:
    """Each run's cores: its engine threads, from its stored spec (1 when it names
    none); 1 for MLIP's native trainer, whose `mlp train` runs as one process whatever
    the engine's threads."""
    if "spec" not in runs.columns:
        return np.ones(len(runs))
    out = []
    for spec, optimizer in zip(runs["spec"], runs.get("optimizer", [None] * len(runs))):
        try:
            threads = float(json.loads(spec).get("threads") or 1)
        except (TypeError, ValueError, AttributeError):
            threads = 1.0
        out.append(1.0 if optimizer == NATIVE else threads)
    return np.array(out, dtype=float)


def _mean(values) -> float:
    return stats.summarize(np.asarray(values, dtype=float))["mean"]


def _ratio(ours: float, theirs: float) -> float:
    return ours / theirs if math.isfinite(ours) and math.isfinite(theirs) and theirs != 0 else math.nan


def reference_table(g: Group, refs: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, reference label) of group `g` that has reference rows (`refs`, as
    check_references gives it; other groups' rows are ignored): the reference's seeds,
    mean validation EPA (meV/atom), force RMSE (meV/Å), wall seconds and core-seconds;
    optbench's runs of the variant with a validation EPA and the same means (train
    seconds; core-seconds = train seconds x the run's threads); and the ratios optbench
    / reference. Variants in
    g's order, then reference variants that have no run here (optbench's side empty)."""
    mine = of_group(refs, g.model, g.data)
    order = [v for v in g.variants if v in set(mine["variant"])]
    order += [v for v in dict.fromkeys(mine["variant"]) if v not in order]
    rows = []
    for v in order:
        runs = g.of(v)
        ours = {col: _mean(shown_values(runs, q)) for col, q in _SIDES}
        ours["core_seconds"] = _mean(shown_values(runs, "train_seconds") * run_threads(runs))
        for label, ref in mine[mine["variant"] == v].groupby("label", sort=False):
            theirs = {"epa_mev": _mean(1e3 * ref["valid_epa_rmse"]), "force_mev": _mean(1e3 * ref["valid_force_rmse"]),
                      "seconds": _mean(ref["train_seconds"]),
                      "core_seconds": _mean(ref["train_seconds"] * ref["cores"])}
            row = {"model": g.model, "data": g.data, "variant": v, "label": label, "ref_n": len(ref)}
            row.update({f"ref_{k}": x for k, x in theirs.items()})
            row["n"] = int(np.isfinite(shown_values(runs, "valid_epa")).sum())
            row.update(ours)
            row.update({f"{k.removesuffix('_mev')}_ratio": _ratio(ours[k], theirs[k]) for k in theirs})
            rows.append(row)
    return pd.DataFrame(rows)


def _counts(counts: dict[str, int]) -> str:
    """{variant: seeds} as "5 per variant" when all agree, else "adam 5, sgd 3"."""
    if not counts:
        return "none"
    values = set(counts.values())
    if len(values) == 1:
        return f"{values.pop()} seed(s) per variant"
    return ", ".join(f"{v} {n}" for v, n in counts.items())


def seeds_line(table: pd.DataFrame) -> str:
    """The sentence saying how many seeds each side of `table` (reference_table's) has."""
    parts = []
    for label, sub in table.groupby("label", sort=False):
        parts.append(f"{label}: {_counts(dict(zip(sub['variant'], sub['ref_n'])))}")
    ours = dict(zip(table["variant"], table["n"]))
    parts.append(f"optbench: {_counts(ours)}")
    missing = [v for v, n in ours.items() if n == 0]
    tail = f" No optbench run yet for {', '.join(missing)}." if missing else ""
    return "Seeds: " + "; ".join(parts) + "." + tail
