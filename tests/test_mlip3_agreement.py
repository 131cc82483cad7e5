"""Agreement with the public MLIP-3 code (ground truth in ../shared/reference/mlip3).

Contracts checked:
- energies, forces and PlusStress computed by the engine for MLIP-3's trained level-8
  and level-16 potentials equal MLIP-3's own `calculate_efs` output to its printed
  precision (energy 1e-9 eV + 1e-11 relative, forces 1e-6 eV/A, stress 1e-5 eV), on
  the Ag-Pd validation set and on cells smaller than the cutoff;
- the error report equals MLIP-3's `check_errors` report number for number;
- a potential saved and read back gives identical energies (file round trip).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from optbench.io import read_cfg
from optbench.metrics import compute_metrics, format_mlip_report

pytestmark = pytest.mark.requires_shared


def _ref(shared_path):
    return shared_path / "reference" / "mlip3"


@pytest.mark.parametrize("level", ["08", "16"])
@pytest.mark.parametrize("configs", ["emt_val", "rosenbrock_small"])
def test_efs_matches_mlip3(engine, shared_path, level, configs):
    """Engine E/F/S equal MLIP-3's calculate_efs to its printed precision."""
    ref = _ref(shared_path)
    pot = engine.load_potential(ref / "potentials" / f"mtp{level}.mtp")
    inp = read_cfg(ref / "configs" / f"{configs}.cfg")
    out = read_cfg(ref / "efs" / f"efs_mtp{level}_{configs}.cfg")
    e, f, s = engine.predict(pot, engine.dataset(inp, pot.cutoff))
    e_ref = np.array([c.energy for c in out.configs])
    f_ref = np.concatenate([c.forces for c in out.configs])
    s_ref = np.array([c.stress for c in out.configs])
    assert np.all(np.abs(e - e_ref) <= 1e-9 + 1e-11 * np.abs(e_ref))
    assert np.max(np.abs(f - f_ref)) <= 1e-6
    assert np.max(np.abs(s - s_ref)) <= 1e-5
    if configs == "rosenbrock_small":
        # The set has cells smaller than the cutoff (1-atom cells): they are covered.
        assert min(c.n_atoms for c in inp.configs) == 1


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"=\s*([-+0-9.eE]+|nan|inf)", text)]


@pytest.mark.parametrize("split", ["train", "val"])
def test_error_report_matches_mlip3(engine, shared_path, split):
    """compute_metrics + format_mlip_report reproduce MLIP-3's check_errors report for
    mtp08.mtp (every number to the 6 significant digits MLIP prints)."""
    ref = _ref(shared_path)
    pot = engine.load_potential(ref / "potentials" / "mtp08.mtp")
    data = read_cfg(ref / "configs" / f"emt_{split}.cfg")
    m = compute_metrics(data.configs, *engine.predict(pot, engine.dataset(data, pot.cutoff)))
    mine = format_mlip_report(m)
    theirs = (ref / "logs" / f"check_errors_mtp08_{split}.txt").read_text()
    a, b = _numbers(mine), _numbers(theirs)
    assert len(a) == len(b) > 20
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert re.findall(r"Errors checked for (\d+)", mine) == re.findall(r"Errors checked for (\d+)", theirs)


def test_saved_potential_round_trips(engine, shared_path, tmp_path):
    """save(.mtp and .almtp) then load gives the same parameters and energies."""
    ref = _ref(shared_path)
    pot = engine.load_potential(ref / "potentials" / "mtp16.mtp")
    data = read_cfg(ref / "configs" / "emt_val.cfg")
    ds = engine.dataset(data, pot.cutoff)
    e0 = engine.predict(pot, ds)[0]
    for ext in ("mtp", "almtp"):
        pot.save(tmp_path / f"p.{ext}")
        back = engine.load_potential(tmp_path / f"p.{ext}")
        np.testing.assert_array_equal(back.get_params(), pot.get_params())
        assert back.get_scalar("scaling") == pot.get_scalar("scaling")
        np.testing.assert_array_equal(engine.predict(back, ds)[0], e0)
