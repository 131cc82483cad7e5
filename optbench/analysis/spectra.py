"""Spectra of curvature matrices: dense eigenvalues and their summary, the extreme
eigenvalues of a matrix-free operator (ARPACK's Lanczos), and the spectral density by
stochastic Lanczos quadrature (SLQ).

Units: eigenvalues are those of the operator given, for a Hessian or Gauss-Newton matrix
of the loss (optbench.analysis.curvature) loss units per parameter unit squared; the
density is per those units (it integrates to 1 over eigenvalue).
"""

from __future__ import annotations

import time

import numpy as np


def dense_spectrum(M: np.ndarray) -> np.ndarray:
    """All eigenvalues of the symmetric matrix M, ascending (numpy.linalg.eigvalsh, which
    reads the lower triangle: symmetrise M first if it is not), in M's units."""
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"M must be a square matrix, got shape {M.shape}")
    return np.linalg.eigvalsh(M)


def spectrum_summary(eigs: np.ndarray, *, rtol_zero: float = 1e-10) -> dict:
    """Summary of a set of eigenvalues (their units):

    - "count": how many; "lambda_max", "lambda_min": the largest and smallest (most
      negative, or the smallest positive) eigenvalue;
    - "n_negative": eigenvalues below -rtol_zero * max|lambda|; "n_zero": those within
      +-rtol_zero * max|lambda|; "n_positive": the rest;
    - "condition_number": lambda_max / (the smallest eigenvalue above rtol_zero * lambda_max),
      the condition number of the positive part (nan when lambda_max <= 0);
    - "anisotropy": the standard deviation of log10 of those positive eigenvalues, the
      spread of the positive curvatures in decades (0: all equal; a spectrum spread
      evenly over d decades gives about d / sqrt(12));
    - "negative_ratio": |lambda_min| / lambda_max when lambda_min < 0 (how much negative
      curvature beside the positive), else 0."""
    lam = np.sort(np.asarray(eigs, dtype=np.float64).ravel())
    if lam.size == 0:
        raise ValueError("no eigenvalues")
    if not np.all(np.isfinite(lam)):
        raise ValueError("non-finite eigenvalues")
    amax = float(np.max(np.abs(lam)))
    thr = rtol_zero * amax
    lmax, lmin = float(lam[-1]), float(lam[0])
    pos = lam[lam > rtol_zero * lmax] if lmax > 0 else lam[:0]
    logs = np.log10(pos) if pos.size else None
    return {
        "count": int(lam.size),
        "lambda_max": lmax,
        "lambda_min": lmin,
        "n_negative": int(np.sum(lam < -thr)),
        "n_zero": int(np.sum(np.abs(lam) <= thr)),
        "n_positive": int(np.sum(lam > thr)),
        "condition_number": float(lmax / pos[0]) if pos.size else float("nan"),
        "anisotropy": float(np.std(logs)) if logs is not None else float("nan"),
        "negative_ratio": float(-lmin / lmax) if (lmin < 0 and lmax > 0) else 0.0,
    }


class _Counted:
    """A matvec that counts its calls and accepts (n,) or (n, 1) inputs (ARPACK's)."""

    def __init__(self, matvec, n: int):
        self.matvec, self.n, self.calls = matvec, n, 0

    def __call__(self, v):
        self.calls += 1
        out = np.asarray(self.matvec(np.asarray(v, dtype=np.float64).reshape(self.n)), dtype=np.float64)
        if out.shape != (self.n,):
            raise ValueError(f"matvec returned shape {out.shape}, expected ({self.n},)")
        return out


def lanczos_extremes(matvec, n: int, *, k: int = 6, ncv: int | None = None, maxiter: int | None = None,
                     tol: float = 0, seed: int = 0) -> dict:
    """The k largest and k smallest (algebraic) eigenvalues of the symmetric operator
    v -> matvec(v) on R^n, by implicitly restarted Lanczos (scipy.sparse.linalg.eigsh on a
    LinearOperator: one run with which="LA", one with "SA", each from the same seeded
    random start; ncv, maxiter and tol are eigsh's, tol=0 meaning machine precision).
    When k >= n (ARPACK needs k < n) the matrix is built from n products with unit
    vectors and solved densely instead.

    Returns {"largest": k values ascending, "smallest": k values ascending, "n_matvec"
    (products used, both runs), "n_matvec_largest", "n_matvec_smallest", "method"
    ("arpack" or "dense"), "seconds"}, eigenvalues in the operator's units. ArpackNoConvergence
    (scipy) propagates when maxiter is too small for tol."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    if n < 1 or k < 1:
        raise ValueError(f"need n >= 1 and k >= 1, got n={n}, k={k}")
    f = _Counted(matvec, n)
    t0 = time.perf_counter()
    if k >= n:
        M = np.column_stack([f(e) for e in np.eye(n)])
        lam = dense_spectrum(0.5 * (M + M.T))
        return {"largest": lam[-k:], "smallest": lam[:k], "n_matvec": f.calls, "n_matvec_largest": f.calls,
                "n_matvec_smallest": 0, "method": "dense", "seconds": time.perf_counter() - t0}
    op = LinearOperator((n, n), matvec=f, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(n)
    out = {"method": "arpack"}
    for which, key in (("LA", "largest"), ("SA", "smallest")):
        before = f.calls
        vals = eigsh(op, k=k, which=which, ncv=ncv, maxiter=maxiter, tol=tol, v0=v0, return_eigenvectors=False)
        out[key] = np.sort(vals)
        out[f"n_matvec_{key}"] = f.calls - before
    out["n_matvec"] = f.calls
    out["seconds"] = time.perf_counter() - t0
    return out


def lanczos_tridiagonal(matvec, v0: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Lanczos with full reorthogonalisation from v0: (alpha, beta), the diagonal (m,) and
    off-diagonal (m-1,) of the tridiagonal T = Q^T A Q on the Krylov space of A = matvec
    (m = steps products, fewer when the space is invariant: beta below 1e-12 times the
    largest |A q| seen). The eigenvalues of T (Ritz values) approximate A's extremes first;
    T's eigenvectors' first components squared are the Gauss quadrature weights of the
    spectral measure of v0 / |v0|. Stores the m basis vectors (m n floats).

    Full reorthogonalisation (Gram-Schmidt against every stored vector, twice) keeps the
    basis orthogonal in float64, so no ghost copies of converged Ritz values appear."""
    v0 = np.asarray(v0, dtype=np.float64)
    n = v0.size
    steps = int(min(steps, n))
    if steps < 1:
        raise ValueError("steps must be >= 1")
    norm0 = float(np.linalg.norm(v0))
    if norm0 == 0:
        raise ValueError("v0 is zero")
    Q = np.empty((steps, n))
    Q[0] = v0 / norm0
    alpha, beta = [], []
    anorm = 0.0
    for j in range(steps):
        w = np.asarray(matvec(Q[j]), dtype=np.float64).copy()
        anorm = max(anorm, float(np.linalg.norm(w)))
        a = float(Q[j] @ w)
        alpha.append(a)
        if j == steps - 1:
            break
        w -= a * Q[j]
        if j > 0:
            w -= beta[-1] * Q[j - 1]
        for _ in range(2):
            w -= Q[:j + 1].T @ (Q[:j + 1] @ w)
        b = float(np.linalg.norm(w))
        if b <= 1e-12 * anorm:
            break
        beta.append(b)
        Q[j + 1] = w / b
    return np.array(alpha), np.array(beta)


def slq_density(matvec, n: int, *, n_vectors: int = 8, steps: int = 30, seed: int = 0,
                grid: np.ndarray | None = None, sigma: float | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Spectral density of the symmetric operator A = matvec on R^n by stochastic Lanczos
    quadrature (Ubaru, Chen and Saad, SIAM J. Matrix Anal. Appl. 38, 2017; Ghorbani,
    Krishnan and Xiao, ICML 2019 for Hessians): for each of n_vectors Rademacher probes z
    (entries +-1, seeded), `steps` Lanczos iterations from z (lanczos_tridiagonal, full
    reorthogonalisation) give Ritz nodes theta_k and weights tau_k (the first components
    squared of T's eigenvectors, summing to 1), the Gauss quadrature of the measure
    sum_i (z.u_i)^2 / n delta(lambda - lambda_i), whose expectation over z is the
    spectral density (1/n) sum_i delta(lambda - lambda_i).

    density(t) = (1/n_vectors) sum_probes sum_k tau_k N(t; theta_k, sigma^2): Gaussian
    broadening, so the density integrates to 1 over the real line (per the operator's
    units); on `grid` (default 1001 points spanning the nodes +- 5 sigma) its trapezoid
    integral is 1 to the grid's resolution. sigma defaults to 1 % of the nodes' span.

    Returns (grid, density, info) with info: "nodes" and "weights" ((n_vectors, m) arrays,
    one row per probe, to redraw the density with another broadening; a probe whose Krylov
    space became invariant before `steps` has its row padded with zero weights), "sigma", "mean_eigenvalue" (the
    quadrature's first moment averaged over probes, an unbiased estimate of trace(A) / n:
    Hutchinson's estimator z^T A z / n), "mean_eigenvalue_stderr" (its standard error
    over the probes), "n_matvec", "seconds"."""
    from scipy.linalg import eigh_tridiagonal

    if n < 1 or n_vectors < 1 or steps < 1:
        raise ValueError(f"need n, n_vectors and steps >= 1, got {n}, {n_vectors}, {steps}")
    f = _Counted(matvec, n)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    nodes, weights, firsts = [], [], []
    for _ in range(n_vectors):
        z = rng.integers(0, 2, size=n) * 2.0 - 1.0
        alpha, beta = lanczos_tridiagonal(f, z, steps)
        if alpha.size == 1:
            theta, U = alpha.copy(), np.ones((1, 1))
        else:
            theta, U = eigh_tridiagonal(alpha, beta)
        tau = U[0] ** 2
        nodes.append(theta)
        weights.append(tau)
        firsts.append(float(tau @ theta))
    allnodes = np.concatenate(nodes)
    lo, hi = float(allnodes.min()), float(allnodes.max())
    if sigma is None:
        span = hi - lo
        sigma = 0.01 * (span if span > 0 else max(abs(hi), 1.0))
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be positive, got {sigma}")
    if grid is None:
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, 1001)
    grid = np.asarray(grid, dtype=np.float64)
    density = np.zeros_like(grid)
    norm = 1.0 / (n_vectors * sigma * np.sqrt(2 * np.pi))
    for theta, tau in zip(nodes, weights):
        density += norm * (tau[None, :] * np.exp(-0.5 * ((grid[:, None] - theta[None, :]) / sigma) ** 2)).sum(axis=1)
    m = max(t.size for t in nodes)
    nodes_2d = np.array([np.pad(t, (0, m - t.size), mode="edge") for t in nodes])
    weights_2d = np.array([np.pad(t, (0, m - t.size)) for t in weights])
    firsts = np.array(firsts)
    stderr = float(np.std(firsts, ddof=1) / np.sqrt(n_vectors)) if n_vectors > 1 else float("nan")
    info = {"nodes": nodes_2d, "weights": weights_2d, "sigma": float(sigma), "mean_eigenvalue": float(firsts.mean()),
            "mean_eigenvalue_stderr": stderr, "n_matvec": f.calls, "seconds": time.perf_counter() - t0}
    return grid, density, info
