"""An ASE calculator for the engine's potentials (MTP, ETN), with the neighbour list
kept between nearby geometries (a Verlet skin).

``EngineCalculator(potential, species)`` gives ASE's energy (eV), free_energy (eV, equal
to the energy: the potentials have no electronic entropy), forces (eV/A) and, for
periodic cells, stress (eV/A^3, Voigt xx yy zz yz xz xy, positive under tension) of any
potential the engine reads: an MLIP ``.mtp`` / ``.almtp`` file, an ETN ``.json`` file or
a loaded :class:`optbench.engine.capi.Potential`.

The skin.  The engine's data set is built with cutoff ``rc + skin`` (``rc`` the
potential's cutoff); the site kernels only use pairs closer than ``rc``, so the larger
list gives the same results.  While the atoms stay close to the geometry of that build,
later calls move the stored pairs (``mlipc_dataset_update_positions``: each pair keeps
the lattice image it was found with) instead of searching for neighbours again.

The bound.  With ``L0``, ``r0`` the cell (rows) and positions at the build and ``L``,
``r`` the current ones, ``F = L0^-1 L`` is the cell's deformation and ``d_i = r_i -
r0_i F`` each atom's move relative to it.  A pair's vector (with its image ``n``) is
``v = r_j + n L - r_i`` now and ``v0`` at the build, and ``v = v0 F + (d_j - d_i)``, so
``|v0| <= (|v| + 2 max|d|) / sigma_min(F)``.  A pair now within ``rc`` therefore had
``|v0| < (rc + 2 max|d|) / sigma_min(F)``, which is inside the list while

    2 max_i |d_i| + (1 - sigma_min(F)) (rc + skin) <= skin.

For a fixed cell this is the usual rule, every atom moved less than skin/2; a shrinking
cell uses up the skin in proportion to the list's cutoff, and the displacement is taken
after mapping the build positions with the new cell, so that a cell scaled together
with its atoms (an NPT step, a strain) does not count as motion.  Positions are never
wrapped here: the stored images refer to the positions of the build.  If positions jump
by a lattice vector (``atoms.wrap()``) the bound sees a large move and the list is
rebuilt, which is right.  A change of atom count, species, periodicity or of the
potential's cutoff rebuilds too.  On a library without the update function (an older
mlipc.h implementation), every call rebuilds.
"""

from __future__ import annotations

import math
import os

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.data import atomic_numbers, chemical_symbols

from optbench.engine.capi import Engine, EngineUnsupportedError, Potential
from optbench.engine.choice import load_engine

__all__ = ["DEFAULT_SKIN", "EngineCalculator"]

# 0.3 A: an Ag atom moves 0.0026-0.005 A/fs (rms) at 300-1000 K, so with 1-2 fs steps the
# skin/2 = 0.15 A budget lasts some 10-30 MD steps between searches (the VelocityVerlet
# test at 600 K: 2 searches in 17 steps), while the list within rc + 0.3 costs next to
# nothing: on 108 Ag atoms with a level-8 MTP (1 thread) predict takes 0.37 ms with it
# against 0.36 ms with the list at rc (4536 against 3062 pairs; the kernels skip the
# extra pairs by distance), while a new search costs 0.15 ms and an update 0.05 ms
# (measured 2026-11-30).  It is also ase.neighborlist's default skin.
DEFAULT_SKIN = 0.3


class EngineCalculator(Calculator):
    """ASE calculator evaluating an engine potential; see the module docstring.

    Arguments: `potential` a file path (.mtp, .almtp, ETN .json) or a loaded
    capi.Potential; `species` the element symbols of the potential's species 0, 1, ...;
    `skin` (A, >= 0) the margin of the neighbour list (0: search again whenever an atom
    moves); `num_threads` the engine's thread count (None leaves it as it is; the setting
    is the library's, shared by every user of the engine in the process); `engine` the
    capi.Engine to load a file with (default: the embedded engine, loaded once per
    process by optbench.engine.load_engine).

    Attributes: `potential`, `engine`, `species`, `skin`, `cutoff` (the potential's, A,
    at construction), `n_builds` (neighbour searches so far), `n_updates` (calls that
    moved the stored pairs instead), `dataset` (the engine data set of the last call).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, potential: str | os.PathLike | Potential, species, *, skin: float = DEFAULT_SKIN,
                 num_threads: int | None = None, engine: Engine | None = None):
        super().__init__()
        if isinstance(potential, Potential):
            if engine is not None and engine is not potential.engine:
                raise ValueError("the potential was loaded by another engine than the one given")
            self.potential = potential
        else:
            self.potential = (engine or load_engine()).load_potential(potential)
        self.engine = self.potential.engine
        self.species = [str(s) for s in species]
        for s in self.species:
            if s not in atomic_numbers or s == "X":
                raise ValueError(f"species {self.species}: {s!r} is not an element symbol")
        if len(set(self.species)) != len(self.species):
            raise ValueError(f"species {self.species} lists an element twice")
        count = int(self.potential.info()["species_count"])
        if count != len(self.species):
            raise ValueError(f"the potential has {count} species but species lists {len(self.species)}: "
                             f"{self.species} (give one element symbol per species index 0..{count - 1})")
        self.skin = float(skin)
        if not (math.isfinite(self.skin) and self.skin >= 0.0):
            raise ValueError(f"skin must be a finite length >= 0 (A), got {skin}")
        if num_threads is not None:
            self.engine.set_num_threads(int(num_threads))
        self.cutoff = self.potential.cutoff
        self._type_of = {atomic_numbers[s]: t for t, s in enumerate(self.species)}
        self.n_builds = 0
        self.n_updates = 0
        self.dataset = None
        self._ref = None  # geometry of the last build: types, periodic, cell, positions, cutoff
        self._can_update = True

    # ------------------------------------------------------------------ ASE interface
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """Energy (eV), free_energy (eV), forces (eV/A) and, for a periodic cell, ASE's
        stress (eV/A^3, Voigt xx yy zz yz xz xy) of `atoms` into ``self.results``."""
        super().calculate(atoms, properties, system_changes)
        a = self.atoms
        pbc = np.asarray(a.pbc, dtype=bool)
        if pbc.any() and not pbc.all():
            raise ValueError(f"pbc {pbc.tolist()}: the engine handles a cell periodic in all three "
                             "directions or a molecule (pbc all False), not mixed boundary conditions")
        periodic = bool(pbc.all())
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError("stress of a non-periodic system (pbc all False) is not defined")
        types = self._types(a.numbers)
        positions = np.array(a.get_positions(), dtype=float)
        cell = np.array(a.cell[:], dtype=float) if periodic else None
        self._prepare(types, periodic, cell, positions)
        energy, forces, plus_stress = self.engine.predict(self.potential, self.dataset)
        self.results["energy"] = float(energy[0])
        self.results["free_energy"] = float(energy[0])
        self.results["forces"] = forces
        if periodic:
            # PlusStress = -dE/d(strain) (eV); ASE's stress is +dE/d(strain) / V.
            self.results["stress"] = -plus_stress[0] / abs(np.linalg.det(cell))

    # ------------------------------------------------------------------ neighbour list
    def _types(self, numbers) -> np.ndarray:
        """Species index of each atom (0-based, the potential's order)."""
        try:
            return np.fromiter((self._type_of[int(z)] for z in numbers), dtype=np.int32, count=len(numbers))
        except KeyError as exc:
            z = int(exc.args[0])
            raise ValueError(f"atom of element {chemical_symbols[z]} is not among the potential's species "
                             f"{self.species}") from None

    def _prepare(self, types, periodic, cell, positions) -> None:
        """Make ``self.dataset`` hold this geometry: move the stored pairs when the bound
        of the module docstring allows, else search the neighbours within rc + skin."""
        rc = self.potential.cutoff
        if self._can_update and self._list_covers(types, periodic, cell, positions, rc):
            try:
                self.dataset.update_positions(None if cell is None else cell.reshape(1, 9), positions)
                self.n_updates += 1
                return
            except EngineUnsupportedError:
                self._can_update = False
        cells = np.zeros(9) if cell is None else cell.reshape(9)
        self.dataset = self.engine.dataset_from_arrays([len(types)], cells, [int(periodic)], positions, types,
                                                       rc + self.skin)
        self._ref = (types.copy(), periodic, None if cell is None else cell.copy(), positions.copy(), rc)
        self.n_builds += 1

    def _list_covers(self, types, periodic, cell, positions, rc) -> bool:
        """Whether the list of the last build still holds every pair within rc:
        2 max|d| + (1 - sigma_min(F)) (rc0 + skin) <= skin (module docstring)."""
        if self.dataset is None or self._ref is None:
            return False
        types0, periodic0, cell0, positions0, rc0 = self._ref
        if periodic != periodic0 or rc != rc0 or not np.array_equal(types, types0):
            return False
        if periodic:
            deformation = np.linalg.solve(cell0, cell)  # cell0 @ F = cell: rows map as x -> x F
            mapped = positions0 @ deformation
            sigma_min = float(np.linalg.svd(deformation, compute_uv=False)[-1])
        else:
            mapped, sigma_min = positions0, 1.0
        moved = float(np.sqrt(((positions - mapped) ** 2).sum(axis=1).max()))
        return 2.0 * moved + (1.0 - sigma_min) * (rc0 + self.skin) <= self.skin
