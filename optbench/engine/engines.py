"""Which code computes the loss: a model's `engine` setting -> an Objective.

    engine = "embedded"   the engine inside this package (libmlipc.so), default
    engine = "capi"       another library implementing engine/include/mlipc.h, e.g.
                          MLIP-4 with mlip4_patches/ (lib = PATH)
    engine = "mlip4"      MLIP-4's Python module (module = "mlip_4"; template = the
                          MLIP-4 potential JSON to start from), adapters/mlip4_module.py
    engine = "mlp-cli"    MLIP's `mlp` program (mlp = PATH, else $OPTBENCH_MLP or PATH):
                          trains only with the "native" optimizer (mlp train) and is
                          evaluated by `mlp check_errors`; the potential files are MLIP's
                          own, read by the embedded engine for the parameter vector

The model dict is RunSpec.model (runspec.py): kind ("mtp", later "etn"), level or
template, min_dist / max_dist / radial_basis_size (Angstrom), engine and its settings.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from optbench.io.data import DataSet, write_cfg
from optbench.metrics import Metrics
from optbench.objective.protocol import EngineObjective, LossWeights

ENGINES = ("embedded", "capi", "mlip4", "mlp-cli")
_ENGINE_CACHE: dict[str, object] = {}


def load_engine(lib: str | None = None):
    """The C-ABI engine: the embedded one (lib None) or the library at `lib`; one per
    process and library."""
    from optbench.engine.capi import Engine

    key = lib or ""
    if key not in _ENGINE_CACHE:  # a missing library: capi.Engine's error names the --lib setting
        _ENGINE_CACHE[key] = Engine(lib) if lib else Engine()
    return _ENGINE_CACHE[key]


def n_species_of(train: DataSet, valid: DataSet | None) -> int:
    """Species count of a data set: its element list when it has one, else the largest
    type index + 1 over train and validation."""
    if getattr(train, "species", None):
        return len(train.species)
    sets = [train] + ([valid] if valid is not None else [])
    return 1 + max(int(c.types.max()) for d in sets for c in d.configs)


def _lists(lists: list[list[int]]) -> str:
    return "[" + ",".join("[" + ",".join(str(int(v)) for v in row) + "]" for row in lists) + "]"


def etn_spec(model: dict, n_species: int) -> str:
    """The engine's spec string of an ETN model dict (shape, ranks, lmax, radial basis)
    for `n_species` species, in the study's list notation (engine/README.md, "ETN")."""
    words = ["etn", f"species={n_species}", f"shape={_lists(model['shape'])}", f"ranks={_lists(model['ranks'])}"]
    for key in ("lmax", "radial_basis_size", "min_dist", "max_dist"):
        if model.get(key) is not None:
            words.append(f"{key}={model[key]}")
    return " ".join(words)


def build_potential(engine, model: dict, n_species: int):
    """The untrained C-ABI potential a model dict describes (MTP level or template file,
    ETN shape and ranks, or an ETN JSON file), for `n_species` species."""
    kind = model.get("kind", "mtp")
    if kind not in ("mtp", "etn"):
        raise ValueError(f"model kind {kind!r}: expected 'mtp' or 'etn'")
    if kind == "etn":
        if model.get("template"):
            pot = engine.load_potential(model["template"])
            if pot.info()["species_count"] != n_species:
                raise ValueError(f"{model['template']}: {pot.info()['species_count']} species, the data have {n_species}")
            return pot
        return engine.potential_from_spec(etn_spec(model, n_species))
    words = [kind]
    if model.get("template"):
        if any(ch.isspace() for ch in str(model["template"])):
            raise ValueError(f"template path {model['template']!r} contains whitespace, which the engine's spec cannot hold")
        words.append(f"template={model['template']}")
    else:
        words.append(f"level={int(model['level'])}")
    words.append(f"species={n_species}")
    for key in ("min_dist", "max_dist", "radial_basis_size"):
        if model.get(key) is not None:
            words.append(f"{key}={model[key]}")
    return engine.potential_from_spec(" ".join(words))


def build_objective(model: dict, train: DataSet, valid: DataSet | None, weights: LossWeights, threads: int = 1):
    """The Objective for a model dict on these data: EngineObjective (embedded, capi),
    Mlip4ModuleObjective (mlip4) or MlpCliObjective (mlp-cli). ValueError naming the
    setting when the engine or its program/library/module is missing."""
    engine_kind = model.get("engine", "embedded")
    if engine_kind not in ENGINES:
        raise ValueError(f"engine {engine_kind!r}: expected one of {', '.join(ENGINES)}")
    if engine_kind == "mlip4":
        from optbench.mlip.mlip4_module import Mlip4ModuleObjective, import_mlip4, load_mlip4_potential

        if not model.get("template"):
            raise ValueError("engine 'mlip4' starts from an MLIP-4 potential file: set template = PATH (.json)")
        module = import_mlip4(model.get("module") or "mlip_4")
        pot = load_mlip4_potential(module, model.get("kind", "mtp"), model["template"])
        return Mlip4ModuleObjective(module, pot, train, valid, weights)
    if engine_kind == "capi" and not model.get("lib"):
        raise ValueError("engine 'capi' needs lib = PATH of a library implementing mlipc.h (--lib on the command line)")
    engine = load_engine(model.get("lib") if engine_kind == "capi" else None)
    engine.set_num_threads(threads)
    pot = build_potential(engine, model, n_species_of(train, valid))
    if engine_kind == "mlp-cli":
        from optbench.mlip.mlp_cli import find_mlp

        try:
            mlp = find_mlp(model.get("mlp"))
        except FileNotFoundError as err:
            raise ValueError(str(err)) from None
        return MlpCliObjective(engine, pot, train, valid, weights, mlp=mlp)
    return EngineObjective(engine, pot, train, valid, weights)


class MlpCliObjective(EngineObjective):
    """The model as MLIP's `mlp` program sees it: trained only by the "native" optimizer
    (mlp train, which reads `mlp` from here), evaluated by `mlp check_errors`. The
    parameter vector is read from MLIP's potential files by the embedded engine, which
    reads the same formats."""

    uses_mlp_only = True

    def __init__(self, engine, potential, train, valid=None, weights=None, *, mlp: str):
        super().__init__(engine, potential, train, valid, weights)
        self.mlp = mlp

    def loss_grad(self, x, batch=None):
        """Not available: MLIP's program computes no loss on demand."""
        raise ValueError("engine 'mlp-cli' trains only with the optimizer 'native' (MLIP's mlp train); "
                         "use engine 'embedded' or 'capi' for the other optimizers")

    loss = loss_grad

    def valid_loss(self, x) -> float:
        """NaN: MLIP's program reports no validation loss (the run's history holds mlp
        train's own training loss, and evaluate() its error report)."""
        return float("nan")

    def evaluate(self, x, split: str = "valid") -> Metrics:
        """MLIP's error report (mlp check_errors) of parameters x on a split."""
        from optbench.mlip.mlp_cli import check_errors

        data, _ = self._split(split)
        with tempfile.TemporaryDirectory(prefix="optbench-mlp-") as tmp:
            pot, cfg = Path(tmp, "pot.almtp"), Path(tmp, f"{split}.cfg")
            self.save(x, pot)
            write_cfg(data, cfg)
            return Metrics.from_blocks(check_errors(self.mlp, pot, cfg), len(data), data.n_atoms, count_key="n")
