"""Gauss-Newton methods for the whole potential: the loss is |r(x)|^2 for the weighted
residual vector r of energies, forces and stresses (EngineObjective.residuals), and these
methods step on its structure instead of on the gradient alone.

- "lm" (Levenberg-Marquardt): the step solves (J^T J + lam D) p = -J^T r, D = diag(J^T J)
  (Marquardt's scaling, kept from shrinking as in MINPACK); the damping lam follows
  Nielsen's update (H. B. Nielsen, "Damping parameter in Marquardt's method",
  IMM-REP-1999-05): after a step with gain ratio rho > 0, lam *= max(1/3, 1 - (2 rho - 1)^3)
  and nu = 2; after a rejected step lam *= nu, nu *= 2. Two solvers (`solver`; "auto"
  takes the dense one when the Jacobian fits `dense_mib` and at most `dense_columns`
  parameters lie outside the linear block: MTP-16's 128 radial coefficients):
  * dense: the whole Jacobian each iteration (the linear block's columns exactly from the
    objective's design, the others by forward differences, one prediction each) and exact
    steps from its SVD for every trial damping (optbench.optim.dense_gn);
  * cg: matrix-free conjugate gradients preconditioned with D (J v from the objective's
    jvp, J^T u from its vjp, one adjoint pass of the engine), D estimated from
    `scale_probes` products J^T z with random signs z (Hutchinson), at the start and
    every `rescale_every` iterations.
- "gn_tr" (trust-region Gauss-Newton): the step minimises the Gauss-Newton model
  |r + J p|^2 within |D^(1/2) p| <= Delta by Steihaug-Toint CG (preconditioned with D);
  Delta grows (x2) after a step with rho > 3/4 that reached the boundary and shrinks
  (x1/4) when rho < 1/4 (Nocedal and Wright, Algorithm 4.1).

The inner CG (lm's cg solver, gn_tr) stops at a relative residual `cg_tol` of the gradient's norm (a truncated
Newton rule, Dembo-Eisenstat-Steihaug), after `cg_iters` iterations, or (gn_tr) at the
trust-region boundary or on negative curvature. Costs, in passes over the training set
charged to the budget: one for r, one for J^T r, and per CG iteration one J^T u and two
predictions for J v.
"""

from __future__ import annotations

import math

import numpy as np

from optbench.optim.base import DriverEntry, Hyper
from optbench.optim.dense_gn import Point, jacobian_columns, run_lm, sample_configs
from optbench.optim.loop import StopRun, stop_if_spent
from optbench.optim.quasi_newton import full_batch_note
from optbench.status import RunStatus


class ResidualProblem:
    """The objective's residual structure at the current point, every product charged to
    the run's budget (a pass over the training set each; J v costs two)."""

    def __init__(self, tracker):
        obj = tracker.objective
        if getattr(obj, "uses_mlp_only", False) or not all(hasattr(obj, m) for m in ("residuals", "jvp", "vjp")):
            raise ValueError("Gauss-Newton methods need an Objective with residuals, jvp and vjp (the embedded "
                             "engine or another mlipc.h library with mlipc_jt_product)")
        self.tracker, self.obj, self.n = tracker, obj, tracker.n_train

    def charge(self, passes: int, strict: bool = True) -> None:
        """Charge `passes` over the training set; with `strict`, end the run first when the
        budget is used up (inside a step the products are charged without ending it, and
        CG stops on `room` instead, so that a step in progress is completed)."""
        if strict:
            stop_if_spent(self.tracker)
        self.tracker.count(passes * self.n)

    def room(self, passes: int) -> bool:
        """Whether `passes` more passes fit in the budget."""
        return self.tracker.budget_reason(extra=passes * self.n) is None

    def residuals(self, x, strict: bool = True):
        self.charge(1, strict)
        r = self.obj.residuals(x)
        if not np.all(np.isfinite(r)):
            raise StopRun(RunStatus.DIVERGED, f"non-finite residuals after {self.tracker.steps} iterations")
        return r

    def jtu(self, x, u, strict: bool = True):
        self.charge(1, strict)
        return self.obj.vjp(x, u)

    def jtj(self, x, v):
        """J^T J v (within a step: charged, never ending the run)."""
        self.charge(2, strict=False)
        jv = self.obj.jvp(x, v)
        return self.jtu(x, jv, strict=False)


def _jtj_diagonal(prob: ResidualProblem, x, r_size: int, probes: int, seed: int) -> np.ndarray:
    """An estimate of diag(J^T J), the squared norms of J's columns: the mean of (J^T z)^2
    over `probes` random sign vectors z (E[(J^T z)_i^2] = (J^T J)_ii; one adjoint pass
    each, where the exact diagonal would take two predictions per parameter). Entries
    that come out 0 (unused basis functions) get the mean, so that scaling stays finite."""
    rng = np.random.default_rng([seed, 7])
    d = np.zeros(x.size)
    for _ in range(probes):
        z = rng.choice([-1.0, 1.0], size=r_size)
        d += prob.jtu(x, z) ** 2
    d /= probes
    positive = d[d > 0]
    d[d <= 0] = positive.mean() if positive.size else 1.0
    return d


def _cg(apply, g, tol: float, iters: int, precond: np.ndarray, radius: float | None = None, room=lambda: True):
    """Approximately solve apply(p) = -g from p = 0 by conjugate gradients preconditioned
    with the diagonal `precond`; with a `radius`, Steihaug-Toint in the norm |D^(1/2) p|
    of that preconditioner: stop at the boundary or on negative curvature. Returns (p,
    whether the boundary was reached). Stops when |residual| <= tol |g|."""
    p = np.zeros_like(g)
    res = -g.copy()
    z = res / precond
    d = z.copy()
    rz = float(res @ z)
    stop = tol * math.sqrt(float(g @ g))
    scale = np.sqrt(precond)
    for _ in range(iters):
        if math.sqrt(float(res @ res)) <= stop or not room():
            break
        Ad = apply(d)
        dAd = float(d @ Ad)
        if radius is not None and dAd <= 0:
            return p + _to_boundary(scale * p, scale * d, radius) * d, True
        alpha = rz / dAd
        p_next = p + alpha * d
        if radius is not None and np.linalg.norm(scale * p_next) >= radius:
            return p + _to_boundary(scale * p, scale * d, radius) * d, True
        p = p_next
        res = res - alpha * Ad
        z = res / precond
        rz_next = float(res @ z)
        d = z + (rz_next / rz) * d
        rz = rz_next
    return p, False


def _to_boundary(p, d, radius: float) -> float:
    """tau >= 0 with |p + tau d| = radius."""
    a, b, c = float(d @ d), 2 * float(p @ d), float(p @ p) - radius ** 2
    return (-b + math.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a)


def _dense_fits(prob: ResidualProblem, h: dict, name: str) -> bool:
    """Whether to build the Jacobian densely: hyperparameter `solver` ("dense", "cg", or
    "auto": when it takes at most `dense_mib` MiB and has at most `dense_columns` columns
    outside the linear block, each a prediction per iteration; on a 145-parameter ETN
    (134 such columns) 400 passes over the set gave dense lm 2 iterations and a loss of
    0.46, matrix-free lm 28 iterations and 0.022)."""
    solver = h["solver"]
    if solver not in ("auto", "dense", "cg"):
        raise ValueError(f"{name}: solver must be 'auto', 'dense' or 'cg', got {solver!r}")
    if solver != "auto":
        return solver == "dense"
    obj, lin = prob.obj, _linear_block(prob.obj)
    return (obj.n_residuals * obj.n_params * 8 <= float(h["dense_mib"]) * 2 ** 20
            and obj.n_params - (lin.stop - lin.start) <= int(h["dense_columns"]))


def _linear_block(obj) -> slice:
    """The objective's linear block (linear_slice), or an empty slice at the end of the
    vector when it has none."""
    try:
        return obj.linear_slice
    except (AttributeError, ValueError):
        return slice(obj.n_params, obj.n_params)


def _run_dense(prob: ResidualProblem, x0, h: dict, info: dict, notes: list) -> None:
    """lm with the whole Jacobian in memory: columns of the linear block (where the
    objective has one) exactly from its design, the others by forward differences, and
    exact damped steps from its SVD (optbench.optim.dense_gn)."""
    obj, tracker = prob.obj, prob.tracker
    lin = _linear_block(obj)

    rest = [j for j in range(obj.n_params) if not lin.start <= j < lin.stop]

    def jacobian(cur: Point, nit: int, growth: int):
        idx = sample_configs(prob, growth * float(h["jacobian_rows_per_column"]), obj.n_params, tracker.settings.seed, nit)
        rows = slice(None) if idx is None else obj.residual_rows(idx)
        r = cur.r[rows]
        J = np.empty((r.size, obj.n_params))
        if lin.start < lin.stop:
            J[:, lin] = obj.linear_design(cur.x)[0][rows]
            tracker.count(tracker.n_train)
        J[:, rest] = jacobian_columns(prob, cur.x, r, rest, idx)
        if idx is not None:
            J *= np.sqrt(prob.n / idx.size)
            r = r * np.sqrt(prob.n / idx.size)
        return J, r, idx is not None

    def trial(cur: Point, p: np.ndarray) -> Point:
        x = cur.x + p
        r = prob.residuals(x, strict=False)
        return Point(x, r, float(r @ r))

    x = np.array(x0, dtype=np.float64)
    r = prob.residuals(x)
    run_lm(tracker, h, "lm", Point(x, r, float(r @ r)), jacobian, trial, info, notes)


def _run(tracker, x0, hyper: dict, info: dict, notes: list, trust_region: bool) -> None:
    name = "gn_tr" if trust_region else "lm"
    h = REGISTRY[name].check(hyper)
    full_batch_note(tracker, notes)
    prob = ResidualProblem(tracker)
    if not trust_region and _dense_fits(prob, h, name):
        _run_dense(prob, x0, h, info, notes)
        return
    x = np.array(x0, dtype=np.float64)
    r = prob.residuals(x)
    f = float(r @ r)
    tracker.x = x
    lam = radius = None
    diag = _jtj_diagonal(prob, x, r.size, int(h["scale_probes"]), tracker.settings.seed)  # scaling, preconditioner
    if trust_region:
        radius = float(h["radius"]) * math.sqrt(float(diag @ (1.0 + x * x)))
    else:
        lam = float(h["damping"])
    try:
        _iterate(prob, h, name, trust_region, x, r, f, diag, lam, radius, info, state := {"nit": 0})
    finally:
        info.update(nit=state["nit"], nfev=None)
        notes.append(f"{name}: {state['nit']} outer iterations" + (
            f", final damping {state['lam']:.3g}" if "lam" in state and state["lam"] is not None else
            f", final radius {state.get('radius', radius):.3g}" if trust_region else ""))


def _iterate(prob, h, name, trust_region, x, r, f, diag, lam, radius, info, state) -> None:
    """The outer iterations of _run; `state` keeps nit, lam and radius for the run's record
    whichever way they end."""
    tracker = prob.tracker
    probes, seed = int(h["scale_probes"]), tracker.settings.seed
    nu, nit = 2.0, 0
    while nit < int(h["maxiter"]):
        if nit and int(h["rescale_every"]) and nit % int(h["rescale_every"]) == 0:
            diag = np.maximum(diag, _jtj_diagonal(prob, x, r.size, probes, seed + nit))  # never shrinks (More)
        g = prob.jtu(x, r)
        if float(np.max(np.abs(2 * g))) < float(h["gtol"]):
            info.update(status=RunStatus.CONVERGED, success=True, message=f"{name}: gradient below gtol")
            break
        if trust_region:
            p, boundary = _cg(lambda v: prob.jtj(x, v), g, float(h["cg_tol"]), int(h["cg_iters"]), diag, radius,
                              room=lambda: prob.room(6))
        else:
            p, boundary = _cg(lambda v: prob.jtj(x, v) + lam * diag * v, g, float(h["cg_tol"]), int(h["cg_iters"]),
                              (1.0 + lam) * diag, room=lambda: prob.room(6))
        if not np.any(p):  # no room for even one CG iteration: the budget ends the run here
            raise StopRun(RunStatus.BUDGET, tracker.budget_reason(extra=6 * prob.n) or "budget reached")
        jp = prob.obj.jvp(x, p)
        prob.charge(2, strict=False)
        model_gain = -(2 * float(g @ p) + float(jp @ jp))  # f - |r + J p|^2
        x_new = x + p
        r_new = prob.residuals(x_new, strict=False)
        f_new = float(r_new @ r_new)
        rho = (f - f_new) / model_gain if model_gain > 0 else -1.0
        nit += 1
        state.update(nit=nit, lam=lam, radius=radius)
        if rho > 0:
            x, r, f = x_new, r_new, f_new
            tracker.x = x
            tracker.record(f, x)
            if not trust_region:
                lam *= max(1.0 / 3.0, 1.0 - (2 * rho - 1) ** 3)
                nu = 2.0
        elif not trust_region:
            lam *= nu
            nu *= 2.0
        if trust_region:
            if rho < 0.25:
                radius *= 0.25
            elif rho > 0.75 and boundary:
                radius *= 2.0
        state.update(lam=lam, radius=radius)
        if rho > 0 and model_gain <= float(h["ftol"]) * max(f, 1e-300):
            info.update(status=RunStatus.CONVERGED, success=True,
                        message=f"{name}: predicted decrease below ftol of the loss")
            break
    else:
        info.update(status=RunStatus.STOPPED, success=False, message=f"{name}: maxiter reached")


def _run_lm(tracker, x0, lr, hyper, shuffle_rng, perturb_rng, info, notes):
    _run(tracker, x0, hyper, info, notes, trust_region=False)


def _run_gn_tr(tracker, x0, lr, hyper, shuffle_rng, perturb_rng, info, notes):
    _run(tracker, x0, hyper, info, notes, trust_region=True)


_SHARED = {
    "cg_tol": Hyper(0.1, "inner CG stops at this residual relative to |J^T r|"),
    "cg_iters": Hyper(50, "inner CG iteration limit"),
    "gtol": Hyper(1e-8, "stop when the loss gradient's max-norm is below this"),
    "ftol": Hyper(1e-14, "stop when the predicted decrease is below this fraction of the loss"),
    "maxiter": Hyper(10 ** 9, "outer iteration limit (the budget usually ends a run first)"),
    "rescale_every": Hyper(10, "recompute diag(J^T J), the scaling, every this many iterations (0: never)"),
    "scale_probes": Hyper(4, "random sign vectors for the estimate of diag(J^T J) (one adjoint pass each)"),
}

REGISTRY = {
    "lm": DriverEntry(_run_lm, {**_SHARED, "damping": Hyper(1e-3, "first damping lam of (J^T J + lam D) p = "
                                                                  "-J^T r, D = diag(J^T J)"),
                                "solver": Hyper("auto", "'dense' (the whole Jacobian, exact steps), 'cg' "
                                                        "(matrix-free), 'auto': dense when it fits dense_mib"),
                                "dense_mib": Hyper(2048.0, "largest dense Jacobian for solver 'auto', MiB"),
                                "dense_columns": Hyper(128, "most difference columns (parameters outside the "
                                                            "linear block) for solver 'auto' to go dense"),
                                "jacobian_rows_per_column": Hyper(250.0, "dense solver: rows per column of the "
                                                                         "Jacobian's sample of configurations (see "
                                                                         "varpro; 0: all rows)")},
                      0.0, "Levenberg-Marquardt on the residuals, matrix-free CG inner solves (Nielsen damping)"),
    "gn_tr": DriverEntry(_run_gn_tr, {**_SHARED, "radius": Hyper(0.1, "first trust radius, relative to 1 + |x|")},
                         0.0, "trust-region Gauss-Newton, Steihaug-Toint CG inner solves"),
}
