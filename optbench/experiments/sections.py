"""The sections of an experiment file that describe what is trained on what: seeds,
[weights], [budget], [models.LABEL], [data.LABEL] and [report] (the format is in
experiment.py's docstring)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from optbench.engine import ENGINES, MODEL_KINDS, check_etn_model
from optbench.foundation import DTYPES, FOUNDATION_KINDS, train_group_names
from optbench.experiments.toml_lines import KeyPath
from optbench.experiments.values import (
    _check_keys,
    _Context,
    _exactly_one,
    _existing_file,
    _expect,
    _integer,
    _label,
    _number,
    _string,
    _string_list,
    _table,
)
from optbench.io import FORMATS, STRESS_FORMATS, SUFFIXES
from optbench.io.formats import LABEL_KEYS, takes_label_keys
from optbench.objective import LossWeights
from optbench.train import Budget

MTP_LEVELS = range(2, 29, 2)


# ------------------------------------------------------------------- sections


def _seeds(ctx: _Context, path: KeyPath, value: Any) -> list[int]:
    """A seed count n (-> 0 .. n-1) or an explicit list of distinct seeds."""
    if isinstance(value, list):
        if not value:
            raise ctx.error(path, "an empty list of seeds")
        seeds = [_integer(ctx, path + (i,), v, minimum=0) for i, v in enumerate(value)]
        if len(set(seeds)) != len(seeds):
            raise ctx.error(path, f"repeated seed in {seeds}")
        return seeds
    return list(range(_integer(ctx, path, value, minimum=1)))


def _weights(ctx: _Context, raw: Any) -> dict[str, Any]:
    """The [weights] table as the LossWeights dict (defaults filled)."""
    table = _table(ctx, ("weights",), raw)
    fields = tuple(LossWeights.__dataclass_fields__)
    _check_keys(ctx, ("weights",), table, fields)
    out = {k: getattr(LossWeights(), k) for k in fields}
    for key, value in table.items():
        path = ("weights", key)
        out[key] = (_integer(ctx, path, value) if key.startswith("weight_scaling") else _number(ctx, path, value))
        try:
            LossWeights(**{key: out[key]})
        except ValueError as err:
            raise ctx.error(path, str(err)) from None
    try:
        LossWeights(**out)  # together: e.g. every weight 0
    except ValueError as err:
        raise ctx.error(("weights",), str(err)) from None
    return out


_BUDGET_KEYS = ("epochs", "evals", "seconds")


def _budget_value(ctx: _Context, path: KeyPath, key: str, value: Any) -> float | int:
    """One budget limit, checked by Budget itself."""
    v = _integer(ctx, path, value) if key == "evals" else _number(ctx, path, value)
    try:
        Budget(**{key: v})
    except ValueError as err:
        raise ctx.error(path, str(err)) from None
    return v


def _default_budget(ctx: _Context, raw: Any) -> str | None:
    """The top-level [budget] as a budget string."""
    table = _table(ctx, ("budget",), raw)
    _check_keys(ctx, ("budget",), table, _BUDGET_KEYS)
    if not table:
        raise ctx.error(("budget",), "a budget needs at least one of epochs, evals, seconds")
    for key, value in table.items():
        if isinstance(value, list):
            raise ctx.error(("budget", key), "the default budget takes one value; a budget grid goes in an "
                                             "[[optimizers]] entry's budget")
    return Budget(**{k: _budget_value(ctx, ("budget", k), k, v) for k, v in table.items()}).text()


_FOUNDATION_KEYS = ("model", "dtype", "train_groups", "energy_shift")
_MODEL_KEYS = ("kind", "level", "template", "min_dist", "max_dist", "radial_basis_size", "engine", "lib", "mlp",
               "module", "shape", "ranks", "lmax") + _FOUNDATION_KEYS
_ETN_ONLY = ("shape", "ranks", "lmax")


def _model(ctx: _Context, label: str, raw: Any) -> dict[str, Any]:
    """One [models.LABEL] table as the RunSpec model dict."""
    path = ("models", label)
    _label(ctx, path, label)
    t = _table(ctx, path, raw)
    _check_keys(ctx, path, t, _MODEL_KEYS)
    kind = _string(ctx, path + ("kind",), t.get("kind", "mtp"))
    if kind in FOUNDATION_KINDS:
        return _foundation_model(ctx, path, t, kind)
    if kind not in MODEL_KINDS + FOUNDATION_KINDS:
        raise ctx.error(path + ("kind",), f"unknown model kind {kind!r}; known: "
                                          f"{', '.join(MODEL_KINDS + FOUNDATION_KINDS)}")
    for key in _FOUNDATION_KEYS:
        if key in t:
            raise ctx.error(path + (key,), f"{key} describes a foundation model (kind = \"sevennet\" or "
                                           "\"mace\"), not an MTP or ETN")
    model: dict[str, Any] = {"kind": kind}
    if kind == "etn":
        return _etn_model(ctx, path, t, model)
    for key in _ETN_ONLY:
        if key in t:
            raise ctx.error(path + (key,), f"{key} describes an ETN (kind = \"etn\"), not an MTP")
    if _exactly_one(ctx, path, t, "level", "template") == "level":
        level = _integer(ctx, path + ("level",), t["level"])
        if level not in MTP_LEVELS:
            raise ctx.error(path + ("level",), f"MTP level must be an even number from 2 to 28, got {level}")
        model["level"] = level
        model.update(_cutoffs(ctx, path, t))
    else:
        _template(ctx, path, t, model, ("min_dist", "max_dist", "radial_basis_size"))
    model.update(_engine(ctx, path, t))
    return model


def _foundation_model(ctx: _Context, path: KeyPath, t: dict, kind: str) -> dict[str, Any]:
    """A pretrained torch model to fine-tune (optbench/foundation/): model (SevenNet:
    "7net-0", the default, or a checkpoint path; MACE: a model file, required), dtype,
    train_groups ("all", a group or a list of groups), energy_shift (true/false)."""
    for key in t:
        if key not in ("kind",) + _FOUNDATION_KEYS:
            raise ctx.error(path + (key,), f"{key} does not apply to a {kind} model; it takes "
                                           f"{', '.join(_FOUNDATION_KEYS)}")
    model: dict[str, Any] = {"kind": kind}
    if kind == "mace" and "model" not in t:
        raise ctx.error(path, "a MACE model needs model = PATH of a MACE model file (e.g. a MACE-MP .model; "
                              "nothing is downloaded)")
    name = _string(ctx, path + ("model",), t.get("model", "7net-0"))
    model["model"] = name if kind == "sevennet" and name == "7net-0" else _existing_file(
        ctx, path + ("model",), name, "model file")
    dtype = _string(ctx, path + ("dtype",), t.get("dtype", "float64"))
    if dtype not in DTYPES:
        raise ctx.error(path + ("dtype",), f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    model["dtype"] = dtype
    groups = t.get("train_groups", "all")
    if not isinstance(groups, str):
        groups = _string_list(ctx, path + ("train_groups",), groups)
    try:
        train_group_names(groups)
    except ValueError as err:
        raise ctx.error(path + ("train_groups",), str(err)) from None
    model["train_groups"] = groups
    shift = t.get("energy_shift", True)
    if not isinstance(shift, bool):
        raise _expect(ctx, path + ("energy_shift",), shift, "true or false")
    model["energy_shift"] = shift
    return model


def _template(ctx: _Context, path: KeyPath, t: dict, model: dict, excluded: tuple[str, ...]) -> None:
    """model["template"] from t, refusing the settings a template file carries itself."""
    for key in excluded:
        if key in t:
            raise ctx.error(path + (key,), f"a template carries its own settings; give {', '.join(excluded)} "
                                           "without one")
    model["template"] = _existing_file(ctx, path + ("template",), t["template"], "template")


def _etn_model(ctx: _Context, path: KeyPath, t: dict, model: dict) -> dict[str, Any]:
    """An ETN model: shape (one list per core, one entry per l or one for all l), ranks
    (one list per internal bond), optional lmax, the radial basis; or a template (an
    ETN JSON file). Checked by building it with the embedded engine."""
    if "level" in t:
        raise ctx.error(path + ("level",), "level describes an MTP; an ETN takes shape and ranks")
    if "template" in t:
        _template(ctx, path, t, model, _ETN_ONLY + ("min_dist", "max_dist", "radial_basis_size"))
        model.update(_engine(ctx, path, t))
        return model
    if "shape" not in t:
        raise ctx.error(path, "an ETN needs shape = [[...], ...] (one list per core), or a template")
    shape = _int_lists(ctx, path + ("shape",), t["shape"])
    ranks = _int_lists(ctx, path + ("ranks",), t.get("ranks", [[1]] * (len(shape) - 1)))
    if len(ranks) != len(shape) - 1:
        raise ctx.error(path + ("ranks",), f"{len(shape)} cores need {len(shape) - 1} ranks lists, got {len(ranks)}")
    model.update(shape=shape, ranks=ranks)
    if "lmax" in t:
        model["lmax"] = _integer(ctx, path + ("lmax",), t["lmax"], minimum=0)
    model.update(_cutoffs(ctx, path, t))
    model.update(_engine(ctx, path, t))
    if model["engine"] == "embedded":
        try:  # the engine's rules, checked in Python: validating a file loads no library
            check_etn_model(model)
        except ValueError as err:
            raise ctx.error(path + ("shape",), f"not a valid ETN: {err}") from None
    return model


def _int_lists(ctx: _Context, path: KeyPath, value: Any) -> list[list[int]]:
    """[[1], [6, 4, 2], [3]]: a non-empty list of non-empty lists of integers >= 0 (the
    engine checks the rest)."""
    if not isinstance(value, list) or not value or not all(isinstance(v, list) and v for v in value):
        raise _expect(ctx, path, value, "a list of lists of integers, e.g. [[1], [6], [3]]")
    return [[_integer(ctx, path, x, minimum=0) for x in v] for v in value]


def _cutoffs(ctx: _Context, path: KeyPath, t: dict) -> dict[str, float]:
    lo = _number(ctx, path + ("min_dist",), t.get("min_dist", 2.0), above=0)
    hi = _number(ctx, path + ("max_dist",), t.get("max_dist", 5.0), above=0)
    if not lo < hi:
        raise ctx.error(path + ("max_dist",), f"max_dist ({hi:g}) must be > min_dist ({lo:g})")
    out: dict[str, Any] = {"min_dist": lo, "max_dist": hi}
    if "radial_basis_size" in t:  # only when given: the engine's default otherwise, and unchanged run keys
        out["radial_basis_size"] = _integer(ctx, path + ("radial_basis_size",), t["radial_basis_size"], minimum=2)
    return out


def _engine(ctx: _Context, path: KeyPath, t: dict) -> dict[str, Any]:
    """engine, and lib / mlp where that engine takes them."""
    engine = _string(ctx, path + ("engine",), t.get("engine", "embedded"))
    if engine not in ENGINES:
        raise ctx.error(path + ("engine",), f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    out: dict[str, Any] = {"engine": engine}
    if "lib" in t and engine != "capi":
        raise ctx.error(path + ("lib",), f"lib goes with engine = \"capi\", not {engine!r}")
    if "mlp" in t and engine != "mlp-cli":
        raise ctx.error(path + ("mlp",), f"mlp goes with engine = \"mlp-cli\", not {engine!r}")
    if "module" in t and engine != "mlip4":
        raise ctx.error(path + ("module",), f"module goes with engine = \"mlip4\", not {engine!r}")
    if engine == "mlip4":
        if "template" not in t:
            raise ctx.error(path + ("engine",), "engine \"mlip4\" starts from an MLIP-4 potential file: "
                                                "set template = PATH (.json)")
        if "module" in t:
            out["module"] = _string(ctx, path + ("module",), t["module"])
    if engine == "capi":
        if "lib" not in t:
            raise ctx.error(path + ("engine",), "engine \"capi\" needs lib = the library's path")
        out["lib"] = _existing_file(ctx, path + ("lib",), t["lib"], "library")
    if "mlp" in t:
        out["mlp"] = _program(ctx, _string(ctx, path + ("mlp",), t["mlp"]))
    return out


def _program(ctx: _Context, text: str) -> str:
    """A program: a bare name stays as it is (looked up on PATH when the run starts), a
    path is made absolute."""
    return ctx.resolve(text) if os.sep in text or text.startswith(".") else text


_DATA_FILE_KEYS = ("train", "valid", "valid_fraction", "split_seed", "format", "species", "stress_format",
                   "tests", "n_train", "n_valid") + LABEL_KEYS
_GENERATE_KEYS = ("n_train", "n_valid", "seed")


def _data(ctx: _Context, label: str, raw: Any) -> dict[str, Any]:
    """One [data.LABEL] table as the RunSpec data dict."""
    path = ("data", label)
    _label(ctx, path, label)
    t = _table(ctx, path, raw)
    _check_keys(ctx, path, t, ("generate",) + _DATA_FILE_KEYS)
    if "generate" in t:
        for key in _DATA_FILE_KEYS:
            if key in t:
                raise ctx.error(path + (key,), "give either generate or data files, not both")
        return _generated(ctx, path + ("generate",), t["generate"])
    if "train" not in t:
        raise ctx.error(path, "give generate = {...} or train = a data file")
    return _data_files(ctx, path, t)


def _generated(ctx: _Context, path: KeyPath, raw: Any) -> dict[str, Any]:
    g = _table(ctx, path, raw)
    _check_keys(ctx, path, g, _GENERATE_KEYS)
    return {"kind": "generate",
            "n_train": _integer(ctx, path + ("n_train",), g.get("n_train", 240), minimum=1),
            "n_valid": _integer(ctx, path + ("n_valid",), g.get("n_valid", 60), minimum=1),
            "seed": _integer(ctx, path + ("seed",), g.get("seed", 0), minimum=0)}


def _data_files(ctx: _Context, path: KeyPath, t: dict) -> dict[str, Any]:
    fmt = None if "format" not in t else _string(ctx, path + ("format",), t["format"])
    if fmt is not None and fmt not in FORMATS:
        raise ctx.error(path + ("format",), f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    out: dict[str, Any] = {"kind": "files", "valid": None, "valid_fraction": None, "split_seed": 0,
                           "format": fmt, "species": None}
    def data_file(key_path: KeyPath, value: Any, what: str) -> str:
        file = _existing_file(ctx, key_path, value, what)
        if fmt is None and Path(file).suffix.lower() not in SUFFIXES:
            raise ctx.error(key_path, f"cannot tell the format from the extension of {file}; "
                                      f"give format = one of {', '.join(FORMATS)}")
        return file

    if isinstance(t["train"], list):  # several files make one training set
        if not t["train"]:
            raise ctx.error(path + ("train",), "an empty list of training files")
        out["train"] = [data_file(path + ("train", i), v, "train file") for i, v in enumerate(t["train"])]
    else:
        out["train"] = data_file(path + ("train",), t["train"], "train file")
    if "valid" in t:
        out["valid"] = data_file(path + ("valid",), t["valid"], "valid file")
    if "tests" in t:
        tests = _table(ctx, path + ("tests",), t["tests"])
        if not tests:
            raise ctx.error(path + ("tests",), "an empty table: give { LABEL = PATH, ... } or leave it out")
        out["tests"] = {}
        for label, value in tests.items():
            _label(ctx, path + ("tests", label), label)
            out["tests"][label] = data_file(path + ("tests", label), value, "test file")
    if _exactly_one(ctx, path, t, "valid", "valid_fraction") == "valid_fraction":
        frac = _number(ctx, path + ("valid_fraction",), t["valid_fraction"], above=0)
        if not frac < 1:
            raise ctx.error(path + ("valid_fraction",), f"must be < 1, got {frac:g}")
        out["valid_fraction"] = frac
        out["split_seed"] = _integer(ctx, path + ("split_seed",), t.get("split_seed", 0), minimum=0)
    elif "split_seed" in t and not ("n_train" in t or "n_valid" in t):
        raise ctx.error(path + ("split_seed",), "split_seed goes with valid_fraction, n_train or n_valid")
    else:
        out["split_seed"] = _integer(ctx, path + ("split_seed",), t.get("split_seed", 0), minimum=0)
    for key in ("n_train", "n_valid"):  # only when given: unchanged run keys otherwise
        if key in t:
            out[key] = _integer(ctx, path + (key,), t[key], minimum=1)
    if "species" in t:
        out["species"] = _string_list(ctx, path + ("species",), t["species"])
    if "stress_format" in t:  # only when given: unchanged run keys for the files that need none
        sf = _string(ctx, path + ("stress_format",), t["stress_format"])
        if sf not in STRESS_FORMATS:
            raise ctx.error(path + ("stress_format",), f"unknown stress_format {sf!r}; known: {', '.join(STRESS_FORMATS)}")
        if fmt not in (None, "mlip4") or not all(str(f).endswith(".json") for f in _as_list(out["train"])):
            raise ctx.error(path + ("stress_format",), "stress_format applies to MLIP-4 JSON files only")
        out["stress_format"] = sf
    for key in LABEL_KEYS:  # only when given, like stress_format
        if key in t:
            if not all(takes_label_keys(f, fmt) for f in _as_list(out["train"])):
                raise ctx.error(path + (key,), f"{key} names a label of extended XYZ files; {out['train']} is not one")
            out[key] = _string(ctx, path + (key,), t[key])
    return out


def _as_list(value: Any) -> list:
    """`value` as a list (a single training file or several)."""
    return value if isinstance(value, list) else [value]


_REPORT_KEYS = ("target_epa_mev", "budgets_seconds", "budgets_configs", "smooth")


def _report(ctx: _Context, raw: Any, groups: set[str]) -> dict[str, Any]:
    """The [report] table, checked and with numbers normalised. target_epa_mev and the
    budgets may also be tables by "MODEL/DATA" (one of `groups`), one value each."""
    path = ("report",)
    t = _table(ctx, path, raw)
    _check_keys(ctx, path, t, _REPORT_KEYS)
    converters = {
        "target_epa_mev": lambda p, v: _number(ctx, p, v, above=0),
        "budgets_seconds": lambda p, v: _report_list(ctx, p, v, lambda q, x: _number(ctx, q, x, above=0)),
        "budgets_configs": lambda p, v: _report_list(ctx, p, v, lambda q, x: _integer(ctx, q, x, minimum=1)),
    }
    out: dict[str, Any] = {}
    for key, convert in converters.items():
        if key in t:
            out[key] = _per_group(ctx, path + (key,), t[key], convert, groups)
    if "smooth" in t:
        out["smooth"] = _integer(ctx, path + ("smooth",), t["smooth"], minimum=1)
    return out


def _report_list(ctx: _Context, path: KeyPath, values: Any, convert: Callable) -> list:
    if not isinstance(values, list) or not values:
        raise _expect(ctx, path, values, "a non-empty list")
    return [convert(path + (i,), v) for i, v in enumerate(values)]


def _per_group(ctx: _Context, path: KeyPath, value: Any, convert: Callable, groups: set[str]) -> Any:
    """A report option for every group, or a table of them by "MODEL/DATA"."""
    if not isinstance(value, dict):
        return convert(path, value)
    for group in value:
        if group not in groups:
            raise ctx.error(path + (group,), f"no model/data pair {group!r}; pairs: {', '.join(sorted(groups))}")
    return {group: convert(path + (group,), v) for group, v in value.items()}
