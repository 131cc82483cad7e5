"""The [analysis] section of an experiment file: the curvature of every run's loss at the
points it went through (optbench/analysis/).

[analysis]
    curvature        true: analyse every run (default false: the section does nothing).
    every            steps between the points analysed (TrainSettings.snapshot_every);
                     default: the start and the end of the run only (and, with
                     refine = "lbfgs", before and after the refinement).
    dense_max_params up to this many parameters the Hessian is computed dense (every
                     eigenvalue); beyond, Lanczos and stochastic Lanczos quadrature
                     (default 600).
    gauss_newton     also the Gauss-Newton matrix J^T W J, dense (default true).
    lanczos_k        extreme eigenvalues at each end of the spectrum, Lanczos (default 10).
    slq_vectors, slq_steps  probes and Lanczos steps of the spectral density (8, 30).

The analysis runs in the run's worker right after training (it needs the run's objective
and optimizer states) and is stored with the run (store table ``curvature``). It is part
of the run's specification: adding or changing [analysis] makes new runs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from optbench.experiments.values import _check_keys, _Context, _expect, _integer, _table

__all__ = ["apply_analysis", "parse_analysis"]

_KEYS = ("curvature", "every", "dense_max_params", "gauss_newton", "lanczos_k", "slq_vectors", "slq_steps")
# snapshot_every when [analysis] gives no `every`: larger than any run's steps, so that
# only the start, the end and the refinement's ends are kept
_ENDS_ONLY = 1 << 40


def _flag(ctx: _Context, path, value) -> bool:
    if not isinstance(value, bool):
        raise _expect(ctx, path, value, "true or false")
    return value


def parse_analysis(ctx: _Context, raw: Any) -> dict | None:
    """The [analysis] table as {"every", "curvature": settings of analysis.points}, or
    None when the file has none or curvature is false; ExperimentError at the key."""
    if raw is None:
        return None
    path = ("analysis",)
    t = _table(ctx, path, raw)
    _check_keys(ctx, path, t, _KEYS)
    if not _flag(ctx, path + ("curvature",), t.get("curvature", False)):
        return None
    out = {"every": _integer(ctx, path + ("every",), t["every"], minimum=1) if "every" in t else _ENDS_ONLY,
           "curvature": {}}
    for key, minimum in (("dense_max_params", 0), ("lanczos_k", 1), ("slq_vectors", 1), ("slq_steps", 2)):
        if key in t:
            out["curvature"][key] = _integer(ctx, path + (key,), t[key], minimum=minimum)
    if "gauss_newton" in t:
        out["curvature"]["gauss_newton"] = _flag(ctx, path + ("gauss_newton",), t["gauss_newton"])
    return out


def apply_analysis(runs: list, plan: dict | None) -> list:
    """The runs with the analysis in their settings (snapshot_every, curvature)."""
    if not plan:
        return runs
    return [replace(r, settings={**r.settings, "snapshot_every": plan["every"], "curvature": plan["curvature"]})
            for r in runs]
