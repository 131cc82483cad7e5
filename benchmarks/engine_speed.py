#!/usr/bin/env python
"""Time one full loss + gradient: our C++ engine vs motep 0.2.0's ``cext`` engine, and
our ETN against our MTP level 16.

Data: the generated Ag-Pd set (``optbench.io.generator.generate_agpd(240, seed=0)``,
written with ``optbench.io.write_cfg`` to a temporary .cfg so that both engines
read the very same file) or ``--data PATH``.  Loss: energy + forces (stress weight 0 by
default), with motep's default normalisation, i.e. per configuration k with N_k atoms
(K configurations)::

    wE_k = energy_weight / (K N_k^2),  wF_k = force_weight / (K N_k),  wS_k = stress_weight / (K N_k^2)

which makes both engines compute the same number (see ``benchmarks/motep_reference.py``);
the script reports their agreement as a sanity check.

Potentials: for levels 8 and 16, ``../shared/reference/mlip3/potentials/mtpNN.mtp``
(trained by MLIP-3) when ``../shared`` exists; otherwise (or for other levels) one made
by our engine from ``mtp level=L species=2 min_dist=2.0 max_dist=5.0 radial_basis_size=8``
with seeded random parameters, saved to a temporary .mtp for motep.

ETN rows (``--etn SPEC ...``; default the study's shape [[1],[6],[3]], ranks [[1],[1]],
lmax 2, 8 Chebyshev functions, cutoff 5.0): the engine's defaults plus seeded N(0, 0.01^2)
noise, saved to a temporary .json; our engine only (motep has no ETN). Each row prints
its time over MTP level 16's (run level 16 too; the target is <= 2).

Each (engine, level) measurement runs in a fresh subprocess (thread-count environment
variables set before numpy loads; clean peak-RSS numbers).  In each, one warm-up
evaluation is done (for motep it also builds the neighbour vectors, reported as
``first_s``), then ``--repeat`` timed evaluations; ``seconds`` is the best, ``median_s``
the median.  Memory: process RSS before/after dataset creation and ``ru_maxrss`` (peak)
after the evaluations; our engine allocates on the C side, so RSS (not tracemalloc) is
what is reported for both.

Usage::

    python benchmarks/engine_speed.py [--levels 8 16] [--repeat N] [--threads 1]
        [--data PATH] [--no-motep] [--no-engine] [--etn SPEC ...] [--no-etn] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared"
MLIP3_POTENTIALS = SHARED / "reference" / "mlip3" / "potentials"

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def _spec(level: int) -> str:
    return f"mtp level={level} species=2 min_dist=2.0 max_dist=5.0 radial_basis_size=8"


DEFAULT_ETN = "etn species=2 lmax=2 shape=[[1],[6],[3]] ranks=[[1],[1]] radial_basis_size=8 min_dist=2.0 max_dist=5.0"


# ----------------------------------------------------------------------------- memory
def _rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux /proc)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - non-Linux
        return float("nan")


def _maxrss_mb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def _weights_for(natoms, has_forces, has_stress, ew, fw, sw):
    """Per-configuration (wE, wF, wS) reproducing motep's default loss normalisation."""
    import numpy as np

    natoms = np.asarray(natoms, dtype=float)
    K = natoms.size
    w = np.zeros((K, 3))
    w[:, 0] = ew / (K * natoms**2)
    w[:, 1] = np.where(np.asarray(has_forces, bool), fw / (K * natoms), 0.0)
    w[:, 2] = np.where(np.asarray(has_stress, bool), sw / (K * natoms**2), 0.0)
    return w


# ----------------------------------------------------------------------------- workers
def _worker_optbench(job: dict) -> dict:
    import numpy as np

    from optbench.engine.capi import Engine
    from optbench.io import read_cfg

    configs = read_cfg(job["data"]).configs
    eng = Engine()
    eng.set_num_threads(int(job["threads"]))
    pot = eng.load_potential(job["potential"])
    natoms = [len(c.types) for c in configs]
    has_forces = [c.forces is not None for c in configs]
    has_stress = [c.cell is not None and c.stress is not None for c in configs]
    weights = _weights_for(natoms, has_forces, has_stress, job["ew"], job["fw"], job["sw"])

    rss0 = _rss_mb()
    t0 = time.perf_counter()
    ds = eng.dataset(configs, cutoff=float(job["cutoff"]))
    dataset_s = time.perf_counter() - t0
    rss1 = _rss_mb()

    t0 = time.perf_counter()
    loss, grad = eng.loss_grad(pot, ds, weights)
    first_s = time.perf_counter() - t0
    times = []
    for _ in range(int(job["repeat"])):
        t0 = time.perf_counter()
        loss, grad = eng.loss_grad(pot, ds, weights)
        times.append(time.perf_counter() - t0)
    rss2 = _rss_mb()
    peak = _maxrss_mb()
    return {
        "seconds": min(times),
        "median_s": statistics.median(times),
        "times_s": times,
        "first_s": first_s,
        "dataset_s": dataset_s,
        "rss_baseline_mb": rss0,
        "rss_dataset_delta_mb": rss1 - rss0,
        "rss_after_mb": rss2,
        "rss_delta_mb": rss2 - rss0,
        "peak_rss_mb": peak,
        "peak_delta_mb": peak - rss0,
        "loss": float(loss),
        "grad": np.asarray(grad, dtype=float).tolist(),
        "n_params": int(pot.n_params),
    }


def _worker_motep(job: dict) -> dict:
    import logging

    logging.getLogger("motep").setLevel(logging.ERROR)  # min_dist warnings
    sys.path.insert(0, str(HERE))
    from motep_reference import motep_loss_grad

    rss0 = _rss_mb()
    loss, grad, info = motep_loss_grad(
        job["potential"],
        job["data"],
        job["ew"],
        job["fw"],
        job["sw"],
        engine=job.get("motep_engine", "cext"),
        repeat=int(job["repeat"]) + 1,
    )
    times = info["times"][1:]
    peak = _maxrss_mb()
    return {
        "seconds": min(times),
        "median_s": statistics.median(times),
        "times_s": times,
        "first_s": info["times"][0],
        "setup_s": info["setup_s"],
        "rss_baseline_mb": rss0,
        "rss_after_mb": _rss_mb(),
        "rss_delta_mb": _rss_mb() - rss0,
        "peak_rss_mb": peak,
        "peak_delta_mb": peak - rss0,
        "loss": float(loss),
        "grad": grad.tolist(),
        "n_params": int(info["n_params"]),
        "n_configs": info["n_configs"],
        "n_atoms": info["n_atoms"],
        "engine": info["engine"],
    }


def _run_worker(kind: str, job: dict) -> dict:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(job["threads"])
    paths = [str(REPO), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", kind, json.dumps(job)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-3000:]
        return {"error": f"{kind} worker failed (rc={proc.returncode}):\n{tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- setup
def _prepare_data(args, tmp: Path) -> tuple[str, dict]:
    if args.data:
        return str(Path(args.data).resolve()), {"source": "file", "path": str(args.data)}
    try:
        from optbench.io import write_cfg
        from optbench.io.generator import generate_agpd
    except ImportError as exc:
        msg = f"cannot generate the Ag-Pd set ({exc}); pass --data PATH.cfg"
        raise SystemExit(msg) from exc

    ds = generate_agpd(n_configs=args.n_configs, seed=args.seed)
    path = tmp / "agpd_generated.cfg"
    write_cfg(ds, path)
    n_atoms = sum(len(c.types) for c in ds.configs)
    meta = {
        "source": f"generate_agpd(n_configs={args.n_configs}, seed={args.seed})",
        "n_configs": len(ds.configs),
        "n_atoms": n_atoms,
    }
    return str(path), meta


def _prepare_potential(level: int, args, tmp: Path) -> tuple[str, str]:
    shared = MLIP3_POTENTIALS / f"mtp{level:02d}.mtp"
    if not args.random_potentials and SHARED.is_dir() and shared.is_file():
        return str(shared), "mlip3-trained"
    import numpy as np

    from optbench.engine.capi import Engine

    eng = Engine()
    pot = eng.potential_from_spec(_spec(level))
    rng = np.random.default_rng(args.seed + level)
    pot.set_params(rng.uniform(-0.1, 0.1, pot.n_params))
    path = tmp / f"random_mtp{level:02d}.mtp"
    pot.save(str(path))
    return str(path), f"spec+random(seed={args.seed + level})"


def _prepare_etn(spec: str, index: int, args, tmp: Path) -> str:
    """An ETN of `spec` at the engine's defaults plus seeded N(0, 0.01^2) noise, saved as
    .json for the worker; returns the path."""
    import numpy as np

    from optbench.engine.capi import Engine

    pot = Engine().potential_from_spec(spec)
    rng = np.random.default_rng(args.seed + index)
    pot.set_params(pot.default_params() + 0.01 * rng.standard_normal(pot.n_params))
    path = tmp / f"etn{index}.json"
    pot.save(str(path))
    return str(path)


def _agreement(a: dict, b: dict) -> dict:
    import numpy as np

    if "loss" not in a or "loss" not in b:
        return {}
    ga, gb = np.asarray(a["grad"]), np.asarray(b["grad"])
    out = {"loss_rel": abs(a["loss"] - b["loss"]) / max(abs(b["loss"]), 1e-300)}
    if ga.shape == gb.shape:
        out["grad_rel"] = float(np.max(np.abs(ga - gb)) / max(np.max(np.abs(gb)), 1e-300))
    else:
        out["grad_rel"] = f"shape mismatch {ga.shape} vs {gb.shape}"
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--levels", type=int, nargs="+", default=[8, 16])
    p.add_argument("--repeat", type=int, default=1, help="timed evaluations after warm-up")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", help="a .cfg (default: generated Ag-Pd set)")
    p.add_argument("--n-configs", type=int, default=240, help="generated set size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cutoff", type=float, default=5.0)
    p.add_argument("--energy-weight", type=float, default=1.0)
    p.add_argument("--force-weight", type=float, default=0.01)
    p.add_argument("--stress-weight", type=float, default=0.0)
    p.add_argument("--motep-engine", default="cext")
    p.add_argument("--random-potentials", action="store_true",
                   help="use spec + random parameters even if ../shared exists")
    p.add_argument("--no-motep", action="store_true")
    p.add_argument("--no-engine", action="store_true", help="skip our engine")
    p.add_argument("--etn", nargs="+", default=[DEFAULT_ETN], metavar="SPEC",
                   help="ETN specs to time with our engine (default: the study's [[1],[6],[3]], ranks [[1],[1]])")
    p.add_argument("--no-etn", action="store_true", help="skip the ETN rows")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--_worker", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._worker:
        kind, job = args._worker[0], json.loads(args._worker[1])
        fn = _worker_optbench if kind == "optbench" else _worker_motep
        print(json.dumps(fn(job)))
        return 0

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    result: dict = {"threads": args.threads, "repeat": args.repeat, "levels": {}, "etn": {}}
    with tempfile.TemporaryDirectory(prefix="engine_speed_") as tmpd:
        tmp = Path(tmpd)
        data_path, meta = _prepare_data(args, tmp)
        result["data"] = meta
        result["weights"] = {
            "energy": args.energy_weight,
            "force": args.force_weight,
            "stress": args.stress_weight,
            "normalisation": "motep: wE=eW/(K N^2), wF=fW/(K N), wS=sW/(K N^2)",
        }
        for level in args.levels:
            entry: dict = {}
            try:
                pot_path, pot_src = _prepare_potential(level, args, tmp)
            except Exception as exc:  # noqa: BLE001
                entry["error"] = f"no potential for level {level}: {exc!r}"
                result["levels"][str(level)] = entry
                continue
            entry["potential"] = {"path": pot_path, "source": pot_src}
            job = {
                "data": data_path,
                "potential": pot_path,
                "threads": args.threads,
                "repeat": args.repeat,
                "cutoff": args.cutoff,
                "ew": args.energy_weight,
                "fw": args.force_weight,
                "sw": args.stress_weight,
                "motep_engine": args.motep_engine,
            }
            if not args.no_engine:
                entry["optbench"] = _run_worker("optbench", job)
            if not args.no_motep:
                entry["motep"] = _run_worker("motep", job)
                if "n_atoms" in entry["motep"]:
                    meta.setdefault("n_configs", entry["motep"]["n_configs"])
                    meta.setdefault("n_atoms", entry["motep"]["n_atoms"])
            ours, ref = entry.get("optbench", {}), entry.get("motep", {})
            if "seconds" in ours and "seconds" in ref:
                entry["ratio_motep_over_optbench"] = ref["seconds"] / ours["seconds"]
                entry["agreement"] = _agreement(ours, ref)
            for side in (ours, ref):
                side.pop("grad", None)
            result["levels"][str(level)] = entry
            if not args.json:
                _print_level(level, entry)
        if not args.no_etn and not args.no_engine:
            _etn_rows(args, tmp, data_path, result)

    if args.json:
        print(json.dumps(result))
    else:
        print(f"data: {result['data']}")
    failed = any(
        "error" in e or "error" in e.get("optbench", {}) or "error" in e.get("motep", {})
        for e in result["levels"].values()
    ) or any("error" in e for e in result["etn"].values())
    return 1 if failed else 0


def _etn_rows(args, tmp: Path, data_path: str, result: dict) -> None:
    """Time loss_grad of each ETN spec with our engine; record and print its ratio to
    MTP level 16's time from the same run (when level 16 was timed)."""
    mtp16 = result["levels"].get("16", {}).get("optbench", {}).get("seconds")
    for index, spec in enumerate(args.etn):
        job = {"data": data_path, "potential": _prepare_etn(spec, index, args, tmp), "threads": args.threads,
               "repeat": args.repeat, "cutoff": args.cutoff, "ew": args.energy_weight, "fw": args.force_weight,
               "sw": args.stress_weight}
        entry = _run_worker("optbench", job)
        entry.pop("grad", None)
        if mtp16 and "seconds" in entry:
            entry["ratio_over_mtp16"] = entry["seconds"] / mtp16
        result["etn"][spec] = entry
        if args.json:
            continue
        print(f"== ETN {spec}")
        if "error" in entry:
            print(f"   optbench ERROR: {entry['error']}")
            continue
        print(f"   optbench loss+grad best {entry['seconds']:.4f} s  median {entry['median_s']:.4f} s"
              f"  first {entry['first_s']:.4f} s  peak RSS {entry['peak_rss_mb']:.1f} MiB  {entry['n_params']} parameters")
        if "ratio_over_mtp16" in entry:
            print(f"   ETN / MTP level 16 time ratio: {entry['ratio_over_mtp16']:.2f}  (target <= 2)")


def _print_level(level: int, entry: dict) -> None:
    print(f"== MTP level {level}  ({entry.get('potential', {}).get('source', '?')})")
    if "error" in entry:
        print("   ", entry["error"])
        return
    for name in ("optbench", "motep"):
        r = entry.get(name)
        if r is None:
            continue
        if "error" in r:
            print(f"   {name:8s} ERROR: {r['error']}")
            continue
        print(
            f"   {name:8s} loss+grad best {r['seconds']:.4f} s  median {r['median_s']:.4f} s"
            f"  first {r['first_s']:.4f} s  peak RSS {r['peak_rss_mb']:.1f} MiB"
            f" (+{r['peak_delta_mb']:.1f})  loss {r['loss']:.12e}"
        )
    if "ratio_motep_over_optbench" in entry:
        ag = entry.get("agreement", {})
        print(
            f"   motep/optbench time ratio: {entry['ratio_motep_over_optbench']:.2f}x"
            f"   loss rel diff {ag.get('loss_rel')}  grad rel diff {ag.get('grad_rel')}"
        )


if __name__ == "__main__":
    sys.exit(main())
