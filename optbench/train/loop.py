"""The training loop: one optimizer run on an Objective, with budgets, mini-batches,
clipping, schedules, perturbation, history, and a result that says how and why it stopped.

    result = train(objective, TrainSettings(optimizer="adam", lr=1e-2, batch_size=32,
                                            budget=Budget(epochs=50)))

Step-based optimizers (optimizers/first_order.py, muon.py) run in the loop below; SciPy's
quasi-Newton methods, the Adam -> L-BFGS hybrid and the separable least-squares methods
drive their own iterations (optimizers/quasi_newton.py, separable.py) through the same
`Tracker`, so every run has the same budget accounting, history and result.

A NaN or inf loss or gradient ends a run as "diverged" with its history intact; no
exception reaches the caller for a diverging optimizer. With one engine thread the same
settings give the same history bit for bit.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import numpy as np

from optbench.optim.budget import Budget
from optbench.metrics import Metrics
from optbench.train.schedules import Schedule

STATUSES = ("converged", "target", "budget", "diverged", "stopped", "failed")


@dataclass
class TrainSettings:
    """Everything that defines a run besides the model and the data.

    optimizer / hyper: a name of `optimizers.REGISTRY` and hyperparameter overrides.
    lr: base learning rate (None: the optimizer's default); schedule applies to it.
    batch_size: configurations per step (None: the whole training set).
    clip: global-norm gradient clipping threshold (None: none).
    init_interval: uniform [-a, a] noise around the engine's default parameters.
    perturb_sigma / perturb_every: add N(0, sigma^2) noise to the parameters every n steps.
    eval_every: steps (iterations) between train/validation metric evaluations
      (None: once per epoch for step-based optimizers, every 10 iterations otherwise).
    target_valid_epa: end the run (status "target") at the first evaluation whose
      validation EPA RMSE (eV/atom) is at or below this (time-to-target runs).
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

    def to_dict(self) -> dict:
        """JSON-ready description of the settings."""
        d = asdict(self)
        d["schedule"] = self.schedule.describe()
        d["budget"] = self.budget.to_dict()
        return d


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


class StopRun(Exception):
    """Raised inside a driver to end the run; `status` and `message` say why."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


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
        self.has_valid = getattr(objective, "valid", None) is not None and len(objective.valid) > 0
        self.extra_budget: Budget | None = None  # a phase's own limit (hybrid optimizers)

    def train_seconds(self) -> float:
        """Seconds since the start, less the time spent on evaluations."""
        return time.perf_counter() - self.t0 - self.eval_seconds

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
            raise StopRun("diverged", f"non-finite loss or gradient ({loss}) after {self.steps} steps")
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
        if reached and not final:
            raise StopRun("target", f"validation EPA RMSE {1e3 * valid_m.epa_rmse:.3f} meV/atom reached the "
                                    f"target {1e3 * target:.3f} meV/atom after {self.train_seconds():.2f} s")


def _clip(g: np.ndarray, clip: float | None) -> np.ndarray:
    if clip is None:
        return g
    norm = float(np.linalg.norm(g))
    return g * (clip / norm) if norm > clip else g


def run_steps(tracker: Tracker, opt, x: np.ndarray, lr: float, shuffle_rng: np.random.Generator,
              perturb_rng: np.random.Generator) -> tuple[np.ndarray, Any]:
    """The step loop for a step-based optimizer from x until the budget ends; returns
    the last parameters and the optimizer state. Raises StopRun when the run ends."""
    s = tracker.settings
    n = tracker.n_train
    bs = n if s.batch_size is None else min(s.batch_size, n)
    state = opt.init(x)
    tracker.opt_state, tracker.opt = state, opt
    while True:
        order = shuffle_rng.permutation(n) if bs < n else None
        for start in range(0, n, bs):
            batch = None if order is None else order[start:start + bs]
            reason = tracker.budget_reason()
            if reason:
                tracker.x, tracker.opt_state = x, state
                raise StopRun("budget", reason)
            loss, g = tracker.loss_grad(x, batch)
            step, state = opt.update(_clip(g, s.clip), state, x, s.schedule.lr(lr, tracker.steps))
            x = x + step
            if s.perturb_every and s.perturb_sigma and (tracker.steps + 1) % s.perturb_every == 0:
                x = x + perturb_rng.normal(0.0, s.perturb_sigma, size=x.size)
            if not np.all(np.isfinite(x)):
                raise StopRun("diverged", f"non-finite parameters after step {tracker.steps + 1}")
            tracker.x, tracker.opt_state = x, state
            tracker.record(loss, opt.eval_params(x, state))


def train(objective, settings: TrainSettings, progress: Callable[[str], None] | None = None) -> RunResult:
    """Run `settings.optimizer` on `objective` until its budget ends, it converges,
    diverges or stops; never raises for a diverging optimizer (status "diverged")."""
    from optbench.optim import REGISTRY, StepEntry

    if settings.optimizer not in REGISTRY:
        raise ValueError(f"unknown optimizer {settings.optimizer!r}; known: {', '.join(sorted(REGISTRY))}")
    entry = REGISTRY[settings.optimizer]
    # A fresh schedule: reduce-on-plateau keeps state, which must not leak between runs.
    settings = replace(settings, schedule=replace(settings.schedule))
    t_wall = time.perf_counter()
    x0 = objective.initial_params(settings.seed, settings.init_interval)
    is_step = isinstance(entry, StepEntry)
    n = int(objective.n_train)
    bs = n if settings.batch_size is None else min(settings.batch_size, n)
    tracker = Tracker(objective, settings, progress, default_eval_every=max(1, -(-n // bs)) if is_step else 10)
    tracker.x = x0
    shuffle_rng = np.random.default_rng([settings.seed, 1])
    perturb_rng = np.random.default_rng([settings.seed, 2])
    notes: list[str] = []
    scipy_info: dict = {}
    lr = settings.lr if settings.lr is not None else entry.default_lr
    try:
        if is_step:
            opt = entry.build(**settings.hyper)
            run_steps(tracker, opt, x0, lr, shuffle_rng, perturb_rng)
        else:
            entry.run(tracker, x0, lr, dict(settings.hyper), shuffle_rng, perturb_rng, scipy_info, notes)
        status, message = "converged", scipy_info.get("message", "converged")
    except StopRun as stop:
        status, message = stop.status, stop.message
    except (ValueError, TypeError):
        raise  # bad settings: the caller's error, not the optimizer's
    except Exception as err:  # an engine or optimizer error ends this run only
        status, message = "failed", f"{type(err).__name__}: {err}"
    if "status" in scipy_info and status == "converged":
        status = scipy_info["status"]

    x_last = tracker.x
    if is_step and hasattr(tracker, "opt"):
        x_last = tracker.opt.eval_params(tracker.x, tracker.opt_state)
    if status != "diverged" or np.all(np.isfinite(x_last)):
        try:
            tracker.evaluate(x_last, final=True)
        except Exception as err:
            notes.append(f"final evaluation failed: {err}")
    x_best = tracker.best_x if tracker.best_x is not None else x_last
    return RunResult(
        status=status, message=message, optimizer=settings.optimizer,
        hyper={**({"lr": lr} if is_step or entry.uses_lr else {}), **settings.hyper},
        x=x_last, x_best=x_best, best_step=tracker.best_step,
        train=tracker.last_metrics[0], valid=tracker.last_metrics[1],
        best_train=tracker.best_metrics[0], best_valid=tracker.best_metrics[1],
        steps=tracker.steps, configs_evaluated=tracker.configs, train_seconds=tracker.train_seconds(),
        wall_seconds=time.perf_counter() - t_wall, history=tracker.history,
        nit=scipy_info.get("nit"), nfev=scipy_info.get("nfev"), success=scipy_info.get("success"),
        notes=notes)
