"""Separable least squares: exact linear coefficients, an iterative method for the rest.

The predictions of MTP (species and moment coefficients) and of ETN (species
coefficients and the last core) are linear and homogeneous in the trailing block c of
the parameter vector, so for fixed nonlinear parameters theta the residual vector is
r = D(theta) c - y, and the best c is a linear least-squares solution. It is solved here
from the design D (EngineObjective.linear_design: the engine's kernel for MTP, one
prediction per coefficient for ETN) by a QR factorisation: the normal equations square
D's condition number (1e17 at a random MTP-16 start on the study's AgPd set) and lose
the digits that decide the fit.

- "varpro" (variable projection, Golub and Pereyra 1973) with a Levenberg-Marquardt outer
  step on theta: the reduced residual r(theta) = (I - Q Q^T) y, D = Q R, has Kaufman's
  Jacobian (I - Q Q^T) J_theta (J_theta: the Jacobian in theta at (theta, c*(theta)), by
  forward differences, one prediction per column), and the step solves the damped
  Gauss-Newton problem exactly from its SVD (optbench.optim.dense_gn) with Marquardt's
  column scaling and Nielsen's damping; every trial point gets its own exact c*. The
  Jacobian is taken on a random sample of configurations with about
  `jacobian_rows_per_column` rows per column (the sample's own varpro problem), grown
  twofold whenever no damping finds a decrease, up to every row. Cost per iteration: one
  prediction of the sample per theta coefficient, one design and QR per trial point.
- "varpro_lbfgs": the reduced loss L(theta, c*(theta)) minimised by L-BFGS-B (since
  dL/dc = 0 at c*, the reduced gradient is dL/dtheta there: one design and one loss_grad
  per point). Kept beside varpro for comparison; its line searches fail on MTP
  (`ABNORMAL`) long before a minimum.
- "alternating": solve for c, then L-BFGS-B on theta with c fixed for `inner_iters`
  iterations, and repeat.

All need an Objective with `linear_slice` (the linear block, at the end of the vector) and
`linear_design(x) -> (D, y)` in the units of its residuals. A design is charged as one
pass over the training set.
"""

from __future__ import annotations

import numpy as np

from optbench.optim.base import DriverEntry, Hyper
from optbench.optim.dense_gn import jacobian_columns, run_lm, sample_configs
from optbench.optim.least_squares import ResidualProblem
from optbench.optim.loop import StopRun, stop_if_spent
from optbench.optim.quasi_newton import full_batch_note, scipy_minimize
from optbench.status import RunStatus


class LinearSolution:
    """The best linear block at one point (a dense_gn.Point): the full vector x (theta,
    c*), the residual r, the loss f = |r|^2, and Q, an orthonormal basis of the design's
    columns."""

    def __init__(self, tracker, obj, theta: np.ndarray, k: int, rcond: float):
        x = np.concatenate([theta, np.zeros(obj.n_params - k)])
        D, y = obj.linear_design(x)
        tracker.count(tracker.n_train)
        if not (np.all(np.isfinite(D))):
            raise StopRun(RunStatus.DIVERGED, f"non-finite linear design after {tracker.steps} iterations")
        self.Q, self.R = np.linalg.qr(D)
        qy = self.Q.T @ y
        # R may be singular (unused basis functions): its minimum-norm least-squares solution
        c = np.linalg.lstsq(self.R, qy, rcond=rcond)[0]
        x[k:] = c
        self.x = x
        self.r = D @ c - y
        self.f = float(self.r @ self.r)


def _linear_parts(tracker):
    obj = tracker.objective
    if not hasattr(obj, "linear_design"):
        raise ValueError("separable least squares needs an Objective with linear_design "
                         "(the embedded engine's MTP or ETN); this one has none")
    lin = obj.linear_slice
    if lin.stop != obj.n_params:
        raise ValueError("separable least squares expects the linear parameters at the end of the vector")
    return obj, lin


def _run_varpro(tracker, x0, lr, hyper, shuffle_rng, perturb_rng, info, notes):
    h = REGISTRY["varpro"].check(hyper)
    obj, lin = _linear_parts(tracker)
    full_batch_note(tracker, notes)
    prob = ResidualProblem(tracker)
    k, rcond = lin.start, float(h["rcond"])

    def jacobian(cur: LinearSolution, nit: int, growth: int):
        idx = sample_configs(prob, growth * float(h["jacobian_rows_per_column"]), k, tracker.settings.seed, nit)
        if idx is None:
            Q, r = cur.Q, cur.r
        else:  # the sample's own varpro problem: its design's basis, its rows
            rows = obj.residual_rows(idx)
            Q, r = np.linalg.qr(cur.Q[rows] @ cur.R)[0], cur.r[rows]
        J = jacobian_columns(prob, cur.x, r, range(k), idx)
        J -= Q @ (Q.T @ J)  # Kaufman: the reduced residual's Jacobian
        r = r - Q @ (Q.T @ r)
        if idx is not None:
            J *= np.sqrt(prob.n / idx.size)
            r = r * np.sqrt(prob.n / idx.size)
        return J, r, idx is not None

    run_lm(tracker, h, "varpro", LinearSolution(tracker, obj, x0[:k], k, rcond), jacobian,
           lambda cur, p: LinearSolution(tracker, obj, cur.x[:k] + p, k, rcond), info, notes)


def _run_varpro_lbfgs(tracker, x0, lr, hyper, shuffle_rng, perturb_rng, info, notes):
    h = REGISTRY["varpro_lbfgs"].check(hyper)
    obj, lin = _linear_parts(tracker)
    full_batch_note(tracker, notes)
    k = lin.start
    seen: dict[bytes, np.ndarray] = {}

    def full(theta: np.ndarray) -> np.ndarray:
        key = theta.tobytes()
        if key not in seen:
            if len(seen) > 8:
                seen.clear()
            seen[key] = LinearSolution(tracker, obj, theta, k, float(h["rcond"])).x
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
        stop_if_spent(tracker)
        x = LinearSolution(tracker, obj, x[:k], k, float(h["rcond"])).x
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
    "rcond": Hyper(1e-15, "relative singular-value cut-off of the linear block's least-squares solve"),
    "gtol": Hyper(1e-6, "L-BFGS-B gradient tolerance (radial coefficients)"),
    "ftol": Hyper(1e-12, "relative loss decrease below which to stop"),
    "maxcor": Hyper(10, "L-BFGS memory"),
}

REGISTRY = {
    "varpro": DriverEntry(_run_varpro, {
        "rcond": _SHARED["rcond"],
        "damping": Hyper(1e-3, "first Levenberg-Marquardt damping, relative to the column-scaled Jacobian"),
        "gtol": Hyper(1e-10, "stop when the reduced loss gradient's max-norm is below this"),
        "ftol": Hyper(1e-10, "stop when the predicted decrease is below this fraction of the loss"),
        "maxiter": Hyper(10 ** 9, "outer iteration limit (the budget usually ends a run first)"),
        "jacobian_rows_per_column": Hyper(250.0, "the Jacobian (a prediction per column) uses the rows of a random "
                                                 "sample of configurations, drawn each iteration, with about this "
                                                 "many rows per column (0 or a smaller set: all rows)")}, 0.0,
        "variable projection: exact linear coefficients at every point, Levenberg-Marquardt on the rest"),
    "varpro_lbfgs": DriverEntry(_run_varpro_lbfgs, {**_SHARED, "maxiter": Hyper(10 ** 9, "iteration limit")}, 0.0,
                                "variable projection with an L-BFGS-B outer loop"),
    "alternating": DriverEntry(_run_alternating, {**_SHARED, "inner_iters": Hyper(20, "L-BFGS-B iterations per round")},
                               0.0, "solve the linear coefficients, L-BFGS-B the rest, repeat"),
}
