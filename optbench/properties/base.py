"""What every property computation returns, and the conventions they share.

A property is a function ``compute(calc, atoms, **settings) -> PropertyResult``: `calc` an
ASE calculator (the engine's, a torch package's own, or ASE's EMT as a reference), `atoms`
the structure it starts from (an ``ase.Atoms``, not modified), settings keyword arguments
with physical units in their names or docstrings. The result holds numbers with units and
the raw data behind them (curves, spectra, traces), all plain JSON-serialisable values, so
that the results store keeps them and the report redraws figures without recomputing.

Units throughout: Angstrom, eV, GPa for moduli and elastic constants, J/m^2 for surface
and stacking-fault energies, THz for phonon frequencies, K, fs and ps for MD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["PropertyResult", "PropertyError", "EV_PER_A3_TO_GPA", "EV_PER_A2_TO_J_PER_M2", "OK", "UNSTABLE",
           "jsonable", "structure_label"]

# ase.units: 1 eV/A^3 = 160.2176634 GPa; 1 eV/A^2 = 16.02176634 J/m^2.
EV_PER_A3_TO_GPA = 160.21766208
EV_PER_A2_TO_J_PER_M2 = 16.021766208

OK = "ok"
UNSTABLE = "unstable"  # the potential, not the tool, failed (MD exploded, a relaxation ran away)


class PropertyError(ValueError):
    """A property cannot be computed as asked (bad settings, an unknown structure); the
    message names the property, structure and setting."""


def structure_label(atoms) -> str:
    """The name a result carries for `atoms`: ``atoms.info['structure']`` (the name
    structures.build_structure gave it), else its chemical formula."""
    return str(atoms.info.get("structure") or atoms.get_chemical_formula())


def jsonable(value):
    """`value` with NumPy arrays and scalars turned into lists and floats (NaN -> None),
    recursively: what json.dumps accepts."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


@dataclass
class PropertyResult:
    """One property of one structure for one potential.

    name      the property ("eos", "elastic", "phonons", "md", "vacancy", "surface", "gsfe")
    structure the structure's label ("Ag-fcc", "Mo-bcc", ...)
    values    scalar results by name, e.g. {"a": 4.08, "B": 101.2}
    units     the unit of each value, e.g. {"a": "A", "B": "GPa"}
    data      the raw data behind the values (lists; what figures are drawn from)
    status    OK, or UNSTABLE when the potential failed physically (values may be partial)
    message   why, when not OK
    """

    name: str
    structure: str
    values: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    status: str = OK
    message: str = ""

    def to_dict(self) -> dict:
        """The result as plain JSON-serialisable values."""
        return jsonable({"name": self.name, "structure": self.structure, "values": self.values,
                         "units": self.units, "data": self.data, "status": self.status, "message": self.message})

    @classmethod
    def from_dict(cls, d: dict) -> "PropertyResult":
        """The inverse of to_dict (None values read back as NaN)."""
        values = {k: (float("nan") if v is None else float(v)) for k, v in d.get("values", {}).items()}
        return cls(d["name"], d["structure"], values, dict(d.get("units", {})), d.get("data", {}),
                   d.get("status", OK), d.get("message", ""))
