"""Named crystal structures the properties start from.

A structure is named ``FORMULA-PROTOTYPE``, optionally ``@A`` for the starting cubic
lattice constant in Angstrom: "Ag-fcc", "Pd-fcc@3.9", "Mo-bcc", "AgPd-L10", "Ag3Pd-L12",
"AgPd3-L12", "AgPd-B2". Elements take their starting lattice constant from
``ase.data.reference_states`` (the experimental one; the properties relax it), alloys
the composition-weighted mean of their elements' (Vegard's law). Every structure is built
in its conventional cubic cell (fcc 4 atoms, bcc 2, L1_2 4, L1_0 4 in the cubic setting,
B2 2), so that strains along x, y, z are the crystal's [100], [010], [001].
"""

from __future__ import annotations

import re

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, reference_states
from ase.formula import Formula

from optbench.properties.base import PropertyError

__all__ = ["PROTOTYPES", "build_structure", "parse_structure_name", "reference_lattice_constant"]

# prototype -> (number of formula sites, fractional positions in the cubic cell, site -> sublattice)
_FCC = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
_BCC = [[0, 0, 0], [0.5, 0.5, 0.5]]
PROTOTYPES = {
    "fcc": (_FCC, [0, 0, 0, 0]),
    "bcc": (_BCC, [0, 0]),
    "L12": (_FCC, [0, 1, 1, 1]),   # the minority element on the cube corners
    "L10": (_FCC, [0, 1, 1, 0]),   # (001) layers of A (z = 0) and B (z = 1/2) alternating
    "B2": (_BCC, [0, 1]),
}

_NAME = re.compile(r"^(?P<formula>[A-Za-z0-9]+)-(?P<proto>fcc|bcc|L12|L10|B2)(@(?P<a>[0-9.]+))?$")


def parse_structure_name(name: str) -> tuple[dict[str, int], str, float | None]:
    """(element counts, prototype, starting lattice constant or None) of a structure name;
    PropertyError naming the name when it is not one."""
    m = _NAME.match(str(name).strip())
    if not m:
        raise PropertyError(f"structure {name!r}: expected FORMULA-PROTOTYPE[@A] with a prototype of "
                            f"{', '.join(PROTOTYPES)} (e.g. 'Ag-fcc', 'AgPd-L10', 'Mo-bcc@3.16')")
    try:
        counts = dict(Formula(m["formula"]).count())
    except ValueError as exc:
        raise PropertyError(f"structure {name!r}: formula {m['formula']!r}: {exc}") from None
    for el in counts:
        if el not in atomic_numbers:
            raise PropertyError(f"structure {name!r}: unknown element {el!r}")
    a = float(m["a"]) if m["a"] else None
    if a is not None and not a > 0:
        raise PropertyError(f"structure {name!r}: lattice constant must be positive")
    return counts, m["proto"], a


def reference_lattice_constant(element: str, prototype: str) -> float:
    """A starting cubic lattice constant (A) for `element` in an fcc- or bcc-based
    prototype: ASE's reference state, converted between fcc and bcc at equal volume per
    atom when the element's own structure is the other one (or hcp)."""
    ref = reference_states[atomic_numbers[element]] or {}
    sym = ref.get("symmetry")
    if sym in ("fcc", "bcc") and "a" in ref:
        v_atom = ref["a"] ** 3 / (4 if sym == "fcc" else 2)
    elif sym == "hcp" and "a" in ref:
        v_atom = np.sqrt(3) / 4 * ref["a"] ** 2 * ref["a"] * ref.get("c/a", 1.633)
    else:
        raise PropertyError(f"no reference lattice constant for {element}; give one as '{element}-{prototype}@A'")
    per_cell = 2 if prototype in ("bcc", "B2") else 4
    return float((v_atom * per_cell) ** (1.0 / 3.0))


def build_structure(name: str) -> Atoms:
    """The structure a name describes (module docstring), periodic, conventional cubic cell,
    atoms on their ideal sites; ``atoms.info['structure']`` holds the name."""
    counts, proto, a = parse_structure_name(name)
    sites, sublattice = PROTOTYPES[proto]
    n_sub = len(set(sublattice))
    elements = list(counts)
    if proto in ("fcc", "bcc"):
        if len(elements) != 1:
            raise PropertyError(f"structure {name!r}: {proto} takes one element, not {len(elements)}")
        symbols = elements * len(sites)
    else:
        if len(elements) != 2:
            raise PropertyError(f"structure {name!r}: {proto} takes two elements")
        occupancy = [sublattice.count(s) for s in range(n_sub)]  # sites per sublattice
        # the element with fewer atoms goes on the smaller sublattice (L12: A3B puts B on site 0)
        by_count = sorted(elements, key=lambda el: counts[el])
        ratio = counts[by_count[0]] / counts[by_count[1]]
        want = min(occupancy) / max(occupancy)
        if not np.isclose(ratio, want):
            raise PropertyError(f"structure {name!r}: {proto} needs a {min(occupancy)}:{max(occupancy)} composition")
        small = int(np.argmin(occupancy)) if occupancy[0] != occupancy[1] else 0
        site_el = {small: by_count[0], 1 - small: by_count[1]} if occupancy[0] != occupancy[1] else \
            {0: elements[0], 1: elements[1]}
        symbols = [site_el[s] for s in sublattice]
    if a is None:
        total = sum(counts.values())
        a = sum(counts[el] * reference_lattice_constant(el, proto) for el in elements) / total
    atoms = Atoms(symbols, scaled_positions=np.array(sites, float), cell=np.eye(3) * a, pbc=True)
    atoms.info["structure"] = str(name).strip()
    return atoms


def primitive_or_self(atoms: Atoms) -> Atoms:
    """The fcc or bcc primitive cell (1 atom) of a one-element cubic structure, else the
    structure itself; phonon paths are drawn in the primitive cell's Brillouin zone."""
    proto = parse_structure_name(atoms.info.get("structure", ""))[1] if atoms.info.get("structure") else None
    if proto in ("fcc", "bcc"):
        a = float(atoms.cell.lengths()[0])
        prim = bulk(atoms[0].symbol, proto, a=a)
        prim.info.update(atoms.info)
        return prim
    return atoms.copy()
