"""The in-memory data model: configurations with their DFT labels, data sets, and what is
done to a data set as a whole (species renumbering, train/validation split, validation).

Units everywhere: Angstrom, eV, eV/Angstrom.  ``Configuration.stress`` is always MLIP's
``PlusStress``: the virial in eV, ``-dE/d(strain)`` = ``-sigma * V`` with ``sigma`` the
physical (ase) stress that is positive under tension.  So a *stretched* cell has a
NEGATIVE PlusStress, a compressed one a positive PlusStress.  Voigt order is
``xx yy zz yz xz xy``.  How each source format maps onto it:

==================  ================================================  ====================
format              stored quantity                                    to PlusStress
==================  ================================================  ====================
.cfg ``PlusStress``  virial, eV                                        as is
.cfg ``Stress``      legacy, minus the virial, eV                      ``-Stress``
MLIP-4 JSON          virial, eV, xx yy zz yz xz xy                      as is
extxyz ``virial``    ase virial ``-sigma*V``, eV, 3x3                  as is (Voigt)
extxyz ``stress``    ase stress ``sigma``, eV/A^3                      ``-sigma * V``
pymatgen JSON        VASP stress, kBar, xx yy zz xy yz zx, positive     reorder, ``* V / 1602.18``
                     when compressed (``-sigma``)
==================  ================================================  ====================

How these were checked on the data in ``../shared/datasets`` (see ``tests/test_data.py``):
the Rosenbrock Ag-Pd extxyz frames carry ``vasp_virial`` while ``mtp_train.cfg`` holds
recomputations of the same lattices with ``Stress:``; matched frames (same atom count,
energy within 2e-4 eV, volume within 1e-3 A^3) have eigenvalues of ``vasp_virial`` equal
to those of ``-Stress`` (to 1e-4 eV for one-atom cells), e.g. bcc Pd at 30.3 A^3/atom
(stretched): -3.03 eV.  In the SNAP ``*_Elastic.json`` sets a cell stretched along z by
10 % has ``stress[2] = -330`` kBar and a positive xy shear strain gives a negative
4th component, fixing both the sign and the order xx yy zz xy yz zx.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["Configuration", "DataSet", "DataError", "cell_volume", "species_count", "map_species", "split",
           "validate", "to_arrays", "VOIGT_ORDER", "closest_pair"]

#: Voigt component order of ``Configuration.stress`` (MLIP PlusStress).
VOIGT_ORDER = ("xx", "yy", "zz", "yz", "xz", "xy")
# (row, column) of each Voigt component in a 3x3 tensor.
_VOIGT_IJ = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


class DataError(ValueError):
    """Malformed or inconsistent data; the message names the file and line or record."""


# ---------------------------------------------------------------------------- model


@dataclass
class Configuration:
    """One atomic configuration with optional DFT labels."""

    positions: np.ndarray  # (N,3) float64 Cartesian, Angstrom
    types: np.ndarray  # (N,) int32, 0-based species index
    cell: np.ndarray | None = None  # (3,3) float64, lattice vectors as ROWS; None = molecule
    energy: float | None = None  # eV (total)
    forces: np.ndarray | None = None  # (N,3) eV/Angstrom
    stress: np.ndarray | None = None  # (6,) PlusStress = virial in eV, xx yy zz yz xz xy
    features: dict = field(default_factory=dict)  # e.g. MLIP "Feature" lines
    source: str = ""  # "path:line" or "path[record]" for error messages

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return int(len(self.types))


@dataclass
class DataSet:
    """An ordered list of configurations and, when known, the element of each type index."""

    configs: list[Configuration]
    species: list[str] | None = None  # element symbol of each species index, when known
    name: str = ""

    def __len__(self) -> int:
        return len(self.configs)

    def __iter__(self):
        return iter(self.configs)

    def __getitem__(self, key):
        """An int gives a Configuration; a slice, index array or boolean mask a DataSet."""
        if isinstance(key, (int, np.integer)):
            return self.configs[int(key)]
        if isinstance(key, slice):
            picked = self.configs[key]
        else:
            idx = np.asarray(key)
            if idx.dtype == bool:
                if idx.shape != (len(self.configs),):
                    raise IndexError(f"boolean mask of shape {idx.shape} for {len(self)} configs")
                idx = np.flatnonzero(idx)
            picked = [self.configs[int(i)] for i in idx.ravel()]
        return DataSet(list(picked), None if self.species is None else list(self.species), self.name)

    @property
    def n_atoms(self) -> int:
        """Total number of atoms over all configurations."""
        return int(sum(c.n_atoms for c in self.configs))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The flat arrays the C engine takes: `to_arrays` of this data set."""
        return to_arrays(self)

    @property
    def n_species(self) -> int:
        """len(species) when the elements are known, else the largest type index + 1."""
        if self.species is not None:
            return len(self.species)
        return max((int(c.types.max()) + 1 for c in self.configs if c.n_atoms), default=0)


def species_count(*datasets: DataSet | None) -> int:
    """How many species a potential for these data sets needs: the element list of the
    first data set that knows its elements, else the largest type index + 1 over all of
    them (None entries are skipped)."""
    sets = [d for d in datasets if d is not None]
    for d in sets:
        if d.species:
            return len(d.species)
    return max((d.n_species for d in sets), default=0)


def cell_volume(cell: np.ndarray) -> float:
    """Volume |det(cell)| of a cell with lattice vectors as rows, A^3."""
    return float(abs(np.linalg.det(np.asarray(cell, dtype=float))))


def _voigt(t: np.ndarray) -> np.ndarray:
    """3x3 tensor -> Voigt (xx yy zz yz xz xy), symmetrising the off-diagonal pairs."""
    t = np.asarray(t, dtype=float).reshape(3, 3)
    return np.array([0.5 * (t[i, j] + t[j, i]) for i, j in _VOIGT_IJ])


def _as_voigt(value, where: str, what: str) -> np.ndarray:
    """A 6-vector (already Voigt, xx yy zz yz xz xy) or 3x3/9-vector -> Voigt 6-vector."""
    arr = np.asarray(value, dtype=float)
    if arr.size == 6:
        return arr.reshape(6).copy()
    if arr.size == 9:
        return _voigt(arr)
    raise DataError(f"{where}: {what} has {arr.size} components, expected 6 or 9")


def _check_finite(values, where: str, what: str) -> None:
    if values is not None and not np.all(np.isfinite(values)):
        raise DataError(f"{where}: {what} contains NaN or inf")


# ------------------------------------------------------------------- species mapping


def map_species(dataset: DataSet, mapping: Sequence[str] | Mapping[int, int] | Sequence[int]) -> DataSet:
    """Renumber the species (type indices) of every configuration.

    ``mapping`` is either the target order of elements (``["Cu", "Ag", "Pd"]``: type i
    becomes element ``mapping[i]``; the data set must know its elements) or old index ->
    new index (a dict, or a sequence with ``mapping[old] = new``), where the new element
    names follow from the old ones when the mapping defines them unambiguously. An element
    or index the mapping does not cover raises DataError naming it and the configuration."""
    if isinstance(mapping, Sequence) and not isinstance(mapping, str) and all(isinstance(m, str) for m in mapping):
        if dataset.species is None:
            raise DataError(f"data set {dataset.name!r}: elements unknown (species=None); map indices instead")
        target = {el: i for i, el in enumerate(mapping)}
        table = np.array([target.get(el, -1) for el in dataset.species], dtype=np.int32)
        species: list[str] | None = list(mapping)
    else:
        if isinstance(mapping, Mapping):
            table = np.full(max(mapping.keys(), default=-1) + 1, -1, dtype=np.int32)
            for old, new in mapping.items():
                table[int(old)] = int(new)
        else:
            table = np.asarray(list(mapping), dtype=np.int32)
        species = None if dataset.species is None else _renamed_species(table, dataset.species)
    configs = [replace(c, types=_lookup_types(table, c, dataset.species)) for c in dataset.configs]
    return DataSet(configs, species, dataset.name)


def _lookup_types(table: np.ndarray, cfg: Configuration, names: Sequence[str] | None) -> np.ndarray:
    old = np.asarray(cfg.types)
    if old.size and int(old.max()) >= len(table):
        raise DataError(f"{cfg.source}: species index {int(old.max())} has no mapping")
    new = table[old] if old.size else old.astype(np.int32)
    if np.any(new < 0):
        bad = int(old[np.flatnonzero(new < 0)[0]])
        label = names[bad] if names is not None else f"index {bad}"
        raise DataError(f"{cfg.source}: unknown species {label} (not in the requested species list)")
    return new.astype(np.int32)


def _renamed_species(table: np.ndarray, names: Sequence[str]) -> list[str] | None:
    """Element names of the new indices, or None when the mapping does not define them
    unambiguously (two elements merged, or a new index with no element)."""
    new_names: dict[int, str] = {}
    for old, new in enumerate(table.tolist()):
        if new < 0 or old >= len(names):
            continue
        if new_names.setdefault(new, names[old]) != names[old]:
            return None
    if sorted(new_names) != list(range(len(new_names))):
        return None
    return [new_names[i] for i in range(len(new_names))]


# --------------------------------------------------------------------- splitting


def split(dataset: DataSet, valid_fraction: float, seed: int) -> tuple[DataSet, DataSet]:
    """Random (train, valid) partition: ``round(valid_fraction * len)`` configurations go
    to valid, chosen by ``numpy.random.default_rng(seed).permutation``; both keep the
    original order.  Same seed -> same split."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    n = len(dataset)
    n_valid = int(round(valid_fraction * n))
    if valid_fraction > 0 and not 0 < n_valid < n:
        raise ValueError(f"valid_fraction {valid_fraction:g} of {n} configurations ({dataset.name or 'data set'}) "
                         f"holds out {n_valid}: {'none' if n_valid == 0 else 'all'}; give a fraction that leaves "
                         "at least one configuration on each side")
    perm = np.random.default_rng(seed).permutation(n)
    mask = np.zeros(n, dtype=bool)
    mask[perm[:n_valid]] = True
    return dataset[~mask], dataset[mask]


# --------------------------------------------------------------------- validation


def validate(dataset: DataSet, n_species: int | None = None, min_distance: float = 1e-3) -> None:
    """Raise DataError for: an empty data set, a species index outside [0, n_species),
    NaN/inf positions or labels, label shapes that do not match the atom count, a
    zero-volume cell, or two atoms closer than ``min_distance`` (A; periodic images
    included)."""
    if len(dataset) == 0:
        raise DataError(f"data set {dataset.name!r} is empty (no configurations)")
    if n_species is None and dataset.species is not None:
        n_species = len(dataset.species)
    for cfg in dataset.configs:
        _validate_config(cfg, n_species, min_distance)


def _validate_config(cfg: Configuration, n_species: int | None, min_distance: float) -> None:
    where = cfg.source or "configuration"
    n = cfg.n_atoms
    if np.shape(cfg.positions) != (n, 3):
        raise DataError(f"{where}: positions shape {np.shape(cfg.positions)} != ({n}, 3)")
    if n == 0:
        raise DataError(f"{where}: configuration has no atoms")
    types = np.asarray(cfg.types)
    if types.min() < 0:
        raise DataError(f"{where}: negative species index {int(types.min())}")
    if n_species is not None and types.max() >= n_species:
        atom = int(np.argmax(types >= n_species))
        raise DataError(f"{where}: species index {int(types[atom])} of atom {atom + 1} >= n_species {n_species}")
    _check_finite(cfg.positions, where, "positions")
    if cfg.energy is not None and not math.isfinite(cfg.energy):
        raise DataError(f"{where}: energy is NaN or inf")
    if cfg.forces is not None:
        if np.shape(cfg.forces) != (n, 3):
            raise DataError(f"{where}: forces shape {np.shape(cfg.forces)} != ({n}, 3)")
        _check_finite(cfg.forces, where, "forces")
    if cfg.stress is not None:
        if np.shape(cfg.stress) != (6,):
            raise DataError(f"{where}: stress shape {np.shape(cfg.stress)} != (6,)")
        _check_finite(cfg.stress, where, "stress")
    if cfg.cell is not None:
        _validate_cell(cfg.cell, where)
    _check_overlaps(cfg, where, min_distance)


def _validate_cell(cell, where: str) -> None:
    cell = np.asarray(cell, dtype=float)
    if cell.shape != (3, 3):
        raise DataError(f"{where}: cell shape {cell.shape} != (3, 3)")
    _check_finite(cell, where, "cell")
    scale = float(np.prod(np.linalg.norm(cell, axis=1)))
    if scale == 0.0 or cell_volume(cell) <= 1e-10 * scale:
        raise DataError(f"{where}: degenerate cell (zero volume)")


def _check_overlaps(cfg: Configuration, where: str, min_distance: float) -> None:
    """DataError when two atoms are closer than `min_distance` (A), periodic images
    included (`closest_pair`)."""
    pair = closest_pair(cfg, min_distance)
    if pair is not None:
        a, b, distance = pair
        raise DataError(f"{where}: atoms {a + 1} and {b + 1} are at the same position (distance {distance:.2e} A)")


def closest_pair(cfg: Configuration, cutoff: float) -> tuple[int, int, float] | None:
    """The closest pair of atoms of `cfg` nearer than `cutoff` (A), periodic images
    included: (i, j, distance in A) with 0-based atom indices i <= j (i == j only for an
    atom nearer than `cutoff` to its own image, in a sheared cell with a lattice vector
    shorter than `cutoff`), or None when no two atoms are that close. Found exactly for
    any cell: scipy's periodic k-d tree for a molecule or an orthorhombic cell (fast: the
    common case), ase's neighbour list otherwise (rounding fractional coordinates, the
    minimum-image shortcut, can miss a pair in a sheared cell)."""
    pos = np.asarray(cfg.positions, dtype=float)
    cell = None if cfg.cell is None else np.asarray(cfg.cell, dtype=float)
    if cell is None or np.count_nonzero(cell - np.diag(np.diag(cell))) == 0:
        from scipy.spatial import cKDTree

        box = None
        if cell is not None:
            box = np.abs(np.diag(cell))
            pos = np.mod(pos, box)
            pos[pos >= box] = 0.0  # mod of a tiny negative number can round up to the box length
        pairs = cKDTree(pos, boxsize=box).query_pairs(float(cutoff), output_type="ndarray")
        if not len(pairs):
            return None
        delta = pos[pairs[:, 0]] - pos[pairs[:, 1]]
        if box is not None:
            delta -= box * np.round(delta / box)
        d = np.linalg.norm(delta, axis=1)
        k = int(np.argmin(d))
        (a, b), distance = sorted(int(v) for v in pairs[k]), float(d[k])
    else:
        from ase.neighborlist import primitive_neighbor_list

        i, j, d = primitive_neighbor_list("ijd", np.ones(3, dtype=bool), cell, pos, float(cutoff),
                                          self_interaction=False)
        if not len(d):
            return None
        k = int(np.argmin(d))
        (a, b), distance = sorted((int(i[k]), int(j[k]))), float(d[k])
    return a, b, distance


# ------------------------------------------------------------------ engine arrays


def to_arrays(dataset: DataSet) -> dict[str, np.ndarray]:
    """Flat C-contiguous arrays for the C engine (``mlipc_dataset_create`` /
    ``mlipc_dataset_set_labels``): n_atoms (int64, n_cfg), cells (float64, 9 per config,
    rows = lattice vectors, zeros for molecules), periodic (int32), positions (float64,
    3 per atom, concatenated), types (int32), energies (float64, eV, NaN when missing),
    forces (float64, eV/A, NaN when missing), stresses (float64, PlusStress eV, 6 per
    config, NaN when missing)."""
    cfgs = dataset.configs
    n_cfg = len(cfgs)
    n_atoms = np.array([c.n_atoms for c in cfgs], dtype=np.int64)
    total = int(n_atoms.sum())
    cells = np.zeros((n_cfg, 9))
    periodic = np.zeros(n_cfg, dtype=np.int32)
    energies = np.full(n_cfg, np.nan)
    stresses = np.full((n_cfg, 6), np.nan)
    positions = np.empty((total, 3))
    types = np.empty(total, dtype=np.int32)
    forces = np.full((total, 3), np.nan)
    offset = 0
    for k, c in enumerate(cfgs):
        sl = slice(offset, offset + c.n_atoms)
        positions[sl] = c.positions
        types[sl] = c.types
        if c.forces is not None:
            forces[sl] = c.forces
        if c.cell is not None:
            cells[k] = np.asarray(c.cell, dtype=float).ravel()
            periodic[k] = 1
        if c.energy is not None:
            energies[k] = c.energy
        if c.stress is not None:
            stresses[k] = c.stress
        offset += c.n_atoms
    out = dict(n_atoms=n_atoms, cells=cells.ravel(), periodic=periodic, positions=positions.ravel(),
               types=types, energies=energies, forces=forces.ravel(), stresses=stresses.ravel())
    return {k: np.ascontiguousarray(v) for k, v in out.items()}
