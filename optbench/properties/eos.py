"""Equation of state: energy against volume under isotropic scaling, the equilibrium
lattice constant, volume, energy and bulk modulus, and the equilibrium structure the
other properties start from.

Sampling convention: `strain` is a *volumetric* strain. The cell is scaled isotropically
(shape kept) to the volumes ``V_c * (1 + x)`` for `n_points` values of x evenly spaced in
[-strain, +strain], where V_c is the input volume (the linear strain is about strain/3,
+-1.7 % for the default 0.05). When the lowest sampled energy lies at either end of
the range the scan is recentred, on the fitted minimum (or on that end point when the
fit is unusable), and redone, up to four times within 0.5-2 x the input volume; a
minimum still outside the range, a failed fit or a runaway relaxation gives status
``UNSTABLE``.
"""

from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms
from ase.eos import EquationOfState

from optbench.properties.base import (
    EV_PER_A3_TO_GPA,
    OK,
    UNSTABLE,
    PropertyError,
    PropertyResult,
    structure_label,
)
from optbench.properties.relax import (
    UnstableStructure,
    max_force,
    relax_cell,
    relax_positions,
    runaway_reason,
)

__all__ = ["EOS_FORMS", "equation_of_state", "equilibrium_structure", "structure_label"]

# ase.eos forms; those whose fit parameters are (E0, B0, B0', V0) give B' directly
EOS_FORMS = ("birchmurnaghan", "birch", "murnaghan", "vinet", "pouriertarantola", "anton-schmidt",
             "taylor", "sj", "p3")
_HAS_BP = {"birchmurnaghan", "birch", "murnaghan", "vinet", "pouriertarantola", "anton-schmidt"}
_N_CURVE = 50


def _check(strain, n_points, eos, fmax) -> None:
    if not (isinstance(strain, (int, float, np.floating)) and np.isfinite(strain) and 0 < strain < 0.5):
        raise PropertyError(f"eos: strain (the volumetric strain of the scan) must be in (0, 0.5), got {strain!r}")
    if isinstance(n_points, bool) or int(n_points) != n_points or n_points < 5:
        raise PropertyError(f"eos: n_points must be an integer >= 5 (a 4-parameter fit needs more points "
                            f"than parameters), got {n_points!r}")
    if eos not in EOS_FORMS:
        raise PropertyError(f"eos: eos {eos!r} is not one of {', '.join(EOS_FORMS)}")
    if not (np.isfinite(fmax) and fmax > 0):
        raise PropertyError(f"eos: fmax must be positive (eV/A), got {fmax!r}")


def _scan(calc, atoms: Atoms, factors, relax_internal: bool, fmax: float):
    """Energies per atom at the cell volumes V_in * factors: (volumes per atom, energies
    per atom, None) or (.., .., the runaway reason)."""
    n = len(atoms)
    vols, ens = [], []
    for f in factors:
        work = atoms.copy()
        work.set_cell(atoms.cell[:] * f ** (1.0 / 3.0), scale_atoms=True)
        work.calc = calc
        e_before = float(work.get_potential_energy()) / n
        if relax_internal:
            work, _, _ = relax_positions(work, calc, fmax=fmax)
        reason = runaway_reason(work, e_before)
        if reason:
            return vols, ens, f"at V = {work.get_volume() / n:.3f} A^3/atom: {reason}"
        vols.append(work.get_volume() / n)
        ens.append(float(work.get_potential_energy()) / n)
    return np.array(vols), np.array(ens), None


def _fit(vols, ens, form: str):
    """(fitted EquationOfState, v0, e0, B in eV/A^3) or (None, reason)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's OptimizeWarning, ase's "minimum outside"
            fit = EquationOfState(vols, ens, eos=form)
            v0, e0, b = (float(x) for x in fit.fit(warn=False))
    except (RuntimeError, ValueError, TypeError, np.linalg.LinAlgError) as exc:
        return None, f"the {form} fit failed: {exc}"
    if not (np.isfinite([v0, e0, b]).all() and v0 > 0 and b > 0):
        return None, f"the {form} fit gave no minimum (V0 = {v0:.4g} A^3/atom, B = {b:.4g} eV/A^3)"
    return (fit, v0, e0, b), None


_SCANS = 5  # the first scan and up to 4 recentred ones
_VOLUME_RANGE = (0.5, 2.0)  # recentred scans stay within these multiples of the input volume


def _curve(fit: EquationOfState, v: np.ndarray) -> np.ndarray:
    if fit.eos_string == "sj":
        return fit.fit0(v ** (-1.0 / 3.0))
    return fit.func(v, *fit.eos_parameters)


def _is_cubic_cell(cell) -> bool:
    lengths, angles = cell.cellpar()[:3], cell.cellpar()[3:]
    return bool(np.allclose(lengths, lengths[0], rtol=1e-6) and np.allclose(angles, 90.0, atol=1e-6))


def equation_of_state(calc, atoms: Atoms, *, strain: float = 0.05, n_points: int = 9,
                      eos: str = "birchmurnaghan", relax_internal: bool = False,
                      fmax: float = 1e-3) -> PropertyResult:
    """The equation of state of `atoms` with calculator `calc`: energies at `n_points`
    isotropically scaled volumes spanning a volumetric strain of +-`strain` (module
    docstring), fitted with ``ase.eos.EquationOfState`` (`eos`: a form of EOS_FORMS);
    with `relax_internal` the positions are relaxed at each volume (forces below `fmax`
    eV/A).

    values: a (A: the conventional cubic lattice constant, the input cell length scaled
    by (V0/V_in)^(1/3); for a non-cubic cell the length of the first cell vector so
    scaled, see data["a_definition"]), V0 (A^3/atom), E0 (eV/atom), B (GPa), Bp (B',
    dimensionless, for the forms with B' as a parameter). data: volumes (A^3/atom),
    energies (eV/atom), fit_volumes / fit_energies (the fitted curve on 50 points),
    scale (the linear factor taking the input cell to V0), recentred, settings. Status
    UNSTABLE with a message when the fit fails, the minimum lies outside the sampled
    range after four recentrings, or a relaxation runs away."""
    _check(strain, n_points, eos, fmax)
    label = structure_label(atoms)
    n = len(atoms)
    if n == 0:
        raise PropertyError(f"eos of {label}: the structure has no atoms")
    v_in = atoms.get_volume() / n
    cubic = _is_cubic_cell(atoms.cell)
    data = {"eos": eos, "strain": float(strain), "strain_kind": "volumetric", "n_points": int(n_points),
            "relax_internal": bool(relax_internal), "input_volume": v_in, "recentred": False,
            "a_definition": ("conventional cubic lattice constant" if cubic else
                             "length of the first cell vector scaled isotropically to V0 (non-cubic cell)")}
    units = {"a": "A", "V0": "A^3/atom", "E0": "eV/atom", "B": "GPa", "Bp": ""}
    offsets = np.linspace(-strain, strain, int(n_points))

    def unstable(msg, values=None):
        return PropertyResult("eos", label, values or {}, units, data, UNSTABLE, f"eos of {label}: {msg}")

    centre = 1.0
    for attempt in range(_SCANS):
        vols, ens, reason = _scan(calc, atoms, centre * (1.0 + offsets), relax_internal, fmax)
        data["volumes"], data["energies"] = list(vols), list(ens)
        if reason:
            return unstable(reason)
        fitted, why = _fit(vols, ens, eos)
        i_min = int(np.argmin(ens))
        at_edge = i_min in (0, len(ens) - 1)
        if not at_edge:
            break
        if attempt == _SCANS - 1:
            return unstable(f"the energy minimum lies outside the sampled volumes {vols[0]:.3f}-{vols[-1]:.3f} "
                            f"A^3/atom even after {_SCANS - 1} recentrings (no minimum within "
                            f"{_VOLUME_RANGE[0]:g}-{_VOLUME_RANGE[1]:g} x the input volume)")
        # a potential far from the reference: centre on the fitted minimum when the fit
        # is plausible, else on the lowest sampled point, and scan once more
        v_next = vols[i_min]
        if fitted is not None and 0.5 * vols[0] < fitted[1] < 2.0 * vols[-1]:
            v_next = fitted[1]
        # a poorly fitted potential may sit 5-10 % away in lattice constant: walk towards
        # its minimum, but not beyond volumes no crystal of these elements has
        centre = float(np.clip(v_next / v_in, *_VOLUME_RANGE))
        data["recentred"] = True
    if fitted is None:
        return unstable(why)
    fit, v0, e0, b = fitted
    scale = (v0 / v_in) ** (1.0 / 3.0)
    values = {"a": float(atoms.cell.lengths()[0] * scale), "V0": v0, "E0": e0, "B": b * EV_PER_A3_TO_GPA}
    if eos in _HAS_BP:
        values["Bp"] = float(fit.eos_parameters[2])
    else:
        units.pop("Bp")
    curve_v = np.linspace(vols.min(), vols.max(), _N_CURVE)
    data.update(fit_volumes=list(curve_v), fit_energies=list(_curve(fit, curve_v)), scale=scale)
    if not vols.min() <= v0 <= vols.max():
        return unstable(f"the fitted V0 = {v0:.3f} A^3/atom lies outside the sampled volumes", values)
    return PropertyResult("eos", label, values, units, data, OK, "")


def equilibrium_structure(calc, atoms: Atoms, *, fmax: float = 1e-4, steps: int = 1000,
                          **eos_settings) -> Atoms:
    """The zero-stress, zero-force structure of `atoms` under `calc` (a copy, with
    ``info`` kept and ``info['equilibrium']`` saying how it was made, no calculator).

    The cell is first scaled isotropically to the EOS volume V0 (`eos_settings` go to
    `equation_of_state`). That is the answer when the stress there is hydrostatic and the
    forces vanish (below `fmax` eV/A; cubic crystals by symmetry). Otherwise (e.g. L1_0,
    whose c/a differs from 1, or free internal coordinates) the cell shape, volume and
    positions are then relaxed together with `relax_cell` to forces below `fmax` and
    stresses below fmax * N / V eV/A^3. Raises UnstableStructure when the EOS is
    unstable or the relaxation runs away or does not converge in `steps`."""
    eos_settings.setdefault("fmax", min(1e-3, fmax))
    res = equation_of_state(calc, atoms, **eos_settings)
    if res.status != OK:
        raise UnstableStructure(res.message)
    work = atoms.copy()
    work.set_cell(atoms.cell[:] * res.data["scale"], scale_atoms=True)
    work.calc = calc
    n = len(work)
    stress = work.get_stress(voigt=False)
    deviatoric = stress - np.trace(stress) / 3.0 * np.eye(3)
    # the scale on which relax_cell judges stress convergence, so both tests agree
    stress_tol = fmax * n / work.get_volume()
    method = "eos-scaled"
    if np.abs(deviatoric).max() > stress_tol or max_force(work) > fmax:
        e_before = float(work.get_potential_energy()) / n
        work, converged, nsteps = relax_cell(work, calc, fmax=fmax, steps=steps)
        reason = runaway_reason(work, e_before)
        if reason:
            raise UnstableStructure(f"equilibrium of {structure_label(atoms)}: cell relaxation: {reason}")
        if not converged:
            raise UnstableStructure(f"equilibrium of {structure_label(atoms)}: the cell relaxation did not "
                                    f"converge to fmax {fmax} eV/A in {steps} steps")
        method = f"cell-relaxed ({nsteps} steps)"
    out = work.copy()  # without the calculator
    out.info = dict(atoms.info)
    out.info["equilibrium"] = {"method": method, "a_eos": res.values["a"], "V0_eos": res.values["V0"],
                               "B_eos": res.values["B"]}
    return out
