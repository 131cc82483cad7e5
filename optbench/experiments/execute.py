"""One run of an experiment, in a worker: a RunSpec dict -> data, Objective, training ->
the run's record. Never raises: a bad data file or an engine error comes back as a
"failed" record with the message, so one bad run never stops a sweep. Workers need no
shared file system: potentials travel back as text.

`worker_main` is the loop of a local worker process (the runner spawns it): one run at a
time from its pipe, stopped by the runner with SIGTERM, ending by itself when the runner
dies (even by SIGKILL), so that no worker outlives its runner.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import threading
import time
from typing import Callable

from optbench.experiments.mpi_run import execute_mpi_run
from optbench.experiments.record import error_text, failed_record, load_data, run_record
from optbench.experiments.runspec import RunSpec
from optbench.objective import LossWeights, build_objective


def execute_run(spec_dict: dict, progress: Callable[[str], None] | None = None) -> dict:
    """Train one run (a RunSpec as a dict) and return its record: RunResult.to_dict()
    plus "potential_text" and "best_potential_text" (the potential files of the last and
    best-validation parameters: .almtp, or MLIP-4 .json, as "potential_suffix" says; a
    binary file, a fine-tuned torch model, as "potential_b64" / "best_potential_b64") and
    "host". Errors come back as status "failed" with the message (and the traceback's
    last line) rather than as exceptions."""
    t0 = time.perf_counter()
    try:
        spec = RunSpec.from_dict(spec_dict)
        if int(spec.settings.get("mpi_ranks", 1)) > 1:
            record = execute_mpi_run(spec, progress)  # an MPI job of the run's ranks
        else:
            train_set, valid = load_data(spec.data)
            objective = build_objective(spec.model, train_set, valid, LossWeights(**spec.weights), spec.threads)
            record = run_record(spec, objective, train_set.species, progress)
    except Exception as err:  # one bad run must not end the sweep: it becomes a failed record
        record = failed_record(error_text(err), time.perf_counter() - t0)
    record["host"] = socket.gethostname()
    return record


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds: finally blocks run (an mlp child's process group is killed)


def _exit_with_parent(parent_pid: int) -> None:
    """End this process when its parent `parent_pid` (the runner) dies: SIGTERM from the
    kernel on Linux (prctl PR_SET_PDEATHSIG), and everywhere a daemon thread that sees the
    parent change, sends SIGTERM to this process and, should the main thread be stuck in
    native code, exits it 5 s later."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:  # also catches a parent that died before prctl
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5.0)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="optbench-parent-watch", daemon=True).start()


def worker_main(conn, parent_pid: int) -> None:
    """A local worker process: receives RunSpec dicts on `conn` (a multiprocessing
    Connection) one at a time and sends back ("line", text) progress lines, at most one
    every 5 s per run, then ("record", execute_run's record). Ends on None or a closed
    pipe, with exit code 143 on SIGTERM, and by itself when the runner `parent_pid` dies.
    SIGINT is ignored: a Ctrl-C reaches the terminal's whole process group, and the
    runner decides when its workers stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    _exit_with_parent(parent_pid)
    try:
        while (spec := conn.recv()) is not None:
            conn.send(("record", execute_run(spec, progress=_line_sender(conn, spec))))
    except (EOFError, OSError):  # the runner is gone: nobody to tell
        return


def _line_sender(conn, spec: dict) -> Callable[[str], None]:
    """The progress callback of a run in a worker: a live line at most every 5 s, so that
    2..16 workers stay readable."""
    label = f"{spec['variant']} seed {spec['settings'].get('seed', 0)}"
    last = [0.0]

    def report(line: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 5.0:
            last[0] = now
            conn.send(("line", f"  {label}: {line.strip()}"))

    return report
