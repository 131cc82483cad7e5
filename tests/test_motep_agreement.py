"""Our engine's loss and gradient agree with motep 0.2.0 (cext engine) to 1e-8.

Data: the first 20 configurations of MLIP-3's ``emt_train.cfg`` plus every third of the
first 30 of ``rosenbrock_small.cfg`` (1-12 atoms, cells smaller than the 5 A cutoff, so
atoms see their own periodic images), copied verbatim into one temporary .cfg read by both
engines.  Potential: MLIP-3-trained ``mtp08.mtp``.

motep's loss (defaults: energy per atom, forces per atom, stress times volume, mean over
the K configurations) equals our per-configuration form

    L = sum_k wE_k dE_k^2 + wF_k sum_i |dF_ik|^2 + wS_k sum_ab dS_kab^2   (PlusStress, 3x3)

with wE_k = eW / (K N_k^2), wF_k = fW / (K N_k), wS_k = sW / (K N_k^2); see
``benchmarks/motep_reference.py``.  Gradient layout (MLIP-3): radial coefficients
[ti][tj][mu][xi], species coefficients, moment coefficients.

Skipped when motep is not importable or ``../shared`` is absent.  The tests that call our
engine (``optbench.engine.capi``) fail until it exists.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MLIP3 = SHARED / "reference" / "mlip3"
POTENTIAL = MLIP3 / "potentials" / "mtp08.mtp"
CUTOFF = 5.0  # max_dist of mtp08.mtp
RTOL = 1e-8

if importlib.util.find_spec("motep") is None:
    pytest.skip("motep (PyPI motep==0.2.0) is not importable", allow_module_level=True)
if not SHARED.is_dir():
    pytest.skip(f"shared reference folder {SHARED} is absent", allow_module_level=True)
if not (MLIP3 / "configs" / "emt_train.cfg").is_file() or not POTENTIAL.is_file():
    pytest.skip(f"MLIP-3 reference files missing under {MLIP3}", allow_module_level=True)


def _load_motep_reference():
    spec = importlib.util.spec_from_file_location(
        "motep_reference", REPO / "benchmarks" / "motep_reference.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


mref = _load_motep_reference()


def _cfg_blocks(path: Path) -> list[str]:
    blocks, cur = [], None
    with path.open() as fh:
        for line in fh:
            if line.startswith("BEGIN_CFG"):
                cur = [line]
            elif cur is not None:
                cur.append(line)
                if line.startswith("END_CFG"):
                    blocks.append("".join(cur) + "\n")
                    cur = None
    return blocks


@pytest.fixture(scope="module")
def subset_cfg(tmp_path_factory) -> Path:
    blocks = _cfg_blocks(MLIP3 / "configs" / "emt_train.cfg")[:20]
    blocks += _cfg_blocks(MLIP3 / "configs" / "rosenbrock_small.cfg")[:30:3]
    assert len(blocks) == 30
    path = tmp_path_factory.mktemp("motep_agreement") / "subset.cfg"
    path.write_text("".join(blocks))
    return path


def _our_weights(configs, ew, fw, sw) -> np.ndarray:
    """Per-configuration (wE, wF, wS) equivalent to motep's default loss."""
    K = len(configs)
    w = np.zeros((K, 3))
    for k, c in enumerate(configs):
        n = float(len(c.types))
        w[k, 0] = ew / (K * n * n)
        w[k, 1] = fw / (K * n) if c.forces is not None else 0.0
        has_s = c.cell is not None and c.stress is not None
        w[k, 2] = sw / (K * n * n) if has_s else 0.0
    return w


def _rel_grad(g1, g2) -> float:
    g1, g2 = np.asarray(g1, float), np.asarray(g2, float)
    assert g1.shape == g2.shape, (g1.shape, g2.shape)
    return float(np.max(np.abs(g1 - g2)) / np.max(np.abs(g2)))


# weights (energy, force, stress): "balanced" makes each term's gradient of similar size
# on this subset (max |g| ~ 120 each), so an error in any single term is visible
WEIGHTS = {
    "balanced": (1.0, 100.0, 0.5),
    "mlip_defaults": (1.0, 0.01, 0.001),
    "energy_only": (1.0, 0.0, 0.0),
    "forces_only": (0.0, 1.0, 0.0),
    "stress_only": (0.0, 0.0, 1.0),
}


def test_motep_loss_matches_per_config_formula(subset_cfg):
    """The documented per-config weights reproduce motep's loss (needs motep only)."""
    from motep.io.mlip.cfg import read_cfg

    ew, fw, sw = WEIGHTS["balanced"]
    loss, grad, info = mref.motep_loss_grad(POTENTIAL, subset_cfg, ew, fw, sw)
    energies, forces, stresses = mref.motep_efs(POTENTIAL, subset_cfg)
    images = read_cfg(str(subset_cfg), index=":")
    K = len(images)
    total = 0.0
    for k, atoms in enumerate(images):
        n = len(atoms)
        r = atoms.calc.results
        total += ew / (K * n * n) * (energies[k] - r["energy"]) ** 2
        total += fw / (K * n) * np.sum((forces[k] - r["forces"]) ** 2)
        s_ref = -np.asarray(r["stress"]) * atoms.get_volume()  # PlusStress
        d = stresses[k] - s_ref  # xx yy zz yz xz xy
        total += sw / (K * n * n) * (np.sum(d[:3] ** 2) + 2.0 * np.sum(d[3:] ** 2))
        assert np.allclose(info["weights"][k], [ew / (K * n * n), fw / (K * n), sw / (K * n * n)])
    assert abs(total - loss) <= 1e-12 * abs(loss)
    assert grad.shape == (info["n_params"],)
    # energy and stress terms are present and non-trivial in this subset
    assert info["terms"]["energy"] > 0 and info["terms"]["forces"] > 0
    assert info["terms"]["stress"] > 0


@pytest.fixture(scope="module")
def ours(subset_cfg):
    from optbench.engine.capi import Engine
    from optbench.io import DataSet, read_cfg

    eng = Engine()
    eng.set_num_threads(1)
    pot = eng.load_potential(str(POTENTIAL))
    configs = read_cfg(str(subset_cfg)).configs
    assert len(configs) == 30
    ds = eng.dataset(DataSet(configs), cutoff=CUTOFF)
    return eng, pot, configs, ds


def test_parameter_layout_matches_mlip3_order(ours, subset_cfg):
    """get_params() is [radial (ti,tj,mu,xi), species, moment], exactly as read by motep."""
    _, pot, _, _ = ours
    _, _, info = mref.motep_loss_grad(POTENTIAL, subset_cfg, 1.0, 0.0, 0.0)
    x = np.asarray(pot.get_params(), float)
    assert pot.n_params == info["n_params"] == x.size
    np.testing.assert_allclose(x, info["params"], rtol=1e-15, atol=0.0)


def test_efs_agree_with_motep(ours, subset_cfg):
    eng, pot, configs, ds = ours
    e_m, f_m, s_m = mref.motep_efs(POTENTIAL, subset_cfg)
    e, f, s = eng.predict(pot, ds)
    np.testing.assert_allclose(np.asarray(e), e_m, rtol=1e-11, atol=1e-10)
    np.testing.assert_allclose(np.asarray(f), np.concatenate(f_m), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.asarray(s), s_m, rtol=0, atol=1e-8)


@pytest.mark.parametrize("case", list(WEIGHTS))
def test_loss_grad_agree_with_motep(ours, subset_cfg, case):
    eng, pot, configs, ds = ours
    ew, fw, sw = WEIGHTS[case]
    loss_m, grad_m, info = mref.motep_loss_grad(POTENTIAL, subset_cfg, ew, fw, sw)
    weights = _our_weights(configs, ew, fw, sw)
    np.testing.assert_allclose(weights, info["weights"], rtol=1e-14, atol=0.0)
    loss, grad = eng.loss_grad(pot, ds, weights)
    assert abs(loss - loss_m) <= RTOL * abs(loss_m), (loss, loss_m)
    assert _rel_grad(grad, grad_m) < RTOL


def test_loss_grad_agree_with_motep_perturbed_params(ours, subset_cfg):
    """Same at parameters set through set_params (checks set_params' layout too)."""
    eng, pot, configs, ds = ours
    x0 = np.asarray(pot.get_params(), float).copy()
    rng = np.random.default_rng(12345)
    x = x0 * (1.0 + 0.05 * rng.standard_normal(x0.size)) + 1e-3 * rng.standard_normal(x0.size)
    ew, fw, sw = WEIGHTS["balanced"]
    loss_m, grad_m, _ = mref.motep_loss_grad(POTENTIAL, subset_cfg, ew, fw, sw, params=x)
    try:
        pot.set_params(x)
        loss, grad = eng.loss_grad(pot, ds, _our_weights(configs, ew, fw, sw))
    finally:
        pot.set_params(x0)
    assert abs(loss - loss_m) <= RTOL * abs(loss_m), (loss, loss_m)
    assert _rel_grad(grad, grad_m) < RTOL
