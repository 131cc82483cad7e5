"""The pymatgen-style JSON of the SNAP data sets (``structure`` + ``outputs``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from optbench.io._records import (
    _array,
    _assign_types,
    _forces,
    _json_list,
    _kbar_vasp_to_plus_stress,
    _load_json,
    _optional_energy,
)
from optbench.io.dataset import Configuration, DataError, DataSet, _check_finite


def _site_element(site, where: str) -> str:
    sp = site.get("species")
    if not isinstance(sp, list) or len(sp) != 1:
        raise DataError(f"{where}: site with {0 if not isinstance(sp, list) else len(sp)} species "
                        "(disordered sites are not supported)")
    occu = sp[0].get("occu", 1)
    if occu is not None and abs(float(occu) - 1.0) > 1e-8:
        raise DataError(f"{where}: site occupancy {occu} != 1 is not supported")
    el = sp[0].get("element")
    if not isinstance(el, str) or not el:
        raise DataError(f"{where}: site without an element")
    return el


def _pymatgen_geometry(rec, where: str):
    st = rec.get("structure")
    if not isinstance(st, dict) or "sites" not in st:
        raise DataError(f"{where}: record has no 'structure' with 'sites'")
    lat = st.get("lattice")
    cell = None
    if lat is not None:
        cell = _array(lat.get("matrix"), (3,), where, "lattice.matrix")
        if cell.shape != (3, 3):
            raise DataError(f"{where}: lattice.matrix has shape {cell.shape}, expected (3, 3)")
    elements, pos = [], []
    for j, site in enumerate(st["sites"]):
        elements.append(_site_element(site, f"{where}.sites[{j}]"))
        if "xyz" in site:
            pos.append(site["xyz"])
        elif "abc" in site and cell is not None:
            pos.append(np.asarray(site["abc"], dtype=float) @ cell)
        else:
            raise DataError(f"{where}: site {j} has neither 'xyz' nor 'abc' with a lattice")
    pos = _array(pos, (3,), where, "site positions")
    _check_finite(pos, where, "site positions")
    return cell, elements, pos


def _pymatgen_record(rec, k: int, path: Path):
    """One SNAP/pymatgen record -> (Configuration with types unset, element list)."""
    where = f"{path}[{k}]"
    if not isinstance(rec, dict):
        raise DataError(f"{where}: record is not an object")
    cell, elements, pos = _pymatgen_geometry(rec, where)
    out = rec.get("outputs") or {}
    forces = _forces(out.get("forces"), len(pos), where, "outputs.forces")
    raw = out.get("virial_stress", out.get("stress"))
    stress = None
    if raw is not None:
        s = _array(raw, (), where, "outputs.stress")
        if s.shape != (6,):
            raise DataError(f"{where}: outputs stress has {s.size} components, expected 6")
        _check_finite(s, where, "outputs.stress")
        stress = _kbar_vasp_to_plus_stress(s, cell, where)
    features = {"group": rec["group"]} if isinstance(rec.get("group"), str) else {}
    cfg = Configuration(
        positions=pos, types=np.zeros(len(pos), np.int32), cell=cell,
        energy=_optional_energy(out.get("energy"), where), forces=forces, stress=stress,
        features=features, source=where,
    )
    return cfg, elements


def _pymatgen_from_records(records, path: Path, species=None) -> DataSet:
    items = [_pymatgen_record(r, k, path) for k, r in enumerate(records)]
    species = _assign_types(items, species)
    return DataSet([cfg for cfg, _ in items], species, name=path.name)


def read_pymatgen_json(path, species: Sequence[str] | None = None) -> DataSet:
    """Read a pymatgen-style JSON list (the SNAP sets): ``structure`` (lattice.matrix in A,
    sites with ``xyz`` or ``abc``), ``outputs.energy`` (eV), ``outputs.forces`` (eV/A),
    ``outputs.virial_stress`` or ``outputs.stress`` (VASP stress in kBar, order
    xx yy zz xy yz zx, positive when compressed).  The stress becomes PlusStress in eV:
    ``[xx, yy, zz, yz, zx, xy] * V / 1602.1766208`` (no sign change: both are positive
    for a compressed cell).  ``species``: element of each type index (default: sorted
    unique elements of the file)."""
    path = Path(path)
    return _pymatgen_from_records(_json_list(path, _load_json(path)), path, species)
