"""[[optimizers]] entries: their settings as grid axes, checked, and the expansion of
models x data x entries x grids x seeds into RunSpecs with variant labels."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any, Callable

from optbench.experiments.runspec import RunSpec
from optbench.experiments.sections import _BUDGET_KEYS, _budget_value, _program, _seeds
from optbench.experiments.toml_lines import KeyPath
from optbench.experiments.values import (
    _check_keys,
    _Context,
    _expect,
    _integer,
    _number,
    _show_value,
    _string,
    _string_list,
    _table,
)
from optbench.optim import REGISTRY, StepEntry
from optbench.optim.base import STEP_SETTINGS
from optbench.train import Budget, Schedule, TrainSettings

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
               "eval_every", "target_epa_mev", "early_stop", "refine", "refine_fraction", "hyper", "budget", "seeds",
               "models", "data")


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
    "early_stop": ("early_stop", _integer, True),
    "refine": ("refine", _string, True),
    "refine_fraction": ("refine_fraction", _number, True),
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
    if not reg.takes_steps:
        for key in STEP_SETTINGS:
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
        settings["budget"] = Budget(**limits).text() if limits is not None else default_budget
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
