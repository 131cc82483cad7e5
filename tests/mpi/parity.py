"""Run under `mpiexec -n N` (or alone): the numbers of one data-parallel objective that
tests/test_mpi.py compares between N = 1 and N = 2. Rank 0 writes them as JSON to argv[1].

The objective: MTP level 8 on 60 generated Ag-Pd configurations (20 held out), engine on
one thread. Written: loss and gradient on the whole set and on a batch, the validation
loss, train and validation metrics, the linear system, and the whole histories (points
and losses) of a BFGS run and a mini-batch Adam run; plus each rank's share (its
configurations, neighbour pairs, and the resident memory its share's engine data took).
"""

import json
import resource
import sys

import numpy as np

from optbench.io.generator import generate_agpd_split
from optbench.objective import LossWeights, build_objective
from optbench.objective.distributed import DistributedObjective, serve
from optbench.objective.sharding import local_objective
from optbench.parallel import world
from optbench.train import Budget, TrainSettings, train

MODEL = {"engine": "embedded", "spec": "mtp level=8 species=2 min_dist=2.0 max_dist=5.0"}


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def main(out: str) -> None:
    train_set, valid = generate_agpd_split(int(sys.argv[2]) if len(sys.argv) > 2 else 60, 20, seed=3)
    weights = LossWeights(energy=1.0, forces=0.01, stress=0.001)
    comm = world(timeout=60.0, force=len(sys.argv) > 3 and sys.argv[3] == "force")
    before = rss_kib()
    if comm is None:
        obj = build_objective(MODEL, train_set, valid, weights, threads=1)
        shares = [{"configs": len(train_set), "pairs": int(obj._train_ds.size()[2]), "rss_kib": rss_kib() - before}]
    else:
        local, shard = local_objective(comm, MODEL, train_set, valid, weights, threads=1)
        mine = {"configs": len(local.train), "pairs": int(local._train_ds.size()[2]), "rss_kib": rss_kib() - before,
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
        all_shares = comm.comm.gather(mine, root=0)
        if comm.rank != 0:
            serve(comm, local, shard)
            return
        obj = DistributedObjective(comm, local, shard)
        shares = all_shares
    x0 = obj.initial_params(1, 0.1)
    batch = np.array([3, 17, 41, 0, 29, 55, 8])
    loss, g = obj.loss_grad(x0)
    bl, bg = obj.loss_grad(x0, batch)
    A, b, r0 = obj.linear_system(x0)
    record = {
        "loss": loss, "grad": g.tolist(), "batch_loss": bl, "batch_grad": bg.tolist(),
        "loss_only": obj.loss(x0, batch), "valid_loss": obj.valid_loss(x0),
        "train_metrics": obj.evaluate(x0, "train").to_dict(), "valid_metrics": obj.evaluate(x0, "valid").to_dict(),
        "A": A.ravel().tolist(), "b": b.tolist(), "r0": r0, "shares": shares, "runs": {},
        "valid_atoms": [c.n_atoms for c in valid.configs],
    }
    for name, settings in (
            ("bfgs", TrainSettings(optimizer="bfgs", budget=Budget(epochs=40), seed=1, init_interval=0.1)),
            ("adam", TrainSettings(optimizer="adam", lr=1e-2, batch_size=8, budget=Budget(epochs=6), seed=1,
                                   init_interval=0.1, eval_every=25))):
        r = train(obj, settings)
        record["runs"][name] = {"x": r.x.tolist(), "steps": r.steps, "loss": list(r.history.loss),
                                "status": str(r.status), "valid_force_rmse": r.valid.force_rmse}
    if comm is not None:
        obj.close()
    with open(out, "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main(sys.argv[1])
