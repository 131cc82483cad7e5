"""SciPy's quasi-Newton methods (BFGS, L-BFGS-B) and the Adam -> L-BFGS-B hybrid.

SciPy calls fun and jac separately; `CachedLossGrad` evaluates the Objective once per
point and serves both from the cache. Every accepted iterate is recorded (loss, configs,
seconds) through the training Tracker, which also ends the run when the budget is used
up — inside a line search if need be; the result is then the last accepted iterate.
Always full batch: the line searches assume a deterministic function.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from scipy.optimize import minimize

from optbench.optim.base import DriverEntry, Hyper
from optbench.optim.first_order import REGISTRY as FIRST_ORDER
from optbench.optim.loop import StopRun, run_steps, stop_if_spent
from optbench.status import RunStatus

DENSE_BFGS_WARN = 2000


class CachedLossGrad:
    """fun(x) and jac(x) for SciPy from one Objective evaluation per distinct x
    (through `loss_grad(x) -> (loss, grad)`); counts distinct evaluations in `nfev`."""

    def __init__(self, loss_grad):
        self._loss_grad = loss_grad
        self._x: np.ndarray | None = None
        self._value: tuple[float, np.ndarray] | None = None
        self.nfev = 0

    @property
    def last_x(self) -> np.ndarray | None:
        """The last point evaluated (None before the first)."""
        return self._x

    @property
    def last_grad(self) -> np.ndarray | None:
        """The gradient at last_x."""
        return None if self._value is None else self._value[1]

    def _eval(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        if self._x is None or not np.array_equal(x, self._x):
            self._value = self._loss_grad(np.array(x, dtype=np.float64))
            self._x = np.array(x, dtype=np.float64)
            self.nfev += 1
        return self._value

    def fun(self, x: np.ndarray) -> float:
        """Mean training loss at x."""
        return self._eval(x)[0]

    def jac(self, x: np.ndarray) -> np.ndarray:
        """Its gradient at x."""
        return self._eval(x)[1]


def _pairs_state(accepted: list[tuple[np.ndarray, np.ndarray]]) -> dict | None:
    """{"lbfgs_pairs": {"s", "y"}}: the correction pairs (oldest first) of successive
    accepted points with positive curvature s'y (those L-BFGS-B keeps), or None."""
    pairs = [(x1 - x0, g1 - g0) for (x0, g0), (x1, g1) in zip(accepted, accepted[1:])]
    pairs = [(s, y) for s, y in pairs if float(s @ y) > np.finfo(float).eps * float(y @ y)]
    if not pairs:
        return None
    return {"lbfgs_pairs": {"s": np.array([p[0] for p in pairs]), "y": np.array([p[1] for p in pairs])}}


def scipy_minimize(tracker, x0: np.ndarray, method: str, options: dict, info: dict,
                   loss_grad=None, x_of=None) -> np.ndarray:
    """Run scipy.optimize.minimize(method) from x0 under the Tracker's budget; records
    nit, nfev, success, message and status ("converged" or "stopped") in `info` and
    returns the final point. `loss_grad` replaces the Tracker's full-batch loss and
    `x_of(z)` maps SciPy's variables to the full parameter vector (separable methods).
    Raises the Tracker's StopRun when the budget ends or the loss diverges; the last
    accepted iterate is then in tracker.x. When minimize returns, tracker.opt_state is
    {"hess_inv": res.hess_inv} (with L-BFGS-B also "iterates", its last accepted points,
    oldest first); while it runs None; when StopRun ends an L-BFGS-B run,
    {"lbfgs_pairs": {"s", "y"}}, the correction pairs of its last accepted points."""

    x_of = x_of or (lambda z: z)
    base = loss_grad or (lambda z: tracker.loss_grad(z, None))

    # The same points with their gradients (the cache holds the accepted point's: L-BFGS-B
    # accepts the last point its line search evaluated), for the correction pairs of a run
    # that the budget ends inside a line search, when SciPy hands over no matrix.
    accepted = deque(maxlen=int(options.get("maxcor", 10)) + 1)

    def guarded(z):
        stop_if_spent(tracker)
        value = base(z)
        if method == "L-BFGS-B" and not accepted and np.array_equal(z, x0):
            accepted.append((np.array(z, dtype=np.float64), np.array(value[1], dtype=np.float64)))  # the start
        return value

    cache = CachedLossGrad(guarded)
    nit = 0
    # The last accepted points (SciPy's variables): they put the correction pairs of
    # L-BFGS-B's circular workspace in order for the curvature analysis (maxcor + 2
    # points span the maxcor pairs it keeps).
    iterates = deque([np.array(x0, dtype=np.float64)], maxlen=int(options.get("maxcor", 10)) + 2)
    tracker.opt_state = None  # SciPy keeps its quasi-Newton matrix to itself until minimize returns

    def on_iteration(intermediate_result):
        nonlocal nit
        nit += 1
        z = np.array(intermediate_result.x)
        if method == "L-BFGS-B":
            iterates.append(z)
            if cache.last_x is not None and np.array_equal(cache.last_x, z):
                accepted.append((z, np.array(cache.last_grad, dtype=np.float64)))
        tracker.x = x_of(z)
        tracker.record(float(intermediate_result.fun), tracker.x)

    try:
        res = minimize(cache.fun, x0, jac=cache.jac, method=method, callback=on_iteration, options=options)
    except StopRun:
        info.update(nit=info.get("nit", 0) + nit, nfev=info.get("nfev", 0) + cache.nfev, success=False)
        if method == "L-BFGS-B" and loss_grad is None:
            tracker.opt_state = _pairs_state(list(accepted))
        raise
    # The inverse Hessian approximation (BFGS: a dense array; L-BFGS-B: an
    # LbfgsInvHessProduct) for optbench.analysis.preconditioners; the run does not use it.
    tracker.opt_state = {"hess_inv": res.hess_inv}
    if method == "L-BFGS-B":
        tracker.opt_state["iterates"] = np.array(iterates)
    info.update(nit=info.get("nit", 0) + res.nit, nfev=info.get("nfev", 0) + cache.nfev,
                success=bool(res.success), message=f"{method}: {res.message}",
                status=RunStatus.CONVERGED if res.success else RunStatus.STOPPED)
    tracker.x = x_of(np.array(res.x))
    return np.array(res.x)


def full_batch_note(tracker, notes: list[str]) -> None:
    """Say in the run's notes that a batch size was set but this method is full batch."""
    bs = tracker.settings.batch_size
    if bs is not None and bs < tracker.n_train:
        notes.append(f"full batch: batch_size={bs} does not apply to this method")


def lbfgs_options(h: dict) -> dict:
    """SciPy's L-BFGS-B options from checked lbfgs hyperparameters."""
    return _options("L-BFGS-B", h)


def _options(method: str, h: dict) -> dict:
    opts = {"maxiter": int(h["maxiter"]), "gtol": float(h["gtol"])}
    if method == "L-BFGS-B":
        opts.update(ftol=float(h["ftol"]), maxcor=int(h["maxcor"]), maxfun=10 ** 9)
    return opts


def _run_bfgs(tracker, x0, lr, hyper, shuffle_rng, perturb_rng, info, notes):
    h = REGISTRY["bfgs"].check(hyper)
    full_batch_note(tracker, notes)
    notes.append(f"BFGS keeps a dense {x0.size} x {x0.size} inverse Hessian: O(N^2) memory and time per "
                 "iteration" + (", slow at this size; L-BFGS-B scales to many more parameters"
                                if x0.size > DENSE_BFGS_WARN else ""))
    scipy_minimize(tracker, x0, "BFGS", _options("BFGS", h), info)


def _run_lbfgs(tracker, x0, lr, hyper, shuffle_rng, perturb_rng, info, notes):
    h = REGISTRY["lbfgs"].check(hyper)
    full_batch_note(tracker, notes)
    scipy_minimize(tracker, x0, "L-BFGS-B", _options("L-BFGS-B", h), info)


def _run_adam_lbfgs(tracker, x0, lr, hyper, shuffle_rng, perturb_rng, info, notes):
    """Adam (mini-batch as set) for `adam_fraction` of every budget limit, then
    L-BFGS-B (full batch) from Adam's point for the rest."""

    h = REGISTRY["adam_lbfgs"].check(hyper)
    frac = float(h["adam_fraction"])
    if not 0 < frac < 1:
        raise ValueError(f"adam_fraction must be in (0, 1), got {frac}")
    adam = FIRST_ORDER["adam"].build()
    tracker.start_phase(tracker.settings.budget.scaled(frac))
    try:
        run_steps(tracker, adam, x0, lr, shuffle_rng, perturb_rng)
    except StopRun as stop:
        if stop.status != RunStatus.BUDGET or tracker.settings.budget.reason(
                tracker.configs, tracker.n_train, tracker.train_seconds()):
            raise
    tracker.start_phase(None)
    notes.append(f"switched from Adam to L-BFGS-B after {tracker.steps} steps, {tracker.configs} configurations")
    scipy_minimize(tracker, tracker.x, "L-BFGS-B", _options("L-BFGS-B", h), info)


_COMMON = {
    "gtol": Hyper(1e-6, "stop when the gradient's max-norm is below this"),
    "maxiter": Hyper(10 ** 9, "iteration limit (the budget usually ends a run first)"),
}
_LBFGS = {
    **_COMMON,
    "ftol": Hyper(1e-12, "stop when the relative loss decrease is below this"),
    "maxcor": Hyper(10, "number of correction pairs kept (L-BFGS memory)"),
}

REGISTRY = {
    "bfgs": DriverEntry(_run_bfgs, dict(_COMMON), 0.0, "SciPy BFGS, full batch (dense inverse Hessian)"),
    "lbfgs": DriverEntry(_run_lbfgs, dict(_LBFGS), 0.0, "SciPy L-BFGS-B, full batch"),
    "adam_lbfgs": DriverEntry(
        _run_adam_lbfgs,
        {**_LBFGS, "adam_fraction": Hyper(0.3, "share of each budget limit spent in Adam")},
        1e-2, "Adam (lr, batch size as set) for a share of the budget, then L-BFGS-B", uses_lr=True),
}
