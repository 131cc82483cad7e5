"""MPI for one training spread over ranks: finding out whether this process was started by
an MPI launcher, and a communicator whose every wait has a deadline.

mpi4py is an optional extra (``pip install 'mlip-optbench[mpi]'``, which brings MPICH's
wheels); it is imported only when a launcher started more than one rank, so nothing
changes for a plain `optbench train`. The launcher is recognised by the variables it sets
for each rank (MPICH's Hydra, Intel MPI and Slurm's PMI: PMI_SIZE; Open MPI:
OMPI_COMM_WORLD_SIZE; PMIx launchers: PMIX_SIZE), so `mpiexec -n 1` and no launcher both
mean "no MPI".

Why deadlines: a rank that dies or hangs must end the run with a message, never leave the
others waiting forever. MPICH's mpiexec kills the whole job when a rank dies (its own
"BAD TERMINATION" message, exit status of the dead rank); other launchers, or
`mpiexec -disable-auto-cleanup`, leave the survivors blocked in a collective. Every wait
here therefore polls a nonblocking request and raises `RankTimeout`, naming what it was
waiting for, when the deadline passes; the caller then aborts the job
(`Comm.abort`), since a collective that never completed cannot be cancelled.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

#: Environment variables in which MPI launchers give each rank the job's size.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE")

#: Seconds a rank waits for the others beyond its own share of the work (default of
#: --mpi-timeout); see Comm.timeout.
DEFAULT_TIMEOUT = 120.0


class MPIUnavailable(RuntimeError):
    """Launched with several ranks, but MPI cannot be used from Python (mpi4py missing)."""


class RankTimeout(RuntimeError):
    """A collective did not complete before its deadline: a rank died or hangs."""


def launched_size(environ=None) -> int:
    """The number of ranks an MPI launcher started this job with, from the variables it
    sets (SIZE_VARIABLES); 1 without a launcher."""
    env = os.environ if environ is None else environ
    for name in SIZE_VARIABLES:
        value = env.get(name)
        if value:
            try:
                return max(1, int(value))
            except ValueError:
                continue
    return 1


def world(timeout: float = DEFAULT_TIMEOUT, force: bool = False) -> "Comm | None":
    """The job's communicator when a launcher started more than one rank, else None
    (everything runs as without MPI); with `force`, the communicator even of one rank
    (the data-parallel code on a single rank, which sums in the same order as on N).
    MPIUnavailable, saying how to install it, when the launcher started several ranks
    (or `force`) but mpi4py cannot be imported."""
    size = launched_size()
    if size <= 1 and not force:
        return None
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise MPIUnavailable(
            f"this process is one of {size} MPI ranks (the launcher set the rank count) but mpi4py cannot be "
            f"imported ({err}): pip install 'mlip-optbench[mpi]' (mpi4py with MPICH's wheels), or start "
            "optbench without mpiexec") from None
    return Comm(MPI.COMM_WORLD, timeout)


class Comm:
    """An MPI communicator (mpi4py) whose waits have deadlines.

    rank, size: this process's rank and the job's size. `timeout` (s) is how long a rank
    waits for the others after its own part of a collective is done; None waits forever
    (the workers' wait for the next command: rank 0 may spend any time between two)."""

    def __init__(self, mpi_comm, timeout: float | None = DEFAULT_TIMEOUT):
        from mpi4py import MPI

        self._MPI, self.comm = MPI, mpi_comm
        self.rank, self.size = mpi_comm.Get_rank(), mpi_comm.Get_size()
        if timeout is not None and not (np.isfinite(timeout) and timeout > 0):
            raise ValueError(f"MPI timeout must be a positive number of seconds, got {timeout}")
        self.timeout = timeout

    def wait(self, request, what: str, timeout: float | None) -> None:
        """Wait for `request` until `timeout` seconds have passed (None: forever);
        RankTimeout naming `what` after that. Polls with a back-off from 0 to 1 ms, so a
        fast collective costs no sleep and a slow one little CPU."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.0
        while not request.Test():
            if deadline is not None and time.monotonic() > deadline:
                raise RankTimeout(f"MPI: {what}: no answer from every rank within {timeout:.0f} s "
                                  f"(rank {self.rank} of {self.size} waiting); a rank died or hangs")
            if pause:
                time.sleep(pause)
            pause = min(1e-3, pause * 2 if pause else 1e-5)

    def _deadline(self, extra: float) -> float | None:
        return None if self.timeout is None else self.timeout + extra

    def bcast(self, array: np.ndarray, what: str, timeout: float | None = None) -> np.ndarray:
        """Broadcast a contiguous numpy array from rank 0 into `array` on every rank."""
        self.wait(self.comm.Ibcast(array, root=0), what, timeout)
        return array

    def reduce_sum(self, array: np.ndarray, what: str, own_seconds: float = 0.0) -> np.ndarray | None:
        """The element-wise sum of `array` over the ranks, on rank 0 (None on the others);
        the deadline is the timeout plus 4x this rank's own compute time `own_seconds`
        (a balanced rank takes about as long)."""
        return self._reduce(array, self._MPI.SUM, what, own_seconds)

    def reduce_max(self, array: np.ndarray, what: str, own_seconds: float = 0.0) -> np.ndarray | None:
        """The element-wise maximum of `array` over the ranks, on rank 0 (None elsewhere)."""
        return self._reduce(array, self._MPI.MAX, what, own_seconds)

    def _reduce(self, array, op, what, own_seconds):
        send = np.ascontiguousarray(array, dtype=np.float64)
        recv = np.empty_like(send) if self.rank == 0 else None
        self.wait(self.comm.Ireduce(send, recv, op=op, root=0), what, self._deadline(4.0 * own_seconds))
        return recv

    def allreduce_sum(self, array: np.ndarray, what: str) -> np.ndarray:
        """The element-wise sum of `array` over the ranks, on every rank."""
        send = np.ascontiguousarray(array, dtype=np.float64)
        recv = np.empty_like(send)
        self.wait(self.comm.Iallreduce(send, recv, op=self._MPI.SUM), what, self._deadline(0.0))
        return recv

    def gatherv(self, array: np.ndarray, counts, what: str, own_seconds: float = 0.0) -> np.ndarray | None:
        """The ranks' 1-d float64 arrays (rank r's of length counts[r]) concatenated in
        rank order, on rank 0 (None elsewhere)."""
        send = np.ascontiguousarray(array, dtype=np.float64)
        if self.rank == 0:
            counts = np.asarray(counts, dtype=np.int64)
            recv = np.empty(int(counts.sum()))
            displ = np.concatenate([[0], np.cumsum(counts)[:-1]])
            spec = [recv, (counts.tolist(), displ.tolist()), self._MPI.DOUBLE]
        else:
            spec = None
        self.wait(self.comm.Igatherv(send, spec, root=0), what, self._deadline(4.0 * own_seconds))
        return spec[0] if spec is not None else None

    def scatterv(self, pieces, counts, what: str, timeout: float | None = None) -> np.ndarray:
        """Rank 0's float64 arrays `pieces` (one a rank, lengths `counts`) sent one to each
        rank; every rank gets its own (the others pass None, None)."""
        if self.rank == 0:
            counts = np.asarray(counts, dtype=np.int64)
            send = np.ascontiguousarray(np.concatenate(pieces), dtype=np.float64)
            displ = np.concatenate([[0], np.cumsum(counts)[:-1]])
            spec = [send, (counts.tolist(), displ.tolist()), self._MPI.DOUBLE]
            size = np.array([counts[0]], dtype=np.int64)
            sizes = counts
        else:
            spec, sizes, size = None, None, np.empty(1, dtype=np.int64)
        self.wait(self.comm.Iscatter(sizes, size, root=0), what, timeout)
        recv = np.empty(int(size[0]))
        self.wait(self.comm.Iscatterv(spec, recv, root=0), what, timeout)
        return recv

    def errors(self, message: str | None, what: str, own_seconds: float = 0.0) -> list[str]:
        """Every rank says whether its part failed (`message`, or None) and every rank
        gets the list of "rank r: message" of the ranks that did (empty when none), so
        that all take the same branch afterwards. Messages are cut to 1000 bytes."""
        width = 1024
        buf = np.zeros(width, dtype=np.uint8)
        if message is not None:
            raw = message.encode("utf-8", "replace")[:width - 24] or b"error"
            buf[:len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        recv = np.empty((self.size, width), dtype=np.uint8)
        self.wait(self.comm.Iallgather(buf, recv), what, self._deadline(4.0 * own_seconds))
        return [f"rank {r}: {bytes(row).rstrip(bytes(1)).decode('utf-8', 'replace')}"
                for r, row in enumerate(recv) if row.any()]

    def abort(self, message: str, code: int = 1) -> None:
        """Print `message` to stderr and end every rank of the job (MPI_Abort): what is left
        after a RankTimeout, when a collective can no longer complete."""
        print(f"optbench (MPI rank {self.rank} of {self.size}): {message}", file=sys.stderr, flush=True)
        self.comm.Abort(code)
