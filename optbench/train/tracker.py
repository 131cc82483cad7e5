"""The Tracker: budget, history, periodic evaluation and best-parameter keeping for one
run; every optimizer reaches the Objective through it. With settings.snapshot_every it
also keeps snapshots of the parameters and optimizer state for the curvature analysis."""

from __future__ import annotations

import copy
import math
import time
from typing import Callable

import numpy as np

from optbench.metrics import Metrics
from optbench.optim.budget import Budget
from optbench.optim.loop import StopRun
from optbench.status import RunStatus
from optbench.train.result import History
from optbench.train.settings import TrainSettings

_CURRENT = object()  # Tracker.snapshot's default: the optimizer's current state


class Tracker:
    """Budget, history, periodic evaluation and best-parameter keeping for one run.
    Every optimizer reaches the Objective through `loss_grad` here, which counts
    configurations and turns a non-finite loss into StopRun("diverged")."""

    def __init__(self, objective, settings: TrainSettings, progress: Callable[[str], None] | None,
                 default_eval_every: int):
        self.objective, self.settings, self.progress = objective, settings, progress
        self.n_train = int(objective.n_train)
        self.eval_every = settings.eval_every or default_eval_every
        self.history = History()
        self.configs = 0
        self.steps = 0
        self.eval_seconds = 0.0
        self.t0 = time.perf_counter()
        self.best_score = math.inf
        self.best_x: np.ndarray | None = None
        self.best_step = 0
        self.best_metrics: tuple[Metrics | None, Metrics | None] = (None, None)
        self.last_metrics: tuple[Metrics | None, Metrics | None] = (None, None)
        self.last_eval_step = -1
        # a data-parallel objective holds a share of the validation set: n_valid is the whole's
        n_valid = getattr(objective, "n_valid", None)
        if n_valid is None:
            n_valid = len(objective.valid) if getattr(objective, "valid", None) is not None else 0
        self.has_valid = n_valid > 0
        self.extra_budget: Budget | None = None  # a phase's own limit (hybrid optimizers)
        self.early_stop = settings.early_stop if self.has_valid else None
        self.evals_since_best = 0
        # The optimizer's current state: run_steps keeps it here, SciPy drivers leave
        # {"hess_inv": ...} when minimize returns, other drivers keep none.
        self.opt_state = None
        self.snapshots: list[dict] = []
        self.snapshot_stage, self.snapshot_optimizer = "optimizer", settings.optimizer
        self.snapshot_seconds = 0.0

    def snapshot(self, x: np.ndarray | None = None, state=_CURRENT) -> None:
        """Keep a snapshot (settings.snapshot_every set; else nothing): {"step", "stage"
        ("optimizer" or "refine"), "x" (a float64 copy of `x`, default the optimizer's
        iterate self.x), "state" (a deep copy of `state`, default self.opt_state),
        "optimizer"}. A snapshot at the step and stage of the previous one replaces it:
        it holds the same parameters and at least as much state. Its time is not charged
        to the run (train_seconds)."""
        if self.settings.snapshot_every is None:
            return
        t = time.perf_counter()
        snap = {"step": self.steps, "stage": self.snapshot_stage,
                "x": np.array(self.x if x is None else x, dtype=np.float64, copy=True),
                "state": copy.deepcopy(self.opt_state if state is _CURRENT else state),
                "optimizer": self.snapshot_optimizer}
        last = self.snapshots[-1] if self.snapshots else None
        if last is not None and (last["step"], last["stage"]) == (snap["step"], snap["stage"]):
            self.snapshots[-1] = snap
        else:
            self.snapshots.append(snap)
        self.snapshot_seconds += time.perf_counter() - t

    def train_seconds(self) -> float:
        """Seconds since the start, less the time spent on evaluations and snapshots."""
        return time.perf_counter() - self.t0 - self.eval_seconds - self.snapshot_seconds

    def budget_reason(self, extra: int = 0) -> str | None:
        """Why the budget (or the current phase's) is used up, counting `extra` more
        configurations; None while it lasts."""
        s = self.train_seconds()
        r = self.settings.budget.reason(self.configs + extra, self.n_train, s)
        if r is None and self.extra_budget is not None:
            r = self.extra_budget.reason(self.configs + extra - self.phase_start_configs, self.n_train,
                                         s - self.phase_start_seconds)
        return r

    def start_phase(self, budget: Budget | None) -> None:
        """Limit what follows by `budget` as well (None: lift the limit)."""
        self.extra_budget = budget
        self.phase_start_configs = self.configs
        self.phase_start_seconds = self.train_seconds()

    def loss_grad(self, x: np.ndarray, batch: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """The Objective's mean loss and gradient, counted; StopRun("diverged") when
        either is not finite."""
        loss, g = self.objective.loss_grad(x, batch)
        self.configs += self.n_train if batch is None else len(batch)
        if not (math.isfinite(loss) and np.all(np.isfinite(g))):
            raise StopRun(RunStatus.DIVERGED, f"non-finite loss or gradient ({loss}) after {self.steps} steps")
        return loss, g

    def count(self, n_configs: int) -> None:
        """Charge `n_configs` configurations evaluated by some other Objective call."""
        self.configs += n_configs

    def record(self, loss: float, x_eval: np.ndarray) -> None:
        """One step (or iteration) done with loss `loss`; evaluate every eval_every steps."""
        self.steps += 1
        h = self.history
        h.step.append(self.steps)
        h.loss.append(float(loss))
        h.configs.append(self.configs)
        h.seconds.append(self.train_seconds())
        every = self.settings.snapshot_every
        if every is not None and self.steps % every == 0:
            self.snapshot()  # before the evaluation, which may end the run
        if self.steps % self.eval_every == 0:
            self.evaluate(x_eval)

    def record_external(self, loss: float, configs: int, seconds: float) -> None:
        """One iteration done by an outside trainer (MLIP's `mlp train`), known only from
        its log: loss as it printed it, configurations evaluated and training seconds so
        far. No evaluation: the parameters of that iteration are not available."""
        self.steps += 1
        self.configs = int(configs)
        h = self.history
        h.step.append(self.steps)
        h.loss.append(float(loss))
        h.configs.append(self.configs)
        h.seconds.append(float(seconds))

    def evaluate(self, x: np.ndarray, final: bool = False) -> None:
        """Train and validation metrics at x, into the history; keeps the best-validation
        (train when there is no validation set) parameters. Raises StopRun("target") when
        the target error is reached, unless `final`."""
        if self.last_eval_step == self.steps:
            return
        t = time.perf_counter()
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run's errors are inf, not warnings
            train_m = self.objective.evaluate(x, "train")
            valid_m = self.objective.evaluate(x, "valid") if self.has_valid else None
            valid_loss = self.objective.valid_loss(x) if self.has_valid and hasattr(self.objective, "valid_loss") else None
        self.eval_seconds += time.perf_counter() - t
        self.last_eval_step = self.steps
        self.last_metrics = (train_m, valid_m)
        score = (valid_m or train_m).epa_rmse
        if math.isfinite(score) and score < self.best_score:
            self.best_score, self.best_x, self.best_step = score, x.copy(), self.steps
            self.best_metrics = (train_m, valid_m)
            self.evals_since_best = 0
        else:
            self.evals_since_best += 1
        row = {"step": self.steps, "configs": self.configs, "seconds": self.train_seconds(),
               "loss": self.history.loss[-1] if self.history.loss else None,
               "train_epa_rmse": train_m.epa_rmse, "train_force_rmse": train_m.force_rmse}
        if valid_m is not None:
            row.update(valid_epa_rmse=valid_m.epa_rmse, valid_force_rmse=valid_m.force_rmse, valid_loss=valid_loss)
            self.settings.schedule.observe(valid_loss if valid_loss is not None else valid_m.epa_rmse)
        self.history.evals.append(row)
        target = self.settings.target_valid_epa
        reached = target is not None and valid_m is not None and valid_m.epa_rmse <= target
        if self.progress:
            msg = (f"step {self.steps:6d}  configs {self.configs:9d}  {self.train_seconds():8.1f} s  "
                   f"loss {row['loss'] if row['loss'] is not None else float('nan'):.6e}  "
                   f"train EPA {1e3 * train_m.epa_rmse:.3f} meV/atom")
            if valid_m is not None:
                msg += f"  valid EPA {1e3 * valid_m.epa_rmse:.3f} meV/atom, F {1e3 * valid_m.force_rmse:.1f} meV/A"
            self.progress(msg)
        if self.early_stop is not None and self.evals_since_best >= self.early_stop and not final:
            self.early_stop = None  # once: a refinement stage after it is not stopped again
            raise StopRun(RunStatus.STOPPED, f"early stopping: validation EPA RMSE not improved in "
                                             f"{self.evals_since_best} evaluations (best at step {self.best_step})")
        if reached and not final:
            raise StopRun(RunStatus.TARGET, f"validation EPA RMSE {1e3 * valid_m.epa_rmse:.3f} meV/atom reached the "
                                    f"target {1e3 * target:.3f} meV/atom after {self.train_seconds():.2f} s")
