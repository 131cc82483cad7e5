"""Parity of our NumPy optimizers with optax (float64), and their contracts.

Each first-order optimizer and Muon follows the same parameter trajectory as optax's
optimizer of the same name over 100 steps of a point-dependent gradient (a random convex
quadratic plus a quartic), to 1e-10 relative at every step. Muon is compared with
optax.contrib.muon applied to the same matrix view of the vector (zero-padded square or
m x n factorization); optax's default width scaling sqrt(max(1, fan_out / fan_in)) is our
scale="shape", its consistent_rms=0.2 our scale="adamw_match".
"""

from __future__ import annotations

import numpy as np
import pytest

from optbench.harness.optimizers import first_order as fo
from optbench.harness.optimizers import muon as mu

optax = pytest.importorskip("optax")
jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

N = 12
LR = 3e-2
STEPS = 100


def _problem(n=N, seed=0):
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((n, n))
    A = Q @ Q.T / n + 0.1 * np.eye(n)
    b = rng.standard_normal(n)

    def grad(x):
        return A @ x - b + 0.1 * x ** 3

    return grad, rng.standard_normal(n)


def _ours(opt, grad, x0, lr=LR):
    x, s, out = x0.copy(), opt.init(x0), []
    for _ in range(STEPS):
        step, s = opt.update(grad(x), s, x, lr)
        x = x + step
        out.append(opt.eval_params(x, s).copy())
    return out


def _theirs(tx, grad, x0, reported=lambda state, params: params):
    """optax's trajectory; `reported(state, params)` is the point it reports."""
    p = jnp.asarray(x0)
    s = tx.init(p)
    update = jax.jit(tx.update)
    out = []
    for _ in range(STEPS):
        u, s = update(jnp.asarray(grad(np.asarray(p))), s, p)
        p = optax.apply_updates(p, u)
        out.append(np.asarray(reported(s, p)))
    return out


def _assert_same(a, b):
    for k, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(y).max()),
                                   err_msg=f"step {k + 1}")


CASES = {
    "sgd": (lambda: fo.sgd(), lambda: optax.sgd(LR)),
    "momentum": (lambda: fo.momentum(0.9), lambda: optax.sgd(LR, momentum=0.9)),
    "nesterov": (lambda: fo.momentum(0.9, True), lambda: optax.sgd(LR, momentum=0.9, nesterov=True)),
    "adam": (lambda: fo.adam(), lambda: optax.adam(LR)),
    "adamw": (lambda: fo.adamw(weight_decay=1e-2), lambda: optax.adamw(LR, weight_decay=1e-2)),
    "radam": (lambda: fo.radam(), lambda: optax.radam(LR)),
    "lamb": (lambda: fo.lamb(weight_decay=1e-3), lambda: optax.lamb(LR, weight_decay=1e-3)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_order_trajectories_match_optax(name):
    """Same gradients, same trajectory as optax to 1e-10 relative for 100 steps."""
    ours, theirs = CASES[name]
    grad, x0 = _problem()
    _assert_same(_ours(ours(), grad, x0), _theirs(theirs(), grad, x0))


def test_ranger_matches_optax_lookahead_radam():
    """Ranger = optax.lookahead(optax.radam) with sync period k and slow step alpha; we
    report the slow weights, optax's params.slow."""
    grad, x0 = _problem()
    tx = optax.lookahead(optax.radam(LR), sync_period=6, slow_step_size=0.5)
    p = optax.LookaheadParams.init_synced(jnp.asarray(x0))
    s = tx.init(p)
    update = jax.jit(tx.update)
    theirs = []
    for _ in range(STEPS):
        g = jnp.asarray(grad(np.asarray(p.fast)))
        u, s = update(g, s, p)
        p = optax.apply_updates(p, u)
        theirs.append(np.asarray(p.slow))
    _assert_same(_ours(fo.ranger(k=6, alpha=0.5), grad, x0), theirs)


def test_schedule_free_matches_optax_at_the_evaluation_point():
    """ScheduleFree AdamW: gradients at y, reported at optax's schedule_free_eval_params."""
    grad, x0 = _problem()
    tx = optax.contrib.schedule_free_adamw(LR, weight_decay=1e-3)
    theirs = _theirs(tx, grad, x0, optax.contrib.schedule_free_eval_params)
    _assert_same(_ours(fo.schedule_free_adamw(weight_decay=1e-3), grad, x0), theirs)


@pytest.mark.parametrize("n,view,scale", [(12, "factorization", "shape"), (10, "pad_sqrt", "shape"),
                                          (12, "factorization", "adamw_match"), (14, "pad_sqrt", "adamw_match")])
def test_muon_matches_optax_on_the_matrix_view(n, view, scale):
    """Muon on the flat vector equals optax.contrib.muon on the padded/factorised matrix
    (padding dropped), Nesterov momentum, NS5 in float64."""
    grad, x0 = _problem(n)
    rows, cols = mu.matrix_shape(n, view)
    kw = {} if scale == "shape" else {"consistent_rms": 0.2}
    tx = optax.contrib.muon(LR, **kw)

    def to_matrix(v):
        M = np.zeros(rows * cols)
        M[:n] = v
        return jnp.asarray(M.reshape(rows, cols))

    p = to_matrix(x0)
    s = tx.init(p)
    update = jax.jit(tx.update)
    theirs = []
    for _ in range(STEPS):
        xv = np.asarray(p).reshape(-1)[:n]
        u, s = update(to_matrix(grad(xv)), s, p)
        # Padded entries carry no gradient; only the first n of the update are kept,
        # as our flat optimizer drops the padded outputs.
        p = to_matrix(np.asarray(optax.apply_updates(p, u)).reshape(-1)[:n])
        theirs.append(np.asarray(p).reshape(-1)[:n])
    _assert_same(_ours(mu.muon(view, scale=scale), grad, x0), theirs)


def test_muon_views_and_prime_warning():
    """12 -> 3 x 4 by factorization, 10 -> 4 x 4 padded; a prime N warns (1 x N)."""
    assert mu.matrix_shape(12, "factorization") == (3, 4)
    assert mu.matrix_shape(10, "pad_sqrt") == (4, 4)
    assert mu.matrix_shape(16, "pad_sqrt") == (4, 4)
    with pytest.warns(UserWarning, match="prime"):
        mu.muon("factorization").init(np.ones(13))
    with pytest.raises(ValueError, match="view must be"):
        mu.muon("square")


@pytest.mark.parametrize("name", sorted(fo.REGISTRY) + sorted(mu.REGISTRY))
def test_update_is_pure(name):
    """update() leaves its gradient, state and parameters untouched."""
    reg = {**fo.REGISTRY, **mu.REGISTRY}
    opt = reg[name].build()
    x = np.linspace(-1, 1, 9)
    g = np.cos(x)
    s = opt.init(x)
    step, s = opt.update(g, s, x, 1e-2)
    copies = (x.copy(), g.copy(), {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()})
    opt.update(g, s, x, 1e-2)
    np.testing.assert_array_equal(x, copies[0])
    np.testing.assert_array_equal(g, copies[1])
    for k, v in copies[2].items():
        np.testing.assert_array_equal(s[k], v)


def test_bad_hyperparameters_name_the_field():
    """Out-of-range values and unknown names are ValueErrors that say which."""
    with pytest.raises(ValueError, match="b1"):
        fo.adam(b1=1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        fo.adamw(weight_decay=-1)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        fo.REGISTRY["adam"].build(beta1=0.9)
    with pytest.raises(ValueError, match="k must be"):
        fo.ranger(k=0)
