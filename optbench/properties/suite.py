"""The property registry and one calculator's properties over a list of structures.

``PROPERTIES`` names every property a `[properties]` section or `optbench properties` may
ask for, with the function that computes it, the structures it applies to and what its
settings are (the function's keyword arguments). `compute_properties` runs the asked ones
on each structure: the structure is brought to the calculator's own equilibrium once
(eos.equilibrium_structure), and every property starts from there, so that an elastic
constant or a phonon is that of the potential's crystal, not of a strained one.

A property that fails physically (an MD run that explodes, a relaxation that runs away)
comes back with status UNSTABLE from its function; an exception inside a function (the
calculator failed, a setting the function refused) becomes a result with status FAILED
and the message, so that one bad potential never ends a sweep.
"""

from __future__ import annotations

import importlib
import inspect
import time
import traceback
from dataclasses import dataclass
from typing import Callable

from optbench.properties.base import UNSTABLE, PropertyError, PropertyResult
from optbench.properties.relax import UnstableStructure
from optbench.properties.structures import build_structure, parse_structure_name

__all__ = ["PROPERTIES", "FAILED", "Property", "applies", "check_settings", "compute_properties"]

FAILED = "failed"  # the tool could not compute the property (an exception): not the potential's fault


@dataclass(frozen=True)
class Property:
    """One property: where its function lives and which structures it applies to
    ("any", "element": one element, "bcc": a one-element bcc structure)."""

    module: str
    function: str
    applies_to: str = "any"
    equilibrate: bool = True  # start from the calculator's equilibrium structure

    def load(self) -> Callable:
        """The function (imported on first use: phonopy only when phonons are asked for)."""
        return getattr(importlib.import_module(f"optbench.properties.{self.module}"), self.function)


PROPERTIES: dict[str, Property] = {
    "eos": Property("eos", "equation_of_state", equilibrate=False),
    "elastic": Property("elastic", "elastic_constants"),
    "phonons": Property("phonons", "phonons"),
    "md": Property("md", "md_stability"),
    "vacancy": Property("defects", "vacancy_formation", "element"),
    "surface": Property("defects", "surface_energies", "element"),
    "gsfe": Property("defects", "stacking_fault_bcc", "bcc"),
}

# Settings the suite itself passes (not the user's to set).
_RESERVED = {"calc", "atoms", "equilibrate", "eos_settings"}


def applies(name: str, structure: str, only: dict[str, list[str]] | None = None) -> bool:
    """Whether property `name` applies to the structure named `structure` (and, when
    `only` lists structures for it, is one of them)."""
    if only and name in only and structure not in only[name]:
        return False
    rule = PROPERTIES[name].applies_to
    counts, proto, _ = parse_structure_name(structure)
    if rule == "element":
        return len(counts) == 1
    if rule == "bcc":
        return len(counts) == 1 and proto == "bcc"
    return True


def check_settings(name: str, settings: dict) -> None:
    """PropertyError naming the property and the key when `settings` holds a key the
    property's function does not take (its keyword arguments are the settings)."""
    if name not in PROPERTIES:
        raise PropertyError(f"unknown property {name!r}; known: {', '.join(PROPERTIES)}")
    params = inspect.signature(PROPERTIES[name].load()).parameters
    allowed = [p for p, v in params.items() if v.kind == v.KEYWORD_ONLY and p not in _RESERVED]
    for key in settings:
        if key not in allowed:
            raise PropertyError(f"property {name}: unknown setting {key!r}; known: {', '.join(allowed) or 'none'}")


def _failed(name: str, structure: str, err: BaseException) -> PropertyResult:
    tb = traceback.extract_tb(err.__traceback__)
    where = f" ({tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return PropertyResult(name, structure, status=FAILED, message=f"{type(err).__name__}: {err}{where}")


def compute_properties(calc, structures: list[str], names: list[str], settings: dict[str, dict] | None = None,
                       *, progress: Callable[[str], None] | None = None,
                       done: Callable[[PropertyResult, float], None] | None = None,
                       skip: Callable[[str, str], bool] | None = None,
                       only: dict[str, list[str]] | None = None) -> list[PropertyResult]:
    """Properties `names` of each structure (structures.build_structure names) for the
    ASE calculator `calc`, with `settings` {property: keyword arguments}.

    Pairs a property does not apply to (`applies`, with `only`: {property: the structures
    it is limited to}) are left out, as are those `skip(name, structure)` says are done. `done(result, seconds)` is called as each result is ready
    (to store it at once); `progress` gets one line per property. The equilibrium
    structure is computed once per structure, with the eos settings."""
    settings = settings or {}
    out: list[PropertyResult] = []
    for structure in structures:
        todo = [n for n in names if applies(n, structure, only) and not (skip and skip(n, structure))]
        if not todo:
            continue
        atoms = build_structure(structure)
        eq, eq_error = None, None
        if any(PROPERTIES[n].equilibrate for n in todo):
            try:
                from optbench.properties.eos import equilibrium_structure

                eq = equilibrium_structure(calc, atoms, **settings.get("eos", {}))
            except Exception as err:  # the potential has no sensible equilibrium: every property says so
                eq_error = err
        for name in todo:
            prop = PROPERTIES[name]
            t0 = time.perf_counter()
            if prop.equilibrate and eq_error is not None:
                result = _failed(name, structure, eq_error)
                if isinstance(eq_error, UnstableStructure):  # the potential's failure, not the tool's
                    result.status, result.message = UNSTABLE, str(eq_error)
                result.message = "no equilibrium structure: " + result.message
            else:
                kwargs = dict(settings.get(name, {}))
                if prop.equilibrate and _takes_equilibrate(prop):
                    kwargs["equilibrate"] = False  # done once above, for every property
                try:
                    result = prop.load()(calc, eq if prop.equilibrate else atoms, **kwargs)
                except UnstableStructure as err:
                    result = PropertyResult(name, structure, status=UNSTABLE, message=str(err))
                except Exception as err:  # one property's failure must not end the others
                    result = _failed(name, structure, err)
            result.structure = structure
            seconds = time.perf_counter() - t0
            if progress:
                progress(f"{structure} {name}: {result.status} in {seconds:.1f} s"
                         + (f" ({result.message})" if result.message else ""))
            if done:
                done(result, seconds)
            out.append(result)
    return out


def _takes_equilibrate(prop: Property) -> bool:
    return "equilibrate" in inspect.signature(prop.load()).parameters
