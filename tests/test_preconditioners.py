"""Each optimizer's preconditioner from its own state (optbench.analysis.preconditioners)
and the run's snapshots of parameters and state (TrainSettings.snapshot_every).

Contracts: Adam's, AdamW's and ScheduleFree's diagonal read from the state equals the one
recomputed from the gradient history; the preconditioner reproduces the step the
optimizer took (Adam, RAdam in both phases, L-BFGS-B's last search direction); BFGS's
inverse makes the effective spectrum of a well-conditioned quadratic close to 1; the
diagonal and identity spectra are the direct eigenvalues; every optimizer of the
REGISTRY gets a Preconditioner from a short run's snapshots; snapshots change neither the
trajectory, nor the run's record, nor the run keys.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from optbench.analysis.preconditioners import (
    LbfgsInverse,
    Preconditioner,
    effective_matrix_spectrum,
    effective_matvec,
    gauss_newton_preconditioner,
    lbfgs_inverse_from_scipy,
    preconditioner,
)
from optbench.optim import REGISTRY
from optbench.optim.budget import Budget
from optbench.train import TrainSettings, train

# objective (an MTP-8 on 24 + 12 generated Ag-Pd configurations): tests/conftest.py


def _spd(n: int, cond: float, seed: int) -> np.ndarray:
    """A symmetric positive definite n x n matrix with eigenvalues log-spaced in [1, cond]."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return (q * np.logspace(0, np.log10(cond), n)) @ q.T


def _steps(name: str, objective, steps: int, **hyper):
    """`steps` updates of optimizer `name` on the objective's full-batch gradient; the
    optimizer, its final state and the gradients fed to it."""
    opt = REGISTRY[name].build(**hyper)
    x = objective.initial_params(0, 1e-2)
    state, grads = opt.init(x), []
    for _ in range(steps):
        g = objective.loss_grad(x, None)[1]
        step, state = opt.update(g, state, x, 1e-3)
        grads.append(g)
        x = x + step
    return opt, state, np.array(grads)


@pytest.mark.parametrize("name", ["adam", "adamw", "schedulefree"])
def test_adam_type_diagonal_equals_the_gradient_history(objective, name):
    """After 20 steps, P_ii = sqrt(v_hat_i) + eps with v_hat = (1 - b2) sum_i b2^(t-i)
    g_i^2 / (1 - b2^t) recomputed from the gradients (b2 = 0.99, not the default, so the
    hyperparameters are read), to 1e-12 relative. ScheduleFree's bias correction uses the
    same t, the updates made (its z step's v / (1 - b2^(c+1)))."""
    opt, state, grads = _steps(name, objective, 20, b2=0.99)
    b2, eps, t = 0.99, opt.hyper["eps"], len(grads)
    v_hat = ((1 - b2) * b2 ** (t - 1 - np.arange(t))[:, None] * grads ** 2).sum(axis=0) / (1 - b2 ** t)
    pre = preconditioner(name, state, {**opt.hyper, "lr": 1e-3}, objective.n_params)
    assert pre.kind == "diagonal" and state["t"] == 20
    np.testing.assert_allclose(pre.diag, np.sqrt(v_hat) + eps, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", ["adam", "radam"])
def test_preconditioner_reproduces_the_step(name):
    """On f = x'Hx / 2 (n = 10), each of 8 steps equals -lr * scale * P^(-1) m_hat from the
    state after it (m_hat = m / (1 - b1^t)): Adam throughout; RAdam as momentum (P = I)
    for t <= 5, where rho_t < 5, then rectified with scale r_t."""
    H = _spd(10, 100.0, 6)
    opt = REGISTRY[name].build()
    x = np.random.default_rng(6).standard_normal(10)
    state, kinds = opt.init(x), []
    for _ in range(8):
        step, state = opt.update(H @ x, state, x, 1e-2)
        x = x + step
        pre = preconditioner(name, state, opt.hyper, x.size)
        m_hat = state["m"] / (1 - opt.hyper["b1"] ** state["t"])
        direction = m_hat if pre.kind == "identity" else pre.scale * m_hat / pre.diag
        np.testing.assert_allclose(step, -1e-2 * direction, rtol=1e-13, atol=0)
        kinds.append(pre.kind)
    assert kinds == (["diagonal"] * 8 if name == "adam" else ["identity"] * 5 + ["diagonal"] * 3)


def test_bfgs_inverse_makes_the_effective_spectrum_close_to_one():
    """SciPy BFGS to convergence (gtol 1e-10) on f = x'Hx / 2, n = 8, condition 10: its
    final hess_inv B is close to H^(-1), so every eigenvalue of B^(1/2) H B^(1/2) is in
    [0.5, 2] (H's own spread over [1, 10]); they equal the real eigenvalues of B H."""
    H = _spd(8, 10.0, 1)
    res = minimize(lambda x: 0.5 * x @ H @ x, np.ones(8), jac=lambda x: H @ x, method="BFGS",
                   options={"gtol": 1e-10})
    assert res.success
    pre = preconditioner("bfgs", {"hess_inv": res.hess_inv}, {}, 8)
    eig = effective_matrix_spectrum(H, pre)
    assert pre.kind == "dense_inverse"
    assert 0.5 <= eig.min() and eig.max() <= 2.0, eig
    np.testing.assert_allclose(eig, np.sort(np.linalg.eigvals(res.hess_inv @ H).real), rtol=1e-10)
    exact = Preconditioner("dense_inverse", "H^-1", 8, inverse=np.linalg.inv(H))
    np.testing.assert_allclose(effective_matrix_spectrum(H, exact), np.ones(8), rtol=1e-10)


def test_lbfgs_inverse_gives_the_last_search_direction():
    """L-BFGS-B (maxcor 3, 7 iterations: its pair buffer has wrapped) on a quadratic: the
    operator built from SciPy's pairs, ordered by the iterates and with L-BFGS-B's H0 =
    (s'y / y'y) I, gives the direction of the last step, -B g(x_(K-1)), to 1e-12;
    SciPy's own LbfgsInvHessProduct (storage order, H0 = I) does not (~5 % off)."""
    H = _spd(8, 50.0, 2)
    xs = [np.ones(8)]
    res = minimize(lambda x: 0.5 * x @ H @ x, xs[0], jac=lambda x: H @ x, method="L-BFGS-B",
                   callback=lambda intermediate_result: xs.append(np.array(intermediate_result.x)),
                   options={"maxcor": 3, "maxiter": 7, "gtol": 1e-14, "ftol": 0.0})
    op, note = lbfgs_inverse_from_scipy(res.hess_inv, np.array(xs[-5:]))
    assert "ordered" in note
    step, g = xs[-1] - xs[-2], H @ xs[-2]

    def cosine(a, b):
        return float(a @ b) / np.linalg.norm(a) / np.linalg.norm(b)

    assert cosine(step, -op.matvec(g)) > 1 - 1e-12
    assert cosine(step, -res.hess_inv.matvec(g)) < 1 - 1e-3
    pre = preconditioner("lbfgs", {"hess_inv": res.hess_inv, "iterates": np.array(xs[-5:])}, {}, 8)
    np.testing.assert_allclose(pre.inverse.todense(), op.todense(), rtol=1e-12)


def test_diagonal_and_identity_spectra_are_the_direct_ones():
    """diagonal: eigvalsh(D^-1/2 H D^-1/2) formed directly; identity: eigvalsh(H); the
    matrix-free effective_matvec applies the same matrix; an L-BFGS operator's dense form
    is its matvec on the unit vectors; an indefinite B gives the real parts of eig(B H)
    with a warning; a Gauss-Newton P = G + lam diag(G) with H = G diagonal gives
    1 / (1 + lam)."""
    rng = np.random.default_rng(3)
    H = _spd(12, 1e4, 4)
    d = rng.uniform(0.1, 10.0, 12)
    diag = Preconditioner("diagonal", "test", 12, diag=d)
    direct = np.diag(d ** -0.5) @ H @ np.diag(d ** -0.5)
    np.testing.assert_allclose(effective_matrix_spectrum(H, diag), np.linalg.eigvalsh(direct), rtol=1e-10)
    np.testing.assert_allclose(effective_matrix_spectrum(H, Preconditioner("identity", "t", 12)),
                               np.linalg.eigvalsh(H), rtol=1e-12)
    v = rng.standard_normal(12)
    np.testing.assert_allclose(effective_matvec(lambda u: H @ u, diag)(v), direct @ v, rtol=1e-12)
    with pytest.raises(ValueError, match="no linear preconditioner: why"):
        effective_matrix_spectrum(H, Preconditioner("none", "why", 12))
    op = LbfgsInverse(rng.standard_normal((3, 12)), rng.standard_normal((3, 12)), 0.7)
    np.testing.assert_allclose(op.todense()[:, 4], op.matvec(np.eye(12)[4]), rtol=1e-12)
    B = np.diag(np.r_[-1.0, np.ones(11)])  # not positive definite: real parts of eig(B H), with a warning
    with pytest.warns(RuntimeWarning, match="not positive definite"):
        eig = effective_matrix_spectrum(H, Preconditioner("dense_inverse", "t", 12, inverse=B))
    np.testing.assert_allclose(eig, np.sort(np.linalg.eigvals(B @ H).real), rtol=1e-10)
    G = np.diag(rng.uniform(1.0, 5.0, 12))
    np.testing.assert_allclose(effective_matrix_spectrum(G, gauss_newton_preconditioner(G, 0.5)), np.full(12, 1 / 1.5))


#: What each optimizer's final state of a short run gives (test below); a new optimizer
#: needs its line here and in the module docstring's table.
FINAL_KIND = {
    "sgd": "identity", "momentum": "identity", "nesterov": "identity", "adam": "diagonal", "adamw": "diagonal",
    "radam": "identity", "ranger": "identity", "lamb": "diagonal", "schedulefree": "diagonal", "muon": "none",
    "muon_factor": "none", "bfgs": "dense_inverse", "lbfgs": "lbfgs_inverse", "adam_lbfgs": "lbfgs_inverse",
    "varpro": "none", "varpro_lbfgs": "none", "alternating": "none", "lm": "none", "gn_tr": "none", "native": "none",
}
_DRIVER_HYPER = {"bfgs": {"maxiter": 3}, "lbfgs": {"maxiter": 3}, "adam_lbfgs": {"maxiter": 3},
                 "varpro_lbfgs": {"maxiter": 3}, "varpro": {"maxiter": 2}, "lm": {"maxiter": 2},
                 "gn_tr": {"maxiter": 2}, "alternating": {"inner_iters": 2}}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_optimizer_gets_a_preconditioner(objective, name):
    """A short run (3 full-batch steps; drivers a few iterations, ended by maxiter so that
    SciPy returns its matrix) with a snapshot every step: every snapshot's state and the
    final state give a Preconditioner without raising, the final one of the expected kind
    (RAdam and Ranger are still in their momentum warm-up at t = 3; adam_lbfgs's Adam
    stage's snapshots are Adam's diagonal); its effective spectrum of an SPD matrix is
    finite, or it says why there is none. "native" (MLIP's mlp, absent here) keeps no
    state: None."""
    assert name in FINAL_KIND, f"{name}: add it to FINAL_KIND and to the preconditioners module's table"
    n = objective.n_params
    if name == "native":
        states = [None]
    else:
        step_based = REGISTRY[name].takes_steps and name != "adam_lbfgs"
        settings = TrainSettings(optimizer=name, budget=Budget(epochs=3 if step_based else 30), seed=1,
                                 init_interval=1e-2, clip=10.0 if step_based else None,
                                 hyper=_DRIVER_HYPER.get(name, {}), snapshot_every=1)
        r = train(objective, settings)
        assert r.snapshots[0]["step"] == 0 and r.snapshots[-1]["step"] == r.steps
        states = [s["state"] for s in r.snapshots] + [r.opt_state]
    pres = [preconditioner(name, s, {}, n) for s in states]
    assert pres[-1].kind == FINAL_KIND[name], pres[-1].description
    if name == "adam_lbfgs":
        assert "diagonal" in {p.kind for p in pres}
    H = _spd(n, 100.0, 5)
    for pre in pres:
        assert pre.description
        if pre.kind == "none":
            with pytest.raises(ValueError):
                effective_matrix_spectrum(H, pre)
        else:
            assert np.all(np.isfinite(effective_matrix_spectrum(H, pre)))


def test_lbfgs_run_keeps_what_orders_its_pairs(objective):
    """A 15-iteration L-BFGS-B run (maxcor 10: the pair buffer has wrapped) through
    train(): the final state's operator gives its last search direction, -B g at the
    iterate before the last, to 1e-9 (the same engine gradient, bit for bit)."""
    r = train(objective, TrainSettings(optimizer="lbfgs", budget=Budget(epochs=200), seed=1, init_interval=1e-2,
                                       hyper={"maxiter": 15}))
    assert r.nit == 15 and r.opt_state["iterates"].shape == (12, objective.n_params)
    pre = preconditioner("lbfgs", r.opt_state, {}, objective.n_params)
    assert pre.kind == "lbfgs_inverse" and "ordered" in pre.description
    it = r.opt_state["iterates"]
    d = -pre.inverse.matvec(objective.loss_grad(it[-2], None)[1])
    step = it[-1] - it[-2]
    assert float(step @ d) / np.linalg.norm(step) / np.linalg.norm(d) > 1 - 1e-9


# ---------------------------------------------------------------------- the snapshots


@pytest.mark.parametrize("name", ["adam", "bfgs"])
def test_snapshots_do_not_change_the_trajectory(objective, name):
    """The same run with and without snapshots (every 3 steps): bit-identical loss
    history, configurations and final parameters (Adam: 18 steps; BFGS: 30 passes over
    the set, ended by the budget inside a line search)."""
    base = dict(optimizer=name, batch_size=8 if name == "adam" else None,
                budget=Budget(epochs=6 if name == "adam" else 30), seed=2, init_interval=1e-2)
    plain, kept = train(objective, TrainSettings(**base)), train(objective, TrainSettings(**base, snapshot_every=3))
    assert plain.snapshots == [] and len(kept.snapshots) > 2
    assert kept.history.loss == plain.history.loss and kept.history.configs == plain.history.configs
    assert np.array_equal(kept.x, plain.x) and np.array_equal(kept.x_best, plain.x_best)


def test_snapshot_steps_and_states(objective):
    """Adam, 12 steps (4 epochs of 3 batches), every 5: steps 0, 5, 10 and the end, 12;
    each state's t is its step and its x the iterate; the start is the initial point with
    a fresh state. Every 4: 0, 4, 8, 12 (the end replaces the periodic snapshot at 12)."""
    s = TrainSettings(optimizer="adam", batch_size=8, budget=Budget(epochs=4), seed=2, init_interval=1e-2,
                      snapshot_every=5)
    r = train(objective, s)
    assert [(p["step"], p["stage"], p["optimizer"]) for p in r.snapshots] == [
        (0, "optimizer", "adam"), (5, "optimizer", "adam"), (10, "optimizer", "adam"), (12, "optimizer", "adam")]
    assert [p["state"]["t"] for p in r.snapshots] == [0, 5, 10, 12]
    assert np.array_equal(r.snapshots[0]["x"], objective.initial_params(2, 1e-2))
    assert not np.any(r.snapshots[0]["state"]["v"])
    assert np.array_equal(r.snapshots[-1]["x"], r.x) and r.opt_state["t"] == 12
    assert r.snapshots[-1]["state"]["v"] is not r.opt_state["v"]  # a copy
    every4 = train(objective, TrainSettings(**{**s.__dict__, "snapshot_every": 4}))
    assert [p["step"] for p in every4.snapshots] == [0, 4, 8, 12]


def test_snapshots_of_a_driver_and_of_a_refinement(objective):
    """BFGS ended by maxiter (4): intermediate states None, the end's SciPy hess_inv (n x
    n, also RunResult.opt_state). Adam with refine="lbfgs" (8 Adam steps, every 3):
    Adam's 0, 3, 6, 8, then the refinement's "lbfgs" snapshots from the same point with
    no state, every 3 steps and at its end."""
    n = objective.n_params
    r = train(objective, TrainSettings(optimizer="bfgs", budget=Budget(epochs=100), seed=2, init_interval=1e-2,
                                       hyper={"maxiter": 4}, snapshot_every=2))
    assert [p["step"] for p in r.snapshots] == [0, 2, 4]
    assert [p["state"] is None for p in r.snapshots] == [True, True, False]
    assert r.snapshots[-1]["state"]["hess_inv"].shape == (n, n) and r.opt_state["hess_inv"].shape == (n, n)
    r = train(objective, TrainSettings(optimizer="adam", budget=Budget(epochs=10), seed=2, init_interval=1e-2,
                                       refine="lbfgs", snapshot_every=3))
    opt = [p for p in r.snapshots if p["stage"] == "optimizer"]
    ref = [p for p in r.snapshots if p["stage"] == "refine"]
    assert [p["step"] for p in opt] == [0, 3, 6, 8] and {p["optimizer"] for p in ref} == {"lbfgs"}
    assert ref[0]["step"] == 8 and ref[0]["state"] is None and np.array_equal(ref[0]["x"], opt[-1]["x"])
    assert ref[-1]["step"] == r.steps and all(p["step"] % 3 == 0 for p in ref[1:-1])
    assert np.array_equal(ref[-1]["x"], r.x)


def test_snapshots_stay_out_of_records_and_run_keys(objective):
    """snapshot_every defaults to None and is a whole number >= 1; the settings' record
    names it only when set, the run's record never holds snapshots or the state, and a
    run key of a spec without it is what it was before the field existed."""
    from optbench.experiments.runspec import RunSpec

    assert TrainSettings().snapshot_every is None and "snapshot_every" not in TrainSettings().to_dict()
    assert TrainSettings(snapshot_every=7).to_dict()["snapshot_every"] == 7
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="snapshot_every"):
            TrainSettings(snapshot_every=bad)
    r = train(objective, TrainSettings(budget=Budget(epochs=2), snapshot_every=1))
    assert not {"snapshots", "opt_state"} & set(r.to_dict(params=True))
    spec = RunSpec(experiment="e", model_name="MTP-8", model={"kind": "mtp", "level": 8, "min_dist": 2.0,
                                                               "max_dist": 5.0, "engine": "embedded"},
                   data_name="agpd", data={"kind": "generate", "n_train": 24, "n_valid": 12, "seed": 0},
                   weights={"energy": 1.0, "forces": 0.01, "stress": 0.0}, optimizer="adam",
                   variant="adam lr=0.01", settings={"lr": 0.01, "budget": "epochs=5", "seed": 3})
    assert spec.key("0.1.0+ctest") == "ab9b20ad33e69ef7"  # computed before snapshot_every existed
    assert spec.train_settings().snapshot_every is None


def test_budget_ended_lbfgs_keeps_its_correction_pairs(objective):
    """An L-BFGS-B refinement that the budget ends inside a line search (SciPy then
    returns no hess_inv) still leaves its correction pairs: the preconditioner is the
    L-BFGS inverse B of those pairs, which satisfies the secant equation of the newest
    pair, B y = s (exact for L-BFGS; 1e-8 relative), and every kept pair has s'y > 0."""
    r = train(objective, TrainSettings(optimizer="adam", budget=Budget(epochs=60), seed=2, init_interval=1e-2,
                                       refine="lbfgs", snapshot_every=100))
    end = r.snapshots[-1]
    assert end["stage"] == "refine" and r.status == "budget"
    pairs = end["state"]["lbfgs_pairs"]
    s, y = np.asarray(pairs["s"]), np.asarray(pairs["y"])
    assert 1 <= len(s) <= 10 and np.all(np.einsum("ij,ij->i", s, y) > 0)
    pre = preconditioner("lbfgs", end["state"], {}, objective.n_params)
    assert pre.kind == "lbfgs_inverse" and "line search" in pre.description
    By = pre.inverse.matvec(y[-1])
    assert np.linalg.norm(By - s[-1]) <= 1e-8 * np.linalg.norm(s[-1])
