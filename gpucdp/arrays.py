"""Small array helpers shared by the stages.

numpy ≥ 2.3 routes ``np.unique`` without ``return_*`` arguments through a hash set that took 150 s on 30M
distinct int64 keys (and 40 s on the 10M candidate pairs of a 1M-record run), where a sort takes 1–2 s; these
helpers spell the sort-based path out.
"""

from __future__ import annotations

import numpy as np

__all__ = ["unique_sorted", "unique_counts", "dense_unique"]


def unique_sorted(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values of ``keys`` (any sortable 1-D array)."""
    keys = np.sort(keys)
    if keys.size == 0:
        return keys
    first = np.empty(keys.size, dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return keys[first]


def unique_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of ``keys`` and how often each occurs (int64)."""
    keys = np.sort(keys)
    if keys.size == 0:
        return keys, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    counts = np.diff(np.append(starts, keys.size))
    return keys[starts], counts.astype(np.int64)


def dense_unique(values: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True, return_counts=True)`` for non-negative ints below ``bound``.

    O(n + bound) with a bincount instead of an O(n log n) sort: pattern ids live in a small space.
    """
    counts = np.bincount(values, minlength=bound)
    uniq = np.flatnonzero(counts)
    lookup = np.zeros(bound, dtype=np.int64)
    lookup[uniq] = np.arange(uniq.size)
    return uniq, lookup[values], counts[uniq]
