"""Execute an experiment's runs: on local worker processes or on a Dask cluster, every
result written to the store as soon as it arrives.

The unit of work is execute.execute_run(spec): a RunSpec dict -> the run's record
(RunResult.to_dict plus the saved potentials' text), never an exception. Workers need no
shared file system: potentials travel back as text and the runner (the only process that
writes the store) saves them beside it.

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

import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import TextIO

from optbench.experiments.execute import execute_run, failed_record
from optbench.experiments.progress import Progress, SweepSummary
from optbench.experiments.runspec import current_code_version
from optbench.experiments.store import Store
from optbench.status import RunStatus


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
    keys = [r.key(version) for r in experiment.runs]
    store = Store(experiment.store_path)
    summary = SweepSummary(total=len(specs), already_finished=0, held_elsewhere=0)
    todo = []
    try:
        before = store.statuses(keys)
        for key, spec in zip(keys, specs):
            if store.claim(key, spec, version, retry_failed=retry_failed, take_over=take_over):
                todo.append((key, spec))
            elif before.get(key) == RunStatus.RUNNING:
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
            if finished.get(key) in (RunStatus.RUNNING, RunStatus.INTERRUPTED) and store.owner_pid(key) == os.getpid():
                store.release(key)
        store.close()
    return summary


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
                    record = failed_record(f"worker process died: {type(err).__name__}: {err}")
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
                record = failed_record(f"Dask task failed: {type(err).__name__}: {err}")
            _record(store, key, spec, record, progress, summary, remaining)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
