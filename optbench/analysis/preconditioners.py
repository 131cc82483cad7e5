"""Each optimizer's preconditioner P, read from its own state, and the spectrum of the
effective matrix P^(-1/2) H P^(-1/2) ("Beyond Adam": optimizers differ by the spectrum
of the curvature they actually see).

Convention: leaving momentum (a filter in time) and schedules aside, an optimizer steps
by -lr * scale * P^(-1) g, with P a data-dependent linear map built from its state; the
effective matrix of the loss Hessian H is then P^(-1/2) H P^(-1/2) (for a quasi-Newton
inverse B ~ H^(-1), P = B^(-1): B^(1/2) H B^(1/2), all ones when B = H^(-1)). `scale` is a
scalar the method applies besides lr (RAdam's rectification r_t); it moves the spectrum's
scale (stability: lr * scale * lambda_max < 2), never its shape.

| optimizer | kind | P from the state |
|---|---|---|
| sgd | identity | P = I |
| momentum, nesterov | identity | P = I; the momentum buffer b filters gradients in time, it does not transform them |
| adam, adamw | diagonal | P = diag(sqrt(v_hat)) + eps, v_hat = v / (1 - b2^t) with the state's t, v (AdamW's decay -lr wd x is added to the step, outside P) |
| radam | diagonal or identity | t from the state, rho_t = rho_inf - 2 t b2^t / (1 - b2^t), rho_inf = 2 / (1 - b2) - 1: rho_t >= threshold (rectified phase, t >= 6 at b2 = 0.999): as Adam, scale = r_t; else (warm-up, momentum only: step = -lr m_hat): identity |
| ranger | as radam | its inner RAdam's t, v; Lookahead's slow weights average in time, they are not a preconditioner |
| lamb | diagonal | the Adam diagonal; the trust ratio ||x|| / ||u|| (u = Adam direction + wd x, one "layer": the flat vector) depends on x and on the gradient through ||u||, so it is not a fixed linear map: a scalar step length, left out (scale = 1) |
| schedulefree | diagonal | P = diag(sqrt(v / (1 - b2^t))) + eps with the state's t (updates made, counted after the update as in its own bias correction) and v; it scales the z walk, which y follows with weight 1 - b1 |
| muon, muon_factor | none | NS(M) ~ (M M^T)^(-1/2) M of the momentum matrix M: the map depends on the very gradient it acts on (orthogonalisation is not linear); freezing M would give the one-sided (M M^T)^(1/2) (x) I of the matrix view |
| bfgs | dense_inverse | B = SciPy's final hess_inv (dense, n x n), the inverse Hessian approximation of the next step |
| lbfgs, refine "lbfgs", adam_lbfgs (L-BFGS-B stage) | lbfgs_inverse | the L-BFGS-B inverse of SciPy's correction pairs (res.hess_inv.sk, .yk), put in chronological order (SciPy keeps them in a circular buffer: after more than maxcor updates its LbfgsInvHessProduct applies them out of order) and with L-BFGS-B's own H0 = (s'y / y'y) I of the latest pair (LbfgsInvHessProduct uses H0 = I): the matrix whose -B g was the last search direction |
| adam_lbfgs | by stage | Adam's (its defaults) while the state is Adam's {"t", "m", "v"}, L-BFGS-B's once it is {"hess_inv"} |
| lm, gn_tr | dense_inverse or none | B = (G + lam diag(G))^(-1), G = 2 J^T J the Gauss-Newton matrix (lm's step is -(J^T J + lam D)^(-1) J^T r = -B g), when the state holds {"gauss_newton": G, "damping": lam} (the run does not keep J: form G at the snapshot's x with optbench.analysis.dense_gauss_newton); else none |
| varpro, varpro_lbfgs, alternating | none | the linear block is solved exactly (not a linear map of the gradient); their Levenberg-Marquardt or L-BFGS-B matrices are over the nonlinear block theta only |
| native | none | MLIP's own BFGS runs inside mlp train; its matrix is not exposed |

SciPy exposes hess_inv only when minimize returns (converged, maxiter, line-search
failure): a run that the budget, divergence, the target or early stopping ends inside a
line search has none ("none", saying so). For BFGS analyses bound the run by the
`maxiter` hyperparameter rather than the budget.

Units: H in loss units per parameter unit squared; a diagonal P in gradient units (loss
per parameter unit), so the effective eigenvalues are per parameter unit (times lr, a
step length for Adam-type methods: dimensionless); for a quasi-Newton B (parameter
units squared per loss unit) they are dimensionless; for the identity, H's units.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from optbench.optim import REGISTRY

KINDS = ("identity", "diagonal", "dense_inverse", "lbfgs_inverse", "none")


@dataclass(frozen=True)
class Preconditioner:
    """One optimizer's linear preconditioner P at one state (module docstring).

    kind: one of KINDS; description: one sentence, how P comes from the state (formula),
    or why there is none; diag: the vector P_ii (kind "diagonal", gradient units);
    inverse: B ~ H^(-1), a dense (n, n) array ("dense_inverse") or an `LbfgsInverse`
    operator ("lbfgs_inverse"); scale: the scalar besides lr (RAdam's r_t)."""

    kind: str
    description: str
    n_params: int
    optimizer: str = ""
    diag: np.ndarray | None = None
    inverse: Any = None
    scale: float = 1.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "diagonal":
            d = np.asarray(self.diag)
            if d.shape != (self.n_params,) or not np.all(d > 0):
                raise ValueError(f"a diagonal preconditioner needs {self.n_params} positive entries")
        if self.kind in ("dense_inverse", "lbfgs_inverse") and tuple(self.inverse.shape) != (self.n_params,) * 2:
            raise ValueError(f"inverse has shape {self.inverse.shape}, expected {(self.n_params,) * 2}")


class LbfgsInverse:
    """The L-BFGS inverse Hessian approximation B of correction pairs s_i = x_(i+1) - x_i,
    y_i = g_(i+1) - g_i (rows of s, y, oldest first) with H0 = gamma I (two-loop
    recursion, Nocedal 1980). Applying it costs O(m n) per vector; its dense form
    O(m n^2) time and n^2 floats."""

    def __init__(self, s: np.ndarray, y: np.ndarray, gamma: float):
        self.s, self.y, self.gamma = np.asarray(s, np.float64), np.asarray(y, np.float64), float(gamma)
        self.rho = 1.0 / np.einsum("ij,ij->i", self.s, self.y)
        self.shape = (self.s.shape[1], self.s.shape[1])

    def matmat(self, V: np.ndarray) -> np.ndarray:
        """B V for a (n, k) array V (V's units times parameter units^2 per loss unit)."""
        Q = np.array(V, dtype=np.float64, copy=True)
        alpha = np.empty((len(self.rho), Q.shape[1]))
        for i in range(len(self.rho) - 1, -1, -1):  # newest pair first
            alpha[i] = self.rho[i] * (self.s[i] @ Q)
            Q -= np.outer(self.y[i], alpha[i])
        R = self.gamma * Q
        for i in range(len(self.rho)):
            beta = self.rho[i] * (self.y[i] @ R)
            R += np.outer(self.s[i], alpha[i] - beta)
        return R

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """B v."""
        return self.matmat(np.asarray(v, dtype=np.float64)[:, None])[:, 0]

    __call__ = matvec

    def todense(self) -> np.ndarray:
        """B as a dense (n, n) array, symmetrised against rounding."""
        B = self.matmat(np.eye(self.shape[0]))
        return 0.5 * (B + B.T)


def lbfgs_inverse_from_scipy(hess_inv, iterates: np.ndarray | None = None) -> tuple[LbfgsInverse, str]:
    """The L-BFGS-B matrix of SciPy's `res.hess_inv` (LbfgsInvHessProduct: pairs .sk,
    .yk in SciPy's circular storage order), with the pairs in chronological order and
    L-BFGS-B's H0 = (s'y / y'y) I of the newest pair, and a note on how the order was set.
    `iterates` (oldest first, SciPy's variables: what optim.quasi_newton.scipy_minimize
    keeps) orders the pairs by matching each s to a difference of successive iterates;
    without them, or when one does not match, SciPy's order is kept (right while at most
    maxcor updates were made)."""
    s, y = np.asarray(hess_inv.sk, np.float64), np.asarray(hess_inv.yk, np.float64)
    if s.shape[0] == 0:
        raise ValueError("no correction pairs (L-BFGS-B made no update)")
    order, note = np.arange(s.shape[0]), "SciPy's storage order (no iterates to order the pairs by)"
    if iterates is not None and len(iterates) > 1:
        steps = np.diff(np.asarray(iterates, np.float64), axis=0)
        dist = np.linalg.norm(s[:, None, :] - steps[None, :, :], axis=2) / np.linalg.norm(s, axis=1)[:, None]
        match = np.argmin(dist, axis=1)
        if np.all(dist[np.arange(s.shape[0]), match] < 1e-6) and len(set(match)) == len(match):
            order, note = np.argsort(match), "pairs ordered by the run's iterates"
        else:
            note = "SciPy's storage order (the iterates kept do not match every pair)"
    s, y = s[order], y[order]
    return LbfgsInverse(s, y, float(s[-1] @ y[-1]) / float(y[-1] @ y[-1])), note


def _hyper(optimizer: str, hyper: dict | None) -> dict:
    """The optimizer's hyperparameters: its REGISTRY defaults with `hyper`'s values (lr
    and names the optimizer does not have are ignored: a RunResult's hyper holds lr)."""
    defaults = {k: spec.default for k, spec in REGISTRY[optimizer].hypers.items()}
    return {**defaults, **{k: v for k, v in (hyper or {}).items() if k in defaults}}


def _vector(state: dict, key: str, n: int) -> np.ndarray:
    v = np.asarray(state[key], dtype=np.float64)
    if v.shape != (n,):
        raise ValueError(f"state[{key!r}] has shape {v.shape}, expected ({n},)")
    return v


def _adam_diagonal(name: str, state, h: dict, n: int, what: str, scale: float = 1.0, note: str = "") -> Preconditioner:
    """P = diag(sqrt(v / (1 - b2^t))) + eps from the state's t and v."""
    t, b2, eps = int(state["t"]), float(h["b2"]), float(h["eps"])
    if t == 0:
        return Preconditioner("none", f"{what}: no update made yet (t = 0), the second moment v holds no gradient",
                              n, name)
    d = np.sqrt(_vector(state, "v", n) / (1.0 - b2 ** t)) + eps
    if not np.all(d > 0):  # eps = 0 and a coordinate that never had a gradient
        return Preconditioner("none", f"{what}: P = sqrt(v_hat) + eps has zero entries (eps = 0, gradient "
                                      "never nonzero there)", n, name)
    return Preconditioner("diagonal", f"{what}: P = diag(sqrt(v_hat)) + eps, v_hat = v / (1 - b2^t) with "
                                      f"t = {t}, b2 = {b2:g}, eps = {eps:g} from the state{note}", n, name,
                          diag=d, scale=scale)


def _radam(name: str, state, h: dict, n: int, what: str) -> Preconditioner:
    """RAdam's phase at the state's t: rectified (Adam diagonal, scale r_t) or warm-up."""
    t, b2, threshold = int(state["t"]), float(h["b2"]), float(h["threshold"])
    if t == 0:
        return _adam_diagonal(name, state, h, n, what)
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
    if rho < threshold:
        return Preconditioner("identity", f"{what}: warm-up phase at t = {t} (rho_t = {rho:.3g} < threshold "
                                          f"{threshold:g}): step = -lr m_hat, P = I", n, name)
    r = np.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
    return _adam_diagonal(name, state, h, n, what, scale=float(r),
                          note=f"; rectified phase (rho_t = {rho:.3g} >= {threshold:g}), scale r_t = {r:.6g}")


def _from_hess_inv(name: str, state, n: int, what: str) -> Preconditioner:
    """A SciPy quasi-Newton state {"hess_inv": ..., "iterates": ...} (quasi_newton.py)."""
    if state and state.get("hess_inv") is None and state.get("lbfgs_pairs") is not None:
        s_, y_ = (np.asarray(state["lbfgs_pairs"][k], np.float64) for k in ("s", "y"))
        if s_.shape[1] != n:
            return Preconditioner("none", f"{what}: correction pairs over {s_.shape[1]} of the {n} parameters", n,
                                  name)
        op = LbfgsInverse(s_, y_, float(s_[-1] @ y_[-1]) / float(y_[-1] @ y_[-1]))
        return Preconditioner("lbfgs_inverse", f"{what}: B = the L-BFGS inverse of the {s_.shape[0]} correction "
                                               "pairs of the last accepted points (the budget ended L-BFGS-B inside "
                                               f"a line search, so SciPy handed over no matrix), H0 = "
                                               f"(s'y / y'y) I = {op.gamma:.3g} I, P = B^(-1)", n, name, inverse=op)
    if not state or state.get("hess_inv") is None:
        return Preconditioner("none", f"{what}: no hess_inv in the state: SciPy hands its matrix over only when "
                                      "minimize returns; this run or snapshot ended inside a line search (budget, "
                                      "divergence, target, early stopping) or is an intermediate one", n, name)
    B = state["hess_inv"]
    size = B.shape[0]
    if size != n:
        return Preconditioner("none", f"{what}: hess_inv is over {size} of the {n} parameters (the nonlinear "
                                      "block theta, the linear block being solved exactly): no P on the whole "
                                      "vector", n, name)
    if hasattr(B, "sk") and len(B.sk) == 0:
        return Preconditioner("identity", f"{what}: no correction pair yet (one iteration): L-BFGS-B's first "
                                          "step is along -g, P = I", n, name)
    if hasattr(B, "sk"):
        op, note = lbfgs_inverse_from_scipy(B, state.get("iterates"))
        return Preconditioner("lbfgs_inverse", f"{what}: B = the L-BFGS inverse of SciPy's {op.s.shape[0]} "
                                               f"correction pairs (res.hess_inv.sk, .yk; {note}), H0 = "
                                               f"(s'y / y'y) I = {op.gamma:.3g} I, P = B^(-1)", n, name, inverse=op)
    B = np.asarray(B, dtype=np.float64)
    return Preconditioner("dense_inverse", f"{what}: B = SciPy BFGS's final dense hess_inv (H_(k+1) = "
                                           "(I - rho s y') H_k (I - rho y s') + rho s s', H_0 = I), P = B^(-1)",
                          n, name, inverse=0.5 * (B + B.T))


def gauss_newton_preconditioner(G: np.ndarray, damping: float = 0.0, optimizer: str = "lm") -> Preconditioner:
    """Levenberg-Marquardt's P = G + damping diag(G) (G = 2 J^T J, the Gauss-Newton
    matrix of the loss in loss units per parameter unit squared; damping dimensionless,
    Marquardt's scaling as lm uses it) as a dense_inverse B = P^(-1); ValueError when P
    is not positive definite (unused parameters make G singular: give damping > 0)."""
    G = np.asarray(G, dtype=np.float64)
    n = G.shape[0]
    P = 0.5 * (G + G.T) + float(damping) * np.diag(np.diag(G))
    try:
        L = np.linalg.cholesky(P)
    except np.linalg.LinAlgError:
        raise ValueError("G + damping diag(G) is not positive definite: give damping > 0 "
                         "(and no parameter the loss ignores)") from None
    Linv = np.linalg.solve(L, np.eye(n))
    return Preconditioner("dense_inverse", f"{optimizer}: P = G + lam diag(G), G = 2 J^T J, lam = {damping:g} "
                                           "(the step -(J^T J + lam D)^(-1) J^T r = -P^(-1) g), B = P^(-1)",
                          n, optimizer, inverse=Linv.T @ Linv)


_NONE = {
    "muon": "orthogonalisation NS(M) ~ (M M^T)^(-1/2) M of the momentum matrix is not linear in the gradient "
            "(frozen at M it would be the one-sided (M M^T)^(1/2) (x) I of the matrix view): no fixed P",
    "varpro": "variable projection solves the linear block exactly and takes Levenberg-Marquardt steps on theta "
              "only: no linear map of the whole gradient",
    "native": "MLIP's mlp train runs its own BFGS; its matrix is not exposed",
}


def preconditioner(optimizer: str, state, hyper: dict | None, n_params: int) -> Preconditioner:
    """The preconditioner P of `optimizer` (a name of optbench.optim.REGISTRY) at `state`
    (its optimizer state, as RunResult.opt_state or a snapshot's "state" holds it; None
    for a driver's intermediate snapshot), with hyperparameters `hyper` (overrides of the
    REGISTRY defaults; lr ignored), for a parameter vector of n_params. The table in the
    module docstring says what each optimizer gets; an unknown name is a ValueError."""
    if optimizer not in REGISTRY:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(sorted(REGISTRY))}")
    n, h, name = int(n_params), _hyper(optimizer, hyper), optimizer
    if name in ("sgd", "momentum", "nesterov"):
        why = "P = I" if name == "sgd" else "P = I; momentum filters gradients in time, it does not transform them"
        return Preconditioner("identity", f"{name}: {why}", n, name)
    if name in ("adam", "adamw"):
        return _adam_diagonal(name, state, h, n, name, note=" (weight decay is outside P)" * (name == "adamw"))
    if name in ("radam", "ranger"):
        return _radam(name, state, h, n, name if name == "radam" else "ranger (inner RAdam)")
    if name == "lamb":
        return _adam_diagonal(name, state, h, n, name, note="; the trust ratio ||x|| / ||u|| depends on x and the "
                                                            "gradient (not a fixed linear map): a step length, "
                                                            "left out")
    if name == "schedulefree":
        return _adam_diagonal(name, state, h, n, "schedulefree (z walk)",
                              note=f"; y follows z with weight 1 - b1 = {1 - float(h['b1']):g}")
    if name in ("bfgs", "lbfgs"):
        return _from_hess_inv(name, state, n, name)
    if name == "adam_lbfgs":
        if state and "v" in state:
            return _adam_diagonal(name, state, _hyper("adam", {}), n, "adam_lbfgs (Adam stage)")
        return _from_hess_inv(name, state, n, "adam_lbfgs (L-BFGS-B stage)")
    if name in ("varpro_lbfgs", "alternating"):
        return _from_hess_inv(name, state, n, name) if state else Preconditioner(
            "none", f"{name}: L-BFGS-B on the nonlinear block theta only, the linear block solved exactly", n, name)
    if name in ("lm", "gn_tr"):
        if state and state.get("gauss_newton") is not None:
            return gauss_newton_preconditioner(state["gauss_newton"], float(state.get("damping", 0.0)), name)
        return Preconditioner("none", f"{name}: the run keeps no Jacobian; P = G + lam diag(G) (G = 2 J^T J) needs "
                                      "{'gauss_newton': G, 'damping': lam} in the state (G from "
                                      "optbench.analysis.dense_gauss_newton at the snapshot's x)", n, name)
    key = "muon" if name.startswith("muon") else name
    if key in _NONE:
        return Preconditioner("none", f"{name}: {_NONE[key]}", n, name)
    raise ValueError(f"no preconditioner rule for optimizer {optimizer!r} (add one to {__name__})")


def dense_inverse(pre: Preconditioner) -> np.ndarray:
    """B = P^(-1) as a dense symmetric (n, n) array (parameter units^2 per loss unit) for
    the inverse kinds; an lbfgs_inverse is expanded by its two-loop recursion on the
    identity: O(m n^2) time, n^2 floats (n = 3000: 72 MB)."""
    if pre.kind == "dense_inverse":
        B = np.asarray(pre.inverse, dtype=np.float64)
    elif pre.kind == "lbfgs_inverse":
        B = pre.inverse.todense() if hasattr(pre.inverse, "todense") else pre.inverse.matmat(np.eye(pre.n_params))
    else:
        raise ValueError(f"{pre.optimizer}: a {pre.kind} preconditioner has no inverse matrix")
    return 0.5 * (B + B.T)


def _square(H: np.ndarray, n: int) -> np.ndarray:
    H = np.asarray(H, dtype=np.float64)
    if H.shape != (n, n):
        raise ValueError(f"H has shape {H.shape}, the preconditioner is for {n} parameters")
    return 0.5 * (H + H.T)


def effective_matrix_spectrum(H: np.ndarray, pre: Preconditioner) -> np.ndarray:
    """The eigenvalues, ascending, of the effective matrix P^(-1/2) H P^(-1/2) for the
    Hessian H (n, n; symmetrised): identity: eig(H); diagonal: eig(D^(-1/2) H D^(-1/2));
    dense_inverse / lbfgs_inverse B ~ H^(-1): eig(L^T H L) with B = L L^T (Cholesky),
    which equals eig(B H) (similar matrices) and is real and symmetric-solvable for an
    SPD B; when B is not positive definite, the real parts of eig(B H) (with a warning).
    Costs O(n^3) (plus the dense form of an L-BFGS B, see dense_inverse). Units: module
    docstring. A "none" preconditioner is a ValueError carrying its reason."""
    if pre.kind == "none":
        raise ValueError(f"{pre.optimizer}: no linear preconditioner: {pre.description}")
    H = _square(H, pre.n_params)
    if pre.kind == "identity":
        return np.linalg.eigvalsh(H)
    if pre.kind == "diagonal":
        s = 1.0 / np.sqrt(np.asarray(pre.diag, dtype=np.float64))
        return np.linalg.eigvalsh(s[:, None] * H * s[None, :])
    B = dense_inverse(pre)
    try:
        L = np.linalg.cholesky(B)
    except np.linalg.LinAlgError:
        eig = np.linalg.eigvals(B @ H)
        warnings.warn(f"{pre.optimizer}: B is not positive definite; real parts of eig(B H) (largest imaginary "
                      f"part {np.max(np.abs(eig.imag)):.3g})", RuntimeWarning, stacklevel=2)
        return np.sort(eig.real)
    M = L.T @ H @ L
    return np.linalg.eigvalsh(0.5 * (M + M.T))


def effective_matvec(hvp: Callable[[np.ndarray], np.ndarray], pre: Preconditioner) -> Callable[[np.ndarray],
                                                                                                 np.ndarray]:
    """v -> P^(-1/2) H P^(-1/2) v from a Hessian-vector product hvp(v) = H v, for Lanczos
    on models too large for a dense H (one hvp per product); identity and diagonal kinds
    only (the inverse kinds need B^(1/2): use effective_matrix_spectrum)."""
    if pre.kind == "identity":
        return hvp
    if pre.kind == "diagonal":
        s = 1.0 / np.sqrt(np.asarray(pre.diag, dtype=np.float64))
        return lambda v: s * np.asarray(hvp(s * np.asarray(v, dtype=np.float64)), dtype=np.float64)
    raise ValueError(f"{pre.optimizer}: effective_matvec takes identity and diagonal preconditioners, not {pre.kind}"
                     + (f" ({pre.description})" if pre.kind == "none" else ""))
