"""What every optimizer's iterations need from the training loop, below it so that the
optimizers do not import the loop: `StopRun` (how a run ends from inside an optimizer)
and `stop_if_spent` (the budget check that raises it),
global-norm clipping, and `run_steps`, the step loop of the step-based optimizers.

`run_steps` and the self-driven optimizers step through a tracker (optbench.train.tracker.
Tracker): `settings` (batch_size, clip, schedule, perturbation), `n_train`, `steps`,
`budget_reason()`, `loss_grad(x, batch)` and `record(loss, x)`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optbench.status import RunStatus


class StopRun(Exception):
    """Raised inside a driver to end the run; `status` and `message` say why."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def stop_if_spent(tracker) -> None:
    """Raise StopRun(budget) when the tracker's budget is used up (the run keeps its last
    accepted point, tracker.x)."""
    reason = tracker.budget_reason()
    if reason:
        raise StopRun(RunStatus.BUDGET, reason)


def clip_by_global_norm(g: np.ndarray, clip: float | None) -> np.ndarray:
    """`g` scaled down to Euclidean norm `clip` when it is longer (gradient units); `g`
    itself when `clip` is None or the norm is within it."""
    if clip is None:
        return g
    norm = float(np.linalg.norm(g))
    return g * (clip / norm) if norm > clip else g


def run_steps(tracker, opt, x: np.ndarray, lr: float, shuffle_rng: np.random.Generator,
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
                raise StopRun(RunStatus.BUDGET, reason)
            loss, g = tracker.loss_grad(x, batch)
            step, state = opt.update(clip_by_global_norm(g, s.clip), state, x, s.schedule.lr(lr, tracker.steps))
            x = x + step
            if s.perturb_every and s.perturb_sigma and (tracker.steps + 1) % s.perturb_every == 0:
                x = x + perturb_rng.normal(0.0, s.perturb_sigma, size=x.size)
            if not np.all(np.isfinite(x)):
                raise StopRun(RunStatus.DIVERGED, f"non-finite parameters after step {tracker.steps + 1}")
            tracker.x, tracker.opt_state = x, state
            tracker.record(loss, opt.eval_params(x, state))
