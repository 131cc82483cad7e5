"""Curvature of an Objective's mean loss: Hessian-vector products, the dense Hessian, and
the Gauss-Newton matrix of the least-squares structure.

Units: the loss is in the objective's units (weighted squared errors, protocol.py),
x in parameter units, so H v and G v are in loss units per parameter unit squared times
the units of v, and H, G in loss units per parameter unit squared.

Hessian-vector products come from the objective's own exact `hvp` method when it has one
(TorchObjective: double backward), else from a central difference of gradients along v
(hessian_vector_product's docstring gives the step and why). The Gauss-Newton matrix uses
the residual hooks of a least-squares objective (EngineObjective: residuals, jvp = J v,
vjp = J^T u); its mean loss is

    loss(x) = c |r(x)|^2,   c = LOSS_PER_SQUARED_RESIDUAL = 1,

since EngineObjective's residuals already carry sqrt(w / n_configs) (the 1/n of the mean
over configurations is inside r; tests/test_least_squares.py checks |r|^2 = loss and
2 J^T r = gradient). Then gradient = 2c J^T r, Hessian = 2c (J^T J + sum_i r_i Hess(r_i)),
and the Gauss-Newton matrix G = 2c J^T J equals the Hessian wherever r = 0.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

#: c in loss = c |r|^2 for EngineObjective (and the test objectives that follow its
#: convention): the residuals are scaled by sqrt(weight / n_configs).
LOSS_PER_SQUARED_RESIDUAL = 1.0

#: Relative accuracy assumed for a gradient evaluation: float64 rounding. The engine sums
#: thousands of float64 terms, so its true accuracy is somewhat worse (the step study's
#: floor: ~2e-10 relative at the chosen step, tests/test_curvature.py).
GRADIENT_EPS = float(np.finfo(np.float64).eps)


def fd_step(x: np.ndarray, v: np.ndarray, eps: float = GRADIENT_EPS) -> float:
    """The central-difference step h (dimensionless multiple of v) used for H v:
    h = eps^(1/3) (1 + |x|) / |v|, so that the displacement h|v| is eps^(1/3) ~ 6e-6
    relative to the size of x (absolute near x = 0). See hessian_vector_product."""
    nv = float(np.linalg.norm(v))
    if nv == 0.0:
        raise ValueError("v is zero: no direction to differentiate along")
    return eps ** (1.0 / 3.0) * (1.0 + float(np.linalg.norm(x))) / nv


@contextmanager
def preserved_parameters(objective):
    """Restore the objective's internal parameters on exit. EngineObjective writes every
    x it evaluates into its potential (and TorchObjective into its torch module); its own
    methods always set x first, so this matters only to code that reads the potential or
    model directly after a curvature computation (saving it, a calculator on it)."""
    pot = getattr(objective, "potential", None)
    if pot is not None and hasattr(pot, "get_params") and hasattr(pot, "set_params"):
        saved, restore = pot.get_params(), pot.set_params
    elif hasattr(objective, "_get") and hasattr(objective, "_set"):  # TorchObjective
        saved, restore = objective._get(), objective._set
    else:
        saved = restore = None
    try:
        yield
    finally:
        if restore is not None:
            restore(saved)


def _as_vector(objective, a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.shape != (objective.n_params,):
        raise ValueError(f"{name} has shape {a.shape}, expected ({objective.n_params},)")
    return a


def _fd_hvp(objective, x, v, batch, step):
    """(H v, h) by the central difference of gradients; 2 gradient evaluations."""
    h = fd_step(x, v) if step is None else float(step)
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"step must be positive and finite, got {step}")
    gp = objective.loss_grad(x + h * v, batch)[1]
    gm = objective.loss_grad(x - h * v, batch)[1]
    return (gp - gm) / (2.0 * h), h


def hessian_vector_product(objective, x: np.ndarray, v: np.ndarray, batch: np.ndarray | None = None, *,
                           step: float | None = None) -> np.ndarray:
    """H v for H the Hessian of the objective's mean loss over `batch` (None: the whole
    training set) at x; loss units per parameter unit squared, times v's units.

    An objective with its own `hvp(x, v, batch)` (TorchObjective: exact double backward)
    is asked for it, unless `step` is given. Otherwise (EngineObjective) the central
    difference of gradients (g(x + h v) - g(x - h v)) / (2h), two gradient evaluations,
    with h = fd_step(x, v) = eps^(1/3) (1 + |x|) / |v| (eps = float64 rounding) unless
    `step` (h itself) is given.

    Why this step: the difference's error is truncation (h|v|)^2 |g'''| / 6 plus
    rounding ~ eps |g| / h, minimised at h|v| ~ (3 eps |g| / |g'''|)^(1/3); with the
    gradient's third derivative of the order of |g| over the parameters' scale (1 + |x|)^3
    this is eps^(1/3) (1 + |x|), and the error there is ~ eps^(2/3) relative (~4e-11;
    measured ~2e-10 on an MTP-8, the gradient's own rounding being worse than eps). The
    test tests/test_curvature.py::test_fd_step_study measures the error on an MTP against
    a Richardson-extrapolated reference for steps 1e-4 ... 1e3 times h: it falls as 1/h
    below it (rounding) and grows as h^2 above it (truncation), and h is within a small
    factor of the best step. Known limit: near a fitted minimum the curvature is small
    beside the third derivatives and the best step for a single radial coefficient of an
    MTP is 10-30x smaller; the error at h then is up to ~5e-7 relative for that column
    (MTP-16 after 30 L-BFGS-B steps, benchmarks/curvature_costs.py), below 1e-8 along
    random directions. Pass `step` to override.

    The objective's internal parameters are left as they were (preserved_parameters)."""
    x, v = _as_vector(objective, x, "x"), _as_vector(objective, v, "v")
    if not np.any(v):
        return np.zeros(objective.n_params)
    with preserved_parameters(objective):
        if step is None and callable(getattr(objective, "hvp", None)):
            return np.asarray(objective.hvp(x, v, batch), dtype=np.float64)
        return _fd_hvp(objective, x, v, batch, step)[0]


def _linear_hessian_block(objective, x, batch):
    """(indices, 2A) for the block of the parameters the predictions are linear in, where
    the mean loss is the quadratic c^T A c - 2 b^T c + r0 of EngineObjective.linear_system
    (exact: its Hessian block is 2A); None for an objective without one."""
    if not callable(getattr(objective, "linear_system", None)):
        return None
    try:
        lin = objective.linear_slice
        A = objective.linear_system(x, batch)[0]
    except (ValueError, NotImplementedError, AttributeError):
        return None
    return np.arange(objective.n_params)[lin], 2.0 * np.asarray(A, dtype=np.float64)


def dense_hessian(objective, x: np.ndarray, batch: np.ndarray | None = None, *,
                  step: float | None = None, linear_block: bool | None = None) -> tuple[np.ndarray, dict]:
    """The Hessian H (n_params, n_params) of the mean loss over `batch` at x, in loss units
    per parameter unit squared, returned symmetrised, (H + H^T) / 2.

    Column j is hessian_vector_product(e_j): the objective's exact hvp, or the central
    difference of gradients with h = fd_step(x, e_j) = eps^(1/3) (1 + |x|). With
    `linear_block` (None: whenever the objective has one, i.e. EngineObjective's
    linear_slice and linear_system: an MTP's species and moment coefficients) the block
    of the linear parameters is taken exactly from the normal equations (the loss is
    quadratic there: 2A) and only the other columns are differenced, their rows in the
    linear block giving the mixed block by symmetry: 2 n_nonlinear gradients and one
    linear system instead of 2 n gradients (MTP-16: 256 instead of 444).

    info: "asymmetry" = max|H - H^T| / max|H| before symmetrising (with the linear block,
    only the differenced columns' own rows can differ from their transpose). For a
    finite-difference H it is the size of the error that differs between H_ij and H_ji,
    which come from different gradient pairs: it bounds the random (rounding) part of
    the error from below, not a bias common to both (a wrong gradient that is still the
    gradient of some function gives a symmetric H);
    "method" ("hvp", "central_difference" or "central_difference+linear_system"); "step"
    (h, or None); "n_grad" (gradient evaluations; 0 for hvp); "n_hvp" (products
    computed); "n_linear" (parameters of the exact block); "seconds".

    The asymmetry also tells which eigenvalues mean something: those below ~asymmetry x
    max|H| in magnitude are at the difference's noise level (pass
    rtol_zero=10*asymmetry to spectra.spectrum_summary to count them as zero)."""
    x = _as_vector(objective, x, "x")
    n = objective.n_params
    exact = step is None and callable(getattr(objective, "hvp", None))
    t0 = time.perf_counter()
    block = None
    if not exact and linear_block is not False:
        with preserved_parameters(objective):
            block = _linear_hessian_block(objective, x, batch)
        if block is None and linear_block:
            raise ValueError(f"linear_block=True: {type(objective).__name__} has no linear block "
                             "(linear_slice and linear_system)")
    cols = np.arange(n) if block is None else np.setdiff1d(np.arange(n), block[0])
    H = np.empty((n, n))
    e = np.zeros(n)
    h = None
    with preserved_parameters(objective):
        for j in cols:
            e[j] = 1.0
            if exact:
                H[:, j] = objective.hvp(x, e, batch)
            else:
                H[:, j], h = _fd_hvp(objective, x, e, batch, step)
            e[j] = 0.0
    if block is not None:
        lin, A2 = block
        H[np.ix_(lin, lin)] = A2
        H[np.ix_(cols, lin)] = H[np.ix_(lin, cols)].T
    seconds = time.perf_counter() - t0
    scale = float(np.max(np.abs(H)))
    asym = float(np.max(np.abs(H - H.T))) / scale if scale > 0 else 0.0
    method = "hvp" if exact else ("central_difference" if block is None else "central_difference+linear_system")
    info = {"asymmetry": asym, "method": method, "step": h, "n_grad": 0 if exact else 2 * int(cols.size),
            "n_hvp": int(cols.size), "n_linear": 0 if block is None else int(block[0].size), "seconds": seconds}
    return 0.5 * (H + H.T), info


def _check_least_squares(objective) -> None:
    missing = [m for m in ("residuals", "jvp", "vjp") if not callable(getattr(objective, m, None))]
    if missing:
        raise ValueError(f"the Gauss-Newton matrix needs an objective with residuals, jvp and vjp "
                         f"(EngineObjective); {type(objective).__name__} lacks {', '.join(missing)}")


def gauss_newton_vector_product(objective, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """G v = 2c J^T (J v) for the Gauss-Newton matrix G = 2c J^T J of the mean loss
    c |r|^2 over the training set (c = LOSS_PER_SQUARED_RESIDUAL = 1, module docstring),
    J = dr/dx at x; loss units per parameter unit squared times v's units. J v from the
    objective's jvp (a central difference of predictions for EngineObjective, ~1e-8
    relative), J^T u from its vjp (exact adjoint pass). G is positive semi-definite and
    equals the Hessian at a zero-residual point."""
    _check_least_squares(objective)
    x, v = _as_vector(objective, x, "x"), _as_vector(objective, v, "v")
    if not np.any(v):
        return np.zeros(objective.n_params)
    with preserved_parameters(objective):
        return 2.0 * LOSS_PER_SQUARED_RESIDUAL * np.asarray(objective.vjp(x, objective.jvp(x, v)), dtype=np.float64)


def dense_gauss_newton(objective, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """The Gauss-Newton matrix G = 2c J^T J (n_params, n_params) of the mean loss c |r|^2
    (c = 1) at x, in loss units per parameter unit squared, from the whole Jacobian J
    built column by column with the objective's jvp: n_params products (two predictions
    each for EngineObjective), cheaper than its n_residuals rows by vjp (n_residuals is
    thousands of force components, n_params a few hundred for an MTP).

    info: "loss" (c |r(x)|^2: G is the Hessian where it is 0), "n_jvp", "n_residuals",
    "jacobian_mib" (memory of J), "seconds"."""
    _check_least_squares(objective)
    x = _as_vector(objective, x, "x")
    n = objective.n_params
    t0 = time.perf_counter()
    with preserved_parameters(objective):
        r = np.asarray(objective.residuals(x), dtype=np.float64)
        J = np.empty((r.size, n))
        e = np.zeros(n)
        for j in range(n):
            e[j] = 1.0
            J[:, j] = objective.jvp(x, e)
            e[j] = 0.0
    G = 2.0 * LOSS_PER_SQUARED_RESIDUAL * (J.T @ J)
    G = 0.5 * (G + G.T)  # BLAS need not round J^T J symmetrically
    info = {"loss": LOSS_PER_SQUARED_RESIDUAL * float(r @ r), "n_jvp": n, "n_residuals": int(r.size),
            "jacobian_mib": J.nbytes / 2**20, "seconds": time.perf_counter() - t0}
    return G, info
