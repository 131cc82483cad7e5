"""Stopping `optbench run` and running several at once (optbench/experiments/runner.py,
execute.py: worker_main, store.py: claim and release, cli/experiments.py: cmd_run).

Contracts: SIGINT (as a Ctrl-C, to the whole process group) and SIGTERM stop a sweep with
exit code 130 / 143 and one line on stderr, no traceback, no process left, every finished
run kept and no run left claimed, and the same command then completes the rest without
redoing anything; after SIGKILL of the runner its workers end by themselves within
seconds; two runners of one experiment split its runs, each run done once.

Each sweep is 6 runs of about a second (0.7 s of training plus evaluations) on the
generated Ag-Pd data, through the real command line in a subprocess.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

EXPERIMENT = """
name = "sig"
seeds = 6
weights = { stress = 0.0 }
budget = { epochs = 100000, seconds = 0.7 }
data.gen = { generate = { seed = 1, n_train = 12, n_valid = 6 } }
models.mtp6 = { level = 6 }
optimizers = [{ name = "adam", lr = 0.01, batch_size = 6, init_interval = 0.01 }]
"""
RUNS = 6
# The command line, its code version pinned: a run's key holds the code version, which an
# edit of the working tree while a test runs would change between two runners.
OPTBENCH = [sys.executable, "-c", ("import sys, optbench.experiments.runspec as r; "
                                   "r.current_code_version = lambda: 'test'; "
                                   "from optbench.cli import main; sys.exit(main())")]


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    exp = tmp_path / "sig.toml"
    exp.write_text(EXPERIMENT)
    return exp, tmp_path / "results" / "sig" / "store.sqlite"


def _start(exp: Path, workers: int, tmp_path: Path, name: str) -> tuple[subprocess.Popen, Path]:
    """`optbench run EXP --workers N --no-report` in its own process group; stderr to a file."""
    err = tmp_path / f"{name}.err"
    proc = subprocess.Popen([*OPTBENCH, "run", str(exp), "--workers", str(workers), "--no-report"],
                            stdout=subprocess.DEVNULL, stderr=err.open("w"), start_new_session=True)
    return proc, err


def _rows(store: Path) -> dict[str, tuple]:
    """key -> (status, attempts, finished_at, owner_pid), read raw (a dead runner's claims
    still read "running" here)."""
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30) as db:
            return {k: rest for k, *rest in db.execute("SELECT key, status, attempts, finished_at, owner_pid FROM runs")}
    except sqlite3.OperationalError:  # not created yet
        return {}


def _finished(store: Path) -> dict[str, tuple]:
    return {k: r for k, r in _rows(store).items() if r[0] == "budget"}


def _wait_for_finished(proc: subprocess.Popen, store: Path, n: int, timeout: float = 60.0) -> dict[str, tuple]:
    """Wait until `n` runs are finished in the store while two workers are busy; returns
    the finished rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be stopped"
        done = _finished(store)
        if len(done) >= n and sum(r[0] == "running" for r in _rows(store).values()) >= 1:
            return done
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} runs finished in {timeout} s")


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE  # exited, not yet reaped: gone
    except psutil.NoSuchProcess:
        return False


def _assert_all_gone(procs: list[psutil.Process], pgid: int, timeout: float) -> float:
    """Wait until every one of `procs` and every process of group `pgid` has exited;
    returns how long that took."""
    t0 = time.monotonic()
    while (alive := [p for p in procs if _running(p)]) and time.monotonic() - t0 < timeout:
        time.sleep(0.02)
    assert not alive, f"processes left behind: {[p.cmdline() for p in alive]}"
    group = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and _running(p):
                group.append(p)
        except (ProcessLookupError, psutil.Error):
            pass
    assert not group, f"processes of the runner's group left: {group}"
    return time.monotonic() - t0


def _rerun_completes(exp: Path, store: Path, kept: dict[str, tuple]) -> dict[str, tuple]:
    """Run the command again: it must finish the rest and leave the runs in `kept` as they were."""
    rerun = subprocess.run([*OPTBENCH, "run", str(exp), "--workers", "2", "--no-report"], capture_output=True,
                           text=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
    rows = _rows(store)
    assert len(rows) == RUNS and {r[0] for r in rows.values()} == {"budget"}
    for key, row in kept.items():
        assert rows[key] == row, f"finished run {key} was touched by the rerun"
    assert f"{len(kept)} already in the store" in rerun.stderr.splitlines()[-1]
    return rows


@pytest.mark.parametrize("signame, to_group", [("SIGINT", True), ("SIGTERM", False)])
def test_signal_stops_cleanly_and_rerun_completes(tmp_path, signame, to_group):
    """SIGINT to the runner's process group (what Ctrl-C sends) or SIGTERM to the runner
    alone, while 2 workers run: exit code 128 + signal (130, 143), the last stderr line
    says "stopped by SIG...", no traceback, the workers and every other child gone, each
    run finished before the signal still stored as it was, no run left "running"; the
    same command then completes the sweep, redoing nothing (every run one attempt)."""
    sig = signal.Signals[signame]
    exp, store = _setup(tmp_path)
    proc, err = _start(exp, 2, tmp_path, "run")
    before = _wait_for_finished(proc, store, 2)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 2  # two workers (and multiprocessing's resource tracker)
    (os.killpg if to_group else os.kill)(proc.pid, sig)
    assert proc.wait(timeout=30) == 128 + sig
    stderr = err.read_text()
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith(f"stopped by {signame}: ") and "run the same command again" in lines[-1]
    assert sum("stopped by" in line for line in lines) == 1
    _assert_all_gone(children, proc.pid, timeout=10)
    rows = _rows(store)
    assert "running" not in {r[0] for r in rows.values()}, "a stopped runner left a claim"
    for key, row in before.items():
        assert rows[key] == row
    after = _rerun_completes(exp, store, _finished(store))
    assert {r[1] for r in after.values()} == {1}  # attempts: the stopped runs were given back, not interrupted


def test_sigkill_of_runner_ends_its_workers(tmp_path):
    """SIGKILL of the runner alone: its workers (and multiprocessing's resource tracker)
    exit by themselves within a few seconds; its runs in flight read "interrupted" and the
    next `optbench run` takes them again (a second attempt) and completes the sweep
    without touching the runs finished before."""
    exp, store = _setup(tmp_path)
    proc, _ = _start(exp, 2, tmp_path, "run")
    _wait_for_finished(proc, store, 2)
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    _assert_all_gone(children, proc.pid, timeout=8)
    kept = _finished(store)
    claimed = [k for k, r in _rows(store).items() if r[0] == "running"]
    assert claimed, "no run was in flight at the kill"
    rows = _rerun_completes(exp, store, kept)
    assert all(rows[k][1] == 2 for k in claimed)


def test_two_runners_split_the_sweep(tmp_path):
    """Two `optbench run` of one experiment, started half a second apart, 1 worker each:
    both exit 0 and run some runs, their counts add up to the sweep, and the store holds
    one finished row per run with one attempt each, owned by one or the other runner."""
    exp, store = _setup(tmp_path)
    first, first_err = _start(exp, 1, tmp_path, "first")
    time.sleep(0.5)
    second, second_err = _start(exp, 1, tmp_path, "second")
    assert first.wait(timeout=120) == 0, first_err.read_text()
    assert second.wait(timeout=120) == 0, second_err.read_text()
    ran = []
    for err in (first_err, second_err):
        last = err.read_text().strip().splitlines()[-1]
        ran.append(int(re.search(r"(\d+) run now", last).group(1)))
    assert min(ran) >= 1 and sum(ran) == RUNS, ran
    rows = _rows(store)
    assert len(rows) == RUNS
    assert {r[0] for r in rows.values()} == {"budget"}
    assert {r[1] for r in rows.values()} == {1}
    owners = [r[3] for r in rows.values()]
    assert sorted(owners.count(pid) for pid in (first.pid, second.pid)) == sorted(ran)
