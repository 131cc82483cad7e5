"""How a run stands: the one list of run statuses, shared by the optimizers, the training
loop, the results store, the report and the command line.

``RunStatus`` is a ``StrEnum``: each member *is* its string ("budget" == RunStatus.BUDGET),
so run records, JSON files and the store's ``status`` column hold the plain words they
always held.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """The status of one run.

    Finished: CONVERGED (the optimizer's own convergence test passed), TARGET (the
    validation error reached the run's target), BUDGET (a budget limit ended it), STOPPED
    (the optimizer gave up without converging, e.g. a line-search failure), DIVERGED (a
    NaN or inf loss, gradient or parameter), TIMED_OUT (an outside trainer, MLIP's mlp
    train, was killed at the time limit before saving), FAILED (an error; the message says
    which). Not finished: RUNNING (claimed by a runner), INTERRUPTED (claimed by a runner
    that is gone; what the store reports for such a RUNNING row)."""

    CONVERGED = "converged"
    TARGET = "target"
    BUDGET = "budget"
    STOPPED = "stopped"
    DIVERGED = "diverged"
    TIMED_OUT = "timed_out"
    FAILED = "failed"
    RUNNING = "running"
    INTERRUPTED = "interrupted"


#: Statuses of a run that has a result (the store never overwrites one).
FINISHED: tuple[RunStatus, ...] = (RunStatus.CONVERGED, RunStatus.TARGET, RunStatus.BUDGET, RunStatus.STOPPED,
                                   RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.TIMED_OUT)
#: Finished without a usable end point: flagged in reports, a non-zero exit of `optbench train`.
UNSUCCESSFUL: tuple[RunStatus, ...] = (RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.TIMED_OUT)
