"""The curvature at the points a run went through: what the analysis of one run, or of one
potential, computes from its objective, snapshots and optimizer states.

For each point (a snapshot of train.RunResult: step, stage, parameters, optimizer state):

- the Hessian H of the mean training loss: dense (n_params <= dense_max_params: every
  eigenvalue) or, for large models, the extreme eigenvalues by Lanczos and the spectral
  density by stochastic Lanczos quadrature;
- the Gauss-Newton matrix G = 2c J^T J (the least-squares curvature, PSD), dense, when the
  objective has residual products (MTP and ETN through the engine);
- the effective matrix P^(-1/2) H P^(-1/2) of the run's optimizer, P read from its state
  (analysis/preconditioners.py), dense when H is.

Each spectrum comes with its summary (spectra.spectrum_summary: largest and smallest
eigenvalues, negatives, the condition number over the positive part, the spread of log
eigenvalues). Eigenvalues are in the loss's units per parameter unit squared.
"""

from __future__ import annotations

import time

import numpy as np

from optbench.analysis.curvature import dense_gauss_newton, dense_hessian, hessian_vector_product
from optbench.analysis.preconditioners import effective_matrix_spectrum, preconditioner
from optbench.analysis.spectra import dense_spectrum, lanczos_extremes, slq_density, spectrum_summary

__all__ = ["CURVATURE_DEFAULTS", "analyze_point", "analyze_snapshots"]

# dense_max_params: the dense Hessian costs n_params gradient pairs; an MTP-16 (222
# parameters) takes well under a minute on 240 configurations, an ETN of a few thousand
# parameters minutes: beyond 600 Lanczos is the better buy.
CURVATURE_DEFAULTS = {"dense_max_params": 600, "gauss_newton": True, "lanczos_k": 10, "slq_vectors": 8,
                      "slq_steps": 30}


def _spectrum(eigs: np.ndarray, method: str, seconds: float) -> dict:
    return {"method": method, "eigenvalues": np.asarray(eigs, float).tolist(), "summary": spectrum_summary(eigs),
            "seconds": seconds}


def analyze_point(objective, x: np.ndarray, *, optimizer: str | None = None, state=None, hyper: dict | None = None,
                  settings: dict | None = None) -> dict:
    """The spectra at parameters `x` (module docstring): {"hessian", "gauss_newton"
    (when computed), "effective" (when `optimizer` is given), "n_params"}; each spectrum
    {"method", "eigenvalues" (dense) or "extremes" + "density" (Lanczos), "summary",
    "seconds"}. `settings`: CURVATURE_DEFAULTS overrides."""
    s = {**CURVATURE_DEFAULTS, **(settings or {})}
    n = int(objective.n_params)
    x = np.asarray(x, float)
    out: dict = {"n_params": n}
    if n <= s["dense_max_params"]:
        t0 = time.perf_counter()
        H, info = dense_hessian(objective, x)
        out["hessian"] = _spectrum(dense_spectrum(H), "dense", time.perf_counter() - t0)
        out["hessian"]["asymmetry"] = info.get("asymmetry")
        if s["gauss_newton"] and hasattr(objective, "jvp") and hasattr(objective, "vjp"):
            t0 = time.perf_counter()
            G, _ = dense_gauss_newton(objective, x)
            out["gauss_newton"] = _spectrum(dense_spectrum(G), "dense", time.perf_counter() - t0)
        if optimizer is not None:
            pre = preconditioner(optimizer, state, dict(hyper or {}), n)
            out["preconditioner"] = {"kind": pre.kind, "description": pre.description}
            if pre.kind != "none":
                t0 = time.perf_counter()
                out["effective"] = _spectrum(effective_matrix_spectrum(H, pre), "dense", time.perf_counter() - t0)
        return out
    t0 = time.perf_counter()

    def matvec(v):
        return hessian_vector_product(objective, x, np.asarray(v, float).ravel())

    ext = lanczos_extremes(matvec, n, k=s["lanczos_k"])
    grid, density, info = slq_density(matvec, n, n_vectors=s["slq_vectors"], steps=s["slq_steps"])
    eigs = np.concatenate([np.asarray(ext.get("smallest", []), float), np.asarray(ext.get("largest", []), float)])
    out["hessian"] = {"method": "lanczos", "extremes": {k: np.asarray(v).tolist() if isinstance(v, np.ndarray) else v
                                                         for k, v in ext.items()},
                      "density": {"grid": np.asarray(grid).tolist(), "density": np.asarray(density).tolist(),
                                  "nodes": np.asarray(info.get("nodes", [])).tolist(),
                                  "weights": np.asarray(info.get("weights", [])).tolist()},
                      "summary": spectrum_summary(np.sort(eigs)), "seconds": time.perf_counter() - t0}
    if optimizer is not None:
        pre = preconditioner(optimizer, state, dict(hyper or {}), n)
        out["preconditioner"] = {"kind": pre.kind, "description": pre.description}
    return out


def analyze_snapshots(objective, snapshots: list[dict], *, hyper: dict | None = None,
                      settings: dict | None = None, progress=None) -> list[dict]:
    """analyze_point at every snapshot of a run (train.RunResult.snapshots: step, stage,
    x, state, optimizer), each result with its step and stage; `progress` gets a line per
    point."""
    out = []
    for snap in snapshots:
        t0 = time.perf_counter()
        res = analyze_point(objective, snap["x"], optimizer=snap.get("optimizer"), state=snap.get("state"),
                            hyper=hyper, settings=settings)
        res.update(step=int(snap["step"]), stage=snap.get("stage", "optimizer"), optimizer=snap.get("optimizer"))
        out.append(res)
        if progress:
            summ = res["hessian"]["summary"]
            progress(f"curvature at step {res['step']} ({res['stage']}): condition {summ.get('condition_number')}, "
                     f"{summ.get('n_negative')} negative, {time.perf_counter() - t0:.1f} s")
    return out
