"""Small array helpers shared by the stages.

numpy ≥ 2.3 routes ``np.unique`` without ``return_*`` arguments through a hash set that took 150 s on 30M
distinct int64 keys (and 40 s on the 10M candidate pairs of a 1M-record run), where a sort takes 1–2 s; these
helpers spell the sort-based path out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["unique_sorted", "unique_counts", "dense_unique", "factorize", "CodesCache"]

# column name -> factorize() result, shared by the stages of one run: the key rules, the record layout, the
# term frequencies and the profiles factorise the same prepared columns, at ~0.15 s per 1M-row column.
CodesCache = dict


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


def factorize(series: Any) -> tuple[np.ndarray, np.ndarray]:
    """Codes of a column's values in order of first appearance: (int64[n], -1 for null or "", uniques)."""
    if hasattr(series, "to_pandas"):  # cudf: factorising on the host keeps one code path
        series = series.to_pandas()
    codes, uniques = pd.factorize(series, sort=False, use_na_sentinel=True)
    codes = codes.astype(np.int64, copy=False)
    uniques = np.asarray(uniques, dtype=object)
    if uniques.size and (pd.api.types.is_string_dtype(series) or series.dtype == object):
        empty = np.flatnonzero(uniques == "")
        if empty.size:
            codes = np.where(codes == empty[0], -1, codes)
    return codes, uniques


def cached_factorize(cache: dict | None, name: str, series: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`factorize` through a per-run cache keyed by column name (no cache: computed each time)."""
    if cache is None:
        return factorize(series)
    if name not in cache:
        cache[name] = factorize(series)
    return cache[name]
