"""mlipc_linear_system: the loss as a quadratic in the linear parameters.

For fixed radial coefficients the loss of mlipc_loss_grad is c^T A c - 2 b^T c + r0 in
the species and moment coefficients c (the trailing block of the parameter vector).
These tests check that quadratic against loss_grad itself (values and gradients), its
minimiser, additivity over configuration subsets, thread-count independence, the
handling of missing labels, and the errors of the binding.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from conftest import random_potential

from optbench.engine import capi


def _weights(data, seed=0):
    """Per-configuration (wE, wF, wS) of the Objective's kind (1/N, 0.01, 0.001/N), each
    jittered so that a mix-up of configurations would show."""
    n = np.array([c.n_atoms for c in data.configs], dtype=float)
    rng = np.random.default_rng(seed)
    w = np.stack([1.0 / n, np.full_like(n, 0.01), 0.001 / n], axis=1)
    return w * rng.uniform(0.5, 1.5, w.shape)


def _with_linear(pot, c):
    x = pot.get_params()
    x[pot.linear_slice] = c
    pot.set_params(x)


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / max(np.max(np.abs(b)), 1e-300))


def _quad(A, b, r0, c):
    return float(c @ A @ c - 2 * b @ c + r0)


def test_linear_slice_is_species_then_moment(engine):
    """Potential.linear_slice is the trailing species+moment block that linear_system
    sizes A and b by."""
    pot = random_potential(engine, level=8)
    g = pot.groups()
    sl = pot.linear_slice
    assert sl == slice(g["species"].start, g["moment"].stop)
    assert sl.stop == pot.n_params and g["radial"].stop == sl.start
    assert pot.info()["linear_groups"] == ["species", "moment"]


@pytest.mark.parametrize("level", [8, 10])
def test_quadratic_equals_loss_grad(engine, agpd_small, level):
    """At several random c, c^T A c - 2 b^T c + r0 equals loss_grad's loss (1e-10
    relative) and 2 (A c - b) equals loss_grad's gradient in c (1e-9 relative); A is
    symmetric, and r0 is the loss at c = 0."""
    pot = random_potential(engine, level=level, seed=level)
    ds = engine.dataset(agpd_small, pot.cutoff)
    w = _weights(agpd_small, seed=1)
    A, b, r0 = engine.linear_system(pot, ds, w)
    sl = pot.linear_slice
    n_lin = sl.stop - sl.start
    assert A.shape == (n_lin, n_lin) and b.shape == (n_lin,)
    assert np.array_equal(A, A.T)
    c_fit = pot.get_params()[sl]
    rng = np.random.default_rng(level)
    cs = [np.zeros(n_lin), c_fit] + [c_fit + 0.5 * np.abs(c_fit).mean() * rng.standard_normal(n_lin)
                                     for _ in range(3)]
    for c in cs:
        _with_linear(pot, c)
        loss, g = engine.loss_grad(pot, ds, w)
        assert _quad(A, b, r0, c) == pytest.approx(loss, rel=1e-10)
        assert _rel(2 * (A @ c - b), g[sl]) < 1e-9
    _with_linear(pot, np.zeros(n_lin))
    assert r0 == pytest.approx(engine.loss_grad(pot, ds, w, grad=False)[0], rel=1e-14)


def test_mixed_weights_and_terms(engine, agpd_small):
    """Configurations with only some terms weighted (energy only, forces only, stress
    only, none) still give loss_grad's loss and gradient: every branch of the engine's
    accumulation is exercised, at level 12 (longer derivative patterns)."""
    pot = random_potential(engine, level=12, seed=3)
    ds = engine.dataset(agpd_small, pot.cutoff)
    w = _weights(agpd_small, seed=2)
    w[0, 1:] = 0        # energy only
    w[1, [0, 2]] = 0    # forces only
    w[2, :2] = 0        # stress only
    w[3] = 0            # nothing
    A, b, r0 = engine.linear_system(pot, ds, w)
    sl = pot.linear_slice
    rng = np.random.default_rng(5)
    c0 = pot.get_params()[sl]
    for _ in range(2):
        c = c0 + 0.3 * np.abs(c0).mean() * rng.standard_normal(c0.size)
        _with_linear(pot, c)
        loss, g = engine.loss_grad(pot, ds, w)
        assert _quad(A, b, r0, c) == pytest.approx(loss, rel=1e-10)
        assert _rel(2 * (A @ c - b), g[sl]) < 1e-9


def test_solution_is_the_minimum(engine, agpd_small):
    """c* solving A c = b (least squares plus a tiny ridge: A is ill-conditioned) has a
    loss no higher than random perturbations of it, and loss_grad's gradient in the
    linear parameters vanishes there (relative to its size at c = 0)."""
    pot = random_potential(engine, level=8, seed=4)
    ds = engine.dataset(agpd_small, pot.cutoff)
    w = _weights(agpd_small, seed=3)
    A, b, r0 = engine.linear_system(pot, ds, w)
    sl = pot.linear_slice
    ridge = 1e-12 * np.trace(A) / len(b)
    c_star = np.linalg.solve(A + ridge * np.eye(len(b)), b)
    _with_linear(pot, c_star)
    loss_star, g_star = engine.loss_grad(pot, ds, w)
    _with_linear(pot, np.zeros(len(b)))
    _, g0 = engine.loss_grad(pot, ds, w)
    assert loss_star < r0
    assert loss_star == pytest.approx(_quad(A, b, r0, c_star), rel=1e-8, abs=1e-12 * r0)
    assert np.linalg.norm(g_star[sl]) < 1e-7 * np.linalg.norm(g0[sl])
    rng = np.random.default_rng(0)
    for scale in (1e-3, 1e-2, 1e-1):
        for _ in range(3):
            d = scale * np.abs(c_star).mean() * rng.standard_normal(len(b))
            _with_linear(pot, c_star + d)
            assert engine.loss_grad(pot, ds, w, grad=False)[0] >= loss_star


def test_subsets_add_up(engine, agpd_small):
    """The system over idx is the sum of the systems over a partition of idx; a listed
    configuration counts once per listing (as in loss_grad) and an empty idx gives 0."""
    pot = random_potential(engine, level=8, seed=5)
    ds = engine.dataset(agpd_small, pot.cutoff)
    w = _weights(agpd_small, seed=4)
    A, b, r0 = engine.linear_system(pot, ds, w)
    parts = [engine.linear_system(pot, ds, w, idx=ix) for ix in ([4, 0, 2], [1], [5, 3])]
    assert _rel(sum(p[0] for p in parts), A) < 1e-12
    assert _rel(sum(p[1] for p in parts), b) < 1e-12
    assert sum(p[2] for p in parts) == pytest.approx(r0, rel=1e-12)
    one = engine.linear_system(pot, ds, w, idx=[3])
    twice = engine.linear_system(pot, ds, w, idx=[3, 3])
    assert _rel(twice[0], 2 * one[0]) < 1e-14 and twice[2] == pytest.approx(2 * one[2], rel=1e-14)
    A0, b0, r00 = engine.linear_system(pot, ds, w, idx=np.array([], dtype=np.int64))
    assert not A0.any() and not b0.any() and r00 == 0.0


def test_thread_count_independent(engine, agpd_small):
    """Two threads give the one-thread system to 1e-12 relative, and the same bits on a
    repeat."""
    pot = random_potential(engine, level=10, seed=6)
    ds = engine.dataset(agpd_small, pot.cutoff)
    w = _weights(agpd_small, seed=5)
    one = engine.linear_system(pot, ds, w)
    try:
        engine.set_num_threads(2)
        two = engine.linear_system(pot, ds, w)
        again = engine.linear_system(pot, ds, w)
    finally:
        engine.set_num_threads(1)
    for x1, x2, x3 in zip(one, two, again):
        assert _rel(x2, np.asarray(x1)) < 1e-12
        assert np.array_equal(x2, x3)


def test_missing_labels(engine, agpd_small):
    """NaN labels under zero weights are skipped as loss_grad skips them (the system
    equals the one with those terms' weights zeroed on the complete labels); under a
    nonzero weight both calls raise EngineDataError naming the configuration."""
    pot = random_potential(engine, level=8, seed=7)
    ds_full = engine.dataset(agpd_small, pot.cutoff)
    ds = engine.dataset(agpd_small, pot.cutoff)
    e = np.array([c.energy for c in agpd_small.configs])
    f = np.concatenate([c.forces for c in agpd_small.configs])
    s = np.array([c.stress for c in agpd_small.configs])
    first = np.cumsum([0] + [c.n_atoms for c in agpd_small.configs])
    e[0] = np.nan
    f[first[1] + 2, 1] = np.nan
    s[2, 4] = np.nan
    ds.set_labels(e, f, s)
    w = _weights(agpd_small, seed=6)
    w[0, 0] = w[1, 1] = w[2, 2] = 0.0
    A, b, r0 = engine.linear_system(pot, ds, w)
    Af, bf, r0f = engine.linear_system(pot, ds_full, w)
    assert np.array_equal(A, Af) and np.array_equal(b, bf) and r0 == r0f
    c = pot.get_params()[pot.linear_slice]
    assert _quad(A, b, r0, c) == pytest.approx(engine.loss_grad(pot, ds, w, grad=False)[0], rel=1e-10)
    for k, term in ((0, 0), (1, 1), (2, 2)):
        bad = w.copy()
        bad[k, term] = 0.01
        with pytest.raises(capi.EngineDataError, match=f"configuration {k} has"):
            engine.linear_system(pot, ds, bad)
        with pytest.raises(capi.EngineDataError, match=f"configuration {k} has"):
            engine.loss_grad(pot, ds, bad)


def test_bad_arguments(engine, agpd_small):
    """Bad idx and weights raise what loss_grad raises for them (EngineArgumentError /
    ValueError with the engine's message); a wrong n_lin at the C level fails with
    MLIPC_ERR_ARGUMENT and reports the right size; the size query needs no data."""
    pot = random_potential(engine, level=8)
    ds = engine.dataset(agpd_small, pot.cutoff)
    w = _weights(agpd_small)
    for idx in ([0, 6], [-1], [2, 100]):
        with pytest.raises(capi.EngineArgumentError, match="configuration index .* outside 0..5"):
            engine.linear_system(pot, ds, w, idx=idx)
        with pytest.raises(capi.EngineArgumentError, match="configuration index .* outside 0..5"):
            engine.loss_grad(pot, ds, w, idx=idx)
    for bad in (w[:5], w[:, :2], w.reshape(-1)):
        with pytest.raises(ValueError, match="weights must have shape"):
            engine.linear_system(pot, ds, bad)
    for value, what in ((-1.0, "wF"), (np.nan, "wF"), (np.inf, "wF")):
        bad = w.copy()
        bad[3, 1] = value
        with pytest.raises(capi.EngineArgumentError, match=f"weight {what} of configuration 3"):
            engine.linear_system(pot, ds, bad)

    lib = engine.lib
    n = ctypes.c_int64(-5)
    engine.check(lib.mlipc_linear_system(pot.handle, None, None, 0, None, ctypes.byref(n), None, None, None))
    n_lin = pot.linear_slice.stop - pot.linear_slice.start
    assert n.value == n_lin
    A = np.empty((n_lin + 1) ** 2)
    b = np.empty(n_lin + 1)
    n = ctypes.c_int64(n_lin + 1)
    wc = np.ascontiguousarray(w)
    status = lib.mlipc_linear_system(pot.handle, ds.handle, None, 0, wc.ctypes.data_as(capi._c_double_p),
                                     ctypes.byref(n), A.ctypes.data_as(capi._c_double_p),
                                     b.ctypes.data_as(capi._c_double_p), None)
    assert status == 1 and n.value == n_lin
    assert f"n_lin is {n_lin + 1} but the potential has {n_lin} linear parameters" in lib.mlipc_last_error().decode()
    # Wrong species count in the data: the potential's data error, as for loss_grad.
    pot1 = engine.potential_from_spec("mtp level=8 species=1 max_dist=5.0")
    with pytest.raises(capi.EngineDataError, match="species index 1 but the potential has 1 species"):
        engine.linear_system(pot1, engine.dataset(agpd_small, 5.0), w)
