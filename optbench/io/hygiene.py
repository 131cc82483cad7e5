"""Data hygiene: what is wrong with a training / validation split that no reader error
catches. `check_data` looks for

* **overlap**: validation configurations that also occur in the training set (their
  validation errors are in-sample);
* **duplicate**: configurations that occur more than once in one data set;
* **close atoms**: two atoms nearer than a physical minimum distance (default 0.5 A,
  periodic images included; `read_dataset` already rejects the 1e-3 A coincidences);
* **outlier**: configurations whose energy per atom (eV/atom) or largest force norm
  (eV/A) has a robust z-score beyond 3.5 within its data set.

Two configurations are *the same* (`same_configuration`) when they have the same number
of atoms, the same species multiset, both a cell or both none, cells equal entry by entry
within ``tol`` (A), and a one-to-one pairing of same-species atoms with positions within
``tol`` (A, default 1e-3): for periodic configurations after wrapping both into their
cells and taking the nearest periodic image in the first one's cell (so atoms at
fractional 0.9999999 and 0.0 pair up, and a shift by a lattice vector changes nothing),
for molecules after removing the centroid. The order of the atoms does not matter; a
rigid translation of a periodic configuration does (it is a different set of positions).

Fast on thousands of configurations without a rounding key (rounded coordinates near a
rounding boundary would split true duplicates): configurations are grouped by atom count,
species counts and periodicity, and each gets a descriptor that is continuous in the
positions, independent of atom order and unchanged by wrapping: its cell entries and, per
species, the mean of exp(2 pi i k.f) over the atoms' fractional coordinates f for 16
small integer vectors k, divided by 2 pi |k|. Two configurations that are the same differ
by at most a known bound in every descriptor entry (the bound follows from ``tol`` and
the cells), so a k-d tree query with that radius (max norm) finds every true pair; the
candidates are then confirmed exactly by `same_configuration` (a periodic k-d tree of
fractional coordinates and a bipartite matching).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching
from scipy.spatial import cKDTree

from optbench.io.dataset import Configuration, DataSet, closest_pair

__all__ = ["DUPLICATE_TOL", "MIN_DISTANCE", "OUTLIER_Z", "MAD_SCALE", "MEAN_AD_SCALE", "Finding", "check_data",
           "find_close_atoms", "find_duplicates", "find_outliers", "find_overlap", "robust_z", "same_configuration"]

DUPLICATE_TOL = 1e-3  # A: positions (and cell entries) this close are the same
MIN_DISTANCE = 0.5  # A: atoms nearer than this are unphysical for any interatomic potential's data
OUTLIER_Z = 3.5  # |robust z| above this is an outlier (Iglewicz & Hoaglin)
# Iglewicz & Hoaglin's modified z-score: 0.6745 = 1 / 1.4826 makes the MAD a consistent
# estimator of the standard deviation for normal data; |z| > 3.5 is their outlier rule.
MAD_SCALE = 1.4826
# When the MAD is 0 (more than half the values equal), the mean absolute deviation
# scaled by sqrt(pi/2) = 1.2533 stands in for it (the same normal-consistency idea).
MEAN_AD_SCALE = math.sqrt(math.pi / 2)

# Wave vectors (integer, in reciprocal-cell units) of the descriptor: the 13 of {-1,0,1}^3
# up to sign, and 2 along each axis.
_K = np.array([k for k in np.ndindex(3, 3, 3) if k > (1, 1, 1)], dtype=float) - 1.0
_K = np.vstack([_K, 2.0 * np.eye(3)])
_K_NORM = np.linalg.norm(_K, axis=1)
# |f_b (c_b - c_a)| <= |f_b| ||c_b - c_a||_2 <= sqrt(3) * 3 * max|c_b - c_a|: how far cells
# equal within tol can move a wrapped atom (f in [0, 1)^3).
_CELL_SLACK = 3.0 * math.sqrt(3.0)
_EXAMPLES = 3  # example configurations named in a message


@dataclass(frozen=True)
class Finding:
    """One problem of the data: ``kind`` "overlap" (validation configurations also in the
    training set), "duplicate" (repeats within one set), "close atoms" or "outlier";
    ``severity`` "error" (overlap: the validation errors are wrong) or "warning";
    ``message`` one line for the user; ``dataset`` the name of the set it is about;
    ``sources`` the ``source`` strings of every configuration concerned (of that set);
    ``pairs`` (overlap, duplicate) the matched (source, source) pairs, validation first."""

    kind: str
    severity: str
    message: str
    dataset: str = ""
    sources: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return self.message


# ------------------------------------------------------------------ same configuration


@dataclass
class _Prepared:
    """A configuration ready for comparison: wrapped (or centred) positions per species."""

    key: tuple  # (periodic, n_atoms, ((label, count), ...))
    cart: np.ndarray  # wrapped Cartesian positions (A); centred for a molecule
    frac: np.ndarray | None  # wrapped fractional coordinates in [0, 1), periodic only
    cell: np.ndarray | None
    inv_norm: float  # ||cell^-1||_2 (1/A), periodic only
    species: dict  # label -> atom indices


def _prepare(cfg: Configuration, table: np.ndarray | None = None) -> _Prepared:
    """`cfg` wrapped into its cell (or centred) with its types relabelled by `table`."""
    types = np.asarray(cfg.types, dtype=np.int64)
    if table is not None:
        types = table[types]
    pos = np.asarray(cfg.positions, dtype=float).reshape(-1, 3)
    labels, counts = np.unique(types, return_counts=True)
    species = {int(s): np.flatnonzero(types == s) for s in labels}
    key = (cfg.cell is not None, len(types), tuple(zip(labels.tolist(), counts.tolist())))
    if cfg.cell is None:
        cart = pos - pos.mean(axis=0) if len(pos) else pos
        return _Prepared(key, cart, None, None, 0.0, species)
    cell = np.asarray(cfg.cell, dtype=float)
    inv = np.linalg.inv(cell)
    frac = pos @ inv
    frac -= np.floor(frac)
    frac[frac >= 1.0] = 0.0  # -1e-17 wraps to 1 - 1e-17, which rounds to 1.0
    return _Prepared(key, frac @ cell, frac, cell, float(np.linalg.norm(inv, 2)), species)


def _positive(tol: float, what: str = "duplicate tolerance") -> float:
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"{what} must be a positive length in A, got {tol!r}")
    return float(tol)


def _same(a: _Prepared, b: _Prepared, tol: float) -> bool:
    if a.key != b.key:
        return False
    if a.cell is not None:
        if np.max(np.abs(a.cell - b.cell)) > tol:
            return False
        reach = a.inv_norm * tol * (1.0 + _CELL_SLACK) * (1.0 + 1e-9)  # fractional distance bound
    for s, ia in a.species.items():
        ib = b.species[s]
        if a.cell is None:
            near = cKDTree(b.cart[ib]).query_ball_point(a.cart[ia], tol * (1.0 + 1e-12))
        else:
            near = cKDTree(b.frac[ib], boxsize=1.0).query_ball_point(a.frac[ia], reach)
        if any(len(n) == 0 for n in near):
            return False
        rows = np.repeat(np.arange(len(ia)), [len(n) for n in near])
        cols = np.fromiter((j for n in near for j in n), dtype=np.int64, count=len(rows))
        delta = b.cart[ib][cols] - a.cart[ia][rows]
        if a.cell is not None:  # nearest image in a's cell
            delta -= np.round(b.frac[ib][cols] - a.frac[ia][rows]) @ a.cell
        keep = np.linalg.norm(delta, axis=1) <= tol
        graph = csr_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(len(ia), len(ib)))
        if np.any(maximum_bipartite_matching(graph, perm_type="column") < 0):
            return False
    return True


def same_configuration(a: Configuration, b: Configuration, tol: float = DUPLICATE_TOL) -> bool:
    """True when `a` and `b` are the same configuration within `tol` (A): same atom count,
    species multiset and periodicity, cells equal entry by entry within `tol`, and a
    one-to-one pairing of same-species atoms within `tol` after wrapping (nearest image in
    `a`'s cell) or, for molecules, after removing the centroid. Labels are not compared."""
    return _same(_prepare(a), _prepare(b), _positive(tol))


# ------------------------------------------------------------------ candidate pairs


def _descriptors(group: list[_Prepared], tol: float) -> tuple[np.ndarray, float]:
    """(descriptor rows, radius): two configurations of `group` that are the same within
    `tol` differ by at most `radius` in every descriptor entry."""
    periodic = group[0].cell is not None
    if periodic:  # cells differ by at most min(tol, their spread in the group) per entry
        cells = np.array([p.cell for p in group])
        spread = min(tol, float(np.ptp(cells, axis=0).max()))
        radius = max(p.inv_norm for p in group) * (tol + _CELL_SLACK * spread)
        frames = [p.frac for p in group]
    else:  # a box larger than every molecule: exp(2 pi i k.x / L) without aliasing
        size = 2.0 * max(float(np.abs(p.cart).max(initial=0.0)) for p in group) + 1.0
        radius = tol / size
        frames = [p.cart / size for p in group]
    rows = []
    for p, f in zip(group, frames):
        parts = [p.cell.ravel() * (radius / tol)] if periodic else []  # cells within tol: within radius
        for s in sorted(p.species):
            phase = np.exp(2j * np.pi * (f[p.species[s]] @ _K.T)).mean(axis=0) / (2 * np.pi * _K_NORM)
            parts += [phase.real, phase.imag]
        rows.append(np.concatenate(parts))
    return np.array(rows), radius * (1.0 + 1e-6) + 1e-12


def _groups(prepared: list[_Prepared]) -> dict[tuple, list[int]]:
    out: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        if p.key[1]:
            out.setdefault(p.key, []).append(i)
    return out


def _confirmed_within(prepared: list[_Prepared], tol: float) -> list[tuple[int, int]]:
    pairs = []
    for idx in _groups(prepared).values():
        if len(idx) < 2:
            continue
        desc, radius = _descriptors([prepared[i] for i in idx], tol)
        for u, v in cKDTree(desc).query_pairs(radius, p=np.inf, output_type="ndarray"):
            i, j = sorted((idx[u], idx[v]))
            if _same(prepared[i], prepared[j], tol):
                pairs.append((i, j))
    return sorted(pairs)


def _confirmed_between(first: list[_Prepared], second: list[_Prepared], tol: float) -> list[tuple[int, int]]:
    pairs = []
    other = _groups(second)
    for key, idx in _groups(first).items():
        jdx = other.get(key)
        if not jdx:
            continue
        desc, radius = _descriptors([first[i] for i in idx] + [second[j] for j in jdx], tol)
        hits = cKDTree(desc[len(idx):]).query_ball_point(desc[:len(idx)], radius, p=np.inf)
        for u, near in enumerate(hits):
            pairs += [(idx[u], jdx[v]) for v in near if _same(first[idx[u]], second[jdx[v]], tol)]
    return sorted(pairs)


def _label_tables(*datasets: DataSet) -> list[np.ndarray | None]:
    """Type index -> common label per data set: by element name when every set knows its
    elements (so ["Ag", "Pd"] and ["Pd", "Ag"] compare right), else the indices as they are."""
    if any(d.species is None for d in datasets):
        return [None] * len(datasets)
    names = list(dict.fromkeys(el for d in datasets for el in d.species))
    return [np.array([names.index(el) for el in d.species], dtype=np.int64) for d in datasets]


def find_duplicates(dataset: DataSet, tol: float = DUPLICATE_TOL) -> list[tuple[int, int]]:
    """Every pair (i, j), i < j, of configurations of `dataset` that are the same within
    `tol` (A; `same_configuration`), sorted."""
    (table,) = _label_tables(dataset)
    return _confirmed_within([_prepare(c, table) for c in dataset.configs], _positive(tol))


def find_overlap(train: DataSet, valid: DataSet, tol: float = DUPLICATE_TOL) -> list[tuple[int, int]]:
    """Every pair (i, j) of a configuration ``valid[i]`` that is the same as ``train[j]``
    within `tol` (A; `same_configuration`, with the validation configuration first),
    sorted. Species are matched by element name when both sets know their elements."""
    t_train, t_valid = _label_tables(train, valid)
    return _confirmed_between([_prepare(c, t_valid) for c in valid.configs],
                              [_prepare(c, t_train) for c in train.configs], _positive(tol))


# ------------------------------------------------------------- outliers, close atoms


def robust_z(values) -> np.ndarray:
    """Modified z-scores (x - median) / (1.4826 MAD) of `values` (dimensionless), NaN where
    a value is None or not finite; when the MAD is 0 the mean absolute deviation times
    sqrt(pi/2) is the scale, and when that is 0 too every score is 0. The one rule for data
    (check_data) and for the report's ensembles over seeds (optbench.report.stats).

    Note the ceiling this puts on small ensembles: with the MAD fallback, one value apart
    from n-1 equal ones scores n / 1.2533, so 5 seeds are needed to flag it."""
    x = np.array([np.nan if v is None else v for v in values], dtype=float)
    ok = np.isfinite(x)
    z = np.full(x.shape, np.nan)
    if not ok.any():
        return z
    dev = x[ok] - np.median(x[ok])
    scale = MAD_SCALE * np.median(np.abs(dev))
    if scale == 0:
        scale = MEAN_AD_SCALE * np.mean(np.abs(dev))
    z[ok] = dev / scale if scale > 0 else 0.0
    return z


def _quantities(dataset: DataSet) -> dict[str, tuple[str, np.ndarray]]:
    epa = [c.energy / c.n_atoms if c.energy is not None and c.n_atoms else None for c in dataset.configs]
    fmax = [float(np.linalg.norm(np.asarray(c.forces, dtype=float).reshape(-1, 3), axis=1).max())
            if c.forces is not None and c.n_atoms else None for c in dataset.configs]
    return {"energy per atom": ("eV/atom", np.array([np.nan if v is None else v for v in epa], dtype=float)),
            "largest force norm": ("eV/A", np.array([np.nan if v is None else v for v in fmax], dtype=float))}


def find_outliers(dataset: DataSet, threshold: float = OUTLIER_Z) -> list[tuple[int, str, float, float]]:
    """Configurations whose energy per atom (eV/atom) or largest per-atom force norm (eV/A)
    has |robust_z| > `threshold` over the configurations of `dataset` that have it:
    (index, quantity "energy per atom" or "largest force norm", value, z), by quantity
    then index. The scores are over the whole set, not per composition."""
    out = []
    for name, (_, values) in _quantities(dataset).items():
        z = robust_z(values)
        out += [(int(i), name, float(values[i]), float(z[i]))
                for i in np.flatnonzero(np.abs(np.nan_to_num(z, nan=0.0)) > threshold)]
    return out


def find_close_atoms(dataset: DataSet, min_distance: float = MIN_DISTANCE) -> list[tuple[int, int, int, float]]:
    """Configurations with two atoms nearer than `min_distance` (A, periodic images
    included, exact for any cell: `optbench.io.dataset.closest_pair`): (index, atom i,
    atom j, distance in A) of the closest such pair of each, 0-based, by index."""
    out = []
    for k, cfg in enumerate(dataset.configs):
        pair = closest_pair(cfg, min_distance) if cfg.n_atoms else None
        if pair is not None:
            out.append((k, *pair))
    return out


# --------------------------------------------------------------------- the check


def _short(source: str) -> str:
    return os.path.basename(source) or source


def _examples(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_EXAMPLES])
    return shown + (f", ... ({len(items) - _EXAMPLES} more)" if len(items) > _EXAMPLES else "")


def _src(cfg: Configuration, k: int, dataset: DataSet) -> str:
    return cfg.source or f"{dataset.name or 'data set'}[{k}]"


def _duplicate_groups(n: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[max(root(i), root(j))] = min(root(i), root(j))
    groups: dict[int, list[int]] = {}
    for i in sorted({k for p in pairs for k in p}):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _set_findings(data: DataSet, label: str, use: str, tol: float, min_distance: float,
                  threshold: float) -> list[Finding]:
    """Duplicate, close-atom and outlier findings of one data set."""
    src = [_src(c, k, data) for k, c in enumerate(data.configs)]
    found = []
    groups = _duplicate_groups(len(data), find_duplicates(data, tol))
    if groups:
        repeats = sum(len(g) - 1 for g in groups)
        found.append(Finding(
            "duplicate", "warning",
            f"{label}: {repeats} of {len(data)} configurations repeat another one of the same set (positions "
            f"within {tol:g} A; {len(groups)} group(s), e.g. "
            f"{_examples([' = '.join(_short(src[i]) for i in g) for g in groups])}): they weigh double {use}",
            data.name, tuple(src[i] for g in groups for i in g),
            tuple((src[g[0]], src[i]) for g in groups for i in g[1:])))
    close = find_close_atoms(data, min_distance)
    if close:
        k, a, b, d = min(close, key=lambda c: c[3])
        found.append(Finding(
            "close atoms", "warning",
            f"{label}: {len(close)} of {len(data)} configurations have atoms closer than {min_distance:g} A "
            f"(closest: atoms {a + 1} and {b + 1} of {_short(src[k])}, {d:.3g} A; e.g. "
            f"{_examples([_short(src[c[0]]) for c in close])})", data.name, tuple(src[c[0]] for c in close)))
    outl = find_outliers(data, threshold)
    for name, (unit, values) in _quantities(data).items():
        rows = sorted((r for r in outl if r[1] == name), key=lambda r: -abs(r[3]))
        if rows:
            found.append(Finding(
                "outlier", "warning",
                f"{label}: {len(rows)} of {len(data)} configurations have an outlying {name} (|robust z| > "
                f"{threshold:g}; median {np.nanmedian(values):.4g} {unit}): "
                f"{_examples([f'{_short(src[r[0]])} {r[2]:.4g} {unit} (z {r[3]:+.1f})' for r in rows])}",
                data.name, tuple(src[r[0]] for r in rows)))
    return found


def check_data(train: DataSet, valid: DataSet | None = None, *, duplicate_tol: float = DUPLICATE_TOL,
               min_distance: float = MIN_DISTANCE, outlier_z: float = OUTLIER_Z) -> list[Finding]:
    """The hygiene findings of a training set and, when given, its validation set: first
    the validation configurations that also occur in the training set (kind "overlap",
    severity "error"), then per set (training first) repeated configurations
    ("duplicate"), atoms nearer than `min_distance` A ("close atoms") and configurations
    whose energy per atom (eV/atom) or largest force norm (eV/A) has |robust z| >
    `outlier_z` ("outlier"), all severity "warning". Configurations are the same when
    their cells and wrapped positions agree within `duplicate_tol` A, whatever the atom
    order (`same_configuration`). An empty list: nothing found."""
    _positive(duplicate_tol)
    _positive(min_distance, "min_distance")
    t_label = f"training set {train.name}".rstrip()
    findings = []
    if valid is not None:
        v_label = f"validation set {valid.name}".rstrip()
        pairs = find_overlap(train, valid, duplicate_tol)
        if pairs:
            t_src = [_src(c, k, train) for k, c in enumerate(train.configs)]
            v_src = [_src(c, k, valid) for k, c in enumerate(valid.configs)]
            first: dict[int, int] = {}
            for i, j in pairs:
                first.setdefault(i, j)
            n = len(first)
            verdict = "validation errors are in-sample" if n == len(valid) else "their validation errors are in-sample"
            findings.append(Finding(
                "overlap", "error",
                f"{v_label}: {n} of {len(valid)} configurations also occur in the {t_label} (positions within "
                f"{duplicate_tol:g} A): {verdict} (e.g. "
                f"{_examples([f'{_short(v_src[i])} = {_short(t_src[j])}' for i, j in first.items()])})",
                valid.name, tuple(v_src[i] for i in first), tuple((v_src[i], t_src[j]) for i, j in pairs)))
    findings += _set_findings(train, t_label, "in training", duplicate_tol, min_distance, outlier_z)
    if valid is not None:
        findings += _set_findings(valid, v_label, "in the validation errors", duplicate_tol, min_distance,
                                  outlier_z)
    return findings
