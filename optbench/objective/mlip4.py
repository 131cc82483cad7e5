"""The Objective over MLIP-4's Python module (`mlip_4`, called through
optbench/mlip/mlip4_module.py): write x into `pot.params`, `LossFunction.calc()` for the
loss, `accumulate_grads(g)` for its gradient.

Batching: one LossFunction over the whole training set (full-batch steps) and one per
training configuration (mini-batches: a batch's loss is the sum of its members'), each
built once, so shuffled batches cost no rebuilding. The loss is the mean over the batch,
like the embedded engine's (engine_objective.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from optbench.io import DataSet, mlip4_records
from optbench.metrics import Metrics
from optbench.mlip import mlip4_module as mlip4
from optbench.objective.protocol import LossWeights, perturbed_start


class Mlip4ModuleObjective:
    """The Objective (protocol.py) over an `mlip_4` potential and loss
    objects: mean weighted loss and its gradient over any batch of training
    configurations, evaluation by MLIP-4's own error report, save as MLIP-4 JSON."""

    def __init__(self, module, potential, train: DataSet, valid: DataSet | None = None,
                 weights: LossWeights | None = None):
        if len(train) == 0:
            raise ValueError("the training set is empty")
        self.module, self.potential = module, potential
        self.train, self.valid = train, valid if valid is not None and len(valid) else None
        self.weights = weights or LossWeights()
        self._x0 = self._get()
        self.n_params = self._x0.size
        records = mlip4_records(train, self.weights.per_config(train))
        self._full = mlip4.loss_function(module, records, potential)
        self._single = None  # per-configuration loss objects, built at the first mini-batch
        self._records = records
        self._valid = None
        if self.valid is not None:
            self._valid = mlip4.loss_function(module, mlip4_records(self.valid, self.weights.per_config(self.valid)),
                                         potential)
        self.configs_evaluated = 0

    @property
    def n_train(self) -> int:
        """Number of training configurations."""
        return len(self.train)

    def _get(self) -> np.ndarray:
        return np.array(self.potential.params, dtype=np.float64)  # (MLIP-4) a copy: the bindings own theirs

    def _set(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.n_params,):
            raise ValueError(f"parameter vector has shape {x.shape}, expected ({self.n_params},)")
        self.potential.params = x  # (MLIP-4)

    def initial_params(self, seed: int, interval: float | None = None) -> np.ndarray:
        """The potential's parameters as loaded, plus uniform noise in [-interval,
        interval] drawn from `seed` (None or 0: as loaded)."""
        return perturbed_start(self._x0, seed, interval)

    def _batch_objects(self, batch: np.ndarray):
        if self._single is None:
            self._single = [mlip4.loss_function(self.module, [r], self.potential) for r in self._records]
        return [self._single[int(k)] for k in batch]

    def _sum(self, x: np.ndarray, batch: np.ndarray | None, grad: bool) -> tuple[float, np.ndarray | None, int]:
        self._set(x)
        g = np.zeros(self.n_params) if grad else None
        if batch is None:
            return mlip4.calc(self._full, g), g, self.n_train
        batch = np.asarray(batch, dtype=np.int64)
        if batch.size == 0:
            raise ValueError("empty batch")
        if batch.min() < 0 or batch.max() >= self.n_train:
            raise ValueError(f"batch index out of range [0, {self.n_train})")
        return sum(mlip4.calc(obj, g) for obj in self._batch_objects(batch)), g, batch.size

    def loss_grad(self, x: np.ndarray, batch: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Mean loss over the batch (None: the whole training set) and its gradient."""
        total, g, n = self._sum(x, batch, grad=True)
        self.configs_evaluated += n
        return total / n, g / n

    def loss(self, x: np.ndarray, batch: np.ndarray | None = None) -> float:
        """Mean loss over the batch without the gradient."""
        total, _, n = self._sum(x, batch, grad=False)
        return total / n

    def valid_loss(self, x: np.ndarray) -> float:
        """Mean loss over the validation set."""
        if self._valid is None:
            raise ValueError("this objective has no validation set")
        self._set(x)
        return mlip4.calc(self._valid, None) / len(self.valid)

    def evaluate(self, x: np.ndarray, split: str = "valid") -> Metrics:
        """MLIP-4's error report of parameters x on a split, as Metrics."""
        if split not in ("train", "valid"):
            raise ValueError(f"split must be 'train' or 'valid', got {split!r}")
        if split == "valid" and self._valid is None:
            raise ValueError("this objective has no validation set")
        self._set(x)
        loss, data = (self._full, self.train) if split == "train" else (self._valid, self.valid)
        return Metrics.from_blocks(mlip4.error_blocks(loss), len(data), data.n_atoms)

    potential_suffix = ".json"  # MLIP-4 writes its potentials as JSON

    def save(self, x: np.ndarray, path: str | os.PathLike) -> None:
        """Write the potential with parameters x as MLIP-4 JSON. (MLIP-4)"""
        self._set(x)
        Path(path).write_bytes(self.potential.to_json_bytes())
