"""Experiment files (TOML) -> the grid of runs they describe, as RunSpecs (runspec.py).

    exp = load_experiment("experiments/quick.toml")
    print(describe_plan(exp))            # what `optbench validate FILE` prints
    for spec in exp.runs: ...            # models x data x optimizer entries x grids x seeds

A bad file never gives a traceback: every problem is an `ExperimentError` (a ValueError)
whose message starts with ``FILE:LINE:`` and names the key, e.g.

    quick.toml:23: optimizers[2].hyper.b3: unknown hyperparameter for adam; known: b1, b2, eps

Array-of-tables entries are counted from 0 (``optimizers[2]`` is the third
``[[optimizers]]``). An unreadable file has no line: ``FILE: cannot read ...``.

File format
-----------
Units: seconds of training (evaluations of metrics are not charged), configurations
evaluated (one configuration's loss and gradient = 1), epochs (passes over the training
set), Angstrom for distances, meV/atom for energy-per-atom targets.

Top level
    name         required; [A-Za-z0-9_.-]+; the experiment's name in the store and reports.
    description  free text (default "").
    store        the SQLite results store; relative to the file's folder
                 (default ``results/<name>/store.sqlite`` beside the file).
    seeds        ensemble size n (seeds 0 .. n-1) or an explicit list of distinct seeds
                 >= 0, e.g. [0, 4, 7] (default 1).
    baseline     the variant the report divides by: a variant label, or an optimizer
                 name whose runs form a single variant (default: none).
    threads      engine threads per run (default 1).

[paths]
    Variables, used as ``${name}`` in any string of the file (names [A-Za-z_][A-Za-z0-9_]*).
    Each value is a path; a relative one resolves against the file's folder. A variable
    is overridden by ``load_experiment(..., variables={name: value})`` or else by the
    environment variable ``OPTBENCH_<NAME upper-case>``; an override that is relative
    resolves against the current directory. ``variables`` may define names the file does
    not declare. A value may use variables declared above it. ``${`` has no escape.

[weights]
    LossWeights (objective.py): energy, forces, stress (numbers >= 0; defaults 1.0, 0.01,
    0.001) and weight_scaling, weight_scaling_forces (0, 1 or 2; defaults 1, 0): the
    energy and stress weights are divided by N**weight_scaling, the force weight by
    N**weight_scaling_forces, N the atoms of a configuration.

[budget]
    The budget of every run: epochs (number > 0), evals (configurations evaluated,
    integer >= 1), seconds (training seconds > 0); a run stops at whichever comes first.
    At least one; required unless every [[optimizers]] entry has its own.

[models.LABEL]    one table per model; LABEL ([A-Za-z0-9_.-]+) names it in tables
    kind      "mtp" (default) or "etn".
    level     MTP level: an even integer 2 .. 28; or
    template  an .mtp/.almtp file (path) to start from (for an ETN: the engine's ETN
              JSON); exactly one of level, template for an MTP.
    shape     ETN only: one list per core of radial channels per angular order l (one
              entry for all l, or lmax + 1 entries), e.g. [[1], [6], [3]].
    ranks     ETN only: one list per internal bond (cores - 1), default [[1], ...].
    lmax      ETN only: the largest angular order (default: from the lists, else 2).
              engine/README.md ("ETN") defines the model; the file is checked by
              building it with the embedded engine.
    min_dist  radial basis inner cutoff, Angstrom (level or shape only; default 2.0).
    max_dist  radial basis outer cutoff, Angstrom (level or shape only; default 5.0).
    radial_basis_size  Chebyshev radial basis functions (level or shape only; >= 2;
              default: the engine's, 8).
    engine    "embedded" (default, the built-in engine), "capi" (a library implementing
              engine/include/mlipc.h: give ``lib`` = its path), "mlip4" (MLIP-4's Python
              module: ``template`` = an MLIP-4 potential JSON, optional ``module`` =
              its import name, default "mlip_4") or "mlp-cli" (MLIP's mlp program,
              optimizer "native" only: optional ``mlp`` = a path or a name on PATH).
              See engines.py.

[data.LABEL]      one table per data set; LABEL ([A-Za-z0-9_.-]+) names it in tables
    generate        { n_train = 240, n_valid = 60, seed = 0 }: the Ag-Pd EMT generator
                    (generator.py; the defaults shown); or files:
    train           the training file (path; must exist);
    valid           a validation file, or
    valid_fraction  hold out this fraction (0 < f < 1) of ``train``, split by
    split_seed      (integer >= 0, default 0); exactly one of valid, valid_fraction.
    format          "cfg", "mlip4", "pymatgen" or "extxyz" (data.read_dataset's names;
                    default: by extension, .cfg / .xyz / .extxyz / .json sniffed).
    species         element of each type index, e.g. ["Ag", "Pd"] (default: the file's).

[[optimizers]]    one entry per optimizer setting; every LIST-valued setting is a grid
                  axis and the entry expands to the cartesian product of its axes
    name            an optimizer of optimizers.REGISTRY (required).
    label           the variant's name in tables (default: name).
    lr              base learning rate (> 0; default the optimizer's).
    batch_size      configurations per step (integer >= 1; default: all).
    clip            global-norm gradient clipping threshold (> 0; default none).
    schedule        learning-rate schedule, e.g. "cosine,warmup=100" (schedules.py).
    init_interval   initial parameters: engine defaults + uniform [-a, a] noise (a > 0).
    perturb         { sigma = 1e-4, every = 50 }: N(0, sigma^2) noise on the parameters
                    every `every` steps (sigma >= 0, every integer >= 1; both needed).
    eval_every      steps between train/validation evaluations (integer >= 1).
    target_epa_mev  stop at the first evaluation whose validation energy-per-atom RMSE
                    is at or below this, meV/atom (time-to-target runs).
    hyper           { name = value }: the optimizer's hyperparameters (`optbench
                    optimizers` lists them); a list is a grid axis, except for a
                    hyperparameter whose value is itself a list (Muon's ns_coeffs),
                    where a list of lists is.
    budget          { epochs, evals, seconds } for this entry: replaces [budget].
    seeds           replaces the top-level seeds for this entry.
    models, data    lists of labels: run this entry on these models / data sets only
                    (default: all).
    lr, schedule, clip, batch_size and perturb apply to step-based optimizers and
    adam_lbfgs; optimizers without steps (bfgs, lbfgs, varpro, alternating, native)
    reject them rather than ignore them.

[report]          options of the report (report.py)
    target_epa_mev    time-to-target threshold, meV/atom (> 0).
    budgets_seconds   equal-budget views at these training seconds (list, > 0).
    budgets_configs   equal-budget views at these configurations evaluated (integers >= 1).
    smooth            loss-history smoothing window, points (integer >= 1).
    The first three may instead be tables by "MODEL/DATA" labels, one value per pair:
    target_epa_mev = { "mtp8/pdag" = 3.0, "mtp16/pdag" = 2.0 }.

Expansion
---------
models x data x [[optimizers]] entries x each entry's grid x seeds, in that order, one
RunSpec each. A run's ``variant`` is the entry's label (or optimizer name) followed by
the settings that take more than one value in its grid, in the order written, e.g.
"adam lr=0.001 clip=10" (hyperparameters by their own name, table settings as
``perturb.sigma=0.0001``, ``budget.seconds=30``); runs differing only in seed share it.
Two entries that give the same variant on the same model and data set are an error:
give one a ``label``. Every path in a RunSpec is absolute.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from optbench.optim.budget import Budget
from optbench.io.data import STRESS_FORMATS
from optbench.objective.protocol import LossWeights
from optbench.optim import REGISTRY, StepEntry
from optbench.experiments.runspec import RunSpec
from optbench.train.schedules import Schedule
from optbench.experiments.toml_lines import KeyLocator, KeyPath, show_path
from optbench.train.loop import TrainSettings

_LABEL = re.compile(r"[A-Za-z0-9_.-]+\Z")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VARIABLE_USE = re.compile(r"\$\{([^}]*)\}")
MTP_LEVELS = range(2, 29, 2)
ENGINES = ("embedded", "capi", "mlip4", "mlp-cli")
MODEL_KINDS = ("mtp", "etn")
DATA_FORMATS = ("cfg", "mlip4", "pymatgen", "extxyz")
_FORMAT_BY_SUFFIX = (".cfg", ".xyz", ".extxyz", ".json")
# Settings the optimizers without steps (DriverEntry with uses_lr False) never read.
_STEP_ONLY = ("lr", "schedule", "clip", "batch_size", "perturb")



class ExperimentError(ValueError):
    """A problem in an experiment file; the message starts with ``FILE:LINE:`` and names
    the key path."""


@dataclass
class _Context:
    """What every check needs: the file's name (as given) and folder, its line locator
    and the variables of [paths]."""

    file: str
    folder: Path
    locator: KeyLocator
    variables: dict[str, str] = field(default_factory=dict)

    def error(self, path: KeyPath, message: str) -> ExperimentError:
        """The error for `message` about `path`, located at its line."""
        where = f"{show_path(path)}: " if path else ""
        return ExperimentError(f"{self.file}:{self.locator.line(path)}: {where}{message}")

    def resolve(self, text: str) -> str:
        """`text` as an absolute, normalised path (relative: against the file's folder)."""
        return _absolute(text, self.folder)


def _absolute(text: str, base: Path) -> str:
    p = Path(text).expanduser()
    return os.path.normpath(p if p.is_absolute() else base / p)


# ------------------------------------------------------------------- typed values


def _kind(value: Any) -> str:
    """How a TOML value is called in messages."""
    names = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
             (list, "a list"), (dict, "a table"))
    for t, name in names:
        if isinstance(value, t):
            return f"{name} ({value!r})" if isinstance(value, (bool, int, float, str)) else name
    return f"a {type(value).__name__} ({value!r})"


def _expect(ctx: _Context, path: KeyPath, value: Any, what: str) -> ExperimentError:
    return ctx.error(path, f"expected {what}, got {_kind(value)}")


def _number(ctx: _Context, path: KeyPath, value: Any, minimum: float | None = None,
            above: float | None = None) -> float:
    """`value` as a finite float (an integer is accepted), >= minimum / > above."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _expect(ctx, path, value, "a finite number")
    if minimum is not None and value < minimum:
        raise ctx.error(path, f"must be >= {minimum:g}, got {value!r}")
    if above is not None and not value > above:
        raise ctx.error(path, f"must be > {above:g}, got {value!r}")
    return float(value)


def _integer(ctx: _Context, path: KeyPath, value: Any, minimum: int | None = None) -> int:
    """`value` as an int (a whole float such as 6.0 is accepted), >= minimum."""
    whole = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise _expect(ctx, path, value, "an integer")
    if minimum is not None and value < minimum:
        raise ctx.error(path, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _string(ctx: _Context, path: KeyPath, value: Any) -> str:
    if not isinstance(value, str):
        raise _expect(ctx, path, value, "a string")
    return value


def _label(ctx: _Context, path: KeyPath, value: Any) -> str:
    text = _string(ctx, path, value)
    if not _LABEL.match(text):
        raise ctx.error(path, f"{text!r}: use letters, digits, '_', '.' and '-' only")
    return text


def _table(ctx: _Context, path: KeyPath, value: Any) -> dict:
    if not isinstance(value, dict):
        raise _expect(ctx, path, value, "a table")
    return value


def _string_list(ctx: _Context, path: KeyPath, value: Any) -> list[str]:
    """A non-empty list of distinct strings."""
    if not isinstance(value, list) or not value:
        raise _expect(ctx, path, value, "a non-empty list of strings")
    items = [_string(ctx, path + (i,), v) for i, v in enumerate(value)]
    if len(set(items)) != len(items):
        raise ctx.error(path, f"repeated item in {items}")
    return items


def _check_keys(ctx: _Context, path: KeyPath, table: dict, known: tuple[str, ...]) -> None:
    """ExperimentError at the first key of `table` that is not in `known`."""
    for key in table:
        if key not in known:
            where = f"in [{show_path(path)}]" if path else "at the top level"
            raise ctx.error(path + (key,), f"unknown key {where}; known: {', '.join(known)}")


def _exactly_one(ctx: _Context, path: KeyPath, table: dict, a: str, b: str) -> str:
    """Which of the keys `a`, `b` the table has; an error unless exactly one."""
    if (a in table) == (b in table):
        where = path + ((b,) if b in table else ())
        raise ctx.error(where, f"give exactly one of {a}, {b}")
    return a if a in table else b


def _fmt_number(v: float | int) -> str:
    """A number in labels and budget strings: whole numbers without ".0", others with
    the shortest text that reads back to the same float."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _show_value(v: Any) -> str:
    """A setting's value in a variant label."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return _fmt_number(v)
    if isinstance(v, list):
        return "[" + ",".join(_show_value(x) for x in v) + "]"
    return str(v)


# ------------------------------------------------------------------- variables


def _read_variables(ctx: _Context, raw: Any, overrides: dict[str, str]) -> dict[str, str]:
    """The variables of [paths] (absolute paths), with `overrides` and OPTBENCH_<NAME>
    environment variables taking precedence; `overrides` may add names."""
    table = _table(ctx, ("paths",), raw)
    cwd = Path.cwd()
    out = {k: _absolute(str(v), cwd) for k, v in overrides.items()}
    for name, value in table.items():
        path = ("paths", name)
        if not _VARIABLE_NAME.match(name):
            raise ctx.error(path, "a variable name must match [A-Za-z_][A-Za-z0-9_]*")
        if name in out:
            continue
        env = os.environ.get(f"OPTBENCH_{name.upper()}")
        if env:
            out[name] = _absolute(env, cwd)
            continue
        ctx.variables = out  # earlier variables are usable in later ones
        out[name] = ctx.resolve(_substitute_text(ctx, path, _string(ctx, path, value)))
    return out


def _substitute_text(ctx: _Context, path: KeyPath, text: str) -> str:
    """`text` with every ${name} replaced by its variable's value."""
    def value(m: re.Match) -> str:
        name = m.group(1)
        if name not in ctx.variables:
            known = ", ".join(sorted(ctx.variables)) or "none"
            raise ctx.error(path, f"undefined variable ${{{name}}}: declare it in [paths] (OPTBENCH_"
                                  f"{name.upper()} then overrides it) or pass it as a variable "
                                  f"(defined: {known})")
        return ctx.variables[name]

    return _VARIABLE_USE.sub(value, text)


def _substitute(ctx: _Context, path: KeyPath, value: Any) -> Any:
    """`value` (any TOML value) with variables substituted in all its strings."""
    if isinstance(value, str):
        return _substitute_text(ctx, path, value)
    if isinstance(value, list):
        return [_substitute(ctx, path + (i,), v) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _substitute(ctx, path + (k,), v) for k, v in value.items()}
    return value


def _existing_file(ctx: _Context, path: KeyPath, raw: Any, what: str) -> str:
    """`raw` resolved to an absolute path of an existing file."""
    resolved = ctx.resolve(_string(ctx, path, raw))
    if not Path(resolved).is_file():
        hint = "" if not ctx.variables else f" (variables: {', '.join(f'{k}={v}' for k, v in ctx.variables.items())})"
        raise ctx.error(path, f"{what} not found: {resolved}{hint}")
    return resolved


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


def _budget_text(limits: dict[str, float | int]) -> str:
    """{"epochs": 50, "seconds": 30.0} -> "epochs=50,seconds=30" (Budget.parse's form)."""
    return ",".join(f"{k}={_fmt_number(limits[k])}" for k in _BUDGET_KEYS if k in limits)


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
    return _budget_text({k: _budget_value(ctx, ("budget", k), k, v) for k, v in table.items()})


_MODEL_KEYS = ("kind", "level", "template", "min_dist", "max_dist", "radial_basis_size", "engine", "lib", "mlp",
               "module", "shape", "ranks", "lmax")
_ETN_ONLY = ("shape", "ranks", "lmax")


def _model(ctx: _Context, label: str, raw: Any) -> dict[str, Any]:
    """One [models.LABEL] table as the RunSpec model dict."""
    path = ("models", label)
    _label(ctx, path, label)
    t = _table(ctx, path, raw)
    _check_keys(ctx, path, t, _MODEL_KEYS)
    kind = _string(ctx, path + ("kind",), t.get("kind", "mtp"))
    if kind not in MODEL_KINDS:
        raise ctx.error(path + ("kind",), f"unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}")
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
        from optbench.engine.engines import etn_spec, load_engine
        try:
            load_engine().potential_from_spec(etn_spec(model, n_species=1))
        except Exception as err:  # the engine's message names the word at fault
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


_DATA_FILE_KEYS = ("train", "valid", "valid_fraction", "split_seed", "format", "species", "stress_format")
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
    if fmt is not None and fmt not in DATA_FORMATS:
        raise ctx.error(path + ("format",), f"unknown format {fmt!r}; known: {', '.join(DATA_FORMATS)}")
    out: dict[str, Any] = {"kind": "files", "valid": None, "valid_fraction": None, "split_seed": 0,
                           "format": fmt, "species": None}
    for key in ("train", "valid"):
        if key in t:
            out[key] = _existing_file(ctx, path + (key,), t[key], f"{key} file")
            if fmt is None and Path(out[key]).suffix.lower() not in _FORMAT_BY_SUFFIX:
                raise ctx.error(path + (key,), f"cannot tell the format from the extension of {out[key]}; "
                                               f"give format = one of {', '.join(DATA_FORMATS)}")
    if _exactly_one(ctx, path, t, "valid", "valid_fraction") == "valid_fraction":
        frac = _number(ctx, path + ("valid_fraction",), t["valid_fraction"], above=0)
        if not frac < 1:
            raise ctx.error(path + ("valid_fraction",), f"must be < 1, got {frac:g}")
        out["valid_fraction"] = frac
        out["split_seed"] = _integer(ctx, path + ("split_seed",), t.get("split_seed", 0), minimum=0)
    elif "split_seed" in t:
        raise ctx.error(path + ("split_seed",), "split_seed goes with valid_fraction")
    if "species" in t:
        out["species"] = _string_list(ctx, path + ("species",), t["species"])
    if "stress_format" in t:  # only when given: unchanged run keys for the files that need none
        sf = _string(ctx, path + ("stress_format",), t["stress_format"])
        if sf not in STRESS_FORMATS:
            raise ctx.error(path + ("stress_format",), f"unknown stress_format {sf!r}; known: {', '.join(STRESS_FORMATS)}")
        if fmt not in (None, "mlip4") or not str(out["train"]).endswith(".json"):
            raise ctx.error(path + ("stress_format",), "stress_format applies to MLIP-4 JSON files only")
        out["stress_format"] = sf
    return out


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


# ------------------------------------------------------------------- optimizer entries


@dataclass
class _Axis:
    """One setting of an entry: its key path, its name in variant labels, its values
    (more than one: a grid axis) and where the value goes in RunSpec.settings."""

    path: KeyPath
    name: str
    values: list
    apply: Callable[[dict, Any], None]


@dataclass
class _Entry:
    """One [[optimizers]] entry, checked: its settings as axes and what it runs on."""

    index: int
    optimizer: str
    label: str
    axes: list[_Axis]
    budget: bool  # whether the entry has its own budget (else the default applies)
    seeds: list[int]
    models: list[str]
    data: list[str]

    @property
    def path(self) -> KeyPath:
        return ("optimizers", self.index)


_ENTRY_KEYS = ("name", "label", "lr", "batch_size", "clip", "schedule", "init_interval", "perturb",
               "eval_every", "target_epa_mev", "hyper", "budget", "seeds", "models", "data")


def _axis_values(ctx: _Context, path: KeyPath, raw: Any, convert: Callable[[KeyPath, Any], Any],
                 list_valued: bool = False) -> list:
    """A setting's values: [value], or the converted items of a list (a grid axis). A
    setting whose value is a list itself (`list_valued`) is an axis only as a list of
    lists. Empty axes and repeated values are errors."""
    is_axis = isinstance(raw, list) and (not list_valued or (bool(raw) and all(isinstance(v, list) for v in raw)))
    if not is_axis:
        return [convert(path, raw)]
    if not raw:
        raise ctx.error(path, "an empty list: a grid axis needs at least one value")
    values = [convert(path + (i,), v) for i, v in enumerate(raw)]
    shown = [_show_value(v) for v in values]
    if len(set(shown)) != len(shown):
        raise ctx.error(path, f"repeated value in {shown}")
    return values


def _checked_by_settings(ctx: _Context, key: str, convert: Callable) -> Callable[[KeyPath, Any], Any]:
    """A converter that also builds TrainSettings(key=value), so a value the training
    loop would refuse is refused here, with its line."""
    def check(path: KeyPath, value: Any) -> Any:
        v = convert(ctx, path, value)
        try:
            TrainSettings(**{key: v})
        except ValueError as err:
            raise ctx.error(path, str(err)) from None
        return v
    return check


def _schedule(ctx: _Context, path: KeyPath, value: Any) -> str:
    text = _string(ctx, path, value)
    try:
        Schedule.parse(text)
    except ValueError as err:
        raise ctx.error(path, str(err)) from None
    return text


def _positive(ctx: _Context, path: KeyPath, value: Any) -> float:
    return _number(ctx, path, value, above=0)


def _setter(key: str, divisor: float | None = None) -> Callable[[dict, Any], None]:
    def apply(settings: dict, v: Any) -> None:
        settings[key] = v if divisor is None else v / divisor
    return apply


# Plain settings: key -> (RunSpec.settings key, converter, checked by TrainSettings).
_PLAIN = {
    "lr": ("lr", _number, True),
    "batch_size": ("batch_size", _integer, True),
    "clip": ("clip", _number, True),
    "schedule": ("schedule", _schedule, False),
    "init_interval": ("init_interval", _positive, False),
    "eval_every": ("eval_every", _integer, True),
    "target_epa_mev": ("target_valid_epa", _positive, False),
}


def _plain_axes(ctx: _Context, path: KeyPath, t: dict) -> list[_Axis]:
    axes = []
    for key, raw in t.items():
        if key not in _PLAIN:
            continue
        target, convert, by_settings = _PLAIN[key]
        conv = (_checked_by_settings(ctx, target, convert) if by_settings
                else (lambda p, v, c=convert: c(ctx, p, v)))
        # target_epa_mev is in meV/atom; the training loop's target is in eV/atom.
        apply = _setter(target, 1000.0 if key == "target_epa_mev" else None)
        axes.append(_Axis(path + (key,), key, _axis_values(ctx, path + (key,), raw, conv), apply))
    return axes


def _perturb_axes(ctx: _Context, path: KeyPath, raw: Any) -> list[_Axis]:
    t = _table(ctx, path, raw)
    _check_keys(ctx, path, t, ("sigma", "every"))
    for key in ("sigma", "every"):
        if key not in t:
            raise ctx.error(path, f"perturb needs both sigma and every; {key} is missing")
    sigma = _checked_by_settings(ctx, "perturb_sigma", lambda c, p, v: _number(c, p, v, minimum=0))
    every = _checked_by_settings(ctx, "perturb_every", lambda c, p, v: _integer(c, p, v, minimum=1))
    return [_Axis(path + ("sigma",), "perturb.sigma", _axis_values(ctx, path + ("sigma",), t["sigma"], sigma),
                  _setter("perturb_sigma")),
            _Axis(path + ("every",), "perturb.every", _axis_values(ctx, path + ("every",), t["every"], every),
                  _setter("perturb_every"))]


def _budget_axes(ctx: _Context, path: KeyPath, raw: Any) -> list[_Axis]:
    t = _table(ctx, path, raw)
    _check_keys(ctx, path, t, _BUDGET_KEYS)
    if not t:
        raise ctx.error(path, "a budget needs at least one of epochs, evals, seconds")

    def apply_limit(key: str) -> Callable[[dict, Any], None]:
        def apply(settings: dict, v: Any) -> None:
            settings.setdefault("_budget", {})[key] = v
        return apply

    return [_Axis(path + (key,), f"budget.{key}",
                  _axis_values(ctx, path + (key,), value, lambda p, v, k=key: _budget_value(ctx, p, k, v)),
                  apply_limit(key))
            for key, value in t.items()]


def _hyper_value(ctx: _Context, path: KeyPath, default: Any, value: Any) -> Any:
    """A hyperparameter value of the type of its default (float, int, bool, str or a
    list of numbers)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _expect(ctx, path, value, "true or false")
        return value
    if isinstance(default, int):
        return _integer(ctx, path, value)
    if isinstance(default, float):
        return _number(ctx, path, value)
    if isinstance(default, (tuple, list)):
        if not isinstance(value, list) or not value:
            raise _expect(ctx, path, value, "a list of numbers")
        return [_number(ctx, path + (i,), v) for i, v in enumerate(value)]
    return _string(ctx, path, value)


def _hyper_axes(ctx: _Context, path: KeyPath, optimizer: str, raw: Any) -> list[_Axis]:
    entry = REGISTRY[optimizer]
    t = _table(ctx, path, raw)
    axes = []
    for name, value in t.items():
        hpath = path + (name,)
        if name not in entry.hypers:
            raise ctx.error(hpath, f"unknown hyperparameter for {optimizer}; known: "
                                   f"{', '.join(sorted(entry.hypers)) or 'none'}")
        if (optimizer, name) == ("native", "workdir"):
            raise ctx.error(hpath, "every run of the variant would share this folder and parallel runs would "
                                   "overwrite each other's files; leave it unset (a fresh folder per run)")
        default = entry.hypers[name].default

        def convert(p: KeyPath, v: Any, name=name, default=default) -> Any:
            v = _hyper_value(ctx, p, default, v)
            if (optimizer, name) == ("native", "mlp"):
                v = _program(ctx, v)
            _check_hyper(ctx, p, optimizer, {name: v})
            return v

        values = _axis_values(ctx, hpath, value, convert, list_valued=isinstance(default, (tuple, list)))
        axes.append(_Axis(hpath, name, values, _hyper_setter(name)))
    return axes


def _hyper_setter(name: str) -> Callable[[dict, Any], None]:
    def apply(settings: dict, v: Any) -> None:
        settings.setdefault("hyper", {})[name] = v
    return apply


def _check_hyper(ctx: _Context, path: KeyPath, optimizer: str, hyper: dict) -> None:
    """Build the optimizer with `hyper` (step-based ones check their values there)."""
    entry = REGISTRY[optimizer]
    try:
        if isinstance(entry, StepEntry):
            entry.build(**hyper)
        else:
            entry.check(hyper)
    except (ValueError, TypeError) as err:
        raise ctx.error(path, f"{optimizer}: {err}") from None


def _entry(ctx: _Context, index: int, raw: Any, seeds: list[int], models: dict, data: dict) -> _Entry:
    """One [[optimizers]] entry, checked."""
    path = ("optimizers", index)
    t = _table(ctx, path, raw)
    _check_keys(ctx, path, t, _ENTRY_KEYS)
    if "name" not in t:
        raise ctx.error(path, "an optimizer entry needs name = one of " + ", ".join(REGISTRY))
    name = _string(ctx, path + ("name",), t["name"])
    if name not in REGISTRY:
        raise ctx.error(path + ("name",), f"unknown optimizer {name!r}; known: {', '.join(REGISTRY)}")
    reg = REGISTRY[name]
    if not (isinstance(reg, StepEntry) or reg.uses_lr):
        for key in _STEP_ONLY:
            if key in t:
                raise ctx.error(path + (key,), f"{name} takes no steps (full batch, no learning rate): {key} "
                                               "does not apply; remove it")
    axes = _plain_axes(ctx, path, t)
    if "perturb" in t:
        axes += _perturb_axes(ctx, path + ("perturb",), t["perturb"])
    if "hyper" in t:
        axes += _hyper_axes(ctx, path + ("hyper",), name, t["hyper"])
    if "budget" in t:
        axes += _budget_axes(ctx, path + ("budget",), t["budget"])
    return _Entry(index, name, _label_of(ctx, path, t, name), _ordered(axes, t), "budget" in t,
                  _seeds(ctx, path + ("seeds",), t["seeds"]) if "seeds" in t else seeds,
                  _subset(ctx, path + ("models",), t.get("models"), models, "model"),
                  _subset(ctx, path + ("data",), t.get("data"), data, "data set"))


def _label_of(ctx: _Context, path: KeyPath, t: dict, name: str) -> str:
    if "label" not in t:
        return name
    label = _string(ctx, path + ("label",), t["label"]).strip()
    if not label:
        raise ctx.error(path + ("label",), "an empty label")
    return label


def _ordered(axes: list[_Axis], t: dict) -> list[_Axis]:
    """Axes in the order their keys are written in the entry (labels follow the file)."""
    order = {k: i for i, k in enumerate(t)}
    return sorted(axes, key=lambda a: order[a.path[2]])


def _subset(ctx: _Context, path: KeyPath, raw: Any, known: dict, what: str) -> list[str]:
    """The labels an entry is restricted to (all when `raw` is None)."""
    if raw is None:
        return list(known)
    labels = _string_list(ctx, path, raw)
    for i, label in enumerate(labels):
        if label not in known:
            raise ctx.error(path + (i,), f"no {what} {label!r}; defined: {', '.join(known)}")
    return labels


# ------------------------------------------------------------------- expansion


def _variants(entry: _Entry, default_budget: str | None, ctx: _Context) -> list[tuple[str, dict]]:
    """(variant label, settings without seed) for every point of the entry's grid."""
    if default_budget is None and not entry.budget:
        raise ctx.error(entry.path, "no budget: give a top-level [budget] or budget = {...} in this entry")
    varying = [a for a in entry.axes if len(a.values) > 1]
    out = []
    for point in itertools.product(*(a.values for a in entry.axes)):
        settings: dict[str, Any] = {"hyper": {}}
        for axis, value in zip(entry.axes, point):
            axis.apply(settings, value)
        limits = settings.pop("_budget", None)
        settings["budget"] = _budget_text(limits) if limits is not None else default_budget
        shown = {a.name: _show_value(v) for a, v in zip(entry.axes, point) if a in varying}
        out.append((" ".join([entry.label] + [f"{k}={v}" for k, v in shown.items()]), settings))
    return out


def _check_settings(ctx: _Context, entry: _Entry, variant: str, spec: RunSpec) -> None:
    """Build the run's TrainSettings and optimizer as the runner will: a combination of
    values that is refused together is an error at the entry."""
    try:
        spec.train_settings()
    except (ValueError, TypeError) as err:
        raise ctx.error(entry.path, f"variant {variant!r}: {err}") from None
    _check_hyper(ctx, entry.path + ("hyper",), entry.optimizer, spec.settings["hyper"])


def _expand(ctx: _Context, name: str, models: dict, data: dict, entries: list[_Entry], weights: dict,
            default_budget: str | None, threads: int) -> list[RunSpec]:
    """models x data x entries x grids x seeds -> RunSpecs; variants unique per model
    and data set."""
    grids = {e.index: _variants(e, default_budget, ctx) for e in entries}
    runs: list[RunSpec] = []
    for model_name, model in models.items():
        for data_name, data_set in data.items():
            made: dict[str, _Entry] = {}
            for e in entries:
                if model_name not in e.models or data_name not in e.data:
                    continue
                for variant, settings in grids[e.index]:
                    _claim(ctx, made, variant, e, model_name, data_name)
                    for seed in e.seeds:
                        # Copies: no two specs share a mutable dict or list (species, ns_coeffs).
                        spec = RunSpec(experiment=name, model_name=model_name, model=copy.deepcopy(model),
                                       data_name=data_name, data=copy.deepcopy(data_set), weights=dict(weights),
                                       optimizer=e.optimizer, variant=variant,
                                       settings={**copy.deepcopy(settings), "seed": seed}, threads=threads)
                        runs.append(spec)
                    _check_settings(ctx, e, variant, spec)
    return runs


def _claim(ctx: _Context, made: dict, variant: str, entry: _Entry, model: str, data: str) -> None:
    if variant in made:
        other = made[variant]
        raise ctx.error(entry.path, f"variant {variant!r} on model {model!r} / data {data!r} is also made by "
                                    f"optimizers[{other.index}] (line {ctx.locator.line(other.path)}); "
                                    "give one of them a distinct label")
    made[variant] = entry


# ------------------------------------------------------------------- the experiment


@dataclass
class Experiment:
    """An experiment file, loaded: its header, report options and the runs it expands to.

    path / store_path: absolute. baseline: the variant label the report divides by
    (resolved from an optimizer name when the file gave one), or None. runs: in the
    order models x data x entries x grids x seeds. models / data: the files' tables as
    RunSpec dicts, by label. threads: engine threads per run."""

    name: str
    path: Path
    description: str
    store_path: Path
    baseline: str | None
    report: dict
    runs: list[RunSpec]
    models: dict[str, dict] = field(default_factory=dict)
    data: dict[str, dict] = field(default_factory=dict)
    threads: int = 1

    def variants(self) -> list[str]:
        """The variant labels, in the order of the runs, each once."""
        return list(dict.fromkeys(r.variant for r in self.runs))

    def groups(self) -> dict[tuple[str, str, str], list[RunSpec]]:
        """The runs by (model, data set, variant): one ensemble of seeds each."""
        out: dict[tuple[str, str, str], list[RunSpec]] = {}
        for r in self.runs:
            out.setdefault((r.model_name, r.data_name, r.variant), []).append(r)
        return out


_TOP_KEYS = ("name", "description", "store", "seeds", "baseline", "threads", "paths", "weights", "budget",
             "models", "data", "optimizers", "report")


def load_experiment(path, variables: dict[str, str] | None = None) -> Experiment:
    """Read, check and expand an experiment file (module docstring: the format).

    `variables` override or add [paths] variables (relative values: against the current
    directory). Every problem is an ExperimentError starting with ``FILE:LINE:``."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ExperimentError(f"{file}: cannot read the experiment file: {err}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"\(at line (\d+), column \d+\)", str(err))
        line = m.group(1) if m else max(1, len(text.splitlines()))  # else "(at end of document)"
        raise ExperimentError(f"{file}:{line}: TOML syntax: {err}") from None
    ctx = _Context(file, Path(os.path.abspath(path)).parent, KeyLocator(text))
    _check_keys(ctx, (), doc, _TOP_KEYS)
    ctx.variables = _read_variables(ctx, doc.get("paths", {}), dict(variables or {}))
    doc = {k: v if k == "paths" else _substitute(ctx, (k,), v) for k, v in doc.items()}
    return _build(ctx, doc)


def _build(ctx: _Context, doc: dict) -> Experiment:
    if "name" not in doc:
        raise ctx.error(("name",), "the experiment needs a name = \"...\" at the top")
    name = _label(ctx, ("name",), doc["name"])
    seeds = _seeds(ctx, ("seeds",), doc.get("seeds", 1))
    threads = _integer(ctx, ("threads",), doc.get("threads", 1), minimum=1)
    models = _labelled(ctx, doc, "models", _model)
    data = _labelled(ctx, doc, "data", _data)
    raw_entries = doc.get("optimizers", [])
    if not isinstance(raw_entries, list):
        raise _expect(ctx, ("optimizers",), raw_entries, "[[optimizers]] entries (an array of tables)")
    if not raw_entries:
        raise ctx.error(("optimizers",), "at least one [[optimizers]] entry is needed")
    entries = [_entry(ctx, i, raw, seeds, models, data) for i, raw in enumerate(raw_entries)]
    default_budget = _default_budget(ctx, doc["budget"]) if "budget" in doc else None
    runs = _expand(ctx, name, models, data, entries, _weights(ctx, doc.get("weights", {})), default_budget, threads)
    store = ctx.resolve(_string(ctx, ("store",), doc.get("store", f"results/{name}/store.sqlite")))
    exp = Experiment(name=name, path=ctx.folder / Path(ctx.file).name,
                     description=_string(ctx, ("description",), doc.get("description", "")),
                     store_path=Path(store), baseline=None,
                     report=_report(ctx, doc.get("report", {}), {f"{r.model_name}/{r.data_name}" for r in runs}),
                     runs=runs, models=models, data=data,
                     threads=threads)
    if "baseline" in doc:
        exp.baseline = _baseline(ctx, _string(ctx, ("baseline",), doc["baseline"]), runs)
    return exp


def _labelled(ctx: _Context, doc: dict, key: str, parse: Callable) -> dict[str, dict]:
    """[models.X] / [data.X] tables, parsed, by label; at least one."""
    tables = _table(ctx, (key,), doc.get(key, {}))
    if not tables:
        raise ctx.error((key,), f"at least one [{key}.LABEL] table is needed")
    return {label: parse(ctx, label, raw) for label, raw in tables.items()}


def _baseline(ctx: _Context, baseline: str, runs: list[RunSpec]) -> str:
    """The variant label `baseline` names: itself, or the single variant of an
    optimizer of that name."""
    variants = list(dict.fromkeys(r.variant for r in runs))
    if baseline in variants:
        return baseline
    of_optimizer = list(dict.fromkeys(r.variant for r in runs if r.optimizer == baseline))
    if len(of_optimizer) == 1:
        return of_optimizer[0]
    if of_optimizer:
        raise ctx.error(("baseline",), f"optimizer {baseline!r} has {len(of_optimizer)} variants; name one: "
                                       + "; ".join(of_optimizer))
    raise ctx.error(("baseline",), f"no variant or optimizer {baseline!r}; variants: {'; '.join(variants)}")


# ------------------------------------------------------------------- the plan


def _seed_text(seeds: list[int]) -> str:
    """[0, 1, 2, 3] -> "0-3"; [0, 4, 7] -> "0,4,7"."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def describe_plan(exp: Experiment) -> str:
    """The plan of `exp` as text (what `optbench validate FILE` prints): the file and
    store, counts, one line per (model, data set, variant) with its seeds and budget,
    the total number of runs and the training seconds the budgets allow at most."""
    groups = exp.groups()
    n_runs = len(exp.runs)
    lines = [f"experiment {exp.name}: {exp.path}"]
    if exp.description:
        lines.append(f"  {exp.description.strip()}")
    lines += [f"store: {exp.store_path}",
              ", ".join([_count(len(exp.models), "model"), _count(len(exp.data), "data set"),
                         _count(len(exp.variants()), "variant"), _count(len(groups), "ensemble"),
                         _count(n_runs, "run"), f"{_count(exp.threads, 'engine thread')} a run"]),
              f"baseline: {exp.baseline or 'none'}"]
    width = max(len(v) for (_, _, v) in groups)
    for (model, data, variant), runs in groups.items():
        seeds = _seed_text([r.seed for r in runs])
        lines.append(f"  {model:<10s} {data:<10s} {variant:<{width}s}  seeds {seeds:<8s} "
                     f"budget {runs[0].settings['budget']}")
    seconds = [Budget.parse(r.settings["budget"]).seconds for r in exp.runs]
    timed = [s for s in seconds if s is not None]
    total = f"total: {_count(n_runs, 'run')}"
    if timed:
        total += (f"; at most {sum(timed):.0f} s of training in the {_count(len(timed), 'run')} with a "
                  "seconds budget")
    lines.append(total)
    return "\n".join(lines)


__all__ = ["Experiment", "ExperimentError", "load_experiment", "describe_plan"]
