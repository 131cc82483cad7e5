"""Physics of the embedded MTP engine: exact gradients and the symmetries of E, F, S.

Contracts checked:
- the loss gradient equals central finite differences of the loss (relative 1e-6) for
  every parameter group with energy, force and stress terms on, on periodic cells,
  cells smaller than the cutoff (an atom sees its own images) and a molecule;
- forces are minus the position derivative of the energy, and the virial (PlusStress)
  is minus the strain derivative of the energy;
- energies are invariant, forces and stresses covariant, under rotations (proper and
  improper), translations, permutations of same-species atoms, wrapping atoms into
  other periodic images and changing the cell basis of the same lattice (1e-10).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_potential

from optbench.harness.data import Configuration, DataSet

WEIGHTS = (1.0, 0.05, 0.01)  # wE, wF, wS: all three loss terms on


def _small_cells() -> list[Configuration]:
    """Cells smaller than the 5 A cutoff: 1- and 2-atom fcc/bcc cells, strained."""
    rng = np.random.default_rng(3)
    out = []
    a = 4.0
    prim = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
    for k in range(3):
        cell = prim @ (np.eye(3) + 0.03 * rng.standard_normal((3, 3)))
        out.append(Configuration(positions=np.zeros((1, 3)), types=np.array([k % 2], dtype=np.int32), cell=cell))
    bcc = 3.2 * (np.eye(3) + 0.02 * rng.standard_normal((3, 3)))
    pos = np.array([[0.0, 0.0, 0.0], [1.6, 1.6, 1.6]]) + 0.1 * rng.standard_normal((2, 3))
    out.append(Configuration(positions=pos, types=np.array([0, 1], dtype=np.int32), cell=bcc))
    return out


def _molecule() -> Configuration:
    rng = np.random.default_rng(5)
    pos = np.array([[0, 0, 0], [2.6, 0, 0], [0, 2.7, 0.2], [1.3, 1.2, 2.3], [2.5, 2.4, 1.0]], dtype=float)
    pos += 0.05 * rng.standard_normal(pos.shape)
    return Configuration(positions=pos, types=np.array([0, 1, 1, 0, 1], dtype=np.int32), cell=None)


def _label(engine, pot, configs, seed=11) -> DataSet:
    """Attach labels = the potential's own predictions plus noise, so residuals are
    nonzero in every term."""
    rng = np.random.default_rng(seed)
    ds = engine.dataset(DataSet(configs), 5.0)
    e, f, s = engine.predict(pot, ds)
    out, start = [], 0
    for k, c in enumerate(configs):
        n = c.n_atoms
        out.append(Configuration(positions=c.positions, types=c.types, cell=c.cell,
                                 energy=float(e[k] + 0.3 * rng.standard_normal()),
                                 forces=f[start:start + n] + 0.2 * rng.standard_normal((n, 3)),
                                 stress=(s[k] + 0.5 * rng.standard_normal(6)) if c.cell is not None else None))
        start += n
    return DataSet(out)


def _fd_check(engine, pot, data: DataSet, weights=WEIGHTS):
    w = np.tile(weights, (len(data), 1))
    for k, c in enumerate(data.configs):
        if c.cell is None:
            w[k, 2] = 0.0
    ds = engine.dataset(data, 5.0)
    x0 = pot.get_params()
    loss, g = engine.loss_grad(pot, ds, w)
    fd = np.empty_like(g)
    for i in range(x0.size):
        h = 1e-5 * max(1.0, abs(x0[i]))
        xp, xm = x0.copy(), x0.copy()
        xp[i] += h
        xm[i] -= h
        pot.set_params(xp)
        lp, _ = engine.loss_grad(pot, ds, w, grad=False)
        pot.set_params(xm)
        lm, _ = engine.loss_grad(pot, ds, w, grad=False)
        fd[i] = (lp - lm) / (2 * h)
    pot.set_params(x0)
    assert loss > 0
    for name, sl in pot.groups().items():
        err = np.max(np.abs(g[sl] - fd[sl])) / np.max(np.abs(fd[sl]))
        assert err < 1e-6, f"group {name}: relative gradient error {err:.2e}"


@pytest.mark.parametrize("kind", ["periodic", "small_cells", "molecule"])
def test_gradient_matches_finite_differences(engine, agpd_small, kind):
    """dL/dtheta from the adjoint method equals central differences of L (rel. 1e-6)
    for radial, species and moment coefficients, with E, F and S terms on."""
    pot = random_potential(engine, level=8, seed=1)
    configs = {"periodic": list(agpd_small.configs[:3]), "small_cells": _small_cells(),
               "molecule": [_molecule()]}[kind]
    _fd_check(engine, pot, _label(engine, pot, configs))


def test_gradient_higher_level_and_three_species(engine):
    """The same finite-difference check for a level-12, 3-species potential (more
    contractions, every ordered species pair present)."""
    pot = random_potential(engine, level=12, species=3, seed=2, scale=0.2)
    configs = _small_cells()
    configs[3] = Configuration(positions=configs[3].positions, types=np.array([2, 1], dtype=np.int32),
                               cell=configs[3].cell)
    mol = _molecule()
    mol.types = np.array([0, 1, 2, 2, 1], dtype=np.int32)
    _fd_check(engine, pot, _label(engine, pot, configs + [mol]))


def _efs(engine, pot, c: Configuration):
    e, f, s = engine.predict(pot, engine.dataset(DataSet([c]), 5.0))
    return e[0], f, s[0]


def _sym(s6):
    xx, yy, zz, yz, xz, xy = s6
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


@pytest.mark.parametrize("which", [0, 3])
def test_forces_and_virial_are_energy_derivatives(engine, agpd_small, which):
    """F = -dE/dr (central differences, 1e-6 eV/A) and PlusStress = -dE/d(strain)
    (1e-6 eV), on a 32-atom cell and a 2-atom cell smaller than the cutoff."""
    pot = random_potential(engine, level=10, seed=4, scale=0.2)
    c = agpd_small.configs[0] if which == 0 else _small_cells()[3]
    e0, f, s = _efs(engine, pot, c)
    h = 1e-5
    for atom in range(min(c.n_atoms, 3)):
        for d in range(3):
            p, m = c.positions.copy(), c.positions.copy()
            p[atom, d] += h
            m[atom, d] -= h
            ep = _efs(engine, pot, Configuration(positions=p, types=c.types, cell=c.cell))[0]
            em = _efs(engine, pot, Configuration(positions=m, types=c.types, cell=c.cell))[0]
            assert abs(-(ep - em) / (2 * h) - f[atom, d]) < 1e-6
    S = _sym(s)
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = h
            ep = _efs(engine, pot, Configuration(positions=c.positions @ (np.eye(3) + eps).T, types=c.types,
                                                 cell=c.cell @ (np.eye(3) + eps).T))[0]
            em = _efs(engine, pot, Configuration(positions=c.positions @ (np.eye(3) - eps).T, types=c.types,
                                                 cell=c.cell @ (np.eye(3) - eps).T))[0]
            assert abs(-(ep - em) / (2 * h) - S[a, b]) < 1e-6


def _random_rotation(rng, improper: bool) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return -q if improper else q


@pytest.mark.parametrize("improper", [False, True])
def test_rotation_invariance(engine, agpd_small, improper):
    """E invariant, F -> F R^T, S -> R S R^T under a random (improper) rotation, 1e-10."""
    pot = random_potential(engine, level=12, seed=5, scale=0.2)
    rng = np.random.default_rng(8)
    for c in [agpd_small.configs[1], _small_cells()[3], _molecule()]:
        R = _random_rotation(rng, improper)
        e0, f0, s0 = _efs(engine, pot, c)
        rc = Configuration(positions=c.positions @ R.T, types=c.types, cell=None if c.cell is None else c.cell @ R.T)
        e1, f1, s1 = _efs(engine, pot, rc)
        scale = max(1.0, abs(e0))
        assert abs(e1 - e0) < 1e-10 * scale
        assert np.max(np.abs(f1 - f0 @ R.T)) < 1e-10 * max(1.0, np.abs(f0).max())
        if c.cell is not None:
            assert np.max(np.abs(_sym(s1) - R @ _sym(s0) @ R.T)) < 1e-10 * max(1.0, np.abs(s0).max())


def _assert_same_efs(engine, pot, ref, conf, perm=None):
    """E, F, S of `conf` equal `ref` = (E, F, S) to 1e-10 relative; forces permuted by perm."""
    e0, f0, s0 = ref
    e1, f1, s1 = _efs(engine, pot, conf)
    assert abs(e1 - e0) < 1e-10 * max(1.0, abs(e0))
    assert np.max(np.abs(f1 - (f0 if perm is None else f0[perm]))) < 1e-10 * max(1.0, np.abs(f0).max())
    assert np.max(np.abs(s1 - s0)) < 1e-10 * max(1.0, np.abs(s0).max())


def test_translation_permutation_and_images(engine, agpd_small):
    """E, F, S unchanged (1e-10) by a rigid translation, a permutation of atoms (forces
    permuted alike), moving atoms by lattice vectors, and a unimodular change of cell basis."""
    pot = random_potential(engine, level=10, seed=6, scale=0.2)
    rng = np.random.default_rng(9)
    c = agpd_small.configs[2]
    ref = _efs(engine, pot, c)
    _assert_same_efs(engine, pot, ref, Configuration(positions=c.positions + rng.standard_normal(3) * 7.3,
                                                     types=c.types, cell=c.cell))
    perm = rng.permutation(c.n_atoms)
    _assert_same_efs(engine, pot, ref, Configuration(positions=c.positions[perm], types=c.types[perm],
                                                     cell=c.cell), perm)
    shifts = rng.integers(-2, 3, size=(c.n_atoms, 3))
    _assert_same_efs(engine, pot, ref, Configuration(positions=c.positions + shifts @ c.cell, types=c.types,
                                                     cell=c.cell))
    U = np.array([[1, 1, 0], [0, 1, 0], [0, -1, 1]])  # det 1: the same lattice
    _assert_same_efs(engine, pot, ref, Configuration(positions=c.positions, types=c.types, cell=U @ c.cell))
    # The same on a 2-atom cell smaller than the cutoff.
    small = _small_cells()[3]
    _assert_same_efs(engine, pot, _efs(engine, pot, small),
                     Configuration(positions=small.positions + np.array([[1, -2, 0], [0, 0, 3]]) @ small.cell,
                                   types=small.types,
                                   cell=np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]]) @ small.cell))


def test_supercell_is_extensive(engine):
    """A 1-atom cell smaller than the cutoff and its 2x2x2 supercell give energies in
    ratio 8 and equal per-atom forces: the atom sees exactly its own images."""
    pot = random_potential(engine, level=8, seed=7, scale=0.2)
    c = _small_cells()[0]
    e1, f1, s1 = _efs(engine, pot, c)
    shifts = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)])
    big = Configuration(positions=shifts @ c.cell, types=np.repeat(c.types, 8), cell=2 * c.cell)
    e8, f8, s8 = _efs(engine, pot, big)
    assert abs(e8 - 8 * e1) < 1e-10 * max(1.0, abs(e8))
    assert np.max(np.abs(f8)) < 1e-10
    assert np.max(np.abs(s8 - 8 * s1)) < 1e-9 * max(1.0, np.abs(s8).max())


def test_threads_give_the_same_result(engine, agpd_small):
    """Two threads give the same loss and gradient as one (to rounding: 1e-12 relative)."""
    pot = random_potential(engine, level=8, seed=8)
    data = _label(engine, pot, list(agpd_small.configs))
    ds = engine.dataset(data, 5.0)
    w = np.tile(WEIGHTS, (len(data), 1))
    l1, g1 = engine.loss_grad(pot, ds, w)
    engine.set_num_threads(2)
    try:
        l2, g2 = engine.loss_grad(pot, ds, w)
    finally:
        engine.set_num_threads(1)
    assert abs(l1 - l2) <= 1e-12 * abs(l1)
    assert np.max(np.abs(g1 - g2)) <= 1e-12 * np.max(np.abs(g1))


def test_subset_loss_is_sum_over_subsets(engine, agpd_small):
    """loss_grad over idx equals the sum of loss_grad over a partition of idx."""
    pot = random_potential(engine, level=8, seed=9)
    data = _label(engine, pot, list(agpd_small.configs))
    ds = engine.dataset(data, 5.0)
    w = np.tile(WEIGHTS, (len(data), 1))
    lall, gall = engine.loss_grad(pot, ds, w)
    la, ga = engine.loss_grad(pot, ds, w, idx=[0, 2, 4])
    lb, gb = engine.loss_grad(pot, ds, w, idx=[5, 3, 1])
    assert abs(la + lb - lall) < 1e-10 * lall
    assert np.max(np.abs(ga + gb - gall)) < 1e-10 * np.max(np.abs(gall))
