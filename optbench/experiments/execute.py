"""One run of an experiment, in a worker: a RunSpec dict -> data, Objective, training ->
the run's record. Never raises: a bad data file or an engine error comes back as a
"failed" record with the message, so one bad run never stops a sweep. Workers need no
shared file system: potentials travel back as text.

`worker_main` is the loop of a local worker process (the runner spawns it): one run at a
time from its pipe, stopped by the runner with SIGTERM, ending by itself when the runner
dies (even by SIGKILL), so that no worker outlives its runner.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

from optbench.experiments.runspec import RunSpec
from optbench.io import load_data as read_data
from optbench.io import load_tests
from optbench.objective import LossWeights, build_objective
from optbench.status import RunStatus
from optbench.train import train

_DATA_CACHE: dict[str, object] = {}  # load_data and load_test_sets results


def failed_record(message: str, wall_seconds: float | None = None) -> dict:
    """The record of a run that produced no result (status "failed", `message` saying
    why): what execute_run returns on an error and the runner stores for a worker that
    died."""
    record: dict = {"status": RunStatus.FAILED.value, "message": message, "notes": [], "history": None}
    if wall_seconds is not None:
        record["wall_seconds"] = wall_seconds
    return record


def load_data(data: dict):
    """(train, valid or None) DataSets for a RunSpec's data dict (optbench.io.load_data);
    cached per process, so a worker reads or generates each data set once however many
    runs use it."""
    cache_key = json.dumps(data, sort_keys=True)
    if cache_key not in _DATA_CACHE:
        _DATA_CACHE[cache_key] = read_data(data)
    return _DATA_CACHE[cache_key]


def load_test_sets(data: dict, species: list[str] | None) -> dict:
    """The held-out test sets of a data dict (optbench.io.load_tests), cached per process
    like load_data."""
    cache_key = json.dumps(["tests", data.get("tests"), data.get("format"), species], sort_keys=True)
    if cache_key not in _DATA_CACHE:
        _DATA_CACHE[cache_key] = load_tests(data, species)
    return _DATA_CACHE[cache_key]


def _potential_payload(objective, x) -> tuple[str, str]:
    """The potential file of parameters x as ("text", its text) or, for a binary file (a
    fine-tuned torch model), ("b64", its bytes in base64): records travel as JSON."""
    suffix = getattr(objective, "potential_suffix", ".almtp")
    with tempfile.TemporaryDirectory(prefix="optbench-pot-") as tmp:
        path = Path(tmp, "p" + suffix)
        objective.save(x, path)
        raw = path.read_bytes()
    try:
        return "text", raw.decode("utf-8")
    except UnicodeDecodeError:
        return "b64", base64.b64encode(raw).decode("ascii")


def _test_metrics(objective, result, tests: dict, notes: list) -> dict:
    """{label: {"last": metrics, "best": metrics}} of the run's last and best-validation
    parameters on each held-out test set (an objective without evaluate_data: a note)."""
    if not hasattr(objective, "evaluate_data"):
        notes.append(f"test sets {', '.join(tests)} not evaluated: {type(objective).__name__} cannot")
        return {}
    out = {}
    for label, data in tests.items():
        last, best = objective.evaluate_data([result.x, result.x_best], data)
        out[label] = {"last": last.to_dict(), "best": best.to_dict()}
    return out


def _curvature(objective, result, settings, curvature: dict, progress, notes: list) -> list[dict]:
    """The [analysis] of a finished run: the spectra at its snapshots (analysis.points),
    as JSON-ready dicts; a failure is a note, not a failed run."""
    from optbench.analysis.points import analyze_snapshots
    from optbench.properties.base import jsonable

    try:
        return jsonable(analyze_snapshots(objective, getattr(result, "snapshots", None) or [], hyper=settings.hyper,
                                          settings=curvature, progress=progress))
    except Exception as err:  # the run's training result stands without its analysis
        notes.append(f"curvature analysis failed: {type(err).__name__}: {err}")
        return []


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
        settings = spec.train_settings()
        train_set, valid = load_data(spec.data)
        objective = build_objective(spec.model, train_set, valid, LossWeights(**spec.weights), spec.threads)
        result = train(objective, settings, progress=progress)
        record = result.to_dict()
        if spec.settings.get("curvature") is not None and result.status != RunStatus.FAILED:
            record["curvature"] = _curvature(objective, result, settings, spec.settings["curvature"], progress,
                                             record.setdefault("notes", []))
        tests = load_test_sets(spec.data, train_set.species)
        if tests and result.status != RunStatus.FAILED:
            record["tests"] = _test_metrics(objective, result, tests, record.setdefault("notes", []))
        if result.status != RunStatus.FAILED or result.steps:
            for name, x in (("potential", result.x), ("best_potential", result.x_best)):
                form, payload = _potential_payload(objective, x)
                record[f"{name}_{form}"] = payload
            record["potential_suffix"] = getattr(objective, "potential_suffix", ".almtp")
    except Exception as err:  # one bad run must not end the sweep: it becomes a failed record
        tb = traceback.extract_tb(err.__traceback__)
        where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        record = failed_record(f"{type(err).__name__}: {err}{where}", time.perf_counter() - t0)
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
