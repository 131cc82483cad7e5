"""Run budgets: epochs, configurations evaluated, wall seconds — whichever comes first.

Configurations evaluated (one configuration's loss and gradient = 1) is the unit that makes
full-batch and mini-batch runs comparable: an epoch of any batch size costs n_train.
Seconds are training seconds: the periodic evaluation of train/validation metrics is not
charged to the budget, so how often a run reports does not change how far it gets.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def _number_text(v: float | int) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


@dataclass(frozen=True)
class Budget:
    """Stop a run at `epochs` passes over the training set, `evals` configurations
    evaluated, or `seconds` of training, whichever is reached first (None: no limit)."""

    epochs: float | None = None
    evals: int | None = None
    seconds: float | None = None

    def __post_init__(self):
        for name in ("epochs", "evals", "seconds"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ValueError(f"budget {name} must be a positive number, got {v!r}")
        if self.epochs is None and self.evals is None and self.seconds is None:
            raise ValueError("a budget needs at least one of epochs, evals, seconds")

    @classmethod
    def parse(cls, text: str) -> "Budget":
        """From "epochs=E,evals=N,seconds=S" (any subset, in any order)."""
        kw: dict[str, float] = {}
        for item in (p.strip() for p in text.split(",")):
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep or key not in ("epochs", "evals", "seconds"):
                raise ValueError(f"budget item {item!r}: expected epochs=E, evals=N or seconds=S")
            if key in kw:
                raise ValueError(f"budget item {item!r}: {key} is given twice")
            try:
                kw[key] = int(value) if key == "evals" else float(value)
            except ValueError:
                what = "a whole number (configurations evaluated)" if key == "evals" else "a number"
                raise ValueError(f"budget item {item!r}: {value!r} is not {what}") from None
        return cls(**kw)

    def reason(self, configs: int, n_train: int, seconds: float) -> str | None:
        """Why the budget is used up after `configs` configurations evaluated on a set of
        `n_train` and `seconds` of training, or None while it lasts."""
        if self.evals is not None and configs >= self.evals:
            return f"budget of {self.evals} configurations evaluated reached"
        if self.epochs is not None and configs >= self.epochs * n_train:
            return f"budget of {self.epochs:g} epochs reached"
        if self.seconds is not None and seconds >= self.seconds:
            return f"budget of {self.seconds:g} s reached"
        return None

    def scaled(self, fraction: float) -> "Budget":
        """This budget with every limit multiplied by `fraction` (0 < fraction <= 1)."""
        return Budget(None if self.epochs is None else self.epochs * fraction,
                      None if self.evals is None else max(1, int(self.evals * fraction)),
                      None if self.seconds is None else self.seconds * fraction)

    def text(self) -> str:
        """The budget as `parse` reads it, limits in the order epochs, evals, seconds:
        "epochs=50,seconds=30" (whole numbers without ".0", others as repr)."""
        limits = (("epochs", self.epochs), ("evals", self.evals), ("seconds", self.seconds))
        return ",".join(f"{k}={_number_text(v)}" for k, v in limits if v is not None)

    def to_dict(self) -> dict:
        """The limits, None where unlimited."""
        return asdict(self)
