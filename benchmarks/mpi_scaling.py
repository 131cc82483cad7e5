"""Strong scaling of one data-parallel loss + gradient (optbench.objective.distributed), and
a model of it up to 64 ranks.

Measured: MTP-16 (`mtp level=16 species=2 min_dist=2.0 max_dist=5.0`, 222 parameters; the
engine on 1 thread a rank) on the study's PdAg training set
(../shared/datasets/pdag_study/PdAg_train.json, 1191 Pd16Ag16 cells; MLIP's default
weights). One loss + gradient on the whole set, median of --repeats after a warm-up:

- the plain objective (no MPI);
- the data-parallel code on 1 rank (`world(force=True)`) and on 2 ranks (`mpiexec -n 2`):
  efficiency = t(1 rank) / (2 t(2 ranks));
- on 2 ranks, what one command's communication costs on this machine (shared memory):
  the broadcasts, the outcome allgather, and the combination (a Gatherv of the leaves'
  rows for 223 values; a Reduce of 842 624 values, the path a foundation model's
  gradient takes), each the median of 50.

Model (printed with the numbers it rests on): t(N) = t_compute(1) x imbalance(N) / N +
t_comm(N), with imbalance(N) the largest rank's share of the neighbour pairs over the
mean, from the real partition of PdAg_train's 128 leaves over N ranks, and t_comm(N) =
ceil(log2 N) x (4 alpha) (the header and parameter broadcasts and the outcome allgather,
as latency-bound trees) + the combination: gathering the leaves' rows (L x (P + 1) x 8
bytes into rank 0: alpha log2 N + bytes / beta) for P = 222, or a reduction of (P + 1)
doubles (2 alpha log2 N + 2 bytes / beta, reduce-scatter + gather) for P = 842 623.
alpha and beta: measured here between 2 ranks (shared memory), and for a cluster the
stated network figures --alpha-us / --beta-gbs (defaults 2 us, 10 GB/s: an assumption of
an InfiniBand-class network, not a measurement).

    .venv/bin/python benchmarks/mpi_scaling.py [--repeats 5] [--alpha-us 2] [--beta-gbs 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PDAG = REPO.parent / "shared" / "datasets" / "pdag_study" / "PdAg_train.json"
MODEL = {"engine": "embedded", "spec": "mtp level=16 species=2 min_dist=2.0 max_dist=5.0"}
BIG = 842_623  # the largest gradient the model is asked about (parameters)


def _median_time(f, repeats: int) -> float:
    f()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def worker(out: str, repeats: int, mode: str) -> None:
    """Under mpiexec (or alone): time one loss + gradient; rank 0 writes JSON to `out`."""
    from optbench.io import read_dataset
    from optbench.objective import LossWeights, build_objective
    from optbench.objective.distributed import DistributedObjective, serve
    from optbench.objective.sharding import local_objective
    from optbench.parallel import world

    data = read_dataset(PDAG)
    weights = LossWeights()
    if mode == "plain":
        obj = build_objective(MODEL, data, None, weights, threads=1)
        x = obj.initial_params(0, 0.1)
        record = {"seconds": _median_time(lambda: obj.loss_grad(x), repeats), "ranks": 1}
        Path(out).write_text(json.dumps(record))
        return
    comm = world(timeout=600.0, force=True)
    local, shard = local_objective(comm, MODEL, data, None, weights, threads=1)
    del data
    if comm.rank != 0:
        serve(comm, local, shard)
        return
    obj = DistributedObjective(comm, local, shard)
    x = obj.initial_params(0, 0.1)
    record = {"seconds": _median_time(lambda: obj.loss_grad(x), repeats), "ranks": comm.size,
              "pairs": shard.pairs.tolist(), "n_leaves": shard.n_leaves, "n_params": obj.n_params}
    if comm.size == 1:
        from optbench.objective.sharding import pair_counts
        from optbench.io import read_dataset as again

        full = again(PDAG)
        record["leaf_pairs"] = np.add.reduceat(pair_counts(full, local.potential.cutoff, range(len(full))) + 1,
                                               shard.leaf_bounds[:-1]).tolist()
    obj.close()
    Path(out).write_text(json.dumps(record))


def comm_costs(out: str) -> None:
    """Under mpiexec -n 2: the costs of one command's collectives; rank 0 writes JSON."""
    from optbench.parallel import world

    comm = world(timeout=600.0, force=True)
    res = {}

    def timed(name, f, n=50):
        comm.comm.Barrier()
        f()
        ts = []
        for _ in range(n):
            comm.comm.Barrier()
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        res[name] = float(np.median(ts))

    header = np.zeros(4, dtype=np.int64)
    x = np.zeros(222)
    timed("bcast_header", lambda: comm.bcast(header, "b", 60))
    timed("bcast_x222", lambda: comm.bcast(x, "b", 60))
    timed("outcomes", lambda: comm.errors(None, "e"))
    rows = np.zeros(64 * 223)
    timed("gather_leaves_222", lambda: comm.gatherv(rows, [rows.size] * comm.size, "g"))
    big = np.zeros(BIG + 1)
    timed("reduce_842624", lambda: comm.reduce_sum(big, "r"), n=20)
    tiny = np.zeros(1)
    timed("reduce_1", lambda: comm.reduce_sum(tiny, "r"))
    if comm.rank == 0:
        Path(out).write_text(json.dumps(res))


def _run(args: list[str], n: int | None) -> None:
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    cmd = ([mpiexec, "-n", str(n)] if n else []) + [sys.executable, __file__, *args]
    subprocess.run(cmd, check=True)


def model(t1: float, leaf_pairs: list[int], n_leaves: int, alpha: float, beta: float, n_params: int) -> list[dict]:
    """The predicted time and efficiency at N = 1..64 ranks (see the module docstring)."""
    from optbench.parallel import contiguous_partition

    w = np.asarray(leaf_pairs, dtype=np.int64)
    rows = []
    for n in (1, 2, 4, 8, 16, 32, 64):
        b = contiguous_partition(w, n)
        loads = np.add.reduceat(w, b[:-1])
        imbalance = float(loads.max() / loads.mean())
        steps = math.ceil(math.log2(n)) if n > 1 else 0
        small = steps * 4 * alpha + (steps * alpha + n_leaves * (n_params + 1) * 8 / beta if n > 1 else 0.0)
        large = steps * 4 * alpha + (2 * steps * alpha + 2 * (BIG + 1) * 8 / beta if n > 1 else 0.0)
        compute = t1 * imbalance / n
        rows.append({"ranks": n, "imbalance": imbalance, "compute_s": compute, "comm_222_s": small,
                     "comm_842623_s": large, "efficiency_222": t1 / (n * (compute + small)),
                     "comm_842623_over_compute": large / compute})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--alpha-us", type=float, default=2.0, help="network latency of the model (us)")
    p.add_argument("--beta-gbs", type=float, default=10.0, help="network bandwidth of the model (GB/s)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", choices=("plain", "mpi"), help=argparse.SUPPRESS)
    p.add_argument("--comm", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    if args.worker:
        worker(args.out, args.repeats, args.worker)
        return 0
    if args.comm:
        comm_costs(args.out)
        return 0
    if not PDAG.is_file():
        sys.exit(f"mpi_scaling: {PDAG} not found (../shared beside the repository)")
    with tempfile.TemporaryDirectory() as tmp:
        out = {}
        for name, mode, n in (("plain", "plain", None), ("1 rank", "mpi", None), ("2 ranks", "mpi", 2)):
            path = str(Path(tmp, name.replace(" ", "_") + ".json"))
            _run(["--worker", mode, "--out", path, "--repeats", str(args.repeats)], n)
            out[name] = json.loads(Path(path).read_text())
        path = str(Path(tmp, "comm.json"))
        _run(["--comm", "--out", path], 2)
        costs = json.loads(Path(path).read_text())
    t1, t2 = out["1 rank"]["seconds"], out["2 ranks"]["seconds"]
    # alpha from a 1-double reduction, beta from the 842 624-double one (shared memory, 2 ranks)
    alpha_here = costs["reduce_1"]
    beta_here = 2 * (BIG + 1) * 8 / max(costs["reduce_842624"] - 2 * alpha_here, 1e-9)
    result = {"plain_s": out["plain"]["seconds"], "one_rank_s": t1, "two_ranks_s": t2,
              "efficiency_2": t1 / (2 * t2), "pairs_2": out["2 ranks"]["pairs"], "comm_2_ranks_s": costs,
              "alpha_here_s": alpha_here, "beta_here_Bps": beta_here,
              "model_here": model(t1, out["1 rank"]["leaf_pairs"], out["1 rank"]["n_leaves"], alpha_here, beta_here,
                                  out["1 rank"]["n_params"]),
              "model_network": model(t1, out["1 rank"]["leaf_pairs"], out["1 rank"]["n_leaves"], args.alpha_us * 1e-6,
                                     args.beta_gbs * 1e9, out["1 rank"]["n_params"])}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"MTP-16 (222 parameters), PdAg_train (1191 configurations), 1 engine thread a rank; median of {args.repeats}")
    print(f"  plain objective:          {out['plain']['seconds']:.3f} s")
    print(f"  data-parallel, 1 rank:    {t1:.3f} s")
    print(f"  data-parallel, 2 ranks:   {t2:.3f} s   (pairs per rank {out['2 ranks']['pairs']})")
    print(f"  efficiency at 2 ranks:    {100 * t1 / (2 * t2):.1f} %")
    print("  one command's collectives at 2 ranks here (median, s): "
          + ", ".join(f"{k} {v:.2e}" for k, v in costs.items()))
    print(f"  alpha here {alpha_here * 1e6:.1f} us, beta here {beta_here / 1e9:.2f} GB/s")
    for label, rows, a, b in (("here (shared memory)", result["model_here"], alpha_here, beta_here),
                              (f"network alpha {args.alpha_us:g} us, beta {args.beta_gbs:g} GB/s (assumed)",
                               result["model_network"], args.alpha_us * 1e-6, args.beta_gbs * 1e9)):
        print(f"  model, {label}:")
        print("    ranks  imbalance  compute(s)  comm P=222 (s)  efficiency  comm P=842623 (s)  / compute")
        for r in rows:
            print(f"    {r['ranks']:5d}  {r['imbalance']:9.3f}  {r['compute_s']:10.4f}  {r['comm_222_s']:14.2e}  "
                  f"{100 * r['efficiency_222']:9.1f}%  {r['comm_842623_s']:17.2e}  {r['comm_842623_over_compute']:9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
