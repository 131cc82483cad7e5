"""Run MLIP's own trainer (``mlp train``, MLIP-3 / MLIP-4 command line) and read its output.

This is the "native" optimizer of the study: MLIP's BFGS with its own line search,
rescaling and linear re-solves.  The adapter

* finds the ``mlp`` binary (:func:`find_mlp`),
* builds the ``mlp train`` argument list (:func:`train_command`),
* runs it with the live output teed to a log file and a watchdog that kills the whole
  process group on timeout (:func:`run_mlp_train`),
* reads its error report (:func:`check_errors`, ``mlp check_errors``).

Reading MLIP's logs and reports is logs.py's job.

Units: the loss ``f`` is reported exactly as MLIP prints it (mean over configurations of
the weighted energy / force / stress terms plus the small radial penalty); times are
seconds as printed at the start of each log line (seconds since the start of the run);
error-report values are MLIP's (eV, eV/atom, eV/Angstrom, eV for "Stresses (in energy
units)", GPa for "Virial stresses (in pressure units)").
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from optbench.mlip.logs import TrainLog, parse_error_report, parse_train_log
from optbench.status import RunStatus

__all__ = ["MlpRun", "find_mlp", "train_command", "run_mlp_train", "check_errors"]

ENV_MLP = "OPTBENCH_MLP"

# ---------------------------------------------------------------------------------------
# finding the binary, building the command
# ---------------------------------------------------------------------------------------


def find_mlp(path: str | None = None) -> str:
    """Return the ``mlp`` binary to run.

    Order: the ``path`` argument (e.g. from ``--mlp PATH``), then the environment
    variable ``OPTBENCH_MLP``, then ``mlp`` on ``PATH`` (``shutil.which``).  Raises
    :class:`FileNotFoundError` naming the setting to fix when nothing usable is found.
    """
    if path:
        # An explicit choice must exist: silently falling back would run another binary.
        found = shutil.which(path) or (path if Path(path).is_file() else None)
        if found is None:
            raise FileNotFoundError(f"mlp binary {path!r} (given with --mlp PATH) was not found")
        return found
    env = os.environ.get(ENV_MLP)
    if env:
        found = shutil.which(env) or (env if Path(env).is_file() else None)
        if found is None:
            raise FileNotFoundError(f"mlp binary {env!r} from ${ENV_MLP} was not found")
        return found
    found = shutil.which("mlp")
    if found is None:
        raise FileNotFoundError(
            "no MLIP 'mlp' binary: pass --mlp PATH, set the environment variable "
            f"{ENV_MLP}=/path/to/mlp, or put 'mlp' on PATH"
        )
    return found


def _num(x: float | int) -> str:
    # repr() keeps every digit of a float (str(1e-3) is '0.001', fine for MLIP's parser).
    return repr(float(x)) if isinstance(x, float) else str(x)


def train_command(
    mlp: str,
    potential: str | os.PathLike,
    train_cfg: str | os.PathLike,
    save_to: str | os.PathLike,
    *,
    energy_weight: float = 1.0,
    force_weight: float = 0.01,
    stress_weight: float = 0.001,
    iteration_limit: int = 1000,
    tolerance: float = 1e-3,
    init_random: bool = False,
    weight_scaling: int | None = None,
    weight_scaling_forces: int | None = None,
    log: str | os.PathLike = "stdout",
) -> list[str]:
    """Build the ``mlp train`` command as an argument list (never a shell string).

    MLIP-3 syntax: ``mlp train POT CFG --energy_weight=.. --force_weight=..
    --stress_weight=.. --iteration_limit=.. --tolerance=.. [--init_random=true]
    --save_to=.. --log=..`` plus ``--weight_scaling=..`` / ``--weight_scaling_forces=..``
    when given (MLIP's defaults 1 and 0 otherwise); the option names are those MLIP echoes at the start of its
    log (``iteration_limit = 200``, ``save_to = l08.mtp``, ``log = stdout``).  Defaults are
    MLIP's own.  ``log="stdout"`` makes MLIP print its log to stdout, which
    :func:`run_mlp_train` tees to a file.  Paths are passed unquoted: each value is one
    list element, so spaces stay inside that argument.
    """
    cmd = [
        str(mlp),
        "train",
        os.fspath(potential),
        os.fspath(train_cfg),
        f"--energy_weight={_num(energy_weight)}",
        f"--force_weight={_num(force_weight)}",
        f"--stress_weight={_num(stress_weight)}",
        f"--iteration_limit={int(iteration_limit)}",
        f"--tolerance={_num(tolerance)}",
    ]
    if init_random:
        cmd.append("--init_random=true")
    if weight_scaling is not None:
        cmd.append(f"--weight_scaling={int(weight_scaling)}")
    if weight_scaling_forces is not None:
        cmd.append(f"--weight_scaling_forces={int(weight_scaling_forces)}")
    cmd += [f"--save_to={os.fspath(save_to)}", f"--log={os.fspath(log)}"]
    return cmd


# ---------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------


@dataclass
class MlpRun:
    """Outcome of :func:`run_mlp_train`.

    ``status``: ``"converged"`` (stopped by the tolerance), ``"stopped"`` (iteration
    limit), ``"timed_out"`` (watchdog killed it) or ``"failed"`` (non-zero exit, signal,
    could not start, or no "training complete"); ``message`` explains, with the exit code
    or signal and the last log lines on failure; ``returncode`` as from Popen (negative =
    signal; None if it never started); ``log`` the parsed :class:`TrainLog`;
    ``log_path`` the kept log; ``wall_s`` the wall time in seconds.
    """

    status: str
    message: str
    returncode: int | None
    log: TrainLog
    log_path: Path
    wall_s: float


def _kill_group(pgid: int, grace_s: float, proc: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``grace_s``."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists but not ours (pgid reused): treat as gone for us
        return False
    return True


def _save_to(cmd: Sequence[str]) -> str | None:
    for arg in cmd:
        if arg.startswith("--save_to="):
            return arg.split("=", 1)[1]
    return None


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def run_mlp_train(
    cmd: Sequence[str],
    log_path: str | os.PathLike,
    timeout_s: float,
    *,
    grace_s: float = 5.0,
    echo: bool = True,
    cwd: str | os.PathLike | None = None,
) -> MlpRun:
    """Run an ``mlp train`` command (from :func:`train_command`) with a watchdog.

    stdout and stderr (merged) are read line by line, echoed to ``sys.stdout`` when
    ``echo`` and written to ``log_path`` as they come, so the log is live and survives
    a kill.  The process runs in its own session / process group; after ``timeout_s``
    seconds the whole group gets SIGTERM and, ``grace_s`` seconds later, SIGKILL.
    The log is kept in every case.  Returns :class:`MlpRun` (status converged | stopped |
    timed_out | failed; see there).

    subprocess-tee is not used: it is not installed here and, being built on asyncio's
    subprocess API, it does not hand out the process for a process-group kill; the plain
    Popen loop below does the same teeing.
    """
    cmd = [os.fspath(c) for c in cmd]
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    tail: deque[str] = deque(maxlen=15)
    timed_out = threading.Event()

    with open(log_path, "w", encoding="utf-8", errors="replace") as logf:
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # MLIP's errors belong in the same log
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                bufsize=1,
                cwd=cwd,
                start_new_session=True,  # own process group: MPI / child processes die too
            )
        except OSError as exc:
            logf.write(f"optbench: could not start {cmd[0]!r}: {exc}\n")
            return MlpRun(RunStatus.FAILED, f"could not start {cmd[0]!r}: {exc}", None,
                          TrainLog(), log_path, time.monotonic() - t0)

        pgid = proc.pid  # the session leader's pid is the group id

        def watchdog() -> None:
            timed_out.set()
            _kill_group(pgid, grace_s, proc)

        # The reading loop below blocks on the pipe, so the timeout lives in a thread;
        # killing the group closes the pipe, which ends the loop.
        timer = threading.Timer(timeout_s, watchdog)
        timer.daemon = True
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                logf.write(line)
                logf.flush()
                tail.append(line.rstrip("\n"))
                if echo:
                    sys.stdout.write(line)
                    sys.stdout.flush()
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # interrupted (KeyboardInterrupt): do not leave it running
                _kill_group(pgid, grace_s, proc)
                proc.wait()
            # Children that outlived a normal exit would keep computing: end them too.
            if _group_alive(pgid):
                _kill_group(pgid, grace_s, proc)
        wall = time.monotonic() - t0
        if timed_out.is_set():
            logf.write(f"optbench: killed after the {timeout_s:g} s time limit\n")

    parsed = parse_train_log(log_path.read_text(encoding="utf-8", errors="replace"))
    rc = proc.returncode
    last = "\n".join(tail)

    if timed_out.is_set():
        n = len(parsed.train_iterations)
        return MlpRun(RunStatus.TIMED_OUT, f"killed after {timeout_s:g} s (time limit), "
                      f"{n} main-stage BFGS iterations logged", rc, parsed, log_path, wall)
    if rc != 0:
        how = f"killed by {_signal_name(rc)}" if rc < 0 else f"exit code {rc}"
        return MlpRun(RunStatus.FAILED, f"mlp train failed ({how}); last log lines:\n{last}",
                      rc, parsed, log_path, wall)
    if not parsed.completed:
        return MlpRun(RunStatus.FAILED, "mlp train exited 0 without 'training complete'; "
                      f"last log lines:\n{last}", rc, parsed, log_path, wall)
    save_to = _save_to(cmd)
    if save_to is not None:
        target = Path(save_to) if cwd is None else Path(cwd, save_to)
        if not target.is_file():
            return MlpRun(RunStatus.FAILED, f"mlp train reported completion but {save_to} is missing",
                          rc, parsed, log_path, wall)
    if parsed.converged:
        return MlpRun(RunStatus.CONVERGED, "stopped by the tolerance", rc, parsed, log_path, wall)
    reason = ("iteration limit reached" if parsed.stop_reason == "iteration_limit"
              else "completed; stop reason not found in the log")
    return MlpRun(RunStatus.STOPPED, reason, rc, parsed, log_path, wall)


# ---------------------------------------------------------------------------------------
# check_errors
# ---------------------------------------------------------------------------------------


def _run_tool(cmd: list[str], timeout_s: float) -> str:
    """Run a short mlp command; its stdout, or RuntimeError with the exit status and the
    last lines of its output."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(cmd[:2])} did not finish within {timeout_s:g} s") from None
    except OSError as err:
        raise RuntimeError(f"could not start {cmd[0]!r}: {err}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
        raise RuntimeError(f"{' '.join(cmd[:2])} failed with exit code {done.returncode}:\n{tail}")
    return done.stdout


def check_errors(mlp: str, potential: str | os.PathLike, cfg: str | os.PathLike, timeout_s: float = 600.0) -> dict:
    """MLIP's error report of `potential` on the configurations of `cfg`, from
    ``mlp check_errors POT CFG``, parsed by :func:`parse_error_report` (MLIP's units)."""
    return parse_error_report(_run_tool([str(mlp), "check_errors", os.fspath(potential), os.fspath(cfg)], timeout_s))
