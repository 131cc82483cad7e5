"""DFT reference values of bcc Mo computed from the DFT data themselves.

Data. The SNAP Nb-Mo-Ta-W set of Li, Chen, Zheng, Zuo, Ong, npj Comput. Mater. 6, 70
(2020) (``../shared/datasets/nbmotaw_snap/``; VASP, PBE, PAW Mo_pv, 520 eV cut-off): a
pymatgen-style JSON list, each record with ``structure`` (``lattice.matrix``, rows = cell
vectors in A; ``sites`` with ``xyz``/``abc``) and ``outputs`` (``energy`` in eV,
``stress`` -- ``virial_stress`` in some files -- in kBar, VASP order xx yy zz xy yz zx,
positive = compressive, i.e. minus the Cauchy stress: the cell stretched by 1 % along x
has xx = -45.9 kBar). The files are read by optbench's own reader
(optbench/io/pymatgen_json.py: the checks and unit conversions of training data).

``Mo_Elastic.json``: 121 two-atom conventional cells, tag ``Strain_new``, note
``"MODE--DELTA"`` (``"1---0.0100"`` = mode 1, delta = -0.01): one unstrained cell
(a = 3.168999 A, residual stress -0.081 GPa) and, for each of six modes, delta =
+-0.01 ... +-0.10. Modes 1-3 stretch x, y, z (F = 1 + delta e_i e_i); modes 4, 5, 6 shear
xy, yz, zx with an upper-triangular F whose Green-Lagrange engineering shear is delta.

Elastic fit. Each cell's deformation gradient F = (cell_ref^-1 cell)^T (rows are
vectors), Green-Lagrange strain E = (F^T F - 1)/2 (Voigt, engineering shears) and second
Piola-Kirchhoff stress S = J F^-1 sigma F^-T (sigma the Cauchy stress, tensile
positive): E and S are work-conjugate, so S - S_ref = C E holds to first order without
any geometric correction. C is cubic (C11, C12, C44); the linear least-squares problem
stacks the six components of S - S_ref of every cell whose nominal strain (the largest
component of sym(F) - 1, engineering shears) is at most the cut -- 1 % (the reference
and 12 cells) by default, 2 % (25 cells) as the alternative reported beside it. Cutting
on the nominal strain keeps the +-delta pairs together, which cancels the quadratic
(third-order) term in the slope; cutting on |E| would keep -2 % (E = -0.0198) but drop
+2 % (E = 0.0202) and raise C11 by 6 %. An unconstrained 6x6 fit of the same cells
measures the departure from cubic symmetry; C11 and C44 from the curvature of the
energies (a cubic polynomial in E, |delta| <= 5 %) check the stresses against the
energies (they agree to a few %: the energies of cells of different symmetry differ by
~0.1 meV of k-point noise).

Lattice constant and bulk modulus. The set has no isotropically strained cells, so
there is no E(V) curve: B = (C11 + 2 C12)/3 (Voigt = Reuss for cubic), and a is where
the fitted stress vanishes, a = a_ref sqrt(1 + 2 e0), e0 = -S_ref / (C11 + 2 C12).
G is the Hill mean of the cubic Voigt and Reuss shear moduli, nu = (3B - 2G)/(2(3B + G)).

Surface energies. ``Mo_Surface.json`` holds 11 relaxed slabs with no Miller index in the
record; it is read from the geometry: the second-neighbour bonds (length a, along the
cube axes) of the slab give the crystal's cube axes, in which the surface normal (the
cross product of the two in-plane cell vectors) is an integer direction (hkl). gamma =
(E_slab - N e_bulk) / (2 A), e_bulk the energy per atom of the unstrained elastic cell.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from optbench.properties.base import (
    EV_PER_A2_TO_J_PER_M2,
    EV_PER_A3_TO_GPA,
    PropertyError,
)

__all__ = ["LITERATURE", "dft_reference", "mo_elastic_from_data", "mo_surface_from_data"]

KBAR_PER_GPA = 10.0
DEFAULT_CUT = 0.01
ALTERNATIVE_CUT = 0.02
ENERGY_CUT = 0.05
SNAP_CITATION = "Li, Chen, Zheng, Zuo, Ong, npj Comput. Mater. 6, 70 (2020)"

# Only values whose source could be checked. The experimental room-temperature lattice
# constant ase.data.reference_states gives for Mo, which that module takes from Ashcroft
# & Mermin; the elastic constants usually quoted (ultrasonics, 1960s) and the Materials
# Project PBE values could not be checked here and are left out.
LITERATURE = {
    "Mo": {
        "a": {"value": 3.15, "unit": "A",
              "source": "experiment (room temperature): N. W. Ashcroft and N. D. Mermin, Solid State "
                        "Physics (1976), bcc elements table, as tabulated in ase.data.reference_states"},
    },
}


def _records(path) -> list[dict]:
    """The records of a SNAP JSON file through optbench's reader (io/pymatgen_json.py:
    the same parsing, checks and unit conversion as for training): cell (A, rows),
    elements, positions (A), energy (eV) and the Cauchy stress tensor (GPa, tensile
    positive) of each."""
    from optbench.io import DataError, read_pymatgen_json

    path = Path(path)
    if not path.is_file():
        raise PropertyError(f"DFT reference: data file {path} not found")
    try:
        data = read_pymatgen_json(path)
    except (DataError, OSError, ValueError) as exc:
        raise PropertyError(f"DFT reference: cannot read {path}: {exc}") from None
    out = []
    for cfg in data.configs:
        cauchy = None
        if cfg.stress is not None and cfg.cell is not None and np.all(np.isfinite(cfg.stress)):
            # PlusStress (eV, xx yy zz yz xz xy, positive when compressed) = -sigma V
            xx, yy, zz, yz, xz, xy = -np.asarray(cfg.stress, float) / abs(np.linalg.det(cfg.cell)) * EV_PER_A3_TO_GPA
            cauchy = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        out.append({"where": cfg.source, "cell": cfg.cell, "elements": [data.species[t] for t in cfg.types],
                    "positions": cfg.positions, "energy": float(cfg.energy), "cauchy": cauchy})
    return out


def _voigt(t: np.ndarray, shear: float = 1.0) -> np.ndarray:
    """xx yy zz yz zx xy of a symmetric tensor, shears times `shear` (2 for engineering strain)."""
    return np.array([t[0, 0], t[1, 1], t[2, 2], shear * t[1, 2], shear * t[0, 2], shear * t[0, 1]])


def _cubic_rows(e: np.ndarray) -> np.ndarray:
    """The 6x3 design block of one cell: stress_i = sum_k rows[i, k] (C11, C12, C44)_k."""
    rows = np.zeros((6, 3))
    for i in range(3):
        rows[i, 0] = e[i]
        rows[i, 1] = e[:3].sum() - e[i]
        rows[3 + i, 2] = e[3 + i]
    return rows


def _cubic_fit(cells: list[dict], s_ref: np.ndarray, cut: float) -> dict:
    used = [c for c in cells if c["nominal"] <= cut + 1e-6]
    a = np.vstack([_cubic_rows(c["E"]) for c in used])
    y = np.concatenate([c["S"] - s_ref for c in used])
    (c11, c12, c44), *_ = np.linalg.lstsq(a, y, rcond=None)
    resid = a @ np.array([c11, c12, c44]) - y
    # unconstrained 6x6: S - S_ref = E @ C^T over the same cells
    e_mat = np.array([c["E"] for c in used])
    s_mat = np.array([c["S"] - s_ref for c in used])
    c_full = np.linalg.lstsq(e_mat, s_mat, rcond=None)[0].T
    cubic = np.zeros((6, 6))
    cubic[:3, :3] = c12
    cubic[np.arange(3), np.arange(3)] = c11
    cubic[np.arange(3, 6), np.arange(3, 6)] = c44
    return {"cut": cut, "n_cells": len(used), "C11": float(c11), "C12": float(c12), "C44": float(c44),
            "residual_rms_GPa": float(np.sqrt(np.mean(resid ** 2))),
            "residual_max_GPa": float(np.abs(resid).max()),
            "C_full_GPa": c_full.round(3).tolist(),
            "max_deviation_from_cubic_GPa": float(np.abs(c_full - cubic).max())}


def _moduli(c11: float, c12: float, c44: float) -> dict:
    b = (c11 + 2 * c12) / 3
    gv = (c11 - c12 + 3 * c44) / 5
    gr = 5 * (c11 - c12) * c44 / (4 * c44 + 3 * (c11 - c12))
    g = (gv + gr) / 2
    return {"B": b, "G": g, "G_V": gv, "G_R": gr, "E": 9 * b * g / (3 * b + g), "nu": (3 * b - 2 * g) / (2 * (3 * b + g))}


def _energy_curvature(cells: list[dict], v0: float, comps: tuple[int, ...]) -> float:
    """The mean over Voigt components `comps` of d^2 (E / V0) / dE_comp^2 (GPa), each from a
    cubic polynomial through the cells strained mainly along that component (|delta| <=
    ENERGY_CUT, the unstrained cell left out: its k-point set differs); NaN without data."""
    found = []
    for comp in comps:
        sel = [c for c in cells if 0 < c["nominal"] <= ENERGY_CUT + 1e-6 and int(np.argmax(np.abs(c["E"]))) == comp]
        if len(sel) >= 4:
            x = np.array([c["E"][comp] for c in sel])
            poly = np.polyfit(x, np.array([c["energy"] for c in sel]), 3)
            found.append(2 * poly[-3] / v0 * EV_PER_A3_TO_GPA)
    return float(np.mean(found)) if found else float("nan")


def mo_elastic_from_data(path, *, cut: float = DEFAULT_CUT, alt_cut: float = ALTERNATIVE_CUT) -> dict:
    """Cubic elastic constants, lattice constant and moduli of the bcc cells in the strained-
    cell file `path` (Mo_Elastic.json; any one-element cubic file of the same layout),
    fitted as the module docstring says: {"a": A, "V0": A^3/atom, "E0": eV/atom (the
    unstrained cell), "C11", "C12", "C44", "B", "G" (Hill), "E" (Young): GPa, "nu", and
    "fit": the cut, cells used, residual RMS and max (GPa), the 6x6 fit and its largest
    departure from cubic (GPa), the alternative cut's numbers ("alternative"), C11 and C44
    from the energy curvature, the reference cell's cell and stress}."""
    for name, value in (("cut", cut), ("alt_cut", alt_cut)):
        if not (isinstance(value, (int, float)) and 0 < value <= 0.1):
            raise PropertyError(f"elastic from data: {name} must be in (0, 0.1], got {value!r}")
    recs = _records(path)
    if len({el for r in recs for el in r["elements"]}) != 1:
        raise PropertyError(f"elastic from data: {path} holds more than one element")
    if any(r["cauchy"] is None for r in recs):
        raise PropertyError(f"elastic from data: every record of {path} needs a 6-component stress")
    # the reference is the most nearly cubic, lowest-|stress| cell
    def cubicness(r):
        c = r["cell"]
        return np.abs(c - np.eye(3) * np.trace(c) / 3).max() / (np.trace(c) / 3)
    cubic = [r for r in recs if cubicness(r) < 1e-6]
    if not cubic:
        raise PropertyError(f"elastic from data: {path} holds no unstrained cubic cell to strain from")
    ref = min(cubic, key=lambda r: np.abs(r["cauchy"]).max())
    cell_ref = ref["cell"]
    v0 = abs(np.linalg.det(cell_ref))
    cells = []
    for r in recs:
        f = np.linalg.solve(cell_ref, r["cell"]).T
        finv = np.linalg.inv(f)
        pk2 = np.linalg.det(f) * finv @ r["cauchy"] @ finv.T
        nominal = float(np.abs(_voigt(0.5 * (f + f.T) - np.eye(3), 2.0)).max())
        cells.append({"E": _voigt(0.5 * (f.T @ f - np.eye(3)), 2.0), "S": _voigt(pk2), "nominal": nominal,
                      "energy": r["energy"]})
    s_ref = _voigt(ref["cauchy"])
    main, alt = _cubic_fit(cells, s_ref, cut), _cubic_fit(cells, s_ref, alt_cut)
    if main["n_cells"] < 4:
        raise PropertyError(f"elastic from data: only {main['n_cells']} cells of {path} within strain {cut}")
    c11, c12, c44 = main["C11"], main["C12"], main["C44"]
    mod = _moduli(c11, c12, c44)
    p_ref = float(s_ref[:3].mean())
    e0 = -p_ref / (c11 + 2 * c12)
    a_ref = float(np.trace(cell_ref) / 3)
    a0 = a_ref * math.sqrt(1 + 2 * e0)
    n_atoms = len(ref["elements"])
    c11_energy, c44_energy = _energy_curvature(cells, v0, (0, 1, 2)), _energy_curvature(cells, v0, (3, 4, 5))
    fit = dict(main)
    fit.update({"strain": "Green-Lagrange (engineering shears)", "stress": "second Piola-Kirchhoff from VASP's Cauchy",
                "cut_on": "nominal strain max|sym(F) - 1|", "n_records": len(recs),
                "reference_cell_A": cell_ref.tolist(), "reference_stress_GPa": s_ref.tolist(),
                "alternative": {**alt, **{k: v for k, v in _moduli(alt["C11"], alt["C12"], alt["C44"]).items()
                                          if k in ("B", "G", "nu")}},
                "C11_from_energy": float(c11_energy), "C44_from_energy": float(c44_energy),
                "born_stable": bool(c11 > abs(c12) and c44 > 0 and c11 + 2 * c12 > 0),
                "energy_cut": ENERGY_CUT})
    return {"a": a0, "V0": a0 ** 3 / n_atoms, "E0": ref["energy"] / n_atoms, "C11": c11, "C12": c12, "C44": c44,
            "B": mod["B"], "G": mod["G"], "E": mod["E"], "nu": mod["nu"], "fit": fit}


def _vacuum_axis(cell: np.ndarray, pos: np.ndarray) -> tuple[int, float]:
    """(cell vector index, widest gap in A along its plane normal) with the widest empty gap."""
    best = (-1, 0.0)
    recip = np.linalg.inv(cell)  # column i: the reciprocal vector of cell vector i (no 2 pi)
    for i in range(3):
        frac = np.sort((pos @ recip[:, i]) % 1.0)
        gaps = np.diff(np.concatenate([frac, [frac[0] + 1.0]]))
        gap = float(gaps.max() / np.linalg.norm(recip[:, i]))
        if gap > best[1]:
            best = (i, gap)
    return best


def _cube_axes(atoms: Atoms, a: float) -> np.ndarray:
    """Rows: the crystal's cube axes in the lab frame, from the second-neighbour bonds."""
    d = neighbor_list("D", atoms, 1.08 * a)
    lengths = np.linalg.norm(d, axis=1)
    u = d[(lengths > 0.93 * a)] / lengths[lengths > 0.93 * a, None]
    if len(u) < 6:
        raise ValueError("too few second-neighbour bonds to find the cube axes")
    x = u[0]
    y = next((v for v in u if abs(v @ x) < 0.3), None)
    if y is None:
        raise ValueError("second-neighbour bonds do not span two cube axes")
    axes = np.array([x, y, np.cross(x, y)])
    for _ in range(2):  # average every bond onto its axis, then re-orthonormalise (polar part)
        acc = np.zeros((3, 3))
        for v in u:
            k = int(np.argmax(np.abs(axes @ v)))
            acc[k] += np.sign(axes[k] @ v) * v
        w, _, vt = np.linalg.svd(acc)
        axes = w @ vt
    return axes


def _miller(rec: dict, a_bulk: float) -> tuple[tuple[int, int, int], dict]:
    """The {hkl} family of a slab record and its geometry, or ValueError saying why not."""
    cell, pos = rec["cell"], rec["positions"]
    axis, gap = _vacuum_axis(cell, pos)
    if gap < 5.0:
        raise ValueError(f"no vacuum gap (widest {gap:.1f} A): not a slab")
    inplane = [cell[k] for k in range(3) if k != axis]
    atoms = Atoms(rec["elements"], positions=pos, cell=cell, pbc=True)
    axes = _cube_axes(atoms, a_bulk)
    # the in-plane vectors are bcc lattice vectors: half-integer multiples of a on the cube axes
    m = [axes @ v / a_bulk for v in inplane]
    halves = [np.round(2 * v) / 2 for v in m]
    if max(np.abs(v - h).max() for v, h in zip(m, halves)) > 0.05:
        raise ValueError("in-plane cell vectors are not bcc lattice vectors of the fitted axes")
    normal = np.round(4 * np.cross(halves[0], halves[1])).astype(int)
    g = np.gcd.reduce(np.abs(normal[normal != 0]))
    hkl = tuple(sorted((int(abs(x)) // int(g) for x in normal), reverse=True))
    n_hat = np.cross(*inplane) / np.linalg.norm(np.cross(*inplane))
    heights = pos @ n_hat
    a_slab = float(np.mean([np.linalg.norm(v) / np.linalg.norm(h) for v, h in zip(inplane, halves)]))
    return hkl, {"area_A2": float(np.linalg.norm(np.cross(*inplane))), "vacuum_A": gap,
                 "thickness_A": float(heights.max() - heights.min()), "a_inplane_A": a_slab}


def mo_surface_from_data(path_surface, bulk, *, a_bulk: float | None = None) -> dict:
    """Surface energies (J/m^2) of the slabs in `path_surface` (Mo_Surface.json), each
    slab's Miller family read from its geometry (module docstring). `bulk`: the bulk energy
    per atom (eV/atom), or the path of the elastic file whose unstrained cell (and fitted
    lattice constant) gives it; `a_bulk` (A) the lattice constant when `bulk` is a number
    (default: from each slab's nearest-neighbour distances).
    Returns {"gamma": {"gamma_100": J/m^2, ...} (per family the thickest slab),
    "gamma_eV_A2": the same in eV/A^2, "e_bulk": eV/atom, "a_bulk": A, "records": one entry
    per record: index, n_atoms, miller, area_A2, thickness_A, a_inplane_A, gamma_J_m2,
    used (bool) and why (the reason a record was not used)}."""
    if isinstance(bulk, (int, float)):
        e_bulk = float(bulk)
    else:
        el = mo_elastic_from_data(bulk)
        e_bulk, a_bulk = el["E0"], el["a"]
    recs = _records(path_surface)
    out, best = [], {}
    for k, rec in enumerate(recs):
        entry = {"index": k, "n_atoms": len(rec["elements"]), "used": False}
        try:
            if len(set(rec["elements"])) != 1:
                raise ValueError("more than one element: gamma would need chemical potentials")
            # the nearest-neighbour distance (a sqrt(3)/2) gives a when no bulk a is known
            a_est = a_bulk or float(np.median(neighbor_list(
                "d", Atoms(rec["elements"], positions=rec["positions"], cell=rec["cell"], pbc=True), 3.0))) * 2 / 3 ** 0.5
            hkl, geo = _miller(rec, a_est)
        except ValueError as exc:
            entry["why"] = str(exc)
            out.append(entry)
            continue
        gamma = (rec["energy"] - len(rec["elements"]) * e_bulk) / (2 * geo["area_A2"])
        key = "gamma_" + "".join(map(str, hkl))
        entry.update({"miller": list(hkl), **geo, "gamma_eV_A2": gamma, "gamma_J_m2": gamma * EV_PER_A2_TO_J_PER_M2})
        out.append(entry)
        if key not in best or geo["thickness_A"] > best[key]["thickness_A"]:
            best[key] = entry
    for key, entry in best.items():
        entry["used"] = True
    for entry in out:
        if "miller" in entry and not entry["used"]:
            entry["why"] = "a thicker slab of the same family is used"
    order = sorted(best, key=lambda s: (len(s), s))
    return {"gamma": {k: best[k]["gamma_J_m2"] for k in order}, "gamma_eV_A2": {k: best[k]["gamma_eV_A2"] for k in order},
            "e_bulk": e_bulk, "a_bulk": a_bulk, "records": out}


def _snap_dir(datasets_dir) -> Path:
    if datasets_dir is None:
        env = os.environ.get("OPTBENCH_DATASETS")
        if not env:
            raise PropertyError("DFT reference: give datasets_dir (the nbmotaw_snap folder or the datasets folder "
                                "holding it) or set OPTBENCH_DATASETS")
        datasets_dir = env
    d = Path(datasets_dir)
    return d / "nbmotaw_snap" if (d / "nbmotaw_snap").is_dir() else d


def dft_reference(element: str = "Mo", datasets_dir=None) -> dict:
    """The DFT values of bcc `element` fitted to the SNAP data in `datasets_dir` (the
    nbmotaw_snap folder or its parent; default $OPTBENCH_DATASETS), keyed like the property
    results: {"eos": {"a": A, "V0": A^3/atom, "E0": eV/atom, "B": GPa}, "elastic":
    {"C11", "C12", "C44", "B", "G", "E": GPa, "nu"}, "surface": {"gamma_100",
    "gamma_110", ...: J/m^2}, "units": {value: unit}, "sources": {property: how it was
    obtained}, "fit": the elastic fit's record, "surface_records": the slabs}. The fit
    applies to any one-element bcc pair of files ({element}_Elastic.json,
    {element}_Surface.json); PropertyError naming the path when a file is missing."""
    snap = _snap_dir(datasets_dir)
    elastic_path, surface_path = snap / f"{element}_Elastic.json", snap / f"{element}_Surface.json"
    for p in (elastic_path, surface_path):
        if not p.is_file():
            raise PropertyError(f"DFT reference for {element}: data file {p} not found")
    el = mo_elastic_from_data(elastic_path)
    surf = mo_surface_from_data(surface_path, el["E0"], a_bulk=el["a"])
    fit, alt = el["fit"], el["fit"]["alternative"]
    units = {"a": "A", "V0": "A^3/atom", "E0": "eV/atom", "B": "GPa", "C11": "GPa", "C12": "GPa", "C44": "GPa",
             "G": "GPa", "E": "GPa", "nu": "", **{k: "J/m^2" for k in surf["gamma"]}}
    used = [f"{{{''.join(map(str, r['miller']))}}} ({r['n_atoms']} atoms)" for r in surf["records"] if r["used"]]
    sources = {
        "elastic": (f"{elastic_path.name} ({SNAP_CITATION}; VASP PBE): cubic least-squares fit of 2nd Piola-Kirchhoff "
                    f"stress vs Green-Lagrange strain over {fit['n_cells']} cells with nominal strain <= "
                    f"{fit['cut']:.0%} (residual RMS {fit['residual_rms_GPa']:.2f} GPa); with <= {alt['cut']:.0%} "
                    f"({alt['n_cells']} cells): C11 {alt['C11']:.1f}, C12 {alt['C12']:.1f}, C44 {alt['C44']:.1f} GPa"),
        "eos": (f"{elastic_path.name}: a where the fitted stress vanishes (reference cell {fit['reference_cell_A'][0][0]:.4f} A"
                f" under {fit['reference_stress_GPa'][0]:+.3f} GPa), B = (C11 + 2 C12)/3 of the same fit, E0 the "
                "unstrained cell's energy per atom (no isotropically strained cells in the set)"),
        "surface": (f"{surface_path.name}: (E_slab - N e_bulk)/2A with e_bulk of the unstrained {elastic_path.name} "
                    f"cell; Miller family from the slab geometry; slabs used: {', '.join(used)}"),
    }
    return {"element": element,
            "eos": {"a": el["a"], "V0": el["V0"], "E0": el["E0"], "B": el["B"]},
            "elastic": {k: el[k] for k in ("C11", "C12", "C44", "B", "G", "E", "nu")},
            "surface": dict(surf["gamma"]), "units": units, "sources": sources,
            "fit": fit, "surface_records": surf["records"]}
