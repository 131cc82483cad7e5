"""The Objective over an engine reached through the C ABI (mlipc.h): the embedded engine,
or another library implementing the header. Loss, gradient, linear system and predictions
come from the engine; metrics are computed here from its predictions (optbench.metrics).
"""

from __future__ import annotations

import os

import numpy as np

from optbench.io import DataSet
from optbench.metrics import Metrics, compute_metrics
from optbench.objective.protocol import (
    VOIGT_MULTIPLICITY,
    LossWeights,
    central_jvp,
    perturbed_start,
    residual_rows,
)


class EngineObjective:
    """Objective over an engine reached through the C ABI (optbench/engine/capi.py).

    Configurations evaluated by loss_grad are counted in ``configs_evaluated`` (the budget
    unit that makes full-batch and mini-batch runs comparable)."""

    def __init__(self, engine, potential, train: DataSet, valid: DataSet | None = None,
                 weights: LossWeights | None = None, start: np.ndarray | None = None):
        if len(train) == 0:
            raise ValueError("the training set is empty")
        self.engine, self.potential = engine, potential
        # Where runs start: the engine's defaults, or given parameters (a trained file's).
        self.start = None if start is None else np.array(start, dtype=np.float64)
        self.train, self.valid = train, valid
        self.weights = weights or LossWeights()
        cutoff = potential.cutoff
        n_species = potential.info()["species_count"]
        for name, data in (("training", train), ("validation", valid)):
            if data is None:
                continue
            top = max(int(np.max(c.types)) for c in data.configs)
            if top >= n_species:
                raise ValueError(f"the {name} set uses species index {top} but the potential has "
                                 f"{n_species} species: create the potential with species={top + 1}")
        self._train_ds = engine.dataset(train, cutoff)
        self._valid_ds = engine.dataset(valid, cutoff) if valid is not None and len(valid) else None
        self._w_train = self.weights.per_config(train)
        self._w_valid = self.weights.per_config(valid) if self._valid_ds is not None else None
        self._missing_labels_check()
        self.n_params = potential.n_params
        self.configs_evaluated = 0

    def _missing_labels_check(self) -> None:
        w = self._w_train
        for k, c in enumerate(self.train.configs):
            if w[k, 0] > 0 and (c.energy is None or not np.isfinite(c.energy)):
                raise ValueError(f"training configuration {k} ({c.source or 'no source'}) has no energy "
                                 "but the energy weight is nonzero")
            if w[k, 1] > 0 and (c.forces is None or not np.all(np.isfinite(c.forces))):
                raise ValueError(f"training configuration {k} ({c.source or 'no source'}) has no forces "
                                 "but the force weight is nonzero")

    @property
    def n_train(self) -> int:
        """Number of training configurations."""
        return len(self.train)

    def initial_params(self, seed: int, interval: float | None = None) -> np.ndarray:
        """The starting parameters (`start` when given, e.g. a potential file's
        coefficients; else the engine's defaults), plus uniform noise in [-interval,
        interval] drawn from `seed` (None or 0: the start itself, the same for every seed)."""
        x0 = self.start if self.start is not None else self.potential.default_params()
        return perturbed_start(x0, seed, interval)

    def _set(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.n_params,):
            raise ValueError(f"parameter vector has shape {x.shape}, expected ({self.n_params},)")
        self.potential.set_params(x)

    def loss_grad(self, x: np.ndarray, batch: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Mean loss over the batch (None: the whole training set) and its gradient."""
        self._set(x)
        if batch is not None:
            batch = np.asarray(batch, dtype=np.int64)
            if batch.size == 0:
                raise ValueError("empty batch")
        n = self.n_train if batch is None else batch.size
        loss, g = self.engine.loss_grad(self.potential, self._train_ds, self._w_train, idx=batch)
        self.configs_evaluated += n
        return loss / n, g / n

    def loss(self, x: np.ndarray, batch: np.ndarray | None = None) -> float:
        """Mean loss over the batch without the gradient (cheaper)."""
        self._set(x)
        n = self.n_train if batch is None else len(batch)
        loss, _ = self.engine.loss_grad(self.potential, self._train_ds, self._w_train, idx=batch, grad=False)
        return loss / n

    def valid_loss(self, x: np.ndarray) -> float:
        """Mean loss over the validation set with the training weights' definition
        (what reduce-on-plateau schedules watch)."""
        if self._valid_ds is None:
            raise ValueError("this objective has no validation set")
        self._set(x)
        loss, _ = self.engine.loss_grad(self.potential, self._valid_ds, self._w_valid, grad=False)
        return loss / len(self.valid)

    @property
    def kind(self) -> str:
        """The potential's kind, "mtp" or "etn"."""
        return self.potential.kind

    @property
    def linear_slice(self) -> slice:
        """The parameters the predictions are linear and homogeneous in, the last block of
        the vector: an MTP's species then moment coefficients, an ETN's species
        coefficients and last core; ValueError for a potential without one."""
        return self.potential.linear_slice

    @property
    def potential_suffix(self) -> str:
        """The file extension this Objective's potentials are saved with: ".json" for an
        ETN and for a library that writes MLIP-4 JSON (mlip4_patches), ".almtp" otherwise."""
        info = self.potential.info()
        return ".json" if info.get("kind") == "etn" or info.get("engine") == "MLIP-4" else ".almtp"

    def linear_system(self, x: np.ndarray, batch: np.ndarray | None = None):
        """Normal equations (A, b, r0) of the loss in the linear parameters at x's radial
        coefficients, so that the mean loss over the batch is c^T A c - 2 b^T c + r0.
        From the engine's kernel (MTP) or, where it has none (ETN), from linear_design.
        ValueError for a potential without a linear block."""
        from optbench.engine.capi import EngineUnsupportedError  # not at import: validate loads no binding

        self.linear_slice  # noqa: B018 - raises the clear error before the engine's
        self._set(x)
        n = self.n_train if batch is None else len(batch)
        idx = None if batch is None else np.asarray(batch, dtype=np.int64)
        try:
            A, b, r0 = self.engine.linear_system(self.potential, self._train_ds, self._w_train, idx=idx)
        except EngineUnsupportedError:
            if batch is not None:
                raise ValueError("the linear system of a batch needs the engine's kernel (MTP)") from None
            D, y = self.linear_design(x)
            return D.T @ D, D.T @ y, float(y @ y)
        return A / n, b / n, r0 / n

    def linear_design(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(D, y) with residuals(x) = D @ x[linear_slice] - y for every value of the linear
        block at x's other parameters: D (n_residuals, n_linear) the Jacobian of the
        residual vector in the linear parameters, y the scaled labels (units of
        residuals). From mlipc_linear_design (MTP, the cost of one linear system) or, for
        an engine or kind without that kernel (ETN), one prediction per linear parameter,
        exact since the predictions are linear and homogeneous in them."""
        from optbench.engine.capi import EngineUnsupportedError  # not at import: validate loads no binding

        lin = self.linear_slice
        self._residual_scales()
        y = self._scale_flat * self._label_flat
        self._set(x)
        try:
            parts = self.engine.linear_design(self.potential, self._train_ds)
            self.configs_evaluated += self.n_train
            D = np.concatenate(parts, axis=0)
            D *= self._scale_flat[:, None]
        except EngineUnsupportedError:
            D = np.empty((y.size, lin.stop - lin.start))
            z = np.array(x, dtype=np.float64)
            for j in range(D.shape[1]):
                z[lin] = 0.0
                z[lin.start + j] = 1.0
                D[:, j] = self.residuals(z) + y
        return D, y

    # ------------------------------------------------------- least-squares structure
    # The mean loss is |r(x)|^2 for the residual vector r of the training set:
    #   r = [sqrt(wE_k / n) (E_k - E*_k), sqrt(wF_k / n) (F_ik - F*_ik), sqrt(c wS_k / n) (S_kc - S*_kc)]
    # (n configurations; c = 1 for xx yy zz and 2 for yz xz xy, the Frobenius norm of the
    # 3x3 stress), so Gauss-Newton methods step on J = dr/dx.

    def _residual_scales(self):
        if not hasattr(self, "_scales"):
            data, n = self.train, len(self.train)
            w = self._w_train
            labels = data.to_arrays()
            eE = np.sqrt(w[:, 0] / n) * np.isfinite(labels["energies"])
            atoms = np.array([c.n_atoms for c in data.configs])
            eF = np.repeat(np.sqrt(w[:, 1] / n), 3 * atoms) * np.isfinite(labels["forces"])
            eS = (np.sqrt(np.outer(w[:, 2] / n, VOIGT_MULTIPLICITY)).ravel()) * np.isfinite(labels["stresses"])
            self._scales = (eE, eF, eS)
            self._labels = tuple(np.nan_to_num(labels[k]) for k in ("energies", "forces", "stresses"))
            # the same, flat in residual order, and where each configuration's force rows start
            self._scale_flat, self._label_flat = np.concatenate(self._scales), np.concatenate(self._labels)
            self._force_start = np.concatenate([[0], np.cumsum(3 * atoms)])
        return self._scales

    @property
    def n_residuals(self) -> int:
        """Length of the residual vector r (energies, force components, 6 stresses per
        configuration of the training set)."""
        return sum(s.size for s in self._residual_scales())

    def residual_rows(self, idx: np.ndarray) -> np.ndarray:
        """Positions in the residual vector of training configurations `idx`, in the order
        residuals(x, idx) returns them (protocol.residual_rows)."""
        self._residual_scales()
        return residual_rows(self._force_start, idx)

    def residuals(self, x: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """The residual vector r of the training set at x, with |r|^2 the mean loss of
        loss_grad (energy terms in eV, forces in eV/A, stresses in eV, each scaled by the
        square root of its weight over n); with `idx`, only the rows of those training
        configurations (residual_rows(idx)), from a prediction of them alone."""
        scales = self._residual_scales()
        self._set(x)
        if idx is None:
            pred = [np.ravel(p) for p in self.engine.predict(self.potential, self._train_ds)]
            self.configs_evaluated += self.n_train
            return np.concatenate([s * (p - lab) for s, p, lab in zip(scales, pred, self._labels)])
        idx = np.asarray(idx, dtype=np.int64)
        rows = self.residual_rows(idx)
        pred = np.concatenate([np.ravel(p) for p in self.engine.predict(self.potential, self._train_ds, idx=idx)])
        self.configs_evaluated += idx.size
        return self._scale_flat[rows] * (pred - self._label_flat[rows])

    def vjp(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """J^T u for J = dr/dx at x (mlipc_jt_product: one adjoint pass)."""
        eE, eF, eS = self._residual_scales()
        u = np.asarray(u, dtype=np.float64)
        if u.shape != (eE.size + eF.size + eS.size,):
            raise ValueError(f"u has shape {u.shape}, expected ({eE.size + eF.size + eS.size},)")
        self._set(x)
        uE, uF, uS = u[:eE.size] * eE, u[eE.size:eE.size + eF.size] * eF, u[eE.size + eF.size:] * eS
        self.configs_evaluated += self.n_train
        return self.engine.jt_product(self.potential, self._train_ds, uE, uF, uS)

    def jvp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """J v for J = dr/dx at x, by a central difference of the predictions along v
        (protocol.central_jvp). The engine offers J^T u in closed form; engine/README.md
        ("Jacobian products") says why J v is not."""
        return central_jvp(self.residuals, x, v, self.n_residuals)

    def predict(self, x: np.ndarray, split: str = "valid"):
        """Energies, forces, PlusStress predicted for a split ('train' or 'valid')."""
        data, ds = self._split(split)
        self._set(x)
        return self.engine.predict(self.potential, ds)

    def _split(self, split: str):
        if split == "train":
            return self.train, self._train_ds
        if split == "valid":
            if self._valid_ds is None:
                raise ValueError("this objective has no validation set")
            return self.valid, self._valid_ds
        raise ValueError(f"split must be 'train' or 'valid', got {split!r}")

    def evaluate(self, x: np.ndarray, split: str = "valid") -> Metrics:
        """MLIP's error metrics of parameters x on a split."""
        data, _ = self._split(split)
        return compute_metrics(data.configs, *self.predict(x, split))

    def evaluate_data(self, xs: list[np.ndarray], data: DataSet) -> list[Metrics]:
        """MLIP's error metrics of each parameter vector of `xs` on another data set (a
        held-out test set), whose neighbour data are built once."""
        ds = self.engine.dataset(data, self.potential.cutoff)
        out = []
        for x in xs:
            self._set(x)
            out.append(compute_metrics(data.configs, *self.engine.predict(self.potential, ds)))
        return out

    def load_potential_file(self, path: str | os.PathLike) -> np.ndarray:
        """Adopt a potential file written by another trainer (MLIP's mlp train) for this
        Objective's model and return its parameters. The file's potential replaces this
        Objective's, so its basis order and the radial `scaling` and `min_dist` MLIP
        re-chose come with it. ValueError naming the file when its model differs
        (parameter count, cutoff, species).

        Why adopt the file rather than copy its vector: a file whose moment basis is
        listed in another order than ours has the same count but another meaning."""
        other = self.engine.load_potential(path)
        mine, theirs = self.potential.info(), other.info()
        for what, a, b in (("parameters", other.n_params, self.n_params),
                           ("species", theirs["species_count"], mine["species_count"])):
            if a != b:
                raise ValueError(f"{path}: {a} {what}, this run's potential has {b}")
        if not np.isclose(other.cutoff, self.potential.cutoff):
            raise ValueError(f"{path}: cutoff {other.cutoff} A, this run's potential has {self.potential.cutoff} A")
        self.potential = other
        return other.get_params()

    def save(self, x: np.ndarray, path: str | os.PathLike) -> None:
        """Write the potential with parameters x: an MTP as an MLIP file (.mtp or .almtp),
        an ETN as JSON (.json)."""
        self._set(x)
        self.potential.save(path)
