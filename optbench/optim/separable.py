"""Separable least squares for MTP: exact linear coefficients, quasi-Newton for the rest.

MTP's energies, forces and stresses are linear in the species and moment coefficients c,
so for fixed radial coefficients theta the loss is a quadratic c^T A c - 2 b^T c + r0
whose minimiser solves A c = b (the engine returns A, b, r0: mlipc_linear_system).

- "varpro" (variable projection, Golub and Pereyra 1973): minimise the reduced loss
  L(theta, c*(theta)) over theta alone with L-BFGS-B. Since dL/dc = 0 at c*, the reduced
  gradient is dL/dtheta at (theta, c*(theta)): one linear solve and one loss_grad per point.
- "alternating": solve for c, then L-BFGS-B on theta with c fixed for `inner_iters`
  iterations, and repeat.

Both need an Objective with `linear_slice` (the linear block, at the end of the vector) and
`linear_system(x, batch=None) -> (A, b, r0)` in the units of its mean loss. A linear system
costs about as much as several loss_grad calls; budgets in configurations charge it as
`system_cost` evaluations of the whole set, so wall time is the fairer budget here.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from optbench.optim.base import DriverEntry, Hyper
from optbench.optim.loop import StopRun
from optbench.optim.quasi_newton import full_batch_note, scipy_minimize
from optbench.status import RunStatus


def solve_linear(A: np.ndarray, b: np.ndarray, ridge: float) -> np.ndarray:
    """Minimiser of c^T A c - 2 b^T c with a relative ridge (ridge * mean diag(A)) added
    to A, so that unused basis functions (zero rows) get zero coefficients."""
    scale = float(np.mean(np.diag(A))) if A.size else 0.0
    reg = ridge * (scale if scale > 0 else 1.0)
    M = A + reg * np.eye(len(b))
    try:
        return scipy.linalg.solve(M, b, assume_a="pos")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        return np.linalg.lstsq(M, b, rcond=None)[0]


def _linear_parts(tracker):
    obj = tracker.objective
    if not hasattr(obj, "linear_system"):
        raise ValueError("separable least squares needs an Objective with linear_system "
                         "(the embedded engine's MTP); this one has none")
    lin = obj.linear_slice
    if lin.stop != obj.n_params:
        raise ValueError("separable least squares expects the linear parameters at the end of the vector")
    return obj, lin


def _system(tracker, obj, x, cost: float):
    A, b, r0 = obj.linear_system(x)
    tracker.count(int(round(cost * tracker.n_train)))
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
        raise StopRun(RunStatus.DIVERGED, f"non-finite linear system after {tracker.steps} iterations")
    return A, b


def _run_varpro(tracker, x0, lr, hyper, shuffle_rng, perturb_rng, info, notes):
    h = REGISTRY["varpro"].check(hyper)
    obj, lin = _linear_parts(tracker)
    full_batch_note(tracker, notes)
    k = lin.start
    seen: dict[bytes, np.ndarray] = {}

    def full(theta: np.ndarray) -> np.ndarray:
        key = theta.tobytes()
        if key not in seen:
            x = np.concatenate([theta, x0[k:]])
            A, b = _system(tracker, obj, x, h["system_cost"])
            x[k:] = solve_linear(A, b, h["ridge"])
            if len(seen) > 8:
                seen.clear()
            seen[key] = x
        return seen[key]

    def reduced(theta):
        loss, g = tracker.loss_grad(full(theta), None)
        return loss, g[:k]

    opts = {"maxiter": int(h["maxiter"]), "gtol": float(h["gtol"]), "ftol": float(h["ftol"]),
            "maxcor": int(h["maxcor"]), "maxfun": 10 ** 9}
    scipy_minimize(tracker, x0[:k].copy(), "L-BFGS-B", opts, info, loss_grad=reduced, x_of=full)


def _run_alternating(tracker, x0, lr, hyper, shuffle_rng, perturb_rng, info, notes):

    h = REGISTRY["alternating"].check(hyper)
    obj, lin = _linear_parts(tracker)
    full_batch_note(tracker, notes)
    k = lin.start
    x = x0.copy()
    previous = np.inf
    rounds = 0
    while True:
        reason = tracker.budget_reason()
        if reason:
            raise StopRun(RunStatus.BUDGET, reason)
        A, b = _system(tracker, obj, x, h["system_cost"])
        x = x.copy()
        x[k:] = solve_linear(A, b, h["ridge"])
        tracker.x = x
        c = x[k:].copy()

        def radial_only(theta, c=c):
            loss, g = tracker.loss_grad(np.concatenate([theta, c]), None)
            return loss, g[:k]

        opts = {"maxiter": int(h["inner_iters"]), "gtol": float(h["gtol"]), "ftol": float(h["ftol"]),
                "maxcor": int(h["maxcor"]), "maxfun": 10 ** 9}
        round_info: dict = {}
        theta = scipy_minimize(tracker, x[:k].copy(), "L-BFGS-B", opts, round_info, loss_grad=radial_only,
                               x_of=lambda t, c=c: np.concatenate([t, c]))
        x = np.concatenate([theta, c])
        rounds += 1
        info.update(nit=info.get("nit", 0) + round_info["nit"], nfev=info.get("nfev", 0) + round_info["nfev"])
        loss = tracker.history.loss[-1] if tracker.history.loss else np.inf
        if round_info["nit"] == 0 or previous - loss <= float(h["ftol"]) * max(abs(loss), 1e-300):
            info.update(success=True, status=RunStatus.CONVERGED,
                        message=f"alternating: no further decrease after {rounds} rounds")
            return
        previous = loss


_SHARED = {
    "ridge": Hyper(1e-10, "ridge added to A, relative to its mean diagonal"),
    "gtol": Hyper(1e-6, "L-BFGS-B gradient tolerance (radial coefficients)"),
    "ftol": Hyper(1e-12, "relative loss decrease below which to stop"),
    "maxcor": Hyper(10, "L-BFGS memory"),
    "system_cost": Hyper(1.0, "configurations charged per linear system, in passes over the set"),
}

REGISTRY = {
    "varpro": DriverEntry(_run_varpro, {**_SHARED, "maxiter": Hyper(10 ** 9, "iteration limit")}, 0.0,
                          "variable projection: exact linear coefficients at every point, L-BFGS-B on radial ones"),
    "alternating": DriverEntry(_run_alternating, {**_SHARED, "inner_iters": Hyper(20, "L-BFGS-B iterations per round")},
                               0.0, "solve the linear coefficients, L-BFGS-B the radial ones, repeat"),
}
