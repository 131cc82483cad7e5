"""The optimizer suite: every optimizer by name, with its hyperparameters and defaults.

Step-based (pure init/update pairs, see base.py): first_order.py, muon.py.
Self-driven (own iterations under the training loop's budget): quasi_newton.py,
separable.py, native.py (MLIP's own mlp train).
Below them, what their iterations need: budget.py (`Budget`) and loop.py (`StopRun`, the
step loop `run_steps`, gradient clipping).

To add an optimizer: write its `init`/`update` pair (or a driver `run(tracker, ...)`) in
the module of its family, add an `Entry` (or `DriverEntry`) to that module's REGISTRY
with its hyperparameters, and, for a new family, add the module's REGISTRY to FAMILIES
below. `optbench optimizers`, experiment files, the benchmarks and the parity tests pick
it up from REGISTRY.
"""

from __future__ import annotations

from optbench.optim.base import DriverEntry, Entry, Hyper, Optimizer
from optbench.optim.first_order import REGISTRY as _FIRST_ORDER
from optbench.optim.least_squares import REGISTRY as _LEAST_SQUARES
from optbench.optim.muon import REGISTRY as _MUON
from optbench.optim.native import REGISTRY as _NATIVE
from optbench.optim.quasi_newton import REGISTRY as _QUASI_NEWTON
from optbench.optim.separable import REGISTRY as _SEPARABLE

StepEntry = Entry

FAMILIES: dict[str, dict[str, Entry | DriverEntry]] = {
    "first order": _FIRST_ORDER,
    "Muon": _MUON,
    "quasi-Newton": _QUASI_NEWTON,
    "separable least squares": _SEPARABLE,
    "Gauss-Newton": _LEAST_SQUARES,
    "native": _NATIVE,
}

REGISTRY: dict[str, Entry | DriverEntry] = {name: e for fam in FAMILIES.values() for name, e in fam.items()}


def describe() -> str:
    """Text listing every optimizer with its hyperparameters and defaults (the output of
    `optbench optimizers`)."""
    lines = []
    for family, entries in FAMILIES.items():
        lines.append(f"{family}:")
        for name, e in entries.items():
            lr = f"  (default lr {e.default_lr:g})" if isinstance(e, Entry) or e.uses_lr else ""
            lines.append(f"  {name:<14s} {e.doc}{lr}")
            for h, spec in e.hypers.items():
                lines.append(f"      {h:<17s} = {spec.default!r:<12}  {spec.help}")
    return "\n".join(lines)


__all__ = ["REGISTRY", "FAMILIES", "StepEntry", "Entry", "DriverEntry", "Hyper", "Optimizer", "describe"]
