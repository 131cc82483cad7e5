"""Dense Gauss-Newton pieces for problems whose Jacobian fits in memory: the Jacobian's
columns, the Levenberg-Marquardt step from its SVD, and Nielsen's damping update.

The Jacobian J = dr/dx of the residual vector r (EngineObjective.residuals) is built one
column per parameter by a forward difference of the predictions (one pass over the
training set each, objective.jvp with r0); columns in which the predictions are linear
come exactly from the objective's linear design instead. With J in hand, every damping
value costs only a matrix-vector product: from J D^-1 = U diag(s) V^T (D the column
scaling), the step of min |r + J p|^2 + lam |D p|^2 is p = -D^-1 V diag(s / (s^2 + lam)) U^T r,
and the model's decrease is exact. This is what makes a rejected step cheap, where the
matrix-free methods of least_squares.py would run CG again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optbench.optim.loop import StopRun, stop_if_spent
from optbench.status import RunStatus


def jacobian_columns(prob, x: np.ndarray, r: np.ndarray, cols, idx: np.ndarray | None = None) -> np.ndarray:
    """Columns `cols` of J = dr/dx at x by forward differences along each coordinate (one
    prediction each, step 1.5e-8 max(1, |x_j|), the square root of the machine epsilon),
    for the rows of training configurations `idx` (None: all; r = residuals(x, idx)),
    charged to the run's budget. StopRun(budget) as soon as the budget is used up (the
    run keeps its last accepted point)."""
    cols = list(cols)
    J = np.empty((r.size, len(cols)))
    z = np.array(x, dtype=np.float64)
    n = prob.n if idx is None else len(idx)
    for i, j in enumerate(cols):
        stop_if_spent(prob.tracker)
        h = 1.5e-8 * max(1.0, abs(x[j]))
        z[j] = x[j] + h
        J[:, i] = (prob.obj.residuals(z, idx) - r) / h
        z[j] = x[j]
        prob.tracker.count(n)
    if not np.all(np.isfinite(J)):
        raise StopRun(RunStatus.DIVERGED, f"non-finite Jacobian after {prob.tracker.steps} iterations")
    return J


def sample_configs(prob, rows_per_column: float, n_columns: int, seed: int, iteration: int) -> np.ndarray | None:
    """The training configurations whose rows an iteration's Jacobian uses: all (None)
    when the set has at most rows_per_column x n_columns residual rows (0: always all),
    else a random sample of configurations with about that many rows, drawn afresh each
    iteration from (seed, iteration) and sorted. A Gauss-Newton step of n_columns
    unknowns is well determined by far fewer rows than a large set has, and a difference
    column costs a prediction of every configuration it covers."""
    if rows_per_column < 0:
        raise ValueError(f"jacobian_rows_per_column must be >= 0, got {rows_per_column!r}")
    total = prob.obj.n_residuals
    want = rows_per_column * n_columns
    if rows_per_column == 0 or want >= total:
        return None
    rng = np.random.default_rng([seed, iteration, 11])
    m = max(1, int(math.ceil(prob.n * want / total)))
    return np.sort(rng.choice(prob.n, size=m, replace=False))


class LMModel:
    """The Levenberg-Marquardt subproblem at one point: min over p of |r + J p|^2 +
    lam |D p|^2, for the Jacobian J (n_rows, n) with column scaling D = `scale`
    (Marquardt's: column norms, never shrinking, as in MINPACK) and the residual r.
    step(lam) gives the step and the decrease of |r|^2 the model predicts. The gradient
    is J^T r of the same J: with the adjoint's exact gradient instead, its difference from
    a finite-difference J (1e-7 relative) lands on J's tiny singular values and the steps
    near a minimum blow up (tests/test_least_squares.py's quadratic convergence fails)."""

    def __init__(self, J: np.ndarray, r: np.ndarray, scale: np.ndarray):
        self.scale = scale
        U, self.s, self.Vt = np.linalg.svd(J / scale, full_matrices=False)
        self.g = U.T @ r  # r's components along J's left singular vectors
        self.gradient = J.T @ r  # half the loss gradient

    def step(self, lam: float) -> tuple[np.ndarray, float]:
        """(p, predicted decrease of the loss |r|^2) for damping lam (relative to the
        scaled J's squared singular values)."""
        s, g = self.s, self.g
        z = -s * g / (s * s + lam)  # V^T D p
        p = (self.Vt.T @ z) / self.scale
        gain = float(g @ g - np.sum((g + s * z) ** 2))
        return p, gain


def column_scale(J: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Column norms of J, never below the previous scaling (MINPACK's rule, so that
    damping does not fade along directions that flattened); zero columns get 1."""
    d = np.linalg.norm(J, axis=0)
    if previous is not None:
        d = np.maximum(d, previous)
    d[d <= 0] = 1.0
    return d


def nielsen(lam: float, nu: float, rho: float) -> tuple[float, float]:
    """Nielsen's damping update (IMM-REP-1999-05): after an accepted step (rho > 0)
    lam *= max(1/3, 1 - (2 rho - 1)^3), nu = 2; after a rejected one lam *= nu, nu *= 2.
    Returns (lam, nu)."""
    if rho > 0:
        return lam * max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), 2.0
    return lam * nu, nu * 2.0


@dataclass
class Point:
    """An iterate: the full parameter vector x, its residual r and loss f = |r|^2."""

    x: np.ndarray
    r: np.ndarray
    f: float


def run_lm(tracker, h: dict, name: str, start: Point, jacobian, trial, info: dict, notes: list) -> None:
    """Levenberg-Marquardt iterations from `start` with dense steps. `jacobian(point,
    iteration, growth)` gives (J, r, sampled): the Jacobian of the residual in the
    variables stepped on and the residual of the model, on all rows or on a sample of
    configurations `growth` times the usual size (sampled: True; J and r then scaled by
    the square root of the set's size over the sample's, so that the model's decrease
    estimates the whole set's). `trial(point, p)` gives
    the new Point after step p, on the whole set. When no damping finds a decrease, a
    sampled model is rebuilt on a sample twice as large (Byrd et al.'s dynamic sample
    size); on all rows, that ends the run as converged. Hyperparameters in h: damping,
    gtol, ftol, maxiter. Every accepted iterate is recorded; StopRun(budget) when the
    budget ends (the last accepted iterate stays in tracker.x)."""
    cur = start
    tracker.x = cur.x
    lam, nu, scale, nit, rejected, growth = float(h["damping"]), 2.0, None, 0, 0, 1
    try:
        while nit < int(h["maxiter"]):
            J, r, sampled = jacobian(cur, nit, growth)
            scale = column_scale(J, scale)
            model = LMModel(J, r, scale)
            del J
            if not sampled and float(np.max(np.abs(2 * model.gradient))) < float(h["gtol"]):
                info.update(status=RunStatus.CONVERGED, success=True, message=f"{name}: gradient below gtol")
                return
            new = _damped_step(tracker, model, cur, trial, lam, nu)
            rejected += new[4]
            if new[0] is None:  # no damping decreased the loss
                if sampled:
                    growth *= 2
                    lam, nu = float(h["damping"]), 2.0
                    continue
                info.update(status=RunStatus.CONVERGED, success=True,
                            message=f"{name}: no decrease found along the Gauss-Newton direction")
                return
            new, gain, lam, nu = new[:4]
            nit += 1
            converged = gain <= float(h["ftol"]) * max(cur.f, 1e-300)
            cur = new
            tracker.x = cur.x
            tracker.record(cur.f, cur.x)
            if converged:
                info.update(status=RunStatus.CONVERGED, success=True,
                            message=f"{name}: predicted decrease below ftol of the loss")
                return
        info.update(status=RunStatus.STOPPED, success=False, message=f"{name}: maxiter reached")
    finally:
        info.update(nit=nit, nfev=None)
        notes.append(f"{name}: {nit} outer iterations with dense steps, {rejected} rejected trial steps, "
                     f"final damping {lam:.3g}" + (f", Jacobian sample grown {growth}x" if growth > 1 else ""))


def _damped_step(tracker, model: LMModel, cur: Point, trial, lam: float, nu: float):
    """One accepted step of the model: (new point, predicted decrease, lam, nu, rejected
    trials), or (None, None, lam, nu, rejected) when the damping passed 1e16 without a
    decrease. A trial costs one residual and the Jacobian a pass per column, so after an
    accepted step a tenth of the damping is tried for as long as it lowers the loss further."""
    rejected = 0
    while True:
        p, gain = model.step(lam)
        new = trial(cur, p)
        rho = (cur.f - new.f) / gain if gain > 0 and math.isfinite(new.f) else -1.0
        if rho > 0:
            while lam > 1e-15 and tracker.budget_reason() is None:
                p2, gain2 = model.step(lam / 10)
                new2 = trial(cur, p2)
                if not new2.f < new.f:
                    break
                lam, new, gain = lam / 10, new2, gain2
                rho = (cur.f - new.f) / gain
            lam, nu = nielsen(lam, nu, rho)
            return new, gain, lam, nu, rejected
        lam, nu = nielsen(lam, nu, rho)
        rejected += 1
        stop_if_spent(tracker)
        if lam > 1e16:
            return None, None, lam, nu, rejected
