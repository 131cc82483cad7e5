"""Phonons and MD stability (optbench.properties.phonons / .md) with ASE's EMT potential.

EMT stands in for a potential under test: it is fast, deterministic and its fcc metals are
dynamically stable, so every check below is a physical law or a numerical property of the
method, not a number copied from the code. Each test says what it checks and the
tolerance it allows.
"""

from __future__ import annotations

import importlib.util
import json
from typing import ClassVar

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from optbench.properties.base import OK, UNSTABLE, PropertyError, PropertyResult
from optbench.properties.md import md_stability, plot_rdf, plot_temperature
from optbench.properties.phonons import (
    build_phonopy,
    frequencies_at,
    phonons,
    plot_band_structure,
)
from optbench.properties.structures import build_structure

# phonopy is optional (the properties extra); only the phonon tests need it
needs_phonopy = pytest.mark.skipif(importlib.util.find_spec("phonopy") is None,
                                   reason="phonopy not installed (pip install 'optbench[properties]')")


# ------------------------------------------------------------------------------ phonons

@pytest.fixture(scope="module")
def cu_phonons():
    return phonons(EMT(), build_structure("Cu-fcc"))


@pytest.fixture(scope="module")
def ag_phonons():
    return phonons(EMT(), build_structure("Ag-fcc"))


@pytest.fixture(scope="module")
def cu_phonopy():
    return build_phonopy(EMT(), build_structure("Cu-fcc"))


def _reduced(phonon, q_cart):
    """Cartesian q (1/A, without 2*pi) -> reduced coordinates of phonopy's primitive
    reciprocal basis: q_red_i = a_i . q."""
    return np.asarray(q_cart, float) @ np.array(phonon.primitive.cell, float).T


@needs_phonopy
def test_emt_cu_and_ag_have_no_imaginary_modes(cu_phonons, ag_phonons):
    """fcc Cu and Ag are dynamically stable with EMT: no mode below -0.05 THz anywhere on
    the path or the 20^3 mesh (acoustic modes within 10% of a reciprocal vector of Gamma
    aside), and the lowest frequency of all, Gamma's acoustic ones included, is zero to
    within 1e-3 THz (numerical noise after symmetrising the force constants)."""
    for res in (cu_phonons, ag_phonons):
        assert res.status == OK and res.name == "phonons"
        assert res.values["n_imaginary"] == 0, res.message
        assert res.values["min_frequency"] > -1e-3
        assert res.units["max_frequency"] == "THz"
    assert cu_phonons.structure == "Cu-fcc" and ag_phonons.structure == "Ag-fcc"
    # the default supercell: 3x3x3 conventional cells (108 atoms, >= 10 A wide)
    assert cu_phonons.data["n_atoms_supercell"] == 108


@needs_phonopy
def test_band_structure_symmetric_along_equivalent_directions(cu_phonopy):
    """Cubic symmetry: frequencies along Gamma->X for the three equivalent X points
    (2pi/a)(1,0,0), (0,1,0), (0,0,1), and along Gamma->L for (pi/a)(1,1,1), (-1,1,1),
    (1,-1,1), agree to 1e-6 THz. The q-points are converted from Cartesian to the
    primitive reduced basis, so this also checks that convention."""
    a = build_structure("Cu-fcc").cell.lengths()[0]
    t = np.linspace(0.0, 1.0, 11)[:, None]
    for ends in ([(1, 0, 0), (0, 1, 0), (0, 0, 1)], [(0.5, 0.5, 0.5), (-0.5, 0.5, 0.5), (0.5, -0.5, 0.5)]):
        freqs = [frequencies_at(cu_phonopy, _reduced(cu_phonopy, t * np.array(e) / a)) for e in ends]
        for f in freqs[1:]:
            np.testing.assert_allclose(f, freqs[0], atol=1e-6)
    # in reduced coordinates the X points are not all alike, e.g. (0,1/2,1/2) vs (1/2,0,1/2)
    np.testing.assert_allclose(frequencies_at(cu_phonopy, t * [0, 0.5, 0.5]),
                               frequencies_at(cu_phonopy, t * [0.5, 0, 0.5]), atol=1e-6)


@needs_phonopy
def test_band_path_points_are_where_their_labels_say(cu_phonons, cu_phonopy):
    """The path's q-points are in phonopy's reduced coordinates: the frequencies stored at
    the path's X and L labels equal those computed directly at the Cartesian X = (2pi/a)
    (1,0,0) and L = (pi/a)(1,1,1) (1e-6 THz), and show fcc's symmetry there: the two
    transverse branches degenerate at X and at L."""
    d = cu_phonons.data
    a = build_structure("Cu-fcc").cell.lengths()[0]
    x, f = np.array(d["path_x"]), np.array(d["path_frequencies"])
    for label, q_cart in (("X", [1 / a, 0, 0]), ("L", [0.5 / a] * 3)):
        xl = d["path_label_x"][d["path_labels"].index(label)]
        at_label = f[np.argmin(np.abs(x - xl))]
        direct = frequencies_at(cu_phonopy, _reduced(cu_phonopy, [q_cart]))[0]
        np.testing.assert_allclose(at_label, direct, atol=1e-6)
        assert abs(direct[0] - direct[1]) < 1e-6 and direct[2] > direct[1] + 0.5
    assert d["path_labels"][0] == "G" and "K|U" in d["path_labels"]


@needs_phonopy
def test_acoustic_modes_vanish_at_gamma_and_frequencies_are_physical(cu_phonons, ag_phonons):
    """At Gamma the three acoustic modes are zero (|f| < 1e-3 THz: translational
    invariance). EMT Cu's highest frequency is 7.81 THz (experiment: 7.3 THz, LA at X);
    bound 5-10 THz. Ag is heavier and softer: 4.75 THz (experiment 5.1 THz), bound 3.5-6.5
    THz, below Cu. The DOS integrates to 3 modes per atom of the primitive cell (1%)."""
    for res in (cu_phonons, ag_phonons):
        gamma = np.array(res.data["path_frequencies"])[0]
        assert np.all(np.abs(gamma) < 1e-3)
        nu, dos = np.array(res.data["dos_frequencies"]), np.array(res.data["dos"])
        assert abs(np.trapezoid(dos, nu) - 3.0) < 0.03
        assert 0 < res.values["mean_frequency"] < res.values["max_frequency"]
    assert 5.0 < cu_phonons.values["max_frequency"] < 10.0
    assert 3.5 < ag_phonons.values["max_frequency"] < 6.5
    assert ag_phonons.values["max_frequency"] < cu_phonons.values["max_frequency"]


@needs_phonopy
def test_phonon_result_round_trips_and_plots(cu_phonons, ag_phonons, tmp_path):
    """to_dict -> json -> from_dict gives the same result; the band structure is drawn from
    the stored data alone (Agg-safe Figure) and written as a PNG."""
    stored = json.loads(json.dumps(cu_phonons.to_dict()))
    back = PropertyResult.from_dict(stored)
    assert back.to_dict() == stored and back.values == cu_phonons.values
    ag = json.loads(json.dumps(ag_phonons.to_dict()))["data"]
    ax = plot_band_structure([("Ag EMT", ag)], reference=("Cu EMT", stored["data"]))
    out = tmp_path / "bands.png"
    ax.figure.savefig(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ax.get_xticklabels()[0].get_text() == "\u0393"


@needs_phonopy
def test_bad_phonon_settings_raise_naming_the_setting():
    """Bad settings are refused before any force is computed, the message naming them."""
    cu = build_structure("Cu-fcc")
    for kwargs, word in (({"displacement": -0.01}, "displacement"), ({"supercell": [2, 2]}, "supercell"),
                         ({"supercell": [[1, 0, 0], [0, 1, 0], [0, 0, 0]]}, "supercell"), ({"npoints": 1}, "npoints"),
                         ({"mesh": (0, 4, 4)}, "mesh"), ({"imaginary_tol": -1.0}, "imaginary_tol"),
                         ({"path": "GXQ"}, "path"), ({"path": "G"}, "path")):
        with pytest.raises(PropertyError, match=word):
            phonons(EMT(), cu, **kwargs)


# ----------------------------------------------------------------------------------- MD

@pytest.fixture(scope="module")
def nve_runs():
    """32 Cu atoms, NVE only from 300 K Maxwell-Boltzmann velocities (same seed, so the same
    start), 0.2 ps at 1 fs and at 0.5 fs."""
    cu = build_structure("Cu-fcc")
    return {dt: md_stability(EMT(), cu, supercell=2, timestep=dt, nvt_steps=0, nve_steps=round(200 / dt),
                             sample_every=5) for dt in (1.0, 0.5)}


@pytest.fixture(scope="module")
def nvt_run():
    """108 Cu atoms, 400 NVT steps of 2 fs at 300 K, friction 0.05/fs (relaxation time
    20 fs), the first 25% (0.2 ps = 10 relaxation times) left out; no NVE part, so the
    MSD and the RDF come from the NVT production."""
    return md_stability(EMT(), build_structure("Cu-fcc"), temperature=300.0, timestep=2.0, nvt_steps=400,
                        nve_steps=0, friction=0.05, equilibration=0.25, sample_every=5)


def test_nve_conserves_energy_and_verlet_is_second_order(nve_runs):
    """Velocity Verlet at 1 fs: the total energy drifts by less than 0.05 meV/atom/ps
    (measured ~3e-4) and fluctuates by less than 1% of the kinetic energy's fluctuation
    (measured 0.02%). Halving the time step divides the total-energy fluctuation by
    4 (second order; measured 4.01), allowed 3-5."""
    run = nve_runs[1.0]
    assert run.status == OK
    v = run.values
    assert abs(v["nve_drift"]) < 0.05
    assert v["nve_fluctuation"] < 0.01 * v["nve_ekin_fluctuation"]
    ratio = v["nve_fluctuation"] / nve_runs[0.5].values["nve_fluctuation"]
    assert 3.0 < ratio < 5.0, ratio
    assert np.isnan(v["T_mean"])  # no NVT part
    assert len(run.data["nve_energy"]) == 201 and run.data["nve_time_ps"][-1] == pytest.approx(0.2)


def test_nvt_temperature_matches_target_within_canonical_fluctuations(nvt_run):
    """Langevin NVT holds 300 K: canonical kinetic-energy fluctuations give an instantaneous
    sigma_T = T sqrt(2 / (3N - 3)) = 23.7 K for N = 108; the kinetic energy decorrelates
    within ~2/friction = 40 fs, so 0.6 ps of production holds >= 15 independent samples
    and the mean's 3-sigma bound is 3 * 23.7 / sqrt(15) = 18 K. The instantaneous spread
    T_std is the canonical one within 40% (a short run estimates it roughly). Measured:
    T_mean = 305.6 K, T_std = 23.6 K."""
    v, n = nvt_run.values, nvt_run.data["n_atoms"]
    assert nvt_run.status == OK and n == 108
    sigma = 300.0 * np.sqrt(2.0 / (3 * n - 3))
    assert abs(v["T_error"]) < 3 * sigma / np.sqrt(0.6 / 0.04)
    assert v["T_mean"] - 300.0 == pytest.approx(v["T_error"])
    assert 0.6 * sigma < v["T_std"] < 1.4 * sigma
    # a crystal at 300 K: nearest neighbours at a/sqrt(2) = 2.55 A (0.05 A: the bin width),
    # and no diffusion: |D| < 0.05 A^2/ps (measured 0.005; liquid Cu near melting ~0.3)
    assert v["rdf_first_peak"] == pytest.approx(3.61 / np.sqrt(2), abs=0.05)
    assert abs(v["D"]) < 0.05


def test_md_is_reproducible_with_a_seed():
    """The seed fixes the velocities and the Langevin noise: two runs agree exactly; another
    seed gives another trajectory."""
    cu = build_structure("Cu-fcc")
    runs = [md_stability(EMT(), cu, supercell=2, nvt_steps=20, nve_steps=5, seed=s) for s in (7, 7, 8)]
    assert runs[0].data["temperature"] == runs[1].data["temperature"]
    assert runs[0].data["temperature"] != runs[2].data["temperature"]


class _Pull(Calculator):
    """EMT plus a conservative pull of atom 0 towards atom 1: E += k |r1 - r0|; or EMT
    whose forces turn NaN from the `nan_after`-th call on."""

    implemented_properties: ClassVar[list[str]] = ["energy", "forces"]

    def __init__(self, k=0.0, nan_after=None):
        super().__init__()
        self.k, self.nan_after, self.calls, self.emt = k, nan_after, 0, EMT()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        base = atoms.copy()
        base.calc = self.emt
        energy, forces = base.get_potential_energy(), base.get_forces().copy()
        d = atoms.get_distance(0, 1, mic=True, vector=True)
        energy += self.k * np.linalg.norm(d)
        unit = d / np.linalg.norm(d)
        forces[0] += self.k * unit
        forces[1] -= self.k * unit
        self.calls += 1
        if self.nan_after is not None and self.calls > self.nan_after:
            forces[:] = np.nan
        self.results = {"energy": energy, "forces": forces}


class _Broken(Calculator):
    implemented_properties: ClassVar[list[str]] = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        raise RuntimeError("model file corrupt")


def test_exploding_runs_are_reported_unstable_not_raised():
    """A 50 fs time step at 3000 K throws the atoms together at once (energy jump at step 1);
    a strong pull collides two atoms (closer than half the nearest-neighbour distance); NaN
    forces stop the run at the step they appear. Each is status UNSTABLE with the step in
    the message and the values, traces up to that step kept. A calculator's own exception
    propagates."""
    cu = build_structure("Cu-fcc")
    hot = md_stability(EMT(), cu, supercell=2, temperature=3000.0, timestep=50.0, nvt_steps=50, nve_steps=0)
    assert hot.status == UNSTABLE and "step 1" in hot.message and hot.values["exploded_at_step"] == 1
    assert hot.values["exploded_at_ps"] == pytest.approx(0.05) and len(hot.data["time_ps"]) == 1

    pulled = md_stability(_Pull(k=100.0), cu, supercell=2, timestep=1.0, nvt_steps=0, nve_steps=200)
    assert pulled.status == UNSTABLE and "apart" in pulled.message
    step = int(pulled.values["exploded_at_step"])
    assert 0 < step < 200 and f"step {step}" in pulled.message and len(pulled.data["time_ps"]) == step

    nan = md_stability(_Pull(nan_after=10), cu, supercell=2, nvt_steps=20, nve_steps=0)
    assert nan.status == UNSTABLE and "non-finite" in nan.message and nan.values["exploded_at_step"] == 10
    json.dumps(nan.to_dict())  # NaN values are stored as null

    with pytest.raises(RuntimeError, match="corrupt"):
        md_stability(_Broken(), cu, supercell=1, nvt_steps=2, nve_steps=0)


@needs_phonopy
def test_non_finite_phonon_forces_are_unstable_and_errors_propagate():
    """NaN forces make the phonon result UNSTABLE with a message (no exception); an
    exception of the calculator itself propagates."""
    cu = build_structure("Cu-fcc")
    res = phonons(_Pull(nan_after=0), cu, supercell=2)
    assert res.status == UNSTABLE and "non-finite" in res.message
    with pytest.raises(RuntimeError, match="corrupt"):
        phonons(_Broken(), cu, supercell=2)


def test_md_result_round_trips_and_plots(nvt_run, nve_runs, tmp_path):
    """to_dict -> json -> from_dict gives the same result; temperature and RDF plots are
    drawn from the stored data alone and written as PNGs; traces stay <= 500 points."""
    stored = json.loads(json.dumps(nvt_run.to_dict()))
    back = PropertyResult.from_dict(stored)
    assert back.to_dict() == stored
    np.testing.assert_equal(back.values, nvt_run.values)  # NaN (no NVE part) reads back as NaN
    assert len(stored["data"]["time_ps"]) <= 500 and len(stored["data"]["rdf_g"]) == 120
    other = json.loads(json.dumps(nve_runs[1.0].to_dict()))["data"]
    for plot, name in ((plot_temperature, "T.png"), (plot_rdf, "rdf.png")):
        kwargs = {"target": 300.0} if plot is plot_temperature else {}
        ax = plot([("NVE 32 atoms", other)], reference=("NVT 108 atoms", stored["data"]), **kwargs)
        ax.figure.savefig(tmp_path / name)
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_bad_md_settings_raise_naming_the_setting():
    """Bad settings are refused before any step, the message naming them."""
    cu = build_structure("Cu-fcc")
    for kwargs, word in (({"temperature": -5.0}, "temperature"), ({"timestep": 0.0}, "timestep"),
                         ({"nvt_steps": 1.5}, "nvt_steps"), ({"nve_steps": -1}, "nve_steps"),
                         ({"friction": -0.01}, "friction"), ({"equilibration": 1.0}, "equilibration"),
                         ({"sample_every": 0}, "sample_every"), ({"supercell": 0}, "supercell"),
                         ({"min_distance": 0.0}, "min_distance"), ({"max_energy_jump": float("nan")}, "max_energy_jump"),
                         ({"rdf_bins": 0}, "rdf_bins"), ({"nvt_steps": 0, "nve_steps": 0}, "nvt_steps")):
        with pytest.raises(PropertyError, match=word):
            md_stability(EMT(), cu, **kwargs)
