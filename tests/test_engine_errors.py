"""Bad input to the engine and its binding gives a clear error, never a crash.

Contracts checked: every function of mlipc.h is exported by the library; each malformed
potential file, spec, data set, parameter vector or weight raises the exception class
matching its mlipc error code, with a message naming the file/line, configuration or
field; the process survives all of them (the test keeps using the engine afterwards).
"""

from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest
from conftest import REPO_ROOT, random_potential

from optbench.engine import capi
from optbench.io import Configuration, DataSet


def test_every_header_function_is_exported(engine):
    """All functions declared in engine/include/mlipc.h are callable symbols of the library."""
    header = (REPO_ROOT / "engine" / "include" / "mlipc.h").read_text()
    names = set(re.findall(r"\b(mlipc_[a-z_]+)\s*\(", header))
    assert len(names) >= 20
    lib = ctypes.CDLL(str(engine.path))
    missing = [n for n in sorted(names) if not hasattr(lib, n)]
    assert not missing, f"not exported: {missing}"


def test_missing_library_names_the_setting(tmp_path):
    """A wrong library path raises FileNotFoundError naming the path and what to fix."""
    with pytest.raises(FileNotFoundError, match="mlipc library not found.*--lib"):
        capi.Engine(tmp_path / "nope.so")


BAD_POTENTIALS = {
    "empty": ("", "empty file"),
    "not_mtp": ("hello\n", r":1: expected 'MTP'"),
    "truncated": (None, "missing 'alpha_moment_mapping'"),
    "bad_number": (None, r":9 \(max_dist\): cannot read a number"),
    "unknown_key": (None, r"unknown key 'colour'"),
    "wrong_radial_count": (None, "radial_coeffs has"),
    "bad_index": (None, "refers to moment 99"),
}


def _variant(text: str, kind: str) -> str:
    lines = text.splitlines()
    if kind == "truncated":
        return "\n".join(l for l in lines if not l.startswith(("alpha_moment_mapping", "moment_coeffs",
                                                                "species_coeffs", "alpha_scalar")))
    if kind == "bad_number":
        lines[8] = "\tmax_dist = 5.0x"
        return "\n".join(lines)
    if kind == "unknown_key":
        return text + "colour = blue\n"
    if kind == "wrong_radial_count":
        i = next(i for i, l in enumerate(lines) if l.strip().startswith("{"))
        del lines[i]
        return "\n".join(lines)
    if kind == "bad_index":
        out, n = re.subn(r"alpha_index_times = \{\{(\d+), \d+,", r"alpha_index_times = {{\1, 99,", text)
        assert n == 1
        return out
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", sorted(BAD_POTENTIALS))
def test_malformed_potential_files(engine, tmp_path, kind):
    """Each malformed .mtp raises EngineFormatError naming the file (and line where known)."""
    good = tmp_path / "good.mtp"
    random_potential(engine, level=8).save(good)
    text, pattern = BAD_POTENTIALS[kind]
    bad = tmp_path / f"{kind}.mtp"
    bad.write_text(_variant(good.read_text(), kind) if text is None else text)
    with pytest.raises(capi.EngineFormatError) as err:
        engine.load_potential(bad)
    assert str(bad) in str(err.value)
    assert re.search(pattern, str(err.value)), str(err.value)


def test_missing_potential_file(engine, tmp_path):
    """A missing file raises EngineIOError (an OSError) naming the path."""
    with pytest.raises(capi.EngineIOError, match="nothere.mtp"):
        engine.load_potential(tmp_path / "nothere.mtp")


@pytest.mark.parametrize("spec,pattern", [
    ("mtp level=7 species=2", "level"),
    ("mtp level=30 species=2", "level"),
    ("mtp level=8 species=2 colour=3", "unknown key 'colour'"),
    ("mtp species=2", "exactly one of level"),
    ("etn level=8", "unknown key 'level'"),
    ("nnp level=8", "must start with 'mtp' or 'etn'"),
    ("mtp level=8 species=zero", "not a number"),
    ("mtp level=8 species=2 min_dist=6 max_dist=5", "min_dist < max_dist"),
])
def test_malformed_specs(engine, spec, pattern):
    """A bad spec string raises EngineFormatError saying which word is wrong."""
    with pytest.raises(capi.EngineFormatError, match=pattern):
        engine.potential_from_spec(spec)


def _one(types=(0, 1), energy=1.0, forces=None) -> Configuration:
    pos = np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 0.0]])[: len(types)]
    return Configuration(positions=pos, types=np.array(types, dtype=np.int32), cell=4.0 * np.eye(3),
                         energy=energy, forces=np.zeros((len(types), 3)) if forces is None else forces,
                         stress=np.zeros(6))


def test_wrong_parameter_vector_length(engine):
    """set_params with a wrong length raises EngineArgumentError naming both lengths."""
    pot = random_potential(engine, level=6)
    with pytest.raises(capi.EngineArgumentError, match=f"length {pot.n_params + 1}.*{pot.n_params}"):
        pot.set_params(np.zeros(pot.n_params + 1))
    with pytest.raises(capi.EngineNumericError, match="parameter 3 is not finite"):
        x = pot.get_params()
        x[3] = np.nan
        pot.set_params(x)


def test_unknown_species(engine):
    """An atom whose species index exceeds the potential's raises EngineDataError naming
    the configuration, the atom and the index."""
    pot = random_potential(engine, level=6, species=2)
    ds = engine.dataset(DataSet([_one(), _one(types=(0, 2))]), 5.0)
    with pytest.raises(capi.EngineDataError, match="configuration 1, atom 1 has species index 2"):
        engine.predict(pot, ds)


def test_nan_label_with_nonzero_weight(engine):
    """A NaN energy label is allowed only with a zero energy weight."""
    pot = random_potential(engine, level=6)
    ds = engine.dataset(DataSet([_one(), _one(energy=float("nan"))]), 5.0)
    with pytest.raises(capi.EngineDataError, match="configuration 1 has no energy label"):
        engine.loss_grad(pot, ds, np.ones((2, 3)))
    loss, g = engine.loss_grad(pot, ds, np.array([[1.0, 1, 1], [0.0, 1, 1]]))
    assert np.isfinite(loss) and np.all(np.isfinite(g))


def test_bad_weights_and_indices(engine):
    """Negative/NaN weights, wrong weight shape and out-of-range indices are rejected."""
    pot = random_potential(engine, level=6)
    ds = engine.dataset(DataSet([_one(), _one()]), 5.0)
    with pytest.raises(capi.EngineArgumentError, match="weight wF of configuration 0"):
        engine.loss_grad(pot, ds, np.array([[1.0, -1, 0], [1, 1, 0]]))
    with pytest.raises(ValueError, match="shape"):
        engine.loss_grad(pot, ds, np.ones((3, 3)))
    with pytest.raises(capi.EngineArgumentError, match="index 5"):
        engine.loss_grad(pot, ds, np.ones((2, 3)), idx=[0, 5])


def test_empty_and_degenerate_data(engine):
    """An empty data set, a zero-volume cell and overlapping atoms are data errors."""
    with pytest.raises(capi.EngineDataError, match="empty data set"):
        engine.dataset_from_arrays([], np.zeros(0), [], np.zeros(0), np.zeros(0, np.int32), 5.0)
    flat = _one()
    flat.cell = np.array([[4.0, 0, 0], [0, 4, 0], [8, 8, 0]])
    with pytest.raises(capi.EngineDataError, match="zero volume"):
        engine.dataset(DataSet([flat]), 5.0)
    dup = _one()
    dup.positions = np.zeros((2, 3))
    with pytest.raises(capi.EngineDataError, match="atoms 0 and 1"):
        engine.dataset(DataSet([dup]), 5.0)


def test_cutoff_smaller_than_potential(engine):
    """A data set built with a cutoff below the potential's is refused with advice."""
    pot = random_potential(engine, level=6)
    ds = engine.dataset(DataSet([_one()]), 4.0)
    with pytest.raises(capi.EngineArgumentError, match="cutoff >= max_dist"):
        engine.predict(pot, ds)


def test_unwritable_save_path(engine, tmp_path):
    """Saving to a missing folder or unknown extension raises a clear error."""
    pot = random_potential(engine, level=6)
    with pytest.raises(capi.EngineIOError, match="cannot open"):
        pot.save(tmp_path / "no" / "such" / "dir.mtp")
    with pytest.raises(capi.EngineArgumentError, match="extension"):
        pot.save(tmp_path / "pot.txt")
