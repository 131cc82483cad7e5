"""Elastic constants from stress-strain finite differences.

Conventions. Voigt order xx, yy, zz, yz, xz, xy (ASE's). A Voigt strain vector e is
applied as the symmetric small-strain tensor eps with eps_ii = e_i and *engineering*
shear strains: eps_yz = eps_zy = e_4 / 2 (likewise xz, xy), so that sigma_4 = C44 e_4.
The cell becomes cell @ (1 + eps) (rows are the lattice vectors), atoms scaled with it.
A positive strain stretches. ASE's stress is (1/V) dE/d eps, positive under tension,
so C_ij = d sigma_i / d e_j directly; each column comes from the central difference of
the stresses at +strain and -strain (error O(strain^2)).

Moduli are Voigt-Reuss-Hill averages: B_V = (C11+C22+C33 + 2(C12+C13+C23))/9,
G_V = (C11+C22+C33 - (C12+C13+C23) + 3(C44+C55+C66))/15, B_R and G_R the same from the
compliances S = C^-1 (B_R = 1/(S11+S22+S33 + 2(S12+S13+S23)),
G_R = 15/(4(S11+S22+S33) - 4(S12+S13+S23) + 3(S44+S55+S66))), B and G their means,
E = 9BG/(3B+G), nu = (3B-2G)/(2(3B+G)). For cubic symmetry B = (C11+2C12)/3.
"""

from __future__ import annotations

import time

import numpy as np
from ase import Atoms

from optbench.properties.base import (
    EV_PER_A3_TO_GPA,
    OK,
    UNSTABLE,
    PropertyError,
    PropertyResult,
)
from optbench.properties.eos import equilibrium_structure, structure_label
from optbench.properties.relax import UnstableStructure, relax_positions, runaway_reason

__all__ = [
    "CUBIC_ABS_TOL",
    "CUBIC_REL_TOL",
    "cubic_pattern_deviation",
    "elastic_constants",
    "voigt_strain_matrix",
    "vrh_moduli",
]

VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")
_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
# A matrix is cubic when every entry is within max(ABS, REL * max|C|) of the cubic
# pattern: the finite differences and the fmax-converged internal relaxations leave
# noise of order 0.1 GPa, while real tetragonality (L1_0) is several GPa.
CUBIC_ABS_TOL = 0.5
CUBIC_REL_TOL = 2e-3


def voigt_strain_matrix(e) -> np.ndarray:
    """The symmetric 3x3 small-strain tensor of a Voigt strain vector e (xx, yy, zz, yz,
    xz, xy) with engineering shears: eps_yz = e[3] / 2, eps_xz = e[4] / 2, eps_xy = e[5] / 2."""
    e = np.asarray(e, float)
    eps = np.diag(e[:3]).astype(float)
    for k, (i, j) in enumerate(_PAIRS[3:], start=3):
        eps[i, j] = eps[j, i] = e[k] / 2.0
    return eps


def cubic_pattern_deviation(c: np.ndarray) -> tuple[float, dict[str, float]]:
    """How far a 6x6 matrix (GPa) is from the cubic pattern (C11=C22=C33, C12=C13=C23,
    C44=C55=C66, every other entry 0): (the largest deviation of any entry from that
    pattern in GPa, {"C11", "C12", "C44": the averages over the equivalent entries})."""
    c = np.asarray(c, float)
    c11 = float(np.mean(np.diag(c)[:3]))
    c12 = float(np.mean([c[0, 1], c[0, 2], c[1, 2]]))
    c44 = float(np.mean(np.diag(c)[3:]))
    ideal = np.zeros((6, 6))
    ideal[:3, :3] = c12
    ideal[np.arange(3), np.arange(3)] = c11
    ideal[np.arange(3, 6), np.arange(3, 6)] = c44
    return float(np.abs(c - ideal).max()), {"C11": c11, "C12": c12, "C44": c44}


def vrh_moduli(c: np.ndarray) -> dict[str, float]:
    """Voigt, Reuss and Hill bulk and shear moduli (module docstring) of a 6x6 stiffness
    matrix, in its units: B_V, B_R, G_V, G_R, B, G, and E (Young) and nu (Poisson, from
    the Hill B and G). The Reuss bounds are NaN when C is singular."""
    c = np.asarray(c, float)
    bv = (np.trace(c[:3, :3]) + 2 * (c[0, 1] + c[0, 2] + c[1, 2])) / 9.0
    gv = (np.trace(c[:3, :3]) - (c[0, 1] + c[0, 2] + c[1, 2]) + 3 * np.trace(c[3:, 3:])) / 15.0
    try:
        s = np.linalg.inv(c)
        br = 1.0 / (np.trace(s[:3, :3]) + 2 * (s[0, 1] + s[0, 2] + s[1, 2]))
        gr = 15.0 / (4 * np.trace(s[:3, :3]) - 4 * (s[0, 1] + s[0, 2] + s[1, 2]) + 3 * np.trace(s[3:, 3:]))
    except np.linalg.LinAlgError:
        br = gr = float("nan")
    b, g = (bv + br) / 2.0, (gv + gr) / 2.0
    return {"B_V": float(bv), "B_R": float(br), "G_V": float(gv), "G_R": float(gr), "B": float(b),
            "G": float(g), "E": float(9 * b * g / (3 * b + g)), "nu": float((3 * b - 2 * g) / (2 * (3 * b + g)))}


def _check(strain, fmax) -> None:
    if not (isinstance(strain, (int, float, np.floating)) and np.isfinite(strain) and 0 < strain <= 0.05):
        raise PropertyError(f"elastic: strain (the Voigt strain amplitude) must be in (0, 0.05], got {strain!r}")
    if not (isinstance(fmax, (int, float, np.floating)) and np.isfinite(fmax) and fmax > 0):
        raise PropertyError(f"elastic: fmax must be positive (eV/A), got {fmax!r}")


def elastic_constants(calc, atoms: Atoms, *, strain: float = 0.005, relax_internal: bool = True,
                      fmax: float = 1e-4, equilibrate: bool = True,
                      eos_settings: dict | None = None) -> PropertyResult:
    """The 6x6 elastic stiffness matrix of `atoms` under `calc`, in GPa, by central
    differences of the stress over Voigt strains +-`strain` (engineering shears; module
    docstring), from the equilibrium structure (`equilibrate`: eos.equilibrium_structure
    with `eos_settings`, else `atoms` as given). With `relax_internal` the positions are
    relaxed at fixed cell (forces below `fmax` eV/A) in the reference and every strained
    cell; a perfect Bravais lattice needs no steps.

    values (GPa, nu dimensionless): cubic symmetry (the matrix within
    max(CUBIC_ABS_TOL, CUBIC_REL_TOL * max|C|) of the cubic pattern): C11, C12, C44
    averaged over equivalent entries; otherwise all 21 Cij with i <= j. Always B, G
    (Hill), E (Young's) and nu (Poisson's) from B and G. data: C (symmetrised 6x6, GPa),
    asymmetry (max |Cij - Cji| before symmetrising, GPa), symmetry ("cubic" or "lower"),
    cubic_deviation (GPa), strains (the 12 Voigt strain vectors), stresses (the 12 Voigt
    stresses, GPa), residual_stress (the unstrained cell's, Voigt, GPa), eigenvalues
    (of C, GPa), the Voigt/Reuss bounds, relax_steps, the equilibrium cell (A) and
    settings. Status UNSTABLE when equilibration or a relaxation runs away, or C is not
    positive definite (the crystal is mechanically unstable under the potential)."""
    _check(strain, fmax)
    label = structure_label(atoms)
    if len(atoms) == 0:
        raise PropertyError(f"elastic of {label}: the structure has no atoms")
    t0 = time.perf_counter()
    units: dict[str, str] = {}
    data = {"strain": float(strain), "relax_internal": bool(relax_internal), "fmax": float(fmax),
            "equilibrate": bool(equilibrate), "voigt_order": list(VOIGT),
            "strain_convention": "engineering shear: eps_yz = e_yz / 2; cell -> cell @ (1 + eps); "
                                 "positive = tension; C_ij = d sigma_i / d e_j by central differences"}

    def unstable(msg):
        data["wall_s"] = time.perf_counter() - t0
        return PropertyResult("elastic", label, {}, units, data, UNSTABLE, f"elastic of {label}: {msg}")

    if equilibrate:
        try:
            ref = equilibrium_structure(calc, atoms, fmax=fmax, **(eos_settings or {}))
        except UnstableStructure as exc:
            return unstable(f"no equilibrium structure: {exc}")
        data["equilibrium"] = ref.info.get("equilibrium", {})
    else:
        ref = atoms.copy()
    n = len(ref)
    ref.calc = calc
    steps_taken = []
    if relax_internal:
        e_before = float(ref.get_potential_energy()) / n
        ref, _, nsteps = relax_positions(ref, calc, fmax=fmax)
        steps_taken.append(nsteps)
        reason = runaway_reason(ref, e_before)
        if reason:
            return unstable(f"the unstrained structure: {reason}")
    data["cell"] = ref.cell[:].tolist()
    data["residual_stress"] = list(ref.get_stress() * EV_PER_A3_TO_GPA)
    e_ref = float(ref.get_potential_energy()) / n

    strains, stresses = [], []
    c = np.zeros((6, 6))
    for j in range(6):
        pair = []
        for sign in (1.0, -1.0):
            e = np.zeros(6)
            e[j] = sign * strain
            work = ref.copy()
            work.set_cell(ref.cell[:] @ (np.eye(3) + voigt_strain_matrix(e)), scale_atoms=True)
            work.calc = calc
            if relax_internal:
                work, _, nsteps = relax_positions(work, calc, fmax=fmax)
                steps_taken.append(nsteps)
            reason = runaway_reason(work, e_ref)
            if reason:
                return unstable(f"strain {VOIGT[j]} {sign * strain:+g}: {reason}")
            sigma = work.get_stress() * EV_PER_A3_TO_GPA
            strains.append(e.tolist())
            stresses.append(sigma.tolist())
            pair.append(sigma)
        c[:, j] = (pair[0] - pair[1]) / (2.0 * strain)
    data.update(strains=strains, stresses=stresses, relax_steps=steps_taken,
                asymmetry=float(np.abs(c - c.T).max()))
    c = (c + c.T) / 2.0
    deviation, cubic = cubic_pattern_deviation(c)
    is_cubic = deviation <= max(CUBIC_ABS_TOL, CUBIC_REL_TOL * np.abs(c).max())
    data.update(C=c.tolist(), symmetry="cubic" if is_cubic else "lower", cubic_deviation=deviation)

    values: dict[str, float] = {}
    if is_cubic:
        values.update(cubic)
    else:
        values.update({f"C{i + 1}{j + 1}": float(c[i, j]) for i in range(6) for j in range(i, 6)})
    moduli = vrh_moduli(c)
    values.update({k: moduli[k] for k in ("B", "G", "E", "nu")})
    data.update({k: moduli[k] for k in ("B_V", "B_R", "G_V", "G_R")})
    units.update({k: "GPa" for k in values})
    units["nu"] = ""
    eig = np.linalg.eigvalsh(c)
    data["eigenvalues"] = eig.tolist()
    data["wall_s"] = time.perf_counter() - t0
    if eig.min() <= 0:
        return PropertyResult("elastic", label, values, units, data, UNSTABLE,
                              f"elastic of {label}: C is not positive definite (smallest eigenvalue "
                              f"{eig.min():.3g} GPa): the crystal is mechanically unstable under this potential")
    return PropertyResult("elastic", label, values, units, data, OK, "")
