"""A run's history and its result: how it ended, its parameters, metrics, cost and history."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from optbench.metrics import Metrics


@dataclass
class History:
    """Per step: loss (mean over the batch), configurations evaluated so far, training
    seconds so far. Per evaluation: the same plus train/validation errors."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    configs: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)


@dataclass
class RunResult:
    """How a run ended (status, message), its last and best-validation parameters with
    their metrics, its cost and its history.

    status: "converged" (the optimizer's own convergence test passed), "target" (the
    validation error reached settings.target_valid_epa), "budget",
    "diverged" (NaN/inf loss or gradient), "stopped" (the optimizer gave up, e.g. a
    line-search failure), "timed_out" (an outside trainer, MLIP's mlp train, was killed at
    the time limit before saving) or "failed" (an error; message says which).

    In memory only, not in the record (to_dict): opt_state, the optimizer's final state
    (a step-based optimizer's dict, {"hess_inv": ...} when SciPy's minimize returned,
    else None), and with settings.snapshot_every, snapshots: dicts {"step", "stage"
    ("optimizer" | "refine"), "x" (float64 copy of the optimizer's iterate), "state"
    (deep copy, or None), "optimizer" (the stage's: "lbfgs" for the refinement)} at step
    0, every snapshot_every steps, at the end of the optimizer's stage and, with
    refine="lbfgs", before and after the refinement.
    """

    status: str
    message: str
    optimizer: str
    hyper: dict
    x: np.ndarray
    x_best: np.ndarray
    best_step: int
    train: Metrics | None
    valid: Metrics | None
    best_train: Metrics | None
    best_valid: Metrics | None
    steps: int
    configs_evaluated: int
    train_seconds: float
    wall_seconds: float
    history: History
    nit: int | None = None
    nfev: int | None = None
    success: bool | None = None
    notes: list[str] = field(default_factory=list)
    opt_state: Any = None
    snapshots: list[dict] = field(default_factory=list)

    def to_dict(self, params: bool = False) -> dict:
        """JSON-ready record (parameters only when `params`)."""
        d = {k: getattr(self, k) for k in ("status", "message", "optimizer", "hyper", "best_step", "steps",
                                          "configs_evaluated", "train_seconds", "wall_seconds", "nit",
                                          "nfev", "success", "notes")}
        for k in ("train", "valid", "best_train", "best_valid"):
            m = getattr(self, k)
            d[k] = None if m is None else m.to_dict()
        d["history"] = asdict(self.history)
        if params:
            d["x"], d["x_best"] = self.x.tolist(), self.x_best.tolist()
        return d
