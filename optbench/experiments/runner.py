"""Execute an experiment's runs: on local worker processes or on a Dask cluster, every
result written to the store as soon as it arrives.

The unit of work is execute.execute_run(spec): a RunSpec dict -> the run's record
(RunResult.to_dict plus the saved potentials' text), never an exception. Workers need no
shared file system: potentials travel back as text and the runner (the only process that
writes the store) saves them beside it.

`run_experiment` claims the unfinished runs in the store one at a time, when a worker is
free to start one (`_Claims`): finished runs are skipped, interrupted ones taken again,
and several runners of one store (on one machine, or on several sharing its file system)
split the sweep, each run done once. It records each result in its own transaction and
prints a line per finished run and an overall progress bar with an ETA. SIGINT and
SIGTERM stop it at its next turn (within 0.5 s): results already back are stored, the
workers stopped, their runs given back (`Store.release`), and the summary says which
signal. Killed by SIGKILL, it loses no finished run, its workers end by themselves
(execute.worker_main) and its runs read "interrupted"; started again, it runs what is left.

Local workers (`_LocalPool`) are spawned processes, each sent one run at a time over its
own pipe; one that dies fails only its run and is replaced. Dask (`_DaskPool`):
`scheduler="local"` starts a LocalCluster of `workers` processes;
`scheduler="tcp://host:port"` uses a running cluster. Runs are claimed one per submitted
task, as many in flight as the cluster has worker threads. A Dask cluster runs pickled
functions sent to it, so it must be one you trust.
"""

from __future__ import annotations

import base64
import os
import signal
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from multiprocessing import get_context
from multiprocessing.connection import wait as wait_ready
from pathlib import Path
from typing import TextIO

from optbench.experiments.execute import execute_run, failed_record, worker_main
from optbench.experiments.progress import Progress, SweepSummary
from optbench.experiments.runspec import current_code_version
from optbench.experiments.store import Store
from optbench.io import atomic_output, write_text_atomic
from optbench.status import FINISHED, RunStatus

_TURN_S = 0.5  # the sweep's loop looks at the workers and a stop request this often
_GRACE_S = 5.0  # a stopped worker's time to unwind before SIGKILL


def _save_potentials(store_path: Path, key: str, record: dict) -> None:
    folder = store_path.parent / "potentials"
    for name, suffix in (("potential", ""), ("best_potential", ".best")):
        text, b64 = record.pop(f"{name}_text", None), record.pop(f"{name}_b64", None)
        if text is None and b64 is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{key}{suffix}{record.get('potential_suffix', '.almtp')}"
        # atomic: a kill mid-write never leaves a truncated potential
        if text is not None:
            write_text_atomic(path, text)
        else:
            with atomic_output(path) as tmp:
                tmp.write_bytes(base64.b64decode(b64))
        record[f"{name}_path"] = str(path)


def default_workers() -> int:
    """The machine's cores this process may use: the default number of worker processes."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class _StopSignals:
    """SIGINT and SIGTERM while a sweep runs (handlers only in the main thread, where
    Python allows them): the handler only notes the first signal; the sweep's loop stops
    at its next turn, so that no result is lost half-written."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def _note(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@contextmanager
def _sigint_ignored():
    """Ignore SIGINT in this process (from the main thread) while worker processes are
    started: an ignored signal is inherited, so a Ctrl-C, which the terminal sends to its
    whole process group, reaches only the runner, which stops its workers itself (no
    worker prints a KeyboardInterrupt traceback). A Ctrl-C in this window is lost: a
    spawn takes milliseconds, a Dask LocalCluster a second or two."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Claims:
    """The experiment's unfinished runs, claimed in the store one at a time, when a
    worker is free to start one. A run another runner holds (or finished since this one
    started) is set aside; it is taken later only if that runner dies or gives it back,
    which is looked at every 2 s while this runner has runs in flight and once more
    before it ends."""

    def __init__(self, store: Store, experiment, retry_failed: bool, take_over: bool, summary: SweepSummary):
        self.store, self.version = store, current_code_version()
        self.options = {"retry_failed": retry_failed, "take_over": take_over, "since": time.time()}
        runs = [(r.key(self.version), r.to_dict()) for r in experiment.runs]
        before = store.statuses(k for k, _ in runs)
        self.queue: deque[tuple[str, dict]] = deque()
        for key, spec in runs:
            status = before.get(key)
            if status in FINISHED and not (retry_failed and status == RunStatus.FAILED):
                summary.already_finished += 1
            else:
                self.queue.append((key, spec))
        self.mine: list[str] = []  # claimed by this runner
        self.elsewhere: dict[str, dict] = {}  # key -> spec: taken by another runner
        self._recheck_at = time.monotonic() + 2.0

    def take(self, *, idle: bool) -> tuple[str, dict] | None:
        """Claim the next run this runner may start: (key, spec), or None when none is
        left to it now. `idle`: no run of this runner is in flight (look again at once
        whether another runner gave runs back)."""
        if not self.queue and self.elsewhere and (idle or time.monotonic() >= self._recheck_at):
            self._recheck_at = time.monotonic() + 2.0
            now = self.store.statuses(self.elsewhere)
            for key in [k for k in self.elsewhere if now.get(k) in (None, RunStatus.INTERRUPTED)]:
                self.queue.append((key, self.elsewhere.pop(key)))
        while self.queue:
            key, spec = self.queue.popleft()
            if self.store.claim(key, spec, self.version, **self.options):
                self.mine.append(key)
                return key, spec
            self.elsewhere[key] = spec
        return None

    def settle(self, summary: SweepSummary) -> None:
        """Give back this runner's unfinished claims and count the runs of other runners."""
        for key in self.mine:
            summary.released += self.store.release(key)
        for status in self.store.statuses(self.elsewhere).values():
            if status in FINISHED:
                summary.done_elsewhere += 1
            elif status == RunStatus.RUNNING:
                summary.held_elsewhere += 1


class _LocalPool:
    """Up to `workers` spawned processes (execute.worker_main), each sent one run at a
    time over its own pipe; started as runs are claimed, replaced when one dies."""

    def __init__(self, workers: int):
        self.ctx = get_context("spawn")  # a fresh interpreter per worker: no OpenMP state inherited through fork
        self.workers = workers
        self.idle: list = []  # (process, connection)
        self.running: dict = {}  # (process, connection) -> (key, spec)

    def free(self) -> bool:
        return len(self.running) < self.workers

    def _start(self):
        conn, child_conn = self.ctx.Pipe()
        proc = self.ctx.Process(target=worker_main, args=(child_conn, os.getpid()), name="optbench-worker")
        with _sigint_ignored():
            proc.start()
        child_conn.close()
        return proc, conn

    def submit(self, key: str, spec: dict) -> None:
        worker = None
        while worker is None and self.idle:
            worker = self.idle.pop()
            try:
                worker[1].send(spec)
            except OSError:  # an idle worker that died: end it, take another
                self._end([worker], stop=True)
                worker = None
        if worker is None:
            worker = self._start()
            try:
                worker[1].send(spec)
            except OSError:
                pass  # it died at once: `poll` finds it dead and fails the run
        self.running[worker] = (key, spec)

    def poll(self, timeout: float) -> tuple[list[str], list[tuple[str, dict, dict]]]:
        """Progress lines and (key, spec, record) of the runs that ended, waiting up to
        `timeout` s for the first."""
        handles = {h: w for w in self.running for h in (w[1], w[0].sentinel)}
        lines, results = [], []
        for worker in {handles[h] for h in wait_ready(list(handles), timeout)}:
            proc, conn = worker
            record, broken = None, False
            try:
                while record is None and conn.poll():
                    kind, payload = conn.recv()
                    if kind == "line":
                        lines.append(payload)
                    else:
                        record = payload
            except (EOFError, OSError):
                broken = True
            if record is None and (broken or not proc.is_alive()):  # died (segfault, OOM kill): fails only its run
                self._end([worker], stop=True)
                record = failed_record(f"worker process died (exit code {proc.exitcode})")
            elif record is not None:
                self.idle.append(worker)
            if record is not None:
                results.append((*self.running.pop(worker), record))
        return lines, results

    def _end(self, workers: list, stop: bool) -> None:
        for proc, conn in workers:
            try:
                proc.terminate() if stop else conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + _GRACE_S
        for proc, conn in workers:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()

    def close(self, stop: bool) -> None:
        """End every worker: SIGTERM when `stop` (runs in flight are abandoned), else the
        end of its pipe."""
        self._end(self.idle + list(self.running), stop=stop)
        self.idle, self.running = [], {}


class _DaskPool:
    """A Dask cluster: one task per claimed run, as many in flight as the cluster has
    worker threads (counted again at most every 5 s while all are busy, so workers that
    join a running cluster are used)."""

    def __init__(self, workers: int, scheduler: str):
        from distributed import Client, LocalCluster

        self.cluster = None
        if scheduler == "local":
            with _sigint_ignored():
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                            dashboard_address=None)
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(scheduler, timeout="30s")
            except OSError as err:
                raise ValueError(f"cannot reach the Dask scheduler {scheduler!r}: {err}") from None
        self.running: dict = {}  # future -> (key, spec)
        self.threads, self._count_at = 0, 0.0  # counted at the first `free`

    def free(self) -> bool:
        if len(self.running) >= self.threads and time.monotonic() >= self._count_at:
            self.threads = max(1, sum(self.client.nthreads().values()))
            self._count_at = time.monotonic() + 5.0
        return len(self.running) < self.threads

    def submit(self, key: str, spec: dict) -> None:
        self.running[self.client.submit(execute_run, spec, pure=False, key=f"optbench-{key}")] = (key, spec)

    def poll(self, timeout: float) -> tuple[list[str], list[tuple[str, dict, dict]]]:
        deadline = time.monotonic() + timeout
        while not (done := [f for f in self.running if f.done()]) and time.monotonic() < deadline:
            time.sleep(0.05)
        results = []
        for fut in done:
            try:
                record = fut.result()
            except Exception as err:
                record = failed_record(f"Dask task failed: {type(err).__name__}: {err}")
            results.append((*self.running.pop(fut), record))
        return [], results

    def close(self, stop: bool) -> None:
        """Cancel the tasks in flight when `stop` (a task already running on a worker of
        a remote cluster runs to its end, unrecorded), then close the client and a local
        cluster."""
        try:
            if stop and self.running:
                self.client.cancel(list(self.running), force=True)
        finally:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()


def run_experiment(experiment, *, workers: int | None = None, scheduler: str | None = None,
                   retry_failed: bool = False, take_over: bool = False, quiet: bool = False,
                   stream: TextIO | None = None) -> SweepSummary:
    """Run every unfinished run of `experiment` (experiment.Experiment) into its store,
    claiming them one at a time alongside any other runner of the store. `workers`:
    local processes (default: the machine's cores); `scheduler`: None for local
    processes, "local" for a Dask LocalCluster of `workers` processes, or a Dask
    scheduler address. Returns a SweepSummary. SIGINT and SIGTERM (handled when called
    from the main thread) end it cleanly: results already back kept, workers stopped,
    their runs given back, `summary.stopped_by` the signal."""
    workers = workers or default_workers()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    summary = SweepSummary(total=len(experiment.runs), already_finished=0)
    with _StopSignals() as stop:
        store = Store(experiment.store_path)
        progress = Progress(stream, quiet, workers)
        claims = pool = None
        failed = True
        try:
            claims = _Claims(store, experiment, retry_failed, take_over, summary)
            if not quiet:
                (stream or sys.stderr).write(
                    f"{experiment.name}: {summary.total} runs, {summary.already_finished} already finished, "
                    f"{len(claims.queue)} to run on {workers} {'Dask worker' if scheduler else 'local worker'}(s), "
                    f"claimed one at a time; store {store.path}\n")
            if claims.queue and stop.signum is None:
                pool = _DaskPool(workers, scheduler) if scheduler else _LocalPool(workers)
                _sweep(claims, pool, store, progress, summary, stop)
            failed = False
        finally:
            try:
                progress.close()
                if pool is not None:
                    pool.close(stop=failed or stop.signum is not None)
            finally:
                if claims is not None:
                    claims.settle(summary)
                store.close()
    summary.stopped_by = stop.signum
    return summary


def _sweep(claims: _Claims, pool, store: Store, progress: Progress, summary: SweepSummary,
           stop: _StopSignals) -> None:
    """Claim runs as the pool frees up and record their results until none is left or a
    signal came; then record the results already back."""
    while stop.signum is None:
        while stop.signum is None and pool.free() and (run := claims.take(idle=not pool.running)) is not None:
            pool.submit(*run)
        if not pool.running:
            return
        lines, results = pool.poll(_TURN_S)
        for line in lines:
            progress.line(line, len(pool.running) + len(claims.queue))
        _record_all(results, store, progress, summary, len(pool.running) + len(claims.queue))
    _record_all(pool.poll(0.0)[1], store, progress, summary, len(pool.running) + len(claims.queue))


def _record_all(results, store: Store, progress: Progress, summary: SweepSummary, pending: int) -> None:
    for key, spec, record in results:
        _save_potentials(store.path, key, record)
        store.finish(key, record)
        summary.ran[record["status"]] = summary.ran.get(record["status"], 0) + 1
        progress.finished(spec, record, pending)
