"""Training data: the in-memory data model, readers and writers of the DFT formats.

Units everywhere: Angstrom, eV, eV/Angstrom.  ``Configuration.stress`` is always MLIP's
``PlusStress``: the virial in eV, ``-dE/d(strain)`` = ``-sigma * V`` with ``sigma`` the
physical (ase) stress that is positive under tension.  So a *stretched* cell has a
NEGATIVE PlusStress, a compressed one a positive PlusStress.  Voigt order is
``xx yy zz yz xz xy``.  How each source format maps onto it:

==================  ================================================  ====================
format              stored quantity                                    to PlusStress
==================  ================================================  ====================
.cfg ``PlusStress``  virial, eV                                        as is
.cfg ``Stress``      legacy, minus the virial, eV                      ``-Stress``
MLIP-4 JSON          virial, eV, xx yy zz yz xz xy                      as is
extxyz ``virial``    ase virial ``-sigma*V``, eV, 3x3                  as is (Voigt)
extxyz ``stress``    ase stress ``sigma``, eV/A^3                      ``-sigma * V``
pymatgen JSON        VASP stress, kBar, xx yy zz xy yz zx, positive     reorder, ``* V / 1602.18``
                     when compressed (``-sigma``)
==================  ================================================  ====================

How these were checked on the data in ``../shared/datasets`` (see ``tests/test_data.py``):
the Rosenbrock Ag-Pd extxyz frames carry ``vasp_virial`` while ``mtp_train.cfg`` holds
recomputations of the same lattices with ``Stress:``; matched frames (same atom count,
energy within 2e-4 eV, volume within 1e-3 A^3) have eigenvalues of ``vasp_virial`` equal
to those of ``-Stress`` (to 1e-4 eV for one-atom cells), e.g. bcc Pd at 30.3 A^3/atom
(stretched): -3.03 eV.  In the SNAP ``*_Elastic.json`` sets a cell stretched along z by
10 % has ``stress[2] = -330`` kBar and a positive xy shear strain gives a negative
4th component, fixing both the sign and the order xx yy zz xy yz zx.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

__all__ = [
    "Configuration",
    "DataSet",
    "DataError",
    "read_cfg",
    "write_cfg",
    "read_mlip4_json",
    "read_extxyz",
    "read_pymatgen_json",
    "read_dataset",
    "map_species",
    "remap_types",
    "split",
    "split_by_file",
    "validate",
    "to_arrays",
    "cell_volume",
    "KBAR_PER_EV_A3",
    "VOIGT_ORDER",
]

#: 1 eV/A^3 = 160.21766208 GPa = 1602.1766208 kBar.
KBAR_PER_EV_A3 = 1602.1766208
#: Voigt component order of ``Configuration.stress`` (MLIP PlusStress).
VOIGT_ORDER = ("xx", "yy", "zz", "yz", "xz", "xy")
# (row, column) of each Voigt component in a 3x3 tensor.
_VOIGT_IJ = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


class DataError(ValueError):
    """Malformed or inconsistent data; the message names the file and line or record."""


# ---------------------------------------------------------------------------- model


@dataclass
class Configuration:
    """One atomic configuration with optional DFT labels."""

    positions: np.ndarray  # (N,3) float64 Cartesian, Angstrom
    types: np.ndarray  # (N,) int32, 0-based species index
    cell: np.ndarray | None = None  # (3,3) float64, lattice vectors as ROWS; None = molecule
    energy: float | None = None  # eV (total)
    forces: np.ndarray | None = None  # (N,3) eV/Angstrom
    stress: np.ndarray | None = None  # (6,) PlusStress = virial in eV, xx yy zz yz xz xy
    features: dict = field(default_factory=dict)  # e.g. MLIP "Feature" lines
    source: str = ""  # "path:line" or "path[record]" for error messages

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return int(len(self.types))


@dataclass
class DataSet:
    """An ordered list of configurations and, when known, the element of each type index."""

    configs: list[Configuration]
    species: list[str] | None = None  # element symbol of each species index, when known
    name: str = ""

    def __len__(self) -> int:
        return len(self.configs)

    def __iter__(self):
        return iter(self.configs)

    def __getitem__(self, key):
        """An int gives a Configuration; a slice, index array or boolean mask a DataSet."""
        if isinstance(key, (int, np.integer)):
            return self.configs[int(key)]
        if isinstance(key, slice):
            picked = self.configs[key]
        else:
            idx = np.asarray(key)
            if idx.dtype == bool:
                if idx.shape != (len(self.configs),):
                    raise IndexError(f"boolean mask of shape {idx.shape} for {len(self)} configs")
                idx = np.flatnonzero(idx)
            picked = [self.configs[int(i)] for i in idx.ravel()]
        return DataSet(list(picked), None if self.species is None else list(self.species), self.name)

    @property
    def n_atoms(self) -> int:
        """Total number of atoms over all configurations."""
        return int(sum(c.n_atoms for c in self.configs))

    @property
    def n_species(self) -> int:
        """len(species) when the elements are known, else the largest type index + 1."""
        if self.species is not None:
            return len(self.species)
        return max((int(c.types.max()) + 1 for c in self.configs if c.n_atoms), default=0)

    def remap_species(self, mapping) -> DataSet:
        """Renumber species: a list of element symbols -> ``map_species``; a mapping
        old index -> new index (dict or sequence) -> ``remap_types``."""
        if isinstance(mapping, Sequence) and not isinstance(mapping, str) and all(
            isinstance(m, str) for m in mapping
        ):
            return map_species(self, mapping)
        return remap_types(self, mapping)


def cell_volume(cell: np.ndarray) -> float:
    """Volume |det(cell)| of a cell with lattice vectors as rows, A^3."""
    return float(abs(np.linalg.det(np.asarray(cell, dtype=float))))


def _voigt(t: np.ndarray) -> np.ndarray:
    """3x3 tensor -> Voigt (xx yy zz yz xz xy), symmetrising the off-diagonal pairs."""
    t = np.asarray(t, dtype=float).reshape(3, 3)
    return np.array([0.5 * (t[i, j] + t[j, i]) for i, j in _VOIGT_IJ])


def _as_voigt(value, where: str, what: str) -> np.ndarray:
    """A 6-vector (already Voigt, xx yy zz yz xz xy) or 3x3/9-vector -> Voigt 6-vector."""
    arr = np.asarray(value, dtype=float)
    if arr.size == 6:
        return arr.reshape(6).copy()
    if arr.size == 9:
        return _voigt(arr)
    raise DataError(f"{where}: {what} has {arr.size} components, expected 6 or 9")


def _check_finite(values, where: str, what: str) -> None:
    if values is not None and not np.all(np.isfinite(values)):
        raise DataError(f"{where}: {what} contains NaN or inf")


# ------------------------------------------------------------------------------ .cfg


def _cfg_error(path: Path, lineno: int, msg: str) -> DataError:
    return DataError(f"{path}:{lineno}: {msg}")


def _truncated(path: Path, begin: int, n_lines: int) -> DataError:
    return _cfg_error(
        path, begin, f"truncated file: the configuration that begins here has no END_CFG (file ends at line {n_lines})"
    )


class _CfgLines:
    """Cursor over the lines of a .cfg file with 1-based line numbers for messages."""

    def __init__(self, path: Path, lines: list[str]):
        self.path, self.lines, self.pos = path, lines, 0

    def next_nonblank(self, begin_line: int) -> tuple[int, list[str]]:
        while self.pos < len(self.lines):
            self.pos += 1
            tokens = self.lines[self.pos - 1].split()
            if tokens:
                return self.pos, tokens
        raise _truncated(self.path, begin_line, len(self.lines))

    def floats(self, begin_line: int, n: int, what: str) -> tuple[int, np.ndarray]:
        lineno, tokens = self.next_nonblank(begin_line)
        return lineno, _parse_floats(self.path, lineno, tokens, n, what)


def _parse_floats(path: Path, lineno: int, tokens: list[str], n: int, what: str) -> np.ndarray:
    if len(tokens) != n:
        raise _cfg_error(path, lineno, f"{what}: expected {n} numbers, found {len(tokens)}")
    try:
        return np.array([float(t) for t in tokens], dtype=float)
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise _cfg_error(path, lineno, f"{what}: non-numeric field {bad!r}") from None


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _is_int(token: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", token) is not None


_POS_COLUMNS = {
    "cartes": ("cartes_x", "cartes_y", "cartes_z"),
    "direct": ("direct_x", "direct_y", "direct_z"),
}
_FORCE_COLUMNS = ("fx", "fy", "fz")


def _atom_columns(path: Path, lineno: int, names: list[str]) -> dict:
    """Column indices of type, positions (and their kind) and forces in an AtomData header."""
    names = [n.lower() for n in names]
    if "type" not in names:
        raise _cfg_error(path, lineno, "AtomData header has no 'type' column")
    cols = {"type": names.index("type"), "n": len(names)}
    for kind, pos_names in _POS_COLUMNS.items():
        if all(p in names for p in pos_names):
            cols["pos"] = [names.index(p) for p in pos_names]
            cols["kind"] = kind
            break
    else:
        raise _cfg_error(path, lineno, "AtomData header has neither cartes_x/y/z nor direct_x/y/z")
    present = [f in names for f in _FORCE_COLUMNS]
    if any(present) and not all(present):
        raise _cfg_error(path, lineno, "AtomData header has only some of fx fy fz")
    cols["forces"] = [names.index(f) for f in _FORCE_COLUMNS] if all(present) else None
    return cols


def _read_atom_lines(cur: _CfgLines, begin: int, cols: dict):
    """Atom lines follow the header until a line that starts with a keyword."""
    rows, first_line = [], None
    while cur.pos < len(cur.lines):
        tokens = cur.lines[cur.pos].split()
        if tokens and not _is_float(tokens[0]):
            break
        cur.pos += 1
        if not tokens:
            continue
        lineno = cur.pos
        first_line = first_line or lineno
        if len(tokens) != cols["n"]:
            raise _cfg_error(
                cur.path, lineno, f"atom line has {len(tokens)} columns, AtomData header names {cols['n']}"
            )
        rows.append((lineno, tokens))
    if cur.pos >= len(cur.lines):
        raise _truncated(cur.path, begin, len(cur.lines))
    return rows


def _parse_atoms(cur: _CfgLines, rows, cols: dict):
    types = np.empty(len(rows), dtype=np.int32)
    pos = np.empty((len(rows), 3))
    forces = np.empty((len(rows), 3)) if cols["forces"] is not None else None
    for k, (lineno, tokens) in enumerate(rows):
        t = tokens[cols["type"]]
        if not _is_int(t):
            raise _cfg_error(cur.path, lineno, f"atom type {t!r} is not an integer")
        types[k] = int(t)
        if types[k] < 0:
            raise _cfg_error(cur.path, lineno, f"negative atom type {types[k]}")
        pos[k] = _parse_floats(cur.path, lineno, [tokens[i] for i in cols["pos"]], 3, "position")
        _check_finite(pos[k], f"{cur.path}:{lineno}", "position")
        if forces is not None:
            forces[k] = _parse_floats(cur.path, lineno, [tokens[i] for i in cols["forces"]], 3, "force")
            _check_finite(forces[k], f"{cur.path}:{lineno}", "force")
    return types, pos, forces


def _parse_cfg_block(cur: _CfgLines, begin: int) -> Configuration:
    """Parse one configuration after its BEGIN_CFG line (line number ``begin``)."""
    path = cur.path
    size = cell = energy = stress = None
    atoms = None
    features: dict[str, str] = {}
    while True:
        lineno, tokens = cur.next_nonblank(begin)
        key = tokens[0].rstrip(":").lower()
        rest = tokens[1:]
        if key == "end_cfg":
            break
        if key == "begin_cfg":
            raise _cfg_error(path, lineno, f"BEGIN_CFG before END_CFG of the configuration at line {begin}")
        if key == "size":
            ln, toks = (lineno, rest) if rest else cur.next_nonblank(begin)
            if len(toks) != 1 or not _is_int(toks[0]) or int(toks[0]) < 0:
                raise _cfg_error(path, ln, f"Size must be one non-negative integer, found {' '.join(toks)!r}")
            size = int(toks[0])
        elif key == "supercell":
            cell = np.array([cur.floats(begin, 3, "Supercell row")[1] for _ in range(3)])
            _check_finite(cell, f"{path}:{cur.pos}", "Supercell")
        elif key == "atomdata":
            cols = _atom_columns(path, lineno, rest)
            rows = _read_atom_lines(cur, begin, cols)
            atoms = (lineno, cols, _parse_atoms(cur, rows, cols))
        elif key == "energy":
            ln, vals = (lineno, _parse_floats(path, lineno, rest, 1, "Energy")) if rest else cur.floats(begin, 1, "Energy")
            _check_finite(vals, f"{path}:{ln}", "Energy")
            energy = float(vals[0])
        elif key in ("plusstress", "stress"):
            ln, vals = cur.floats(begin, 6, tokens[0].rstrip(":"))
            _check_finite(vals, f"{path}:{ln}", tokens[0].rstrip(":"))
            # legacy Stress is minus the virial; store PlusStress only
            stress = vals if key == "plusstress" else -vals
        elif key == "feature":
            if not rest:
                raise _cfg_error(path, lineno, "Feature line without a name")
            name, value = rest[0], " ".join(rest[1:])
            features[name] = value if name not in features else features[name] + "\n" + value
        else:
            raise _cfg_error(path, lineno, f"unknown keyword {tokens[0]!r}")
    return _assemble_cfg(path, begin, size, cell, atoms, energy, stress, features)


def _assemble_cfg(path, begin, size, cell, atoms, energy, stress, features) -> Configuration:
    if atoms is None:
        if size:
            raise _cfg_error(path, begin, f"Size {size} but no AtomData block")
        types, pos, forces, header = np.zeros(0, np.int32), np.zeros((0, 3)), None, begin
        kind = "cartes"
    else:
        header, cols, (types, pos, forces) = atoms
        kind = cols["kind"]
    if size is not None and size != len(types):
        raise _cfg_error(path, header, f"Size is {size} but AtomData has {len(types)} atom lines")
    if kind == "direct":
        if cell is None:
            raise _cfg_error(path, header, "direct (fractional) coordinates without a Supercell")
        pos = pos @ cell
    return Configuration(
        positions=np.ascontiguousarray(pos, dtype=float),
        types=types,
        cell=cell,
        energy=energy,
        forces=forces,
        stress=stress,
        features=features,
        source=f"{path}:{begin}",
    )


def read_cfg(path, species: Sequence[str] | None = None) -> DataSet:
    """Read an MLIP-2/3 ``.cfg`` file (positions in A, energy in eV, forces in eV/A,
    stress as PlusStress in eV; a legacy ``Stress:`` block is negated to PlusStress;
    ``direct_*`` coordinates are converted to Cartesian with the Supercell).

    ``species`` optionally names the element of each type index (.cfg files do not).
    Raises DataError naming the file and line for malformed input."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    cur = _CfgLines(path, text.splitlines())
    configs = []
    while cur.pos < len(cur.lines):
        cur.pos += 1
        tokens = cur.lines[cur.pos - 1].split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if tokens[0].upper() != "BEGIN_CFG":
            raise _cfg_error(path, cur.pos, f"expected BEGIN_CFG, found {tokens[0]!r}")
        configs.append(_parse_cfg_block(cur, cur.pos))
    return DataSet(configs, None if species is None else list(species), name=path.name)


def _fmt(values, fmt: str) -> str:
    return " ".join(format(float(v), fmt) for v in values)


def _cfg_lines(cfg: Configuration) -> list[str]:
    out = ["BEGIN_CFG", " Size", f"    {cfg.n_atoms}"]
    if cfg.cell is not None:
        out.append(" Supercell")
        out += [f"    {_fmt(row, '.12f')}" for row in np.asarray(cfg.cell)]
    header = " AtomData:  id type       cartes_x      cartes_y      cartes_z"
    out.append(header + ("           fx          fy          fz" if cfg.forces is not None else ""))
    for k in range(cfg.n_atoms):
        line = f"    {k + 1} {int(cfg.types[k])} {_fmt(cfg.positions[k], '.12f')}"
        if cfg.forces is not None:
            line += " " + _fmt(cfg.forces[k], ".12f")
        out.append(line)
    if cfg.energy is not None:
        out += [" Energy", f"    {float(cfg.energy):.12f}"]
    if cfg.stress is not None:
        out += [" PlusStress:  xx          yy          zz          yz          xz          xy"]
        out.append(f"    {_fmt(cfg.stress, '.12f')}")
    for name, value in cfg.features.items():
        # only MLIP-style string features are written; arrays/flags from other readers are not
        if isinstance(value, str) and re.fullmatch(r"\S+", name):
            out += [f" Feature   {name}  {v}".rstrip() for v in value.split("\n")]
    out += ["END_CFG", ""]
    return out


def write_cfg(data: DataSet | Iterable[Configuration], path) -> None:
    """Write configurations as an MLIP ``.cfg`` file: Cartesian positions (A) and forces
    (eV/A) with 12 decimals, energy (eV) with 12 decimals, stress as ``PlusStress`` (eV),
    and string-valued features as ``Feature`` lines.  Round-trips with ``read_cfg``."""
    configs = data.configs if isinstance(data, DataSet) else list(data)
    lines: list[str] = []
    for cfg in configs:
        lines += _cfg_lines(cfg)
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""))


# ------------------------------------------------------------------------------ JSON


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
    forces = None
    if sim.get("forces") is not None:
        forces = _array(sim["forces"], (3,), where, "forces")
        _check_finite(forces, where, "forces")
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


def _kbar_vasp_to_plus_stress(s: np.ndarray, cell, where: str) -> np.ndarray:
    """VASP stress (kBar, xx yy zz xy yz zx, positive = compressed = -sigma) -> PlusStress eV.

    PlusStress = -sigma * V, and the VASP value is already -sigma, so only the units
    (kBar * A^3 -> eV) and the component order change."""
    if cell is None:
        raise DataError(f"{where}: stress in kBar needs a cell (volume) to convert to eV")
    vol = cell_volume(cell)
    xx, yy, zz, xy, yz, zx = np.asarray(s, dtype=float)
    return np.array([xx, yy, zz, yz, zx, xy]) * vol / KBAR_PER_EV_A3


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
    forces = None
    if out.get("forces") is not None:
        forces = _array(out["forces"], (3,), where, "outputs.forces")
        _check_finite(forces, where, "outputs.forces")
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


# ---------------------------------------------------------------------------- extxyz


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
    f = _lookup(atoms, forces_key)
    forces = None if f is None else _array(f, (3,), where, forces_key)
    if forces is not None and len(forces) != len(atoms):
        raise DataError(f"{where}: {forces_key} has {len(forces)} rows for {len(atoms)} atoms")
    _check_finite(forces, where, forces_key)
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


def read_extxyz(
    path,
    energy_key: str = "energy",
    forces_key: str = "forces",
    virial_key: str | None = "virial",
    stress_key: str | None = None,
    species: Sequence[str] | None = None,
) -> DataSet:
    """Read an extended XYZ file through ``ase.io.read(path, index=":")``.

    Labels are looked up by key in ``atoms.info`` / ``atoms.arrays`` (custom names such
    as ``vasp_energy``, ``vasp_force``, ``vasp_virial`` stay there) or in the
    SinglePointCalculator (ase moves the standard ``energy``, ``forces``, ``stress``
    there).  ``virial_key``: virial in eV (3x3 or Voigt), stored as PlusStress unchanged.
    If a frame has no virial, ``stress_key`` (default: ase's standard ``stress``, eV/A^3,
    positive under tension) is converted as PlusStress = -stress * volume.  A missing
    label gives None.  ``species``: element of each type index (default: sorted unique
    symbols of the file); another element raises DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    frames = _ase_frames(path)
    items = [_xyz_frame(a, k, path, energy_key, forces_key, virial_key, stress_key) for k, a in enumerate(frames)]
    species = _assign_types(items, species)
    return DataSet([cfg for cfg, _ in items], species, name=path.name)


# ---------------------------------------------------------------------------- dispatch


def read_dataset(path, fmt: str | None = None, **kw) -> DataSet:
    """Read any supported file: ``fmt`` in {"cfg", "mlip4", "pymatgen", "extxyz"}, or
    None to choose by extension (.cfg; .xyz/.extxyz; .json sniffed: records with
    ``sim`` are MLIP-4, records with ``structure`` pymatgen).  ``kw`` go to the reader."""
    path = Path(path)
    if fmt is None:
        ext = path.suffix.lower()
        if ext == ".cfg":
            fmt = "cfg"
        elif ext in (".xyz", ".extxyz"):
            fmt = "extxyz"
        elif ext == ".json":
            records = _json_list(path, _load_json(path))
            return _json_dispatch(records, path, **kw)
        else:
            raise DataError(f"{path}: unknown data format (extension {ext!r}); pass fmt=")
    readers = {"cfg": read_cfg, "mlip4": read_mlip4_json, "pymatgen": read_pymatgen_json, "extxyz": read_extxyz}
    if fmt not in readers:
        raise ValueError(f"fmt must be one of {sorted(readers)}, got {fmt!r}")
    return readers[fmt](path, **kw)


def _json_dispatch(records: list, path: Path, **kw) -> DataSet:
    first = records[0] if records else {}
    if isinstance(first, dict) and "sim" in first:
        return _mlip4_from_records(records, path, **kw)
    if isinstance(first, dict) and "structure" in first:
        return _pymatgen_from_records(records, path, **kw)
    if not records:
        raise DataError(f"{path}: empty JSON list, no configurations")
    raise DataError(f"{path}[0]: JSON record is neither MLIP-4 ('sim') nor pymatgen ('structure')")


# ------------------------------------------------------------------- species mapping


def map_species(dataset: DataSet, species: Sequence[str]) -> DataSet:
    """Renumber type indices so that type i is element ``species[i]``.  The data set must
    know its elements (``dataset.species``); an element used by a configuration but
    missing from ``species`` raises DataError naming it and the configuration."""
    if dataset.species is None:
        raise DataError(f"data set {dataset.name!r}: elements unknown (species=None); use remap_types")
    target = {el: i for i, el in enumerate(species)}
    table = np.array([target.get(el, -1) for el in dataset.species], dtype=np.int32)
    configs = []
    for cfg in dataset.configs:
        new = _lookup_types(table, cfg, dataset.species)
        configs.append(replace(cfg, types=new))
    return DataSet(configs, list(species), dataset.name)


def _lookup_types(table: np.ndarray, cfg: Configuration, names: Sequence[str] | None) -> np.ndarray:
    old = np.asarray(cfg.types)
    if old.size and int(old.max()) >= len(table):
        raise DataError(f"{cfg.source}: species index {int(old.max())} has no mapping")
    new = table[old] if old.size else old.astype(np.int32)
    if np.any(new < 0):
        bad = int(old[np.flatnonzero(new < 0)[0]])
        label = names[bad] if names is not None else f"index {bad}"
        raise DataError(f"{cfg.source}: unknown species {label} (not in the requested species list)")
    return new.astype(np.int32)


def remap_types(
    dataset: DataSet, mapping: Mapping[int, int] | Sequence[int], species: Sequence[str] | None = None
) -> DataSet:
    """Renumber type indices by ``mapping[old] = new`` (dict or sequence).  An index that
    the mapping does not cover raises DataError.  ``species`` names the new indices."""
    if isinstance(mapping, Mapping):
        size = max(mapping.keys(), default=-1) + 1
        table = np.full(size, -1, dtype=np.int32)
        for old, new in mapping.items():
            table[int(old)] = int(new)
    else:
        table = np.asarray(list(mapping), dtype=np.int32)
    configs = [replace(c, types=_lookup_types(table, c, dataset.species)) for c in dataset.configs]
    if species is None and dataset.species is not None:
        species = _renamed_species(table, dataset.species)
    return DataSet(configs, None if species is None else list(species), dataset.name)


def _renamed_species(table: np.ndarray, names: Sequence[str]) -> list[str] | None:
    """Element names of the new indices, or None when the mapping does not define them
    unambiguously (two elements merged, or a new index with no element)."""
    new_names: dict[int, str] = {}
    for old, new in enumerate(table.tolist()):
        if new < 0 or old >= len(names):
            continue
        if new_names.setdefault(new, names[old]) != names[old]:
            return None
    if sorted(new_names) != list(range(len(new_names))):
        return None
    return [new_names[i] for i in range(len(new_names))]


# --------------------------------------------------------------------- splitting


def split(dataset: DataSet, valid_fraction: float, seed: int) -> tuple[DataSet, DataSet]:
    """Random (train, valid) partition: ``round(valid_fraction * len)`` configurations go
    to valid, chosen by ``numpy.random.default_rng(seed).permutation``; both keep the
    original order.  Same seed -> same split."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    n = len(dataset)
    n_valid = int(round(valid_fraction * n))
    perm = np.random.default_rng(seed).permutation(n)
    mask = np.zeros(n, dtype=bool)
    mask[perm[:n_valid]] = True
    return dataset[~mask], dataset[mask]


def split_by_file(train_path, valid_path, **kw) -> tuple[DataSet, DataSet]:
    """A split given as two files is simply two reads: ``(read_dataset(train_path, **kw),
    read_dataset(valid_path, **kw))``."""
    return read_dataset(train_path, **kw), read_dataset(valid_path, **kw)


# --------------------------------------------------------------------- validation


def validate(dataset: DataSet, n_species: int | None = None, min_distance: float = 1e-3) -> None:
    """Raise DataError for: an empty data set, a species index outside [0, n_species),
    NaN/inf positions or labels, label shapes that do not match the atom count, a
    zero-volume cell, or two atoms closer than ``min_distance`` (A; periodic images
    included)."""
    if len(dataset) == 0:
        raise DataError(f"data set {dataset.name!r} is empty (no configurations)")
    if n_species is None and dataset.species is not None:
        n_species = len(dataset.species)
    for cfg in dataset.configs:
        _validate_config(cfg, n_species, min_distance)


def _validate_config(cfg: Configuration, n_species: int | None, min_distance: float) -> None:
    where = cfg.source or "configuration"
    n = cfg.n_atoms
    if np.shape(cfg.positions) != (n, 3):
        raise DataError(f"{where}: positions shape {np.shape(cfg.positions)} != ({n}, 3)")
    if n == 0:
        raise DataError(f"{where}: configuration has no atoms")
    types = np.asarray(cfg.types)
    if types.min() < 0:
        raise DataError(f"{where}: negative species index {int(types.min())}")
    if n_species is not None and types.max() >= n_species:
        atom = int(np.argmax(types >= n_species))
        raise DataError(f"{where}: species index {int(types[atom])} of atom {atom + 1} >= n_species {n_species}")
    _check_finite(cfg.positions, where, "positions")
    if cfg.energy is not None and not math.isfinite(cfg.energy):
        raise DataError(f"{where}: energy is NaN or inf")
    if cfg.forces is not None:
        if np.shape(cfg.forces) != (n, 3):
            raise DataError(f"{where}: forces shape {np.shape(cfg.forces)} != ({n}, 3)")
        _check_finite(cfg.forces, where, "forces")
    if cfg.stress is not None:
        if np.shape(cfg.stress) != (6,):
            raise DataError(f"{where}: stress shape {np.shape(cfg.stress)} != (6,)")
        _check_finite(cfg.stress, where, "stress")
    if cfg.cell is not None:
        _validate_cell(cfg.cell, where)
    _check_overlaps(cfg, where, min_distance)


def _validate_cell(cell, where: str) -> None:
    cell = np.asarray(cell, dtype=float)
    if cell.shape != (3, 3):
        raise DataError(f"{where}: cell shape {cell.shape} != (3, 3)")
    _check_finite(cell, where, "cell")
    scale = float(np.prod(np.linalg.norm(cell, axis=1)))
    if scale == 0.0 or cell_volume(cell) <= 1e-10 * scale:
        raise DataError(f"{where}: degenerate cell (zero volume)")


def _check_overlaps(cfg: Configuration, where: str, min_distance: float, block: int = 256) -> None:
    pos = np.asarray(cfg.positions, dtype=float)
    inv = np.linalg.inv(cfg.cell) if cfg.cell is not None else None
    # row blocks keep memory at block * N * 3 doubles for large configurations
    for start in range(0, len(pos), block):
        diff = pos[start:start + block, None, :] - pos[None, :, :]
        if inv is not None:
            # minimum image in fractional coordinates; exact enough to catch coincident atoms
            frac = diff @ inv
            diff = (frac - np.round(frac)) @ cfg.cell
        d2 = np.einsum("ijk,ijk->ij", diff, diff)
        rows = np.arange(d2.shape[0])
        d2[rows, rows + start] = np.inf
        if d2.min() < min_distance**2:
            i, j = np.unravel_index(int(np.argmin(d2)), d2.shape)
            i += start
            raise DataError(
                f"{where}: atoms {min(i, j) + 1} and {max(i, j) + 1} are at the same position "
                f"(distance {math.sqrt(d2[i - start, j]):.2e} A)"
            )


# ------------------------------------------------------------------ engine arrays


def to_arrays(dataset: DataSet) -> dict[str, np.ndarray]:
    """Flat C-contiguous arrays for the C engine (``mlipc_dataset_create`` /
    ``mlipc_dataset_set_labels``): n_atoms (int64, n_cfg), cells (float64, 9 per config,
    rows = lattice vectors, zeros for molecules), periodic (int32), positions (float64,
    3 per atom, concatenated), types (int32), energies (float64, eV, NaN when missing),
    forces (float64, eV/A, NaN when missing), stresses (float64, PlusStress eV, 6 per
    config, NaN when missing)."""
    cfgs = dataset.configs
    n_cfg = len(cfgs)
    n_atoms = np.array([c.n_atoms for c in cfgs], dtype=np.int64)
    total = int(n_atoms.sum())
    cells = np.zeros((n_cfg, 9))
    periodic = np.zeros(n_cfg, dtype=np.int32)
    energies = np.full(n_cfg, np.nan)
    stresses = np.full((n_cfg, 6), np.nan)
    positions = np.empty((total, 3))
    types = np.empty(total, dtype=np.int32)
    forces = np.full((total, 3), np.nan)
    offset = 0
    for k, c in enumerate(cfgs):
        sl = slice(offset, offset + c.n_atoms)
        positions[sl] = c.positions
        types[sl] = c.types
        if c.forces is not None:
            forces[sl] = c.forces
        if c.cell is not None:
            cells[k] = np.asarray(c.cell, dtype=float).ravel()
            periodic[k] = 1
        if c.energy is not None:
            energies[k] = c.energy
        if c.stress is not None:
            stresses[k] = c.stress
        offset += c.n_atoms
    out = dict(n_atoms=n_atoms, cells=cells.ravel(), periodic=periodic, positions=positions.ravel(),
               types=types, energies=energies, forces=forces.ravel(), stresses=stresses.ravel())
    return {k: np.ascontiguousarray(v) for k, v in out.items()}
