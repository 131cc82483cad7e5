"""The MLIP-4 JSON data format: a list of records ``{"sim": {"cfg": {cell, pos, types},
energy, forces, stress}, "weights": [...]}`` (reader, reader from records in memory, and
writer of records)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from optbench.io._records import (
    _array,
    _forces,
    _json_list,
    _kbar_vasp_to_plus_stress,
    _load_json,
    _optional_energy,
    _types_array,
)
from optbench.io.dataset import Configuration, DataError, DataSet, _check_finite

STRESS_FORMATS = ("virial_ev", "kbar_vasp", "ignore")


def _mlip4_stress(value, cell, where: str, stress_format: str):
    if value is None or stress_format == "ignore":
        return None
    s = _array(value, (), where, "stress")
    if s.shape != (6,):
        raise DataError(f"{where}: stress has {s.size} components, expected 6")
    _check_finite(s, where, "stress")
    if stress_format == "kbar_vasp":
        return _kbar_vasp_to_plus_stress(s, cell, where)
    return s


def _mlip4_record(rec, k: int, path: Path, use_file_weights: bool, stress_format: str) -> Configuration:
    where = f"{path}[{k}]"
    if not isinstance(rec, dict) or not isinstance(rec.get("sim"), dict):
        raise DataError(f"{where}: record has no 'sim' object")
    sim = rec["sim"]
    geo = sim.get("cfg")
    if not isinstance(geo, dict) or "pos" not in geo or "types" not in geo:
        raise DataError(f"{where}: 'sim.cfg' must hold 'pos' and 'types'")
    pos = _array(geo["pos"], (3,), where, "pos")
    types = _types_array(geo["types"], where)
    if len(types) != len(pos):
        raise DataError(f"{where}: {len(types)} types for {len(pos)} positions")
    _check_finite(pos, where, "pos")
    cell = None
    if geo.get("cell") is not None:
        cell = _array(geo["cell"], (3,), where, "cell")
        if cell.shape != (3, 3):
            raise DataError(f"{where}: cell has shape {cell.shape}, expected (3, 3)")
        _check_finite(cell, where, "cell")
    forces = _forces(sim.get("forces"), len(pos), where, "forces")
    stress = _mlip4_stress(sim.get("stress"), cell, where, stress_format)
    features: dict = {}
    if stress is not None and not np.any(stress):
        features["stress_all_zero"] = True
    if use_file_weights and rec.get("weights") is not None:
        w = _array(rec["weights"], (), where, "weights")
        if w.size != 7 + 3 * len(types):
            raise DataError(f"{where}: weights has {w.size} entries, expected 1 + 6 + 3N = {7 + 3 * len(types)}")
        features["weights"] = w
    return Configuration(
        positions=pos, types=types, cell=cell, energy=_optional_energy(sim.get("energy"), where),
        forces=forces, stress=stress, features=features, source=where,
    )


def _mlip4_from_records(
    records, path: Path, use_file_weights: bool = False, species=None, stress_format: str = "virial_ev"
) -> DataSet:
    if stress_format not in STRESS_FORMATS:
        raise ValueError(f"stress_format must be one of {STRESS_FORMATS}, got {stress_format!r}")
    configs = [_mlip4_record(r, k, path, use_file_weights, stress_format) for k, r in enumerate(records)]
    return DataSet(configs, None if species is None else list(species), name=path.name)


def read_mlip4_json(
    path,
    use_file_weights: bool = False,
    species: Sequence[str] | None = None,
    stress_format: str = "virial_ev",
) -> DataSet:
    """Read the MLIP-4 JSON list format (``sim.cfg.cell/pos/types``, ``sim.energy`` eV,
    ``sim.forces`` eV/A, ``sim.stress`` = PlusStress in eV, xx yy zz yz xz xy).

    The file's ``weights`` are kept (``features["weights"]``: w_E, 6 x w_S, 3N x w_F) only
    when ``use_file_weights``; by default the experiment sets the loss weights.  An
    all-zero stress is kept but flagged ``features["stress_all_zero"] = True`` (e.g.
    MoNbTaVW, whose stresses are absent and zero-weighted).  ``stress_format``:
    ``"virial_ev"`` (the format's definition, default), ``"kbar_vasp"`` for files that
    copied VASP/pymatgen stress verbatim (kBar, order xx yy zz xy yz zx -- the case of
    ``monbtaw_study/MoNbTaW_valid.json``), or ``"ignore"`` to drop stresses."""
    path = Path(path)
    records = _json_list(path, _load_json(path))
    return _mlip4_from_records(records, path, use_file_weights, species, stress_format)


def from_mlip4_records(records: list, name: str = "records", use_file_weights: bool = False,
                       species: Sequence[str] | None = None) -> DataSet:
    """A DataSet from MLIP-4 JSON records already in memory (the list ``read_mlip4_json``
    reads from a file); errors name ``name[k]``. Units as in read_mlip4_json."""
    return _mlip4_from_records(_json_list(Path(name), records), Path(name), use_file_weights, species)


def mlip4_records(data: DataSet | Sequence[Configuration], weights: np.ndarray | None = None) -> list[dict]:
    """Configurations as MLIP-4 JSON records (the list ``read_mlip4_json`` reads):
    ``sim.cfg`` cell (None for a molecule), pos (A), types; ``sim.energy`` (eV),
    ``sim.forces`` (eV/A), ``sim.stress`` (PlusStress, eV), each only when labelled; and,
    with `weights` ((n, 3) per-configuration wE, wF, wS as LossWeights.per_config gives),
    ``weights`` = [wE, 6 x wS (off-diagonal doubled, so that the 6-vector sum equals the
    Frobenius norm of the 3 x 3 stress), 3N x wF]."""
    configs = data.configs if isinstance(data, DataSet) else list(data)
    out = []
    for k, c in enumerate(configs):
        sim: dict = {"cfg": {"cell": None if c.cell is None else np.asarray(c.cell).tolist(),
                             "pos": np.asarray(c.positions).tolist(), "types": np.asarray(c.types).tolist()}}
        if c.energy is not None:
            sim["energy"] = float(c.energy)
        if c.forces is not None:
            sim["forces"] = np.asarray(c.forces).tolist()
        if c.stress is not None:
            sim["stress"] = np.asarray(c.stress).tolist()
        rec: dict = {"sim": sim}
        if weights is not None:
            w_e, w_f, w_s = (float(v) for v in weights[k])
            rec["weights"] = [w_e, w_s, w_s, w_s, 2 * w_s, 2 * w_s, 2 * w_s] + [w_f] * (3 * c.n_atoms)
        out.append(rec)
    return out
