"""Each MPI rank's share of the training and validation sets, and its local Objective.

Every rank reads the data files (the parse is transient), counts the neighbour pairs of
every size-th configuration within the model's cutoff (one small engine data set at a
time), and the ranks exchange the counts; then each keeps only its contiguous run of
configurations balanced by pair count (optbench.parallel.partition) and builds the
engine's neighbour data, the memory that grows with the data set, for that run alone.
The caller then drops the whole parsed sets (a few per cent of the neighbour data's
memory: positions, labels), so a rank holds its share only.
"""

from __future__ import annotations

import numpy as np

from optbench.engine import build_potential, load_engine
from optbench.foundation import FOUNDATION_KINDS, load_foundation
from optbench.io import DataSet, species_count
from optbench.objective.distributed import Shard
from optbench.objective.protocol import LossWeights
from optbench.parallel import Comm, contiguous_partition

#: Leaves the training set is cut into (optbench.objective.distributed): the most ranks
#: a training can use, and the granularity of the balance.
MAX_LEAVES = 128

#: Engines whose loss a rank can compute on its share (MLIP's mlp program and MLIP-4's
#: module train over MPI themselves).
DISTRIBUTABLE_ENGINES = ("embedded", "capi")


def pair_counts(data: DataSet, cutoff: float, indices, engine=None) -> np.ndarray:
    """Neighbour pairs (ordered, i != j images included) within `cutoff` (A) of the
    configurations `indices` of `data`, from the engine's own neighbour lists, one
    configuration at a time (memory of one configuration's list)."""
    engine = engine or load_engine(None)
    out = np.zeros(len(indices), dtype=np.int64)
    for j, k in enumerate(indices):
        out[j] = engine.dataset(data[[int(k)]], cutoff).size()[2]
    return out


def _bounds_for(weights: np.ndarray, size: int) -> np.ndarray:
    if weights.size >= size:
        return contiguous_partition(weights, size)
    # fewer configurations than ranks (a small validation set): one each, the rest none
    return np.concatenate([np.arange(weights.size + 1), np.full(size - weights.size, weights.size)])


def shard_data(comm: Comm, train: DataSet, valid: DataSet | None, cutoff: float):
    """(local train, local valid or None, Shard): this rank's contiguous runs of the
    training and validation sets, balanced over the ranks by neighbour-pair count (+1 a
    configuration) within `cutoff`: the training set is cut into min(n, MAX_LEAVES)
    balanced leaves, and the leaves into one run per rank. Every rank passes the same
    (whole) sets. ValueError when there are fewer training configurations (or leaves)
    than ranks."""
    n_train, n_valid = len(train), 0 if valid is None else len(valid)
    if min(n_train, MAX_LEAVES) < comm.size:
        raise ValueError(f"{n_train} training configurations cut into {min(n_train, MAX_LEAVES)} leaves cannot be "
                         f"shared by {comm.size} MPI ranks: use at most {min(n_train, MAX_LEAVES)} ranks")
    everything = train if not n_valid else DataSet(train.configs + valid.configs, train.species, train.name)
    mine = np.arange(comm.rank, n_train + n_valid, comm.size)
    counts = np.zeros(n_train + n_valid)
    counts[mine] = pair_counts(everything, cutoff, mine)
    counts = comm.allreduce_sum(counts, "neighbour-pair counts").astype(np.int64)
    weights = counts[:n_train] + 1
    # the leaves depend on the data alone, never on the number of ranks
    leaf_bounds = contiguous_partition(weights, min(n_train, MAX_LEAVES))
    leaf_ranks = contiguous_partition(np.add.reduceat(weights, leaf_bounds[:-1]), comm.size)
    valid_bounds = _bounds_for(counts[n_train:] + 1, comm.size) if n_valid else np.zeros(comm.size + 1, np.int64)
    train_bounds = leaf_bounds[leaf_ranks]
    pairs = np.add.reduceat(counts[:n_train], train_bounds[:-1])
    shard = Shard(comm.rank, leaf_bounds, leaf_ranks, valid_bounds, [c.n_atoms for c in train.configs], pairs)
    r = comm.rank
    local_train = train[int(train_bounds[r]):int(train_bounds[r + 1])]
    local_valid = valid[int(valid_bounds[r]):int(valid_bounds[r + 1])] if n_valid else None
    return local_train, local_valid if local_valid is not None and len(local_valid) else None, shard


def _cutoff_and_adapter(model: dict, n_species: int):
    if model.get("kind") in FOUNDATION_KINDS:
        adapter = load_foundation(model)
        return adapter.cutoff, adapter
    engine_kind = model.get("engine", "embedded")
    if engine_kind not in DISTRIBUTABLE_ENGINES:
        raise ValueError(f"engine {engine_kind!r} is not spread over MPI ranks by optbench (MLIP's own codes run "
                         f"MPI themselves): use one of {', '.join(DISTRIBUTABLE_ENGINES)} or a foundation model")
    return build_potential(load_engine(model.get("lib") if engine_kind == "capi" else None), model,
                           n_species).cutoff, None


def local_objective(comm: Comm, model: dict, train: DataSet, valid: DataSet | None, weights: LossWeights,
                    threads: int | None = 1):
    """(local Objective, Shard) of this rank for a model dict: every rank calls it with
    the same whole data sets and gets the Objective over its share (the potential built
    for the whole sets' species; a foundation model's energy shift fitted on the whole
    training set). Rank 0 wraps it in DistributedObjective; the others serve() it. Every
    rank raises the same ValueError when any rank's part failed, so no rank is left
    waiting. The caller drops its references to the whole sets afterwards."""
    from optbench.objective.build import build_objective, build_torch_objective

    message, local, shard = None, None, None
    try:
        n_species = species_count(train, valid)
        cutoff, adapter = _cutoff_and_adapter(model, n_species)
        local_train, local_valid, shard = shard_data(comm, train, valid, cutoff)
        if adapter is not None:
            local = build_torch_objective(model, local_train, local_valid, weights, threads, adapter=adapter,
                                          reduce=lambda a: comm.allreduce_sum(a, "the energy shift's equations"))
        else:
            local = build_objective(model, local_train, local_valid, weights, threads, n_species=n_species)
    except Exception as err:  # every rank must learn of it
        message = f"{type(err).__name__}: {err}"
    failures = comm.errors(message, "building each rank's share")
    if failures:
        raise ValueError("MPI set-up failed: " + "; ".join(failures))
    return local, shard
