"""Wall time each optimizer needs to reach a validation error MLIP-3's own BFGS reached.

Trains MTP level 8 on ``../shared/reference/mlip3/configs/emt_train.cfg`` (energy weight 1,
force weight 0.01, stress 0) and reports, per optimizer, the training seconds until the
validation EPA RMSE on ``emt_val.cfg`` is at or below the target (default 2.67 meV/atom:
what ``mlp train`` reached after 200 BFGS iterations, 404 s, on this machine kind; see the
reference README). Training seconds exclude the periodic evaluations of the metrics.
Target of the project: the best optimizer under 40 s on 2 cores.

    python benchmarks/time_to_quality.py [--optimizers lbfgs varpro ...] [--threads 2]
                                         [--seconds 120] [--target-mev 2.67] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = ["lbfgs", "bfgs", "varpro", "alternating", "adam_lbfgs", "adam", "schedulefree"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--optimizers", nargs="+", default=DEFAULT)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "reference" / "mlip3" / "configs"),
                   help="folder with emt_train.cfg and emt_val.cfg")
    p.add_argument("--level", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=120.0, help="budget per optimizer (training seconds)")
    p.add_argument("--target-mev", type=float, default=2.67, help="validation EPA RMSE target, meV/atom")
    p.add_argument("--batch-size", type=int, default=32, help="for the step-based optimizers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    from optbench.engine.capi import Engine
    from optbench.optim.budget import Budget
    from optbench.io import read_cfg
    from optbench.objective import EngineObjective, LossWeights
    from optbench.optim import REGISTRY, StepEntry
    from optbench.train import TrainSettings, train

    folder = Path(args.data)
    if not (folder / "emt_train.cfg").is_file():
        print(f"error: {folder / 'emt_train.cfg'} not found (the shared reference data; --data FOLDER)", file=sys.stderr)
        return 2
    train_set, valid = read_cfg(folder / "emt_train.cfg"), read_cfg(folder / "emt_val.cfg")
    eng = Engine()
    eng.set_num_threads(args.threads)
    rows = []
    for name in args.optimizers:
        pot = eng.potential_from_spec(f"mtp level={args.level} species=2 min_dist=2.0 max_dist=5.0")
        obj = EngineObjective(eng, pot, train_set, valid, LossWeights(energy=1.0, forces=0.01, stress=0.0))
        step_based = isinstance(REGISTRY[name], StepEntry)
        settings = TrainSettings(optimizer=name, budget=Budget(seconds=args.seconds), seed=args.seed,
                                 batch_size=args.batch_size if step_based or name == "adam_lbfgs" else None,
                                 eval_every=None if step_based else 2, target_valid_epa=args.target_mev * 1e-3)
        r = train(obj, settings)
        reached = r.status == "target"
        rows.append({"optimizer": name, "reached": reached,
                     "seconds": r.train_seconds if reached else None,
                     "best_valid_epa_mev": 1e3 * r.best_valid.epa_rmse if r.best_valid else None,
                     "steps": r.steps, "configs_evaluated": r.configs_evaluated, "status": r.status,
                     "message": r.message})
        if not args.json:
            t = f"{r.train_seconds:7.1f} s" if reached else f"   > {args.seconds:g} s"
            print(f"{name:<14s} {t}   best valid EPA {rows[-1]['best_valid_epa_mev']:.3f} meV/atom   "
                  f"{r.steps} steps, {r.configs_evaluated} configs   ({r.status})", flush=True)
    best = min((r for r in rows if r["reached"]), key=lambda r: r["seconds"], default=None)
    summary = {"target_mev": args.target_mev, "level": args.level, "threads": args.threads,
               "budget_seconds": args.seconds, "mlip3_bfgs_seconds": 404.0, "rows": rows,
               "best": None if best is None else {"optimizer": best["optimizer"], "seconds": best["seconds"]}}
    if args.json:
        print(json.dumps(summary, indent=1))
    elif best:
        print(f"best: {best['optimizer']} in {best['seconds']:.1f} s "
              f"(MLIP-3 BFGS: 404 s; {404.0 / best['seconds']:.0f}x faster)")
    else:
        print("no optimizer reached the target within the budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
