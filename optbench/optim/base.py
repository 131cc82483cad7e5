"""The interface every step-based optimizer implements, after optax.

An optimizer is a pair of pure functions on the flat float64 parameter vector:

    state = opt.init(x)
    step, state = opt.update(grad, state, x, lr)
    x = x + step

`update` never modifies its inputs; `state` is a dict of arrays and numbers. The learning
rate is an argument of every step (not baked in), so the training loop's schedules
(step, cosine, reduce-on-plateau) apply to every optimizer alike; at a constant rate a
trajectory equals optax's optimizer of the same name. Optimizers that evaluate the loss at
another point than the one they step from (ScheduleFree) give it by `eval_params`.

Units: parameters and steps in the units of the parameter vector; `lr` multiplies the
optimizer's direction (for SGD, parameter units per unit of gradient).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

State = dict[str, Any]

#: The run settings only optimizers that take steps read (Entry.takes_steps): anywhere
#: else they are refused rather than ignored.
STEP_SETTINGS = ("lr", "schedule", "clip", "batch_size", "perturb", "refine", "refine_fraction")


def _identity_eval(x: np.ndarray, state: State) -> np.ndarray:
    return x


@dataclass(frozen=True)
class Optimizer:
    """A step-based optimizer: `init(x) -> state`, `update(g, state, x, lr) -> (step, state)`.

    `name` and `hyper` (the hyperparameters it was built with) go into run records;
    `eval_params(x, state)` is the point whose loss and metrics the optimizer reports
    (x itself except for ScheduleFree)."""

    name: str
    init: Callable[[np.ndarray], State]
    update: Callable[[np.ndarray, State, np.ndarray, float], tuple[np.ndarray, State]]
    hyper: dict[str, Any] = field(default_factory=dict)
    eval_params: Callable[[np.ndarray, State], np.ndarray] = _identity_eval


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter of an optimizer family: its default and what it means."""

    default: Any
    help: str


def check_positive(name: str, value: float, allow_zero: bool = False) -> float:
    """`value` as a float, or ValueError naming the hyperparameter when it is not a finite
    positive (or, with allow_zero, non-negative) number."""
    v = float(value)
    ok = np.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        raise ValueError(f"{name} must be a finite {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
    return v


def check_fraction(name: str, value: float) -> float:
    """`value` as a float in [0, 1), or ValueError naming the hyperparameter."""
    v = float(value)
    if not (0.0 <= v < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return v


def check_integer(name: str, value, minimum: int) -> int:
    """`value` as an int, or ValueError naming the hyperparameter when it is not a whole
    number >= `minimum` (6 and 6.0 are accepted; 6.5, "6" and True are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not float(value).is_integer() or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_flag(name: str, value) -> bool:
    """`value` as a bool, or ValueError naming the hyperparameter when it is not one (a
    string such as "false" would otherwise be silently true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def with_defaults(hypers: dict[str, Hyper], given: dict[str, Any]) -> dict[str, Any]:
    """Every hyperparameter of `hypers` at its default, replaced by the `given` values; a
    name not in `hypers` is a ValueError listing the known ones."""
    unknown = sorted(set(given) - set(hypers))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(hypers)) or 'none'}")
    for name, value in given.items():
        _check_type(name, hypers[name].default, value)
    return {**{k: h.default for k, h in hypers.items()}, **given}


def _check_type(name: str, default: Any, value: Any) -> None:
    """ValueError when `value` is not of the kind of `default` (a number, true/false, or
    text), naming the hyperparameter: "abc" for a rate must not surface as a float
    conversion error deep inside an optimizer."""
    number = (int, float, np.integer, np.floating)
    if isinstance(default, (bool, np.bool_)):
        ok, kind = isinstance(value, (bool, np.bool_)), "true or false"
    elif isinstance(default, number):
        ok, kind = isinstance(value, number) and not isinstance(value, (bool, np.bool_)), "a number"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "text"
    else:
        return  # list-valued (Muon's ns_coeffs): the optimizer checks it
    if not ok:
        raise ValueError(f"{name} must be {kind}, got {value!r}")


@dataclass(frozen=True)
class Entry:
    """How the command line and experiment files reach a step-based optimizer: its
    factory (keyword hyperparameters, learning rate excluded), the hyperparameters with
    defaults and help, the default learning rate, and a one-line description."""

    factory: Callable[..., Optimizer]
    hypers: dict[str, Hyper]
    default_lr: float
    doc: str

    takes_steps = True  # a learning rate, schedules, clipping, batches and perturbation apply

    def build(self, **overrides) -> Optimizer:
        """The optimizer with defaults replaced by `overrides`; an unknown name is a
        ValueError listing the known ones."""
        return self.factory(**with_defaults(self.hypers, overrides))


@dataclass(frozen=True)
class DriverEntry:
    """An optimizer that drives its own iterations (SciPy quasi-Newton, hybrids,
    separable least squares): `run(tracker, x0, lr, hyper, shuffle_rng, perturb_rng,
    info, notes)` steps through the training Tracker until it converges or the Tracker
    stops it, filling `info` with status/message/nit/nfev/success."""

    run: Callable[..., None]
    hypers: dict[str, Hyper]
    default_lr: float
    doc: str
    uses_lr: bool = False

    @property
    def takes_steps(self) -> bool:
        """Whether learning rate, schedule, clipping, batch size and perturbation apply
        (a hybrid with a step-based phase); False for full-batch drivers."""
        return self.uses_lr

    def check(self, hyper: dict) -> dict:
        """`hyper` completed with defaults; an unknown name is a ValueError."""
        return with_defaults(self.hypers, hyper)
