"""One training spread over MPI ranks: the communicator with deadlines (comm.py) and the
balanced contiguous shares of a data set (partition.py). It imports nothing of optbench;
the distributed Objective that uses it is optbench/objective/distributed.py."""

from optbench.parallel.comm import (
    DEFAULT_TIMEOUT,
    Comm,
    MPIUnavailable,
    RankTimeout,
    launched_size,
    world,
)
from optbench.parallel.partition import contiguous_partition, share_of

__all__ = ["Comm", "DEFAULT_TIMEOUT", "MPIUnavailable", "RankTimeout", "contiguous_partition", "launched_size",
           "share_of", "world"]
