"""What the curvature analyses of optbench.analysis cost, and what they show.

(a) MTP: the dense Hessian of an MTP-16 (`mtp level=16 species=2 min_dist=2.0
    max_dist=5.0`, 222 parameters) on the 240 generated Ag-Pd training configurations
    (common.agpd_sets(); energy weight 1, force weight 0.01, no stress: common.weights()),
    engine on --threads threads (optbench.analysis.dense_hessian: central differences of
    gradients for the 128 radial columns, 256 gradients, and the 94 species and moment
    coefficients' block exactly from the engine's linear system; --all-columns differences
    all 222 columns, 444 gradients). Two points: the engine's default parameters plus
    uniform noise in [-0.1, 0.1] (seed 0), and that point after --lbfgs-iters iterations
    of SciPy's L-BFGS-B. At each: the seconds, the asymmetry of the difference Hessian,
    its eigenvalue summary (spectrum_summary; again with rtol_zero = 10 x the asymmetry,
    the difference's noise floor), and the Gauss-Newton matrix 2 J^T J's
    (dense_gauss_newton: n jvps) with the largest |H - G| relative to max|H|.
(b) SevenNet-0 (sevenn's pretrained model, --dtype, every parameter, energy shift
    fitted first) on the first --configs 54-atom cells of
    ../shared/datasets/nbmotaw_snap/Mo_AIMD.json: --lanczos-steps Lanczos iterations
    (lanczos_tridiagonal from a random start, full reorthogonalisation) on the exact
    double-backward Hessian-vector product (TorchObjective.hvp), each product timed, and
    the Ritz values' extremes; plus one gradient's time for scale. --max-seconds stops
    the iterations early and extrapolates the whole run's time from the products done
    (said so in the output).

A script printing numbers (not an asv benchmark; nothing asserted):

    .venv/bin/python benchmarks/curvature_costs.py [--part a|b|both] [--threads 2]
        [--lbfgs-iters 30] [--all-columns] [--configs 20] [--lanczos-steps 20] [--dtype float64|float32]
        [--max-seconds 600] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AIMD = REPO.parent / "shared" / "datasets" / "nbmotaw_snap" / "Mo_AIMD.json"


def _summary_line(s: dict) -> str:
    return (f"lambda in [{s['lambda_min']:.3e}, {s['lambda_max']:.3e}], {s['n_negative']} negative, "
            f"{s['n_zero']} zero, {s['n_positive']} positive of {s['count']}; condition of the positive "
            f"part {s['condition_number']:.3e}, anisotropy {s['anisotropy']:.2f} decades, "
            f"|lambda_min|/lambda_max {s['negative_ratio']:.2e}")


def part_a(threads: int, lbfgs_iters: int, all_columns: bool, verbose: bool) -> dict:
    """Dense Hessian (and Gauss-Newton matrix) of the MTP-16 at two points; dict of numbers."""
    import numpy as np
    from scipy.optimize import minimize

    from benchmarks import common
    from optbench.analysis import (
        dense_gauss_newton,
        dense_hessian,
        dense_spectrum,
        spectrum_summary,
    )
    from optbench.objective import EngineObjective

    train, _ = common.agpd_sets()
    eng = common.engine()
    eng.set_num_threads(threads)
    obj = EngineObjective(eng, common.potential(eng, "mtp16"), train, None, common.weights())
    x0 = obj.initial_params(0, 0.1)
    obj.loss_grad(x0)
    t = time.perf_counter()
    obj.loss_grad(x0)
    grad_s = time.perf_counter() - t
    out = {"model": common.MTP_MODELS["mtp16"], "n_params": obj.n_params, "n_configs": len(train),
           "threads": threads, "gradient_s": grad_s, "points": {}}
    if verbose:
        print(f"(a) {out['model']}: {obj.n_params} parameters, {len(train)} configurations, {threads} threads; "
              f"one gradient {grad_s:.3f} s", flush=True)
    t = time.perf_counter()
    fit = minimize(lambda z: obj.loss_grad(z), x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": lbfgs_iters})
    fit_s = time.perf_counter() - t
    for name, x in (("default+noise", x0), (f"lbfgs{lbfgs_iters}", fit.x)):
        loss = obj.loss(x)
        H, info = dense_hessian(obj, x, linear_block=False if all_columns else None)
        G, ginfo = dense_gauss_newton(obj, x)
        lam = dense_spectrum(H)
        sh, sg = spectrum_summary(lam), spectrum_summary(dense_spectrum(G))
        # eigenvalues below the difference's noise (~ asymmetry x max|H|) counted as zero
        noise = max(1e-10, 10 * info["asymmetry"])
        sn = spectrum_summary(lam, rtol_zero=noise)
        row = {"loss": loss, "hessian_s": info["seconds"], "n_grad": info["n_grad"], "method": info["method"],
               "asymmetry": info["asymmetry"],
               "hessian": sh, "hessian_noise_aware": sn, "noise_rtol": noise, "gauss_newton_s": ginfo["seconds"], "gauss_newton": sg,
               "max_abs_H_minus_G_rel": float(np.max(np.abs(H - G)) / np.max(np.abs(H)))}
        if name != "default+noise":
            row["lbfgs_s"], row["lbfgs_iterations"] = fit_s, int(fit.nit)
        out["points"][name] = row
        if verbose:
            extra = f" (after {fit.nit} L-BFGS-B iterations, {fit_s:.1f} s)" if "lbfgs_s" in row else ""
            print(f"  {name}{extra}: loss {loss:.4e}", flush=True)
            print(f"    dense Hessian: {info['seconds']:.1f} s ({info['n_grad']} gradients, {info['method']}), "
                  f"asymmetry {info['asymmetry']:.1e}", flush=True)
            print(f"      {_summary_line(sh)}")
            print(f"      with rtol_zero {noise:.0e} (10 x asymmetry): {_summary_line(sn)}")
            print(f"    Gauss-Newton 2 J^T J: {ginfo['seconds']:.1f} s ({ginfo['n_jvp']} jvps); max|H - G| / max|H| "
                  f"{row['max_abs_H_minus_G_rel']:.2e}")
            print(f"      {_summary_line(sg)}", flush=True)
    return out


def part_b(n_configs: int, steps: int, dtype: str, threads: int, max_seconds: float, verbose: bool) -> dict:
    """Lanczos iterations on SevenNet-0's exact Hessian-vector products; dict of numbers."""
    import numpy as np
    import torch

    from optbench.analysis import lanczos_tridiagonal
    from optbench.foundation.sevennet import SevenNetModel
    from optbench.io import read_dataset
    from optbench.objective.torch_objective import TorchObjective

    if not AIMD.is_file():
        sys.exit(f"curvature_costs: {AIMD} not found (../shared beside the repository)")
    torch.set_num_threads(threads)
    data = read_dataset(AIMD)
    t = time.perf_counter()
    obj = TorchObjective(SevenNetModel("7net-0", dtype=dtype), data[:n_configs], None)
    setup_s = time.perf_counter() - t
    x = obj.start.copy()
    grad_times = []
    for _ in range(2):  # the first includes TorchScript's warm-up
        t = time.perf_counter()
        obj.loss_grad(x)
        grad_times.append(time.perf_counter() - t)
    atoms = sum(c.n_atoms for c in data.configs[:n_configs])
    out = {"model": "7net-0", "dtype": dtype, "threads": threads, "n_params": obj.n_params, "n_configs": n_configs,
           "n_atoms": atoms, "setup_s": setup_s, "gradient_s": grad_times, "hvp_s": []}
    if verbose:
        print(f"(b) SevenNet-0 {dtype}: {obj.n_params} parameters, {n_configs} configurations ({atoms} atoms), "
              f"{threads} torch threads; set-up {setup_s:.1f} s; gradient {grad_times[0]:.1f} s (first), "
              f"{grad_times[1]:.1f} s", flush=True)
    start = time.perf_counter()

    class Stop(Exception):
        pass

    def matvec(v):
        if out["hvp_s"] and time.perf_counter() - start > max_seconds:
            raise Stop
        t = time.perf_counter()
        hv = obj.hvp(x, v)
        out["hvp_s"].append(time.perf_counter() - t)
        if verbose:
            print(f"    product {len(out['hvp_s'])}: {out['hvp_s'][-1]:.1f} s", flush=True)
        return hv

    v0 = np.random.default_rng(0).standard_normal(obj.n_params)
    try:
        alpha, beta = lanczos_tridiagonal(matvec, v0, steps)
        out["complete"] = True
    except Stop:
        alpha = beta = None
        out["complete"] = False
    done = len(out["hvp_s"])
    out["lanczos_s"] = time.perf_counter() - start
    out["products"] = done
    # a later product costs like the median of the steady ones (the first includes warm-up)
    steady = float(np.median(out["hvp_s"][1:] if done > 1 else out["hvp_s"]))
    out["hvp_median_s"] = steady
    out["extrapolated_s"] = out["lanczos_s"] if out["complete"] else out["hvp_s"][0] + (steps - 1) * steady
    if alpha is not None:
        from scipy.linalg import eigh_tridiagonal

        ritz = eigh_tridiagonal(alpha, beta, eigvals_only=True) if alpha.size > 1 else alpha
        out["ritz_min"], out["ritz_max"] = float(ritz[0]), float(ritz[-1])
    if verbose:
        if out["complete"]:
            print(f"  {steps} Lanczos iterations: {out['lanczos_s']:.1f} s (median product {steady:.1f} s = "
                  f"{steady / grad_times[1]:.1f} gradients); Ritz values in [{out['ritz_min']:.4e}, "
                  f"{out['ritz_max']:.4e}]")
        else:
            print(f"  stopped after {done} products ({out['lanczos_s']:.1f} s > --max-seconds {max_seconds:g}); "
                  f"EXTRAPOLATED: {steps} iterations ~ {out['extrapolated_s']:.0f} s (median product "
                  f"{steady:.1f} s = {steady / grad_times[1]:.1f} gradients)")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=("a", "b", "both"), default="both")
    p.add_argument("--threads", type=int, default=2, help="engine threads (a), torch threads (b)")
    p.add_argument("--lbfgs-iters", type=int, default=30)
    p.add_argument("--all-columns", action="store_true", help="(a): difference every column of the Hessian")
    p.add_argument("--configs", type=int, default=20, help="Mo_AIMD configurations (b)")
    p.add_argument("--lanczos-steps", type=int, default=20)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--max-seconds", type=float, default=600.0, help="stop (b)'s iterations after this")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    verbose = not args.json
    result = {}
    if args.part in ("a", "both"):
        result["mtp"] = part_a(args.threads, args.lbfgs_iters, args.all_columns, verbose)
    if args.part in ("b", "both"):
        result["sevennet"] = part_b(args.configs, args.lanczos_steps, args.dtype, args.threads, args.max_seconds,
                                    verbose)
    if args.json:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
