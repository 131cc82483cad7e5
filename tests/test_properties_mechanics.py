"""Mechanical properties (optbench.properties.eos, .elastic, .relax) on ASE's EMT potential,
checked against independent computations written out here.

- Bulk modulus and lattice constant: the EOS (a Birch-Murnaghan fit over +-5 % volume)
  against a quartic polynomial fitted with numpy to E(V) within +-2 % of the minimum,
  B = V d2E/dV2 there: B to 1 %, a to 1e-3 relative.
- C11 - C12 and C44 (stress-strain central differences) against energy-strain
  differences of volume-conserving strains (derivation in `_energy_elastic`): 1 %.
- B from the elastic constants, (C11 + 2 C12)/3, against the EOS's: 2 %.
- Symmetry detection: fcc Ag gives C11/C12/C44 and a cubic 6x6; L1_0 AgPd (tetragonal,
  c/a != 1 under EMT) gives all 21 Cij with C11 != C33.
- Results survive to_dict -> json -> from_dict; bad settings raise PropertyError naming
  the setting; a potential far from the structure gives UNSTABLE, not an exception.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from optbench.properties.base import (
    EV_PER_A3_TO_GPA,
    OK,
    UNSTABLE,
    PropertyError,
    PropertyResult,
)
from optbench.properties.elastic import elastic_constants, voigt_strain_matrix
from optbench.properties.eos import equation_of_state, equilibrium_structure
from optbench.properties.relax import relax_cell, relax_positions, runaway_reason
from optbench.properties.structures import build_structure

METALS = ["Cu", "Ag"]


def _energy_per_atom(element: str, a: float, deformation=None) -> float:
    """EMT energy per atom (eV) of the conventional fcc cell of lattice constant a (A),
    the cell optionally deformed by cell @ deformation."""
    atoms = bulk(element, "fcc", a=a, cubic=True)
    if deformation is not None:
        atoms.set_cell(atoms.cell[:] @ deformation, scale_atoms=True)
    atoms.calc = EMT()
    return atoms.get_potential_energy() / len(atoms)


def _polynomial_eos(element: str) -> tuple[float, float]:
    """(a in A, B in GPa) by hand: a coarse scan of a brackets the minimum, a parabola
    through the three lowest points locates it, then a numpy quartic in V through 13
    energies within +-2 % of that volume gives V0 (dE/dV = 0) and B = V0 E''(V0)."""
    a_grid = np.linspace(3.3, 4.4, 45)
    e_grid = np.array([_energy_per_atom(element, a) for a in a_grid])
    i = int(np.argmin(e_grid))
    assert 0 < i < len(a_grid) - 1
    p = np.polyfit(a_grid[i - 1:i + 2], e_grid[i - 1:i + 2], 2)
    v_guess = (-p[1] / (2 * p[0])) ** 3 / 4
    v = v_guess * np.linspace(0.98, 1.02, 13)
    e = [_energy_per_atom(element, (4 * x) ** (1 / 3)) for x in v]
    quartic = np.poly1d(np.polyfit(v, e, 4))
    roots = [r.real for r in quartic.deriv().roots if abs(r.imag) < 1e-12 and v[0] < r.real < v[-1]]
    assert len(roots) == 1
    v0 = roots[0]
    return (4 * v0) ** (1 / 3), v0 * quartic.deriv(2)(v0) * EV_PER_A3_TO_GPA


def _energy_elastic(element: str, a: float) -> tuple[float, float]:
    """(C11 - C12, C44) in GPa from energies alone, at lattice constant a.

    The energy density of a strained crystal at zero stress is
    dE/V = 1/2 sum_ij C_ij eta_i eta_j + O(eta^3) (Lagrangian strain eta, Voigt,
    engineering shears). Two volume-conserving strains (F = 1 + eps, det F = 1, so the
    residual pressure does no work):
      orthorhombic eps = diag(d, -d, d^2/(1-d^2)):  dE/V = (C11 - C12) d^2 + O(d^4),
      monoclinic  eps_xy = eps_yx = d/2, eps_zz = d^2/(4-d^2):  dE/V = 1/2 C44 d^2 + O(d^4)
    (both even in d: d -> -d is a symmetry of the cubic crystal, swapping x and y resp.
    mirroring x). k(d) = dE/(V d^2) at d and 2d, extrapolated as (4 k(d) - k(2d))/3,
    removes the d^4 term. fcc is a Bravais lattice, so no internal relaxation."""
    e0 = _energy_per_atom(element, a)
    v_atom = a ** 3 / 4

    def k(d, kind):
        eps = np.diag([d, -d, d * d / (1 - d * d)]) if kind == "ortho" else \
            np.array([[0, d / 2, 0], [d / 2, 0, 0], [0, 0, d * d / (4 - d * d)]])
        assert abs(np.linalg.det(np.eye(3) + eps) - 1) < 1e-12
        return (_energy_per_atom(element, a, np.eye(3) + eps) - e0) / (v_atom * d * d) * EV_PER_A3_TO_GPA

    d = 0.01
    c11_c12 = (4 * k(d, "ortho") - k(2 * d, "ortho")) / 3
    c44 = 2 * (4 * k(d, "mono") - k(2 * d, "mono")) / 3
    return c11_c12, c44


@pytest.fixture(scope="module")
def by_hand():
    """The independent EOS and energy-strain numbers of Cu and Ag."""
    out = {}
    for el in METALS:
        a, b = _polynomial_eos(el)
        out[el] = {"a": a, "B": b, **dict(zip(("C11-C12", "C44"), _energy_elastic(el, a)))}
    return out


@pytest.fixture(scope="module")
def eos_results():
    return {el: equation_of_state(EMT(), build_structure(f"{el}-fcc")) for el in METALS}


@pytest.fixture(scope="module")
def elastic_results():
    return {el: elastic_constants(EMT(), build_structure(f"{el}-fcc")) for el in METALS}


@pytest.mark.parametrize("element", METALS)
def test_eos_matches_polynomial_fit(element, eos_results, by_hand):
    """EOS bulk modulus within 1 % and lattice constant within 1e-3 (relative) of the
    numpy quartic fit; V0 = a^3/4 per atom; the fitted curve and data are complete."""
    res, ref = eos_results[element], by_hand[element]
    assert res.status == OK, res.message
    assert res.values["B"] == pytest.approx(ref["B"], rel=0.01)
    assert res.values["a"] == pytest.approx(ref["a"], rel=1e-3)
    assert res.values["V0"] == pytest.approx(res.values["a"] ** 3 / 4, rel=1e-9)
    assert 3 < res.values["Bp"] < 8
    assert res.units == {"a": "A", "V0": "A^3/atom", "E0": "eV/atom", "B": "GPa", "Bp": ""}
    assert len(res.data["volumes"]) == len(res.data["energies"]) == 9
    assert len(res.data["fit_volumes"]) == len(res.data["fit_energies"]) == 50
    assert min(res.data["energies"]) >= res.values["E0"] - 1e-6


@pytest.mark.parametrize("element", METALS)
def test_elastic_matches_energy_strain(element, elastic_results, by_hand):
    """Stress-strain C11 - C12 and C44 within 1 % of the energy-strain values."""
    res, ref = elastic_results[element], by_hand[element]
    assert res.status == OK, res.message
    assert res.values["C11"] - res.values["C12"] == pytest.approx(ref["C11-C12"], rel=0.01)
    assert res.values["C44"] == pytest.approx(ref["C44"], rel=0.01)


@pytest.mark.parametrize("element", METALS)
def test_elastic_bulk_modulus_matches_eos(element, elastic_results, eos_results):
    """(C11 + 2 C12)/3 (= the Hill B for cubic symmetry) within 2 % of the EOS B; the
    isotropic moduli obey E = 9BG/(3B+G) and nu = (3B-2G)/(2(3B+G))."""
    v = elastic_results[element].values
    b = (v["C11"] + 2 * v["C12"]) / 3
    assert b == pytest.approx(eos_results[element].values["B"], rel=0.02)
    assert v["B"] == pytest.approx(b, rel=1e-9)
    assert v["E"] == pytest.approx(9 * v["B"] * v["G"] / (3 * v["B"] + v["G"]))
    assert v["nu"] == pytest.approx((3 * v["B"] - 2 * v["G"]) / (2 * (3 * v["B"] + v["G"])))
    assert elastic_results[element].units["nu"] == "" and elastic_results[element].units["C44"] == "GPa"


def test_cubic_detection_fcc(elastic_results):
    """fcc Ag: values C11/C12/C44 only; the 6x6 has the cubic pattern (equal diagonal
    blocks, zeros elsewhere to 1e-6 GPa), is symmetric, and the strained cells of a
    Bravais lattice needed no relaxation steps."""
    res = elastic_results["Ag"]
    assert res.data["symmetry"] == "cubic"
    assert {"C11", "C12", "C44"} <= set(res.values) and "C33" not in res.values and "C13" not in res.values
    c = np.array(res.data["C"])
    v = res.values
    expect = np.zeros((6, 6))
    expect[:3, :3] = v["C12"]
    expect[range(3), range(3)] = v["C11"]
    expect[range(3, 6), range(3, 6)] = v["C44"]
    np.testing.assert_allclose(c, expect, atol=1e-6)
    assert res.data["asymmetry"] < 1e-6
    assert np.abs(res.data["residual_stress"]).max() < 0.05  # GPa, from the EOS-fitted volume
    assert set(res.data["relax_steps"]) == {0}
    assert len(res.data["strains"]) == len(res.data["stresses"]) == 12
    assert v["C11"] > v["C12"] > 0 and v["C44"] > 0


def test_tetragonal_l10_full_set():
    """L1_0 AgPd under EMT: the cell relaxes to c/a != 1, the 6x6 is tetragonal (C11 = C22,
    C13 = C23, C44 = C55) but not cubic: all 21 Cij are reported, C11 != C33 by more than
    1 GPa, C44 != C66; the relaxed equilibrium has stress below 0.01 GPa."""
    atoms = build_structure("AgPd-L10")
    eq = equilibrium_structure(EMT(), atoms)
    lengths = eq.cell.lengths()
    assert lengths[0] == pytest.approx(lengths[1], rel=1e-8) and abs(lengths[2] / lengths[0] - 1) > 1e-3
    eq.calc = EMT()
    assert np.abs(eq.get_stress()).max() * EV_PER_A3_TO_GPA < 0.01
    res = elastic_constants(EMT(), atoms, relax_internal=True)
    assert res.status == OK, res.message
    assert res.data["symmetry"] == "lower"
    assert {f"C{i}{j}" for i in range(1, 7) for j in range(i, 7)} <= set(res.values)
    v = res.values
    assert abs(v["C11"] - v["C33"]) > 1.0 and abs(v["C44"] - v["C66"]) > 0.5
    assert v["C11"] == pytest.approx(v["C22"], abs=0.05) and v["C13"] == pytest.approx(v["C23"], abs=0.05)
    assert v["C44"] == pytest.approx(v["C55"], abs=0.05) and abs(v["C16"]) < 0.05


def test_round_trip(elastic_results, eos_results):
    """to_dict -> json.dumps -> json.loads -> from_dict gives back the same values, units,
    status and 6x6 matrix."""
    for res in (elastic_results["Cu"], eos_results["Cu"]):
        back = PropertyResult.from_dict(json.loads(json.dumps(res.to_dict())))
        assert back.values == pytest.approx(res.values)
        assert (back.name, back.structure, back.units, back.status) == (res.name, res.structure, res.units, OK)
    assert np.allclose(back.data["volumes"], eos_results["Cu"].data["volumes"])
    back = PropertyResult.from_dict(json.loads(json.dumps(elastic_results["Cu"].to_dict())))
    assert np.allclose(back.data["C"], elastic_results["Cu"].data["C"])
    assert back.structure == "Cu-fcc"


@pytest.mark.parametrize("call, setting", [
    (lambda: equation_of_state(EMT(), build_structure("Cu-fcc"), strain=0), "strain"),
    (lambda: equation_of_state(EMT(), build_structure("Cu-fcc"), strain=-0.05), "strain"),
    (lambda: equation_of_state(EMT(), build_structure("Cu-fcc"), n_points=4), "n_points"),
    (lambda: equation_of_state(EMT(), build_structure("Cu-fcc"), eos="quadratic"), "eos"),
    (lambda: elastic_constants(EMT(), build_structure("Cu-fcc"), strain=0), "strain"),
    (lambda: elastic_constants(EMT(), build_structure("Cu-fcc"), strain=-0.01), "strain"),
    (lambda: elastic_constants(EMT(), build_structure("Cu-fcc"), fmax=0), "fmax"),
])
def test_bad_settings_raise(call, setting):
    """Invalid settings raise PropertyError whose message names the setting."""
    with pytest.raises(PropertyError, match=setting):
        call()


def test_far_potential_is_unstable_not_an_error():
    """Lennard-Jones with sigma = 1 A has its minimum far below Ag's volume: the EOS
    recentres once, still finds the minimum at the edge and reports UNSTABLE with a
    message; elastic_constants reports UNSTABLE too. The input atoms are untouched."""
    atoms = build_structure("Ag-fcc")
    before = atoms.get_positions().copy(), atoms.cell[:].copy()
    res = equation_of_state(LennardJones(), atoms)
    assert res.status == UNSTABLE and res.data["recentred"] and "outside" in res.message
    el = elastic_constants(LennardJones(), atoms)
    assert el.status == UNSTABLE and "equilibrium" in el.message
    json.dumps(el.to_dict())
    assert np.array_equal(atoms.get_positions(), before[0]) and np.array_equal(atoms.cell[:], before[1])
    assert atoms.calc is None


def test_recentring_far_start():
    """Starting Ag 3 % too large in a (9 % in volume, outside the +-5 % scan) the EOS
    recentres and finds the same a as from the reference start (1e-4 relative)."""
    near = equation_of_state(EMT(), build_structure("Ag-fcc"))
    far = equation_of_state(EMT(), build_structure(f"Ag-fcc@{near.values['a'] * 1.03:.4f}"))
    assert far.status == OK and far.data["recentred"] and not near.data["recentred"]
    assert far.values["a"] == pytest.approx(near.values["a"], rel=1e-4)


def test_relax_helpers():
    """relax_positions brings a rattled fcc cell back to forces below fmax and takes no
    steps on a perfect one; relax_cell restores the lattice constant of a 2 % compressed
    cell to 1e-4; runaway_reason flags atoms closer than 0.7 A and passes a sane cell."""
    atoms = build_structure("Cu-fcc")
    relaxed, ok, steps = relax_positions(atoms, EMT(), fmax=1e-3)
    assert ok and steps == 0
    rattled = atoms.copy()
    rattled.rattle(0.05, seed=1)
    relaxed, ok, steps = relax_positions(rattled, EMT(), fmax=1e-3)
    assert ok and steps > 0 and np.abs(relaxed.get_forces()).max() < 1e-3
    assert runaway_reason(relaxed) is None
    a0 = equation_of_state(EMT(), atoms).values["a"]
    squeezed = atoms.copy()
    squeezed.set_cell(atoms.cell[:] * 0.98 * a0 / atoms.cell[0, 0], scale_atoms=True)
    cell_relaxed, ok, steps = relax_cell(squeezed, EMT(), fmax=1e-4)
    assert ok and cell_relaxed.cell.lengths() == pytest.approx([a0] * 3, rel=1e-4)
    collapsed = atoms.copy()
    collapsed.positions[1] = collapsed.positions[0] + [0.3, 0, 0]
    assert "0.300 A apart" in runaway_reason(collapsed)


def test_voigt_engineering_shear():
    """The Voigt strain (0, 0, 0, g, 0, 0) is the tensor eps_yz = eps_zy = g/2."""
    eps = voigt_strain_matrix([0, 0, 0, 0.02, 0, 0])
    assert eps[1, 2] == eps[2, 1] == 0.01 and np.count_nonzero(eps) == 2
