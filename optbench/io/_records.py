"""Helpers the JSON and extxyz readers share: reading a JSON list, typed arrays with
messages naming the record, energies, types from element symbols, and VASP stress in kBar
to PlusStress."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from ase import units

from optbench.io.dataset import DataError, _check_finite, cell_volume

#: 1 eV/A^3 = 1602.1766208 kBar (ase.units, CODATA 2014).
KBAR_PER_EV_A3 = 1.0 / (1e3 * units.bar)


def _load_json(path: Path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc


def _json_list(path: Path, data) -> list:
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of configurations, found {type(data).__name__}")
    return data


def _array(value, shape_tail: tuple, where: str, what: str, dtype=float) -> np.ndarray:
    try:
        arr = np.array(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: {what} is not numeric: {exc}") from exc
    if arr.size == 0 and shape_tail:
        arr = arr.reshape((0,) + shape_tail)
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
        raise DataError(f"{where}: {what} has shape {arr.shape}, expected (N, {', '.join(map(str, shape_tail))})"
                        if shape_tail else f"{where}: {what} has shape {arr.shape}, expected (N,)")
    return arr


def _forces(value, n_atoms: int, where: str, what: str) -> np.ndarray | None:
    """A force label (eV/A) as an (n_atoms, 3) array, None when absent; DataError naming
    `what` when it is not numeric, has another row count or holds NaN/inf."""
    if value is None:
        return None
    forces = _array(value, (3,), where, what)
    if len(forces) != n_atoms:
        raise DataError(f"{where}: {what} has {len(forces)} rows for {n_atoms} atoms")
    _check_finite(forces, where, what)
    return forces


def _optional_energy(value, where: str) -> float | None:
    if value is None:
        return None
    try:
        e = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: energy {value!r} is not a number") from None
    if not math.isfinite(e):
        raise DataError(f"{where}: energy is NaN or inf")
    return e


def _types_array(value, where: str) -> np.ndarray:
    raw = _array(value, (), where, "types", dtype=float)
    if np.any(raw != np.round(raw)):
        raise DataError(f"{where}: types must be integers")
    if np.any(raw < 0):
        raise DataError(f"{where}: negative type {int(raw.min())}")
    return raw.astype(np.int32)


def _kbar_vasp_to_plus_stress(s: np.ndarray, cell, where: str) -> np.ndarray:
    """VASP stress (kBar, xx yy zz xy yz zx, positive = compressed = -sigma) -> PlusStress eV.

    PlusStress = -sigma * V, and the VASP value is already -sigma, so only the units
    (kBar * A^3 -> eV) and the component order change."""
    if cell is None:
        raise DataError(f"{where}: stress in kBar needs a cell (volume) to convert to eV")
    vol = cell_volume(cell)
    xx, yy, zz, xy, yz, zx = np.asarray(s, dtype=float)
    return np.array([xx, yy, zz, yz, zx, xy]) * vol / KBAR_PER_EV_A3


def _assign_types(items, species) -> list[str]:
    """Set ``types`` from element symbols; default species = sorted unique symbols."""
    if species is None:
        species = sorted({el for _, els in items for el in els})
    index = {el: i for i, el in enumerate(species)}
    for cfg, els in items:
        unknown = sorted(set(els) - index.keys())
        if unknown:
            raise DataError(f"{cfg.source}: unknown species {', '.join(unknown)} (known: {', '.join(species)})")
        cfg.types = np.array([index[e] for e in els], dtype=np.int32)
    return list(species)
