"""The engines that compute a potential's energies, forces, loss and gradient.

- `capi`: the ctypes binding of ``engine/include/mlipc.h`` (`Engine`, `Potential`,
  `EngineDataset`), for the embedded engine ``libmlipc.so`` or any other library that
  implements the header (MLIP-4 through ``mlip4_patches/``);
- `choice`: the names of the engine choices (embedded, capi, mlip4, mlp-cli) and the
  per-process cache of loaded libraries;
- `models`: a model dict (MTP level or template, ETN shape and ranks, a potential file, a
  spec string) -> an engine potential;
- `etn_shape`: the ETN hyperparameter rules and parameter count in pure Python, so that
  experiment files are checked without loading a library.

Importing this package loads no library; `load_engine` does, on first use.
"""

from optbench.engine.choice import ENGINES, MAX_THREADS, load_engine
from optbench.engine.etn_shape import EtnShape, check_etn
from optbench.engine.models import MODEL_KINDS, build_potential, check_etn_model, etn_spec

__all__ = ["ENGINES", "MAX_THREADS", "MODEL_KINDS", "load_engine", "build_potential", "etn_spec", "check_etn",
           "check_etn_model", "EtnShape"]
