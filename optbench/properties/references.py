"""Reference results that the properties of a trained potential are compared with.

- "emt": ASE's EMT calculator run through the same property code (suite.compute_properties).
  For the generated Ag-Pd data, whose labels are EMT's, this is exact: a property error
  then measures the potential and nothing else.
- "dft-from-data": DFT values fitted to the DFT data themselves (dft_reference.py: bcc Mo's
  lattice constant, bulk modulus and elastic constants from the strained cells of
  Mo_Elastic.json, surface energies from Mo_Surface.json).
- numbers: values given in the experiment file, each with its source.

Every reference is a list of PropertyResult, like a potential's, so that the report
compares them value by value.
"""

from __future__ import annotations

from typing import Callable

from optbench.properties.base import PropertyError, PropertyResult
from optbench.properties.structures import parse_structure_name
from optbench.properties.suite import applies, compute_properties

__all__ = ["UNITS", "reference_results"]

# The units of the values a reference may give by number (the property functions' units).
UNITS = {"a": "A", "V0": "A^3/atom", "E0": "eV/atom", "B": "GPa", "Bp": "", "G": "GPa", "E": "GPa", "nu": "",
         "E_vac": "eV", "gamma_100": "J/m^2", "gamma_110": "J/m^2", "gamma_111": "J/m^2", "usf": "J/m^2",
         "max_frequency": "THz", "min_frequency": "THz"}


def _unit(key: str) -> str:
    if key.startswith("gamma_"):
        return "J/m^2"
    return "GPa" if key.startswith("C") and key[1:].isdigit() else UNITS.get(key, "")


def reference_results(kind: str, structures: list[str], compute: list[str], settings: dict | None = None, *,
                      numbers: dict | None = None, dft_data: str | None = None,
                      done: Callable[[PropertyResult, float], None] | None = None,
                      skip: Callable[[str, str], bool] | None = None,
                      progress: Callable[[str], None] | None = None,
                      only: dict[str, list[str]] | None = None) -> list[PropertyResult]:
    """The reference's results for properties `compute` of `structures` (module
    docstring: `kind` "emt", "dft-from-data" or "numbers"). `done`, `skip`, `progress`
    and `only` as in suite.compute_properties. Structures the reference says nothing about are
    left out (a DFT fit exists for bcc Mo only)."""
    if kind == "emt":
        from ase.calculators.emt import EMT

        return compute_properties(EMT(), structures, compute, settings, done=done, skip=skip, progress=progress,
                                  only=only)
    if kind == "numbers":
        results = []
        for structure, props in (numbers or {}).items():
            for name, values in props.items():
                if name == "source" or name not in compute or not applies(name, structure, only) or \
                        (skip and skip(name, structure)):
                    continue
                r = PropertyResult(name, structure, dict(values), {k: _unit(k) for k in values},
                                   {"source": props["source"]})
                if done:
                    done(r, 0.0)
                results.append(r)
        return results
    if kind == "dft-from-data":
        return _dft(structures, compute, dft_data, done, skip, only)
    raise PropertyError(f"reference {kind!r}: expected emt, dft-from-data or numbers")


def _dft(structures, compute, dft_data, done, skip, only) -> list[PropertyResult]:
    from optbench.properties.dft_reference import dft_reference

    results = []
    for structure in structures:
        counts, proto, _ = parse_structure_name(structure)
        if list(counts) != ["Mo"] or proto != "bcc":
            continue  # the data hold a DFT fit for bcc Mo only
        ref = dft_reference("Mo", dft_data)
        for name in compute:
            if name not in ref or not applies(name, structure, only) or (skip and skip(name, structure)):
                continue
            values = {k: float(v) for k, v in ref[name].items() if isinstance(v, (int, float))}
            r = PropertyResult(name, structure, values, {k: _unit(k) for k in values},
                               {"source": ref.get("sources", {}).get(name, "fitted to the DFT data in " + str(dft_data))})
            if done:
                done(r, 0.0)
            results.append(r)
    return results
