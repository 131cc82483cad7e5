"""The [properties] section of an experiment file: which physical properties of each
finished run's potential to compute, on which structures, against which reference.

[properties]
    structures  required: structure names of optbench/properties/structures.py, e.g.
                ["Ag-fcc", "Pd-fcc", "AgPd-L10"] ("FORMULA-PROTOTYPE[@A]", prototypes fcc,
                bcc, L12, L10, B2).
    compute     the properties (default ["eos", "elastic"]); known: eos, elastic, phonons,
                md, vacancy, surface, gsfe (optbench/properties/suite.py; each is computed
                on the structures it applies to: vacancy and surface on one-element
                structures, gsfe on bcc ones).
    reference   "emt" (ASE's EMT: exact for data it labelled, such as the generated Ag-Pd
                set), "dft-from-data" (DFT values fitted to the DFT data in ``dft_data``;
                bcc Mo: optbench/properties/dft_reference.py), "none" (default), or a table
                of numbers with their source,
                { "Mo-bcc" = { elastic = { C11 = 465.0 }, source = "..." } }.
    dft_data    the folder of the DFT files "dft-from-data" reads (e.g.
                "${datasets}/nbmotaw_snap").
    potential   "best" (default: the best-validation parameters) or "last".
    [properties.PROPERTY]  settings of one property: the keyword arguments of its
                function (e.g. [properties.eos] n_points = 7; [properties.md]
                temperature = 600.0), checked against the function's signature; and
                ``structures``, a subset of the structures above to limit that property
                to (e.g. MD on one crystal only).

The plan never changes the runs: properties are computed after training, stored beside
the run's metrics (store table ``properties``), and `optbench run` computes what is
missing, so adding a property to a finished sweep costs only that property.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optbench.experiments.values import (
    _check_keys,
    _Context,
    _expect,
    _number,
    _string,
    _string_list,
    _table,
)
from optbench.properties import PROPERTIES, PropertyError, applies, check_settings, parse_structure_name

__all__ = ["REFERENCE_KINDS", "parse_properties"]

REFERENCE_KINDS = ("none", "emt", "dft-from-data")
_KEYS = ("structures", "compute", "reference", "dft_data", "potential", *PROPERTIES)


def parse_properties(ctx: _Context, raw: Any) -> dict | None:
    """The [properties] table as a plan dict (structures, compute, reference, numbers,
    dft_data, potential, settings), or None when the file has none; ExperimentError at
    the offending key otherwise."""
    if raw is None:
        return None
    path = ("properties",)
    t = _table(ctx, path, raw)
    _check_keys(ctx, path, t, _KEYS)
    if "structures" not in t:
        raise ctx.error(path, "needs structures = [\"Ag-fcc\", ...]: the crystals whose properties are computed")
    structures = _string_list(ctx, path + ("structures",), t["structures"])
    for i, name in enumerate(structures):
        try:
            parse_structure_name(name)
        except PropertyError as err:
            raise ctx.error(path + ("structures", i), str(err)) from None
    compute = _string_list(ctx, path + ("compute",), t.get("compute", ["eos", "elastic"]))
    for i, name in enumerate(compute):
        if name not in PROPERTIES:
            raise ctx.error(path + ("compute", i), f"unknown property {name!r}; known: {', '.join(PROPERTIES)}")
        if not any(applies(name, s) for s in structures):
            raise ctx.error(path + ("compute", i), f"{name} applies to none of the structures {structures}")
    settings, only = {}, {}
    for name in PROPERTIES:
        if name in t:
            table = dict(_table(ctx, path + (name,), t[name]))
            if name not in compute:
                raise ctx.error(path + (name,), f"settings for {name}, which compute does not list")
            if "structures" in table:
                where = path + (name, "structures")
                only[name] = _string_list(ctx, where, table.pop("structures"))
                for i, s in enumerate(only[name]):
                    if s not in structures:
                        raise ctx.error(where + (i,), f"{s!r} is not one of the structures {structures}")
                if not any(applies(name, s) for s in only[name]):
                    raise ctx.error(where, f"{name} applies to none of {only[name]}")
            try:
                check_settings(name, table)
            except PropertyError as err:
                key = next((k for k in table if k in str(err)), None)
                raise ctx.error(path + (name,) + ((key,) if key else ()), str(err)) from None
            settings[name] = dict(table)
    potential = _string(ctx, path + ("potential",), t.get("potential", "best"))
    if potential not in ("best", "last"):
        raise ctx.error(path + ("potential",), f"expected \"best\" or \"last\", got {potential!r}")
    reference, numbers = _reference(ctx, path, t.get("reference", "none"), structures, compute)
    dft_data = None
    if "dft_data" in t:
        dft_data = ctx.resolve(_string(ctx, path + ("dft_data",), t["dft_data"]))
        if not Path(dft_data).is_dir():
            raise ctx.error(path + ("dft_data",), f"not a folder: {dft_data}")
    if reference == "dft-from-data" and dft_data is None:
        raise ctx.error(path + ("reference",), "\"dft-from-data\" needs dft_data = the folder of the DFT files")
    return {"structures": structures, "compute": compute, "settings": settings, "only": only, "potential": potential,
            "reference": reference, "numbers": numbers, "dft_data": dft_data}


def _reference(ctx: _Context, path, raw: Any, structures: list[str], compute: list[str]):
    """("emt" | "dft-from-data" | "none" | "numbers", the numbers table or None)."""
    if isinstance(raw, str):
        if raw not in REFERENCE_KINDS:
            raise ctx.error(path + ("reference",), f"expected one of {', '.join(REFERENCE_KINDS)} or a table of "
                                                   f"numbers, got {raw!r}")
        return raw, None
    table = _table(ctx, path + ("reference",), raw)
    numbers: dict = {}
    for structure, props in table.items():
        where = path + ("reference", structure)
        if structure not in structures:
            raise ctx.error(where, f"not one of the structures {structures}")
        props = _table(ctx, where, props)
        source = props.get("source")
        if source is None:
            raise ctx.error(where, "reference numbers need source = \"where they come from\"")
        _string(ctx, where + ("source",), source)
        numbers[structure] = {"source": source}
        for name, values in props.items():
            if name == "source":
                continue
            if name not in compute:
                raise ctx.error(where + (name,), f"not a computed property ({', '.join(compute)})")
            values = _table(ctx, where + (name,), values)
            if not values:
                raise _expect(ctx, where + (name,), values, "a table of values such as { C11 = 465.0 }")
            numbers[structure][name] = {k: _number(ctx, where + (name, k), v) for k, v in values.items()}
    return "numbers", numbers
