"""The ASE calculator of optbench.engine.calculator and mlipc_dataset_update_positions.

Contracts checked:

* mlipc_dataset_update_positions recomputes each stored pair from new positions and
  cells with the pair's build-time image: updating to the build's own geometry changes
  nothing, updating to a new one equals a data set built there (both bit for bit); bad
  input gives the documented status codes and leaves the data set unchanged.
* Physics through ASE: forces are minus the energy gradient, ASE's stress is the strain
  derivative of the energy over the volume (sign and Voigt order), by central
  differences; a molecule (pbc all False) works without images.
* The calculator equals the `optbench efs` path (Engine.predict on a data set built with
  the potential's cutoff) for MTP and ETN potential files.
* The skin: moves within the bound reuse the neighbour list (counted) and give what a
  fresh calculator gives; moves and cell changes beyond it rebuild; atoms crossing the
  cell boundary unwrapped, or jumping back by a lattice vector, stay right; a
  VelocityVerlet run is the same with the skin as with a search every step; without the
  update function in the library every call rebuilds, with the same results.
* Clear errors: an element outside the species, a species list of the wrong length,
  mixed boundary conditions, stress of a molecule.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.verlet import VelocityVerlet

from optbench.engine import capi
from optbench.engine.calculator import EngineCalculator
from optbench.io import DataSet
from optbench.io.generator import generate_agpd

SPECIES = ["Ag", "Pd"]
SPEC = "mtp level=8 species=2 min_dist=2.0 max_dist=5.0"
TIGHT = 1e-10  # same arithmetic on the same pairs: equal to rounding


def noisy(pot, seed=1, moment=0.001):
    """`pot` with the engine defaults plus seeded noise: radial + N(0, 0.02^2), species
    coefficients N(0, 1) eV, moment coefficients N(0, moment^2).  On a strained Ag-Pd fcc
    cell that gives about -1 eV/atom and forces of 0.7 eV/A mean, 2.4 eV/A largest
    (component), so every group matters and finite differences are well conditioned."""
    rng = np.random.default_rng(seed)
    x = pot.default_params()
    for name, group in pot.groups().items():
        n = group.stop - group.start
        if name == "species":
            x[group] = rng.standard_normal(n)
        elif name == "moment":
            x[group] = moment * rng.standard_normal(n)
        else:
            x[group] += 0.02 * rng.standard_normal(n)
    pot.set_params(x)
    return pot


@pytest.fixture(scope="module")
def mtp_file(engine, tmp_path_factory):
    """A level-8 MTP with noisy parameters, saved as an MLIP-2 .mtp file."""
    path = tmp_path_factory.mktemp("calc") / "l8.mtp"
    noisy(engine.potential_from_spec(SPEC)).save(path)
    return path


@pytest.fixture(scope="module")
def pot(engine, mtp_file):
    """That potential, read back through the engine (what the calculator loads too)."""
    return engine.load_potential(mtp_file)


def agpd_cell(seed=0, repeat=2, a=4.0, rattle=0.1) -> Atoms:
    """A repeat^3 fcc Ag-Pd cell (conventional cubes), 3/8 Pd at random, sheared by 2 %,
    atoms displaced by N(0, rattle^2) per component."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Ag", "fcc", a=a, cubic=True).repeat(repeat)
    atoms.numbers[rng.permutation(len(atoms))[: 3 * len(atoms) // 8]] = 46
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + 0.02 * np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]])),
                   scale_atoms=True)
    atoms.positions += rattle * rng.standard_normal(atoms.positions.shape)
    return atoms


def fresh(pot, atoms, **kw):
    """(energy, forces, stress or None) of `atoms` from a new calculator: one build."""
    atoms = atoms.copy()
    atoms.calc = EngineCalculator(pot, SPECIES, **kw)
    stress = atoms.get_stress() if atoms.pbc.all() else None
    return atoms.get_potential_energy(), atoms.get_forces(), stress


def assert_same(result, atoms, tol=TIGHT):
    """`atoms`' energy (eV, relative), forces (eV/A) and stress (eV/A^3) equal `result`."""
    e, f, s = result
    assert abs(atoms.get_potential_energy() - e) <= tol * max(1.0, abs(e))
    np.testing.assert_allclose(atoms.get_forces(), f, rtol=0, atol=tol)
    if s is not None:
        np.testing.assert_allclose(atoms.get_stress(), s, rtol=0, atol=tol)


# ---------------------------------------------------------------- the C function

def test_update_positions_contract(engine, pot):
    """Updating to the build geometry reproduces its predictions bit for bit; to new
    positions and cell (within the skin) it equals a data set built there, bit for bit;
    NaN position / cell -> EngineNumericError, NULL arguments -> EngineArgumentError,
    overlapping atoms -> EngineDataError, and the data set is unchanged after each."""
    atoms = agpd_cell(3)
    types = (atoms.numbers == 46).astype(np.int32)
    cell, pos = np.array(atoms.cell[:]), atoms.get_positions()
    ds = engine.dataset_from_arrays([len(atoms)], cell, [1], pos, types, 5.3)
    base = engine.predict(pot, ds)
    cell2 = cell @ (np.eye(3) + 0.01 * np.diag([1.0, -0.5, 0.3]))
    pos2 = pos @ np.linalg.solve(cell, cell2) + 0.05 * np.random.default_rng(0).standard_normal(pos.shape)
    ds.update_positions(cell2, pos2)
    moved = engine.predict(pot, ds)
    rebuilt = engine.predict(pot, engine.dataset_from_arrays([len(atoms)], cell2, [1], pos2, types, 5.3))
    for a, b in zip(moved, rebuilt, strict=True):
        np.testing.assert_array_equal(a, b)
    ds.update_positions(cell, pos)
    for a, b in zip(engine.predict(pot, ds), base, strict=True):
        np.testing.assert_array_equal(a, b)

    bad = pos2.copy()
    bad[5, 1] = np.nan
    with pytest.raises(capi.EngineNumericError, match="configuration 0, atom 5: non-finite position"):
        ds.update_positions(cell2, bad)
    with pytest.raises(capi.EngineNumericError, match="non-finite cell"):
        ds.update_positions(np.full((3, 3), np.inf), pos2)
    bad = pos2.copy()
    bad[7] = bad[2]
    with pytest.raises(capi.EngineDataError, match="atom 2 and atom 7 .*overlap"):
        ds.update_positions(cell2, bad)
    with pytest.raises(capi.EngineArgumentError, match="cells must not be NULL"):
        ds.update_positions(None, pos2)
    fn = engine.lib.mlipc_dataset_update_positions
    c = np.ascontiguousarray(cell2).ctypes.data_as(ctypes.POINTER(ctypes.c_double))
    assert fn(None, c, np.ascontiguousarray(pos2).ctypes.data_as(ctypes.POINTER(ctypes.c_double))) == 1
    assert fn(ds.handle, c, None) == 1
    for a, b in zip(engine.predict(pot, ds), base, strict=True):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- physics through ASE

def test_forces_are_minus_the_energy_gradient(mtp_file):
    """F = -dE/dr by central differences (h = 1e-4 A, loaded from the .mtp path): error
    O(h^2 F''') + rounding 1e-14 E / h, both below 1e-6 eV/A; the forces are O(1) eV/A."""
    atoms = agpd_cell(1)
    atoms.calc = EngineCalculator(mtp_file, SPECIES)
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 0.5
    h, x0 = 1e-4, atoms.get_positions()
    fd = np.empty_like(forces)
    for i in range(len(atoms)):
        for d in range(3):
            e = []
            for sign in (1, -1):
                x = x0.copy()
                x[i, d] += sign * h
                atoms.set_positions(x)
                e.append(atoms.get_potential_energy())
            fd[i, d] = -(e[0] - e[1]) / (2 * h)
    np.testing.assert_allclose(forces, fd, rtol=0, atol=1e-6)
    assert atoms.calc.n_builds == 1  # every displaced geometry moved the stored pairs


def test_stress_is_the_strain_derivative_over_the_volume(pot):
    """ASE's stress sigma_ab = (1/V) dE/d eps_ab for a symmetric strain eps applied to
    cell and positions (x -> x (1 + eps); off-diagonal eps_ab = eps_ba = t/2), central
    differences with t = 1e-5: the sign (positive under tension) and Voigt order
    (xx yy zz yz xz xy) of ASE, to 1e-7 eV/A^3 against stresses of 0.1 eV/A^3."""
    atoms = agpd_cell(2)
    atoms.calc = EngineCalculator(pot, SPECIES)
    stress = atoms.get_stress(voigt=True)
    assert np.abs(stress).max() > 0.05
    cell0, volume, t = np.array(atoms.cell[:]), atoms.get_volume(), 1e-5
    fd = np.empty(6)
    for k, (a, b) in enumerate([(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]):
        e = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[a, b] += sign * t / 2
            eps[b, a] += sign * t / 2
            strained = atoms.copy()
            strained.calc = atoms.calc
            strained.set_cell(cell0 @ (np.eye(3) + eps), scale_atoms=True)
            e.append(strained.get_potential_energy())
        fd[k] = (e[0] - e[1]) / (2 * t) / volume
    np.testing.assert_allclose(stress, fd, rtol=0, atol=1e-7)


def test_molecule_without_cell(engine, pot):
    """pbc all False: plain distances (periodic flag 0), equal to Engine.predict of the
    same cluster, forces summing to zero (no images to push against); stress is not
    defined and says so."""
    rng = np.random.default_rng(4)
    pos = np.array([[0, 0, 0], [2.7, 0, 0], [0, 2.8, 0.3], [1.4, 1.3, 2.4], [2.6, 2.5, 1.1]], float)
    atoms = Atoms("AgPdPdAgPd", positions=pos + 0.05 * rng.standard_normal(pos.shape), pbc=False)
    atoms.calc = EngineCalculator(pot, SPECIES)
    ds = engine.dataset_from_arrays([5], np.zeros(9), [0], atoms.positions, [0, 1, 1, 0, 1], pot.cutoff)
    e, f, _ = engine.predict(pot, ds)
    assert abs(atoms.get_potential_energy() - e[0]) < TIGHT
    np.testing.assert_allclose(atoms.get_forces(), f, rtol=0, atol=TIGHT)
    np.testing.assert_allclose(atoms.get_forces().sum(axis=0), 0.0, atol=1e-10)
    with pytest.raises(PropertyNotImplementedError, match="non-periodic"):
        atoms.get_stress()


# ---------------------------------------------------------------- the `optbench efs` path

def _efs_agreement(engine, pot, data: DataSet, calc: EngineCalculator):
    """Assert the calculator's E, F, stress on each configuration of `data` equal
    Engine.predict's (PlusStress converted); returns predict's energies and forces."""
    e, f, s = engine.predict(pot, engine.dataset(data, pot.cutoff))
    start = 0
    for k, c in enumerate(data.configs):
        atoms = Atoms(numbers=np.where(c.types == 0, 47, 46), positions=c.positions, cell=c.cell, pbc=True)
        atoms.calc = calc
        n = c.n_atoms
        assert abs(atoms.get_potential_energy() - e[k]) <= TIGHT * max(1.0, abs(e[k]))
        np.testing.assert_allclose(atoms.get_forces(), f[start:start + n], rtol=0, atol=TIGHT)
        # ASE's stress = -PlusStress / V (optbench.io.generator stores -sigma V).
        np.testing.assert_allclose(atoms.get_stress(), -s[k] / atoms.get_volume(), rtol=0, atol=TIGHT)
        start += n
    return e, f


def test_mtp_agrees_with_engine_predict(engine, pot, mtp_file):
    """Generated Ag-Pd configurations (16-48 atoms, strained): energies, forces and
    -PlusStress/V through the calculator (loaded from the file) equal Engine.predict on
    a data set built with the potential's cutoff, as `optbench efs` does, to 1e-10."""
    data = generate_agpd(4, seed=11)
    calc = EngineCalculator(mtp_file, SPECIES)
    _, f = _efs_agreement(engine, pot, data, calc)
    assert np.abs(f).max() > 0.5 and calc.n_builds == 4  # a new atom count or cell each time


def test_etn_agrees_with_engine_predict(engine, tmp_path):
    """The same agreement for an ETN (spec "etn species=2 shape=1;6;3 ranks=1;1",
    noisy defaults) read from its .json file."""
    path = tmp_path / "etn.json"
    noisy(engine.potential_from_spec("etn species=2 shape=1;6;3 ranks=1;1"), seed=5, moment=0.0).save(path)
    etn = engine.load_potential(path)
    _, f = _efs_agreement(engine, etn, generate_agpd(3, seed=12), EngineCalculator(path, SPECIES))
    assert np.abs(f).max() > 1e-3


# ---------------------------------------------------------------- the skin

def test_small_moves_reuse_the_list(pot):
    """MD-like moves, every atom less than skin/2 from the build: one neighbour search,
    then updates, each equal to a fresh calculator's results to 1e-10."""
    atoms = agpd_cell(5)
    atoms.calc = EngineCalculator(pot, SPECIES, skin=0.3)
    rng = np.random.default_rng(6)
    x0 = atoms.get_positions()
    atoms.get_potential_energy()  # the build, at x0
    for _ in range(6):
        step_dir = rng.standard_normal(x0.shape)
        step_dir *= 0.14 / np.linalg.norm(step_dir, axis=1).max()
        atoms.set_positions(x0 + step_dir)
        assert_same(fresh(pot, atoms), atoms)
    assert (atoms.calc.n_builds, atoms.calc.n_updates) == (1, 6)


def test_moves_and_cell_changes_beyond_the_bound_rebuild(pot):
    """Rebuilds exactly where 2 max|d| + (1 - sigma_min(F)) (rc + skin) > skin: an atom
    moved 0.16 A (> skin/2); a cell shrunk 6 % with its atoms (0.06 * 5.3 > 0.3), while
    2 % (0.106) and any expansion with the atoms are reused; a cell changed without
    moving the atoms (far atoms then count as moved). Results equal a fresh calculator's."""
    atoms = agpd_cell(7)
    calc = atoms.calc = EngineCalculator(pot, SPECIES, skin=0.3)
    atoms.get_potential_energy()
    cell0, x0 = np.array(atoms.cell[:]), atoms.get_positions()

    def check(builds, updates):
        assert_same(fresh(pot, atoms), atoms)
        assert (calc.n_builds, calc.n_updates) == (builds, updates)

    x = x0.copy()
    x[3] += [0.16, 0, 0]
    atoms.set_positions(x)
    check(2, 0)
    atoms.set_cell(cell0 * 0.98, scale_atoms=True)
    check(2, 1)
    atoms.set_cell(cell0 * 0.94, scale_atoms=True)
    check(3, 1)
    atoms.set_cell(cell0 * 0.94 * 1.08, scale_atoms=True)
    check(3, 2)
    atoms.set_cell(cell0 @ (np.eye(3) + 0.04 * np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]])), scale_atoms=False)
    check(4, 2)


def test_atom_crossing_the_boundary(pot):
    """An atom walked across a cell face in small unwrapped steps keeps its images (the
    stored shifts refer to the unwrapped build positions): results equal a fresh
    calculator on the unwrapped and on the wrapped positions.  atoms.wrap() afterwards
    is a jump by a lattice vector: one rebuild, same results."""
    atoms = agpd_cell(8, rattle=0.03)
    calc = atoms.calc = EngineCalculator(pot, SPECIES, skin=0.4)
    frac_x = atoms.get_scaled_positions(wrap=False)[:, 0]
    i = int(np.argmin(np.where(frac_x >= 0, frac_x, np.inf)))  # inside, nearest the face x = 0
    assert 0 <= frac_x[i] < 0.18 / np.linalg.norm(atoms.cell[0])  # three steps of 0.06 A take it out
    atoms.get_potential_energy()
    direction = -np.array(atoms.cell[0]) / np.linalg.norm(atoms.cell[0])
    for _ in range(3):
        x = atoms.get_positions()
        x[i] += 0.06 * direction
        atoms.set_positions(x)
        assert_same(fresh(pot, atoms), atoms)
    assert atoms.get_scaled_positions(wrap=False)[i, 0] < 0  # crossed, not wrapped
    wrapped = atoms.copy()
    wrapped.wrap()
    assert_same(fresh(pot, wrapped), atoms)
    assert (calc.n_builds, calc.n_updates) == (1, 3)
    atoms.wrap()
    atoms.get_potential_energy()
    assert calc.n_builds == 2
    assert_same(fresh(pot, wrapped), atoms)


def test_velocity_verlet_with_and_without_skin(pot):
    """16 VelocityVerlet steps (2 fs, 32 atoms started at 600 K): the trajectory energies
    with skin 0.3 (few searches) equal those with skin 0 (a search at every step) to
    1e-10 eV; the skin run searched less often than every step."""
    runs = {}
    for skin in (0.3, 0.0):
        atoms = agpd_cell(9)
        # Maxwell-Boltzmann momenta at 600 K: p = sqrt(m k T) N(0, 1) per component.
        masses = atoms.get_masses()[:, None]
        atoms.set_momenta(np.sqrt(masses * units.kB * 600) * np.random.default_rng(10).standard_normal((len(atoms), 3)))
        atoms.calc = EngineCalculator(pot, SPECIES, skin=skin)
        energies = [atoms.get_potential_energy()]
        dyn = VelocityVerlet(atoms, timestep=2 * units.fs)
        dyn.attach(lambda a=atoms, out=energies: out.append(a.get_potential_energy()), interval=1)
        dyn.run(16)
        runs[skin] = (np.array(energies), atoms.calc.n_builds, atoms.calc.n_updates)
    np.testing.assert_allclose(runs[0.3][0], runs[0.0][0], rtol=0, atol=TIGHT)
    assert runs[0.0][1] == 17 and runs[0.0][2] == 0
    assert runs[0.3][1] < 6 and runs[0.3][1] + runs[0.3][2] == 17


def test_library_without_the_update_function(mtp_file, pot):
    """An mlipc.h library without mlipc_dataset_update_positions (simulated: the binding's
    record of missing optional symbols gets it) still gives the same results, by
    searching the neighbours at every call."""
    old = capi.Engine()
    old._missing.add("mlipc_dataset_update_positions")
    with pytest.raises(capi.EngineUnsupportedError):
        old.dataset_from_arrays([1], np.eye(3) * 3, [1], np.zeros(3), [0], 5.0).update_positions(
            np.eye(3) * 3, np.zeros(3))
    atoms = agpd_cell(12)
    atoms.calc = EngineCalculator(mtp_file, SPECIES, engine=old)
    x0 = atoms.get_positions()
    for step in range(3):
        atoms.set_positions(x0 + 0.02 * step)
        assert_same(fresh(pot, atoms), atoms)
    assert (atoms.calc.n_builds, atoms.calc.n_updates) == (3, 0)


# ---------------------------------------------------------------- errors

def test_errors_are_clear(engine, pot):
    """An element outside `species` names it and the list; a species list of the wrong
    length names both counts; mixed pbc is refused (the engine has no slab geometry);
    a Potential with a different engine, a negative skin, a non-element are refused."""
    calc = EngineCalculator(pot, SPECIES)
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = calc
    with pytest.raises(ValueError, match=r"element Cu is not among the potential's species \['Ag', 'Pd'\]"):
        atoms.get_potential_energy()
    with pytest.raises(ValueError, match=r"the potential has 2 species but species lists 1: \['Ag'\]"):
        EngineCalculator(pot, ["Ag"])
    slab = agpd_cell(0)
    slab.pbc = [True, True, False]
    slab.calc = calc
    with pytest.raises(ValueError, match="mixed boundary conditions"):
        slab.get_potential_energy()
    with pytest.raises(ValueError, match="skin"):
        EngineCalculator(pot, SPECIES, skin=-0.1)
    with pytest.raises(ValueError, match="not an element symbol"):
        EngineCalculator(pot, ["Ag", "Qq"])
    with pytest.raises(ValueError, match="another engine"):
        EngineCalculator(pot, SPECIES, engine=capi.Engine())
