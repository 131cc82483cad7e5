"""The registry of data formats: each format by name with the file extensions it is
recognised by and its reader; `read_dataset` reads any of them (by name, or by extension,
JSON files sniffed by their first record), then checks the result (`dataset.validate`).

To add a format: write a module with a ``read_<format>(path, **options) -> DataSet``
reader (errors as DataError naming the file and line or record) and register it below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from optbench.io._records import _json_list, _load_json
from optbench.io.cfg import read_cfg
from optbench.io.dataset import DataError, DataSet, validate
from optbench.io.extxyz import read_extxyz
from optbench.io.mlip4_json import _mlip4_from_records, read_mlip4_json
from optbench.io.pymatgen_json import _pymatgen_from_records, read_pymatgen_json


@dataclass(frozen=True)
class Format:
    """A data format: its name (``--format``, ``format =`` in experiment files), the
    extensions that select it, its reader, and for JSON lists the key every record of the
    format has and the reader of records already parsed."""

    name: str
    description: str
    suffixes: tuple[str, ...]
    read: Callable[..., DataSet]
    record_key: str | None = None
    from_records: Callable[..., DataSet] | None = None


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("cfg", "MLIP-2/3 .cfg", (".cfg",), read_cfg),
    Format("mlip4", "MLIP-4 JSON list", (".json",), read_mlip4_json, "sim", _mlip4_from_records),
    Format("pymatgen", "pymatgen JSON list (SNAP sets)", (".json",), read_pymatgen_json, "structure",
           _pymatgen_from_records),
    Format("extxyz", "extended XYZ (through ase)", (".xyz", ".extxyz"), read_extxyz),
)}
#: Options that name the label keys of an extended XYZ file (read_extxyz).
LABEL_KEYS = ("energy_key", "forces_key", "virial_key", "stress_key")
#: Every extension a format is recognised by (".json" is sniffed by its records).
SUFFIXES: tuple[str, ...] = tuple(dict.fromkeys(s for f in FORMATS.values() for s in f.suffixes))


def takes_label_keys(path, fmt: str | None = None) -> bool:
    """Whether a file read as `fmt` (None: by its extension) is extended XYZ, the one format
    whose label keys (LABEL_KEYS) can be named."""
    return (fmt or ("extxyz" if Path(path).suffix.lower() in FORMATS["extxyz"].suffixes else None)) == "extxyz"


def read_dataset(path, fmt: str | None = None, **kw) -> DataSet:
    """Read a data file of any registered format and check it (`validate`: NaN labels,
    coincident atoms, degenerate cells, empty files). ``fmt``: a name of FORMATS, or None to
    choose by extension (a .json file by the key of its first record: ``sim`` MLIP-4,
    ``structure`` pymatgen). ``kw`` go to the reader. Units: A, eV, eV/A, PlusStress in eV."""
    path = Path(path)
    keys = [k for k in LABEL_KEYS if kw.get(k) is not None]
    kw = {k: v for k, v in kw.items() if k not in LABEL_KEYS or v is not None}
    if keys and not takes_label_keys(path, fmt):
        raise ValueError(f"{path}: {', '.join(keys)} (label keys of extended XYZ files) do not apply to this format")
    if fmt is None:
        ext = path.suffix.lower()
        candidates = [f for f in FORMATS.values() if ext in f.suffixes]
        if not candidates:
            raise DataError(f"{path}: unknown data format (extension {ext!r}; known: {', '.join(SUFFIXES)}); "
                            f"give the format ({', '.join(FORMATS)})")
        data = _read_sniffed(path, candidates, **kw) if len(candidates) > 1 else candidates[0].read(path, **kw)
    else:
        if fmt not in FORMATS:
            raise ValueError(f"data format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        data = FORMATS[fmt].read(path, **kw)
    validate(data)
    return data


def _read_sniffed(path: Path, candidates: list[Format], **kw) -> DataSet:
    """A JSON list whose format is told by the key of its first record."""
    records = _json_list(path, _load_json(path))
    first = records[0] if records else {}
    if not records:
        raise DataError(f"{path}: empty JSON list, no configurations")
    for f in candidates:
        if isinstance(first, dict) and f.record_key in first:
            return f.from_records(records, path, **kw)
    keys = " nor ".join(f"{f.name} ({f.record_key!r})" for f in candidates)
    raise DataError(f"{path}[0]: JSON record is neither {keys}")
