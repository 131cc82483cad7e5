"""MLIP's own trainer as one more optimizer: "native" runs `mlp train` (MLIP-3 / MLIP-4
command line, through optbench/mlip/mlp.py) on the run's training set from the run's
starting potential, and reports it in the same record as every other optimizer.

What the run record holds for it, and how it differs from the other optimizers:

* history: one row per BFGS iteration from MLIP's log (pre-training first, when MLIP
  does one), with the loss `f` as MLIP prints it (its own normalisation, including the
  radial-normalisation penalty, so not comparable digit for digit with our loss) and
  MLIP's own time stamps; configurations evaluated are counted as one pass over the
  training set per iteration, a lower bound (MLIP does not print its line-search
  evaluations);
* budget: epochs and configuration budgets become MLIP's `--iteration_limit` (one pass
  per iteration); a wall-time budget becomes the watchdog's time limit. MLIP saves the
  potential only at the end, so a run killed by the time limit has no final potential:
  its status is "timed_out" and its metrics are those of the starting point;
* the final potential is read back, with the `scaling` and `min_dist` MLIP chose, and
  evaluated by our engine like any other run; the `#MVS` active-learning selection
  section MLIP appends to it is not read, and the run's notes say so;
* the working directory (training set, start and final potential, MLIP's log) is kept,
  and named in the run's notes.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from optbench.io import write_cfg
from optbench.mlip.mlp import find_mlp, run_mlp_train, train_command
from optbench.optim.base import DriverEntry, Hyper
from optbench.optim.loop import StopRun
from optbench.status import RunStatus


def _iteration_limit(tracker, limit: int) -> tuple[int, bool]:
    """MLIP's iteration limit: the hyperparameter, capped by the run's epoch and
    configuration budgets (one pass over the training set per iteration); the flag says
    whether the budget set it."""
    budget = tracker.settings.budget
    caps = []
    if budget.epochs is not None:
        caps.append(int(math.floor(budget.epochs)))
    if budget.evals is not None:
        caps.append(int(budget.evals) // tracker.n_train)
    cap = min(caps) if caps else None
    if cap is not None and cap < limit:
        return max(cap, 1), True
    return limit, False


def _run_native(tracker, x0, lr, hyper, shuffle_rng, perturb_rng, info, notes):

    h = REGISTRY["native"].check(hyper)
    objective = tracker.objective
    if getattr(objective, "kind", "mtp") != "mtp":
        raise ValueError(f"the native optimizer runs MLIP's mlp train, which trains MTP potentials (.mtp/.almtp); "
                         f"this objective's potential is an {objective.kind.upper()}")
    try:
        # An engine = "mlp-cli" model names its program; the hyperparameter overrides it.
        mlp = find_mlp(h["mlp"] or getattr(tracker.objective, "mlp", None))
    except FileNotFoundError as err:
        raise ValueError(str(err)) from None  # a setting to fix, not an optimizer failure
    if h["format"] not in ("almtp", "mtp"):
        raise ValueError(f"format must be 'almtp' (MLIP-3) or 'mtp' (MLIP-2), got {h['format']!r}")
    for needed in ("train", "weights", "save", "load_potential_file"):
        if not hasattr(objective, needed):
            raise ValueError(f"the native optimizer needs an Objective with '{needed}' (the embedded engine's)")

    workdir = Path(h["workdir"]) if h["workdir"] else Path(tempfile.mkdtemp(prefix="optbench-native-"))
    workdir.mkdir(parents=True, exist_ok=True)
    start = workdir / f"start.{h['format']}"
    final = workdir / f"trained.{h['format']}"
    train_cfg = workdir / "train.cfg"
    final.unlink(missing_ok=True)  # a file left by an earlier run must not pass for this one's
    objective.save(x0, start)
    write_cfg(objective.train, train_cfg)
    w = objective.weights
    limit, limit_from_budget = _iteration_limit(tracker, int(h["iteration_limit"]))
    cmd = train_command(
        mlp, start, train_cfg, final, energy_weight=w.energy, force_weight=w.forces, stress_weight=w.stress,
        weight_scaling=w.weight_scaling, weight_scaling_forces=w.weight_scaling_forces,
        iteration_limit=limit, tolerance=h["tolerance"], init_random=bool(h["init_random"]))
    seconds = tracker.settings.budget.seconds
    timeout = math.inf if seconds is None else max(seconds - tracker.train_seconds(), 1.0)
    notes.append(f"native: {' '.join(cmd)}  (in {workdir}; log {workdir / 'mlp_train.log'})")
    if tracker.progress:
        tracker.progress(f"native: running {mlp} train, iteration limit {limit}"
                         + ("" if seconds is None else f", time limit {timeout:.0f} s"))

    t_start = tracker.train_seconds()
    run = run_mlp_train(cmd, workdir / "mlp_train.log", timeout if math.isfinite(timeout) else 10 ** 9,
                                  echo=False)
    n = tracker.n_train
    for i, it in enumerate(run.log.iterations):
        stamp = it.time_s if it.time_s is not None else run.wall_s * (i + 1) / len(run.log.iterations)
        tracker.record_external(it.loss, (i + 1) * n, t_start + stamp)
    pre = len(run.log.pretrain_iterations)
    if pre:
        notes.append(f"native: {pre} of the {len(run.log.iterations)} logged iterations are MLIP's pre-training")
    notes.append("native: history losses are MLIP's printed f; configurations are counted as one pass per "
                 "iteration (a lower bound)")
    info.update(nit=len(run.log.train_iterations), nfev=None, success=run.status == RunStatus.CONVERGED,
                message=f"mlp train: {run.message}")
    if run.status == RunStatus.TIMED_OUT:
        raise StopRun(RunStatus.TIMED_OUT, f"mlp train {run.message}; MLIP saves only at the end, so the metrics are "
                                   f"of the starting point (log kept: {run.log_path})")
    if run.status == RunStatus.FAILED:
        raise StopRun(RunStatus.FAILED, f"{run.message} (log kept: {run.log_path})")
    tracker.x = objective.load_potential_file(final)
    # What the engine passed over in MLIP's file (its #MVS selection section, comments).
    notes.extend(f"native: {note}" for note in objective.potential.info().get("notes", []))
    if run.status == RunStatus.CONVERGED:
        info["status"] = RunStatus.CONVERGED
    else:
        info["status"] = RunStatus.BUDGET if limit_from_budget else RunStatus.STOPPED


REGISTRY = {
    "native": DriverEntry(
        _run_native,
        {
            "mlp": Hyper("", "the mlp binary (empty: $OPTBENCH_MLP, then mlp on PATH)"),
            "iteration_limit": Hyper(1000, "MLIP's --iteration_limit (capped by epoch/evals budgets)"),
            "tolerance": Hyper(1e-3, "MLIP's --tolerance (relative loss decrease that ends BFGS)"),
            "init_random": Hyper(False, "MLIP's --init_random: let MLIP draw the start itself"),
            "format": Hyper("almtp", "potential file format mlp reads: almtp (MLIP-3) or mtp (MLIP-2)"),
            "workdir": Hyper("", "where the training set, potentials and log go (empty: a new temp dir)"),
        },
        0.0,
        "MLIP's own trainer (mlp train: its BFGS, rescaling, linear re-solves), full batch",
    ),
}
