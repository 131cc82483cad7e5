"""What each Jacobian product costs on the study's AgPd training set (MTP level 16), the
measurement behind the choice described in engine/README.md ("Jacobian products").

    python benchmarks/jacobian_costs.py [--threads 2] [--repeat 5] [--json]

Times (best of --repeat) of: a prediction (energies, forces, stresses: one J v column by a
forward difference), loss_grad, jt_product (J^T u), linear_system, linear_design, the
design through the Objective (scaled residual rows), the QR of the design and the SVD of a
122 673 x 128 matrix (the reduced radial Jacobian's shape). A benchmark: nothing asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "pdag_study"
SPEC = "mtp level=16 species=2 min_dist=1.9 max_dist=5.0 radial_basis_size=8"


def _best(f, repeat: int) -> float:
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(threads: int, repeat: int) -> dict:
    """Seconds per call of each product (dict name -> seconds), plus the problem's sizes."""
    from optbench.engine.capi import Engine
    from optbench.io import read_dataset
    from optbench.objective import EngineObjective, LossWeights

    if not (DATA / "PdAg_train.json").is_file():
        sys.exit(f"jacobian_costs: {DATA} not found (../shared beside the repository)")
    eng = Engine()
    eng.set_num_threads(threads)
    obj = EngineObjective(eng, eng.potential_from_spec(SPEC), read_dataset(DATA / "PdAg_train.json"), None,
                          LossWeights(energy=1.0, forces=0.01, stress=0.0))
    x = obj.initial_params(0, 0.1)
    pot, ds, w = obj.potential, obj._train_ds, obj._w_train
    pot.set_params(x)
    r = obj.residuals(x)
    D, _ = obj.linear_design(x)
    lin = obj.linear_slice
    uF = np.ones(3 * int(ds.atoms_per_config.sum()))
    M = np.random.default_rng(0).standard_normal((r.size, lin.start))  # the reduced radial Jacobian's shape
    rows = {
        "predict": lambda: eng.predict(pot, ds),
        "loss_grad": lambda: eng.loss_grad(pot, ds, w),
        "jt_product": lambda: eng.jt_product(pot, ds, np.ones(ds.n_configs), uF, None),
        "linear_system": lambda: eng.linear_system(pot, ds, w),
        "linear_design": lambda: eng.linear_design(pot, ds),
        "objective_linear_design": lambda: obj.linear_design(x),
        "qr_of_design": lambda: np.linalg.qr(D),
        "svd_radial_shape": lambda: np.linalg.svd(M, full_matrices=False),
    }
    out = {"threads": threads, "repeat": repeat, "n_configs": ds.n_configs, "n_residuals": int(r.size),
           "n_params": obj.n_params, "n_linear": lin.stop - lin.start, "seconds": {}}
    for name, f in rows.items():
        out["seconds"][name] = _best(f, repeat)
        print(f"{name:24s} {out['seconds'][name]:.3f} s", file=sys.stderr, flush=True)
    s = out["seconds"]
    out["dense_jacobian_seconds"] = {"difference columns for all": obj.n_params * s["predict"],
                                     "design + difference columns": s["objective_linear_design"]
                                     + lin.start * s["predict"]}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    out = measure(a.threads, a.repeat)
    if a.json:
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
