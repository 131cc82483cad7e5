"""Run under `mpiexec -n 2`: SevenNet-0 fine-tuning's objective spread over two ranks
against the same objective in one process, on 4 generated Ag-Pd configurations. Rank 0
writes JSON to argv[1]: both energy shifts, losses, gradients' largest relative
difference, and both training force RMSEs."""

import json
import sys

import numpy as np

from optbench.io.generator import generate_agpd_split
from optbench.objective import LossWeights, build_objective
from optbench.objective.distributed import DistributedObjective, serve
from optbench.objective.sharding import local_objective
from optbench.parallel import world

MODEL = {"kind": "sevennet", "model": "7net-0", "dtype": "float64", "train_groups": "readout"}

if __name__ == "__main__":
    data, _ = generate_agpd_split(4, 0, seed=6)
    weights = LossWeights(energy=1.0, forces=0.01, stress=0.001)
    comm = world(timeout=300.0)
    local, shard = local_objective(comm, MODEL, data, None, weights, threads=1)
    if comm.rank != 0:
        sys.exit(serve(comm, local, shard))
    obj = DistributedObjective(comm, local, shard)
    x = obj.initial_params(0, None)
    loss, g = obj.loss_grad(x)
    batch_loss, batch_g = obj.loss_grad(x, np.array([3, 0]))
    rmse = obj.evaluate(x, "train").force_rmse
    obj.close()
    plain = build_objective(MODEL, data, None, weights, threads=1)
    x1 = plain.initial_params(0, None)
    loss1, g1 = plain.loss_grad(x1)
    batch_loss1, batch_g1 = plain.loss_grad(x1, np.array([3, 0]))
    rel = lambda a, b: float(np.max(np.abs(a - b)) / np.max(np.abs(a)))  # noqa: E731
    with open(sys.argv[1], "w") as f:
        json.dump({"shift": [plain.energy_shift, local.energy_shift], "start": rel(x1, x), "loss": [loss1, loss],
                   "grad": rel(g1, g), "batch_loss": [batch_loss1, batch_loss], "batch_grad": rel(batch_g1, batch_g),
                   "force_rmse": [plain.evaluate(x1, "train").force_rmse, rmse], "shares": shard.train_bounds.tolist()},
                  f)
