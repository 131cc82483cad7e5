"""Physics of the embedded MTP engine: exact gradients and the symmetries of E, F, S
(the checks themselves are in physics_helpers.py, shared with tests/test_etn.py).

Contracts checked:
- the loss gradient equals central finite differences of the loss (relative 1e-6) for
  every parameter group with energy, force and stress terms on, on periodic cells,
  cells smaller than the cutoff (an atom sees its own images) and a molecule;
- forces are minus the position derivative of the energy, and the virial (PlusStress)
  is minus the strain derivative of the energy;
- energies are invariant, forces and stresses covariant, under rotations (proper and
  improper), translations, permutations of same-species atoms, wrapping atoms into
  other periodic images and changing the cell basis of the same lattice (1e-10);
- results are the same for one and two threads, and additive over configurations.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_potential
from physics_helpers import (check_energy_derivatives, check_gradient_fd, check_rotation_covariance,
                             check_supercell_extensive, check_threads_and_subsets,
                             check_translation_permutation_images, label_with_noise, molecule, small_cells)

from optbench.io import Configuration


@pytest.mark.parametrize("kind", ["periodic", "small_cells", "molecule"])
def test_gradient_matches_finite_differences(engine, agpd_small, kind):
    """dL/dtheta from the adjoint method equals central differences of L (rel. 1e-6)
    for radial, species and moment coefficients, with E, F and S terms on."""
    pot = random_potential(engine, level=8, seed=1)
    configs = {"periodic": list(agpd_small.configs[:3]), "small_cells": small_cells(),
               "molecule": [molecule()]}[kind]
    check_gradient_fd(engine, pot, label_with_noise(engine, pot, configs))


def test_gradient_higher_level_and_three_species(engine):
    """The same finite-difference check for a level-12, 3-species potential (more
    contractions, every ordered species pair present)."""
    pot = random_potential(engine, level=12, species=3, seed=2, scale=0.2)
    configs = small_cells()
    configs[3] = Configuration(positions=configs[3].positions, types=np.array([2, 1], dtype=np.int32),
                               cell=configs[3].cell)
    mol = molecule()
    mol.types = np.array([0, 1, 2, 2, 1], dtype=np.int32)
    check_gradient_fd(engine, pot, label_with_noise(engine, pot, configs + [mol]))


@pytest.mark.parametrize("which", [0, 3])
def test_forces_and_virial_are_energy_derivatives(engine, agpd_small, which):
    """F = -dE/dr (central differences, 1e-6 eV/A) and PlusStress = -dE/d(strain)
    (1e-6 eV), on a 32-atom cell and a 2-atom cell smaller than the cutoff."""
    pot = random_potential(engine, level=10, seed=4, scale=0.2)
    check_energy_derivatives(engine, pot, agpd_small.configs[0] if which == 0 else small_cells()[3])


@pytest.mark.parametrize("improper", [False, True])
def test_rotation_invariance(engine, agpd_small, improper):
    """E invariant, F -> F R^T, S -> R S R^T under a random (improper) rotation, 1e-10."""
    pot = random_potential(engine, level=12, seed=5, scale=0.2)
    check_rotation_covariance(engine, pot, [agpd_small.configs[1], small_cells()[3], molecule()],
                              np.random.default_rng(8), improper)


def test_translation_permutation_and_images(engine, agpd_small):
    """E, F, S unchanged (1e-10) by a rigid translation, a permutation of atoms (forces
    permuted alike), moving atoms by lattice vectors, and a unimodular change of cell basis."""
    pot = random_potential(engine, level=10, seed=6, scale=0.2)
    check_translation_permutation_images(engine, pot, agpd_small.configs[2], np.random.default_rng(9))


def test_supercell_is_extensive(engine):
    """A 1-atom cell smaller than the cutoff and its 2x2x2 supercell give energies in
    ratio 8 and equal per-atom forces: the atom sees exactly its own images."""
    pot = random_potential(engine, level=8, seed=7, scale=0.2)
    check_supercell_extensive(engine, pot, small_cells()[0])


def test_threads_and_subsets(engine, agpd_small):
    """Two threads give the same loss and gradient as one (to rounding: 1e-12 relative),
    and loss_grad over idx equals the sum of loss_grad over a partition of idx."""
    pot = random_potential(engine, level=8, seed=8)
    check_threads_and_subsets(engine, pot, label_with_noise(engine, pot, list(agpd_small.configs)))
