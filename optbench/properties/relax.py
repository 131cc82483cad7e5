"""Relaxations shared by the properties, and the check that a relaxation has not run away.

Every helper works on a copy of the atoms it is given and attaches `calc` to the copy.
A perfect lattice has zero forces (and a cubic one a hydrostatic stress) by symmetry; the
helpers then return at once without building an optimizer, which keeps the many small
relaxations of an elastic-constant or EOS scan cheap.

A potential far from its training data can make a relaxation run away (atoms collapse
onto each other, the energy drops without bound). `runaway_reason` detects that and says
why, so that a property reports ``UNSTABLE`` with the reason instead of raising, and
`UnstableStructure` carries such a reason out of helpers that must return a structure.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list
from ase.optimize import BFGS, FIRE

from optbench.properties.base import PropertyError

try:  # ase >= 3.23 (3.29 has both); FrechetCellFilter converges better on small cells
    from ase.filters import FrechetCellFilter as _CellFilter
except ImportError:  # pragma: no cover - older ase
    from ase.constraints import ExpCellFilter as _CellFilter

__all__ = [
    "MAX_ENERGY_DROP",
    "MIN_DISTANCE",
    "UnstableStructure",
    "max_force",
    "relax_cell",
    "relax_positions",
    "runaway_reason",
]

# Closest approach (A) below which a structure of metals has collapsed: the shortest
# bonds in condensed matter (H2 aside) are near 0.7 A, metallic ones above 2 A.
MIN_DISTANCE = 0.7
# A relaxation that lowers the energy by more than this (eV/atom) has found a hole in
# the potential: cohesive energies themselves are below 10 eV/atom.
MAX_ENERGY_DROP = 5.0

_OPTIMIZERS = {"BFGS": BFGS, "FIRE": FIRE}


class UnstableStructure(RuntimeError):
    """The potential failed physically while a structure was being prepared (a
    relaxation ran away, an EOS could not be fitted); the message says why. Callers turn
    it into a result with status ``UNSTABLE``."""


def _with_calc(atoms: Atoms, calc) -> Atoms:
    work = atoms.copy()
    work.calc = calc
    return work


def _optimizer(name: str):
    try:
        return _OPTIMIZERS[name.upper()]
    except (KeyError, AttributeError):
        raise PropertyError(f"relaxation: optimizer {name!r} is not one of {', '.join(_OPTIMIZERS)}") from None


def _check_settings(fmax: float, steps: int) -> None:
    if not (np.isfinite(fmax) and fmax > 0):
        raise PropertyError(f"relaxation: fmax must be positive (eV/A), got {fmax!r}")
    if int(steps) != steps or steps < 0:
        raise PropertyError(f"relaxation: steps must be a non-negative integer, got {steps!r}")


def max_force(atoms: Atoms) -> float:
    """The largest force on any atom (eV/A) from the attached calculator; 0 for no atoms."""
    forces = atoms.get_forces()
    return float(np.sqrt((forces ** 2).sum(axis=1)).max()) if len(forces) else 0.0


def relax_positions(atoms: Atoms, calc, fmax: float = 1e-3, steps: int = 500,
                    optimizer: str = "BFGS") -> tuple[Atoms, bool, int]:
    """Relax the atomic positions of a copy of `atoms` at fixed cell until every force is
    below `fmax` (eV/A) or `steps` optimizer steps are spent.

    Returns (the relaxed copy with `calc` attached, whether it converged, the number of
    optimizer steps taken); 0 steps when the forces were already below `fmax`. Check the
    result with `runaway_reason`: a diverging relaxation is returned, not raised."""
    _check_settings(fmax, steps)
    opt_cls = _optimizer(optimizer)
    work = _with_calc(atoms, calc)
    if max_force(work) < fmax:
        return work, True, 0
    opt = opt_cls(work, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=int(steps)))
    return work, converged, int(opt.nsteps)


def _cell_converged(work: Atoms, fmax: float) -> bool:
    # the filter's cell "forces" are -V*stress / N (cell_factor = N atoms), so compare the
    # stress on that scale: converged cell and positions before any optimizer step
    stress = work.get_stress(voigt=False)
    cell_force = np.abs(stress).max() * work.get_volume() / max(len(work), 1)
    return max_force(work) < fmax and cell_force < fmax


def relax_cell(atoms: Atoms, calc, fmax: float = 1e-3, steps: int = 1000, optimizer: str = "BFGS",
               hydrostatic: bool = False) -> tuple[Atoms, bool, int]:
    """Relax the cell (shape and volume, or volume only when `hydrostatic`) and the
    atomic positions of a copy of `atoms` to zero stress and forces, with ASE's
    FrechetCellFilter: converged when every force is below `fmax` (eV/A) and every
    stress component below `fmax` * N / V (eV/A^3, the filter's scale).

    Returns (the relaxed copy with `calc` attached, converged, optimizer steps); 0 steps
    when the structure was already relaxed. Check it with `runaway_reason`."""
    _check_settings(fmax, steps)
    opt_cls = _optimizer(optimizer)
    work = _with_calc(atoms, calc)
    if _cell_converged(work, fmax):
        return work, True, 0
    filt = _CellFilter(work, hydrostatic_strain=bool(hydrostatic))
    opt = opt_cls(filt, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=int(steps)))
    return work, converged, int(opt.nsteps)


def runaway_reason(atoms: Atoms, reference_energy_per_atom: float | None = None, *,
                   min_distance: float = MIN_DISTANCE, max_drop: float = MAX_ENERGY_DROP) -> str | None:
    """Why `atoms` (with a calculator attached, or a stored energy) looks like the end of
    a runaway relaxation, or None when it does not.

    Runaway: two atoms (periodic images included) closer than `min_distance` (A); an
    energy that is not finite; or an energy per atom more than `max_drop` (eV/atom) below
    `reference_energy_per_atom` (the energy per atom before relaxing), when given."""
    if len(atoms):
        d = neighbor_list("d", atoms, float(min_distance))
        if len(d):
            return (f"atoms {float(d.min()):.3f} A apart (below {min_distance} A): "
                    "the structure collapsed")
    if atoms.calc is None:
        return None
    try:
        e = float(atoms.get_potential_energy()) / max(len(atoms), 1)
    except Exception as exc:  # noqa: BLE001 - a potential that cannot evaluate has failed
        return f"the potential could not evaluate the structure: {type(exc).__name__}: {exc}"
    if not np.isfinite(e):
        return f"the energy is {e} eV/atom"
    if reference_energy_per_atom is not None and e < reference_energy_per_atom - max_drop:
        return (f"the energy fell from {reference_energy_per_atom:.3f} to {e:.3f} eV/atom "
                f"(more than {max_drop} eV/atom): the relaxation ran away")
    return None
