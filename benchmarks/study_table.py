"""The study's question on the study's data: how good a potential each optimizer reaches
within a wall budget, and when it first reaches the study's native-BFGS quality.

    python benchmarks/study_table.py                      # PdAg, MTP-16, bfgs varpro lm, 600 s each
    python benchmarks/study_table.py --dataset emt --seconds 45   # MLIP-3's EMT set, MTP-8
    python benchmarks/study_table.py --dataset emt --seconds 30 --optimizers bfgs,lm,gn_tr --target-mev 3
    python benchmarks/study_table.py --json               # also one JSON object on stdout

Data: `--dataset pdag` is the study's AgPd split (../shared/datasets/pdag_study, 1191 / 240
configurations; its validation set is inside its training set, see optbench.io.hygiene),
with the study's settings: MTP level 16, min_dist 1.9, max_dist 5.0, radial basis 8,
energy weight 1 per configuration / N, forces 0.01, stress 0, start = engine defaults +
uniform noise 0.1. `--dataset emt` is MLIP-3's emt_train.cfg / emt_val.cfg
(../shared/reference/mlip3/configs, 240 / 60 configurations), MTP level 8, noise 0.01.
Targets: the study's native BFGS (EPA <= 2.10 meV/atom and force <= 47.5 meV/A together,
2810 s on 8 MPI ranks) for pdag; for emt the 2.67 meV/atom MLIP-3's own `mlp train` reached
after 200 BFGS iterations (404 s, serial). Step-based optimizers take batches (`--batch-size`,
default full batch for pdag, 32 for emt) and are evaluated once per epoch, the others every
iteration. Times are training seconds (the evaluations excluded). Each run uses its whole
budget: the best errors are those within it, the time to target the first evaluation at it.
A benchmark, not a test: nothing is asserted.

`--dataset emt` replaces the former time-to-quality script; the asv suite
(bench_quality.EmtTarget) reuses DATASETS, data_files, train_one and first_at_target.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATASETS = {
    "pdag": {"train": SHARED / "datasets/pdag_study/PdAg_train.json",
             "valid": SHARED / "datasets/pdag_study/PdAg_valid.json",
             "spec": "mtp level=16 species=2 min_dist=1.9 max_dist=5.0 radial_basis_size=8", "noise": 0.1,
             "target_epa": 2.10e-3, "target_force": 47.5e-3, "batch": None, "optimizers": "bfgs,varpro,lm",
             "reference": {"what": "the study's MLIP-4 native BFGS (mean of 5 seeds)", "seconds": 2810.0, "cores": 8}},
    "emt": {"train": SHARED / "reference/mlip3/configs/emt_train.cfg",
            "valid": SHARED / "reference/mlip3/configs/emt_val.cfg",
            "spec": "mtp level=8 species=2 min_dist=2.0 max_dist=5.0", "noise": 0.01, "target_epa": 2.67e-3,
            "target_force": None, "batch": 32, "optimizers": "bfgs,lbfgs,varpro,lm,adam_lbfgs,adam",
            "reference": {"what": "MLIP-3's mlp train, 200 BFGS iterations", "seconds": 404.0, "cores": 1}},
}


def data_files(dataset: str, folder: str | Path | None = None) -> tuple[Path, Path]:
    """The training and validation files of DATASETS[dataset]; in `folder` (the same file
    names) instead of ../shared when given."""
    d = DATASETS[dataset]
    if folder is None:
        return d["train"], d["valid"]
    return Path(folder) / d["train"].name, Path(folder) / d["valid"].name


def spec_of(dataset: str, level: int | None = None) -> str:
    """DATASETS[dataset]'s model spec, with MTP level `level` when given."""
    spec = DATASETS[dataset]["spec"]
    return spec if level is None else re.sub(r"level=\d+", f"level={level}", spec)


def train_one(eng, dataset: str, sets, optimizer: str, budget, *, seed: int = 0, batch_size: int | None = None,
              level: int | None = None, stop_at_epa: float | None = None):
    """One optbench.train run of `optimizer` on `sets` = (train, valid) with DATASETS[dataset]'s
    model (MTP level `level` instead when given), weights and initial noise, on engine `eng`,
    within `budget` (an optbench Budget); the run ends early at a validation EPA RMSE (eV/atom)
    at or below `stop_at_epa` when given. Step-based optimizers (and adam_lbfgs's Adam phase)
    take batches of `batch_size` (None: full batch) and are evaluated once per epoch, the others
    every iteration. Returns the RunResult."""
    from optbench.objective import EngineObjective, LossWeights
    from optbench.optim import REGISTRY, StepEntry
    from optbench.train import TrainSettings, train

    d = DATASETS[dataset]
    step_based = isinstance(REGISTRY[optimizer], StepEntry)
    obj = EngineObjective(eng, eng.potential_from_spec(spec_of(dataset, level)), *sets, LossWeights(energy=1.0, forces=0.01, stress=0.0))
    return train(obj, TrainSettings(optimizer=optimizer, budget=budget, seed=seed, init_interval=d["noise"],
                                    batch_size=batch_size if step_based or optimizer == "adam_lbfgs" else None,
                                    eval_every=None if step_based else 1, target_valid_epa=stop_at_epa))


def first_at_target(evals: list[dict], target_epa: float, target_force: float | None = None) -> dict | None:
    """The first evaluation row of a run's history (RunResult.history.evals: "seconds",
    "configs", "valid_epa_rmse", ...) whose validation EPA RMSE is at or below `target_epa`
    (and force RMSE at or below `target_force` when given; eV/atom, eV/A), or None."""
    for e in evals:
        ok = e.get("valid_epa_rmse", float("inf")) <= target_epa
        if target_force is not None:
            ok = ok and e.get("valid_force_rmse", float("inf")) <= target_force
        if ok:
            return e
    return None


def _mev(x: float | None) -> float | None:
    return None if x is None else 1e3 * x


def run(dataset: str, optimizers: list[str], seconds: float, threads: int, seed: int, *, data: str | None = None,
        target_mev: float | None = None, batch_size: int | None = None, level: int | None = None) -> dict:
    """Best validation EPA (meV/atom) and force RMSE (meV/A) within `seconds` of training,
    and the training seconds and configurations evaluated to the target, per optimizer;
    the fastest to the target beside the reference run."""
    from optbench.engine.capi import Engine
    from optbench.io import read_dataset
    from optbench.optim import REGISTRY
    from optbench.train import Budget

    d = DATASETS[dataset]
    files = data_files(dataset, data)
    for f in files:
        if not f.is_file():
            sys.exit(f"study_table: {f} not found (../shared beside the repository, or --data FOLDER)")
    unknown = [n for n in optimizers if n not in REGISTRY]
    if unknown:
        sys.exit(f"study_table: unknown optimizer(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    sets = tuple(read_dataset(f) for f in files)
    target_epa = d["target_epa"] if target_mev is None else 1e-3 * target_mev
    ref = d["reference"] if target_mev is None and level is None else None  # it ran the default problem
    batch = d["batch"] if batch_size is None else batch_size
    eng = Engine()
    eng.set_num_threads(threads)
    out = {"dataset": dataset, "train": str(files[0]), "valid": str(files[1]), "seconds": seconds,
           "threads": threads, "seed": seed, "spec": spec_of(dataset, level), "batch_size": batch,
           "target_epa_mev": _mev(target_epa), "target_force_mev": _mev(d["target_force"]),
           "reference": ref, "runs": {}}
    for name in optimizers:
        r = train_one(eng, dataset, sets, name, Budget(seconds=seconds), seed=seed, batch_size=batch, level=level)
        hit = first_at_target(r.history.evals, target_epa, d["target_force"])
        best = r.best_valid
        row = out["runs"][name] = {
            "status": str(r.status), "message": r.message, "steps": r.steps, "configs_evaluated": r.configs_evaluated,
            "train_seconds": r.train_seconds,
            "best_valid_epa_mev": _mev(best.epa_rmse) if best else None,
            "best_valid_force_mev": _mev(best.force_rmse) if best else None,
            "seconds_to_target": None if hit is None else hit["seconds"],
            "configs_to_target": None if hit is None else hit.get("configs")}
        errors = ("no validation errors" if best is None else
                  f"best valid EPA {row['best_valid_epa_mev']:.3f} meV/atom, force {row['best_valid_force_mev']:.1f} meV/A")
        when = "not reached" if hit is None else f"at {hit['seconds']:.1f} s, {hit.get('configs')} configurations"
        print(f"{name:10s} {r.status!s:9s} {r.steps:5d} steps  {errors}; target {when}", file=sys.stderr, flush=True)
    reached = [(row["seconds_to_target"], name) for name, row in out["runs"].items() if row["seconds_to_target"] is not None]
    out["fastest"] = None
    if reached:
        s, name = min(reached)
        out["fastest"] = {"optimizer": name, "seconds": s}
        line = f"fastest to the target: {name} at {s:.1f} s on {threads} threads"
        if ref is not None and s > 0:
            out["fastest"].update(times_sooner=ref["seconds"] / s,
                                  times_fewer_core_seconds=ref["seconds"] * ref["cores"] / (s * threads))
            line += f" ({ref['what']}: {ref['seconds']:g} s on {ref['cores']} core(s))"
        print(line, file=sys.stderr, flush=True)
    else:
        print("no optimizer reached the target within the budget", file=sys.stderr, flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=sorted(DATASETS), default="pdag")
    p.add_argument("--optimizers", help="comma-separated names (default: bfgs,varpro,lm for pdag, "
                                         "bfgs,lbfgs,varpro,lm,adam_lbfgs,adam for emt)")
    p.add_argument("--seconds", type=float, default=600.0, help="training seconds per optimizer (default 600)")
    p.add_argument("--threads", type=int, default=2, help="engine threads (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="folder holding the data set's two files (default: their place in ../shared)")
    p.add_argument("--target-mev", type=float, help="validation EPA RMSE target, meV/atom (default: the data set's)")
    p.add_argument("--batch-size", type=int, help="batch of the step-based optimizers (default: full batch for "
                                                  "pdag, 32 for emt)")
    p.add_argument("--level", type=int, help="MTP level (default: the data set's, 16 for pdag, 8 for emt)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on stdout")
    a = p.parse_args()
    names = a.optimizers if a.optimizers is not None else DATASETS[a.dataset]["optimizers"]
    out = run(a.dataset, [s for s in names.split(",") if s], a.seconds, a.threads, a.seed, data=a.data,
              target_mev=a.target_mev, batch_size=a.batch_size, level=a.level)
    if a.json:
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
