"""The Objective contract (ARCHITECTURE.md) over the embedded engine.

Contracts checked: MLIP's weight conventions per configuration; loss_grad is the mean
over the batch of the engine's weighted loss, with its exact gradient, and counts the
configurations evaluated; initial_params is seeded and bounded by the interval;
evaluate returns MLIP's metrics (zero error on labels the potential produced itself);
save writes a file the engine reads back to the same predictions; SciPy L-BFGS-B
through the Objective lowers the validation error of a level-6 MTP on generated data.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_potential
from scipy.optimize import minimize

from optbench.io import Configuration, DataSet
from optbench.objective import EngineObjective, LossWeights, Objective


def test_loss_weights_follow_mlip_conventions(agpd_small):
    """wE = energy/N^s, wF = forces/N^sf, wS = stress/N^s (0 without a stress label)."""
    n = np.array([c.n_atoms for c in agpd_small.configs], dtype=float)
    w = LossWeights(energy=2.0, forces=0.1, stress=0.5, weight_scaling=1).per_config(agpd_small)
    np.testing.assert_allclose(w[:, 0], 2.0 / n)
    np.testing.assert_allclose(w[:, 1], 0.1)
    np.testing.assert_allclose(w[:, 2], 0.5 / n)
    w2 = LossWeights(weight_scaling=2, weight_scaling_forces=1).per_config(agpd_small)
    np.testing.assert_allclose(w2[:, 0], 1.0 / n ** 2)
    np.testing.assert_allclose(w2[:, 1], 0.01 / n)
    nostress = DataSet([Configuration(positions=c.positions, types=c.types, cell=c.cell, energy=c.energy,
                                      forces=c.forces) for c in agpd_small.configs])
    assert np.all(LossWeights().per_config(nostress)[:, 2] == 0)
    with pytest.raises(ValueError, match="forces"):
        LossWeights(forces=-1.0)
    with pytest.raises(ValueError, match="weight_scaling"):
        LossWeights(weight_scaling=3)


def test_loss_grad_is_batch_mean(engine, agpd_small):
    """loss_grad(x, batch) = engine loss over the batch / |batch|, gradient alike; the
    configurations evaluated are counted."""
    pot = random_potential(engine, level=6, seed=3)
    obj = EngineObjective(engine, pot, agpd_small, None, LossWeights(stress=0.01))
    assert isinstance(obj, Objective)
    x = pot.get_params()
    ds = engine.dataset(agpd_small, 5.0)
    w = obj.weights.per_config(agpd_small)
    l_all, g_all = engine.loss_grad(pot, ds, w)
    l, g = obj.loss_grad(x)
    assert l == pytest.approx(l_all / len(agpd_small), rel=1e-14)
    np.testing.assert_allclose(g, g_all / len(agpd_small), rtol=1e-14)
    b = np.array([1, 4])
    lb, gb = obj.loss_grad(x, b)
    l_b, g_b = engine.loss_grad(pot, ds, w, idx=b)
    assert lb == pytest.approx(l_b / 2, rel=1e-14)
    assert obj.configs_evaluated == len(agpd_small) + 2
    assert obj.loss(x, b) == pytest.approx(lb, rel=1e-14)
    with pytest.raises(ValueError, match="shape"):
        obj.loss_grad(x[:-1])


def test_initial_params_seeded_and_bounded(engine, agpd_small):
    """Same seed -> same vector; different seeds differ; |x - default| <= interval."""
    pot = engine.potential_from_spec("mtp level=6 species=2")
    obj = EngineObjective(engine, pot, agpd_small)
    d = pot.default_params()
    a, b, c = obj.initial_params(1, 0.1), obj.initial_params(1, 0.1), obj.initial_params(2, 0.1)
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)
    assert np.max(np.abs(a - d)) <= 0.1
    np.testing.assert_array_equal(obj.initial_params(5, None), d)


def test_evaluate_and_save(engine, agpd_small, tmp_path):
    """Labels produced by the potential itself give zero errors; save() round-trips."""
    pot = random_potential(engine, level=6, seed=4, scale=0.1)
    x = pot.get_params()
    ds = engine.dataset(agpd_small, 5.0)
    e, f, s = engine.predict(pot, ds)
    self_labelled, start = [], 0
    for k, c in enumerate(agpd_small.configs):
        self_labelled.append(Configuration(positions=c.positions, types=c.types, cell=c.cell, energy=e[k],
                                           forces=f[start:start + c.n_atoms], stress=s[k]))
        start += c.n_atoms
    obj = EngineObjective(engine, pot, agpd_small, DataSet(self_labelled))
    m = obj.evaluate(x, "valid")
    assert m.energy.rmse < 1e-12 and m.forces.rmse < 1e-12 and m.stress.rmse < 1e-10
    assert m.n_configs == len(agpd_small)
    mt = obj.evaluate(x, "train")
    assert mt.energy.rmse > 0
    obj.save(x, tmp_path / "fit.mtp")
    back = engine.load_potential(tmp_path / "fit.mtp")
    np.testing.assert_array_equal(engine.predict(back, ds)[0], e)
    with pytest.raises(ValueError, match="split"):
        obj.evaluate(x, "test")


def test_species_mismatch_is_reported(engine, agpd_small):
    """A data set with more species than the potential is refused before any fit."""
    pot = engine.potential_from_spec("mtp level=6 species=1")
    with pytest.raises(ValueError, match="species=2"):
        EngineObjective(engine, pot, agpd_small)


def test_lbfgs_through_objective_learns(engine):
    """SciPy L-BFGS-B on the Objective lowers validation EPA RMSE by 10x from the start."""
    from optbench.io.generator import generate_agpd_split
    train, valid = generate_agpd_split(24, 8, seed=3)
    pot = engine.potential_from_spec("mtp level=8 species=2 min_dist=2.0 max_dist=5.0")
    obj = EngineObjective(engine, pot, train, valid, LossWeights(stress=0.0))
    x0 = obj.initial_params(0, 1e-2)
    before = obj.evaluate(x0).epa_rmse
    res = minimize(obj.loss_grad, x0, jac=True, method="L-BFGS-B", options={"maxiter": 400})
    after = obj.evaluate(res.x).epa_rmse
    assert after < before / 10
    assert after < 0.02  # eV/atom
