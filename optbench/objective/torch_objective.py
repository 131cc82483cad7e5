"""The Objective over a pretrained torch model (optbench.foundation: SevenNet, MACE): the
same loss, weights and metrics as the engine's, by autograd.

    loss(x, batch) = (1/|batch|) sum_k [ wE_k (E_k - E*_k)^2 + wF_k sum_i |F_ik - F*_ik|^2
                                         + wS_k sum_c c (S_kc - S*_kc)^2 ]

with LossWeights' per-configuration weights, S the PlusStress virial in eV (c = 1 for xx
yy zz, 2 for yz xz xy: the Frobenius norm of the 3x3 tensor), exactly protocol.py's
definition. x is the flat float64 vector of the trainable parameters, in the order of
module.named_parameters(); `train_groups` chooses them (all, or the readout only, ...),
the rest stay at their pretrained values.

Fine-tuning starts with a per-element energy reference shift (`energy_shift`): the
shift that best fits the training energies by weighted least squares, folded into the
model's own per-element energies before any optimizer runs (a pretrained model's
energies carry its training set's reference, which differs from another DFT set's by a
constant per element).
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from optbench.foundation.base import train_group_names
from optbench.io import DataSet
from optbench.metrics import Metrics, compute_metrics
from optbench.objective.protocol import VOIGT_MULTIPLICITY, LossWeights, perturbed_start

#: Atoms per forward pass: bounds the memory of a batch's autograd graph. Smaller passes
#: are also faster on the CPU: with SevenNet-0 on 54-atom Mo cells (2 threads), 108 atoms
#: a pass took 20 s for a float64 gradient of 20 cells and 49 s for a Hessian-vector
#: product, against 41 s and 129 s at 216 atoms (and 12 s / 28-32 s against 19 s / 65-69 s
#: in float32 at 432), because large graphs make glibc's allocator map and unmap their
#: buffers on every pass (measured: switching that off helps 432-atom passes, not 108).
MAX_ATOMS_PER_PASS = 108


def _numbers(data: DataSet, name: str) -> list[np.ndarray]:
    from ase.data import atomic_numbers

    if not data.species:
        raise ValueError(f"the {name} set ({data.name}): its elements are unknown; a foundation model needs them "
                         "(species = [\"Mo\", ...] in the data section)")
    unknown = [s for s in data.species if s not in atomic_numbers]
    if unknown:
        raise ValueError(f"the {name} set ({data.name}): {', '.join(unknown)} is not an element symbol")
    table = np.array([atomic_numbers[s] for s in data.species])
    return [table[c.types] for c in data.configs]


def select_parameters(groups: dict[str, list[str]], train_groups) -> set[str]:
    """The parameter names `train_groups` selects: "all", one group name or a list of
    them (optbench.foundation.base.train_group_names); ValueError naming an unknown group."""
    chosen = train_group_names(train_groups)
    return {n for g in (chosen or groups) for n in groups[g]}


class _Split:
    """One data set as the model's inputs and torch labels, built once."""

    def __init__(self, model, data: DataSet, weights: LossWeights, name: str):
        import torch

        self.data = data
        self.numbers = _numbers(data, name)
        known = set(model.elements)
        for k, z in enumerate(self.numbers):
            missing = sorted(set(int(v) for v in z) - known)
            if missing:
                from ase.data import chemical_symbols
                cfg = data.configs[k]
                raise ValueError(f"the {name} set ({data.name}), configuration {k} ({cfg.source or 'no source'}): "
                                 f"element {', '.join(chemical_symbols[m] for m in missing)} is not one the "
                                 f"{model.kind} model {model.source} knows")
        self.graphs = [model.graph(z, c.positions, c.cell) for z, c in zip(self.numbers, data.configs)]
        isolated = [k for k, g in enumerate(self.graphs) if model.n_edges(g) == 0 and data.configs[k].n_atoms > 1]
        if isolated:
            warnings.warn(f"the {name} set ({data.name}): {len(isolated)} configuration(s) have no pair of atoms "
                          f"within the model's cutoff {model.cutoff:g} A (first: {isolated[0]}); the model "
                          "predicts only its reference energies there", stacklevel=3)
        dt = model.dtype
        w = weights.per_config(data)
        self.n_atoms = np.array([c.n_atoms for c in data.configs])
        self.energy = torch.tensor([np.nan if c.energy is None else c.energy for c in data.configs], dtype=dt)
        self.forces = [torch.tensor(c.forces if c.forces is not None else np.full((c.n_atoms, 3), np.nan), dtype=dt)
                       for c in data.configs]
        self.stress = torch.tensor(np.array([c.stress if c.stress is not None else np.full(6, np.nan)
                                             for c in data.configs]), dtype=dt)
        # weights with a missing label's weight set to 0 (per_config already does it for
        # stresses), and NaN labels made 0 (never used)
        wE = np.where(np.isfinite(self.energy.numpy()), w[:, 0], 0.0)
        self.wE, self.wS = torch.tensor(wE, dtype=dt), torch.tensor(w[:, 2], dtype=dt)
        self.wF = [torch.tensor(w[k, 1] if torch.isfinite(f).all() else 0.0, dtype=dt)
                   for k, f in enumerate(self.forces)]
        self.energy = torch.nan_to_num(self.energy)
        # the stress terms as sums of squares: components scaled by sqrt(multiplicity)
        self.voigt_sqrt = torch.tensor(np.sqrt(VOIGT_MULTIPLICITY), dtype=dt)
        self.stress = torch.nan_to_num(self.stress) * self.voigt_sqrt
        self.forces = [torch.nan_to_num(f) for f in self.forces]

    def __len__(self) -> int:
        return len(self.graphs)

    def chunks(self, idx: np.ndarray):
        """idx cut into runs of at most MAX_ATOMS_PER_PASS atoms (at least one config each)."""
        start, atoms = 0, 0
        for j, k in enumerate(idx):
            if atoms and atoms + self.n_atoms[k] > MAX_ATOMS_PER_PASS:
                yield idx[start:j]
                start, atoms = j, 0
            atoms += self.n_atoms[k]
        if start < len(idx):
            yield idx[start:]


class TorchObjective:
    """Objective over a foundation model (optbench.foundation.base.FoundationModel).

    model: the adapter; train / valid: data sets with element symbols; weights: MLIP's
    loss weights; train_groups: "all" (default), "readout", or a list of groups;
    energy_shift: fit the per-element reference shift first (default True); reduce: a
    function summing an array over MPI ranks when `train` is one rank's share
    (optbench.objective.sharding), so the shift is the whole training set's."""

    def __init__(self, model, train: DataSet, valid: DataSet | None = None, weights: LossWeights | None = None,
                 train_groups="all", energy_shift: bool = True, reduce=None):
        import torch

        if len(train) == 0:
            raise ValueError("the training set is empty")
        self._torch = torch
        self.model, self.train, self.valid = model, train, valid
        self.weights = weights or LossWeights()
        self._train = _Split(model, train, self.weights, "training")
        self._valid = _Split(model, valid, self.weights, "validation") if valid is not None and len(valid) else None
        # Parameters the package itself keeps fixed (SevenNet's per-element rescaling) stay fixed.
        chosen = select_parameters(model.groups(), train_groups) & {
            n for n, p in model.module.named_parameters() if getattr(p, "_optbench_trainable", p.requires_grad)}
        self._params = []
        for name, p in model.module.named_parameters():
            p._optbench_trainable = getattr(p, "_optbench_trainable", p.requires_grad)
            p.requires_grad_(name in chosen)
            if name in chosen:
                self._params.append(p)
        if not self._params:
            raise ValueError(f"train_groups {train_groups!r} selects no parameter of the {model.kind} model")
        self.param_shapes = [tuple(p.shape) for p in self._params]
        self.n_params = int(sum(p.numel() for p in self._params))
        self.configs_evaluated = 0
        self.energy_shift = self._fit_energy_shift(reduce) if energy_shift else {}
        self.start = self._get()

    # ------------------------------------------------------------------ parameters
    def _get(self) -> np.ndarray:
        return np.concatenate([p.detach().reshape(-1).to(self._torch.float64).numpy() for p in self._params])

    def _set(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.n_params,):
            raise ValueError(f"parameter vector has shape {x.shape}, expected ({self.n_params},)")
        t = self._torch.from_numpy(x)
        with self._torch.no_grad():
            i = 0
            for p in self._params:
                p.copy_(t[i:i + p.numel()].reshape(p.shape))
                i += p.numel()

    def initial_params(self, seed: int, interval: float | None = None) -> np.ndarray:
        """The pretrained parameters (after the energy shift), plus uniform noise in
        [-interval, interval] drawn from `seed` (None or 0: the pretrained ones)."""
        return perturbed_start(self.start, seed, interval)

    @property
    def n_train(self) -> int:
        """Number of training configurations."""
        return len(self.train)

    @property
    def kind(self) -> str:
        """The model's kind, "sevennet" or "mace"."""
        return self.model.kind

    @property
    def potential_suffix(self) -> str:
        """The extension of saved models: ".pth" (SevenNet checkpoint), ".model" (MACE)."""
        return self.model.suffix

    # ------------------------------------------------------------------ the loss
    def _terms(self, split: _Split, idx: np.ndarray, training: bool):
        """Sum over idx of the weighted squared errors, as a torch scalar."""
        torch = self._torch
        energy, forces, virial = self.model.forward([split.graphs[k] for k in idx], training)
        ti = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        total = (split.wE[ti] * (energy - split.energy[ti]) ** 2).sum()
        f_ref = torch.cat([split.forces[k] for k in idx])
        w_atoms = torch.cat([split.wF[k].expand(split.n_atoms[k]) for k in idx])
        total = total + (w_atoms * ((forces - f_ref) ** 2).sum(dim=1)).sum()
        total = total + (split.wS[ti] * ((virial * split.voigt_sqrt - split.stress[ti]) ** 2).sum(dim=1)).sum()
        return total

    def _indices(self, batch) -> np.ndarray:
        if batch is None:
            return np.arange(self.n_train)
        idx = np.asarray(batch, dtype=np.int64)
        if idx.size == 0:
            raise ValueError("empty batch")
        return idx

    def loss_grad(self, x: np.ndarray, batch: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Mean loss over the batch (None: the whole training set) and its gradient with
        respect to x, by autograd (double backward through the forces)."""
        idx = self._indices(batch)
        self._set(x)
        for p in self._params:
            p.grad = None
        total = 0.0
        for part in self._train.chunks(idx):
            terms = self._terms(self._train, part, training=True)
            terms.backward()
            total += float(terms.detach())
        g = self._torch.cat([(p.grad if p.grad is not None else self._torch.zeros_like(p)).reshape(-1)
                             for p in self._params]).to(self._torch.float64).numpy()
        g /= idx.size
        self.configs_evaluated += idx.size
        return total / idx.size, g

    def hvp(self, x: np.ndarray, v: np.ndarray, batch: np.ndarray | None = None) -> np.ndarray:
        """H v for H the Hessian of the mean loss over the batch (None: the whole training
        set) at x, exact by double backward: the gradient g with create_graph=True, then
        the gradient of g . v (Pearlmutter's trick); loss units per parameter unit squared
        times v's units, float64 (computed in the model's dtype).

        The force terms already differentiate the energy twice (forces = -dE/dpositions,
        then the loss's gradient in the parameters), so H v is a third derivative of the
        network's energy; SevenNet-0's operations (e3nn tensor products, SiLU gates,
        Bessel bases) support it: tests/test_curvature.py checks it against a central
        difference of gradients. Cost: about three gradient evaluations' time and the
        memory of a graph one order deeper than the gradient's (measured in
        benchmarks/curvature_costs.py); the configurations are processed in the same
        chunks as loss_grad, whose Hessians add up."""
        torch = self._torch
        idx = self._indices(batch)
        v = np.asarray(v, dtype=np.float64)
        if v.shape != (self.n_params,):
            raise ValueError(f"v has shape {v.shape}, expected ({self.n_params},)")
        self._set(x)
        vt, pieces, i = torch.from_numpy(v), [], 0
        for p in self._params:
            pieces.append(vt[i:i + p.numel()].reshape(p.shape).to(p.dtype))
            i += p.numel()
        total = [torch.zeros_like(p) for p in self._params]
        for part in self._train.chunks(idx):
            terms = self._terms(self._train, part, training=True)
            grads = torch.autograd.grad(terms, self._params, create_graph=True, allow_unused=True)
            # g . v over the parameters whose gradient still depends on the parameters (a
            # parameter the loss is linear in, or does not use, adds nothing to H v)
            dots = [(g * w).sum() for g, w in zip(grads, pieces) if g is not None and g.requires_grad]
            if not dots:
                continue
            hv = torch.autograd.grad(torch.stack(dots).sum(), self._params, allow_unused=True)
            for t, h in zip(total, hv):
                if h is not None:
                    t += h.detach()
        self.configs_evaluated += idx.size
        out = torch.cat([t.reshape(-1) for t in total]).to(torch.float64).numpy()
        return out / idx.size

    def _loss_on(self, split: _Split, idx: np.ndarray) -> float:
        return sum(float(self._terms(split, part, training=False)) for part in split.chunks(idx)) / idx.size

    def loss(self, x: np.ndarray, batch: np.ndarray | None = None) -> float:
        """Mean loss over the batch without the parameter gradient."""
        idx = self._indices(batch)
        self._set(x)
        return self._loss_on(self._train, idx)

    def valid_loss(self, x: np.ndarray) -> float:
        """Mean loss over the validation set (what reduce-on-plateau schedules watch)."""
        if self._valid is None:
            raise ValueError("this objective has no validation set")
        self._set(x)
        return self._loss_on(self._valid, np.arange(len(self._valid)))

    # ------------------------------------------------------------------ predictions
    def _predict_split(self, split: _Split):
        e, f, s = [], [], []
        for part in split.chunks(np.arange(len(split))):
            energy, forces, virial = self.model.forward([split.graphs[k] for k in part], training=False)
            e.append(energy.to(self._torch.float64).numpy())
            f.append(forces.to(self._torch.float64).numpy())
            s.append(virial.to(self._torch.float64).numpy())
        return np.concatenate(e), np.concatenate(f), np.concatenate(s)

    def _split(self, split: str) -> _Split:
        if split == "train":
            return self._train
        if split == "valid":
            if self._valid is None:
                raise ValueError("this objective has no validation set")
            return self._valid
        raise ValueError(f"split must be 'train' or 'valid', got {split!r}")

    def predict(self, x: np.ndarray, split: str = "valid"):
        """Energies (n,) eV, forces (atoms, 3) eV/A, PlusStress (n, 6) eV of a split."""
        s = self._split(split)
        self._set(x)
        return self._predict_split(s)

    def evaluate(self, x: np.ndarray, split: str = "valid") -> Metrics:
        """MLIP's error metrics of parameters x on a split."""
        return compute_metrics(self._split(split).data.configs, *self.predict(x, split))

    def evaluate_data(self, xs: list[np.ndarray], data: DataSet) -> list[Metrics]:
        """MLIP's error metrics of each parameter vector of `xs` on another data set (a
        held-out test set), whose graphs are built once."""
        split = _Split(self.model, data, self.weights, "test")
        out = []
        for x in xs:
            self._set(x)
            out.append(compute_metrics(data.configs, *self._predict_split(split)))
        return out

    def _fit_energy_shift(self, reduce=None) -> dict[str, float]:
        """The per-element shift (eV per atom) minimising the weighted squared energy
        error of the training set, folded into the model; {symbol: shift}. Solved as the
        minimum-norm solution of the normal equations (the same as least squares on the
        design; elements always in the same ratio share the shift), whose sums `reduce`
        adds over MPI ranks."""
        from ase.data import chemical_symbols

        split = self._train
        energy, _, _ = self._predict_split(split)
        elements = sorted(int(z) for z in self.model.elements)
        counts = np.array([[np.sum(zs == z) for z in elements] for zs in split.numbers], dtype=float)
        w = np.sqrt(split.wE.to(self._torch.float64).numpy())
        A, y = counts * w[:, None], (split.energy.to(self._torch.float64).numpy() - energy) * w
        system = np.concatenate([(A.T @ A).ravel(), A.T @ y, counts.sum(axis=0)])
        if reduce is not None:
            system = reduce(system)
        k = len(elements)
        present = system[k * k + k:] > 0
        M = system[:k * k].reshape(k, k)[np.ix_(present, present)]
        shift = np.linalg.lstsq(M, system[k * k:k * k + k][present], rcond=1e-12)[0]
        used = [z for z, p in zip(elements, present) if p]
        self.model.shift_energies({z: float(d) for z, d in zip(used, shift)})
        return {chemical_symbols[z]: float(d) for z, d in zip(used, shift)}

    def save(self, x: np.ndarray, path: str | os.PathLike) -> None:
        """Write the model with parameters x as its package's own file (SevenNet
        checkpoint .pth, MACE .model), which the package's ASE calculator loads."""
        self._set(x)
        self.model.save(path)
