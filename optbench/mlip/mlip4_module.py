"""MLIP-4's Python bindings (the `mlip_4` module), called as the study drove them: write
x into `pot.params`, `LossFunction.calc()` for the loss, `accumulate_grads(g)` for its
gradient.

The surface of `mlip_4` this adapter relies on (MLIP-4 is not public; these are the names
its bindings expose, and every use is in this file, in the functions marked "MLIP-4"):

    pot = mlip_4.MTP.from_json_bytes(data)      # or mlip_4.ETN; MLIP-4's potential JSON
    pot.params                                  # the flat float64 parameter array;
    pot.params = x                              #   assigning it sets the parameters
    pot.to_json_bytes() -> bytes                # the potential file
    loss = mlip_4.LossFunction(records)         # records: the MLIP-4 JSON data format
                                                #   (../shared/datasets/README.md), with
                                                #   per-component "weights"
    loss.attach_pot(pot)
    loss.calc() -> float                        # the SUM over its configurations of the
                                                #   weighted squared errors
    loss.accumulate_grads(g)                    # ADDS the gradient of calc() into g
    loss.calc_errors() -> dict                  # {"energy", "energy_per_atom", "forces",
                                                #   "stress": {"count", "max", "mae",
                                                #   "rmse"}}, eV, eV/atom, eV/A, eV

The Objective built on these calls is optbench/objective/mlip4.py.

Errors: a missing module, a potential of the wrong kind, a parameter vector of the wrong
length and anything the bindings raise come back as ValueError / RuntimeError naming the
setting or the call, never as a bare traceback from inside the bindings.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np

POTENTIAL_CLASSES = {"mtp": "MTP", "etn": "ETN"}


def import_mlip4(name: str = "mlip_4"):
    """The MLIP-4 Python module `name`; ImportError naming the setting to change when it
    cannot be imported."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"the MLIP-4 Python module {name!r} cannot be imported ({err}): install MLIP-4's "
                          "Python bindings into this environment, or set the model's module = \"...\" "
                          "(--module on the command line), or use engine = \"embedded\"") from None


def load_mlip4_potential(module, kind: str, path: str | os.PathLike):
    """MLIP-4 potential of `kind` ("mtp" or "etn") from its JSON file. (MLIP-4)"""
    if kind not in POTENTIAL_CLASSES:
        raise ValueError(f"model kind {kind!r}: the mlip4 engine knows {', '.join(POTENTIAL_CLASSES)}")
    cls = getattr(module, POTENTIAL_CLASSES[kind], None)
    if cls is None:
        raise ValueError(f"module {module.__name__} has no class {POTENTIAL_CLASSES[kind]} for kind {kind!r}")
    data = Path(path).read_bytes()
    try:
        return cls.from_json_bytes(data)
    except Exception as err:
        raise ValueError(f"{path}: {module.__name__}.{POTENTIAL_CLASSES[kind]}.from_json_bytes failed: {err}") from None


def loss_function(module, records: list[dict], pot):
    """A LossFunction over `records` attached to `pot`. (MLIP-4)"""
    loss = module.LossFunction(records)
    loss.attach_pot(pot)
    return loss


def calc(loss, grad: np.ndarray | None) -> float:
    """The loss summed over the object's configurations; its gradient added into `grad`. (MLIP-4)"""
    value = float(loss.calc())
    if grad is not None:
        loss.accumulate_grads(grad)
    return value


def error_blocks(loss) -> dict:
    """MLIP-4's error report of a loss object's configurations at the attached
    potential's parameters: {"energy", "energy_per_atom", "forces", "stress": {"count",
    "max", "mae", "rmse"}} in eV, eV/atom, eV/A, eV. (MLIP-4)"""
    return loss.calc_errors()


__all__ = ["POTENTIAL_CLASSES", "import_mlip4", "load_mlip4_potential", "loss_function", "calc", "error_blocks"]
