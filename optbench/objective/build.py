"""A model dict and data -> the Objective that computes its loss, by the model's engine
(optbench.engine.choice: embedded, capi, mlip4, mlp-cli)."""

from __future__ import annotations

from optbench.engine import ENGINES, build_potential, load_engine
from optbench.foundation import FOUNDATION_KINDS, load_foundation
from optbench.io import DataSet, species_count
from optbench.mlip.mlip4_module import import_mlip4, load_mlip4_potential
from optbench.mlip.mlp import find_mlp
from optbench.objective.engine_objective import EngineObjective
from optbench.objective.mlip4 import Mlip4ModuleObjective
from optbench.objective.mlp_cli import MlpCliObjective
from optbench.objective.protocol import LossWeights


def build_objective(model: dict, train: DataSet, valid: DataSet | None, weights: LossWeights, threads: int | None = 1,
                    n_species: int | None = None):
    """The Objective for a model dict on these data: EngineObjective (embedded, capi),
    Mlip4ModuleObjective (mlip4), MlpCliObjective (mlp-cli), or for a foundation model
    (kind "sevennet", "mace") TorchObjective. ValueError naming the
    setting when the engine or its program/library/module is missing. `threads`: engine
    threads (None: leave the engine's setting, OpenMP's default). `n_species`: species of
    the potential (None: from the data; an MPI rank holding part of the data passes the
    whole's)."""
    if model.get("kind") in FOUNDATION_KINDS:
        return build_torch_objective(model, train, valid, weights, threads)
    engine_kind = model.get("engine", "embedded")
    if engine_kind not in ENGINES:
        raise ValueError(f"engine {engine_kind!r}: expected one of {', '.join(ENGINES)}")
    if engine_kind == "mlip4":
        if not model.get("template"):
            raise ValueError("engine 'mlip4' starts from an MLIP-4 potential file: set template = PATH (.json)")
        module = import_mlip4(model.get("module") or "mlip_4")
        pot = load_mlip4_potential(module, model.get("kind", "mtp"), model["template"])
        return Mlip4ModuleObjective(module, pot, train, valid, weights)
    if engine_kind == "capi" and not model.get("lib"):
        raise ValueError("engine 'capi' needs lib = PATH of a library implementing mlipc.h (--lib on the command line)")
    engine = load_engine(model.get("lib") if engine_kind == "capi" else None)
    if threads is not None:
        engine.set_num_threads(threads)
    pot = build_potential(engine, model, n_species or species_count(train, valid))
    # A potential file is a starting point: runs start from its coefficients. A model
    # level, spec or template starts from the engine's defaults.
    start = pot.get_params() if model.get("file") else None
    if engine_kind == "mlp-cli":
        try:
            mlp = find_mlp(model.get("mlp"))
        except FileNotFoundError as err:
            raise ValueError(str(err)) from None
        return MlpCliObjective(engine, pot, train, valid, weights, start=start, mlp=mlp)
    return EngineObjective(engine, pot, train, valid, weights, start=start)


def build_torch_objective(model: dict, train: DataSet, valid: DataSet | None, weights: LossWeights,
                          threads: int | None = 1, adapter=None, reduce=None):
    """TorchObjective of a foundation-model dict (kind, model, dtype, train_groups,
    energy_shift); `threads`: torch's intra-op threads (None: torch's default); `adapter`:
    the model already loaded (None: load it); `reduce`: TorchObjective's (MPI ranks)."""
    from optbench.objective.torch_objective import TorchObjective  # imports torch

    if adapter is None:
        adapter = load_foundation(model)  # FoundationError (a ValueError) names what is missing
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    return TorchObjective(adapter, train, valid, weights, train_groups=model.get("train_groups", "all"),
                          energy_shift=model.get("energy_shift", True), reduce=reduce)
