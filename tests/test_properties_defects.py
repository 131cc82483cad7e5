"""Defect energies (optbench/properties/defects.py) with ASE's EMT.

fcc checks use Cu and Ag (EMT's own elements) at EMT's equilibrium lattice constant
(Cu 3.5898 A, Ag 4.0636 A, found here by minimising E(a)). For the bcc stacking-fault
line EMT's Cu in the bcc lattice (a = 2.8554 A, its E(a) minimum) stands in for a bcc
metal: EMT has no bcc element, and bcc Cu is unstable against the tetragonal (Bain)
shear, which the GSFE cell never applies (its x-y cell is fixed). The checks on it are
the ones that hold for any bcc crystal and potential: the geometry of the faulted cell,
gamma(0) = gamma(1) = 0, gamma(f) = gamma(1-f), relaxation lowering gamma, and that
relaxing the cell along the fault normal makes gamma independent of the cell height.

Measured (EMT): E_vac Cu 1.224 eV (unrelaxed 1.238), Ag 0.851 eV (0.857); gamma Cu
(111) 1.044, (100) 1.134, (110) 1.229 J/m^2; bcc-Cu usf 0.349 J/m^2 relaxed (0.488
unrelaxed) at f = 1/2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.emt import EMT
from scipy.optimize import minimize_scalar

from optbench.properties import defects
from optbench.properties.base import OK, UNSTABLE, PropertyError, PropertyResult
from optbench.properties.structures import build_structure


def _equilibrium(name: str):
    """The structure at EMT's E(a) minimum (cubic symmetry: the stress is then zero)."""
    atoms = build_structure(name)
    a0 = atoms.cell[0, 0]

    def energy(a):
        x = atoms.copy()
        x.set_cell(np.eye(3) * a, scale_atoms=True)
        x.calc = EMT()
        return x.get_potential_energy()

    a = minimize_scalar(energy, bounds=(0.9 * a0, 1.1 * a0), method="bounded", options={"xatol": 1e-6}).x
    atoms.set_cell(np.eye(3) * a, scale_atoms=True)
    return atoms


@pytest.fixture(scope="module")
def cu():
    return _equilibrium("Cu-fcc")


@pytest.fixture(scope="module")
def ag():
    return _equilibrium("Ag-fcc")


@pytest.fixture(scope="module")
def cu_bcc():
    return _equilibrium("Cu-bcc")


@pytest.fixture(scope="module")
def gsfe_relaxed(cu_bcc):
    return defects.stacking_fault_bcc(EMT(), cu_bcc, n_points=11, layers=8)


def _roundtrip(r: PropertyResult) -> PropertyResult:
    return PropertyResult.from_dict(json.loads(json.dumps(r.to_dict())))


# ---------------------------------------------------------------- vacancy

def test_vacancy_formation_energy_of_fcc_metals_is_positive_and_sane(cu, ag):
    """Removing an atom costs energy: E_vac > 0, in the range of metals' (EMT: Cu 1.224,
    Ag 0.851 eV measured; windows +-0.15 eV around them), lower for the less cohesive Ag;
    the relaxation around the vacancy lowers it, by little in a close-packed metal (< 0.1
    eV); the 108-atom cell is converged against 256 atoms to 0.01 eV (EMT is short-ranged)."""
    r_cu = defects.vacancy_formation(EMT(), cu)
    r_ag = defects.vacancy_formation(EMT(), ag)
    for r, lo, hi in ((r_cu, 1.1, 1.35), (r_ag, 0.75, 0.95)):
        assert r.name == "vacancy" and r.status == OK, r.message
        assert r.units == {"E_vac": "eV"}
        assert lo < r.values["E_vac"] < hi
        assert r.data["N"] == 108 and r.data["converged"]
        assert 0 < r.data["E_vac_unrelaxed"] - r.values["E_vac"] < 0.1
    assert r_ag.values["E_vac"] < r_cu.values["E_vac"]  # the softer, less cohesive metal
    big = defects.vacancy_formation(EMT(), cu, supercell=(4, 4, 4))
    assert big.data["N"] == 256
    assert abs(big.values["E_vac"] - r_cu.values["E_vac"]) < 0.01


def test_vacancy_without_relaxation_and_atoms_untouched(cu):
    """relax=False gives the unrelaxed energy and takes no step; the input structure is
    left as it was (positions, cell, no calculator attached)."""
    before = cu.copy()
    r = defects.vacancy_formation(EMT(), cu, relax=False, supercell=(2, 2, 2))
    assert r.status == OK and r.data["steps"] == 0 and r.data["N"] == 32
    assert r.values["E_vac"] == pytest.approx(r.data["E_vac_unrelaxed"], abs=1e-12)
    assert cu.calc is None and np.array_equal(cu.positions, before.positions)
    assert np.array_equal(cu.cell.array, before.cell.array)


def test_unconverged_relaxation_is_unstable_with_the_reason(cu_bcc):
    """A relaxation stopped before fmax (bcc-Cu's vacancy needs ~13 L-BFGS steps) is
    reported UNSTABLE with the reason, values still given."""
    r = defects.vacancy_formation(EMT(), cu_bcc, max_steps=2)
    assert r.status == UNSTABLE and "did not reach fmax" in r.message
    assert np.isfinite(r.values["E_vac"]) and not r.data["converged"]


# ---------------------------------------------------------------- surfaces

def test_fcc_surface_energies_order_close_packed_lowest(cu, ag):
    """All surface energies are positive and order as broken bonds per area do in fcc:
    (111) < (100) < (110); relaxation lowers, never raises, each; Cu's in 1.0-1.3 J/m^2
    (EMT, measured 1.044, 1.134, 1.229)."""
    found = {}
    for atoms in (cu, ag):
        r = defects.surface_energies(EMT(), atoms, millers=[(1, 1, 1), (1, 0, 0), (1, 1, 0)])
        found[atoms.info["structure"]] = r.values
        assert r.name == "surface" and r.status == OK, r.message
        g = r.values
        assert set(g) == {"gamma_111", "gamma_100", "gamma_110"}
        assert all(v > 0 for v in g.values())
        assert g["gamma_111"] < g["gamma_100"] < g["gamma_110"]
        assert r.units["gamma_110"] == "J/m^2" and set(r.data) == {"111", "100", "110"}
        for d in r.data.values():
            assert d["converged"] and d["gamma_eV_A2"] * 16.0217662 <= d["gamma_unrelaxed"] + 1e-9
    assert 1.0 < found["Cu-fcc"]["gamma_111"] < found["Cu-fcc"]["gamma_110"] < 1.3


@pytest.mark.parametrize("miller", [(1, 1, 0), (1, 1, 1)])
def test_surface_energy_converges_with_slab_thickness(cu, miller):
    """gamma changes by < 2 mJ/m^2 from n to n+2 atomic planes for n = 7 and 9 (the slab
    is thick enough that its two surfaces do not interact; measured changes < 0.2 mJ/m^2)."""
    vals = []
    for n in (7, 9, 11):
        r = defects.surface_energy(EMT(), cu, miller=miller, layers=n)
        assert r.status == OK and r.data["planes"] >= n
        vals.append(r.values[defects._miller_key(miller)])
    assert abs(vals[1] - vals[0]) < 2e-3 and abs(vals[2] - vals[1]) < 2e-3


# ---------------------------------------------------------------- stacking faults

def test_gsfe_cell_is_the_perfect_bcc_crystal(cu_bcc):
    """The rotated cell holds 3 atoms per (110) plane, every atom with 8 nearest
    neighbours at a sqrt(3)/2, and the energy per atom of the conventional cell (to 1e-9
    eV): it is the same crystal."""
    a = cu_bcc.cell[0, 0]
    cell = defects.gsfe_cell("Cu", a, 6)
    assert len(cell) == 18
    assert np.diag(cell.cell.array) == pytest.approx([a * 3 ** 0.5 / 2, a * 6 ** 0.5, 6 * a / 2 ** 0.5])
    from ase.neighborlist import neighbor_list
    i, d = neighbor_list("id", cell, 0.9 * a)
    assert np.bincount(i).tolist() == [8] * 18 and np.allclose(d, a * 3 ** 0.5 / 2)
    cell.calc, bulk = EMT(), cu_bcc.copy()
    bulk.calc = EMT()
    assert cell.get_potential_energy() / 18 == pytest.approx(bulk.get_potential_energy() / 2, abs=1e-9)


def test_gsfe_unrelaxed_is_periodic_and_symmetric(cu_bcc):
    """Rigid shifts: gamma(0) = gamma(1) = 0 to 1e-6 J/m^2 (a full b restores the
    crystal), gamma(f) = gamma(1-f) to 1e-6 (the two-fold [110] axis maps a shift f b to
    -f b), the maximum (usf) at f = 1/2 and positive."""
    r = defects.stacking_fault_bcc(EMT(), cu_bcc, n_points=11, layers=6, relax=False)
    assert r.name == "gsfe" and r.status == OK
    g = np.array(r.data["energies"])
    assert abs(g[0]) < 1e-6 and abs(g[-1]) < 1e-6
    assert np.abs(g - g[::-1]).max() < 1e-6 and r.data["asymmetry"] < 1e-6
    assert r.values["usf_position"] == pytest.approx(0.5)
    assert r.values["usf"] == pytest.approx(g.max()) and r.values["usf"] > 0.1
    assert np.all(g[1:-1] > 0)


def test_gsfe_relaxed_symmetric_and_lower(gsfe_relaxed, cu_bcc):
    """With relaxation along the fault normal: gamma(1) = 0 to 1e-6 (no force to relax in
    the perfect crystal), symmetric to 1e-3 J/m^2 (the symmetry is exact, the
    relaxations stop at fmax), relaxed <= rigid at every f, usf at f = 1/2, and the
    fault opens (positive dilatation) where gamma is largest."""
    r = gsfe_relaxed
    assert r.status == OK, r.message
    g, g0 = np.array(r.data["energies"]), np.array(r.data["energies_unrelaxed"])
    assert abs(g[-1]) < 1e-6 and r.data["steps"][0] == 0 and r.data["steps"][-1] == 0
    assert r.data["asymmetry"] < 1e-3
    assert np.all(g <= g0 + 1e-9) and r.values["usf"] < r.data["energies_unrelaxed"][5]
    assert r.values["usf_position"] == pytest.approx(0.5)
    assert r.data["dilatation_A"][5] > 0.05
    assert 0.3 < r.values["usf"] < 0.4  # 0.349 J/m^2 measured


def test_gsfe_with_cell_relaxation_does_not_depend_on_cell_height(gsfe_relaxed, cu_bcc):
    """Relaxing the cell length along [110] lets the fault dilate as in a slab: usf with
    4 and 8 planes agree to 2 mJ/m^2; at fixed cell height the fault squeezes the crystal
    and usf is higher, the more so the shorter the cell (1/layers)."""
    short = defects.stacking_fault_bcc(EMT(), cu_bcc, n_points=3, layers=4)
    assert abs(short.values["usf"] - gsfe_relaxed.values["usf"]) < 2e-3
    fixed4 = defects.stacking_fault_bcc(EMT(), cu_bcc, n_points=3, layers=4, relax_cell=False)
    fixed8 = defects.stacking_fault_bcc(EMT(), cu_bcc, n_points=3, layers=8, relax_cell=False)
    assert fixed4.values["usf"] > fixed8.values["usf"] > gsfe_relaxed.values["usf"]
    assert np.all(np.asarray(fixed4.data["dilatation_A"]) == 0.0)


def test_gsfe_refuses_fcc_with_the_reason(cu):
    """The fcc {111}<112> line is not implemented: PropertyError saying so."""
    with pytest.raises(PropertyError, match=r"bcc.*fcc \{111\}<112> line is not implemented"):
        defects.stacking_fault_bcc(EMT(), cu)


# ---------------------------------------------------------------- results and inputs

def test_results_roundtrip_through_json(cu, gsfe_relaxed):
    """to_dict -> json -> from_dict keeps name, values, units and data (arrays become lists)."""
    results = [defects.vacancy_formation(EMT(), cu, supercell=(2, 2, 2)),
               defects.surface_energies(EMT(), cu, layers=5), gsfe_relaxed]
    for r in results:
        back = _roundtrip(r)
        assert back.name == r.name and back.status == r.status and back.units == r.units
        assert back.values == pytest.approx(r.values)
        assert json.loads(json.dumps(back.data)) == json.loads(json.dumps(r.to_dict()["data"]))
    assert _roundtrip(results[2]).data["fractions"][-1] == 1.0


@pytest.mark.parametrize("call, match", [
    (lambda c, a: defects.vacancy_formation(c, a, supercell=(0, 2, 2)), "supercell"),
    (lambda c, a: defects.vacancy_formation(c, a, supercell=3), "supercell"),
    (lambda c, a: defects.vacancy_formation(c, a, fmax=-0.1), "fmax"),
    (lambda c, a: defects.vacancy_formation(c, build_structure("Ag3Pd-L12")), "one-element"),
    (lambda c, a: defects.vacancy_formation(c, "Cu"), "ase.Atoms"),
    (lambda c, a: defects.surface_energy(c, a, miller=(0, 0, 0)), "miller"),
    (lambda c, a: defects.surface_energy(c, a, miller=(2, 0, 0)), "lowest terms"),
    (lambda c, a: defects.surface_energy(c, a, miller=(1, 0)), "miller"),
    (lambda c, a: defects.surface_energy(c, a, layers=1), "layers"),
    (lambda c, a: defects.surface_energy(c, a, vacuum=1.0), "vacuum"),
    (lambda c, a: defects.surface_energies(c, a, millers=[(1, 0, 0), (1, 0, 0)]), "distinct"),
    (lambda c, a: defects.surface_energy(c, build_structure("Cu-fcc").repeat((2, 1, 1))), "conventional cubic"),
    (lambda c, a: defects.stacking_fault_bcc(c, build_structure("Cu-bcc"), layers=7), "even"),
    (lambda c, a: defects.stacking_fault_bcc(c, build_structure("Cu-bcc"), n_points=2), "n_points"),
    (lambda c, a: defects.stacking_fault_bcc(c, build_structure("AgPd-B2")), "one-element bcc"),
])
def test_bad_inputs_raise_property_error(cu, call, match):
    """Settings out of range, wrong structures and non-Atoms inputs raise PropertyError
    naming the setting or the reason, before any calculation."""
    with pytest.raises(PropertyError, match=match):
        call(EMT(), cu)
