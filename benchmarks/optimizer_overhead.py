"""The training loop's own cost per step beside the engine's loss_grad.

For each step-based optimizer, runs `--steps` mini-batch steps (batch size 32) of MTP level
16 on the generated Ag-Pd set and splits the wall time of the loop into the engine call
(Objective.loss_grad, timed around each call) and everything else (batching, clipping,
the optimizer update, history). Target: overhead under 2 % of the engine time.

    python benchmarks/optimizer_overhead.py [--level 16] [--batch-size 32] [--steps 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time


class TimedObjective:
    """Wraps an Objective and accumulates the seconds spent in loss_grad."""

    def __init__(self, inner):
        self.inner = inner
        self.engine_seconds = 0.0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def loss_grad(self, x, batch=None):
        t = time.perf_counter()
        try:
            return self.inner.loss_grad(x, batch)
        finally:
            self.engine_seconds += time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--level", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-configs", type=int, default=240)
    p.add_argument("--optimizers", nargs="*", help="default: every step-based optimizer")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    from optbench.engine.capi import Engine
    from optbench.optim.budget import Budget
    from optbench.io.generator import generate_agpd
    from optbench.objective import EngineObjective, LossWeights
    from optbench.optim import REGISTRY, StepEntry
    from optbench.train import TrainSettings, train

    data = generate_agpd(args.n_configs, seed=0)
    eng = Engine()
    eng.set_num_threads(args.threads)
    pot = eng.potential_from_spec(f"mtp level={args.level} species=2 min_dist=2.0 max_dist=5.0")
    base = EngineObjective(eng, pot, data, None, LossWeights(energy=1.0, forces=0.01, stress=0.0))
    names = args.optimizers or [n for n, e in REGISTRY.items() if isinstance(e, StepEntry)]
    rows = []
    for name in names:
        obj = TimedObjective(base)
        settings = TrainSettings(optimizer=name, batch_size=args.batch_size, seed=0,
                                 budget=Budget(evals=args.steps * args.batch_size), eval_every=10 ** 9)
        r = train(obj, settings)
        loop = r.train_seconds - obj.engine_seconds
        rows.append({"optimizer": name, "steps": r.steps, "engine_s": obj.engine_seconds, "overhead_s": loop,
                     "overhead_fraction": loop / obj.engine_seconds, "status": r.status})
        if not args.json:
            print(f"{name:<14s} engine {1e3 * obj.engine_seconds / r.steps:8.2f} ms/step   "
                  f"harness {1e3 * loop / r.steps:6.3f} ms/step   overhead {100 * loop / obj.engine_seconds:5.2f} %",
                  flush=True)
    worst = max(rows, key=lambda r: r["overhead_fraction"])
    if args.json:
        print(json.dumps({"level": args.level, "batch_size": args.batch_size, "n_params": pot.n_params,
                          "threads": args.threads, "rows": rows, "worst": worst}, indent=1))
    else:
        print(f"worst: {worst['optimizer']} {100 * worst['overhead_fraction']:.2f} % (target < 2 %), "
              f"{pot.n_params} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
