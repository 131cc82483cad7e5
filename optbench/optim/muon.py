"""Muon on the flat parameter vector (Jordan et al. 2024), after optax.contrib.muon 0.2.8.

Muon orthogonalises the (Nesterov) momentum of a weight matrix with a Newton-Schulz
iteration. An interatomic potential's parameters are one flat N-vector, so it is viewed as
a matrix first, as the study "Muon on the flat vector" did:

- "pad_sqrt": zero-padded to k x k, k = ceil(sqrt N); the padded outputs of the
  orthogonalisation are dropped;
- "factorization": m x n = N with m the largest divisor of N not above sqrt N. A prime N
  gives 1 x N, where orthogonalising only normalises the momentum (a warning says so).

The update, for a matrix view with rows x cols (optax's fan_in x fan_out):

    m <- beta m + (1 - beta) g,  t <- t + 1
    Nesterov: m_hat = beta m / (1 - beta^(t+1)) + (1 - beta) g / (1 - beta^t)
    otherwise m_hat = m / (1 - beta^t)
    step = -lr * scale * NS(view(m_hat))   (padded entries dropped)

NS is the quintic Newton-Schulz iteration X <- a X + (b A + c A^2) X, A = X X^T, after
X <- G / (||G||_F + eps), run on the transpose when rows > cols; (a, b, c) = (3.4445,
-4.7750, 2.0315), 5 steps, float64. NS(G) has singular values ~1 (roughly in
[0.5, 1.5]), so the step is in parameter units with lr the step length per singular
direction. Scale conventions (`scale`), as optax 0.2.8 computes them:

- "shape": sqrt(max(1, cols / rows)), optax's default width scaling
  (`consistent_rms=None`, sqrt(max(1, fan_out / fan_in))): 1 for the square pad_sqrt view,
  sqrt(n / m) >= 1 for the factorization;
- "adamw_match": 0.2 sqrt(max(rows, cols)), optax's `consistent_rms=0.2`, which makes the
  update's RMS about AdamW's (Liu et al. 2025).

optax's Muon has more options (weight decay, 'adaptive', other preconditionings, Adam for
non-matrix parameters); the flat vector is one matrix, so none of them apply here.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from optbench.optim.base import (
    Entry,
    Hyper,
    Optimizer,
    check_flag,
    check_fraction,
    check_integer,
    check_positive,
)

NS_COEFFS = (3.4445, -4.7750, 2.0315)
VIEWS = ("pad_sqrt", "factorization")
SCALES = ("shape", "adamw_match")


def matrix_shape(n: int, view: str) -> tuple[int, int]:
    """The (rows, cols) matrix view of an n-vector: (k, k) with k = ceil(sqrt n) for
    "pad_sqrt", (m, n / m) with m the largest divisor of n <= sqrt n for "factorization"."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    if n < 1:
        raise ValueError("cannot view an empty parameter vector as a matrix")
    if view == "pad_sqrt":
        k = math.isqrt(n - 1) + 1
        return k, k
    m = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return m, n // m


def newton_schulz(G: np.ndarray, steps: int = 5, coeffs=NS_COEFFS, eps: float = 1e-8) -> np.ndarray:
    """Approximate orthogonalisation of G = U S V^T to ~U V^T (optax's
    orthogonalize_via_newton_schulz, 'frobenius' preconditioning), in float64.

    The quintic iteration X <- a X + (b A + c A^2) X, A = X X^T, starts from
    G / (||G||_F + eps) so that all singular values are <= 1. It is run on the wide
    orientation (G^T when rows > cols, transposed back), as optax does: A is then the
    smaller Gram matrix, and the result is the same up to rounding."""
    a, b, c = coeffs
    tall = G.shape[0] > G.shape[1]
    X = G.T if tall else G
    X = X / (np.linalg.norm(X) + eps)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if tall else X


def scale_factor(rows: int, cols: int, scale: str) -> float:
    """The factor multiplying NS(m_hat): "shape" sqrt(max(1, cols / rows)) (optax's
    default), "adamw_match" 0.2 sqrt(max(rows, cols)) (optax's consistent_rms=0.2)."""
    if scale == "shape":
        return math.sqrt(max(1.0, cols / rows))
    if scale == "adamw_match":
        return 0.2 * math.sqrt(max(rows, cols))
    raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")


def _check_coeffs(coeffs) -> tuple[float, float, float]:
    """Three finite Newton-Schulz coefficients, from a sequence or a "a,b,c" string (the
    command line's form)."""
    if isinstance(coeffs, str):
        coeffs = coeffs.split(",")
    try:
        out = tuple(float(c) for c in coeffs)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(math.isfinite(c) for c in out):
        raise ValueError(f"ns_coeffs must be three finite numbers (a, b, c), got {coeffs!r}")
    return out


def muon(view: str = "pad_sqrt", beta: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
         ns_coeffs=NS_COEFFS, eps: float = 1e-8, scale: str = "shape") -> Optimizer:
    """Muon on the `view` of the flat vector (see the module docstring for the update),
    as optax.contrib.muon(lr, ns_coeffs, ns_steps, beta, eps, nesterov=nesterov,
    consistent_rms=None for scale="shape" or 0.2 for "adamw_match") on that matrix.

    `init(x)` fixes the matrix shape from x.size (kept in the state) and warns when the
    factorization of a prime N degenerates to 1 x N."""
    matrix_shape(1, view)  # reject an unknown view before any data is seen
    scale_factor(1, 1, scale)
    beta = check_fraction("beta", beta)
    nesterov = check_flag("nesterov", nesterov)
    ns_steps = check_integer("ns_steps", ns_steps, 1)
    ns_coeffs = _check_coeffs(ns_coeffs)
    eps = check_positive("eps", eps, allow_zero=True)

    def init(x):
        rows, cols = matrix_shape(x.size, view)
        if rows == 1 and x.size > 1:
            warnings.warn(f"Muon factorization: N = {x.size} is prime, so the matrix view is 1 x {x.size} and "
                          "orthogonalising only normalises the momentum (consider view='pad_sqrt')",
                          UserWarning, stacklevel=2)
        return {"t": 0, "m": np.zeros_like(x), "shape": (rows, cols)}

    def update(g, state, x, lr):
        rows, cols = state["shape"]
        t = state["t"] + 1
        m = (1 - beta) * g + beta * state["m"]
        if nesterov:
            m_hat = beta * (m / (1 - beta ** (t + 1))) + (1 - beta) * (g / (1 - beta ** t))
        else:
            m_hat = m / (1 - beta ** t)
        G = np.zeros(rows * cols)
        G[:x.size] = m_hat  # pad_sqrt: zero padding; factorization: rows * cols == N
        O = newton_schulz(G.reshape(rows, cols), ns_steps, ns_coeffs, eps).reshape(-1)[:x.size]
        return -lr * (scale_factor(rows, cols, scale) * O), {"t": t, "m": m, "shape": (rows, cols)}

    return Optimizer("muon" if view == "pad_sqrt" else "muon_factor", init, update,
                     {"view": view, "beta": beta, "nesterov": nesterov, "ns_steps": ns_steps,
                      "ns_coeffs": ns_coeffs, "eps": eps, "scale": scale})


def _hypers(view: str) -> dict[str, Hyper]:
    return {
        "view": Hyper(view, "matrix view: 'pad_sqrt' (zero-padded square) or 'factorization' (m x n = N)"),
        "beta": Hyper(0.95, "momentum decay"),
        "nesterov": Hyper(True, "Nesterov momentum"),
        "ns_steps": Hyper(5, "Newton-Schulz iterations"),
        "ns_coeffs": Hyper(NS_COEFFS, "quintic Newton-Schulz coefficients (a, b, c)"),
        "eps": Hyper(1e-8, "added to the Frobenius norm before Newton-Schulz"),
        "scale": Hyper("shape", "'shape' = sqrt(max(1, cols/rows)) (optax default) or "
                                "'adamw_match' = 0.2 sqrt(max(rows, cols)) (optax consistent_rms=0.2)"),
    }


REGISTRY: dict[str, Entry] = {
    "muon": Entry(muon, _hypers("pad_sqrt"), 1e-3, "Muon, vector zero-padded to a ceil(sqrt N) square"),
    "muon_factor": Entry(muon, _hypers("factorization"), 1e-3,
                         "Muon, vector viewed as m x n = N (m the largest divisor <= sqrt N)"),
}
