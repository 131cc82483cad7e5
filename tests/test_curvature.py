"""optbench.analysis: Hessian-vector products, dense Hessians and Gauss-Newton matrices,
spectra, Lanczos extremes and SLQ densities.

Exact references come from quadratic toy objectives (known Hessian). On an MTP (level 8,
random parameters of physical size, the 24 Ag-Pd training configurations of agpd_split,
MLIP's default weights with stress) there is no exact Hessian: the finite-difference
products are checked against a Richardson-extrapolated difference with other steps, the
step rule by a step study, and the Gauss-Newton matrix against the Hessian at a
zero-residual point made by relabelling the data with the potential's own predictions.
SevenNet's exact double-backward hvp is checked against a central difference of gradients.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import random_potential, requires_shared, shared_dir

from optbench.analysis import (
    LOSS_PER_SQUARED_RESIDUAL,
    dense_gauss_newton,
    dense_hessian,
    dense_spectrum,
    fd_step,
    gauss_newton_vector_product,
    hessian_vector_product,
    lanczos_extremes,
    slq_density,
    spectrum_summary,
)
from optbench.io import DataSet
from optbench.objective import EngineObjective, LossWeights


# ------------------------------------------------------------------ toy objectives
class Quadratic:
    """loss = 1/2 x^T H x - b^T x + 3: Hessian H exactly, gradient H x - b."""

    def __init__(self, H, b):
        self.H, self.b = H, b
        self.n_params = b.size

    def loss_grad(self, x, batch=None):
        g = self.H @ x - self.b
        return 0.5 * x @ self.H @ x - self.b @ x + 3.0, g


class LeastSquares:
    """loss = c |A x - y|^2 with c = LOSS_PER_SQUARED_RESIDUAL (EngineObjective's
    convention): linear residuals, so the Hessian is 2c A^T A everywhere and equals the
    Gauss-Newton matrix; jvp, vjp exact."""

    def __init__(self, A, y):
        self.A, self.y = A, y
        self.n_params = A.shape[1]

    def residuals(self, x, idx=None):
        return self.A @ x - self.y

    def loss_grad(self, x, batch=None):
        r = self.residuals(x)
        return LOSS_PER_SQUARED_RESIDUAL * r @ r, 2 * LOSS_PER_SQUARED_RESIDUAL * self.A.T @ r

    def jvp(self, x, v):
        return self.A @ v

    def vjp(self, x, u):
        return self.A.T @ u


def _symmetric(eigs, seed=0):
    """Q diag(eigs) Q^T for a random orthogonal Q."""
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((eigs.size, eigs.size)))
    return (Q * eigs) @ Q.T


# ------------------------------------------------------------------ exact references
def test_quadratic_hvp_dense_hessian_and_spectrum_are_exact():
    """On a quadratic with a known indefinite Hessian (n = 40, eigenvalues +-1e-2 ... 1e2)
    the central difference of gradients has no truncation error: H v, the dense Hessian
    and its eigenvalues equal the exact ones to 1e-8 relative (to |H v|, max|H|,
    max|lambda|); the finite-difference Hessian is symmetric to 1e-8; 2n gradients."""
    rng = np.random.default_rng(1)
    eigs = np.concatenate([np.logspace(-2, 2, 30), -np.logspace(-2, 1, 10)])
    H = _symmetric(eigs)
    obj = Quadratic(H, rng.standard_normal(40))
    x, v = rng.standard_normal(40), rng.standard_normal(40)
    hv = hessian_vector_product(obj, x, v)
    assert np.linalg.norm(hv - H @ v) <= 1e-8 * np.linalg.norm(H @ v)
    Hd, info = dense_hessian(obj, x)
    assert np.max(np.abs(Hd - H)) <= 1e-8 * np.max(np.abs(H))
    assert info["asymmetry"] <= 1e-8 and info["n_grad"] == 80 and info["method"] == "central_difference"
    lam = dense_spectrum(Hd)
    np.testing.assert_allclose(lam, np.sort(eigs), rtol=0, atol=1e-8 * 100)
    s = spectrum_summary(lam)
    assert s["n_negative"] == 10 and s["n_positive"] == 30 and s["count"] == 40
    assert s["condition_number"] == pytest.approx(1e4, rel=1e-6)


def test_exact_hvp_method_is_preferred_unless_a_step_is_given():
    """An objective with its own hvp is asked for it (no gradient evaluated); with an
    explicit step the central difference is used instead; both equal H v (1e-8)."""
    H = _symmetric(np.linspace(1, 5, 6))

    class WithHvp(Quadratic):
        grads = 0

        def loss_grad(self, x, batch=None):
            WithHvp.grads += 1
            return super().loss_grad(x, batch)

        def hvp(self, x, v, batch=None):
            return self.H @ v

    obj, v = WithHvp(H, np.ones(6)), np.arange(6.0)
    np.testing.assert_allclose(hessian_vector_product(obj, np.zeros(6), v), H @ v, rtol=1e-12)
    assert WithHvp.grads == 0
    _, info = dense_hessian(obj, np.zeros(6))
    assert info["method"] == "hvp" and info["n_grad"] == 0 and WithHvp.grads == 0
    np.testing.assert_allclose(hessian_vector_product(obj, np.zeros(6), v, step=1e-3), H @ v, rtol=1e-8)
    assert WithHvp.grads == 2
    assert not np.any(hessian_vector_product(obj, np.zeros(6), np.zeros(6)))


def test_least_squares_gauss_newton_equals_two_c_jtj():
    """For linear residuals (loss = c |A x - y|^2, c = 1) the Gauss-Newton matrix 2c A^T A
    is the Hessian: dense_gauss_newton, its product and dense_hessian agree with it to
    1e-8 relative; info["loss"] is the loss at x."""
    rng = np.random.default_rng(2)
    A, y = rng.standard_normal((50, 12)), rng.standard_normal(50)
    obj, x, v = LeastSquares(A, y), rng.standard_normal(12), rng.standard_normal(12)
    exact = 2 * LOSS_PER_SQUARED_RESIDUAL * A.T @ A
    G, info = dense_gauss_newton(obj, x)
    assert np.max(np.abs(G - exact)) <= 1e-12 * np.max(np.abs(exact))
    assert info["loss"] == pytest.approx(obj.loss_grad(x)[0], rel=1e-12) and info["n_jvp"] == 12
    assert np.linalg.norm(gauss_newton_vector_product(obj, x, v) - exact @ v) <= 1e-12 * np.linalg.norm(exact @ v)
    H, _ = dense_hessian(obj, x)
    assert np.max(np.abs(H - exact)) <= 1e-8 * np.max(np.abs(exact))
    with pytest.raises(ValueError, match="residuals, jvp and vjp"):
        dense_gauss_newton(Quadratic(np.eye(2), np.ones(2)), np.zeros(2))


def test_spectrum_summary_counts_and_condition():
    """Counts with rtol_zero 1e-10 of max|lambda| = 10: -2 negative, -1e-12 and 0 zero;
    condition 10 / 1e-3 over the positive part; anisotropy the std of log10 of
    (1e-3, 1, 10); negative ratio 2/10 (exact up to rounding, 1e-12)."""
    s = spectrum_summary(np.array([10.0, -2.0, -1e-12, 0.0, 1e-3, 1.0]))
    assert (s["n_negative"], s["n_zero"], s["n_positive"], s["count"]) == (1, 2, 3, 6)
    assert s["lambda_max"] == 10.0 and s["lambda_min"] == -2.0
    assert s["condition_number"] == pytest.approx(1e4, rel=1e-12)
    assert s["anisotropy"] == pytest.approx(np.std([-3.0, 0.0, 1.0]), rel=1e-12)
    assert s["negative_ratio"] == pytest.approx(0.2, rel=1e-12)


def test_lanczos_extremes_on_a_spread_spectrum():
    """On a 300 x 300 matrix with eigenvalues from -10 to 1e3 (positive ones spread over 7
    decades, 1e-4 ... 1e3), eigsh's k = 6 largest and smallest algebraic eigenvalues equal
    the exact ones to 1e-4 relative (measured: below 1e-13, 986 products); k >= n falls back to the dense
    solution, exact to 1e-12."""
    eigs = np.concatenate([-np.logspace(-2, 1, 20), np.logspace(-4, 3, 280)])
    M = _symmetric(eigs, seed=3)
    out = lanczos_extremes(lambda v: M @ v, 300, k=6)
    ref = np.sort(eigs)
    np.testing.assert_allclose(out["largest"], ref[-6:], rtol=1e-4)
    np.testing.assert_allclose(out["smallest"], ref[:6], rtol=1e-4)
    assert out["n_matvec"] == out["n_matvec_largest"] + out["n_matvec_smallest"] > 12
    small = _symmetric(np.array([-1.0, 2.0, 3.0]))
    d = lanczos_extremes(lambda v: small @ v, 3, k=3)
    assert d["method"] == "dense" and d["n_matvec"] == 3
    np.testing.assert_allclose(d["largest"], [-1.0, 2.0, 3.0], atol=1e-12)


def test_slq_density_moments():
    """SLQ's first moment, the mean eigenvalue: on a diagonal matrix Rademacher probes
    give z^T D z = trace(D) exactly, so it equals trace / n to 1e-12 relative; on a dense
    300 x 300 matrix it is Hutchinson's estimate, within 4 standard deviations of trace / n
    (the exact std sqrt(2 (|A|_F^2 - sum A_ii^2) / n_vectors) / n). The broadened density
    integrates to 1 on its default grid (trapezoid, 1e-6) and its first moment there is
    the quadrature's (1e-6 of the spectrum's span); 30 steps x 8 probes = 240 products."""
    d = np.linspace(-1.0, 5.0, 200)
    grid, dens, info = slq_density(lambda v: d * v, 200, n_vectors=4, steps=30, seed=1)
    assert info["mean_eigenvalue"] == pytest.approx(d.mean(), rel=1e-12)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-6)
    assert np.trapezoid(grid * dens, grid) == pytest.approx(info["mean_eigenvalue"], abs=6e-6)
    for tau in info["weights"]:
        assert tau.sum() == pytest.approx(1.0, abs=1e-12)

    eigs = np.concatenate([-np.logspace(-2, 1, 20), np.logspace(-4, 2, 280)])
    A = _symmetric(eigs, seed=4)
    n, nv = 300, 8
    grid, dens, info = slq_density(lambda v: A @ v, n, n_vectors=nv, steps=30, seed=2)
    std = np.sqrt(2 * (np.sum(A * A) - np.sum(np.diag(A) ** 2)) / nv) / n
    assert abs(info["mean_eigenvalue"] - np.trace(A) / n) <= 4 * std
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-6)
    assert info["n_matvec"] == nv * 30 and len(info["nodes"]) == nv
    # the outermost Ritz nodes converge to the extreme eigenvalues first (1e-3 relative)
    assert info["nodes"].max() == pytest.approx(eigs.max(), rel=1e-3)

    # three distinct eigenvalues: the Krylov space is invariant after 3 steps, Lanczos
    # stops there (3 products per probe) and the nodes are the eigenvalues (1e-10)
    d3 = np.repeat([1.0, 2.0, 4.0], [5, 10, 15])
    _, _, info = slq_density(lambda v: d3 * v, 30, n_vectors=3, steps=10, seed=3)
    assert info["nodes"].shape == (3, 3) and info["n_matvec"] == 9
    np.testing.assert_allclose(info["nodes"], np.tile([1.0, 2.0, 4.0], (3, 1)), atol=1e-10)
    assert info["mean_eigenvalue"] == pytest.approx(d3.mean(), rel=1e-12)


# ------------------------------------------------------------------ MTP
@pytest.fixture(scope="module")
def mtp(engine, agpd_split):
    """(objective, x): a level-8 MTP (75 parameters) with random parameters of physical
    size on the 24 training configurations, MLIP's default weights (stress included)."""
    pot = random_potential(engine, level=8)
    obj = EngineObjective(engine, pot, agpd_split[0], None, LossWeights())
    return obj, pot.get_params()


def _central(obj, x, v, h):
    return (obj.loss_grad(x + h * v)[1] - obj.loss_grad(x - h * v)[1]) / (2 * h)


def _richardson(obj, x, v, h):
    """(4 D(h) - D(2h)) / 3: the central difference with its h^2 error removed; taken at
    h = 4 fd_step, where the rounding error is 4x smaller than at fd_step."""
    return (4 * _central(obj, x, v, h) - _central(obj, x, v, 2 * h)) / 3


def test_mtp_dense_hessian_is_symmetric(mtp):
    """The finite-difference Hessian of the MTP's loss is symmetric to 1e-8 relative before
    symmetrising (info["asymmetry"], measured 1.6e-10: H_ij and H_ji come from different
    gradient pairs, so this measures the difference's rounding error, which is of that
    size), both with every column differenced (2 n gradients) and with the linear block
    (species and moment coefficients) from the normal equations (2 x 64 radial columns'
    gradients); the two agree to 1e-8 of max|H| (measured 8e-11); the potential's
    parameters are restored."""
    obj, x = mtp
    obj.potential.set_params(x)
    H, info = dense_hessian(obj, x, linear_block=False)
    assert info["asymmetry"] <= 1e-8 and info["method"] == "central_difference"
    assert info["n_grad"] == 2 * obj.n_params and np.array_equal(H, H.T)
    Hl, infol = dense_hessian(obj, x)
    assert infol["method"] == "central_difference+linear_system" and infol["asymmetry"] <= 1e-8
    assert infol["n_grad"] == 2 * 64 and infol["n_linear"] == obj.n_params - 64
    assert np.max(np.abs(Hl - H)) <= 1e-8 * np.max(np.abs(H))
    np.testing.assert_array_equal(obj.potential.get_params(), x)
    # an indefinite Hessian away from a minimum: both signs present
    s = spectrum_summary(dense_spectrum(H))
    assert s["n_negative"] > 0 and s["n_positive"] > 0
    with pytest.raises(ValueError, match="no linear block"):
        dense_hessian(Quadratic(np.eye(2), np.ones(2)), np.zeros(2), linear_block=True)


def test_mtp_hvp_matches_another_difference(mtp):
    """H v (central difference at fd_step) equals a Richardson-extrapolated difference at
    4x and 8x that step to 1e-7 relative to |H v| (measured 1.3e-10), for two random
    directions; and the dense Hessian times v equals H v to 1e-7."""
    obj, x = mtp
    H, _ = dense_hessian(obj, x)
    rng = np.random.default_rng(7)
    for _ in range(2):
        v = rng.standard_normal(x.size)
        hv = hessian_vector_product(obj, x, v)
        ref = _richardson(obj, x, v, 4 * fd_step(x, v))
        assert np.linalg.norm(hv - ref) <= 1e-7 * np.linalg.norm(ref)
        assert np.linalg.norm(H @ v - hv) <= 1e-7 * np.linalg.norm(hv)


def _step_errors(obj, x, v, factors):
    """Relative error of the central difference at f * fd_step for each f, against the
    Richardson reference at 4 fd_step."""
    h0 = fd_step(x, v)
    ref = _richardson(obj, x, v, 4 * h0)
    return {f: np.linalg.norm(_central(obj, x, v, f * h0) - ref) / np.linalg.norm(ref) for f in factors}


def test_fd_step_study(mtp):
    """The step rule h0 = eps^(1/3) (1 + |x|) / |v|: the error of the central difference
    against the Richardson reference, for steps 1e-4 h0 ... 1e3 h0.

    At the random-parameter point, along a random direction: at h0 it is below 1e-8
    relative (measured 1.9e-10, the best of the study); 1e-3 h0 is over 10x worse
    (rounding, ~1/h; measured 1.2e-7) and 1e2 h0 over 100x worse (truncation, ~h^2;
    measured 3.5e-7); h0 is within 10x of the best step, and the truncation regime scales
    as h^2 (10x the step: 30x ... 300x the error).

    After 100 L-BFGS-B iterations (loss 2.0 -> 0.008) the curvature is smaller relative to
    the third derivatives and the best step shrinks: along a random direction h0 is still
    within 10x of the best (measured 4.1e-10 vs 1.5e-10 at 0.1 h0); along a single radial
    coefficient the best is ~0.03 h0 (3e-11) and h0 gives 3.3e-9, still below 1e-8 (the
    rule's known limit: curvature.hessian_vector_product's docstring)."""
    from scipy.optimize import minimize

    obj, x = mtp
    factors = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3)
    v = np.random.default_rng(11).standard_normal(x.size)
    err = _step_errors(obj, x, v, factors)
    assert err[1.0] <= 1e-8
    assert err[1e-3] > 10 * err[1.0] and err[1e2] > 100 * err[1.0]
    assert err[1.0] <= 10 * min(err.values())
    assert 30 < err[1e3] / err[1e2] < 300

    fit = minimize(lambda z: obj.loss_grad(z), x, jac=True, method="L-BFGS-B", options={"maxiter": 100})
    assert fit.fun < 0.01 * obj.loss(x)
    err = _step_errors(obj, fit.x, v, factors)
    assert err[1.0] <= 1e-8 and err[1.0] <= 10 * min(err.values())
    unit = np.zeros(x.size)
    unit[0] = 1.0
    assert _step_errors(obj, fit.x, unit, (1.0,))[1.0] <= 1e-8


def test_mtp_gauss_newton_equals_hessian_at_zero_residual(engine, mtp):
    """Relabel the training set with the MTP's own predictions at x* (energies, forces,
    stresses): the loss is 0 at x*, and there the Gauss-Newton matrix 2 J^T J (J from jvp
    columns) equals the finite-difference Hessian to 1e-7 of max|H| (measured ~4e-11).
    Control: on the EMT labels (loss ~2) they differ by over 1 % of max|H| (measured 22 %),
    so the comparison discriminates. G is positive semi-definite (eigenvalues above
    -1e-12 max); G v from its product equals G @ v to 1e-7."""
    obj, x = mtp
    e, f, s = obj.predict(x, "train")
    configs, start = [], 0
    for k, c in enumerate(obj.train.configs):
        configs.append(dataclasses.replace(c, energy=float(e[k]), forces=f[start:start + c.n_atoms].copy(),
                                           stress=s[k].copy()))
        start += c.n_atoms
    relabelled = DataSet(configs=configs, species=obj.train.species, name="own predictions")
    zero = EngineObjective(engine, random_potential(engine, level=8), relabelled, None, LossWeights())
    assert zero.loss(x) <= 1e-20
    H, _ = dense_hessian(zero, x)
    G, info = dense_gauss_newton(zero, x)
    assert info["loss"] <= 1e-20
    assert np.max(np.abs(G - H)) <= 1e-7 * np.max(np.abs(H))
    assert dense_spectrum(G)[0] >= -1e-12 * np.max(np.abs(G))
    v = np.random.default_rng(5).standard_normal(x.size)
    gv = gauss_newton_vector_product(zero, x, v)
    assert np.linalg.norm(gv - G @ v) <= 1e-7 * np.linalg.norm(gv)

    H1, _ = dense_hessian(obj, x)
    G1, info1 = dense_gauss_newton(obj, x)
    assert info1["loss"] > 1.0
    assert np.max(np.abs(G1 - H1)) > 1e-2 * np.max(np.abs(H1))


# ------------------------------------------------------------------ SevenNet
@requires_shared
def test_sevennet_hvp_by_double_backward():
    """TorchObjective.hvp (exact double backward through the forces: a third derivative
    of SevenNet-0's energy) on 2 two-atom strained Mo cells, float64, the parameters of the
    interaction blocks and the readout: equals the central difference of gradients at
    fd_step to 1e-6 relative (measured 8e-10, the difference's own error);
    hessian_vector_product dispatches to it and restores the model's parameters
    afterwards. About 10 s (model load 4 s; up to 20 s on a loaded machine)."""
    torch = pytest.importorskip("torch", reason="the foundation-model extra (torch) is not installed")
    pytest.importorskip("sevenn", reason="the foundation-model extra (sevenn) is not installed")
    from optbench.foundation.sevennet import SevenNetModel
    from optbench.io import read_dataset
    from optbench.objective.torch_objective import TorchObjective

    torch.set_num_threads(2)
    data = read_dataset(shared_dir() / "datasets" / "nbmotaw_snap" / "Mo_Elastic.json")
    # the interaction blocks and the readout (831 040 parameters): every parameter
    # ("all") adds the edge embedding's Bessel coefficients, whose first double backward
    # costs ~10 s of CPU here (same agreement, 4e-9, measured outside the test)
    obj = TorchObjective(SevenNetModel("7net-0", dtype="float64"), data[:2], None, energy_shift=False,
                         train_groups=["interactions", "readout"])
    x = obj.start.copy()
    v = np.random.default_rng(0).standard_normal(obj.n_params)
    obj._set(x + 1.0)
    before = obj.configs_evaluated
    hv = hessian_vector_product(obj, x, v)
    assert obj.configs_evaluated - before == 2  # one pass (hvp), not two gradients
    np.testing.assert_array_equal(obj._get(), x + 1.0)
    fd = hessian_vector_product(obj, x, v, step=fd_step(x, v))
    assert np.linalg.norm(hv - fd) <= 1e-6 * np.linalg.norm(hv)
