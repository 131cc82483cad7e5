"""The ETN (equivariant tensor network) potential of the embedded engine.

Contracts checked (the model is defined in engine/README.md, "ETN"):
- the engine computes the documented model: energies equal an independent NumPy
  implementation of the README's definition (SciPy's spherical harmonics, couplings
  from Gaunt integrals by quadrature);
- the adjoint loss gradient equals finite differences (relative 1e-6) for every
  parameter group with energy, force and stress terms on, for several shapes and ranks;
- forces are -dE/dr and the virial -dE/d(strain); E is invariant and F, S covariant
  under proper and improper rotations (the model is O(3)), translations, permutations,
  periodic images, cell changes; a supercell is extensive; molecules work without cell;
- the parameter count follows the documented formula; spec syntax variants agree;
  the JSON file round-trips; linear_system fails clearly;
- it trains: a larger shape fits at least as well as a smaller one for the same budget,
  SciPy BFGS gets within a factor 3 of MTP level 16's validation EPA RMSE in the same
  wall time, every optimizer runs on it (those that cannot fail with a clear message),
  and the command line accepts ETN specs.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from physics_helpers import (check_energy_derivatives, check_gradient_fd, check_rotation_covariance,
                             check_supercell_extensive, check_threads_and_subsets,
                             check_translation_permutation_images, efs, label_with_noise, molecule, small_cells)

from optbench.engine import capi
from optbench.optim.budget import Budget
from optbench.io import Configuration
from optbench.objective import EngineObjective, LossWeights
from optbench.optim import REGISTRY
from optbench.train import TrainSettings, train

# Small models that exercise every feature: per-l lists, ranks > 1, K = 2, 3, 4, 3 species.
SPEC_A = "etn species=2 lmax=2 shape=1;2,1,1;2 ranks=2;1,2,1 radial_basis_size=5 min_dist=1.8 max_dist=5.0"
SPEC_K4 = "etn species=3 lmax=1 shape=1;2;1;2 ranks=2;2;1 radial_basis_size=4 min_dist=1.8 max_dist=5.0"
SPEC_K2 = "etn species=2 lmax=3 shape=[[2],[1,1,1,1]] ranks=[[1,2,1,1]] radial_basis_size=4 max_dist=5.0"


def random_etn(engine, spec=SPEC_A, seed=0, scale=0.3):
    """An ETN with random (seeded) parameters around the defaults: radial coefficients
    + N(0, 0.05^2), core weights + N(0, scale^2), species coefficients N(0, 1) eV, so that
    every path of every core and every channel matters."""
    pot = engine.potential_from_spec(spec)
    rng = np.random.default_rng(seed)
    x = pot.default_params()
    for name, sl in pot.groups().items():
        n = sl.stop - sl.start
        if name == "radial":
            x[sl] += 0.05 * rng.standard_normal(n)
        elif name == "species":
            x[sl] = rng.standard_normal(n)
        else:
            x[sl] += scale * rng.standard_normal(n)
    pot.set_params(x)
    return pot


# ---------------------------------------------------------------- the documented model


def coupling_paths(lmax: int):
    """(L, l, L') with |L - l| <= L' <= L + l and L + l + L' even, in the order of the
    weight blocks (L, then l, then L')."""
    r = range(lmax + 1)
    return [(L, l, Lp) for L in r for l in r for Lp in r if abs(L - l) <= Lp <= L + l and (L + l + Lp) % 2 == 0]


def core_sizes(info: dict) -> list[int]:
    """Weights of each core by the README's formula:
    sum over paths of r_{k-1,L} * (s_{k,l} + [k < K and l = 0]) * r_{k,L'}."""
    shape, ranks, lmax = info["shape"], info["ranks"], info["lmax"]
    K = len(shape)
    trivial = [1] + [0] * lmax
    bonds = [trivial] + ranks + [trivial]
    out = []
    for k in range(K):
        n_in = [shape[k][l] + (1 if (l == 0 and k < K - 1) else 0) for l in range(lmax + 1)]
        out.append(sum(bonds[k][L] * n_in[l] * bonds[k + 1][Lp] for L, l, Lp in coupling_paths(lmax)))
    return out


def documented_n_params(info: dict) -> int:
    """n_params = S^2 * size * sum_l max_k s_{k,l} + sum_k core_k + S (README, "ETN")."""
    S, lmax = info["species_count"], info["lmax"]
    channels = sum(max(s[l] for s in info["shape"]) for l in range(lmax + 1))
    return S * S * info["radial_basis_size"] * channels + sum(core_sizes(info)) + S


def real_harmonics(lmax: int, u: np.ndarray) -> np.ndarray:
    """Orthonormal real spherical harmonics (lm = l^2 + l + m) of unit vectors u (n, 3),
    from SciPy's complex ones: another sign convention than the engine's, which the
    energy must not depend on."""
    from scipy.special import sph_harm_y
    theta = np.arccos(np.clip(u[:, 2], -1, 1))
    phi = np.arctan2(u[:, 1], u[:, 0])
    out = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), theta, phi)
            out.append(y.real if m == 0 else np.sqrt(2) * (y.real if m > 0 else y.imag))
    return np.array(out)


def gaunt_couplings(lmax: int) -> dict:
    """(L, l, L') -> C[M, m, M'] proportional to the integral of Y_LM Y_lm Y_L'M' over the
    sphere (Gauss-Legendre x trapezoid, exact), scaled to sum C^2 = 2L' + 1."""
    z, wz = np.polynomial.legendre.leggauss(3 * lmax // 2 + 2)
    phi = 2 * np.pi * np.arange(3 * lmax + 2) / (3 * lmax + 2)
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    s = np.sqrt(1 - zz ** 2)
    u = np.stack([s * np.cos(pp), s * np.sin(pp), zz], -1).reshape(-1, 3)
    w = (wz[:, None] * np.full(len(phi), 2 * np.pi / len(phi))[None, :]).reshape(-1)
    Y = real_harmonics(lmax, u)
    out = {}
    for L, l, Lp in coupling_paths(lmax):
        g = np.einsum("aq,bq,cq,q->abc", Y[L * L:(L + 1) ** 2], Y[l * l:(l + 1) ** 2], Y[Lp * Lp:(Lp + 1) ** 2], w)
        out[L, l, Lp] = g * np.sqrt((2 * Lp + 1) / np.sum(g ** 2))
    return out


def reference_energy(info: dict, x: np.ndarray, c: Configuration) -> float:
    """E = sum_i V_i by the README's definition, written independently of the engine:
    radial channels R_{l,c}(r; t_i, t_j) on the Chebyshev basis, features
    A[l][c][m] = sum_j R Y_lm, and the chain h_{k+1} = core_k(h_k, x_k), h_0 = 1."""
    S, lmax, K = info["species_count"], info["lmax"], len(info["shape"])
    shape, nrb = info["shape"], info["radial_basis_size"]
    rmin, rc, sc = info["min_dist"], info["max_dist"], info["scaling"]
    n_ch = [max(s[l] for s in shape) for l in range(lmax + 1)]
    g = {grp["name"]: x[grp["offset"]:grp["offset"] + grp["size"]] for grp in info["groups"]}
    W = g["radial"].reshape(S, S, sum(n_ch), nrb)
    cores = [g[f"core{k + 1}"] for k in range(K)]
    trivial = [1] + [0] * lmax
    bonds = [trivial] + info["ranks"] + [trivial]
    cg = gaunt_couplings(lmax)
    pos = c.positions
    shifts = [np.zeros(3)]
    if c.cell is not None:
        rng_ = range(-4, 5)
        shifts = [np.array([a, b, d]) @ c.cell for a in rng_ for b in rng_ for d in rng_]
    E = 0.0
    for i in range(c.n_atoms):
        vecs, types = [], []
        for j in range(c.n_atoms):
            for sh in shifts:
                v = pos[j] + sh - pos[i]
                if 1e-9 < np.linalg.norm(v) < rc:
                    vecs.append(v)
                    types.append(c.types[j])
        v = np.array(vecs)
        r = np.linalg.norm(v, axis=1)
        xi = (2 * r - rmin - rc) / (rc - rmin)
        Q = sc * np.array([np.polynomial.chebyshev.chebval(xi, np.eye(nrb)[q]) for q in range(nrb)]) * (rc - r) ** 2
        R = np.einsum("jcq,qj->cj", W[c.types[i], np.array(types)], Q)  # (channels, neighbours)
        Y = real_harmonics(lmax, v / r[:, None])
        A, first = [], 0
        for l in range(lmax + 1):
            A.append(R[first:first + n_ch[l]] @ Y[l * l:(l + 1) ** 2].T)  # (c, m)
            first += n_ch[l]
        h = [np.ones((1, 1))] + [np.zeros((0, 1))] * lmax  # h[L]: (copies, 2L+1)
        for k in range(K):
            inputs = [A[l][:shape[k][l]] for l in range(lmax + 1)]
            if k < K - 1:
                inputs[0] = np.vstack([np.ones((1, 1)), inputs[0]])
            out = [np.zeros((bonds[k + 1][L], 2 * L + 1)) for L in range(lmax + 1)]
            off = 0
            for L, l, Lp in coupling_paths(lmax):
                rin, nin, rout = bonds[k][L], len(inputs[l]), bonds[k + 1][Lp]
                if rin * nin * rout == 0:
                    continue
                w = cores[k][off:off + rin * nin * rout].reshape(rin, nin, rout)
                off += rin * nin * rout
                out[Lp] += np.einsum("acb,aM,cm,Mmn->bn", w, h[L], inputs[l], cg[L, l, Lp])
            assert off == len(cores[k])
            h = out
        E += g["species"][c.types[i]] + h[0][0, 0]
    return E


@pytest.mark.parametrize("spec", [SPEC_A, SPEC_K4, SPEC_K2])
def test_engine_computes_the_documented_model(engine, spec):
    """Energies of a molecule and of a periodic 2-atom cell smaller than the cutoff equal
    the README's definition evaluated by an independent NumPy implementation (1e-10
    relative): spherical harmonics, coupling coefficients, channel sharing, constant
    inputs, weight layout and parameter vector order are as documented."""
    pot = random_etn(engine, spec, seed=3)
    info, x = pot.info(), pot.get_params()
    mol = molecule()
    if info["species_count"] == 3:
        mol.types = np.array([0, 1, 2, 2, 1], dtype=np.int32)
    for c in (mol, small_cells()[3]):
        e = efs(engine, pot, c)[0]
        assert abs(e - reference_energy(info, x, c)) < 1e-10 * max(1.0, abs(e))


# ---------------------------------------------------------------- gradient and physics


@pytest.mark.parametrize("spec,kind", [(SPEC_A, "periodic"), (SPEC_A, "small_cells"), (SPEC_A, "molecule"),
                                       (SPEC_K4, "periodic"), (SPEC_K2, "small_cells")])
def test_gradient_matches_finite_differences(engine, agpd_small, spec, kind):
    """dL/dtheta by the adjoint method equals central differences of L (relative 1e-6 per
    group: radial, every core, species) with energy, force and stress terms on, on
    periodic cells, cells smaller than the cutoff and a molecule."""
    pot = random_etn(engine, spec, seed=1)
    configs = {"periodic": list(agpd_small.configs[:2]), "small_cells": small_cells(), "molecule": [molecule()]}[kind]
    if spec == SPEC_K4:  # every ordered pair of the 3 species present
        configs = configs + [Configuration(positions=molecule().positions, types=np.array([0, 1, 2, 2, 1], np.int32),
                                           cell=None)]
    # Radial coefficients are O(0.1) and enter the energy up to the K-th power: steps of
    # 1e-6 keep the differences' truncation error (h^2) well below the tolerance.
    check_gradient_fd(engine, pot, label_with_noise(engine, pot, configs), step=1e-6)


@pytest.mark.parametrize("which", [0, 3])
def test_forces_and_virial_are_energy_derivatives(engine, agpd_small, which):
    """F = -dE/dr (central differences, 1e-6 eV/A) and PlusStress = -dE/d(strain)
    (1e-6 eV), on a 48-atom cell and a 2-atom cell smaller than the cutoff."""
    pot = random_etn(engine, seed=4, scale=0.2)
    check_energy_derivatives(engine, pot, agpd_small.configs[0] if which == 0 else small_cells()[3])


@pytest.mark.parametrize("improper", [False, True])
def test_rotation_invariance(engine, agpd_small, improper):
    """The model is O(3)-invariant (only parity-even couplings): E invariant, F -> F R^T,
    S -> R S R^T under random proper and improper rotations, 1e-10, for a periodic
    cell, a cell smaller than the cutoff and a molecule."""
    pot = random_etn(engine, SPEC_K2, seed=5)
    check_rotation_covariance(engine, pot, [agpd_small.configs[1], small_cells()[3], molecule()],
                              np.random.default_rng(8), improper)


def test_translation_permutation_and_images(engine, agpd_small):
    """E, F, S unchanged (1e-10) by a rigid translation, a permutation of atoms, moving
    atoms by lattice vectors and a unimodular change of cell basis."""
    pot = random_etn(engine, seed=6)
    check_translation_permutation_images(engine, pot, agpd_small.configs[2], np.random.default_rng(9))


@pytest.mark.parametrize("which,reps", [("one_atom", (2, 2, 2)), ("alloy", (2, 1, 1))])
def test_supercell_is_extensive(engine, agpd_small, which, reps):
    """A cell doubled (2x1x1 of a 16-atom alloy cell) or 2x2x2 (a 1-atom cell smaller than
    the cutoff, which sees its own images) has 2x or 8x the energy and virial and the
    same forces on every image."""
    pot = random_etn(engine, seed=7)
    c = small_cells()[0] if which == "one_atom" else agpd_small.configs[1]
    check_supercell_extensive(engine, pot, c, reps)


def test_threads_and_subsets(engine, agpd_small):
    """Two threads give the loss and gradient of one (1e-12), a thread count gives the
    same bits twice (deterministic), and the loss is additive over configurations."""
    pot = random_etn(engine, seed=8)
    data = label_with_noise(engine, pot, list(agpd_small.configs))
    check_threads_and_subsets(engine, pot, data)
    ds = engine.dataset(data, 5.0)
    w = np.tile([1.0, 0.05, 0.01], (len(data), 1))
    engine.set_num_threads(2)
    try:
        (l1, g1), (l2, g2) = engine.loss_grad(pot, ds, w), engine.loss_grad(pot, ds, w)
    finally:
        engine.set_num_threads(1)
    assert l1 == l2 and np.array_equal(g1, g2)


# ---------------------------------------------------------------- parameters and files


@pytest.mark.parametrize("spec", [
    "etn species=2 lmax=2 shape=1;6;3 ranks=1;1",   # the study's default
    "etn species=2 lmax=2 shape=1;6;3 ranks=2;2",   # rank variants
    "etn species=2 lmax=2 shape=1;6;3 ranks=3;3",
    "etn species=2 lmax=2 shape=1;4;2 ranks=1;1",   # shape variants
    "etn species=2 lmax=2 shape=1;8;4 ranks=1;1",
    "etn species=3 lmax=3 shape=1;6,4,2,0;3 ranks=2,1,1,1;1 radial_basis_size=6",
    "etn species=1 lmax=0 shape=3",
    "etn species=2 lmax=1 shape=1;3;3;2 ranks=2;2;2",
    SPEC_A, SPEC_K4, SPEC_K2,
])
def test_parameter_count_follows_the_formula(engine, spec):
    """n_params and the group sizes equal the README's formula for rank and shape
    variants, per-l lists, one core, four cores, lmax 0..3."""
    pot = engine.potential_from_spec(spec)
    info = pot.info()
    assert pot.n_params == info["n_params"] == documented_n_params(info)
    sizes = {g["name"]: g["size"] for g in info["groups"]}
    assert [sizes[f"core{k + 1}"] for k in range(len(info["shape"]))] == core_sizes(info)
    assert [g["name"] for g in info["groups"]][-2] == "species"


def test_worked_example_of_the_readme(engine):
    """shape [[1],[6],[3]], ranks [[1],[1]], lmax 2, 2 species, 8 basis functions:
    576 radial + 4 + 69 + 2 + 9 = 660 parameters, as the README works out; and ranks
    [[2],[2]] / shape [[1],[8],[4]] change it by the formula."""
    info = engine.potential_from_spec("etn species=2 lmax=2 shape=[[1],[6],[3]] ranks=[[1],[1]]").info()
    assert [g["size"] for g in info["groups"]] == [576, 4, 69, 2, 9] and info["n_params"] == 660
    assert engine.potential_from_spec("etn species=2 shape=1;6;3 ranks=2;2").n_params == 576 + 8 + 276 + 2 + 18
    assert engine.potential_from_spec("etn species=2 shape=1;8;4").n_params == 768 + 4 + 91 + 2 + 12


def test_spec_syntax_and_errors(engine):
    """';'/',' lists and the study's bracket lists give the same model; one value stands
    for every l; lmax follows per-l lists; bad specs raise EngineFormatError naming the
    problem."""
    a = engine.potential_from_spec("etn species=2 shape=1;6,4,2;3 ranks=1;1")
    b = engine.potential_from_spec("etn species=2 shape=[[1],[6,4,2],[3]] ranks=[[1],[1]] lmax=2")
    assert a.info()["shape"] == b.info()["shape"] == [[1, 1, 1], [6, 4, 2], [3, 3, 3]]
    np.testing.assert_array_equal(a.default_params(), b.default_params())
    assert engine.potential_from_spec("etn").info()["shape"] == [[1, 1, 1], [6, 6, 6], [3, 3, 3]]
    for spec, pattern in [("etn shape=1;6,4;3 lmax=2", "shape of core 2 has 2 entries"),
                          ("etn shape=1;6;3 ranks=1", "one bond fewer"),
                          ("etn shape=1;x;3", "'x' is not a number"),
                          ("etn shape=1;6;3 lmax=9", "lmax"),
                          ("etn shape=0;0", "couples nothing"),
                          ("etn shape=1;6;3 colour=2", "unknown key 'colour'"),
                          ("etn shape=1;6;3 min_dist=5 max_dist=4", "min_dist < max_dist")]:
        with pytest.raises(capi.EngineFormatError, match=pattern):
            engine.potential_from_spec(spec)


def test_save_load_round_trip(engine, agpd_small, tmp_path):
    """A saved ETN (.json) loads back with the same settings, parameters (bit for bit)
    and predictions; the file is the documented JSON; other extensions and malformed
    files are refused with messages naming the problem."""
    pot = random_etn(engine, SPEC_K4, seed=9)
    pot.set_scalar("scaling", 0.7)
    path = tmp_path / "etn.json"
    pot.save(path)
    back = engine.load_potential(path)
    assert back.info() == pot.info()
    np.testing.assert_array_equal(back.get_params(), pot.get_params())
    ds = engine.dataset(agpd_small, 5.0)
    for a, b in zip(engine.predict(pot, ds), engine.predict(back, ds)):
        np.testing.assert_array_equal(a, b)
    doc = json.loads(path.read_text())
    assert doc["format"] == "optbench-etn" and doc["version"] == 1 and doc["n_params"] == pot.n_params
    assert doc["radial_basis"] == {"type": "chebyshev", "size": 4, "min_dist": 1.8, "max_dist": 5.0, "scaling": 0.7}
    assert len(doc["cores"]) == 4 and len(doc["radial_coeffs"]) == 9 * 4 * 4
    with pytest.raises(capi.EngineArgumentError, match="saved as JSON"):
        pot.save(tmp_path / "etn.mtp")
    doc["n_params"] += 1
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(capi.EngineFormatError, match="bad.json.*n_params"):
        engine.load_potential(tmp_path / "bad.json")
    doc["n_params"] -= 1
    doc["cores"][1] = doc["cores"][1][:-1]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(capi.EngineFormatError, match="core 2 has"):
        engine.load_potential(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text('{"format": "optbench-etn",\n "version": 1,\n "shape": [[1]] oops}')
    with pytest.raises(capi.EngineFormatError, match="bad.json:3"):
        engine.load_potential(tmp_path / "bad.json")


def test_linear_block_is_declared_but_not_assembled(engine, agpd_small):
    """An ETN is linear in its species coefficients and last core: its info lists them as
    linear_groups and linear_slice is that trailing block, but the engine has no kernel
    for them: mlipc_linear_system answers MLIPC_ERR_UNSUPPORTED with a message saying
    the caller builds the design from predictions (tests/test_linear_design.py does)."""
    pot = engine.potential_from_spec("etn species=2 shape=1;2;1")
    ds = engine.dataset(agpd_small, 5.0)
    with pytest.raises(capi.EngineUnsupportedError, match="builds the design from predictions"):
        engine.linear_system(pot, ds, np.ones((len(agpd_small), 3)))
    assert pot.info()["linear_groups"] == ["species", "core3"]
    g = pot.groups()
    assert pot.linear_slice == slice(g["species"].start, g["core3"].stop) and g["core3"].stop == pot.n_params


# ---------------------------------------------------------------- training


@pytest.fixture(scope="module")
def agpd_split():
    from optbench.io.generator import generate_agpd_split
    return generate_agpd_split(24, 12, seed=5)


def _objective(engine, split, spec):
    train_set, valid = split
    return EngineObjective(engine, engine.potential_from_spec(spec), train_set, valid, LossWeights(stress=0.0))


def test_larger_shape_fits_at_least_as_well(engine, agpd_split):
    """After the same budget (SciPy BFGS, 300 passes over 24 configurations), shape
    [[1],[4],[2]] reaches a training loss and a validation EPA RMSE no worse than
    [[1],[2],[1]] (lmax 1, ranks 1)."""
    results = {}
    for shape in ("1;2;1", "1;4;2"):
        obj = _objective(engine, agpd_split, f"etn species=2 lmax=1 shape={shape} min_dist=2.0 max_dist=5.0")
        r = train(obj, TrainSettings(optimizer="bfgs", budget=Budget(evals=300 * 24), seed=0))
        results[shape] = (obj.loss(r.x), r.best_valid.epa_rmse)
    assert results["1;4;2"][0] <= results["1;2;1"][0], results
    assert results["1;4;2"][1] <= results["1;2;1"][1], results


def test_bfgs_fit_within_factor_3_of_mtp16_in_the_same_wall_time(engine):
    """ETN (shape [[1],[3,2],[3,2],[4,2]], ranks [[2],[2],[4]], lmax 1: 368 parameters)
    fitted with SciPy BFGS on generated Ag-Pd (40 training, 20 validation configurations)
    reaches a validation EPA RMSE within 3x of MTP level 16 (222 parameters) fitted the
    same way for the same wall time, 10 s each on two threads. (SciPy's BFGS costs
    O(n^3) per iteration, so the ETN is chosen lean in radial channels at l = 1.)"""
    from optbench.io.generator import generate_agpd_split
    split = generate_agpd_split(40, 20, seed=5)
    seconds = 10.0
    epa = {}
    engine.set_num_threads(2)
    try:
        for spec in ("mtp level=16 species=2 min_dist=2.0 max_dist=5.0",
                     "etn species=2 lmax=1 shape=[[1],[3,2],[3,2],[4,2]] ranks=[[2],[2],[4]] min_dist=2.0 max_dist=5.0"):
            obj = _objective(engine, split, spec)
            t = time.perf_counter()
            r = train(obj, TrainSettings(optimizer="bfgs", budget=Budget(seconds=seconds), seed=0, eval_every=20))
            assert time.perf_counter() - t < 3 * seconds
            epa[spec.split()[0]] = r.best_valid.epa_rmse
    finally:
        engine.set_num_threads(1)
    assert epa["etn"] <= 3 * epa["mtp"], epa


# Learning rates for ETN's gradient scale where the defaults suit MTP's: an ETN starts
# with |grad| ~ 10, an MTP ~ 1e5 (hence SGD's default 1e-9), and Muon's and RAdam's
# first steps are sized for that too.
ETN_LR = {"sgd": 5e-3, "momentum": 1e-3, "nesterov": 1e-3, "muon": 3e-3, "muon_factor": 3e-3, "radam": 3e-2,
          "ranger": 3e-2}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_optimizer_runs_on_etn(engine, agpd_split, name):
    """Each optimizer of the registry (at its defaults, or at the ETN_LR rate) ends below
    half an ETN's starting training loss in 20 passes over 24 configurations without
    diverging (Gauss-Newton and variable projection, whose iterations cost a pass per
    parameter, in 400); native (MLIP's trainer, MTP only) fails with a ValueError saying why."""
    obj = _objective(engine, agpd_split, "etn species=2 lmax=1 shape=1;2;1 min_dist=2.0 max_dist=5.0")
    clip = 10.0 if name in ("radam", "ranger") else None
    epochs = 400 if name in ("lm", "gn_tr", "varpro") else 20  # an iteration costs a pass per parameter
    settings = TrainSettings(optimizer=name, lr=ETN_LR.get(name), batch_size=8, budget=Budget(epochs=epochs), seed=1,
                             init_interval=1e-2, clip=clip)
    if name == "native":
        with pytest.raises(ValueError, match="trains MTP potentials"):
            train(obj, settings)
        return
    start = obj.loss(obj.initial_params(1, 1e-2))
    r = train(obj, settings)
    assert r.status in ("budget", "converged", "stopped"), r.message
    assert obj.loss(r.x) < 0.5 * start, (name, start, obj.loss(r.x))
    assert r.valid is not None and np.isfinite(r.valid.epa_rmse)


def test_cli_template_and_train_accept_etn_specs(tmp_path, agpd_split, capsys):
    """`optbench template "etn ..."` writes an untrained ETN file, `optbench train "etn ..."`
    trains and saves one (.json), and a .mtp target for an ETN is refused before training."""
    from optbench.cli import main
    from optbench.io import write_cfg

    out = tmp_path / "untrained.json"
    assert main(["template", "etn shape=1;2;1 lmax=1", "--species", "2", "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["species_count"] == 2 and doc["shape"] == [[1, 1], [2, 2], [1, 1]]
    train_set, valid = agpd_split
    write_cfg(train_set, tmp_path / "train.cfg")
    write_cfg(valid, tmp_path / "valid.cfg")
    fit = tmp_path / "fit.json"
    args = ["train", "etn shape=1;2;1 lmax=1", str(tmp_path / "train.cfg"), "--valid", str(tmp_path / "valid.cfg"),
            "--optimizer", "adam", "--lr", "0.01", "--batch-size", "8", "--budget", "epochs=2",
            "--stress-weight", "0", "--threads", "1", "--save-to"]
    assert main(args + [str(fit)]) == 0
    assert "Errors on the validation set" in capsys.readouterr().out
    assert json.loads(fit.read_text())["format"] == "optbench-etn"
    assert main(args + [str(tmp_path / "fit.mtp")]) == 2
    assert "ETN potentials are saved as .json" in capsys.readouterr().err
