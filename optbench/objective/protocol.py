"""The Objective: the one interface every optimizer steps on.

An Objective owns a potential, a training set and (optionally) a validation set, and
turns the engine's weighted least-squares loss into a function of the flat float64
parameter vector x:

    loss(x, batch) = (1 / |batch|) * sum_{k in batch} [ wE_k (E_k - E*_k)^2
                                                        + wF_k sum_i |F_ik - F*_ik|^2
                                                        + wS_k |S_k - S*_k|_F^2 ]

(the mean over the configurations of the batch, like the loss MLIP prints), with MLIP's
weight conventions (LossWeights).  Optimizers never know which engine is behind it.

Implementations: EngineObjective (engine_objective.py: the embedded engine or another
mlipc.h library), MlpCliObjective (mlp_cli.py: MLIP's mlp program), Mlip4ModuleObjective
(mlip4.py: MLIP-4's Python module); build.py chooses one for a model dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from optbench.io import DataSet
from optbench.metrics import Metrics


@runtime_checkable
class Objective(Protocol):
    """What an optimizer sees (docs/architecture.md): a flat float64 parameter vector x of
    n_params values, the mean loss and its gradient over a batch of training
    configurations, error metrics, and a potential file."""
    n_params: int

    def initial_params(self, seed: int, interval: float | None = None) -> np.ndarray:
        """The starting parameters, plus uniform noise in [-interval, interval] from `seed`."""

    def loss_grad(self, x: np.ndarray, batch: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Mean loss over the batch (None: all training configurations) and its gradient."""

    def evaluate(self, x: np.ndarray, split: str = "valid") -> Metrics:
        """MLIP's error metrics of parameters x on "train" or "valid" (eV, eV/atom, eV/A)."""

    def save(self, x: np.ndarray, path) -> None:
        """Write the potential with parameters x as a file its engine reads."""


#: How often each PlusStress component (xx yy zz yz xz xy) occurs in the 3x3 tensor: the
#: factors of the loss's Frobenius norm |S - S*|_F^2.
VOIGT_MULTIPLICITY = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])


@dataclass(frozen=True)
class LossWeights:
    """MLIP's loss weights: energy_weight, force_weight, stress_weight, and how they are
    scaled by the number of atoms N of each configuration (``weight_scaling``: the energy
    and stress weights are divided by N**weight_scaling; ``weight_scaling_forces``: the
    force weight by N**weight_scaling_forces).  Defaults are MLIP's: wE = 1/N, wF = 0.01,
    wS = 0.001/N."""
    energy: float = 1.0
    forces: float = 0.01
    stress: float = 0.001
    weight_scaling: int = 1
    weight_scaling_forces: int = 0

    def __post_init__(self):
        for name in ("energy", "forces", "stress"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"loss weight '{name}' must be finite and >= 0, got {v}")
        if self.energy == self.forces == self.stress == 0:
            raise ValueError("every loss weight (energy, forces, stress) is 0: nothing to fit")
        for name in ("weight_scaling", "weight_scaling_forces"):
            if getattr(self, name) not in (0, 1, 2):
                raise ValueError(f"'{name}' must be 0, 1 or 2, got {getattr(self, name)}")

    def per_config(self, data: DataSet) -> np.ndarray:
        """(n_configs, 3) array of (wE_k, wF_k, wS_k) for the configurations of `data`.
        A stress weight is set to 0 for configurations without a stress label (and for
        molecules), so data sets mixing both are usable."""
        n = np.array([c.n_atoms for c in data.configs], dtype=float)
        has_s = np.array([c.stress is not None and c.cell is not None and np.all(np.isfinite(c.stress))
                          for c in data.configs])
        w = np.empty((len(n), 3))
        w[:, 0] = self.energy / n ** self.weight_scaling
        w[:, 1] = self.forces / n ** self.weight_scaling_forces
        w[:, 2] = np.where(has_s, self.stress / n ** self.weight_scaling, 0.0)
        return w


def perturbed_start(x: np.ndarray, seed: int, interval: float | None) -> np.ndarray:
    """x plus uniform noise in [-interval, interval] (parameter units) drawn from `seed`:
    the study's initialisation interval. None or 0: x itself, the same for every seed."""
    if not interval:
        return np.array(x, dtype=np.float64)
    if not (np.isfinite(interval) and interval > 0):
        raise ValueError(f"initialisation interval must be positive, got {interval}")
    return x + np.random.default_rng(seed).uniform(-interval, interval, size=x.size)


def residual_rows(force_start: np.ndarray, idx) -> np.ndarray:
    """Positions in the residual vector of a training set (all energies, then all force
    components atom by atom, then 6 stresses a configuration) of the rows of
    configurations `idx`, in the order a residual vector of those configurations alone
    lists them: their energies, their force components (in idx order), their stresses.
    force_start: [0, cumsum(3 x atoms)] of the whole set."""
    idx = np.asarray(idx, dtype=np.int64)
    first = np.asarray(force_start, dtype=np.int64)
    n, n3 = len(first) - 1, int(first[-1])
    lengths = first[idx + 1] - first[idx]
    # each configuration's force rows: its start plus 0 .. length-1
    forces = np.repeat(first[idx] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) \
        + np.arange(int(lengths.sum()))
    stresses = (6 * idx[:, None] + np.arange(6)).ravel()
    return np.concatenate([idx, n + forces, n + n3 + stresses])


def central_jvp(residuals, x: np.ndarray, v: np.ndarray, n_residuals: int) -> np.ndarray:
    """J v for J = dr/dx of the function `residuals` at x, by a central difference of two
    residual vectors along v; the step h = 1e-6 (1 + |x|) / |v| keeps the relative error
    near 1e-8 (tests/test_least_squares.py). Units of r per unit of v."""
    v = np.asarray(v, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    if norm == 0.0:
        return np.zeros(n_residuals)
    h = 1e-6 * (1.0 + float(np.linalg.norm(x))) / norm
    return (residuals(x + h * v) - residuals(x - h * v)) / (2.0 * h)
