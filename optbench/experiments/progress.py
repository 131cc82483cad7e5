"""What a sweep prints: a line per finished run with an overall bar and ETA (`Progress`),
and the paragraph at the end (`SweepSummary`)."""

from __future__ import annotations

import math
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from optbench.status import UNSUCCESSFUL, RunStatus


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """One line per finished run and an overall bar with an ETA, to `stream` (stderr).
    On a terminal the bar is redrawn in place; in a log it is printed after each run.
    The bar counts this runner's runs: those it finished and those still pending for it
    (running or left to claim), which change as other runners of the store take runs."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False, workers: int = 1):
        self.done, self.failed, self.workers = 0, 0, workers
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.tty = getattr(self.stream, "isatty", lambda: False)()

    def _bar(self, pending: int) -> str:
        total = self.done + pending
        frac = self.done / total if total else 1.0
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * pending if self.done else math.inf
        filled = int(round(30 * frac))
        running = min(pending, self.workers)
        return (f"[{'#' * filled}{'-' * (30 - filled)}] {self.done}/{total} runs, {running} running, "
                f"{pending - running} queued, {self.failed} failed, {_fmt_seconds(elapsed)} elapsed, "
                f"ETA {_fmt_seconds(eta)}")

    def line(self, text: str, pending: int) -> None:
        """Print `text` (a run's line) and the overall bar (`pending`: this runner's
        runs not yet finished, running or left to claim)."""
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
        self.failed += record["status"] == RunStatus.FAILED
        valid = record.get("valid") or record.get("train")
        epa = f"EPA {1e3 * valid['energy_per_atom']['rmse']:.3f} meV/atom" if valid else "no metrics"
        secs = record.get("train_seconds") or record.get("wall_seconds") or 0.0
        label = f"{spec['model_name']}/{spec['data_name']} {spec['variant']} seed {spec['settings'].get('seed', 0)}"
        msg = "" if record["status"] not in UNSUCCESSFUL else f" ({record['message']})"
        self.line(f"{label}: {record['status']}, {epa}, {secs:.1f} s{msg}", pending)

    def close(self) -> None:
        """End the bar's line on a terminal."""
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class SweepSummary:
    """What `run_experiment` did: runs in the experiment, skipped because finished when
    it started, run now (by final status), done by another runner of the store while it
    ran, held by another runner still running when it ended, and, when a signal stopped
    it, the signal's number and the runs it gave back unfinished."""

    total: int
    already_finished: int
    held_elsewhere: int = 0
    done_elsewhere: int = 0
    ran: dict[str, int] = field(default_factory=dict)
    stopped_by: int | None = None
    released: int = 0

    @property
    def interrupted(self) -> bool:
        """Whether a signal (SIGINT, SIGTERM) stopped the sweep before its end."""
        return self.stopped_by is not None

    def text(self) -> str:
        """One line for the terminal."""
        ran = ", ".join(f"{n} {s}" for s, n in sorted(self.ran.items())) or "none"
        out = (f"{self.total} runs: {self.already_finished} already in the store, {sum(self.ran.values())} run now "
               f"({ran})")
        if self.done_elsewhere:
            out += f", {self.done_elsewhere} done by another runner"
        if self.held_elsewhere:
            out += (f", {self.held_elsewhere} held by another runner (still running; or, if it is on another "
                    "host and has stopped, take them with --take-over)")
        if self.interrupted:
            out = (f"stopped by {signal.Signals(self.stopped_by).name}: {out}, {self.released} stopped and given "
                   "back; run the same command again to complete the rest")
        return out
