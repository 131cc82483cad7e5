"""Parity of our NumPy optimizers with optax 0.2.8 (float64), and their contracts.

Every entry of the first-order and Muon registries follows the same trajectory as the
optax optimizer it names over 100 steps, to 1e-10 relative at every step, both at the
point where gradients are taken and at the point reported (`eval_params` against
Lookahead's slow weights / optax.contrib.schedule_free_eval_params). Gradients depend on
the current point (a random convex quadratic plus a quartic), so any difference feeds
back into later steps. Muon is compared with optax.contrib.muon on the same matrix view
of the vector, built here by padding/reshaping, with the padded entries of optax's matrix
ignored; our scale="shape" is optax's default width scaling sqrt(max(1, fan_out /
fan_in)) (consistent_rms=None), scale="adamw_match" its consistent_rms=0.2.
ScheduleFree with warm-up is compared with optax's own construction of
schedule_free_adamw given a float64 warm-up schedule: optax's warmup_constant_schedule
computes in float32 even under jax_enable_x64, which alone accounts for a ~1e-8 relative
difference from optax.contrib.schedule_free_adamw(warmup_steps=...) (tested separately).

The optax tests are skipped when optax (or jax) is not installed; the contract tests at
the end need only NumPy.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from optbench.optim import first_order as fo
from optbench.optim import muon as mu

REGISTRY = {**fo.REGISTRY, **mu.REGISTRY}
N = 12
LR = 3e-2
STEPS = 100


@pytest.fixture(scope="module")
def optax():
    """optax with jax in float64, or a skip."""
    optax = pytest.importorskip("optax")
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return optax


def _problem(n: int = N, seed: int = 0):
    """Gradient of 0.5 x^T A x - b^T x + 0.025 sum x^4 (A random, positive definite) and a
    random start."""
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((n, n))
    A = Q @ Q.T / n + 0.1 * np.eye(n)
    b = rng.standard_normal(n)
    return (lambda x: A @ x - b + 0.1 * x ** 3), rng.standard_normal(n)


def _lr_sequence(varying: bool) -> np.ndarray:
    """Per-step learning rates: constant LR, or LR modulated by up to +-50%."""
    k = np.arange(STEPS)
    return LR * (1.0 + 0.5 * np.sin(0.7 * k)) if varying else np.full(STEPS, LR)


def _ours(opt, grad, x0, lrs):
    """Our trajectory: (gradient point x, reported point eval_params) after each step."""
    x, state, out = x0.copy(), opt.init(x0), []
    for lr in lrs:
        step, state = opt.update(grad(x), state, x, float(lr))
        x = x + step
        out.append((x, opt.eval_params(x, state)))
    return out


@dataclass
class View:
    """How a flat-vector optimizer maps onto optax's parameters: the initial optax params,
    the flat point where gradients are taken, the optax-shaped gradient, and the flat
    point optax reports."""

    params0: Callable
    at: Callable
    grad_tree: Callable
    reported: Callable


def _view(kind: str, optax, n: int) -> View:
    """The View of `kind`: "plain" (the vector itself), "lookahead" (gradients at the fast
    weights, slow weights reported), "schedule_free" (gradients at y,
    schedule_free_eval_params reported), or "pad_sqrt"/"factorization" (the vector as a
    rows x cols matrix, zero-padded for pad_sqrt; optax's padded entries get zero
    gradient and are ignored, as our flat Muon drops them)."""
    import jax.numpy as jnp
    as_is = lambda g, p: jnp.asarray(g)
    if kind == "plain":
        return View(jnp.asarray, np.asarray, as_is, lambda state, p: np.asarray(p))
    if kind == "lookahead":
        return View(lambda x0: optax.LookaheadParams.init_synced(jnp.asarray(x0)), lambda p: np.asarray(p.fast),
                    as_is, lambda state, p: np.asarray(p.slow))
    if kind == "schedule_free":
        return View(jnp.asarray, np.asarray, as_is,
                    lambda state, p: np.asarray(optax.contrib.schedule_free_eval_params(state, p)))
    rows, cols = mu.matrix_shape(n, kind)

    def to_matrix(v):
        M = np.zeros(rows * cols)
        M[:n] = v
        return jnp.asarray(M.reshape(rows, cols))

    flat = lambda p: np.asarray(p).reshape(-1)[:n]
    return View(to_matrix, flat, lambda g, p: to_matrix(g), lambda state, p: flat(p))


def _theirs(optax, tx, view: View, grad, x0):
    """optax's trajectory: (gradient point, reported point) after each step."""
    import jax
    p = view.params0(x0)
    state = tx.init(p)
    update = jax.jit(tx.update)  # eager Newton-Schulz loops take seconds per step
    out = []
    for _ in range(STEPS):
        updates, state = update(view.grad_tree(grad(view.at(p)), p), state, p)
        p = optax.apply_updates(p, updates)
        out.append((view.at(p), view.reported(state, p)))
    return out


def _assert_same(ours, theirs):
    """Both points equal to 1e-10 relative (elementwise, with an absolute floor of 1e-12 of
    the vector's largest entry for entries passing near zero) at every step."""
    assert len(ours) == len(theirs) == STEPS
    for k, (a, b) in enumerate(zip(ours, theirs)):
        for what, x, y in (("gradient point", a[0], b[0]), ("reported point", a[1], b[1])):
            np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(y).max()),
                                       err_msg=f"{what}, step {k + 1}")


def _schedule_free_adamw_f64(optax, lr, warmup_steps, b1, weight_decay, weight_lr_power, b2=0.999, eps=1e-8):
    """optax.contrib.schedule_free_adamw(lr, warmup_steps, ...) as optax 0.2.8 builds it,
    but with the warm-up schedule in float64: optax's warmup_constant_schedule divides an
    int32 count, so its warm-up rates are float32 even with jax_enable_x64 (differences
    of ~1e-8 relative, see test_schedule_free_warmup_differs_from_optax_only_by_float32)."""
    import jax.numpy as jnp
    rate = lambda count: lr * (jnp.minimum(count, warmup_steps).astype(jnp.float64) / warmup_steps)
    base = optax.chain(optax.scale_by_rms(decay=b2, eps=eps, eps_in_sqrt=False, bias_correction=True),
                       optax.add_decayed_weights(weight_decay),
                       optax.scale_by_learning_rate(rate))
    return optax.contrib.schedule_free(base, rate, b1=b1, weight_lr_power=weight_lr_power)


@dataclass
class Case:
    """One parity case: our registry entry with `overrides`, on an n-vector, against
    `tx(optax, lr)` seen through the View of kind `view`."""

    name: str
    overrides: dict
    tx: Callable
    view: str = "plain"
    n: int = N


# Every registry entry has a case at its defaults; the others exercise non-default
# hyperparameters, so that each reaches the formula under its own name.
CASES = {
    "sgd": Case("sgd", {}, lambda o, lr: o.sgd(lr)),
    "momentum": Case("momentum", {}, lambda o, lr: o.sgd(lr, momentum=0.9)),
    "momentum beta=0.7": Case("momentum", {"beta": 0.7}, lambda o, lr: o.sgd(lr, momentum=0.7)),
    "nesterov": Case("nesterov", {}, lambda o, lr: o.sgd(lr, momentum=0.9, nesterov=True)),
    "adam": Case("adam", {}, lambda o, lr: o.adam(lr)),
    "adam b1,b2,eps": Case("adam", {"b1": 0.8, "b2": 0.99, "eps": 1e-3},
                           lambda o, lr: o.adam(lr, b1=0.8, b2=0.99, eps=1e-3)),
    "adamw": Case("adamw", {}, lambda o, lr: o.adamw(lr)),
    "adamw wd=1e-1": Case("adamw", {"weight_decay": 1e-1}, lambda o, lr: o.adamw(lr, weight_decay=1e-1)),
    "radam": Case("radam", {}, lambda o, lr: o.radam(lr)),
    "radam threshold=20": Case("radam", {"threshold": 20.0}, lambda o, lr: o.radam(lr, threshold=20.0)),
    "lamb": Case("lamb", {}, lambda o, lr: o.lamb(lr)),
    "lamb wd=1e-2": Case("lamb", {"weight_decay": 1e-2}, lambda o, lr: o.lamb(lr, weight_decay=1e-2)),
    "ranger": Case("ranger", {}, lambda o, lr: o.lookahead(o.radam(lr), sync_period=6, slow_step_size=0.5),
                   "lookahead"),
    "ranger k=4 alpha=0.8": Case("ranger", {"k": 4, "alpha": 0.8},
                                 lambda o, lr: o.lookahead(o.radam(lr), sync_period=4, slow_step_size=0.8),
                                 "lookahead"),
    "schedulefree": Case("schedulefree", {}, lambda o, lr: o.contrib.schedule_free_adamw(lr), "schedule_free"),
    "schedulefree warmup,wd,b1": Case(
        "schedulefree", {"warmup_steps": 10, "weight_decay": 1e-2, "b1": 0.8, "weight_lr_power": 1.5},
        lambda o, lr: _schedule_free_adamw_f64(o, lr, warmup_steps=10, weight_decay=1e-2, b1=0.8,
                                               weight_lr_power=1.5),
        "schedule_free"),
    # pad_sqrt: 10 -> 4 x 4 with 6 padded entries, 14 -> 4 x 4 with 2.
    "muon": Case("muon", {}, lambda o, lr: o.contrib.muon(lr), "pad_sqrt", 10),
    "muon adamw_match": Case("muon", {"scale": "adamw_match"}, lambda o, lr: o.contrib.muon(lr, consistent_rms=0.2),
                             "pad_sqrt", 14),
    # factorization: 12 -> 3 x 4 ("shape" scale sqrt(4/3)), 18 -> 3 x 6.
    "muon_factor": Case("muon_factor", {}, lambda o, lr: o.contrib.muon(lr), "factorization", 12),
    "muon_factor adamw_match": Case("muon_factor", {"scale": "adamw_match"},
                                    lambda o, lr: o.contrib.muon(lr, consistent_rms=0.2), "factorization", 18),
    "muon_factor heavy ball, ns": Case(
        "muon_factor", {"nesterov": False, "beta": 0.9, "ns_steps": 3, "ns_coeffs": (3.0, -3.2, 1.2), "eps": 1e-6},
        lambda o, lr: o.contrib.muon(lr, nesterov=False, beta=0.9, ns_steps=3, ns_coeffs=(3.0, -3.2, 1.2), eps=1e-6),
        "factorization", 12),
}


def _compare(optax, case: Case, lrs: np.ndarray, seed: int):
    """Our trajectory at rates `lrs` against optax's with the same rates as its schedule."""
    import jax.numpy as jnp
    grad, x0 = _problem(case.n, seed)
    if np.all(lrs == lrs[0]):
        rate = float(lrs[0])
    else:
        table = jnp.asarray(lrs)
        rate = lambda count: table[count]
    _assert_same(_ours(REGISTRY[case.name].build(**case.overrides), grad, x0, lrs),
                 _theirs(optax, case.tx(optax, rate), _view(case.view, optax, case.n), grad, x0))


def test_every_registry_entry_has_a_parity_case_at_its_defaults():
    """No optimizer can join either registry without an optax parity case at defaults."""
    assert {c.name for c in CASES.values() if not c.overrides} == set(REGISTRY)


@pytest.mark.parametrize("case", sorted(CASES))
def test_trajectory_matches_optax_at_a_constant_rate(optax, case):
    """Built through its registry entry, the optimizer's gradient points and reported
    points equal optax's to 1e-10 relative at each of 100 steps at a constant rate."""
    _compare(optax, CASES[case], _lr_sequence(varying=False), seed=0)


@pytest.mark.parametrize("case", ["nesterov", "adamw", "radam", "lamb", "ranger", "muon_factor"])
def test_per_step_rate_matches_an_optax_schedule(optax, case):
    """The learning rate passed at step c plays the role of optax's schedule at count c:
    with rates changing every step the trajectories still agree to 1e-10. (Not
    ScheduleFree: optax reads its schedule one count ahead for the averaging weight,
    which a per-step rate cannot reproduce; see schedule_free_adamw.)"""
    _compare(optax, CASES[case], _lr_sequence(varying=True), seed=1)


def test_schedule_free_warmup_differs_from_optax_only_by_float32(optax):
    """Against optax.contrib.schedule_free_adamw(warmup_steps=10) itself, whose warm-up
    rates are rounded to float32, the trajectory agrees to 1e-6 relative: the only
    difference from the float64 parity case is that rounding."""
    grad, x0 = _problem()
    lrs = _lr_sequence(varying=False)
    ours = _ours(REGISTRY["schedulefree"].build(warmup_steps=10), grad, x0, lrs)
    theirs = _theirs(optax, optax.contrib.schedule_free_adamw(LR, warmup_steps=10),
                     _view("schedule_free", optax, N), grad, x0)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6, atol=1e-8, err_msg=f"step {k + 1}")


def test_newton_schulz_matches_optax_on_tall_and_wide_matrices(optax):
    """newton_schulz equals optax's orthogonalize_via_newton_schulz (frobenius
    preconditioning) to 1e-12, including the transposed route for rows > cols, and its
    output is close to orthogonal (singular values in optax's documented ~[0.5, 1.5])."""
    import jax
    import jax.numpy as jnp
    from optax.contrib._muon import orthogonalize_via_newton_schulz
    orthogonalize = jax.jit(lambda G: orthogonalize_via_newton_schulz(G, jnp.asarray(mu.NS_COEFFS), 5))
    rng = np.random.default_rng(3)
    for shape in [(7, 3), (3, 7), (5, 5), (1, 6)]:
        G = rng.standard_normal(shape)
        ours = mu.newton_schulz(G)
        theirs = np.asarray(orthogonalize(jnp.asarray(G)))
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14, err_msg=str(shape))
        s = np.linalg.svd(ours, compute_uv=False)
        assert 0.5 < s.min() and s.max() < 1.5, (shape, s)


# ---------------------------------------------------------------------------------------
# Contracts that need no optax.


def test_muon_matrix_views():
    """factorization: 12 -> 3 x 4, 16 -> 4 x 4, 13 -> 1 x 13; pad_sqrt: 10 -> 4 x 4,
    16 -> 4 x 4 (no padding), 17 -> 5 x 5; an unknown view is a ValueError."""
    assert mu.matrix_shape(12, "factorization") == (3, 4)
    assert mu.matrix_shape(16, "factorization") == (4, 4)
    assert mu.matrix_shape(13, "factorization") == (1, 13)
    assert mu.matrix_shape(10, "pad_sqrt") == (4, 4)
    assert mu.matrix_shape(16, "pad_sqrt") == (4, 4)
    assert mu.matrix_shape(17, "pad_sqrt") == (5, 5)
    with pytest.raises(ValueError, match="view"):
        mu.matrix_shape(12, "square")


def test_muon_pad_sqrt_drops_the_padded_outputs():
    """A 10-vector gets a 10-vector step: the first 10 entries of NS of the zero-padded
    4 x 4 momentum (first heavy-ball step: m_hat = g; scale 1 for a square view)."""
    opt = mu.REGISTRY["muon"].build(nesterov=False)
    x, g = np.zeros(10), np.linspace(-1.0, 2.0, 10)
    step, state = opt.update(g, opt.init(x), x, 0.1)
    assert step.shape == (10,) and state["shape"] == (4, 4)
    padded = np.zeros(16)
    padded[:10] = g
    np.testing.assert_allclose(step, -0.1 * mu.newton_schulz(padded.reshape(4, 4)).reshape(-1)[:10], rtol=1e-14)


def test_muon_factorization_warns_on_prime_n():
    """init on a prime N (13) with the factorization view warns that the view is 1 x 13;
    a composite N (12) and the pad_sqrt view of 13 do not warn."""
    with pytest.warns(UserWarning, match="prime.*1 x 13"):
        state = mu.REGISTRY["muon_factor"].build().init(np.ones(13))
    assert state["shape"] == (1, 13)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mu.REGISTRY["muon_factor"].build().init(np.ones(12))["shape"] == (3, 4)
        assert mu.REGISTRY["muon"].build().init(np.ones(13))["shape"] == (4, 4)


def test_muon_scale_conventions():
    """scale="shape" is sqrt(max(1, cols/rows)), scale="adamw_match" 0.2 sqrt(max(rows, cols))."""
    assert mu.scale_factor(3, 4, "shape") == pytest.approx(np.sqrt(4 / 3))
    assert mu.scale_factor(4, 3, "shape") == 1.0
    assert mu.scale_factor(4, 4, "shape") == 1.0
    assert mu.scale_factor(3, 4, "adamw_match") == pytest.approx(0.4)
    assert mu.scale_factor(4, 9, "adamw_match") == pytest.approx(0.6)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_update_does_not_modify_its_inputs(name):
    """Over 8 steps (past Ranger's sync and RAdam's rectification switch), update() leaves
    the gradient, the parameters and the state it was given untouched and returns a new
    state dict."""
    opt = REGISTRY[name].build(**({"warmup_steps": 3} if name == "schedulefree" else {}))
    x = np.linspace(-1.0, 1.0, 9)
    state = opt.init(x)
    for k in range(8):
        g = np.cos(3.0 * x + k)
        before = (x.copy(), g.copy(), copy.deepcopy(state))
        step, new_state = opt.update(g, state, x, 1e-2)
        assert new_state is not state
        np.testing.assert_array_equal(x, before[0])
        np.testing.assert_array_equal(g, before[1])
        assert state.keys() == before[2].keys()
        for key, value in before[2].items():
            np.testing.assert_array_equal(state[key], value, err_msg=key)
        x, state = x + step, new_state


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_unknown_hyperparameter_is_a_value_error(name):
    """Entry.build with a name the entry does not know raises ValueError listing it."""
    with pytest.raises(ValueError, match="unknown hyperparameter.*learning_rate"):
        REGISTRY[name].build(learning_rate=1e-3)


BAD = [
    ("momentum", {"beta": 1.0}, "beta"),
    ("nesterov", {"beta": -0.1}, "beta"),
    ("adam", {"b1": 1.0}, "b1"),
    ("adam", {"b2": 1.5}, "b2"),
    ("adam", {"eps": -1e-8}, "eps"),
    ("adamw", {"weight_decay": -1e-4}, "weight_decay"),
    ("radam", {"threshold": -5.0}, "threshold"),
    ("lamb", {"weight_decay": -1.0}, "weight_decay"),
    ("ranger", {"k": 0}, "k"),
    ("ranger", {"k": 2.5}, "k"),
    ("ranger", {"alpha": 0.0}, "alpha"),
    ("ranger", {"alpha": 1.5}, "alpha"),
    ("schedulefree", {"b1": 0.0}, "b1"),
    ("schedulefree", {"b1": 1.0}, "b1"),
    ("schedulefree", {"warmup_steps": -1}, "warmup_steps"),
    ("schedulefree", {"weight_lr_power": -2.0}, "weight_lr_power"),
    ("schedulefree", {"r": -1.0}, "r"),
    ("schedulefree", {"warmup_convention": "jax"}, "warmup_convention"),
    ("muon", {"beta": 1.0}, "beta"),
    ("muon", {"ns_steps": 0}, "ns_steps"),
    ("muon", {"ns_coeffs": (1.0, 2.0)}, "ns_coeffs"),
    ("muon", {"eps": -1.0}, "eps"),
    ("muon", {"nesterov": "false"}, "nesterov"),
    ("muon", {"view": "square"}, "view"),
    ("muon_factor", {"scale": "spectral"}, "scale"),
]


@pytest.mark.parametrize("name,overrides,field", BAD, ids=[f"{n}-{f}" for n, _, f in BAD])
def test_bad_hyperparameter_values_name_the_field(name, overrides, field):
    """An out-of-range or ill-typed value is a ValueError whose message starts with the
    hyperparameter's name."""
    with pytest.raises(ValueError, match=rf"^{field}\b"):
        REGISTRY[name].build(**overrides)


def test_muon_coefficients_from_the_command_line_form():
    """ns_coeffs may be given as the string "a,b,c" (what --hyper passes) and becomes a
    tuple of floats."""
    opt = mu.REGISTRY["muon"].build(ns_coeffs="3,-3.2,1.2")
    assert opt.hyper["ns_coeffs"] == (3.0, -3.2, 1.2)
