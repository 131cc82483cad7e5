"""Physics checks shared by the tests of every potential kind (MTP, ETN).

Each check asserts one contract of mlipc.h for any potential: the adjoint loss gradient
equals finite differences, forces and virial are energy derivatives, E is invariant and
F, S covariant under rotations, translations, permutations, periodic images and cell
changes, and the energy is extensive. Structures are small so that the checks are cheap.
"""

from __future__ import annotations

import numpy as np

from optbench.io import Configuration, DataSet

WEIGHTS = (1.0, 0.05, 0.01)  # wE, wF, wS: all three loss terms on


def small_cells() -> list[Configuration]:
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


def molecule() -> Configuration:
    """A 5-atom cluster without a cell (plain distances, no images)."""
    rng = np.random.default_rng(5)
    pos = np.array([[0, 0, 0], [2.6, 0, 0], [0, 2.7, 0.2], [1.3, 1.2, 2.3], [2.5, 2.4, 1.0]], dtype=float)
    pos += 0.05 * rng.standard_normal(pos.shape)
    return Configuration(positions=pos, types=np.array([0, 1, 1, 0, 1], dtype=np.int32), cell=None)


def label_with_noise(engine, pot, configs, seed=11) -> DataSet:
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


def check_gradient_fd(engine, pot, data: DataSet, weights=WEIGHTS, tol=1e-6, step=1e-5):
    """The engine's loss gradient equals central differences of its loss (steps of
    `step` * max(1, |x_i|)), per parameter group, to `tol` relative to the group's largest
    entry (stress weight off for molecules)."""
    w = np.tile(weights, (len(data), 1))
    for k, c in enumerate(data.configs):
        if c.cell is None:
            w[k, 2] = 0.0
    ds = engine.dataset(data, 5.0)
    x0 = pot.get_params()
    loss, g = engine.loss_grad(pot, ds, w)
    fd = np.empty_like(g)
    for i in range(x0.size):
        h = step * max(1.0, abs(x0[i]))
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
        assert err < tol, f"group {name}: relative gradient error {err:.2e}"


def efs(engine, pot, c: Configuration):
    """(E eV, F eV/A (n, 3), PlusStress eV (6,)) of one configuration."""
    e, f, s = engine.predict(pot, engine.dataset(DataSet([c]), 5.0))
    return e[0], f, s[0]


def sym3(s6):
    """The symmetric 3x3 matrix of a stress in MLIP's order xx yy zz yz xz xy."""
    xx, yy, zz, yz, xz, xy = s6
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def check_energy_derivatives(engine, pot, c: Configuration, tol=1e-6, h=1e-5):
    """F = -dE/dr for the first three atoms and PlusStress = -dE/d(strain), by central
    differences (tol in eV/A and eV)."""
    _, f, s = efs(engine, pot, c)
    for atom in range(min(c.n_atoms, 3)):
        for d in range(3):
            p, m = c.positions.copy(), c.positions.copy()
            p[atom, d] += h
            m[atom, d] -= h
            ep = efs(engine, pot, Configuration(positions=p, types=c.types, cell=c.cell))[0]
            em = efs(engine, pot, Configuration(positions=m, types=c.types, cell=c.cell))[0]
            assert abs(-(ep - em) / (2 * h) - f[atom, d]) < tol
    S = sym3(s)
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = h
            ep = efs(engine, pot, Configuration(positions=c.positions @ (np.eye(3) + eps).T, types=c.types,
                                                cell=c.cell @ (np.eye(3) + eps).T))[0]
            em = efs(engine, pot, Configuration(positions=c.positions @ (np.eye(3) - eps).T, types=c.types,
                                                cell=c.cell @ (np.eye(3) - eps).T))[0]
            assert abs(-(ep - em) / (2 * h) - S[a, b]) < tol


def random_rotation(rng, improper: bool) -> np.ndarray:
    """A uniformly random rotation matrix; with `improper`, times -1 (det -1)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return -q if improper else q


def check_rotation_covariance(engine, pot, configs, rng, improper: bool, tol=1e-10):
    """E invariant, F -> F R^T, S -> R S R^T under a random (improper) rotation R."""
    for c in configs:
        R = random_rotation(rng, improper)
        e0, f0, s0 = efs(engine, pot, c)
        rc = Configuration(positions=c.positions @ R.T, types=c.types, cell=None if c.cell is None else c.cell @ R.T)
        e1, f1, s1 = efs(engine, pot, rc)
        assert abs(e1 - e0) < tol * max(1.0, abs(e0))
        assert np.max(np.abs(f1 - f0 @ R.T)) < tol * max(1.0, np.abs(f0).max())
        if c.cell is not None:
            assert np.max(np.abs(sym3(s1) - R @ sym3(s0) @ R.T)) < tol * max(1.0, np.abs(s0).max())


def assert_same_efs(engine, pot, ref, conf, perm=None):
    """E, F, S of `conf` equal `ref` = (E, F, S) to 1e-10 relative; forces permuted by perm."""
    e0, f0, s0 = ref
    e1, f1, s1 = efs(engine, pot, conf)
    assert abs(e1 - e0) < 1e-10 * max(1.0, abs(e0))
    assert np.max(np.abs(f1 - (f0 if perm is None else f0[perm]))) < 1e-10 * max(1.0, np.abs(f0).max())
    assert np.max(np.abs(s1 - s0)) < 1e-10 * max(1.0, np.abs(s0).max())


def check_translation_permutation_images(engine, pot, c: Configuration, rng):
    """E, F, S unchanged (1e-10) by a rigid translation, a permutation of atoms (forces
    permuted alike), moving atoms by lattice vectors, and a unimodular change of cell
    basis; then the same moves on a 2-atom cell smaller than the cutoff."""
    ref = efs(engine, pot, c)
    assert_same_efs(engine, pot, ref, Configuration(positions=c.positions + rng.standard_normal(3) * 7.3,
                                                    types=c.types, cell=c.cell))
    perm = rng.permutation(c.n_atoms)
    assert_same_efs(engine, pot, ref, Configuration(positions=c.positions[perm], types=c.types[perm],
                                                    cell=c.cell), perm)
    shifts = rng.integers(-2, 3, size=(c.n_atoms, 3))
    assert_same_efs(engine, pot, ref, Configuration(positions=c.positions + shifts @ c.cell, types=c.types,
                                                    cell=c.cell))
    U = np.array([[1, 1, 0], [0, 1, 0], [0, -1, 1]])  # det 1: the same lattice
    assert_same_efs(engine, pot, ref, Configuration(positions=c.positions, types=c.types, cell=U @ c.cell))
    small = small_cells()[3]
    assert_same_efs(engine, pot, efs(engine, pot, small),
                    Configuration(positions=small.positions + np.array([[1, -2, 0], [0, 0, 3]]) @ small.cell,
                                  types=small.types,
                                  cell=np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]]) @ small.cell))


def check_supercell_extensive(engine, pot, c: Configuration, reps=(2, 2, 2)):
    """The reps supercell of c has prod(reps) times its energy and virial and the same
    forces on every image of an atom (1e-10 relative, 1e-9 for the virial)."""
    shifts = np.array([[i, j, k] for i in range(reps[0]) for j in range(reps[1]) for k in range(reps[2])])
    n = len(shifts)
    big = Configuration(positions=(c.positions[None, :, :] + (shifts @ c.cell)[:, None, :]).reshape(-1, 3),
                        types=np.tile(c.types, n), cell=np.diag(reps) @ c.cell)
    e1, f1, s1 = efs(engine, pot, c)
    en, fn, sn = efs(engine, pot, big)
    assert abs(en - n * e1) < 1e-10 * max(1.0, abs(en))
    assert np.max(np.abs(fn - np.tile(f1, (n, 1)))) < 1e-10 * max(1.0, np.abs(f1).max())
    assert np.max(np.abs(sn - n * s1)) < 1e-9 * max(1.0, np.abs(sn).max())


def check_threads_and_subsets(engine, pot, data: DataSet):
    """Two threads give the loss and gradient of one (to rounding: 1e-12 relative), and
    the loss over all configurations is the sum over a partition of them (1e-10)."""
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
    half = np.arange(len(data))
    la, ga = engine.loss_grad(pot, ds, w, idx=half[::2])
    lb, gb = engine.loss_grad(pot, ds, w, idx=half[1::2][::-1])
    assert abs(la + lb - l1) < 1e-10 * l1
    assert np.max(np.abs(ga + gb - g1)) < 1e-10 * np.max(np.abs(g1))


def teacher_problem(engine, spec: str = "mtp level=6 species=2"):
    """(data, x_t): 8 generated Ag-Pd configurations labelled (energies, forces, stresses)
    by a potential of the form `spec` at parameters x_t (its defaults plus noise 0.05), so
    that a model of that form has a known zero-residual solution, x_t."""
    from dataclasses import replace

    from optbench.io import generate_agpd_split
    train_set, _ = generate_agpd_split(8, 1, seed=5)
    teacher = engine.potential_from_spec(spec)
    xt = teacher.default_params() + 0.05 * np.random.default_rng(1).standard_normal(teacher.n_params)
    teacher.set_params(xt)
    e, f, s = engine.predict(teacher, engine.dataset(train_set, teacher.cutoff))
    configs, start = [], 0
    for k, c in enumerate(train_set.configs):
        configs.append(replace(c, energy=float(e[k]), forces=f[start:start + c.n_atoms].copy(), stress=s[k].copy()))
        start += c.n_atoms
    return DataSet(configs, train_set.species), xt
