"""The engine's own level-N bases against MLIP-3's templates.

Contracts checked: for every template level (6..28) the potential generated from
`mtp level=N` has the template's radial function count, basic-moment count and number of
scalar basis functions (hence parameter count), and its scalar basis functions are the
template's, as a set: their values summed over each configuration agree one to one
(1e-9 relative).  Ordered by that matching, the template's moment coefficients give the
generated potential the template's energies, forces and stresses (1e-9 relative).  The
contraction order, and so the order of the scalars in the file, is the engine's own.
Levels 2 and 4 (no template) generate and evaluate.
"""

from __future__ import annotations

import numpy as np
import pytest

LEVELS = list(range(6, 30, 2))
SPEC = "species=2 min_dist=2.0 max_dist=5.0 scaling=0.02"


def _randomised(pot, rng):
    """Give `pot` random radial coefficients, so the fingerprints of different basis
    functions differ, and zero species and moment coefficients."""
    g = pot.groups()
    x = pot.default_params()
    x[g["radial"]] += 0.05 * rng.standard_normal(g["radial"].stop - g["radial"].start)
    x[g["species"]] = 0.0
    x[g["moment"]] = 0.0
    pot.set_params(x)
    return x


def _fingerprints(engine, pot, ds):
    """(n_scalars, n_configs): each scalar basis function summed over the atoms of each
    configuration, read off the energy-loss gradient at zero moment coefficients."""
    n = ds.n_configs
    w = np.zeros((n, 3))
    w[:, 0] = 1.0
    m = pot.groups()["moment"]
    cols = []
    for c in range(n):
        _, g = engine.loss_grad(pot, ds, w, idx=[c])
        cols.append(g[m])
    return np.array(cols).T


def _match(a, b):
    """Index p with a[i] == b[p[i]] row by row; fails when some row has no partner."""
    scale_a, scale_b = np.abs(a).max(axis=1), np.abs(b).max(axis=1)
    p = np.empty(len(a), dtype=int)
    free = np.ones(len(b), dtype=bool)
    for i in range(len(a)):
        d = np.abs(b - a[i]).max(axis=1) / np.maximum(np.maximum(scale_a[i], scale_b), 1e-300)
        d[~free] = np.inf
        j = int(np.argmin(d))
        assert d[j] < 1e-9, f"template scalar {i} has no generated counterpart (closest {d[j]:.2e})"
        p[i] = j
        free[j] = False
    return p


@pytest.mark.requires_shared
@pytest.mark.parametrize("level", LEVELS)
def test_generated_basis_reproduces_template(engine, shared_path, agpd_small, level):
    template = shared_path / "reference" / "mlip3" / "templates" / f"{level:02d}.almtp"
    ref = engine.potential_from_spec(f"mtp template={template} {SPEC}")
    gen = engine.potential_from_spec(f"mtp level={level} {SPEC}")
    a, b = ref.info(), gen.info()
    for key in ("radial_funcs_count", "alpha_index_basic_count", "alpha_scalar_moments", "n_params"):
        assert a[key] == b[key], key
    assert b["level"] == level

    rng = np.random.default_rng(level)
    x = _randomised(ref, rng)
    gen.set_params(x)
    ds = engine.dataset(agpd_small[:3], 5.0)
    ds.set_labels(energies=np.ones(3), forces=np.zeros((ds.size()[1], 3)), stresses=np.zeros((3, 6)))
    perm = _match(_fingerprints(engine, ref, ds), _fingerprints(engine, gen, ds))

    m = ref.groups()["moment"]
    coeffs = 1e-3 * rng.standard_normal(m.stop - m.start)
    x_ref, x_gen = x.copy(), x.copy()
    x_ref[m] = coeffs
    x_gen[m.start + perm] = coeffs
    ref.set_params(x_ref)
    gen.set_params(x_gen)
    other = engine.dataset(agpd_small[3:5], 5.0)
    e1, f1, s1 = engine.predict(ref, other)
    e2, f2, s2 = engine.predict(gen, other)
    np.testing.assert_allclose(e2, e1, rtol=1e-9)
    np.testing.assert_allclose(f2, f1, rtol=1e-9, atol=1e-9 * np.abs(f1).max())
    np.testing.assert_allclose(s2, s1, rtol=1e-9, atol=1e-9 * np.abs(s1).max())


def test_generated_counts_follow_the_rules(engine):
    """Scalar counts of the documented rules (engine/README.md), levels 2..28."""
    expected = {2: 1, 4: 2, 6: 5, 8: 9, 10: 16, 12: 29, 14: 52, 16: 92, 18: 163, 20: 288,
                22: 500, 24: 864, 26: 1464, 28: 2445}
    got = {lv: engine.potential_from_spec(f"mtp level={lv}").info()["alpha_scalar_moments"]
           for lv in expected}
    assert got == expected


@pytest.mark.parametrize("level", [2, 4])
def test_low_levels_generate(engine, agpd_small, level):
    pot = engine.potential_from_spec(f"mtp level={level} species=2")
    assert pot.info()["alpha_scalar_moments"] == level // 2
    e, f, s = engine.predict(pot, engine.dataset(agpd_small[:1], 5.0))
    assert np.all(np.isfinite(e)) and np.all(np.isfinite(f))


@pytest.mark.parametrize("level", [0, 3, 30, -2])
def test_bad_levels_are_refused(engine, level):
    from optbench.engine.capi import EngineFormatError

    with pytest.raises(EngineFormatError, match="even number from 2 to 28"):
        engine.potential_from_spec(f"mtp level={level}")
