"""Muon on the flat parameter vector (Jordan et al. 2024), after optax.contrib.muon.

Muon orthogonalises the (Nesterov) momentum of a weight matrix with a Newton-Schulz
iteration. An interatomic potential's parameters are one flat vector, so it is viewed as a
matrix first, as the study did:

- "pad_sqrt": zero-padded to k x k, k = ceil(sqrt N); the padded outputs are dropped;
- "factorization": m x n = N with m the largest divisor of N not above sqrt N (a prime N
  gives 1 x N, where orthogonalising only normalises: a warning says so).

Step = -lr * scale * NS5(m_hat), with NS5 the quintic Newton-Schulz iteration
X <- a X + (b A + c A^2) X, A = X X^T, (a, b, c) = (3.4445, -4.7750, 2.0315), 5 steps in
float64 after normalising by the Frobenius norm (+eps); a tall matrix is transposed first.
Scale conventions (`scale`), for the m x n view taken as optax's (fan_in = m, fan_out = n):
- "shape": sqrt(max(1, n / m)) — optax's default width scaling (consistent_rms=None);
- "adamw_match": 0.2 sqrt(max(m, n)) — optax's consistent_rms=0.2, which makes the update
  RMS match AdamW's (Liu et al. 2025).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .base import Entry, Hyper, Optimizer, check_fraction, check_positive

NS_COEFFS = (3.4445, -4.7750, 2.0315)


def matrix_shape(n: int, view: str) -> tuple[int, int]:
    """The (rows, cols) matrix view of an n-vector: "pad_sqrt" or "factorization"."""
    if n < 1:
        raise ValueError("cannot view an empty parameter vector as a matrix")
    if view == "pad_sqrt":
        k = math.isqrt(n - 1) + 1
        return k, k
    if view == "factorization":
        m = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
        return m, n // m
    raise ValueError(f"view must be 'pad_sqrt' or 'factorization', got {view!r}")


def newton_schulz(G: np.ndarray, steps: int = 5, coeffs=NS_COEFFS, eps: float = 1e-8) -> np.ndarray:
    """Approximate orthogonalisation U V^T of G = U S V^T (quintic Newton-Schulz, float64)."""
    a, b, c = coeffs
    X = G.T if G.shape[0] > G.shape[1] else G
    X = X / (np.linalg.norm(X) + eps)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if G.shape[0] > G.shape[1] else X


def muon(view: str = "pad_sqrt", beta: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
         eps: float = 1e-8, scale: str = "shape") -> Optimizer:
    """Muon with momentum `beta` (Nesterov by default) on the `view` of the vector."""
    beta = check_fraction("beta", beta)
    eps = check_positive("eps", eps, True)
    if scale not in ("shape", "adamw_match"):
        raise ValueError(f"scale must be 'shape' or 'adamw_match', got {scale!r}")
    if int(ns_steps) < 1:
        raise ValueError(f"ns_steps must be >= 1, got {ns_steps!r}")
    matrix_shape(4, view)  # validates the name before any data is seen

    def init(x):
        rows, cols = matrix_shape(x.size, view)
        if view == "factorization" and rows == 1 and x.size > 1:
            warnings.warn(f"Muon factorization: N = {x.size} is prime, so the view is 1 x {x.size} and "
                          "orthogonalisation reduces to normalising the momentum", UserWarning, stacklevel=2)
        return {"t": 0, "m": np.zeros_like(x), "shape": (rows, cols)}

    def update(g, s, x, lr):
        rows, cols = s["shape"]
        t = s["t"] + 1
        m = (1 - beta) * g + beta * s["m"]
        if nesterov:
            m_hat = beta * (m / (1 - beta ** (t + 1))) + (1 - beta) * (g / (1 - beta ** t))
        else:
            m_hat = m / (1 - beta ** t)
        G = np.zeros(rows * cols)
        G[:x.size] = m_hat
        O = newton_schulz(G.reshape(rows, cols), int(ns_steps), NS_COEFFS, eps).reshape(-1)[:x.size]
        factor = math.sqrt(max(1.0, cols / rows)) if scale == "shape" else 0.2 * math.sqrt(max(rows, cols))
        return -lr * (factor * O), {"t": t, "m": m, "shape": (rows, cols)}

    return Optimizer("muon" if view == "pad_sqrt" else "muon_factor", init, update,
                     {"view": view, "beta": beta, "nesterov": bool(nesterov), "ns_steps": int(ns_steps),
                      "eps": eps, "scale": scale})


_H = {
    "beta": Hyper(0.95, "momentum decay"),
    "nesterov": Hyper(True, "Nesterov momentum"),
    "ns_steps": Hyper(5, "Newton-Schulz iterations"),
    "eps": Hyper(1e-8, "added to the Frobenius norm before Newton-Schulz"),
    "scale": Hyper("shape", "'shape' = sqrt(max(1, n/m)) or 'adamw_match' = 0.2 sqrt(max(m, n))"),
}

REGISTRY = {
    "muon": Entry(lambda **kw: muon("pad_sqrt", **kw), dict(_H), 1e-3,
                  "Muon, vector zero-padded to a ceil(sqrt N) square"),
    "muon_factor": Entry(lambda **kw: muon("factorization", **kw), dict(_H), 1e-3,
                         "Muon, vector viewed as m x n = N (m the largest divisor <= sqrt N)"),
}
