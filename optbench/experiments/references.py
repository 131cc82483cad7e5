"""[[references]]: results of another code (a published study, an earlier tool) read from
CSV files, to be shown beside optbench's in the report (the format is in experiment.py's
docstring).

    [[references]]
    label = "study"
    files = ["${study}/all_mtp_5000__AgPd_results_mtp_*_bfgs.csv"]     # paths or globs
    model = "mtp16"                  # the experiment's labels these rows compare with
    data = "pdag"
    variant = { native_bfgs = "native", scipy_bfgs = "bfgs" }   # file-name ending -> variant
    columns = { seed = "pot_num", valid_epa_rmse = ["val_energy_atom_rmse", "val_epa_rmse"],
                valid_force_rmse = "val_forces_rmse", train_seconds = "train_time" }
    units = { valid_epa_rmse = "eV/atom", valid_force_rmse = "eV/A", train_seconds = "s" }
    cores = 8

`read_references` turns the sections into one DataFrame (REFERENCE_COLUMNS, store units:
eV/atom, eV/A, seconds), the frame `optbench.report.write_report(references=...)` takes.
Every problem (a missing file, a column no file has, a label the experiment lacks) is an
ExperimentError at the line of its key.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optbench.experiments.runspec import RunSpec
from optbench.experiments.toml_lines import KeyPath
from optbench.experiments.values import (
    _check_keys,
    _Context,
    _expect,
    _integer,
    _label,
    _string,
    _table,
)

if TYPE_CHECKING:
    import pandas as pd

# The frame's columns: what the rows compare with, who made them, and the quantities
# (eV/atom, eV/A, seconds of wall time; `cores` the ranks x threads they ran on).
REFERENCE_COLUMNS = ("model", "data", "variant", "label", "seed", "valid_epa_rmse", "valid_force_rmse",
                     "train_seconds", "cores", "file")
# Per quantity: the units a file may use, as factors to the frame's unit (the first).
UNITS = {
    "valid_epa_rmse": {"eV/atom": 1.0, "meV/atom": 1e-3},
    "valid_force_rmse": {"eV/A": 1.0, "eV/Å": 1.0, "meV/A": 1e-3, "meV/Å": 1e-3},
    "train_seconds": {"s": 1.0, "min": 60.0, "h": 3600.0},
}
_KEYS = ("label", "files", "model", "data", "variant", "columns", "units", "cores")
_COLUMN_KEYS = ("seed",) + tuple(UNITS)
_GLOB = set("*?[")


def read_references(ctx: _Context, raw: Any, models: dict, data: dict, runs: list[RunSpec]) -> pd.DataFrame | None:
    """The [[references]] entries (`raw`, the document's value; None: absent) as one
    frame of REFERENCE_COLUMNS, or None when there are none. Each entry's model, data and
    variants must be the experiment's (`models`, `data`, the variants of `runs`)."""
    if raw is None:
        return None
    import pandas as pd

    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise _expect(ctx, ("references",), raw, "[[references]] entries (an array of tables)")
    variants: dict[tuple[str, str], list[str]] = {}
    for r in runs:
        variants.setdefault((r.model_name, r.data_name), [])
        if r.variant not in variants[(r.model_name, r.data_name)]:
            variants[(r.model_name, r.data_name)].append(r.variant)
    frames = [_entry(ctx, ("references", i), t, models, data, variants).assign(entry=i) for i, t in enumerate(raw)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*REFERENCE_COLUMNS, "entry"])
    # A seed twice in one ensemble: two runs pooled as one (the 5000- and 8000-step files?).
    key = ["model", "data", "variant", "label", "seed"]
    dup = out.duplicated(key, keep="first")
    if dup.any():
        row = out[dup].iloc[0]
        same = (out[key] == row[key]).all(axis=1)
        raise ctx.error(("references", int(row["entry"]), "files"),
                        f"seed {row['seed']:g} of variant {row['variant']!r} ({row['label']}) occurs more than once, "
                        f"in {', '.join(sorted(set(out.loc[same, 'file'])))}: one row per variant and seed (give "
                        "columns.seed if the files have a seed column)")
    return out.drop(columns="entry")


def _entry(ctx: _Context, path: KeyPath, raw: dict, models: dict, data: dict,
           variants: dict[tuple[str, str], list[str]]) -> pd.DataFrame:
    import pandas as pd

    t = _table(ctx, path, raw)
    _check_keys(ctx, path, t, _KEYS)
    label = _label(ctx, path + ("label",), t.get("label", "reference"))
    model = _one_of(ctx, path + ("model",), t, "model", models)
    data_label = _one_of(ctx, path + ("data",), t, "data", data)
    known = variants.get((model, data_label), [])
    files = _files(ctx, path + ("files",), t)
    by_file = _variants(ctx, path, t, files, known, model, data_label)
    columns = _columns(ctx, path + ("columns",), t)
    scale = _units(ctx, path + ("units",), t)
    if "cores" not in t:
        raise ctx.error(path, "give cores = the ranks x threads the reference results ran on (for core-seconds)")
    cores = _integer(ctx, path + ("cores",), t["cores"], minimum=1)
    frames = []
    for (j, file), variant in zip(files, by_file):
        table = _read_csv(ctx, path + ("files", j), file)
        out = pd.DataFrame(index=range(len(table)))
        for key in _COLUMN_KEYS:
            if key not in columns:
                out[key] = range(len(table)) if key == "seed" else float("nan")
                continue
            column = _column_of(ctx, path + ("columns", key), file, table, columns[key])
            values = pd.to_numeric(table[column], errors="coerce")
            bad = values.isna() & table[column].notna()
            if bad.any():
                raise ctx.error(path + ("columns", key), f"{file}: column {column!r} has a value that is not a "
                                                         f"number ({table[column][bad].iloc[0]!r})")
            if key == "seed":
                if not (values.notna() & (values == values.round())).all():
                    raise ctx.error(path + ("columns", key), f"{file}: column {column!r} holds a seed that is not "
                                                             "a whole number (or none)")
                out[key] = values.astype("int64")
            else:
                out[key] = values * scale.get(key, 1.0)
        out = out.assign(model=model, data=data_label, variant=variant, label=label, cores=cores, file=file)
        frames.append(out[list(REFERENCE_COLUMNS)])
    return pd.concat(frames, ignore_index=True)


def _one_of(ctx: _Context, path: KeyPath, t: dict, key: str, labels: dict) -> str:
    """The model / data label: the entry's, which must be one of the experiment's;
    the only one when the experiment has one and the entry gives none."""
    if key not in t:
        if len(labels) == 1:
            return next(iter(labels))
        raise ctx.error(path[:-1], f"give {key} = one of the experiment's {key} labels: {', '.join(labels)}")
    value = _string(ctx, path, t[key])
    if value not in labels:
        raise ctx.error(path, f"no {key} {value!r} in the experiment; defined: {', '.join(labels)}")
    return value


def _files(ctx: _Context, path: KeyPath, t: dict) -> list[tuple[int, str]]:
    """(index of the files item, absolute path) per file, a glob expanded in sorted
    order; a path that is no file, or a glob that matches none, is an error."""
    if "files" not in t:
        raise ctx.error(path[:-1], "give files = [the reference's CSV files] (paths or globs)")
    raw = t["files"]
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise _expect(ctx, path, raw, "a path or a non-empty list of paths (globs allowed)")
    out: list[tuple[int, str]] = []
    for j, item in enumerate(items):
        where = path + (j,) if isinstance(raw, list) else path
        resolved = ctx.resolve(_string(ctx, where, item))
        if _GLOB & set(item):
            found = sorted(p for p in glob.glob(resolved) if Path(p).is_file())
            if not found:
                raise ctx.error(where, f"no reference file matches {resolved}")
        elif not Path(resolved).is_file():
            raise ctx.error(where, f"reference file not found: {resolved}")
        else:
            found = [resolved]
        out += [(j, f) for f in found if f not in {g for _, g in out}]
    return out


def _variants(ctx: _Context, path: KeyPath, t: dict, files: list[tuple[int, str]], known: list[str], model: str,
              data: str) -> list[str]:
    """The experiment's variant of each file: `variant` a label (every file), or a table
    {file-name ending: label} where a file takes the longest key its name (without the
    extension) ends with. Every key must match a file, every file a key."""
    vpath = path + ("variant",)
    if "variant" not in t:
        raise ctx.error(path, "give variant = the experiment's variant these files hold, or a table "
                              "{ file-name ending = variant }")
    raw = t["variant"]
    if isinstance(raw, str):
        table = None
        labels = {raw: vpath}
    else:
        table = _table(ctx, vpath, raw)
        if not table:
            raise ctx.error(vpath, "an empty table: map file-name endings to variants")
        labels = {_string(ctx, vpath + (k,), v): vpath + (k,) for k, v in table.items()}
    for label, where in labels.items():
        if label not in known:
            raise ctx.error(where, f"no variant {label!r} on model {model!r} / data {data!r}; variants there: "
                                   f"{'; '.join(known) or 'none'}")
    if table is None:
        return [raw] * len(files)
    out, used = [], set()
    for j, file in files:
        stem = Path(file).stem
        keys = [k for k in table if stem.endswith(k)]
        if not keys:
            raise ctx.error(path + ("files", j), f"{file}: its name ends with none of the variant keys "
                                                 f"({', '.join(table)})")
        key = max(keys, key=len)
        used.add(key)
        out.append(table[key])
    for key in table:
        if key not in used:
            raise ctx.error(vpath + (key,), f"no reference file's name (without extension) ends with {key!r}")
    return out


def _columns(ctx: _Context, path: KeyPath, t: dict) -> dict[str, list[str]]:
    """columns: {quantity: the file's column, or a list of alternatives (the first one a
    file has is read)}; at least one quantity besides the seed."""
    if "columns" not in t:
        raise ctx.error(path[:-1], f"give columns = {{ quantity = the file's column }} for some of "
                                   f"{', '.join(_COLUMN_KEYS)}")
    table = _table(ctx, path, t["columns"])
    _check_keys(ctx, path, table, _COLUMN_KEYS)
    out = {}
    for key, value in table.items():
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names:
            raise _expect(ctx, path + (key,), value, "a column name or a non-empty list of alternatives")
        out[key] = [_string(ctx, path + (key,), n) for n in names]
    if not set(out) & set(UNITS):
        raise ctx.error(path, f"name the column of at least one of {', '.join(UNITS)}")
    return out


def _units(ctx: _Context, path: KeyPath, t: dict) -> dict[str, float]:
    """units: {quantity: unit} -> {quantity: factor to eV/atom, eV/A, seconds}."""
    table = _table(ctx, path, t.get("units", {}))
    _check_keys(ctx, path, table, tuple(UNITS))
    out = {}
    for key, value in table.items():
        unit = _string(ctx, path + (key,), value)
        if unit not in UNITS[key]:
            raise ctx.error(path + (key,), f"unknown unit {unit!r} for {key}; known: {', '.join(UNITS[key])}")
        out[key] = UNITS[key][unit]
    return out


def _read_csv(ctx: _Context, path: KeyPath, file: str) -> pd.DataFrame:
    import pandas as pd

    try:
        table = pd.read_csv(file)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as err:
        raise ctx.error(path, f"cannot read {file} as CSV: {err}") from None
    if table.empty:
        raise ctx.error(path, f"{file}: no rows")
    return table


def _column_of(ctx: _Context, path: KeyPath, file: str, table: pd.DataFrame, names: list[str]) -> str:
    for name in names:
        if name in table.columns:
            return name
    what = f"no column {names[0]!r}" if len(names) == 1 else f"none of the columns {', '.join(map(repr, names))}"
    raise ctx.error(path, f"{file} has {what}; its columns: {', '.join(map(str, table.columns))}")


def describe_references(frame: pd.DataFrame | None) -> list[str]:
    """One line per (label, model, data): the variants and their seeds, for `optbench
    validate`."""
    if frame is None or frame.empty:
        return []
    lines = []
    for (label, model, data), sub in frame.groupby(["label", "model", "data"], sort=False):
        counts = sub.groupby("variant", sort=False).size()
        lines.append(f"reference {label} for {model} on {data}: {len(sub['file'].unique())} file(s), "
                     + ", ".join(f"{v} ({n} seeds)" for v, n in counts.items()))
    return lines
