"""What the asv benchmarks share: the data set, the models, the loss weights, the engine.

No benchmarks here (asv imports this module too; nothing in it is named time_*/track_*).
Imports of optbench stay inside the functions so that asv's discovery of the suite is
cheap and a commit that lacks one of them fails only the benchmarks that need it.
"""

from __future__ import annotations

import importlib

# Where each module of the package layout (docs/architecture.md) lived before it: `make
# bench-compare` and `asv continuous` run this suite on older commits too, so the
# benchmarks name what they use by its current place and find it at either.
FORMER_MODULES = {
    "optbench.engine.capi": "optbench.adapters.capi",
    "optbench.io": "optbench.harness.data",
    "optbench.io.generator": "optbench.harness.generator",
    "optbench.objective": "optbench.harness.objective",
    "optbench.optim": "optbench.harness.optimizers",
    "optbench.optim.budget": "optbench.harness.budget",
    "optbench.train": "optbench.harness.train",
}


def load(module: str, *names: str):
    """The objects `names` of `module` (one object for one name, else a tuple), from its
    former place (FORMER_MODULES) on commits before the package layout."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError:
        mod = importlib.import_module(FORMER_MODULES[module])
    objs = tuple(getattr(mod, n) for n in names)
    return objs[0] if len(objs) == 1 else objs

# The engine benchmarks' models, by the short label asv shows as the parameter value.
MTP_MODELS = {
    "mtp8": "mtp level=8 species=2 min_dist=2.0 max_dist=5.0",
    "mtp16": "mtp level=16 species=2 min_dist=2.0 max_dist=5.0",
}
# ETN rows. An engine that builds no potential from an "etn ..." spec (an older commit
# under `asv continuous`, or another library) skips them (NotImplementedError: n/a on the
# dashboard, not a failure). Add the study's other shapes as further rows.
ETN_MODELS = {
    # the study's default ETN (engine/README.md, "ETN")
    "etn_1_6_3": "etn shape=[[1],[6],[3]] ranks=[[1],[1]] lmax=2 species=2 min_dist=2.0 max_dist=5.0",
}
MODELS = {**MTP_MODELS, **ETN_MODELS}

# One optimizer for each family of optimizers/__init__.py's FAMILIES (both quasi-Newton
# methods, and the Adam -> L-BFGS-B hybrid beside them); "native" needs MLIP's mlp binary.
REPRESENTATIVES = {
    "adam": "first order",
    "muon": "Muon",
    "bfgs": "quasi-Newton",
    "lbfgs": "quasi-Newton",
    "adam_lbfgs": "quasi-Newton (hybrid)",
    "varpro": "separable least squares",
}
EXCLUDED_OPTIMIZERS = ("native",)


def agpd_sets():
    """(train, valid): the generated Ag-Pd EMT set of the engine benchmarks, 240 training
    and 60 validation configurations, seed 0 (about 5 s of EMT labelling: asv runs this
    once as the classes' setup_cache and hands every benchmark process the result)."""
    generate_agpd_split = load("optbench.io.generator", "generate_agpd_split")
    return generate_agpd_split(240, 60, seed=0)


def weights():
    """Energy weight 1 (per atom), force weight 0.01, no stress: the weights of the
    standalone scripts, so their numbers and these agree."""
    LossWeights = load("optbench.objective", "LossWeights")
    return LossWeights(energy=1.0, forces=0.01, stress=0.0)


def engine():
    """The embedded engine on one thread (timings independent of the core count,
    training runs reproducible)."""
    Engine = load("optbench.engine.capi", "Engine")
    eng = Engine()
    eng.set_num_threads(1)
    return eng


def potential(eng, model: str):
    """A fresh potential for a MODELS label. An ETN row whose spec this engine cannot
    build raises NotImplementedError, which asv reports as skipped."""
    spec = MODELS[model]
    if model in ETN_MODELS:
        try:
            return eng.potential_from_spec(spec)
        except Exception as err:  # any refusal means: no ETN in this engine yet
            raise NotImplementedError(f"{model}: this engine builds no ETN ({err})") from err
    return eng.potential_from_spec(spec)


def objective(model: str, train, valid=None):
    """An EngineObjective of a fresh `model` potential on `train` (and `valid`)."""
    EngineObjective = load("optbench.objective", "EngineObjective")
    eng = engine()
    return EngineObjective(eng, potential(eng, model), train, valid, weights())


def optimizer_names(step_based: bool) -> list[str]:
    """Every optimizer of the REGISTRY that is step-based (or, with False, drives its own
    iterations), less EXCLUDED_OPTIMIZERS: a new optimizer is benchmarked with no change
    here."""
    REGISTRY, StepEntry = load("optbench.optim", "REGISTRY", "StepEntry")
    return [name for name, entry in REGISTRY.items()
            if isinstance(entry, StepEntry) == step_based and name not in EXCLUDED_OPTIMIZERS]
