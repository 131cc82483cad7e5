"""Defect energies: vacancy formation, surface energies, the bcc {110}<111> stacking-fault line.

Every function takes an ASE calculator and the equilibrium structure in its conventional
cubic cell (structures.build_structure, brought to the calculator's equilibrium by the
caller) and never modifies it. Relaxations are at fixed cell, by L-BFGS to `fmax` eV/A
(BFGS takes the same steps but diagonalises a dense 3N x 3N matrix at each, which on a
busy machine costs more than the calculator). A relaxation that does not converge in
`max_steps`, or that runs away (atoms closer than MIN_DISTANCE, or an energy drop beyond
MAX_ENERGY_DROP per atom), gives a result with status UNSTABLE and the reason.

vacancy   E_vac = E(N-1, relaxed) - (N-1)/N E(N), the bulk supercell of N atoms (a
          repeat of the conventional cell) at the input lattice constant.
surface   gamma = (E_slab - N e_bulk) / (2 A): a slab of the conventional cell cut along
          the Miller plane (ase.build.surface, so the slab keeps the bulk's in-plane
          periodicity), vacuum on both sides, both surfaces relaxed; e_bulk the bulk's
          energy per atom, A the in-plane cell area.
gsfe      the generalized stacking-fault energy along b = a/2 [1-11] on (110) of a bcc
          metal, from a fully periodic cell (no surfaces): x along [1-11] (one period, b),
          y along [1-1-2] (a sqrt 6), z along [110] (`layers` (110) planes of spacing
          a/sqrt 2). Tilting the third cell vector by f b puts one fault of shift f b per
          period in z; atoms relax along z only (FixedLine), so the shift is kept, and
          with `relax_cell` the cell length along z too (the fault's dilatation, which a
          fixed length would turn into a 1/layers compression of the crystal: with it
          gamma is independent of `layers`, as in a slab with free surfaces).
          gamma(f) = (E(f) - E(0)) / A. gamma(0) = gamma(1) exactly (a full b is a lattice
          vector: the tilted cell describes the perfect crystal), and gamma(f) = gamma(1-f)
          because the two-fold axis [110] through an atom is a symmetry of the crystal that
          maps a shift f b to -f b, equivalent to (1-f) b.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from ase.build import surface
from ase.constraints import FixedLine
from ase.optimize import LBFGS

from optbench.properties.base import (
    EV_PER_A2_TO_J_PER_M2,
    OK,
    UNSTABLE,
    PropertyError,
    PropertyResult,
    structure_label,
)
from optbench.properties.relax import MAX_ENERGY_DROP, MIN_DISTANCE, runaway_reason
from optbench.properties.structures import parse_structure_name

# The GSFE cell relaxes one strain (zz) by a small amount: the linear parametrisation of
# UnitCellFilter is enough there, and FrechetCellFilter's matrix exponentials would cost
# more than the calculator.
try:  # ase >= 3.23
    from ase.filters import UnitCellFilter as _CellFilter
except ImportError:  # pragma: no cover - older ase
    from ase.constraints import UnitCellFilter as _CellFilter

__all__ = ["MAX_ENERGY_DROP", "MIN_DISTANCE", "MIN_SLAB_THICKNESS", "gsfe_cell", "stacking_fault_bcc",
           "surface_energies", "surface_energy", "vacancy_formation"]

# Default slab thickness (A): twice the cut-off of typical potentials, so that the two
# surfaces do not see each other.
MIN_SLAB_THICKNESS = 12.0


# ---------------------------------------------------------------- shared helpers

def _check_bulk(prop: str, atoms, *, cubic: bool = False) -> Atoms:
    """A calculator-free copy of `atoms`, checked to be a periodic crystal (cubic cell if asked)."""
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise PropertyError(f"{prop}: expected a non-empty ase.Atoms, got {type(atoms).__name__}")
    if not all(atoms.pbc) or atoms.cell.volume <= 1e-6:
        raise PropertyError(f"{prop} of {structure_label(atoms)}: the structure must be periodic in 3D with a cell")
    if cubic:
        cell = atoms.cell.array
        a = cell[0, 0]
        if not np.allclose(cell, np.eye(3) * a, atol=1e-6 * abs(a)):
            raise PropertyError(f"{prop} of {structure_label(atoms)}: expected the conventional cubic cell "
                                f"(structures.build_structure), got cell lengths {atoms.cell.cellpar()[:3].round(4)} "
                                f"and angles {atoms.cell.cellpar()[3:].round(2)}")
    work = atoms.copy()
    work.calc = None
    work.set_constraint()
    return work


def _number(prop: str, name: str, value, *, low: float = 0.0, integer: bool = False, minimum=None):
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if ok:
        ok = math.isfinite(float(value)) and (value >= minimum if minimum is not None else value > low)
    if not ok:
        bound = f">= {minimum}" if minimum is not None else f"> {low}"
        raise PropertyError(f"{prop}: {name} must be {'an integer' if integer else 'a number'} {bound}, got {value!r}")
    return int(value) if integer else float(value)


def _energy(calc, atoms: Atoms) -> float:
    atoms.calc = calc
    return float(atoms.get_potential_energy())


def _relax(calc, atoms: Atoms, fmax: float, max_steps: int, cell_mask=None) -> dict:
    """Relax `atoms` in place (at fixed cell, or the Voigt strains `cell_mask` too); its
    energies, steps and whether it converged or ran away."""
    e0 = _energy(calc, atoms)
    opt = LBFGS(atoms if cell_mask is None else _CellFilter(atoms, mask=cell_mask), logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=max_steps))
    e1 = float(atoms.get_potential_energy())
    why = runaway_reason(atoms, e0 / len(atoms))  # collapsed atoms, a non-finite or runaway energy
    if why is None and not converged:
        forces = atoms.get_forces()
        why = f"the relaxation did not reach fmax {fmax} eV/A in {max_steps} steps (max force " \
              f"{np.linalg.norm(forces, axis=1).max():.3g} eV/A)"
    return {"E_unrelaxed": e0, "E": e1, "steps": int(opt.nsteps), "converged": converged, "why": why}


# ---------------------------------------------------------------- vacancy

def vacancy_formation(calc, atoms: Atoms, *, supercell=(3, 3, 3), relax: bool = True, fmax: float = 0.01,
                      max_steps: int = 500) -> PropertyResult:
    """Vacancy formation energy (eV) of a one-element crystal: one atom removed from the
    `supercell` repeat of the conventional cell (3x3x3: 108 atoms fcc, 54 bcc), the
    others relaxed at fixed cell when `relax` (to `fmax` eV/A). values: E_vac (eV); data:
    N, supercell, E_bulk, E_defect_unrelaxed, E_defect (eV), E_vac_unrelaxed (eV),
    steps, converged."""
    prop = "vacancy"
    work = _check_bulk(prop, atoms)
    label = structure_label(atoms)
    if len(set(work.get_chemical_symbols())) != 1:
        raise PropertyError(f"{prop} of {label}: one-element structures only (an alloy's vacancy needs "
                            "chemical potentials)")
    try:
        reps = tuple(_number(prop, "supercell", r, integer=True, minimum=1) for r in supercell)
    except TypeError:
        raise PropertyError(f"{prop}: supercell must be three positive integers, got {supercell!r}") from None
    if len(reps) != 3:
        raise PropertyError(f"{prop}: supercell must be three positive integers, got {supercell!r}")
    fmax = _number(prop, "fmax", fmax)
    max_steps = _number(prop, "max_steps", max_steps, integer=True, minimum=1)
    bulk = work.repeat(reps)
    n = len(bulk)
    if n < 8:
        raise PropertyError(f"{prop} of {label}: supercell {reps} holds {n} atoms; a vacancy needs at least 8")
    e_bulk = _energy(calc, bulk)
    defect = bulk.copy()
    del defect[0]
    if relax:
        r = _relax(calc, defect, fmax, max_steps)
    else:
        e = _energy(calc, defect)
        r = {"E_unrelaxed": e, "E": e, "steps": 0, "converged": True, "why": None}
    ref = (n - 1) / n * e_bulk
    values = {"E_vac": r["E"] - ref}
    data = {"N": n, "supercell": list(reps), "relaxed": bool(relax), "E_bulk": e_bulk,
            "E_defect_unrelaxed": r["E_unrelaxed"], "E_defect": r["E"], "E_vac_unrelaxed": r["E_unrelaxed"] - ref,
            "steps": r["steps"], "converged": r["converged"], "fmax": fmax}
    if r["why"]:
        return PropertyResult(prop, label, values, {"E_vac": "eV"}, data, UNSTABLE, f"{prop} of {label}: {r['why']}")
    return PropertyResult(prop, label, values, {"E_vac": "eV"}, data, OK, "")


# ---------------------------------------------------------------- surfaces

def _miller(prop: str, miller) -> tuple[int, int, int]:
    try:
        hkl = tuple(int(h) for h in miller)
        ok = len(hkl) == 3 and all(float(h) == int(h) for h in miller) and any(hkl)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise PropertyError(f"{prop}: miller must be three integers, not all zero, got {miller!r}")
    if math.gcd(*hkl) != 1:
        raise PropertyError(f"{prop}: miller {hkl} is not in lowest terms")
    return hkl


def _miller_key(hkl) -> str:
    return "gamma_" + "".join(str(h) for h in hkl)


def _planes(slab: Atoms) -> np.ndarray:
    """Heights (A) of the distinct atomic planes of a slab whose normal is z."""
    z = np.sort(slab.positions[:, 2])
    return z[np.concatenate([[True], np.diff(z) > 0.05])]


def surface_energy(calc, atoms: Atoms, *, miller=(1, 0, 0), layers: int | None = None, vacuum: float = 10.0,
                   relax: bool = True, fmax: float = 0.01, max_steps: int = 500) -> PropertyResult:
    """Surface energy (J/m^2) of the (hkl) surface `miller` (indices of the conventional
    cubic cell) of a crystal: a slab of at least `layers` atomic planes (default: the
    fewest whole periods of the oriented cell MIN_SLAB_THICKNESS A thick), `vacuum` A of
    vacuum on each side, relaxed at fixed cell when `relax`. values: {"gamma_hkl": J/m^2};
    data: miller, planes, n_atoms, thickness_A, area_A2, vacuum_A, e_bulk (eV/atom),
    E_slab and E_slab_unrelaxed (eV), gamma_eV_A2, gamma_unrelaxed (J/m^2), steps,
    converged."""
    prop = "surface"
    work = _check_bulk(prop, atoms, cubic=True)
    label = structure_label(atoms)
    hkl = _miller(prop, miller)
    vacuum = _number(prop, "vacuum", vacuum, minimum=3.0)
    fmax = _number(prop, "fmax", fmax)
    max_steps = _number(prop, "max_steps", max_steps, integer=True, minimum=1)
    if layers is not None:
        layers = _number(prop, "layers", layers, integer=True, minimum=3)
    # one period of the oriented cell: its thickness (A) and its number of atomic planes
    one = surface(work, hkl, 1, periodic=True).cell.array
    period = abs(float(one[2] @ np.cross(one[0], one[1]) / np.linalg.norm(np.cross(one[0], one[1]))))
    per_period = len(_planes(surface(work, hkl, 2))) // 2
    if layers is None:
        reps = max(1, math.ceil((MIN_SLAB_THICKNESS + 1e-6) / period))
    else:
        reps = math.ceil(layers / per_period)
    slab = surface(work, hkl, reps, vacuum=vacuum)
    slab.pbc = True  # vacuum gap 2 * vacuum: periodic for calculators that need a 3D cell
    cell = slab.cell.array
    area = float(np.linalg.norm(np.cross(cell[0], cell[1])))
    planes = _planes(slab)
    e_bulk = _energy(calc, work.copy()) / len(work)
    bulk_comp = {s: work.get_chemical_symbols().count(s) / len(work) for s in set(work.get_chemical_symbols())}
    slab_comp = {s: slab.get_chemical_symbols().count(s) / len(slab) for s in set(slab.get_chemical_symbols())}
    if any(abs(bulk_comp[s] - slab_comp.get(s, 0.0)) > 1e-9 for s in bulk_comp):
        raise PropertyError(f"{prop} of {label}: the {hkl} slab is not stoichiometric; its surface energy "
                            "needs chemical potentials")
    if relax:
        r = _relax(calc, slab, fmax, max_steps)
    else:
        e = _energy(calc, slab)
        r = {"E_unrelaxed": e, "E": e, "steps": 0, "converged": True, "why": None}
    gamma = (r["E"] - len(slab) * e_bulk) / (2 * area)
    gamma0 = (r["E_unrelaxed"] - len(slab) * e_bulk) / (2 * area)
    key = _miller_key(hkl)
    data = {"miller": list(hkl), "planes": len(planes), "n_atoms": len(slab),
            "thickness_A": float(planes.max() - planes.min()), "area_A2": area, "vacuum_A": vacuum,
            "relaxed": bool(relax), "e_bulk": e_bulk, "E_slab": r["E"], "E_slab_unrelaxed": r["E_unrelaxed"],
            "gamma_eV_A2": gamma, "gamma_unrelaxed": gamma0 * EV_PER_A2_TO_J_PER_M2, "steps": r["steps"],
            "converged": r["converged"], "fmax": fmax}
    values, units = {key: gamma * EV_PER_A2_TO_J_PER_M2}, {key: "J/m^2"}
    if r["why"]:
        return PropertyResult(prop, label, values, units, data, UNSTABLE, f"{prop} {hkl} of {label}: {r['why']}")
    return PropertyResult(prop, label, values, units, data, OK, "")


def surface_energies(calc, atoms: Atoms, *, millers=((1, 0, 0), (1, 1, 0)), layers: int | None = None,
                     vacuum: float = 10.0, relax: bool = True, fmax: float = 0.01,
                     max_steps: int = 500) -> PropertyResult:
    """Surface energies (J/m^2) of each Miller plane in `millers` (surface_energy with the
    other settings), as one result named "surface": values {"gamma_100": ..., "gamma_110":
    ...}, data {"100": that surface's data, ...}; UNSTABLE when any surface is."""
    try:
        hkls = [_miller("surface", m) for m in millers]
    except TypeError:
        raise PropertyError(f"surface: millers must be a list of Miller indices, got {millers!r}") from None
    if not hkls or len(set(hkls)) != len(hkls):
        raise PropertyError(f"surface: millers must be a non-empty list of distinct Miller indices, got {millers!r}")
    out = PropertyResult("surface", structure_label(atoms) if isinstance(atoms, Atoms) else "")
    messages = []
    for hkl in hkls:
        r = surface_energy(calc, atoms, miller=hkl, layers=layers, vacuum=vacuum, relax=relax, fmax=fmax,
                           max_steps=max_steps)
        out.values.update(r.values)
        out.units.update(r.units)
        out.data["".join(map(str, hkl))] = r.data
        if r.status != OK:
            out.status = r.status
            messages.append(r.message)
    out.message = "; ".join(messages)
    return out


# ---------------------------------------------------------------- stacking faults

def _cubic_lattice(atoms: Atoms) -> str | None:
    """"bcc" or "fcc" for the one-element conventional cubic cell of that lattice, else None."""
    if len(set(atoms.get_chemical_symbols())) != 1 or len(atoms) not in (2, 4):
        return None
    frac = atoms.get_scaled_positions(wrap=True)
    rel = (frac - frac[0] + 1e-6) % 1.0 - 1e-6
    sites = sorted(tuple(np.round(r * 2) / 2) for r in rel)
    if not np.allclose(rel, np.round(rel * 2) / 2, atol=1e-4):
        return None
    if len(atoms) == 2 and sites == [(0.0, 0.0, 0.0), (0.5, 0.5, 0.5)]:
        return "bcc"
    if len(atoms) == 4 and sites == [(0.0, 0.0, 0.0), (0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0)]:
        return "fcc"
    return None


def gsfe_cell(symbol: str, a: float, layers: int) -> Atoms:
    """The perfect bcc crystal of lattice constant `a` (A) in the orthogonal cell x = b =
    a/2 [1-11], y = a [1-1-2], z = `layers`/2 a [110] (3 atoms per (110) plane; `layers`
    even, so that z is a lattice vector)."""
    rot = np.array([[1, -1, 1], [1, -1, -2], [1, 1, 0]], float)
    rot /= np.linalg.norm(rot, axis=1)[:, None]
    lengths = np.array([a * math.sqrt(3) / 2, a * math.sqrt(6), layers * a / math.sqrt(2)])
    m = math.ceil(np.linalg.norm(lengths) / a) + 1
    ijk = np.stack(np.meshgrid(*[np.arange(-m, m + 1)] * 3, indexing="ij"), -1).reshape(-1, 3).astype(float)
    points = np.concatenate([ijk, ijk + 0.5]) * a @ rot.T
    frac = points / lengths
    inside = np.all((frac > -1e-8) & (frac < 1 - 1e-8), axis=1)
    pos = points[inside]
    pos = pos[np.lexsort((pos[:, 1], pos[:, 0], np.round(pos[:, 2], 6)))]
    if len(pos) != 3 * layers:
        raise RuntimeError(f"gsfe cell: found {len(pos)} sites, expected {3 * layers}")
    return Atoms([symbol] * len(pos), positions=pos, cell=np.diag(lengths), pbc=True)


def stacking_fault_bcc(calc, atoms: Atoms, *, n_points: int = 11, layers: int = 12, relax: bool = True,
                       relax_cell: bool = True, fmax: float = 0.01, max_steps: int = 500) -> PropertyResult:
    """Generalized stacking-fault energy (J/m^2) of a bcc metal along b = a/2 [1-11] on
    (110), from a periodic cell of `layers` (110) planes with one fault (module
    docstring), at `n_points` shifts f b, f evenly spaced in [0, 1], atoms relaxed along
    the fault normal when `relax` (and the cell length along it when `relax_cell`).
    values: usf (J/m^2, the largest sampled gamma) and usf_position (its f, in units of
    b); data: fractions, energies (J/m^2), energies_unrelaxed, asymmetry (max |gamma(f) -
    gamma(1-f)|, J/m^2), dilatation_A (change of the cell length along z), a, b, area_A2,
    layers, n_atoms, steps, converged. An fcc crystal raises PropertyError: its
    {111}<112> line is not implemented."""
    prop = "gsfe"
    work = _check_bulk(prop, atoms, cubic=True)
    label = structure_label(atoms)
    kind = _cubic_lattice(work)
    proto = None
    if atoms.info.get("structure"):
        try:
            proto = parse_structure_name(atoms.info["structure"])[1]
        except PropertyError:
            proto = None
    if kind == "fcc" or (kind is None and proto == "fcc"):
        raise PropertyError(f"{prop} of {label}: the GSFE here is the bcc {{110}}<111> line; the fcc "
                            "{111}<112> line is not implemented")
    if kind != "bcc":
        raise PropertyError(f"{prop} of {label}: expected the 2-atom conventional cell of a one-element bcc metal")
    n_points = _number(prop, "n_points", n_points, integer=True, minimum=3)
    layers = _number(prop, "layers", layers, integer=True, minimum=4)
    if layers % 2:
        raise PropertyError(f"{prop}: layers must be even (two (110) planes per period along [110]), got {layers}")
    fmax = _number(prop, "fmax", fmax)
    max_steps = _number(prop, "max_steps", max_steps, integer=True, minimum=1)
    a = float(work.cell[0, 0])
    base = gsfe_cell(work[0].symbol, a, layers)
    lx, ly, lz = np.diag(base.cell.array)
    area = lx * ly
    fractions = np.linspace(0.0, 1.0, n_points)
    energies, unrelaxed, steps, converged, whys, lengths_z = [], [], [], [], [], []
    for f in fractions:
        cfg = base.copy()
        cfg.set_cell([[lx, 0, 0], [0, ly, 0], [f * lx, 0, lz]], scale_atoms=False)
        if relax:
            cfg.set_constraint(FixedLine(list(range(len(cfg))), [0, 0, 1]))
            r = _relax(calc, cfg, fmax, max_steps, [False, False, True, False, False, False] if relax_cell else None)
        else:
            e = _energy(calc, cfg)
            r = {"E_unrelaxed": e, "E": e, "steps": 0, "converged": True, "why": None}
        lengths_z.append(float(cfg.cell[2, 2]))
        energies.append(r["E"])
        unrelaxed.append(r["E_unrelaxed"])
        steps.append(r["steps"])
        converged.append(r["converged"])
        if r["why"]:
            whys.append(f"f = {f:.2f}: {r['why']}")
    e_ref = energies[0]
    gamma = (np.array(energies) - e_ref) / area * EV_PER_A2_TO_J_PER_M2
    gamma0 = (np.array(unrelaxed) - unrelaxed[0]) / area * EV_PER_A2_TO_J_PER_M2
    i_max = int(np.argmax(gamma))
    values = {"usf": float(gamma[i_max]), "usf_position": float(fractions[i_max])}
    data = {"fractions": fractions, "energies": gamma, "energies_unrelaxed": gamma0,
            "asymmetry": float(np.abs(gamma - gamma[::-1]).max()), "a": a, "b": float(lx), "area_A2": float(area),
            "layers": layers, "n_atoms": len(base), "plane": "(110)", "direction": "[1-11]/2", "relaxed": bool(relax),
            "relaxed_cell": bool(relax and relax_cell), "dilatation_A": np.array(lengths_z) - lz,
            "steps": steps, "converged": converged, "fmax": fmax}
    units = {"usf": "J/m^2", "usf_position": "b"}
    if whys:
        return PropertyResult(prop, label, values, units, data, UNSTABLE, f"{prop} of {label}: " + "; ".join(whys))
    return PropertyResult(prop, label, values, units, data, OK, "")
