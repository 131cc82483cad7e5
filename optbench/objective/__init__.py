"""The Objective: the one interface every optimizer steps on (a flat float64 parameter
vector -> mean weighted least-squares loss and gradient over a batch, error metrics, a
potential file), and its implementations over each engine.

- `protocol`: the `Objective` protocol, MLIP's loss weights (`LossWeights`), the
  initialisation interval (`perturbed_start`);
- `engine_objective`: over a C-ABI engine (the embedded one, or another mlipc.h library);
- `mlp_cli`: a model trained by MLIP's `mlp train` and evaluated by `mlp check_errors`;
- `mlip4`: over MLIP-4's Python module;
- `build`: a model dict (RunSpec.model, or the command line's) and data -> the Objective.
"""

from optbench.objective.build import build_objective
from optbench.objective.engine_objective import EngineObjective
from optbench.objective.mlip4 import Mlip4ModuleObjective
from optbench.objective.mlp_cli import MlpCliObjective
from optbench.objective.protocol import LossWeights, Objective, perturbed_start

__all__ = ["Objective", "LossWeights", "perturbed_start", "EngineObjective", "MlpCliObjective",
           "Mlip4ModuleObjective", "build_objective"]
