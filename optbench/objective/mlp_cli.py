"""The Objective of a model trained and evaluated by MLIP's `mlp` program (engine
"mlp-cli"): trained only by the "native" optimizer (mlp train), evaluated by `mlp
check_errors`; the parameter vector is read from MLIP's potential files by the embedded
engine, which reads the same formats.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from optbench.io import write_cfg
from optbench.metrics import Metrics
from optbench.mlip.mlp import check_errors
from optbench.objective.engine_objective import EngineObjective


class MlpCliObjective(EngineObjective):
    """The model as MLIP's `mlp` program sees it: trained only by the "native" optimizer
    (mlp train, which reads `mlp` from here), evaluated by `mlp check_errors`. The
    parameter vector is read from MLIP's potential files by the embedded engine, which
    reads the same formats."""

    uses_mlp_only = True

    def __init__(self, engine, potential, train, valid=None, weights=None, start=None, *, mlp: str):
        super().__init__(engine, potential, train, valid, weights, start)
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
        data, _ = self._split(split)
        with tempfile.TemporaryDirectory(prefix="optbench-mlp-") as tmp:
            pot, cfg = Path(tmp, "pot.almtp"), Path(tmp, f"{split}.cfg")
            self.save(x, pot)
            write_cfg(data, cfg)
            return Metrics.from_blocks(check_errors(self.mlp, pot, cfg), len(data), data.n_atoms, count_key="n")
