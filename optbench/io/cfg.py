"""MLIP-2/3 ``.cfg`` files: reader and writer (one configuration per BEGIN_CFG ... END_CFG block)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from optbench.io.dataset import Configuration, DataError, DataSet, _check_finite


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
    return Configuration(positions=np.ascontiguousarray(pos, dtype=float), types=types, cell=cell, energy=energy,
                         forces=forces, stress=stress, features=features, source=f"{path}:{begin}")


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
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file (byte {exc.start} is not UTF-8): not an MLIP .cfg file") from None
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
