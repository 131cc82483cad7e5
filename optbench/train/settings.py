"""What defines a run besides the model and the data: `TrainSettings`."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

from optbench.optim.budget import Budget
from optbench.train.schedules import Schedule


#: Refinement stages after the optimizer ("lbfgs": SciPy L-BFGS-B, full batch).
REFINEMENTS = ("none", "lbfgs")


@dataclass
class TrainSettings:
    """Everything that defines a run besides the model and the data.

    optimizer / hyper: a name of `optbench.optim.REGISTRY` and hyperparameter overrides.
    lr: base learning rate (None: the optimizer's default); schedule applies to it.
    batch_size: configurations per step (None: the whole training set).
    clip: global-norm gradient clipping threshold (None: none).
    init_interval: uniform [-a, a] noise around the engine's default parameters.
    perturb_sigma / perturb_every: add N(0, sigma^2) noise to the parameters every n steps.
    eval_every: steps (iterations) between train/validation metric evaluations
      (None: once per epoch for step-based optimizers, every 10 iterations otherwise).
    target_valid_epa: end the run (status "target") at the first evaluation whose
      validation EPA RMSE (eV/atom) is at or below this (time-to-target runs).
    early_stop: end the optimizer's stage (status "stopped") when the validation EPA RMSE
      has not improved for this many evaluations (None: never); needs a validation set.
    refine: "none", or "lbfgs": after the optimizer, an L-BFGS-B refinement on the whole
      training set (the fine-tuning study's "+ L-BFGS") from the optimizer's last
      (early-stopped: best) point, for the last `refine_fraction` of every budget limit.
    snapshot_every: keep the parameters and a deep copy of the optimizer state every this
      many steps, at the start and at the end of each stage (RunResult.snapshots, for the
      curvature analysis; None: none, the default). Snapshots never change the trajectory
      and are not part of the run's record, but each holds a copy of x and of the state
      (Adam: 3 vectors; BFGS: an n x n matrix): for large models make it large.
    """

    optimizer: str = "adam"
    hyper: dict[str, Any] = field(default_factory=dict)
    lr: float | None = None
    batch_size: int | None = None
    clip: float | None = None
    schedule: Schedule = field(default_factory=Schedule)
    budget: Budget = field(default_factory=lambda: Budget(epochs=100))
    seed: int = 0
    init_interval: float | None = None
    perturb_sigma: float = 0.0
    perturb_every: int = 0
    eval_every: int | None = None
    target_valid_epa: float | None = None
    early_stop: int | None = None
    refine: str = "none"
    refine_fraction: float = 0.2
    snapshot_every: int | None = None

    def __post_init__(self):
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.clip is not None and not (self.clip > 0):
            raise ValueError(f"clip must be positive, got {self.clip}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.perturb_sigma < 0 or self.perturb_every < 0:
            raise ValueError("perturb_sigma and perturb_every must be >= 0")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")
        if self.early_stop is not None and self.early_stop < 1:
            raise ValueError(f"early_stop must be >= 1 evaluations, got {self.early_stop}")
        if self.refine not in REFINEMENTS:
            raise ValueError(f"refine must be one of {', '.join(REFINEMENTS)}, got {self.refine!r}")
        if not 0 < self.refine_fraction < 1:
            raise ValueError(f"refine_fraction must be in (0, 1), got {self.refine_fraction}")
        if self.snapshot_every is not None and (isinstance(self.snapshot_every, bool)
                                                or not isinstance(self.snapshot_every, numbers.Integral)
                                                or self.snapshot_every < 1):
            raise ValueError(f"snapshot_every must be a whole number of steps >= 1, got {self.snapshot_every!r}")

    def to_dict(self) -> dict:
        """JSON-ready description of the settings (snapshot_every only when set, so that
        the records of runs without snapshots stay as they were)."""
        d = asdict(self)
        if self.snapshot_every is None:
            del d["snapshot_every"]
        d["schedule"] = self.schedule.describe()
        d["budget"] = self.budget.to_dict()
        return d
