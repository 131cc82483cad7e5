"""One run of an experiment spread over MPI ranks (the file's ``mpi_ranks``).

The worker that claimed the run starts

    mpiexec -n N python -m optbench.experiments.mpi_run SPEC.json RECORD.json

(`execute_mpi_run`; the launcher is $OPTBENCH_MPIEXEC, split like a shell would, else the
mpiexec beside the Python interpreter, which MPICH's wheel installs, else mpiexec on PATH)
and reads back the record rank 0 wrote; rank 0's progress lines come back on its standard
error. Every rank reads the run's data and keeps its share
(optbench.objective.sharding); rank 0 trains on the DistributedObjective with the code of
a one-process run (record.run_record), the others serve it. The store is written by the
runner alone, from the record, as for any run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Callable

from optbench.experiments.record import failed_record, run_record
from optbench.experiments.runspec import RunSpec
from optbench.io import load_data
from optbench.objective import LossWeights
from optbench.objective.distributed import DistributedObjective, serve
from optbench.objective.sharding import local_objective
from optbench.parallel import world


def mpiexec_command() -> list[str]:
    """The MPI launcher: $OPTBENCH_MPIEXEC (split like a shell), else the mpiexec beside
    this Python (MPICH's wheel), else mpiexec on PATH; ValueError saying how to get one."""
    given = os.environ.get("OPTBENCH_MPIEXEC")
    if given:
        return shlex.split(given)
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("mpiexec")
    if found:
        return [found]
    raise ValueError("mpi_ranks > 1 needs an MPI launcher: pip install 'mlip-optbench[mpi]' (MPICH's wheel brings "
                     "mpiexec), or set OPTBENCH_MPIEXEC")


def execute_mpi_run(spec: RunSpec, progress: Callable[[str], None] | None = None) -> dict:
    """Run `spec` on spec.settings["mpi_ranks"] ranks and return its record; a launcher
    that fails or a job that ends without a record gives a failed record with the end of
    its error output. The job is killed if this process is told to stop."""
    n = int(spec.settings["mpi_ranks"])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="optbench-mpi-") as tmp:
        spec_path, record_path = Path(tmp, "spec.json"), Path(tmp, "record.json")
        spec_path.write_text(spec.canonical_json())
        cmd = [*mpiexec_command(), "-n", str(n), sys.executable, "-m", "optbench.experiments.mpi_run",
               str(spec_path), str(record_path)]
        tail: deque[str] = deque(maxlen=20)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            for line in proc.stderr:
                tail.append(line.rstrip())
                if progress is not None and line.strip():
                    progress(line)
            code = proc.wait()
        finally:
            if proc.poll() is None:  # this worker is being stopped: so is the job
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if record_path.is_file():
            return json.loads(record_path.read_text())
        return failed_record(f"the MPI job ({' '.join(cmd[:3])} ...) ended with status {code} without a record: "
                             + " | ".join(t for t in tail if t)[-1500:], time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of one rank of an MPI run (see the module docstring)."""
    spec_path, record_path = (argv if argv is not None else sys.argv[1:])[:2]
    comm = world(force=True)
    spec = RunSpec.from_dict(json.loads(Path(spec_path).read_text()))
    train_set, valid = load_data(spec.data)  # not the workers' cache: the whole sets are dropped below
    species = train_set.species
    local, shard = local_objective(comm, spec.model, train_set, valid, LossWeights(**spec.weights), spec.threads)
    del train_set, valid
    if comm.rank != 0:
        return serve(comm, local, shard)
    objective = DistributedObjective(comm, local, shard)
    try:
        record = run_record(spec, objective, species, lambda line: print(line, file=sys.stderr, flush=True))
        held = ", ".join(str(int(n)) for n in shard.train_bounds[1:] - shard.train_bounds[:-1])
        record.setdefault("notes", []).append(f"trained on {comm.size} MPI ranks holding {held} training configurations")
        if objective.failure is None:
            tmp = Path(record_path).with_suffix(".partial")
            tmp.write_text(json.dumps(record, allow_nan=True))
            tmp.replace(record_path)
    finally:
        if objective.failure is not None:
            comm.abort(f"{objective.failure}; the run's record was not written", 3)
        objective.close(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
