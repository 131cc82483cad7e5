"""The linear block's design (mlipc_linear_design) and the separable optimizers on it.

Checked: for MTP the engine's design times the linear coefficients reproduces the
predictions to rounding (energies, forces and PlusStress: the predictions are linear and
homogeneous in them), equals the design built from one prediction per coefficient, and
D^T D, D^T y, |y|^2 are mlipc_linear_system's normal equations; for ETN (species
coefficients and the last core, built from predictions) the residuals are D c - y at random
values of the block; the QR solve reaches a lower loss than the normal equations where the
basis is ill-conditioned; varpro (Levenberg-Marquardt on the nonlinear block) and the
separable methods run on MTP and ETN and fit labels made by a potential of the same form.
"""

from __future__ import annotations

import numpy as np
import pytest

from optbench.engine.capi import EngineUnsupportedError
from optbench.io import generate_agpd_split
from optbench.objective import EngineObjective, LossWeights
from optbench.train import Budget, TrainSettings, train
from physics_helpers import teacher_problem

SPECS = {"mtp": "mtp level=8 species=2", "etn": "etn species=2 shape=1;4;2 ranks=1;1"}


@pytest.fixture(scope="module")
def small():
    return generate_agpd_split(6, 2, seed=4)


def _objective(engine, small, kind, noise=0.05):
    train_set, valid = small
    obj = EngineObjective(engine, engine.potential_from_spec(SPECS[kind]), train_set, valid,
                          LossWeights(energy=1.0, forces=0.02, stress=0.01))
    return obj, obj.initial_params(3, noise)


def test_mtp_design_reproduces_the_predictions(engine, small):
    """dE c, dF c, dS c equal the engine's energies (eV), forces (eV/A) and PlusStress (eV)
    to 1e-12 relative, for the whole set and for a list of configurations."""
    obj, x = _objective(engine, small, "mtp")
    pot, lin = obj.potential, obj.linear_slice
    pot.set_params(x)
    ds = engine.dataset(small[0], pot.cutoff)
    for idx in (None, np.array([3, 0, 4])):
        dE, dF, dS = engine.linear_design(pot, ds, idx=idx)
        e, f, s = engine.predict(pot, ds, idx=idx)
        c = x[lin]
        for got, want in ((dE @ c, e), (dF @ c, f.ravel()), (dS @ c, s.ravel())):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.max(np.abs(want)))


def test_mtp_design_equals_the_predictions_column_by_column_and_the_normal_equations(engine, small):
    """The engine's design equals the one built from a prediction per coefficient (the
    path an ETN takes), and D^T D, D^T y, |y|^2 equal mlipc_linear_system's A, b, r0 in
    the units of the mean loss (1e-12 relative)."""
    obj, x = _objective(engine, small, "mtp")
    D, y = obj.linear_design(x)
    lin = obj.linear_slice
    z = x.copy()
    cols = []
    for j in range(lin.start, lin.stop):
        z[lin] = 0.0
        z[j] = 1.0
        cols.append(obj.residuals(z) + y)
    np.testing.assert_allclose(D, np.column_stack(cols), rtol=0, atol=1e-11 * np.max(np.abs(D)))
    A, b, r0 = obj.linear_system(x)
    np.testing.assert_allclose(D.T @ D, A, rtol=0, atol=1e-12 * np.max(np.abs(A)))
    np.testing.assert_allclose(D.T @ y, b, rtol=0, atol=1e-12 * np.max(np.abs(b)))
    assert y @ y == pytest.approx(r0, rel=1e-12)


def test_etn_is_linear_in_its_species_and_last_core(engine, small):
    """An ETN's info lists species and its last core as linear groups; the engine has no
    kernel for them (EngineUnsupportedError), and the design from predictions gives the
    residuals as D c - y for random c (1e-10 relative): linear and homogeneous."""
    obj, x = _objective(engine, small, "etn")
    info = obj.potential.info()
    assert info["linear_groups"] == ["species", f"core{info['n_cores']}"]
    ds = engine.dataset(small[0], obj.potential.cutoff)
    with pytest.raises(EngineUnsupportedError, match="ETN"):
        engine.linear_design(obj.potential, ds)
    D, y = obj.linear_design(x)
    lin = obj.linear_slice
    assert lin.stop == obj.n_params and D.shape == (obj.n_residuals, lin.stop - lin.start)
    rng = np.random.default_rng(0)
    for _ in range(3):
        z = x.copy()
        z[lin] = rng.standard_normal(lin.stop - lin.start)
        r = obj.residuals(z)
        np.testing.assert_allclose(D @ z[lin] - y, r, rtol=0, atol=1e-10 * np.max(np.abs(r)))
    A, b, r0 = obj.linear_system(x)  # from the design
    np.testing.assert_allclose(A, D.T @ D)


def test_qr_solve_beats_the_normal_equations_on_an_ill_conditioned_basis(engine, small):
    """At a random MTP level-16 start the design's condition number is beyond 1e8, and the
    least-squares solution from its QR factorisation (what the separable methods use)
    reaches a loss no higher than Cholesky on the normal equations with the old relative
    ridge 1e-10 (to 1e-12 relative), and lower than the normal equations' own residual."""
    train_set, valid = small
    obj = EngineObjective(engine, engine.potential_from_spec("mtp level=16 species=2"), train_set, valid,
                          LossWeights(energy=1.0, forces=0.01, stress=0.0))
    x = obj.initial_params(0, 0.1)
    D, y = obj.linear_design(x)
    assert np.linalg.cond(D) > 1e8
    Q, R = np.linalg.qr(D)
    c_qr = np.linalg.lstsq(R, Q.T @ y, rcond=1e-15)[0]
    A, b, _ = obj.linear_system(x)
    c_ne = np.linalg.solve(A + 1e-10 * np.mean(np.diag(A)) * np.eye(len(b)), b)
    loss = {}
    for name, c in (("qr", c_qr), ("normal", c_ne)):
        z = x.copy()
        z[obj.linear_slice] = c
        loss[name] = float(obj.residuals(z) @ obj.residuals(z))
    assert loss["qr"] <= loss["normal"] * (1 + 1e-12), loss


@pytest.mark.parametrize("kind", list(SPECS))
def test_varpro_fits_a_problem_with_a_known_solution(engine, kind):
    """From the teacher's nonlinear parameters perturbed by 1e-2 (and the linear block
    solved), varpro lowers the loss on every iteration and by more than 1e4 in 6; the
    linear block needs no starting value."""
    data, xt = teacher_problem(engine, SPECS[kind])
    start = xt + 1e-2 * np.random.default_rng(2).standard_normal(xt.size)
    obj = EngineObjective(engine, engine.potential_from_spec(SPECS[kind]), data, None,
                          LossWeights(stress=0.001), start=start)
    x0 = obj.initial_params(0)
    x0[obj.linear_slice] = 0.0
    f0 = obj.loss(x0)
    r = train(obj, TrainSettings(optimizer="varpro", budget=Budget(evals=10 ** 7), eval_every=1000,
                                 hyper={"gtol": 0.0, "ftol": 0.0, "maxiter": 6}))
    losses = r.history.loss
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < f0 * 1e-4, (f0, losses)
    assert r.nit == 6


@pytest.mark.parametrize("optimizer", ["varpro_lbfgs", "alternating"])
def test_separable_methods_run_on_etn(engine, small, optimizer):
    """varpro_lbfgs and alternating lower an ETN's training loss from its start (a budget
    of 60 passes over the set): the linear block now exists for ETN."""
    obj, x = _objective(engine, small, "etn")
    f0 = obj.loss(obj.initial_params(0, 0.05))
    r = train(obj, TrainSettings(optimizer=optimizer, budget=Budget(epochs=60), init_interval=0.05,
                                 eval_every=1000))
    assert r.history.loss and r.history.loss[-1] < f0


@pytest.mark.parametrize("optimizer,hyper,message", [
    ("lm", {"solver": "qr"}, "solver must be 'auto', 'dense' or 'cg'"),
    ("lm", {"solver": "dense", "jacobian_rows_per_column": -1}, "jacobian_rows_per_column must be >= 0"),
    ("varpro", {"jacobian_rows_per_column": -5.0}, "jacobian_rows_per_column must be >= 0"),
])
def test_bad_gauss_newton_settings_are_named(engine, small, optimizer, hyper, message):
    """A wrong solver or a negative rows-per-column is a ValueError naming the setting."""
    obj, _ = _objective(engine, small, "mtp")
    with pytest.raises(ValueError, match=message):
        train(obj, TrainSettings(optimizer=optimizer, budget=Budget(epochs=400), hyper=hyper))


def test_jacobian_sample_rows_follow_the_residual_layout(engine, small):
    """residuals(x, idx) equals the full residual vector at residual_rows(idx), for a
    shuffled list of configurations (energies, forces atom by atom, stresses)."""
    obj, x = _objective(engine, small, "mtp")
    idx = np.array([4, 1, 3])
    np.testing.assert_array_equal(obj.residuals(x, idx), obj.residuals(x)[obj.residual_rows(idx)])
