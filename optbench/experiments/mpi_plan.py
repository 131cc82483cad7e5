"""The experiment file's top-level ``mpi_ranks``: every run spread over that many MPI ranks
(optbench/experiments/mpi_run.py), checked against what can be spread."""

from __future__ import annotations

from dataclasses import replace

from optbench.experiments.runspec import RunSpec
from optbench.experiments.values import _Context, _integer
from optbench.foundation import FOUNDATION_KINDS
from optbench.objective.sharding import DISTRIBUTABLE_ENGINES, MAX_LEAVES


def apply_mpi_ranks(ctx: _Context, runs: list[RunSpec], value) -> list[RunSpec]:
    """The runs with settings["mpi_ranks"] = N when N > 1 (so their keys differ from the
    runs of one process: the sums are ordered differently); an error at the key when N is
    not an integer in 1..MAX_LEAVES, a model's engine cannot be spread, or an optimizer is
    MLIP's own trainer."""
    n = _integer(ctx, ("mpi_ranks",), value, minimum=1)
    if n > MAX_LEAVES:
        raise ctx.error(("mpi_ranks",), f"must be at most {MAX_LEAVES} (the leaves a training set is cut into), "
                                        f"got {n}")
    if n == 1:
        return runs
    for r in runs:
        engine = r.model.get("engine", "embedded")
        if r.model.get("kind") not in FOUNDATION_KINDS and engine not in DISTRIBUTABLE_ENGINES:
            raise ctx.error(("mpi_ranks",), f"model {r.model_name!r} uses engine {engine!r}, which optbench does not "
                                            f"spread over MPI ranks (use {', '.join(DISTRIBUTABLE_ENGINES)})")
        if r.optimizer == "native":
            raise ctx.error(("mpi_ranks",), "optimizer 'native' is MLIP's own mlp train, which runs MPI itself: "
                                            "remove it or set mpi_ranks = 1")
    return [replace(r, settings={**r.settings, "mpi_ranks": n}) for r in runs]
