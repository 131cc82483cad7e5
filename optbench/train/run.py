"""The training loop: one optimizer run on an Objective, with budgets, mini-batches,
clipping, schedules, perturbation, history, and a result that says how and why it stopped.

    result = train(objective, TrainSettings(optimizer="adam", lr=1e-2, batch_size=32,
                                            budget=Budget(epochs=50)))

Step-based optimizers (optim/first_order.py, muon.py) run in optim.loop.run_steps; SciPy's
quasi-Newton methods, the Adam -> L-BFGS hybrid and the separable least-squares methods
drive their own iterations (optim/quasi_newton.py, separable.py) through the same
`Tracker` (tracker.py), so every run has the same budget accounting, history and result.

With settings.snapshot_every the result also holds snapshots of the parameters and the
optimizer's state (RunResult.snapshots; Tracker.snapshot) for the curvature analysis
(optbench.analysis.preconditioners): taken from the run, never changing it.

A NaN or inf loss or gradient ends a run as "diverged" with its history intact; no
exception reaches the caller for a diverging optimizer. With one engine thread the same
settings give the same history bit for bit.
"""


from __future__ import annotations

import time
import warnings
from dataclasses import replace
from typing import Callable

import numpy as np

from optbench.optim import REGISTRY, StepEntry
from optbench.optim.loop import StopRun, run_steps
from optbench.status import RunStatus
from optbench.train.result import RunResult
from optbench.train.settings import TrainSettings
from optbench.train.tracker import Tracker


def train(objective, settings: TrainSettings, progress: Callable[[str], None] | None = None) -> RunResult:
    """Run `settings.optimizer` on `objective` until its budget ends, it converges,
    diverges or stops; never raises for a diverging optimizer (status "diverged")."""
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
    refine = settings.refine != "none"
    if refine and not is_step:
        raise ValueError(f"refine={settings.refine!r} follows an optimizer that takes steps; {settings.optimizer} "
                         "does not")
    if refine:
        tracker.start_phase(settings.budget.scaled(1.0 - settings.refine_fraction))

    def stage():
        if is_step:
            opt = entry.build(**settings.hyper)
            tracker.snapshot(x0, _initial_state(opt, x0) if settings.snapshot_every else None)
            run_steps(tracker, opt, x0, lr, shuffle_rng, perturb_rng)
        else:
            tracker.snapshot(x0, None)  # a driver's state is its own until it returns
            entry.run(tracker, x0, lr, dict(settings.hyper), shuffle_rng, perturb_rng, scipy_info, notes)

    status, message = _guarded(stage, scipy_info)
    tracker.snapshot()  # the end of the optimizer's stage, with its final state
    x_last = _last_point(tracker, is_step)
    if refine and status in _REFINABLE and settings.budget.reason(tracker.configs, tracker.n_train,
                                                                  tracker.train_seconds()) is None:
        x_last, status, message = _refine(tracker, settings, x_last, status, message, notes)

    if status != RunStatus.DIVERGED or np.all(np.isfinite(x_last)):
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
        notes=notes, opt_state=tracker.opt_state, snapshots=tracker.snapshots)


#: How an optimizer's stage may end for a refinement to follow, while the whole budget
#: lasts (the stage's share of it ending, "budget", is the normal case).
_REFINABLE = (RunStatus.CONVERGED, RunStatus.STOPPED, RunStatus.BUDGET)


def _guarded(stage: Callable[[], None], scipy_info: dict) -> tuple[RunStatus, str]:
    """Run an optimizer stage; its (status, message) however it ended. Bad settings
    (ValueError, TypeError) propagate: they are the caller's error."""
    try:
        stage()
        status, message = RunStatus.CONVERGED, scipy_info.get("message", "converged")
    except StopRun as stop:
        status, message = stop.status, stop.message
    except (ValueError, TypeError):
        raise
    except Exception as err:  # an engine or optimizer error ends this run only
        status, message = RunStatus.FAILED, f"{type(err).__name__}: {err}"
    if "status" in scipy_info and status == RunStatus.CONVERGED:
        status = scipy_info.pop("status")
    return status, message


def _initial_state(opt, x0: np.ndarray):
    """The state run_steps starts from, opt.init(x0) (init is pure, so this is the same
    state), for the step-0 snapshot; a warning init gives (Muon's prime N) is given once,
    by run_steps' own call."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return opt.init(x0)


def _last_point(tracker: Tracker, is_step: bool) -> np.ndarray:
    """The optimizer's current point (a schedule-free method's evaluation point)."""
    if is_step and hasattr(tracker, "opt"):
        return tracker.opt.eval_params(tracker.x, tracker.opt_state)
    return tracker.x


def _refine(tracker: Tracker, settings: TrainSettings, x_last: np.ndarray, status: RunStatus, message: str,
            notes: list[str]) -> tuple[np.ndarray, RunStatus, str]:
    """The L-BFGS-B refinement stage for the rest of the budget, from the optimizer's last
    point (its best-validation point when early stopping ended it)."""
    from optbench.optim.quasi_newton import REGISTRY as QN, lbfgs_options, scipy_minimize

    start = tracker.best_x if status == RunStatus.STOPPED and tracker.best_x is not None else x_last
    notes.append(f"{settings.optimizer} stage ended after {tracker.steps} steps, {tracker.configs} configurations "
                 f"({message}); L-BFGS-B refinement from its {'best' if start is not x_last else 'last'} point")
    tracker.start_phase(None)
    if hasattr(tracker, "opt"):
        del tracker.opt  # the refinement's points are L-BFGS-B's own
    tracker.x = start
    tracker.snapshot_stage, tracker.snapshot_optimizer = "refine", "lbfgs"
    tracker.snapshot(start, None)  # before the refinement: L-BFGS-B has no state yet
    info: dict = {}
    status, message = _guarded(
        lambda: scipy_minimize(tracker, start, "L-BFGS-B", lbfgs_options(QN["lbfgs"].check({})), info), info)
    tracker.snapshot()  # after it, with SciPy's hess_inv when minimize returned
    return tracker.x, status, f"L-BFGS-B refinement: {message}"
