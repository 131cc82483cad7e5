"""Which code computes the loss: the names of a model's `engine` setting, and the loaded
C-ABI libraries.

    engine = "embedded"   the engine inside this package (libmlipc.so), default
    engine = "capi"       another library implementing engine/include/mlipc.h, e.g.
                          MLIP-4 with mlip4_patches/ (lib = PATH)
    engine = "mlip4"      MLIP-4's Python module (module = "mlip_4"; template = the
                          MLIP-4 potential JSON to start from): optbench/mlip/mlip4_module.py
    engine = "mlp-cli"    MLIP's `mlp` program (mlp = PATH, else $OPTBENCH_MLP or PATH):
                          trains only with the "native" optimizer (mlp train) and is
                          evaluated by `mlp check_errors`; the potential files are MLIP's
                          own, read by the embedded engine for the parameter vector

Loading a library happens here, on first use, never at import: checking an experiment
file does not load it.
"""

from __future__ import annotations

ENGINES = ("embedded", "capi", "mlip4", "mlp-cli")
#: More engine threads than this is a typo, not a machine (libgomp crashes on 100000).
MAX_THREADS = 1024
_ENGINE_CACHE: dict[str, object] = {}


def load_engine(lib: str | None = None):
    """The C-ABI engine (capi.Engine): the embedded one (lib None) or the library at
    `lib`; one per process and library."""
    from optbench.engine.capi import Engine

    key = lib or ""
    if key not in _ENGINE_CACHE:  # a missing library: capi.Engine's error names the --lib setting
        _ENGINE_CACHE[key] = Engine(lib) if lib else Engine()
    return _ENGINE_CACHE[key]
