"""One Objective over a data set spread across MPI ranks (data parallelism).

Rank 0 runs the training exactly as without MPI: its `DistributedObjective` is an
Objective like any other, so every optimizer, schedule, budget and the tracker run
unchanged on rank 0's view of the parameter vector. The other ranks run `serve`: a loop
that waits for rank 0's next command, computes it on their own share of the
configurations (a local Objective: EngineObjective or TorchObjective over that share)
and returns their part. Each command is

    header [op, len(x), len(batch) or -1, argument] -> x -> batch -> v   (broadcasts)
    every rank: its part on its share, timed
    every rank: did its part fail? (allgather of messages: all ranks agree)
    rank 0: the parts combined (leaf rows: Gatherv, then added in leaf order; the
            validation loss and metrics: Reduce sum and max; residual rows: Gatherv;
            J^T u: Reduce, after u's rows went out by Scatterv)

Sums are of the per-configuration terms: the training set is cut into fixed leaves (runs
of consecutive configurations, at most MAX_LEAVES, chosen from the data alone); each rank
computes one row per leaf it holds (the leaf's mean times its size) and rank 0 adds the
gathered rows in leaf order. The additions are then the same for any number of ranks, so
a run on N ranks gives the bits of a run on one rank of this code (tests/test_mpi.py:
loss, gradient, and whole BFGS and Adam histories at N = 2 equal N = 1; against the
plain objective without MPI, whose engine call sums all configurations at once, they
agree to rounding, 1e-15 on one evaluation).
Mini-batches are drawn by rank 0's generator as global indices; each rank takes the
indices in its contiguous range [start, stop) (optbench.parallel.partition), so the
batches do not depend on N.

Failure: an exception in any rank's part is raised on rank 0 as DistributedError with
every failing rank's message, and the workers wait for the next command. A rank that
dies or hangs makes a collective miss its deadline (optbench.parallel.comm): rank 0 gets
RankTimeout, the objective is marked broken (`failure`), and the caller aborts the job.
"""

from __future__ import annotations

import time

import numpy as np

from optbench.metrics import Metrics, error_sums, metrics_from_sums
from optbench.objective.protocol import central_jvp, residual_rows
from optbench.parallel import Comm, RankTimeout, share_of

STOP, LOSS_GRAD, LOSS, VALID_LOSS, METRICS, LINEAR_SYSTEM, HVP, RESIDUALS, VJP, LINEAR_DESIGN = range(10)
_NAMES = {STOP: "stop", LOSS_GRAD: "loss and gradient", LOSS: "loss", VALID_LOSS: "validation loss",
          METRICS: "metrics", LINEAR_SYSTEM: "linear system", HVP: "Hessian-vector product",
          RESIDUALS: "residuals", VJP: "J^T u", LINEAR_DESIGN: "linear design"}
_SPLITS = ("train", "valid")

#: Attributes that do not depend on the data and are read from rank 0's local Objective.
_DELEGATED = ("kind", "potential_suffix", "linear_slice", "weights", "potential", "start", "energy_shift",
              "param_shapes", "model", "engine")


class DistributedError(RuntimeError):
    """A rank's part of a command failed; the message lists each failing rank's error."""


class Shard:
    """Which configurations each rank holds. The training set is cut into fixed leaves,
    runs of consecutive configurations that do not depend on the number of ranks
    (leaf_bounds, global indices); rank r holds leaves [leaf_ranks[r], leaf_ranks[r + 1])
    and so training configurations [train_bounds[r], train_bounds[r + 1]), and validation
    configurations [valid_bounds[r], valid_bounds[r + 1]); `atoms` the atoms of every
    training configuration; `pairs` the neighbour-pair count of each rank's training
    share (the balance the partition reached)."""

    def __init__(self, rank: int, leaf_bounds, leaf_ranks, valid_bounds, atoms, pairs=None):
        self.rank = rank
        #: atoms of every training configuration (all ranks'): the residual vector's layout
        self.atoms = np.asarray(atoms, dtype=np.int64)
        self.force_start = np.concatenate([[0], np.cumsum(3 * self.atoms)])
        self.leaf_bounds = np.asarray(leaf_bounds, dtype=np.int64)
        self.leaf_ranks = np.asarray(leaf_ranks, dtype=np.int64)
        self.train_bounds = self.leaf_bounds[self.leaf_ranks]
        self.valid_bounds = np.asarray(valid_bounds, dtype=np.int64)
        self.pairs = None if pairs is None else np.asarray(pairs, dtype=np.int64)

    @property
    def n_train(self) -> int:
        """Training configurations over all ranks."""
        return int(self.leaf_bounds[-1])

    @property
    def n_valid(self) -> int:
        """Validation configurations over all ranks."""
        return int(self.valid_bounds[-1])

    @property
    def n_leaves(self) -> int:
        """Leaves of the training set over all ranks."""
        return self.leaf_bounds.size - 1

    def train_range(self) -> tuple[int, int]:
        """This rank's [start, stop) of the training set."""
        return int(self.train_bounds[self.rank]), int(self.train_bounds[self.rank + 1])

    def my_leaves(self) -> list[tuple[int, int]]:
        """This rank's leaves as global [start, stop) ranges, in order."""
        a, b = int(self.leaf_ranks[self.rank]), int(self.leaf_ranks[self.rank + 1])
        return [(int(self.leaf_bounds[j]), int(self.leaf_bounds[j + 1])) for j in range(a, b)]

    def leaf_counts(self) -> np.ndarray:
        """Leaves each rank holds."""
        return np.diff(self.leaf_ranks)

    def rows_of(self, rank: int, batch=None) -> np.ndarray:
        """Positions in the whole set's residual vector of rank `rank`'s residual rows for
        a global batch (None: all its configurations), in the order that rank lists
        them (protocol.residual_rows)."""
        a, b = int(self.train_bounds[rank]), int(self.train_bounds[rank + 1])
        mine = np.arange(a, b) if batch is None else share_of(batch, a, b) + a
        return residual_rows(self.force_start, mine)

    @property
    def n_residuals(self) -> int:
        """Length of the whole training set's residual vector."""
        return int(7 * self.n_train + self.force_start[-1])

    def valid_count(self) -> int:
        """Validation configurations this rank holds."""
        return int(self.valid_bounds[self.rank + 1] - self.valid_bounds[self.rank])


#: Largest number of doubles (leaves x payload) gathered to rank 0 for the sum in leaf
#: order; above it (a foundation model's 842 440 parameters x many leaves) each rank sums
#: its own leaves and the ranks' sums are reduced, which is exact only up to the order
#: of the additions.
EXACT_LIMIT = 1 << 23


def _payload_size(op: int, n_params: int, arg: int) -> int:
    if op in (LOSS_GRAD, HVP):
        return n_params + 1
    if op in (LOSS, VALID_LOSS):
        return 1
    if op == LINEAR_SYSTEM:
        return arg * arg + arg + 1
    raise ValueError(op)


def _leaf_rows(local, shard: Shard, op: int, x, batch, v, arg: int) -> np.ndarray:
    """This rank's rows of per-leaf sums (means times counts) of a summed command, one
    row per leaf it holds: each leaf is one call of the local Objective on that leaf's
    part of the batch, the same call whatever the number of ranks, so a row is bit for
    bit the same on any rank that holds the leaf."""
    start = shard.train_range()[0]
    leaves = shard.my_leaves()
    rows = np.zeros((len(leaves), _payload_size(op, local.n_params, arg)))
    for j, (a, b) in enumerate(leaves):
        if batch is None:
            idx = np.arange(a - start, b - start)
        else:
            idx = share_of(batch, a, b) + (a - start)
        m = idx.size
        if m == 0:
            continue
        if op == LOSS_GRAD:
            loss, g = local.loss_grad(x, idx)
            rows[j, 0], rows[j, 1:] = loss * m, g * m
        elif op == LOSS:
            rows[j, 0] = local.loss(x, idx) * m
        elif op == HVP:
            rows[j, 1:] = local.hvp(x, v, idx) * m
        elif op == LINEAR_SYSTEM:
            A, bb, r0 = local.linear_system(x, idx)
            rows[j] = np.concatenate([np.ravel(A) * m, bb * m, [r0 * m]])
    return rows


def _local_part(local, shard: Shard, op: int, x, batch, v, arg: int):
    """This rank's part of a command: ("leaves", rows) for the summed commands,
    ("sum", array) for the validation loss, ("metrics", sums, maxima) for metrics."""
    if op in (LOSS_GRAD, LOSS, HVP, LINEAR_SYSTEM):
        return "leaves", _leaf_rows(local, shard, op, x, batch, v, arg)
    if op == VALID_LOSS:
        mv = shard.valid_count()
        return "sum", np.array([local.valid_loss(x) * mv if mv else 0.0])
    # residual vectors: the local ones are scaled by sqrt(w / n_local), the whole set's by
    # sqrt(w / n): the factor c turns one into the other (1 exactly on one rank)
    c = np.sqrt(local.n_train / shard.n_train)
    if op == RESIDUALS:
        start, stop = shard.train_range()
        idx = share_of(batch, start, stop)
        if idx is not None and idx.size == 0:
            return "gather", np.zeros(0)
        return "gather", c * local.residuals(x, idx)
    if op == VJP:
        return "sum", c * local.vjp(x, v)
    if op == LINEAR_DESIGN:
        D, y = local.linear_design(x)
        return "gather", c * np.concatenate([D.ravel(), y])
    if op == METRICS:
        split = _SPLITS[arg]
        data = local.train if split == "train" else local.valid
        if data is None or len(data) == 0:
            return ("metrics",) + error_sums([], np.zeros(0), np.zeros((0, 3)), np.zeros((0, 6)))
        return ("metrics",) + error_sums(data.configs, *local.predict(x, split))
    raise ValueError(f"unknown command {op}")


def _gather_counts(shard: Shard, op: int, batch, arg: int) -> np.ndarray:
    """The length of each rank's gathered part (rank order)."""
    rows = np.array([shard.rows_of(r, batch).size for r in range(len(shard.train_bounds) - 1)])
    return rows * (arg + 1) if op == LINEAR_DESIGN else rows


def _combine_leaves(comm: Comm, shard: Shard, rows: np.ndarray, what: str, own: float):
    """The sum of every leaf's row, on rank 0: gathered and added in leaf order (the
    same additions for any number of ranks) while leaves x payload <= EXACT_LIMIT, else
    each rank's rows summed and the ranks' sums reduced."""
    width = rows.shape[1]
    if shard.n_leaves * width <= EXACT_LIMIT:
        every = comm.gatherv(rows.ravel(), shard.leaf_counts() * width, f"{what}: leaf sums", own)
        return None if every is None else every.reshape(shard.n_leaves, width).sum(axis=0)
    return comm.reduce_sum(rows.sum(axis=0), f"{what}: sums", own)


def _run(comm: Comm, local, shard: Shard, header: np.ndarray, x, batch, v):
    """Every rank: compute this rank's part, agree on failures, combine on rank 0.
    Returns the combined part on rank 0 (None elsewhere); DistributedError (every rank)
    when a part failed."""
    op, arg = int(header[0]), int(header[3])
    what = _NAMES.get(op, str(op))
    t0 = time.perf_counter()
    message, part = None, None
    try:
        part = _local_part(local, shard, op, x, batch, v, arg)
    except Exception as err:  # reported to every rank with the rank's number; nothing is combined
        message = f"{type(err).__name__}: {err}"
    own = time.perf_counter() - t0
    failures = comm.errors(message, f"{what}: the ranks' outcomes", own)
    if failures:
        raise DistributedError(f"{what} failed on {len(failures)} of {comm.size} ranks: " + "; ".join(failures))
    if part[0] == "leaves":
        return _combine_leaves(comm, shard, part[1], what, own)
    if part[0] == "gather":
        return comm.gatherv(part[1], _gather_counts(shard, op, batch, arg), f"{what}: the ranks' rows", own)
    if part[0] == "metrics":
        sums = comm.reduce_sum(part[1], f"{what}: sums", own)
        maxima = comm.reduce_max(part[2], f"{what}: maxima", own)
        return None if sums is None else (sums, maxima)
    return comm.reduce_sum(part[1], f"{what}: sums", own)


def _receive(comm: Comm, n_params: int, header: np.ndarray):
    """A worker: the arrays of the command `header` announces, from rank 0."""
    n_x, n_batch = int(header[1]), int(header[2])
    timeout = comm.timeout
    x = comm.bcast(np.empty(n_x), "the parameters", timeout) if n_x else None
    batch = comm.bcast(np.empty(n_batch, dtype=np.int64), "the batch", timeout) if n_batch >= 0 else None
    op = int(header[0])
    v = None
    if op == HVP:
        v = comm.bcast(np.empty(n_params), "the direction", timeout)
    elif op == VJP:
        v = comm.scatterv(None, None, "the residual weights", timeout)
    return x, batch, v


def serve(comm: Comm, local, shard: Shard) -> int:
    """A worker rank (rank > 0): answer rank 0's commands on this rank's share with the
    local Objective `local` until rank 0 says stop; returns the exit code rank 0 sends
    with it. A failed part is reported to rank 0 and the loop goes on."""
    while True:
        header = comm.bcast(np.empty(4, dtype=np.int64), "the next command", None)
        if int(header[0]) == STOP:
            return int(header[3])
        x, batch, v = _receive(comm, local.n_params, header)
        try:
            _run(comm, local, shard, header, x, batch, v)
        except DistributedError:
            continue  # rank 0 raises it; this rank waits for the next command


class DistributedObjective:
    """Rank 0's Objective over training and validation sets spread over the ranks of
    `comm` (shard: who holds what; local: rank 0's own share's Objective). n_train,
    n_valid and every loss, gradient and metric are those of the whole sets. Data-free
    attributes (kind, potential_suffix, linear_slice, ...) are the local Objective's;
    the potential file is written by rank 0 alone.

    The residual vector, J^T u, J v and the linear design (the Gauss-Newton,
    Levenberg-Marquardt and variable-projection methods) are assembled on rank 0 from the
    ranks' rows: rank 0 then holds vectors of the whole set's residual length (as those
    methods need), the ranks the neighbour data."""

    def __init__(self, comm: Comm, local, shard: Shard):
        if comm.rank != 0:
            raise ValueError("DistributedObjective runs on rank 0; the other ranks run serve()")
        self.comm, self.local, self.shard = comm, local, shard
        self.n_params = local.n_params
        self.configs_evaluated = 0
        self.failure: str | None = None  # set when a rank died or hung: the job must end
        self._closed = False

    def __getattr__(self, name):
        if name in _DELEGATED:
            return getattr(self.local, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def n_train(self) -> int:
        """Training configurations over all ranks."""
        return self.shard.n_train

    @property
    def n_valid(self) -> int:
        """Validation configurations over all ranks."""
        return self.shard.n_valid

    def _command(self, op: int, x=None, batch=None, v=None, arg: int = 0):
        if self.failure is not None:
            raise RuntimeError(f"MPI job broken: {self.failure}")
        if self._closed:
            raise RuntimeError("this DistributedObjective is closed (its workers were told to stop)")
        comm = self.comm
        x = None if x is None else np.ascontiguousarray(x, dtype=np.float64)
        if x is not None and x.shape != (self.n_params,):
            raise ValueError(f"parameter vector has shape {x.shape}, expected ({self.n_params},)")
        if batch is not None:
            batch = np.ascontiguousarray(batch, dtype=np.int64)
            if batch.size == 0:
                raise ValueError("empty batch")
            if batch.min() < 0 or batch.max() >= self.n_train:
                raise ValueError(f"batch indices must lie in [0, {self.n_train})")
        header = np.array([op, 0 if x is None else x.size, -1 if batch is None else batch.size, arg],
                          dtype=np.int64)
        try:
            comm.bcast(header, f"{_NAMES[op]}: the command", comm.timeout)
            if x is not None:
                comm.bcast(x, f"{_NAMES[op]}: the parameters", comm.timeout)
            if batch is not None:
                comm.bcast(batch, f"{_NAMES[op]}: the batch", comm.timeout)
            if op == HVP:
                comm.bcast(np.ascontiguousarray(v, dtype=np.float64), f"{_NAMES[op]}: the direction", comm.timeout)
            if op == VJP:  # each rank its rows of u, in its own residual order
                pieces = [np.asarray(v)[self.shard.rows_of(r)] for r in range(comm.size)]
                v = comm.scatterv(pieces, [p.size for p in pieces], f"{_NAMES[op]}: the residual weights",
                                  comm.timeout)
            return _run(comm, self.local, self.shard, header, x, batch, v)
        except RankTimeout as err:
            self.failure = str(err)
            raise

    def _count(self, batch) -> int:
        return self.n_train if batch is None else int(np.asarray(batch).size)

    def initial_params(self, seed: int, interval: float | None = None) -> np.ndarray:
        """The local Objective's start (the same on every rank), plus the seed's noise."""
        return self.local.initial_params(seed, interval)

    def loss_grad(self, x: np.ndarray, batch: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Mean loss over the batch of global indices (None: the whole training set) and
        its gradient, from every rank's part."""
        n = self._count(batch)
        total = self._command(LOSS_GRAD, x, batch)
        self.configs_evaluated += n
        return float(total[0]) / n, total[1:] / n

    def loss(self, x: np.ndarray, batch: np.ndarray | None = None) -> float:
        """Mean loss over the batch without the gradient."""
        return float(self._command(LOSS, x, batch)[0]) / self._count(batch)

    def valid_loss(self, x: np.ndarray) -> float:
        """Mean loss over the whole validation set."""
        if not self.n_valid:
            raise ValueError("this objective has no validation set")
        return float(self._command(VALID_LOSS, x)[0]) / self.n_valid

    def evaluate(self, x: np.ndarray, split: str = "valid") -> Metrics:
        """MLIP's error metrics of x on the whole split ("train" or "valid"), combined
        exactly from the ranks' sums and maxima (optbench.metrics.error_sums)."""
        if split not in _SPLITS:
            raise ValueError(f"split must be 'train' or 'valid', got {split!r}")
        if split == "valid" and not self.n_valid:
            raise ValueError("this objective has no validation set")
        sums, maxima = self._command(METRICS, x, arg=_SPLITS.index(split))
        return metrics_from_sums(sums, maxima)

    def linear_system(self, x: np.ndarray, batch: np.ndarray | None = None):
        """Normal equations (A, b, r0) of the mean loss over the batch in the linear
        parameters (EngineObjective.linear_system), summed over the ranks."""
        sl = self.local.linear_slice
        k = sl.stop - sl.start
        total = self._command(LINEAR_SYSTEM, x, batch, arg=k) / self._count(batch)
        return total[:k * k].reshape(k, k), total[k * k:k * k + k], float(total[-1])

    @property
    def hvp(self):
        """H v of the mean loss over a batch (the local Objective's exact product, e.g.
        TorchObjective's double backward), summed over the ranks; AttributeError when the
        local Objective has none (callers then difference gradients)."""
        if not hasattr(self.local, "hvp"):
            raise AttributeError("hvp")

        def product(x: np.ndarray, v: np.ndarray, batch: np.ndarray | None = None) -> np.ndarray:
            return self._command(HVP, x, batch, v)[1:] / self._count(batch)

        return product

    # ------------------------------------------------- least-squares structure
    # The whole set's residual vector (EngineObjective's layout: all energies, all force
    # components, all stresses) assembled on rank 0 from the ranks' rows; what the
    # Gauss-Newton, Levenberg-Marquardt and variable-projection methods step on.

    @property
    def n_residuals(self) -> int:
        """Length of the whole training set's residual vector."""
        return self.shard.n_residuals

    def residual_rows(self, idx: np.ndarray) -> np.ndarray:
        """Positions in the residual vector of training configurations `idx`, in the order
        residuals(x, idx) returns them."""
        return residual_rows(self.shard.force_start, idx)

    def _assemble(self, parts: np.ndarray, batch, width: int = 1) -> np.ndarray:
        """The ranks' gathered rows (each rank's in its own order, `width` values a row)
        placed at their positions in the whole set's residual vector (all of it, or the
        batch's rows in residual_rows order)."""
        full = np.zeros((self.n_residuals, width))
        at = 0
        for r in range(self.comm.size):
            rows = self.shard.rows_of(r, batch)
            full[rows] = parts[at:at + rows.size * width].reshape(rows.size, width)
            at += rows.size * width
        return full if batch is None else full[self.residual_rows(batch)]

    def residuals(self, x: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """The residual vector r of the whole training set at x (|r|^2 the mean loss), or
        with `idx` the rows of those configurations (EngineObjective.residuals)."""
        if idx is not None:
            idx = np.asarray(idx, dtype=np.int64)
        parts = self._command(RESIDUALS, x, idx)
        self.configs_evaluated += self._count(idx)
        return self._assemble(parts, idx)[:, 0]

    def vjp(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """J^T u for J = dr/dx at x: each rank's rows of u, J^T u summed over the ranks."""
        u = np.asarray(u, dtype=np.float64)
        if u.shape != (self.n_residuals,):
            raise ValueError(f"u has shape {u.shape}, expected ({self.n_residuals},)")
        self.configs_evaluated += self.n_train
        return self._command(VJP, x, v=u)

    def jvp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """J v by a central difference of the residuals (protocol.central_jvp)."""
        return central_jvp(self.residuals, x, v, self.n_residuals)

    def linear_design(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(D, y) of the whole training set (EngineObjective.linear_design), assembled
        from the ranks' rows."""
        sl = self.local.linear_slice
        k = sl.stop - sl.start
        parts = self._command(LINEAR_DESIGN, x, arg=k)
        self.configs_evaluated += self.n_train
        # each rank sent its D (rows x k) then its y (rows): reorder to rows of k + 1
        at, rows_all = 0, []
        for r in range(self.comm.size):
            m = self.shard.rows_of(r).size
            D, y = parts[at:at + m * k].reshape(m, k), parts[at + m * k:at + m * (k + 1)]
            rows_all.append(np.column_stack([D, y]).ravel())
            at += m * (k + 1)
        full = self._assemble(np.concatenate(rows_all), None, k + 1)
        return full[:, :k], full[:, k]

    def evaluate_data(self, xs: list[np.ndarray], data) -> list[Metrics]:
        """Metrics of each parameter vector on another data set, on rank 0 alone (a
        held-out test set is not spread)."""
        return self.local.evaluate_data(xs, data)

    def save(self, x: np.ndarray, path) -> None:
        """Write the potential with parameters x (rank 0 alone)."""
        self.local.save(x, path)

    def close(self, code: int = 0) -> None:
        """Tell the workers to stop and return `code` as their exit status; no-op after a
        failure (the job is aborted instead) or a second call."""
        if self._closed or self.failure is not None:
            return
        self._closed = True
        self.comm.bcast(np.array([STOP, 0, -1, code], dtype=np.int64), "stop", self.comm.timeout)
