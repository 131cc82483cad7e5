"""Harmonic phonons of a crystal by finite displacements (phonopy), in THz.

The structure is taken as given (the caller relaxes it first): phonopy gets it as its unit
cell, finds the primitive cell itself, displaces the symmetry-inequivalent atoms of a
supercell by ``displacement`` A, and builds the force constants from the forces `calc`
returns. Frequencies come from the dynamical matrix of that primitive cell, along ASE's
standard band path of the primitive cell's Bravais lattice and on a q-point mesh for the
density of states. phonopy is an optional dependency (``pip install 'mlip-optbench[properties]'``)
and is imported only when phonons are asked for.

q-points are in reduced coordinates of the reciprocal basis of phonopy's primitive cell
(``phonon.primitive.cell``), without 2*pi, which is what phonopy expects; the band path is
computed by ASE for that very cell, so the two agree whatever the input cell's setting.
Path distances (the x axis) follow ASE: Cartesian, in 1/A including the factor 2*pi.
"""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms
from ase.cell import Cell

from optbench.properties.base import (
    OK,
    UNSTABLE,
    PropertyError,
    PropertyResult,
    jsonable,
    structure_label,
)

__all__ = ["build_phonopy", "default_supercell", "frequencies_at", "phonons", "plot_band_structure"]

# Supercell widths of at least 10 A hold every pair within 5 A and its periodic image apart:
# EMT's cutoff is 5.4 A (Cu) and most machine-learned potentials use 5-6 A, beyond which
# force constants are negligible anyway. For a conventional fcc cell this is 3x3x3 (108
# atoms, 10.8 A for Cu), cheap with EMT and one displaced supercell by symmetry.
_MIN_SUPERCELL_WIDTH = 10.0  # A


def _widths(cell: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of a cell (A), what limits the interaction range."""
    cell = np.asarray(cell, float)
    vol = abs(np.linalg.det(cell))
    return np.array([vol / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)])


def default_supercell(atoms: Atoms, min_width: float = _MIN_SUPERCELL_WIDTH) -> list[int]:
    """The smallest repetitions (n1, n2, n3) of `atoms`'s cell whose supercell is at least
    `min_width` A (default 10) wide between opposite faces in each direction."""
    return [int(np.ceil(min_width / w - 1e-9)) for w in _widths(atoms.cell)]


def _supercell_matrix(supercell, name: str) -> np.ndarray:
    if supercell is None:
        raise AssertionError("resolved by the caller")
    arr = np.asarray(supercell)
    if arr.ndim == 0:
        arr = np.full(3, arr)
    if arr.shape == (3,):
        arr = np.diag(arr)
    if arr.shape != (3, 3) or not np.all(np.isfinite(arr.astype(float))) or np.any(arr != np.round(arr)):
        raise PropertyError(f"phonons of {name}: supercell must be an integer, 3 integers or a 3x3 integer "
                            f"matrix, got {supercell!r}")
    arr = np.round(arr).astype(int)
    if round(np.linalg.det(arr)) <= 0:
        raise PropertyError(f"phonons of {name}: supercell {supercell!r} must have a positive determinant")
    return arr


def _import_phonopy():
    try:
        import phonopy
        from phonopy.structure.atoms import PhonopyAtoms
        from phonopy.structure.cells import guess_primitive_matrix
    except ImportError:  # pragma: no cover - depends on the environment
        raise PropertyError("phonons need phonopy: pip install phonopy (or the extra: "
                            "pip install 'mlip-optbench[properties]')") from None
    return phonopy.Phonopy, PhonopyAtoms, guess_primitive_matrix


def build_phonopy(calc, atoms: Atoms, *, supercell=None, displacement: float = 0.01, symprec: float = 1e-5):
    """A ``phonopy.Phonopy`` object of `atoms` (its unit cell; primitive cell found by
    symmetry) with force constants from `calc`'s forces on supercells with one atom
    displaced by `displacement` A (symmetry-inequivalent ones only).

    supercell: None (the smallest diagonal repetition at least 10 A wide, see
    default_supercell), an integer, 3 integers or a 3x3 integer matrix, relative to
    `atoms`'s cell. The forces on the undisplaced supercell are subtracted from the
    displaced ones, which removes residual forces of a not perfectly relaxed structure
    to first order; the force constants are then symmetrised (translational invariance,
    index permutation), so that the acoustic modes vanish at Gamma.
    Returns the Phonopy object; its frequencies are in THz.
    """
    name = structure_label(atoms)
    if not (isinstance(displacement, (int, float)) and np.isfinite(displacement) and 0 < displacement <= 0.2):
        raise PropertyError(f"phonons of {name}: displacement must be in (0, 0.2] A, got {displacement!r}")
    if not np.all(atoms.pbc) or atoms.cell.rank != 3:
        raise PropertyError(f"phonons of {name}: the structure must be periodic in 3 directions")
    Phonopy, PhonopyAtoms, guess_primitive_matrix = _import_phonopy()
    matrix = _supercell_matrix(default_supercell(atoms) if supercell is None else supercell, name)
    unit = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=np.array(atoms.cell),
                        scaled_positions=atoms.get_scaled_positions(), masses=atoms.get_masses())
    # the primitive cell found by symmetry, passed explicitly (phonopy 4 warns on "auto")
    primitive = guess_primitive_matrix(unit, symprec=symprec)
    phonon = Phonopy(unit, supercell_matrix=matrix, primitive_matrix=primitive, symprec=symprec)
    phonon.generate_displacements(distance=float(displacement))

    def forces_of(cell_atoms) -> np.ndarray:
        sc = Atoms(cell_atoms.symbols, cell=cell_atoms.cell, scaled_positions=cell_atoms.scaled_positions,
                   masses=cell_atoms.masses, pbc=True)
        sc.calc = calc
        return np.array(sc.get_forces(), float)

    reference = forces_of(phonon.supercell)
    sets = [forces_of(sc) - reference for sc in phonon.supercells_with_displacements]
    if not all(np.all(np.isfinite(f)) for f in sets + [reference]):
        raise _NonFinite(f"phonons of {name}: the calculator returned non-finite forces")
    phonon.forces = np.array(sets)
    phonon.produce_force_constants(show_drift=False)
    phonon.symmetrize_force_constants()
    return phonon


class _NonFinite(PropertyError):
    """Forces were NaN or infinite: the potential failed, reported as UNSTABLE."""


def frequencies_at(phonon, qpoints) -> np.ndarray:
    """Phonon frequencies (THz, ascending per q-point, imaginary ones negative) at
    `qpoints` given in reduced coordinates of the primitive reciprocal basis; shape
    (n_q, 3 * atoms in the primitive cell)."""
    q = np.atleast_2d(np.asarray(qpoints, float))
    phonon.run_qpoints(q)
    return np.array(phonon.qpoints.frequencies, float)


def _near_gamma(q_reduced: np.ndarray, prim_cell: np.ndarray, radius: float) -> np.ndarray:
    """Which q-points lie within `radius` (fraction of the shortest reciprocal primitive
    vector) of Gamma or of a Gamma image (mesh points are folded into [-1/2, 1/2))."""
    recip = np.linalg.inv(np.asarray(prim_cell, float)).T  # rows b_i, without 2*pi
    folded = q_reduced - np.round(q_reduced)
    lengths = np.linalg.norm(folded @ recip, axis=1)
    return lengths < radius * np.min(np.linalg.norm(recip, axis=1))


def _check_settings(name, npoints, mesh, imaginary_tol, acoustic_radius):
    if isinstance(npoints, bool) or not isinstance(npoints, (int, np.integer)) or npoints < 10:
        raise PropertyError(f"phonons of {name}: npoints must be an integer >= 10, got {npoints!r}")
    m = np.asarray(mesh)
    if m.shape != (3,) or np.any(m != np.round(m)) or np.any(m < 1):
        raise PropertyError(f"phonons of {name}: mesh must be 3 positive integers, got {mesh!r}")
    if not (isinstance(imaginary_tol, (int, float)) and np.isfinite(imaginary_tol) and imaginary_tol >= 0):
        raise PropertyError(f"phonons of {name}: imaginary_tol must be a finite number >= 0 THz, got {imaginary_tol!r}")
    if not (isinstance(acoustic_radius, (int, float)) and 0 <= acoustic_radius < 0.5):
        raise PropertyError(f"phonons of {name}: acoustic_radius must be in [0, 0.5), got {acoustic_radius!r}")
    return [int(v) for v in m]


def _path_labels(labels: list[str], special_x: np.ndarray) -> tuple[list[str], list[float]]:
    """ASE's labels at their x positions, a path break (two labels at one x) as 'K|U'."""
    out_l: list[str] = []
    out_x: list[float] = []
    for lab, x in zip(labels, special_x):
        if out_x and abs(x - out_x[-1]) < 1e-9:
            out_l[-1] = f"{out_l[-1]}|{lab}"
        else:
            out_l.append(lab)
            out_x.append(float(x))
    return out_l, out_x


def phonons(calc, atoms: Atoms, *, supercell=None, displacement: float = 0.01, path: str | None = None,
            npoints: int = 200, mesh=(20, 20, 20), imaginary_tol: float = 0.05, acoustic_radius: float = 0.1,
            symprec: float = 1e-5) -> PropertyResult:
    """Phonon band structure and density of states of `atoms` with `calc`, in THz.

    supercell     None: the smallest diagonal repetition of `atoms`'s cell at least 10 A
                  wide in each direction (3x3x3 conventional fcc = 108 atoms); or an
                  integer, 3 integers or a 3x3 matrix (see build_phonopy)
    displacement  finite displacement, A
    path          ASE band path string for the primitive cell's lattice (e.g. "GXWKGLUWLK,UX"
                  for fcc); None: ASE's default path of that lattice
    npoints       q-points along the whole path
    mesh          q-point mesh of the primitive cell for the DOS and the statistics
    imaginary_tol a mode counts as imaginary when its frequency is below -imaginary_tol THz
    acoustic_radius  at q-points closer to Gamma than this fraction of the shortest
                  reciprocal primitive vector the three lowest modes (the acoustic ones,
                  which go to zero there and whose sign is numerical noise) are left out
                  of n_imaginary

    values: n_imaginary (modes, on the path and the mesh together, with the rule above),
    min_frequency (THz, the lowest of all modes on path and mesh, Gamma's acoustic ones
    included: about 0 for a stable crystal, negative when imaginary; below -imaginary_tol
    with n_imaginary == 0 it is an acoustic mode near Gamma, i.e. noise), max_frequency
    (THz, highest on path and mesh), mean_frequency (THz, the average of all modes over the
    mesh, i.e. the first moment of the DOS: a stiffness measure for comparing potentials).
    status UNSTABLE only when the calculator returns non-finite forces.
    """
    name = structure_label(atoms)
    mesh = _check_settings(name, npoints, mesh, imaginary_tol, acoustic_radius)
    work = atoms.copy()
    work.calc = None
    try:
        phonon = build_phonopy(calc, work, supercell=supercell, displacement=displacement, symprec=symprec)
    except _NonFinite as exc:
        return PropertyResult("phonons", name, {}, {}, {}, UNSTABLE, str(exc))
    prim_cell = np.array(phonon.primitive.cell, float)
    bad_path = f"phonons of {name}: path {path!r} is not a path of at least 2 special points of the primitive " \
               f"cell's lattice ({Cell(prim_cell).get_bravais_lattice().name})"
    if path is not None and not isinstance(path, str):
        raise PropertyError(bad_path)
    try:
        bandpath = Cell(prim_cell).bandpath(path, npoints=npoints)
    except (KeyError, ValueError) as exc:  # ASE's answer to an unknown label
        raise PropertyError(f"{bad_path}: {exc}") from None
    q_path = np.array(bandpath.kpts, float)
    x, special_x, labels = bandpath.get_linear_kpoint_axis()
    if len(labels) < 2 or len(q_path) < 2:
        raise PropertyError(bad_path)
    f_path = frequencies_at(phonon, q_path)

    # Gamma-centred: keeps the point-group reduction of the mesh and includes Gamma
    phonon.run_mesh(mesh, is_mesh_symmetry=True, is_gamma_center=True)
    q_mesh = np.array(phonon.mesh.qpoints, float)
    f_mesh = np.array(phonon.mesh.frequencies, float)
    weights = np.array(phonon.mesh.weights, float)
    phonon.run_total_dos(use_tetrahedron_method=True)
    dos_nu, dos = np.array(phonon.total_dos.frequency_points, float), np.array(phonon.total_dos.dos, float)

    # Acoustic modes are exactly 0 at Gamma only up to numerical noise and the potential's
    # own translational-invariance error; neither is a dynamical instability.
    counted = []
    for q, f in ((q_path, f_path), (q_mesh, f_mesh)):
        mask = np.ones(f.shape, bool)
        mask[_near_gamma(q, prim_cell, acoustic_radius), :3] = False
        counted.append(f[mask])
    counted_f = np.concatenate(counted)
    n_imag = int(np.sum(counted_f < -imaginary_tol))
    values = {
        "n_imaginary": n_imag,
        "min_frequency": float(min(f_path.min(), f_mesh.min())),
        "max_frequency": float(max(f_path.max(), f_mesh.max())),
        "mean_frequency": float(np.sum(weights[:, None] * f_mesh) / (weights.sum() * f_mesh.shape[1])),
    }
    units = {"n_imaginary": "", "min_frequency": "THz", "max_frequency": "THz", "mean_frequency": "THz"}
    plabels, plx = _path_labels(list(labels), np.asarray(special_x))
    data = {
        "path": bandpath.path,
        "path_labels": plabels,
        "path_label_x": plx,
        "path_x": np.asarray(x, float),
        "path_qpoints": q_path,
        "path_frequencies": f_path,
        "dos_frequencies": dos_nu,
        "dos": dos,
        "mesh": mesh,
        "supercell_matrix": np.asarray(phonon.supercell_matrix, int),
        "n_atoms_supercell": len(phonon.supercell),
        "primitive_cell": prim_cell,
        "displacement": float(displacement),
        "imaginary_tol": float(imaginary_tol),
        "acoustic_radius": float(acoustic_radius),
    }
    message = "" if n_imag == 0 else f"{n_imag} imaginary modes, lowest {values['min_frequency']:.3f} THz"
    # stored as plain lists, so that the object in memory is what the results store reads back
    return PropertyResult("phonons", name, values, units, jsonable(data), OK, message)


def _segments(x: np.ndarray):
    """Index ranges of the continuous pieces of a path (a break repeats x)."""
    cuts = [0] + [i + 1 for i in range(len(x) - 1) if abs(x[i + 1] - x[i]) < 1e-12] + [len(x)]
    return [(a, b) for a, b in itertools.pairwise(cuts) if b - a > 1]


def plot_band_structure(results, ax=None, reference=None):
    """Draw phonon band structures (THz) from stored ``data`` dicts of phonons().

    results: [(label, data), ...] drawn in colours; reference: None or (label, data), drawn
    in black over them. When a result's special points have the same labels as the
    reference's (or the first result's), its path is stretched piecewise linearly onto
    those positions, so that potentials with different lattice constants line up.
    Returns the matplotlib Axes.
    """
    import matplotlib
    from matplotlib.figure import Figure

    if ax is None:  # a bare Figure needs no GUI backend: safe headless and under Agg
        ax = Figure(figsize=(7, 4.5)).add_subplot()
    items = [(lab, d, None) for lab, d in results]
    if reference is not None:
        items.append((reference[0], reference[1], "k"))
    if not items:
        raise PropertyError("plot_band_structure: nothing to draw")
    frame = (reference or results[0])[1]
    frame_labels, frame_x = list(frame["path_labels"]), np.asarray(frame["path_label_x"], float)
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    for k, (lab, d, colour) in enumerate(items):
        x = np.asarray(d["path_x"], float)
        f = np.asarray(d["path_frequencies"], float)
        if list(d["path_labels"]) == frame_labels:
            x = np.interp(x, np.asarray(d["path_label_x"], float), frame_x)
        colour = colour or colours[k % len(colours)]
        width, z = (1.6, 3) if colour == "k" else (1.0, 2)
        for a, b in _segments(x):
            lines = ax.plot(x[a:b], f[a:b], color=colour, lw=width, zorder=z)
            if a == 0:
                lines[0].set_label(lab)
    for xv in frame_x:
        ax.axvline(xv, color="0.7", lw=0.6, zorder=1)
    ax.axhline(0.0, color="0.5", lw=0.6, ls=":", zorder=1)
    ax.set_xticks(frame_x)
    ax.set_xticklabels(["\u0393" if s == "G" else s.replace("G", "\u0393") for s in frame_labels])
    ax.set_xlim(frame_x[0], frame_x[-1])
    ax.set_ylabel("frequency (THz)")
    ax.legend(loc="best", fontsize="small")
    return ax
