"""Run under `mpiexec -n 2`: `optbench train ARGS...` (the real command line) in which rank
1 dies (SIGKILL, "kill") or hangs ("hang") at its K-th loss and gradient, for
tests/test_mpi.py's check that the job then ends, with a message, and writes nothing.

    mpiexec -n 2 python sabotage.py kill|hang K -- optbench-train-arguments...
"""

import os
import signal
import sys
import time

import optbench.cli.training as training
from optbench.cli import main


class Saboteur:
    """A local Objective that dies or hangs at its K-th loss_grad; otherwise the real one."""

    def __init__(self, local, mode: str, k: int):
        self._local, self._mode, self._k, self._calls = local, mode, k, 0

    def __getattr__(self, name):
        return getattr(self._local, name)

    def loss_grad(self, x, batch=None):
        self._calls += 1
        if self._calls == self._k:
            if self._mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(3600)
        return self._local.loss_grad(x, batch)


def sabotaged(real, mode: str, k: int):
    def build(comm, *args, **kw):
        local, shard = real(comm, *args, **kw)
        return (Saboteur(local, mode, k) if comm.rank == 1 else local), shard
    return build


if __name__ == "__main__":
    mode, k, sep, *argv = sys.argv[1:]
    training.local_objective = sabotaged(training.local_objective, mode, int(k))
    sys.exit(main(argv))
