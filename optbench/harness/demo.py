"""``make demo``: fit an MTP to generated Ag-Pd data with SciPy L-BFGS-B through the Objective.

Generates the default data set (ASE EMT labels; 240 training and 60 validation
configurations), builds an MTP of level 8 from the engine's own basis, fits it for a
bounded wall time, prints progress and the train/validation errors, and writes the
potential, the data and a JSON summary under the output folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from optbench.adapters.capi import Engine
from optbench.harness.data import write_cfg
from optbench.harness.generator import generate_agpd_split
from optbench.harness.objective import EngineObjective, LossWeights


def run(out: Path, level: int = 8, seconds: float = 60.0, seed: int = 0, threads: int | None = None,
        n_train: int = 240, n_valid: int = 60) -> dict:
    """Fit the demo potential; returns the summary written to ``out/summary.json``."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train, valid = generate_agpd_split(n_train, n_valid, seed=seed)
    write_cfg(train, out / "train.cfg")
    write_cfg(valid, out / "valid.cfg")
    print(f"generated {len(train)} training / {len(valid)} validation Ag-Pd configurations "
          f"({train.n_atoms} + {valid.n_atoms} atoms, EMT labels) in {time.perf_counter() - t0:.1f} s", flush=True)

    eng = Engine()
    if threads:
        eng.set_num_threads(threads)
    pot = eng.potential_from_spec(f"mtp level={level} species=2 min_dist=2.0 max_dist=5.0 radial_basis_size=8")
    obj = EngineObjective(eng, pot, train, valid, LossWeights(energy=1.0, forces=0.01, stress=0.0))
    x0 = obj.initial_params(seed, interval=1e-2)
    print(f"MTP level {level}: {obj.n_params} parameters; fitting with SciPy L-BFGS-B for at most {seconds:g} s "
          f"on {eng.get_num_threads()} thread(s)", flush=True)

    history: list[dict] = []
    start = time.perf_counter()

    def callback(intermediate_result):
        it = len(history) + 1
        elapsed = time.perf_counter() - start
        history.append({"iteration": it, "loss": float(intermediate_result.fun), "seconds": elapsed,
                        "configs_evaluated": obj.configs_evaluated})
        if it == 1 or it % 25 == 0:
            print(f"  iter {it:5d}  loss {intermediate_result.fun:.6e}  {elapsed:7.1f} s", flush=True)
        if elapsed > seconds:
            raise StopIteration

    res = minimize(obj.loss_grad, x0, jac=True, method="L-BFGS-B", callback=callback,
                   options={"maxiter": 100000, "maxfun": 200000, "ftol": 1e-15, "gtol": 1e-10})
    elapsed = time.perf_counter() - start
    x = res.x
    obj.save(x, out / f"mtp{level:02d}.mtp")
    m_train, m_valid = obj.evaluate(x, "train"), obj.evaluate(x, "valid")
    reason = "wall-time budget reached" if elapsed > seconds else str(res.message)
    print(f"stopped after {res.nit} iterations, {elapsed:.1f} s: {reason}")
    print(f"train:      {m_train.summary()}")
    print(f"validation: {m_valid.summary()}")
    summary = {"level": level, "n_params": obj.n_params, "seconds": elapsed, "nit": int(res.nit),
               "nfev": int(res.nfev), "message": reason, "final_loss": float(res.fun),
               "train": m_train.to_dict(), "valid": m_valid.to_dict(), "history": history}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {out / f'mtp{level:02d}.mtp'} and {out / 'summary.json'}")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the demo."""
    p = argparse.ArgumentParser(prog="python -m optbench.harness.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--level", type=int, default=8, help="MTP level (default 8)")
    p.add_argument("--seconds", type=float, default=60.0, help="wall-time budget of the fit (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="engine threads (default: all cores)")
    a = p.parse_args(argv)
    run(Path(a.out), a.level, a.seconds, a.seed, a.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
