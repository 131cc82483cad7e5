"""The default data set: Ag-Pd fcc alloys labelled with ase's EMT calculator.

Each configuration is an fcc supercell of the 4-atom conventional cell, repeated
(2,2,1), (2,2,2) or (3,2,2) times (16, 32, 48 atoms, in the ratio 1:1:2, so 240
configurations hold 8640 atoms like ``reference/mlip3/configs/emt_train.cfg``), with

* a random composition: the number of Pd atoms is uniform in 0..N, sites chosen at random;
* a lattice constant from Vegard's law (a_Ag = 4.09, a_Pd = 3.89 A) scaled by a uniform
  random factor in [1 - 3 %, 1 + 3 %];
* a random symmetric strain, each component uniform in [-3 %, 3 %];
* Gaussian atomic displacements of 0.1 A rms length (0.1/sqrt(3) A per component).

Labels: EMT energy (eV), forces (eV/A) and stress.  ase's stress is ``sigma`` in eV/A^3
(positive under tension, Voigt xx yy zz yz xz xy); it is stored as MLIP's PlusStress
``-sigma * V`` (eV), negative for a stretched cell (checked in tests/test_data.py).

Configuration ``i`` of stream ``s`` draws its random numbers from
``SeedSequence(seed, spawn_key=(s, i))``: the result depends only on (seed, s, i), so a
shorter set is a prefix of a longer one and the train/valid streams are disjoint.
"""

from __future__ import annotations

import numpy as np

from optbench.io.dataset import Configuration, DataSet

__all__ = ["generate_agpd", "generate_agpd_split", "SPECIES", "A_AG", "A_PD", "REPEATS"]

SPECIES = ["Ag", "Pd"]  # type 0 = Ag, type 1 = Pd
A_AG = 4.09  # fcc lattice constants (A) for Vegard's law
A_PD = 3.89
# conventional-cell repeats cycled over the configurations: 48, 16, 48, 32 atoms
REPEATS = ((3, 2, 2), (2, 2, 1), (3, 2, 2), (2, 2, 2))
_FCC_BASIS = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])


def _fcc_supercell(repeats) -> tuple[np.ndarray, np.ndarray]:
    """Fractional positions (in units of the conventional cube) and the repeat diagonal."""
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in repeats], indexing="ij"), -1).reshape(-1, 3)
    frac = (grid[:, None, :] + _FCC_BASIS[None, :, :]).reshape(-1, 3)
    return frac, np.asarray(repeats, dtype=float)


def _random_structure(rng: np.random.Generator, repeats, lattice_jitter, strain, displacement):
    """Positions (A), types and cell (rows, A) of one random Ag-Pd fcc supercell."""
    frac, rep = _fcc_supercell(repeats)
    n = len(frac)
    n_pd = int(rng.integers(0, n + 1))
    types = np.zeros(n, dtype=np.int32)
    types[rng.permutation(n)[:n_pd]] = 1
    x_pd = n_pd / n
    a = ((1.0 - x_pd) * A_AG + x_pd * A_PD) * (1.0 + rng.uniform(-lattice_jitter, lattice_jitter))
    eps = rng.uniform(-strain, strain, size=(3, 3))
    deform = np.eye(3) + 0.5 * (eps + eps.T)
    cell = (np.diag(rep) * a) @ deform  # rows: lattice vectors, deformed the same as positions
    pos = (frac * a) @ deform + rng.normal(0.0, displacement / np.sqrt(3.0), size=(n, 3))
    return pos, types, cell


def _emt_labels(pos: np.ndarray, types: np.ndarray, cell: np.ndarray):
    """EMT energy (eV), forces (eV/A) and PlusStress (eV) = -ase_stress * volume."""
    from ase import Atoms
    from ase.calculators.emt import EMT

    atoms = Atoms(numbers=np.where(types == 0, 47, 46), positions=pos, cell=cell, pbc=True)
    atoms.calc = EMT()
    energy = float(atoms.get_potential_energy())
    forces = np.array(atoms.get_forces(), dtype=float)
    stress = -np.array(atoms.get_stress(voigt=True), dtype=float) * atoms.get_volume()
    return energy, forces, stress


def _config(seed: int, stream: int, index: int, **kw) -> Configuration:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))
    pos, types, cell = _random_structure(rng, REPEATS[index % len(REPEATS)], **kw)
    energy, forces, stress = _emt_labels(pos, types, cell)
    return Configuration(
        positions=pos, types=types, cell=cell, energy=energy, forces=forces, stress=stress,
        source=f"generate_agpd(seed={seed}, stream={stream})[{index}]",
    )


def generate_agpd(
    n_configs: int = 240,
    seed: int = 0,
    *,
    stream: int = 0,
    lattice_jitter: float = 0.03,
    strain: float = 0.03,
    displacement: float = 0.1,
) -> DataSet:
    """Ag-Pd EMT data set of ``n_configs`` random fcc supercells (16-48 atoms; see the
    module docstring).  Energies in eV, forces in eV/A, stress as PlusStress in eV;
    ``species = ["Ag", "Pd"]``.  Deterministic in (seed, stream): equal arguments give
    identical arrays.  ``lattice_jitter`` and ``strain`` are relative amplitudes,
    ``displacement`` the rms length (A) of the Gaussian atomic displacements."""
    if n_configs < 0:
        raise ValueError(f"n_configs must be >= 0, got {n_configs}")
    kw = dict(lattice_jitter=lattice_jitter, strain=strain, displacement=displacement)
    configs = [_config(seed, stream, i, **kw) for i in range(n_configs)]
    return DataSet(configs, list(SPECIES), name=f"agpd_emt_s{seed}_{stream}")


def generate_agpd_split(n_train: int = 240, n_valid: int = 60, seed: int = 0, **kw) -> tuple[DataSet, DataSet]:
    """(train, valid) Ag-Pd EMT sets from two disjoint random streams (0 and 1) of the
    same seed; ``train`` equals ``generate_agpd(n_train, seed)``."""
    return (
        generate_agpd(n_train, seed, stream=0, **kw),
        generate_agpd(n_valid, seed, stream=1, **kw),
    )
