"""Contiguous shares of a data set for the ranks of one training, balanced by cost.

A configuration's share of a loss and gradient costs about its neighbour-pair count (the
descriptors, their derivatives and the adjoint pass are all loops over pairs), so ranks
get runs of consecutive configurations whose pair counts add up to as nearly the same as
contiguity allows. Contiguous runs keep the global order: rank r's configurations are
global indices [start_r, stop_r), so a global mini-batch maps to each rank's part by a
comparison, and the residual vector of the whole set is the ranks' pieces in rank order.
"""

from __future__ import annotations

import numpy as np


def _parts_needed(w: np.ndarray, bound: int) -> int:
    parts, total = 1, 0
    for v in w:
        if total + v > bound:
            parts, total = parts + 1, 0
        total += v
    return parts


def contiguous_partition(weights, n_parts: int) -> np.ndarray:
    """Boundaries b (n_parts + 1 integers, b[0] = 0, b[-1] = len(weights)) of n_parts
    nonempty runs of consecutive items that minimise the largest run's total weight
    (weights: nonnegative integers, e.g. neighbour-pair counts). ValueError when there are
    fewer items than parts."""
    w = np.asarray(weights, dtype=np.int64)
    n = w.size
    if n_parts < 1:
        raise ValueError(f"need at least one part, got {n_parts}")
    if n < n_parts:
        raise ValueError(f"{n} configurations cannot be shared by {n_parts} ranks: use at most {n} ranks")
    if np.any(w < 0):
        raise ValueError("weights must be nonnegative")
    lo, hi = int(w.max(initial=0)), int(w.sum())
    while lo < hi:  # the smallest largest-run total that n_parts runs can reach
        mid = (lo + hi) // 2
        if _parts_needed(w, mid) <= n_parts:
            hi = mid
        else:
            lo = mid + 1
    bounds, i = [0], 0
    for part in range(n_parts - 1):
        start, total = i, 0
        # fill up to the bound, leaving at least one item for each later run
        while i < n - (n_parts - 1 - part) and (i == start or total + w[i] <= lo):
            total += w[i]
            i += 1
        bounds.append(i)
    bounds.append(n)
    return np.array(bounds, dtype=np.int64)


def share_of(batch: np.ndarray | None, start: int, stop: int) -> np.ndarray | None:
    """The part of a global batch of configuration indices that falls in [start, stop), as
    local indices (minus start), in the batch's order; None (all) for a None batch."""
    if batch is None:
        return None
    batch = np.asarray(batch, dtype=np.int64)
    return batch[(batch >= start) & (batch < stop)] - start
