"""Extended XYZ files, read through ase (labels by key in info, arrays or ase's
SinglePointCalculator)."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from optbench.io._records import _assign_types, _forces, _optional_energy
from optbench.io.cfg import _is_int
from optbench.io.dataset import (
    Configuration,
    DataError,
    DataSet,
    _as_voigt,
    _check_finite,
    cell_volume,
)


def _lookup(atoms, key: str | None):
    """A per-frame value from atoms.info / atoms.arrays, else from the SinglePointCalculator
    that ase builds for its standard names (energy, forces, stress, ...)."""
    if key is None:
        return None
    if key in atoms.info:
        return atoms.info[key]
    if key in atoms.arrays:
        return atoms.arrays[key]
    calc = atoms.calc
    results = getattr(calc, "results", None) if calc is not None else None
    if results and key in results:
        return results[key]
    return None


def _ase_frames(path: Path):
    """All frames via ase.io.read; retried with a lowercase ``properties=`` key fixed
    (data_pathway.xyz spells it so, and ase then misreads the atom columns)."""
    import ase.io

    try:
        return ase.io.read(path, index=":", format="extxyz")
    except Exception as first:  # ase raises many types; reported below with the file name
        text = _fix_properties_key(path.read_text())
        if text is None:
            raise DataError(f"{path}: cannot read as extended XYZ: {first}") from first
        try:
            return ase.io.read(io.StringIO(text), index=":", format="extxyz")
        except Exception as exc:
            raise DataError(f"{path}: cannot read as extended XYZ: {exc}") from exc


def _fix_properties_key(text: str) -> str | None:
    """Rename ``properties=`` to ``Properties=`` on frame comment lines; None if absent."""
    lines = text.splitlines()
    changed, i = False, 0
    while i + 1 < len(lines):
        head = lines[i].split()
        if not head:
            i += 1
            continue
        if not _is_int(head[0]):
            return None
        new = re.sub(r'(^|\s)properties=', r"\1Properties=", lines[i + 1])
        changed |= new != lines[i + 1]
        lines[i + 1] = new
        i += 2 + int(head[0])
    return "\n".join(lines) + "\n" if changed else None


def _xyz_stress(atoms, cell, virial_key, stress_key, where):
    """PlusStress (eV) from a virial (eV, ase sign: -sigma*V, equal to PlusStress) or a
    stress (eV/A^3, ase sign: sigma, positive under tension): PlusStress = -sigma * V."""
    vir = _lookup(atoms, virial_key)
    if vir is not None:
        return _as_voigt(vir, where, virial_key)
    st = _lookup(atoms, stress_key if stress_key is not None else "stress")
    if st is None:
        return None
    if cell is None:
        raise DataError(f"{where}: stress given for a non-periodic frame (no volume)")
    return -_as_voigt(st, where, stress_key or "stress") * cell_volume(cell)


def _xyz_frame(atoms, k: int, path: Path, energy_key, forces_key, virial_key, stress_key):
    where = f"{path}[{k}]"
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.array(atoms.cell[:], dtype=float) if pbc.any() else None
    if cell is not None and cell_volume(cell) == 0.0:
        raise DataError(f"{where}: periodic frame with a zero-volume cell")
    e = _lookup(atoms, energy_key)
    forces = _forces(_lookup(atoms, forces_key), len(atoms), where, forces_key)
    stress = _xyz_stress(atoms, cell, virial_key, stress_key, where)
    _check_finite(stress, where, "virial/stress")
    pos = np.array(atoms.positions, dtype=float)
    _check_finite(pos, where, "positions")
    cfg = Configuration(
        positions=pos, types=np.zeros(len(atoms), np.int32), cell=cell,
        energy=_optional_energy(None if e is None else np.asarray(e).item(), where),
        forces=forces, stress=stress, source=where,
    )
    return cfg, list(atoms.get_chemical_symbols())


#: Label keys tried in this order when none is named: ase's standard names, then the
#: names VASP-derived sets use (``../shared/datasets/agpd_rosenbrock``) and ``REF_*``.
DEFAULT_KEYS = {
    "energy": ("energy", "vasp_energy", "REF_energy"),
    "forces": ("forces", "vasp_force", "vasp_forces", "REF_forces"),
    "virial": ("virial", "vasp_virial", "REF_virial"),
    "stress": ("stress",),
}


def _has(atoms, key: str) -> bool:
    return _lookup(atoms, key) is not None


def _choose_key(frames, label: str, given: str | None, path: Path) -> str | None:
    """The key of `label` for the whole file: `given` (DataError when no frame has it), else
    the first of DEFAULT_KEYS[label] that some frame has, else None (unlabelled)."""
    if given is not None:
        if frames and not any(_has(a, given) for a in frames):
            found = sorted({k for a in frames[:5] for k in (*a.info, *a.arrays)} - {"numbers", "positions"})
            raise DataError(f"{path}: no frame has the {label} key {given!r}; keys found: {', '.join(found) or 'none'}")
        return given
    return next((k for k in DEFAULT_KEYS[label] if any(_has(a, k) for a in frames)), None)


def read_extxyz(
    path,
    energy_key: str | None = None,
    forces_key: str | None = None,
    virial_key: str | None = None,
    stress_key: str | None = None,
    species: Sequence[str] | None = None,
) -> DataSet:
    """Read an extended XYZ file through ``ase.io.read(path, index=":")``.

    Labels are looked up by key in ``atoms.info`` / ``atoms.arrays`` (custom names such
    as ``vasp_energy``, ``vasp_force``, ``vasp_virial`` stay there) or in the
    SinglePointCalculator (ase moves the standard ``energy``, ``forces``, ``stress``
    there). A key not named is the first of DEFAULT_KEYS that the file has; a named key
    that no frame has is a DataError listing the keys found. ``virial_key``: virial in eV
    (3x3 or Voigt), stored as PlusStress unchanged. If a frame has no virial, the stress
    (``stress_key``, ase's standard ``stress``: eV/A^3, positive under tension) is
    converted as PlusStress = -stress * volume. A label missing in a frame gives None.
    ``species``: element of each type index (default: sorted unique symbols of the file);
    another element raises DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    frames = _ase_frames(path)
    keys = [_choose_key(frames, label, given, path) for label, given in
            (("energy", energy_key), ("forces", forces_key), ("virial", virial_key), ("stress", stress_key))]
    items = [_xyz_frame(a, k, path, *keys) for k, a in enumerate(frames)]
    species = _assign_types(items, species)
    return DataSet([cfg for cfg, _ in items], species, name=path.name)
