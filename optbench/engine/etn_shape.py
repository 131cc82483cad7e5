"""Pure-Python check of an ETN's hyperparameters and its parameter count.

`check_etn` applies the rules the embedded engine applies when it builds an ETN from a
spec string (``engine/src/etn_model.cpp``: ``etn_from_spec``, ``parse_lists``,
``expand_per_l``, ``infer_lmax``, ``EtnModel::check``; ``engine/src/etn_plan.cpp``: a core
that couples nothing; ``engine/src/radial_basis.cpp``: ``radial_basis_problem``), in the
same order and with messages that name the same word, and counts the parameters as
``engine/README.md`` defines them (section "ETN: the equivariant tensor network
potential", "Parameter vector and count"):

    P_k = sum over (L, l, L') with |L-l| <= L' <= L+l, L+l+L' even, all <= lmax of
          r_{k-1}[L] * n_k[l] * r_k[L']
    r_0 = r_K = (1, 0, ..., 0),  r_k = ranks[k] otherwise,
    n_k[l] = shape[k][l] + (1 if l = 0 and k < K else 0),
    n_params = S^2 * size * sum_l max_k shape[k][l]  +  sum_k P_k  +  S.

It loads no C library and imports nothing but the standard library, so validating an
experiment file can use it without the engine. ``tests/test_etn_shape.py`` holds it to
the engine's answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["ETN_MAX_LMAX", "ETN_DEFAULT_LMAX", "EtnShape", "check_etn", "etn_paths"]

#: Largest lmax the engine accepts (``kEtnMaxLmax``, engine/src/etn_plan.h).
ETN_MAX_LMAX = 8
#: lmax when every shape and ranks list has one value (``kEtnDefaultLmax``, etn_model.h).
ETN_DEFAULT_LMAX = 2
# parse_lists refuses entries above this (engine/src/etn_model.cpp).
_MAX_ENTRY = 1e6


@dataclass(frozen=True)
class EtnShape:
    """A checked ETN: its hyperparameters expanded per l, and its parameter counts.

    ``shape`` has one list of lmax + 1 values per core, ``ranks`` one per bond (K - 1);
    ``core_sizes[k]`` is P_{k+1}, the size of the engine's parameter group ``core{k+1}``;
    ``n_radial`` the size of group ``radial`` (S^2 x radial_basis_size x n_channels);
    ``n_params`` the total, radial + cores + the S species constants.
    """

    species: int
    lmax: int
    shape: list[list[int]]
    ranks: list[list[int]]
    radial_basis_size: int
    min_dist: float
    max_dist: float
    n_channels: int
    n_radial: int
    core_sizes: list[int]
    n_params: int

    @property
    def n_cores(self) -> int:
        """K, the number of cores."""
        return len(self.shape)


def _fail(message: str) -> ValueError:
    return ValueError("ETN: " + message)


def _text(lists: Any) -> str:
    """A list of lists as the study writes it ([[1],[6,4,2],[3]], no spaces)."""
    try:
        return "[" + ",".join(
            "[" + ",".join(str(x) for x in v) + "]" if isinstance(v, (list, tuple)) else str(v) for v in lists
        ) + "]"
    except TypeError:
        return repr(lists)


def _entry(x: Any, key: str, whole: Any) -> int:
    """One shape or ranks value: an integer 0 .. 1e6 (an integral float passes, as in the
    engine's spec strings)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise _fail(f"{key}={_text(whole)}: entries must be numbers")
    if not math.isfinite(x) or x != math.floor(x) or x < 0 or x > _MAX_ENTRY:
        raise _fail(f"{key}={_text(whole)}: entries must be integers >= 0")
    return int(x)


def _lists(value: Any, key: str) -> list[list[int]]:
    """parse_lists: a list whose items are lists of values, or single values (one value
    for every l)."""
    if not isinstance(value, (list, tuple)):
        raise _fail(f"{key}={value!r}: expected a list of lists")
    out = []
    for item in value:
        if isinstance(item, (list, tuple)):
            out.append([_entry(x, key, value) for x in item])
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            out.append([_entry(item, key, value)])
        else:
            raise _fail(f"{key}={_text(value)}: expected a list of lists")
    return out


def _integer(value: Any, key: str) -> int:
    """A spec word that must be an integer (SpecWords::integer; an integral float passes)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(f"{key}={value!r} is not a number")
    if value != math.floor(value):
        raise _fail(f"{key}={value!r} is not an integer")
    return int(value)


def _number(value: Any, key: str) -> float:
    """A spec word that must be a finite number (SpecWords::number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(f"{key}={value!r} is not a number")
    return float(value)


def _infer_lmax(shape: list[list[int]], ranks: list[list[int]]) -> int:
    longest = max([1] + [len(v) for v in shape + ranks])
    return longest - 1 if longest > 1 else ETN_DEFAULT_LMAX


def _expand_per_l(v: list[int], lmax: int, what: str) -> list[int]:
    if len(v) == 1:
        return [v[0]] * (lmax + 1)
    if len(v) != lmax + 1:
        raise _fail(f"{what} has {len(v)} entries: give one (for every l) or lmax + 1 = {lmax + 1}")
    return list(v)


def etn_paths(lmax: int) -> list[tuple[int, int, int]]:
    """The couplings (L, l, L') allowed up to `lmax`: |L - l| <= L' <= L + l and
    L + l + L' even, in the engine's order (L, then l, then L')."""
    return [
        (L, l, Lp)
        for L in range(lmax + 1)
        for l in range(lmax + 1)
        for Lp in range(lmax + 1)
        if abs(L - l) <= Lp <= L + l and (L + l + Lp) % 2 == 0
    ]


def check_etn(
    shape: Sequence[Sequence[int]],
    ranks: Sequence[Sequence[int]] | None = None,
    lmax: int | None = None,
    species: int = 1,
    radial_basis_size: int = 8,
    min_dist: float = 2.0,
    max_dist: float = 5.0,
) -> EtnShape:
    """Check an ETN's hyperparameters as the engine does and count its parameters.

    `shape` has one list per core: one value for every l, or lmax + 1 values (l = 0 ..
    lmax); `ranks` one list per bond (K - 1 of them, the same syntax; default 1 for every
    bond and L); `lmax` defaults to the length of the longest list minus one, or 2 when
    every list has one value. Raises ValueError, with a message starting "ETN: " that
    names the problem, for everything the engine refuses: lmax outside 0..8, the wrong
    number of ranks lists, a list of the wrong length, a value that is not an integer
    >= 0, species < 1, radial_basis_size < 2, not 0 <= min_dist < max_dist, or a core that
    couples nothing (no allowed (L, l, L') between its incoming bond, its channels and its
    outgoing bond). Returns the expanded hyperparameters and the counts (EtnShape).
    """
    # The order of etn_from_spec, then EtnModel::check, then EtnPlan.
    shape_l = _lists(shape, "shape")
    if not shape_l:
        raise _fail("shape must list at least one core")
    K = len(shape_l)
    ranks_l = [[1] for _ in range(K - 1)] if ranks is None else _lists(ranks, "ranks")
    species = _integer(species, "species")
    if lmax is None:
        lmax = _infer_lmax(shape_l, ranks_l)
    else:
        lmax = _integer(lmax, "lmax")
    if lmax < 0 or lmax > ETN_MAX_LMAX:
        raise _fail(f"lmax must be in 0..{ETN_MAX_LMAX}, got {lmax}")
    full_shape = [_expand_per_l(v, lmax, f"shape of core {k + 1}") for k, v in enumerate(shape_l)]
    full_ranks = [_expand_per_l(v, lmax, f"ranks of bond {b + 1}") for b, v in enumerate(ranks_l)]
    size = _integer(radial_basis_size, "radial_basis_size")
    lo = _number(min_dist, "min_dist")
    hi = _number(max_dist, "max_dist")

    if species < 1:
        raise _fail("species_count must be >= 1")
    if len(full_ranks) + 1 != K:
        raise _fail(f"ranks must list one bond fewer than shape has cores: {K} cores need {K - 1} ranks, "
                    f"got {len(full_ranks)}")
    if size < 2:
        raise _fail("radial_basis_size must be >= 2")
    if not (lo >= 0.0 and hi > lo):
        raise _fail(f"need 0 <= min_dist < max_dist (got min_dist={lo:f}, max_dist={hi:f})")

    def bond_rank(b: int, L: int) -> int:  # h_0 and h_K are one scalar
        if b == 0 or b == K:
            return 1 if L == 0 else 0
        return full_ranks[b - 1][L]

    paths = etn_paths(lmax)
    core_sizes = []
    for k in range(K):
        n_in = [full_shape[k][l] + (1 if l == 0 and k < K - 1 else 0) for l in range(lmax + 1)]
        terms = [bond_rank(k, L) * n_in[l] * bond_rank(k + 1, Lp) for L, l, Lp in paths]
        if not any(terms):
            raise _fail(f"core {k + 1} couples nothing: no L x l -> L' with L + l + L' even between its incoming "
                        "bond, its channels and its outgoing bond (check shape and ranks)")
        core_sizes.append(sum(terms))

    n_channels = sum(max(full_shape[k][l] for k in range(K)) for l in range(lmax + 1))
    n_radial = species * species * size * n_channels
    return EtnShape(species=species, lmax=lmax, shape=full_shape, ranks=full_ranks, radial_basis_size=size,
                    min_dist=lo, max_dist=hi, n_channels=n_channels, n_radial=n_radial, core_sizes=core_sizes,
                    n_params=n_radial + sum(core_sizes) + species)
