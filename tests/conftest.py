"""Shared pytest helpers.

Reference data lives in ``../shared`` next to the repository (present in CI, possibly
absent on a developer machine).  Tests that need it use either

    @pytest.mark.requires_shared            # the marker, skipped here when absent
    def test_x(shared_path): ...            # the fixture: the Path, skips when absent

or ``from conftest import requires_shared, shared_dir`` for a plain skipif / Path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SKIP_REASON = (
    "../shared (reference data) not present next to the repository; these checks run in CI"
)


def shared_dir() -> Path:
    """The ``shared`` directory beside the repository root (it may not exist)."""
    return Path(__file__).resolve().parents[1].parent / "shared"


def has_shared() -> bool:
    return shared_dir().is_dir()


# A ready-made skipif, usable as a decorator or in ``pytestmark``.
requires_shared = pytest.mark.skipif(not has_shared(), reason=SHARED_SKIP_REASON)


@pytest.fixture(scope="session")
def shared_path() -> Path:
    """Path of ../shared; skips the test when it is absent."""
    if not has_shared():
        pytest.skip(SHARED_SKIP_REASON)
    return shared_dir()


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``requires_shared`` when ../shared is absent."""
    if has_shared():
        return
    skip = pytest.mark.skip(reason=SHARED_SKIP_REASON)
    for item in items:
        if "requires_shared" in item.keywords:
            item.add_marker(skip)


# ---------------------------------------------------------------- engine fixtures

@pytest.fixture(scope="session")
def engine():
    """The embedded engine through the C ABI binding, on one thread (deterministic)."""
    from optbench.engine.capi import Engine
    eng = Engine()
    eng.set_num_threads(1)
    return eng


@pytest.fixture(scope="session")
def agpd_small():
    """A small generated Ag-Pd set (EMT labels: energies, forces, PlusStress)."""
    from optbench.io.generator import generate_agpd
    return generate_agpd(6, seed=7)


def random_potential(engine, level=8, species=2, seed=0, scale=0.3, max_dist=5.0):
    """A level-N MTP with random (seeded) parameters of physical size: `scaling` 0.02 as
    a trained MLIP potential would have, radial coefficients the engine defaults plus
    N(0, scale^2), species coefficients N(0, 1) eV, moment coefficients N(0, 0.05^2).
    Energies come out at O(1) eV/atom and forces at O(1) eV/A, so every parameter group
    matters and finite differences are well conditioned."""
    import numpy as np
    pot = engine.potential_from_spec(
        f"mtp level={level} species={species} min_dist=1.8 max_dist={max_dist} scaling=0.02")
    rng = np.random.default_rng(seed)
    x = pot.default_params()
    g = pot.groups()
    x[g["radial"]] += scale * rng.standard_normal(g["radial"].stop - g["radial"].start)
    x[g["species"]] = rng.standard_normal(g["species"].stop - g["species"].start)
    x[g["moment"]] = 0.05 * rng.standard_normal(g["moment"].stop - g["moment"].start)
    pot.set_params(x)
    return pot


@pytest.fixture(scope="module")
def agpd_split():
    """24 training and 12 validation configurations of the generated Ag-Pd EMT set."""
    from optbench.io.generator import generate_agpd_split
    return generate_agpd_split(24, 12, seed=5)


@pytest.fixture
def objective(engine, agpd_split):
    """A level-8 MTP on agpd_split (stress weight 0): the training loop's test objective."""
    from optbench.objective import EngineObjective, LossWeights

    train_set, valid = agpd_split
    pot = engine.potential_from_spec("mtp level=8 species=2 min_dist=2.0 max_dist=5.0")
    return EngineObjective(engine, pot, train_set, valid, LossWeights(stress=0.0))
