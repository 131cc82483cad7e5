"""Learning-rate schedules for the training loop.

A schedule gives the learning rate of step t (0-based) from the base rate; the
reduce-on-plateau schedule also watches the validation loss the loop reports to it.
Rates are in the optimizer's own units (see optbench/optim/base.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Schedule:
    """Learning rate as a function of the step.

    kind:
      "constant"  lr
      "step"      lr * gamma ** (t // step_size)
      "cosine"    linear warm-up from 0 over `warmup` steps, then cosine decay to
                  lr * final_fraction at `decay_steps` (held there after)
      "plateau"   lr, multiplied by `factor` whenever the validation loss has not
                  improved by a relative `threshold` for `patience` reports, never below
                  lr * min_fraction
    """

    kind: str = "constant"
    step_size: int = 1000
    gamma: float = 0.5
    warmup: int = 0
    decay_steps: int = 10000
    final_fraction: float = 0.0
    factor: float = 0.5
    patience: int = 5
    threshold: float = 1e-4
    min_fraction: float = 1e-3

    def __post_init__(self):
        kinds = ("constant", "step", "cosine", "plateau")
        if self.kind not in kinds:
            raise ValueError(f"schedule must be one of {', '.join(kinds)}, got {self.kind!r}")
        if self.step_size < 1 or self.decay_steps < 1 or self.patience < 1 or self.warmup < 0:
            raise ValueError("schedule step_size, decay_steps and patience must be >= 1, warmup >= 0")
        if not (0 < self.gamma <= 1 and 0 < self.factor <= 1):
            raise ValueError("schedule gamma and factor must be in (0, 1]")
        self._scale = 1.0
        self._best = math.inf
        self._bad = 0

    @classmethod
    def parse(cls, text: str | None) -> "Schedule":
        """From "cosine,warmup=100,decay_steps=5000" (kind first, then key=value)."""
        if not text:
            return cls()
        kind, *rest = [p.strip() for p in text.split(",") if p.strip()]
        kw = {}
        for item in rest:
            key, sep, value = item.partition("=")
            if not sep or key not in cls.__dataclass_fields__ or key == "kind":
                raise ValueError(f"schedule option {item!r}: expected key=value with key one of "
                                 f"{', '.join(k for k in cls.__dataclass_fields__ if k != 'kind')}")
            try:
                kw[key] = int(value) if isinstance(getattr(cls, key), int) else float(value)
            except ValueError:
                raise ValueError(f"schedule option {item!r}: {value!r} is not a number") from None
        return cls(kind, **kw)

    def lr(self, base: float, t: int) -> float:
        """Learning rate at step t for base rate `base`."""
        if self.kind == "step":
            return base * self.gamma ** (t // self.step_size)
        if self.kind == "cosine":
            if t < self.warmup:
                return base * (t + 1) / self.warmup
            p = min(1.0, (t - self.warmup) / self.decay_steps)
            return base * (self.final_fraction + (1 - self.final_fraction) * 0.5 * (1 + math.cos(math.pi * p)))
        if self.kind == "plateau":
            return base * self._scale
        return base

    def observe(self, valid_loss: float) -> None:
        """Report a validation loss (plateau schedule only; others ignore it)."""
        if self.kind != "plateau" or not math.isfinite(valid_loss):
            return
        if valid_loss < self._best * (1 - self.threshold):
            self._best, self._bad = valid_loss, 0
            return
        self._bad += 1
        if self._bad >= self.patience:
            self._scale = max(self.min_fraction, self._scale * self.factor)
            self._bad = 0

    def describe(self) -> dict:
        """The settings that define this schedule (for run records)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}
