"""Execute an experiment's runs: on local worker processes or on a Dask cluster, every
result written to the store as soon as it arrives.

`execute_run(spec)` is the unit of work: it builds the data, the model and the Objective
from a RunSpec dict, trains, and returns the run's record (RunResult.to_dict plus the
saved potentials' text). It never raises: a bad data file or an engine error comes back
as a "failed" record with the message, so one bad run never stops a sweep. Workers need
no shared file system: potentials travel back as text and the runner (the only process
that writes the store) saves them beside it.

`run_experiment` claims each unfinished run in the store (finished runs are skipped,
interrupted ones taken again), dispatches them, records each result in its own
transaction and prints a line per finished run and an overall progress bar with an ETA.
Killed at any point (SIGINT, SIGTERM, SIGKILL), it loses no finished run; started again,
it runs what is left.

Dask: `scheduler="local"` starts a LocalCluster of `workers` processes;
`scheduler="tcp://host:port"` uses a running cluster. A Dask cluster runs pickled
functions sent to it, so it must be one you trust.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import tempfile
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, TextIO

from optbench.experiments.runspec import RunSpec, current_code_version
from optbench.experiments.store import Store

_DATA_CACHE: dict[str, tuple] = {}


# ---------------------------------------------------------------------------------------
# one run, in a worker


def load_data(data: dict):
    """(train, valid or None) DataSets for a RunSpec's data dict; cached per process, so
    a worker reads or generates each data set once however many runs use it."""
    from optbench.io.data import read_dataset, split
    from optbench.io.generator import generate_agpd_split

    cache_key = json.dumps(data, sort_keys=True)
    if cache_key in _DATA_CACHE:
        return _DATA_CACHE[cache_key]
    kind = data.get("kind")
    if kind == "generate":
        train, valid = generate_agpd_split(int(data["n_train"]), int(data.get("n_valid", 0)), int(data.get("seed", 0)))
        valid = valid if len(valid) else None
    elif kind == "files":
        kw = {"species": data["species"]} if data.get("species") else {}
        if data.get("stress_format"):
            kw["stress_format"] = data["stress_format"]
        train = read_dataset(data["train"], fmt=data.get("format"), **kw)
        if data.get("valid"):
            valid = read_dataset(data["valid"], fmt=data.get("format"),
                                 **{**kw, **({"species": train.species} if train.species else {})})
        elif data.get("valid_fraction"):
            train, valid = split(train, float(data["valid_fraction"]), int(data.get("split_seed", 0)))
        else:
            valid = None
    else:
        raise ValueError(f"data kind {kind!r}: expected 'generate' or 'files'")
    _DATA_CACHE[cache_key] = (train, valid)
    return train, valid


def _potential_text(objective, x) -> str:
    suffix = getattr(objective, "potential_suffix", ".almtp")
    with tempfile.TemporaryDirectory(prefix="optbench-pot-") as tmp:
        path = Path(tmp, "p" + suffix)
        objective.save(x, path)
        return path.read_text()


def execute_run(spec_dict: dict, progress: Callable[[str], None] | None = None) -> dict:
    """Train one run (a RunSpec as a dict) and return its record: RunResult.to_dict()
    plus "potential_text" and "best_potential_text" (the potential files of the last and
    best-validation parameters: .almtp, or MLIP-4 .json, as "potential_suffix" says) and
    "host". Errors come back as status "failed" with
    the message (and the traceback's last line) rather than as exceptions."""
    import socket

    from optbench.engine.engines import build_objective
    from optbench.objective.protocol import LossWeights
    from optbench.train.loop import train

    t0 = time.perf_counter()
    try:
        spec = RunSpec.from_dict(spec_dict)
        settings = spec.train_settings()
        train_set, valid = load_data(spec.data)
        objective = build_objective(spec.model, train_set, valid, LossWeights(**spec.weights), spec.threads)
        result = train(objective, settings, progress=progress)
        record = result.to_dict()
        if result.status not in ("failed",) or result.steps:
            record["potential_text"] = _potential_text(objective, result.x)
            record["best_potential_text"] = _potential_text(objective, result.x_best)
            record["potential_suffix"] = getattr(objective, "potential_suffix", ".almtp")
    except Exception as err:  # one bad run must not end the sweep: it becomes a failed record
        tb = traceback.extract_tb(err.__traceback__)
        where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        record = {"status": "failed", "message": f"{type(err).__name__}: {err}{where}", "notes": [],
                  "wall_seconds": time.perf_counter() - t0, "history": None}
    record["host"] = socket.gethostname()
    return record


# ---------------------------------------------------------------------------------------
# progress


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """One line per finished run and an overall bar with an ETA, to `stream` (stderr).
    On a terminal the bar is redrawn in place; in a log it is printed after each run."""

    def __init__(self, total: int, stream: TextIO | None = None, quiet: bool = False, workers: int = 1):
        self.total, self.done, self.failed, self.workers = total, 0, 0, workers
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.tty = getattr(self.stream, "isatty", lambda: False)()

    def _bar(self, pending: int) -> str:
        frac = self.done / self.total if self.total else 1.0
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done else math.inf
        filled = int(round(30 * frac))
        running = min(pending, self.workers)
        return (f"[{'#' * filled}{'-' * (30 - filled)}] {self.done}/{self.total} runs, {running} running, "
                f"{pending - running} queued, {self.failed} failed, {_fmt_seconds(elapsed)} elapsed, "
                f"ETA {_fmt_seconds(eta)}")

    def line(self, text: str, pending: int) -> None:
        """Print `text` (a run's line) and the overall bar (`pending`: runs not yet
        finished, running or queued)."""
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text + "\n" + self._bar(pending))
        else:
            self.stream.write(text + "\n" + self._bar(pending) + "\n")
        self.stream.flush()

    def finished(self, spec: dict, record: dict, pending: int) -> None:
        """Count a finished run and print its line."""
        self.done += 1
        self.failed += record["status"] == "failed"
        valid = record.get("valid") or record.get("train")
        epa = f"EPA {1e3 * valid['energy_per_atom']['rmse']:.3f} meV/atom" if valid else "no metrics"
        secs = record.get("train_seconds") or record.get("wall_seconds") or 0.0
        label = f"{spec['model_name']}/{spec['data_name']} {spec['variant']} seed {spec['settings'].get('seed', 0)}"
        msg = "" if record["status"] not in ("failed", "timed_out", "diverged") else f" ({record['message']})"
        self.line(f"{label}: {record['status']}, {epa}, {secs:.1f} s{msg}", pending)

    def close(self) -> None:
        """End the bar's line on a terminal."""
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------------------------------
# the sweep


@dataclass
class SweepSummary:
    """What `run_experiment` did: runs in the experiment, skipped because finished,
    skipped because another live runner holds them, run now (by final status), and
    whether it was interrupted."""

    total: int
    already_finished: int
    held_elsewhere: int
    ran: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False

    def text(self) -> str:
        """One paragraph for the terminal."""
        ran = ", ".join(f"{n} {s}" for s, n in sorted(self.ran.items())) or "none"
        out = (f"{self.total} runs: {self.already_finished} already in the store, {sum(self.ran.values())} run now "
               f"({ran})")
        if self.held_elsewhere:
            out += (f", {self.held_elsewhere} held by another runner (still running; or, if it is on another "
                    "host and has stopped, take them with --take-over)")
        if self.interrupted:
            out += "; interrupted: run the same command again to complete the rest"
        return out


def _save_potentials(store_path: Path, key: str, record: dict) -> None:
    folder = store_path.parent / "potentials"
    for field_name, suffix, path_field in (("potential_text", "", "potential_path"),
                                           ("best_potential_text", ".best", "best_potential_path")):
        text = record.pop(field_name, None)
        if text is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{key}{suffix}{record.get('potential_suffix', '.almtp')}"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)  # a kill mid-write never leaves a truncated potential
        record[path_field] = str(path)


_PROGRESS_QUEUE = None


def _init_local_worker(queue) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = queue  # handed over at process start: a Queue cannot travel with each task


def _local_progress_worker(spec_dict: dict) -> dict:
    label = f"{spec_dict['variant']} seed {spec_dict['settings'].get('seed', 0)}"
    last = [0.0]
    queue = _PROGRESS_QUEUE

    def report(line: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 5.0:  # a live line per run, at most every 5 s, so 2..16 workers stay readable
            last[0] = now
            queue.put(f"  {label}: {line.strip()}")

    return execute_run(spec_dict, progress=report if queue is not None else None)


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def run_experiment(experiment, *, workers: int | None = None, scheduler: str | None = None,
                   retry_failed: bool = False, take_over: bool = False, quiet: bool = False,
                   stream: TextIO | None = None) -> SweepSummary:
    """Run every unfinished run of `experiment` (experiment.Experiment) into its store.
    `workers`: local processes (default: the machine's cores); `scheduler`: None for
    local processes, "local" for a Dask LocalCluster of `workers` processes, or a Dask
    scheduler address. Returns a SweepSummary; KeyboardInterrupt and SIGTERM end it
    cleanly (finished runs kept, unstarted claims released)."""
    workers = workers or _default_workers()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    version = current_code_version()
    specs = [r.to_dict() for r in experiment.runs]
    keys = [RunSpec.from_dict(s).key(version) for s in specs]
    store = Store(experiment.store_path)
    summary = SweepSummary(total=len(specs), already_finished=0, held_elsewhere=0)
    todo = []
    try:
        before = store.statuses(keys)
        for key, spec in zip(keys, specs):
            if store.claim(key, spec, version, retry_failed=retry_failed, take_over=take_over):
                todo.append((key, spec))
            elif before.get(key) == "running":
                summary.held_elsewhere += 1
            else:
                summary.already_finished += 1
        progress = Progress(len(todo), stream, quiet, workers)
        if not quiet:
            (stream or sys.stderr).write(f"{experiment.name}: {len(specs)} runs, {summary.already_finished} already "
                                         f"finished, {len(todo)} to run on {workers} "
                                         f"{'Dask worker' if scheduler else 'local worker'}(s); store {store.path}\n")
        if todo:
            runner = _run_dask if scheduler else _run_local
            runner(todo, store, progress, summary, workers, scheduler)
        progress.close()
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        finished = store.statuses([k for k, _ in todo])
        for key, _ in todo:
            if finished.get(key) in ("running", "interrupted") and _is_ours(store, key):
                store.release(key)
        store.close()
    return summary


def _is_ours(store: Store, key: str) -> bool:
    row = store.db.execute("SELECT owner_pid FROM runs WHERE key = ?", (key,)).fetchone()
    return row is not None and row[0] == os.getpid()


def _record(store: Store, key: str, spec: dict, record: dict, progress: Progress, summary: SweepSummary,
            running: int) -> None:
    _save_potentials(store.path, key, record)
    store.finish(key, record)
    summary.ran[record["status"]] = summary.ran.get(record["status"], 0) + 1
    progress.finished(spec, record, running)


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _run_local(todo, store, progress, summary, workers, scheduler) -> None:
    ctx = get_context("spawn")  # a fresh interpreter per worker: no OpenMP state inherited through fork
    queue = ctx.Queue() if not progress.quiet else None
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                               initializer=_init_local_worker, initargs=(queue,))
    try:
        pending: dict[Future, tuple[str, dict]] = {
            pool.submit(_local_progress_worker, spec): (key, spec) for key, spec in todo}
        while pending:
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            while queue is not None and not queue.empty():
                progress.line(queue.get_nowait(), len(pending))
            for fut in done:
                key, spec = pending.pop(fut)
                try:
                    record = fut.result()
                except Exception as err:  # a worker that died (segfault, OOM kill) fails only its run
                    record = {"status": "failed", "message": f"worker process died: {type(err).__name__}: {err}",
                              "notes": [], "history": None}
                _record(store, key, spec, record, progress, summary, len(pending))
    except KeyboardInterrupt:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()  # a worker mid-run would otherwise finish its run for nobody
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(todo, store, progress, summary, workers, scheduler) -> None:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as err:
            raise ValueError(f"cannot reach the Dask scheduler {scheduler!r}: {err}") from None
    try:
        futures = {client.submit(execute_run, spec, pure=False, key=f"optbench-{key}"): (key, spec)
                   for key, spec in todo}
        remaining = len(futures)
        for fut in as_completed(list(futures)):
            key, spec = futures[fut]
            remaining -= 1
            try:
                record = fut.result()
            except Exception as err:
                record = {"status": "failed", "message": f"Dask task failed: {type(err).__name__}: {err}",
                          "notes": [], "history": None}
            _record(store, key, spec, record, progress, summary, remaining)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
