"""The least-squares structure of the loss and the Gauss-Newton optimizers built on it.

Checked: mlipc_jt_product (J^T u of the predictions' Jacobian) against central finite
differences of the predictions for MTP and ETN with energy, force and stress components
(< 1e-6 relative); the residual vector's squared norm is the engine's loss and 2 J^T r its
gradient; J v (finite differences of residuals) and J^T u are adjoint to each other and
agree with a dense Jacobian; lm (dense and matrix-free) and gn_tr decrease the loss on every
accepted step and fit labels made by a potential of the same form (a problem with a known
zero-residual solution) by orders of magnitude, and dense lm converges quadratically there.
"""

from __future__ import annotations


import numpy as np
import pytest

from optbench.io import generate_agpd_split
from optbench.objective import EngineObjective, LossWeights
from optbench.train import Budget, TrainSettings, train
from physics_helpers import teacher_problem

SPECS = {"mtp": "mtp level=8 species=2", "etn": "etn species=2 shape=1;4;2 ranks=1;1"}


@pytest.fixture(scope="module")
def small():
    return generate_agpd_split(5, 2, seed=2)


@pytest.mark.parametrize("kind", list(SPECS))
def test_jt_product_matches_finite_differences(engine, small, kind):
    """v . (J^T u) equals d/dh [u . predictions(x + h v)] by central differences (h 1e-6)
    to 1e-6 relative, with energy, force and stress components of u all nonzero."""
    train_set, _ = small
    pot = engine.potential_from_spec(SPECS[kind])
    rng = np.random.default_rng(0)
    x = pot.default_params() + 0.05 * rng.standard_normal(pot.n_params)
    pot.set_params(x)
    ds = engine.dataset(train_set, pot.cutoff)
    e, f, s = engine.predict(pot, ds)
    u = rng.standard_normal(e.shape), rng.standard_normal(f.shape), rng.standard_normal(s.shape)
    for parts in ((0,), (1,), (2,), (0, 1, 2)):
        us = [u[i] if i in parts else None for i in range(3)]
        g = engine.jt_product(pot, ds, *us)
        v = rng.standard_normal(pot.n_params)

        def dot(xx):
            pot.set_params(xx)
            pred = engine.predict(pot, ds)
            return sum(float((us[i] * pred[i]).sum()) for i in parts)

        h = 1e-6
        fd = (dot(x + h * v) - dot(x - h * v)) / (2 * h)
        assert g @ v == pytest.approx(fd, rel=1e-6), parts
        pot.set_params(x)


def test_residuals_give_the_loss_and_its_gradient(engine, small):
    """|r(x)|^2 is loss_grad's mean loss and 2 J^T r its gradient (to rounding), with
    energy, force and stress weights."""
    train_set, valid = small
    obj = EngineObjective(engine, engine.potential_from_spec(SPECS["mtp"]), train_set, valid,
                          LossWeights(energy=1.0, forces=0.02, stress=0.01))
    x = obj.initial_params(0, 0.05)
    r = obj.residuals(x)
    loss, g = obj.loss_grad(x)
    assert r.size == obj.n_residuals
    assert r @ r == pytest.approx(loss, rel=1e-13)
    np.testing.assert_allclose(2 * obj.vjp(x, r), g, rtol=0, atol=1e-12 * np.max(np.abs(g)))


def test_jvp_and_vjp_are_adjoint_and_match_a_dense_jacobian(engine, small):
    """u . (J v) = (J^T u) . v for random u, v (1e-6 relative), and the normal-equation
    product J^T J v equals the dense J^T J of J's columns (J e_i) times v."""
    train_set, _ = small
    obj = EngineObjective(engine, engine.potential_from_spec("mtp level=4 species=2"), train_set, None,
                          LossWeights(stress=0.001))
    x = obj.initial_params(1, 0.05)
    rng = np.random.default_rng(3)
    u, v = rng.standard_normal(obj.n_residuals), rng.standard_normal(obj.n_params)
    assert u @ obj.jvp(x, v) == pytest.approx(obj.vjp(x, u) @ v, rel=1e-6)
    J = np.column_stack([obj.jvp(x, e) for e in np.eye(obj.n_params)])
    np.testing.assert_allclose(obj.vjp(x, obj.jvp(x, v)), J.T @ (J @ v), rtol=1e-6,
                               atol=1e-6 * np.max(np.abs(J.T @ J @ v)))


@pytest.mark.parametrize("optimizer,solver", [("lm", "dense"), ("lm", "cg"), ("gn_tr", None)])
def test_gauss_newton_fits_a_problem_with_a_known_solution(engine, optimizer, solver):
    """From 1e-3 away from the teacher's parameters, 8 iterations decrease the loss on every
    accepted step and by more than 10x overall (lm with either solver, gn_tr)."""
    data, xt = teacher_problem(engine)
    obj = EngineObjective(engine, engine.potential_from_spec("mtp level=6 species=2"), data, None,
                          LossWeights(stress=0.001), start=xt + 1e-3 * np.random.default_rng(2).standard_normal(xt.size))
    f0 = obj.loss(obj.initial_params(0))
    hyper = {"gtol": 0.0, "ftol": 0.0, "maxiter": 8} | ({"solver": solver} if solver else {})
    r = train(obj, TrainSettings(optimizer=optimizer, budget=Budget(evals=10 ** 7), eval_every=1000, hyper=hyper))
    losses = r.history.loss
    assert losses and all(b < a for a, b in zip([f0] + losses, losses))
    assert losses[-1] < f0 / 10
    assert r.nit == 8 and r.status == "stopped"


def test_dense_lm_converges_quadratically_near_a_known_solution(engine):
    """Gauss-Newton on a zero-residual problem converges quadratically: with the dense
    solver the loss falls below 1e-15 of its start within 8 iterations, and some step on
    the way has an order estimate log(f_k+2 / f_k+1) / log(f_k+1 / f_k) of at least 1.8
    (linear convergence gives 1)."""
    data, xt = teacher_problem(engine)
    obj = EngineObjective(engine, engine.potential_from_spec("mtp level=6 species=2"), data, None,
                          LossWeights(stress=0.001), start=xt + 1e-3 * np.random.default_rng(2).standard_normal(xt.size))
    f0 = obj.loss(obj.initial_params(0))
    r = train(obj, TrainSettings(optimizer="lm", budget=Budget(evals=10 ** 7), eval_every=1000,
                                 hyper={"gtol": 0.0, "ftol": 0.0, "maxiter": 8, "solver": "dense"}))
    f = np.array([f0] + r.history.loss)
    assert f[-1] < 1e-15 * f0, f
    logs = np.log(f)
    orders = [(logs[k + 2] - logs[k + 1]) / (logs[k + 1] - logs[k]) for k in range(len(f) - 2)
              if f[k + 2] > 1e-22 * f0]
    assert max(orders) >= 1.8, (f, orders)
