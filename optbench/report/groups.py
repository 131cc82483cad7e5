"""The report's input: the finished runs of a results store as one frame, their
histories, and the (model, data) groups that every table and figure is drawn for, with
each group's baseline and variant colours.

Also the names that tables and figures share: the summarised quantities and their shown
units (QUANTITIES), the budget axes (AXES), and the one test of a run that stopped
without converging (stopped_without_converging).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from optbench.experiments.baseline import (
    DEFAULT_BASELINES,
    BaselineError,
    choose_baseline,
)
from optbench.experiments.store import Store
from optbench.status import RunStatus

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
NUMERIC_COLUMNS = ("nit", "nfev", "steps", "configs_evaluated", "train_seconds", "wall_seconds", "final_loss")
SWEEP_SETTINGS = ("lr", "clip", "batch_size", "init_interval", "perturb_sigma")
# (column in the runs frame, axis label, unit) per budget axis; the key is also the
# field of an evaluation point (eval_points) that measures the axis.
AXES = {"seconds": ("train_seconds", "train seconds", "s"), "configs": ("configs_evaluated", "configurations", "")}
OUTLIER_QUANTITIES = ("valid_epa", "valid_force")
# An optimizer that gave up in its line search has not converged, whatever it says.
LINE_SEARCH = re.compile(r"line[ _-]?search|precision loss|ABNORMAL", re.IGNORECASE)


@dataclass
class Group:
    """One (model, data) group: its runs (finished ones, one row each), their
    histories by key (empty dict when none), the variants in report order (baseline
    first), the baseline variant (None when the group has no run at all), the sentence
    saying how it was chosen, whether that sentence belongs in the report's list of
    problems (no BFGS run, or the requested baseline could not be used) and one colour
    per variant."""

    model: str
    data: str
    runs: pd.DataFrame
    histories: dict[str, dict]
    variants: list[str]
    baseline: str | None
    baseline_note: str
    colours: dict[str, Any] = field(default_factory=dict)
    baseline_problem: bool = False

    def best_force_rmse(self) -> dict[str, float]:
        """{run key: validation force RMSE (eV/A) of its best-validation parameters, else
        of its last ones}: the fit error that properties and curvature are set against."""
        col = "best_valid_force_rmse" if "best_valid_force_rmse" in self.runs else "valid_force_rmse"
        return dict(zip(self.runs["key"], self.runs[col])) if col in self.runs else {}

    @property
    def title(self) -> str:
        """ "MODEL on DATA", the group's heading."""
        return f"{self.model} on {self.data}"

    @property
    def slug(self) -> str:
        """A file-name stem for the group's figures, unique per (model, data)."""
        # The hash keeps labels that reduce to one slug ("mtp 8", "mtp-8") in separate files.
        label = f"{self.model}\0{self.data}"
        return f"{slug(f'{self.model}_{self.data}')}-{hashlib.sha1(label.encode()).hexdigest()[:6]}"

    def of(self, variant: str) -> pd.DataFrame:
        """The runs of `variant`, sorted by seed."""
        return self.runs[self.runs["variant"] == variant].sort_values("seed")


def slug(text: str) -> str:
    """`text` as a lower-case file-name part: runs of other characters than ASCII letters
    and digits become "-" ("x" when nothing is left)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def shown_values(runs: pd.DataFrame, quantity: str) -> np.ndarray:
    """The column of `quantity` (a QUANTITIES key) of `runs` in its shown unit, as floats."""
    col, scale, _, _ = QUANTITIES[quantity]
    return runs[col].to_numpy(dtype=float) * scale


def stopped_without_converging(status: str, message: Any) -> bool:
    """Whether a run gave up without converging: status "stopped", or a message (any
    non-string counts as none) naming a line search, precision loss or ABNORMAL, which
    SciPy reports with its success flag or a "converged" status sometimes set."""
    return status == RunStatus.STOPPED or line_search_failure(message)


def line_search_failure(message: Any) -> bool:
    """Whether a run's message (any non-string counts as none) names a line-search failure."""
    return isinstance(message, str) and LINE_SEARCH.search(message) is not None


def load_frame(store: Store, experiment: str | None, keys=None) -> pd.DataFrame:
    """Finished runs of `store` (of `experiment` when given, only `keys` when given),
    one row each, with every column of METRIC_COLUMNS present (NaN when the store has
    none; eV/atom, eV/Å) and the counts and times of NUMERIC_COLUMNS as floats (s)."""
    runs = store.runs_frame(experiment)
    if keys is not None:
        runs = runs[runs["key"].isin(set(keys))].reset_index(drop=True)
    for col in METRIC_COLUMNS:
        if col not in runs.columns:
            runs[col] = np.nan
    for col in NUMERIC_COLUMNS:
        runs[col] = pd.to_numeric(runs[col], errors="coerce").astype(float)
    return runs


def load_histories(store: Store, keys) -> dict[str, dict]:
    """key -> the run's stored history (an empty dict for a run that has none)."""
    out = {}
    for key in keys:
        try:
            out[key] = store.history(key)
        except KeyError:
            out[key] = {}
    return out


def group_baseline(runs: pd.DataFrame, requested: str | None) -> tuple[str | None, str, bool]:
    """The baseline variant of one group's `runs` by optbench.experiments.baseline's rule,
    the sentence saying how it was chosen, and whether that sentence is a problem to list.

    A request that names no variant of this group, or an optimizer with several variants
    here, cannot fail the report (an experiment's baseline need not fit every group): the
    group falls back to the default choice and the sentence says why."""
    counts = runs.groupby(["variant", "optimizer"], sort=False, dropna=False).size()
    variants = [(v, opt, int(n)) for (v, opt), n in counts.items()]
    try:
        baseline, note = choose_baseline(variants, requested)
    except BaselineError as err:
        baseline, note = choose_baseline(variants, None)
        return baseline, f"requested baseline {requested!r} cannot be used in this group ({err}); {note}", True
    if requested or baseline is None:
        return baseline, note, False
    of_default = {v for v, opt, _ in variants if v in DEFAULT_BASELINES or opt in DEFAULT_BASELINES}
    return baseline, note, baseline not in of_default


def make_groups(runs: pd.DataFrame, histories: dict, requested: str | None) -> list[Group]:
    """One Group per (model, data) of `runs`, in order of first appearance; `requested`
    is the baseline asked for (a variant label or an optimizer name, None: the default)."""
    from matplotlib import colormaps

    groups = []
    for (model, data), sub in runs.groupby(["model", "data"], sort=False):
        baseline, note, problem = group_baseline(sub, requested)
        variants = list(dict.fromkeys(sub["variant"]))
        variants.sort(key=lambda v: v != baseline)  # stable: baseline first, then first appearance
        cmap = colormaps["tab10" if len(variants) <= 10 else "tab20"]
        colours = {v: cmap(i % cmap.N) for i, v in enumerate(variants)}
        groups.append(Group(model, data, sub, {k: histories[k] for k in sub["key"]}, variants, baseline, note,
                            colours, problem))
    return groups
