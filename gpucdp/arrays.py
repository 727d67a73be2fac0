"""Small array helpers shared by the stages.

numpy ≥ 2.3 routes ``np.unique`` without ``return_*`` arguments through a hash set that took 150 s on 30M
distinct int64 keys (and 40 s on the 10M candidate pairs of a 1M-record run), where a sort takes 1–2 s; these
helpers spell the sort-based path out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gpucdp.parallel import thread_map

__all__ = [
    "CodesCache",
    "dense_unique",
    "factorize",
    "factorize_columns",
    "large_string_array",
    "large_string_buffers",
    "repeat",
    "row_hashes",
    "run_starts",
    "string_buffers",
    "unique_counts",
    "unique_sorted",
]

# column name -> factorize() result, shared by the stages of one run: the key rules, the record layout, the
# term frequencies and the profiles factorise the same prepared columns, at ~0.15 s per 1M-row column.
CodesCache = dict


def run_starts(sorted_values: Any, xp: Any = np) -> Any:
    """bool[m]: True where a run of equal values starts in ``sorted_values`` (a non-empty 1-D ``xp`` array)."""
    first = xp.empty(sorted_values.size, dtype=bool)
    first[0] = True
    if xp is np:  # no temporary: this runs over 10M+ pair keys
        np.not_equal(sorted_values[1:], sorted_values[:-1], out=first[1:])
    else:
        first[1:] = sorted_values[1:] != sorted_values[:-1]
    return first


@numba.njit(cache=True, nogil=True)
def counting_argsort(keys: np.ndarray, bound: int) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for int64 keys in ``[0, bound)``: a counting sort, O(n + bound).

    Where an argsort of 10M keys takes ~1.2 s, this takes a fraction: for dense codes (factorised values,
    labels, record numbers) on the host.
    """
    starts = np.zeros(bound + 1, dtype=np.int64)
    for k in keys:
        starts[k + 1] += 1
    for i in range(bound):
        starts[i + 1] += starts[i]
    out = np.empty(keys.shape[0], dtype=np.int64)
    for p in range(keys.shape[0]):
        k = keys[p]
        out[starts[k]] = p
        starts[k] += 1
    return out


def stable_argsort(keys: Any, xp: Any = np) -> Any:
    """``xp.argsort(keys, kind="stable")`` of non-negative int keys; on the host a counting sort when the keys
    are dense enough (largest below 4× their count), else an LSD radix sort: the same order either way."""
    if xp is np and keys.size:
        bound = int(keys.max()) + 1
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        if bound <= 4 * keys.size:
            return counting_argsort(keys, bound)
        bits = (bound - 1).bit_length()
        passes = -(-bits // 16)
        return _radix_argsort(keys, bits, -(-bits // passes))
    return xp.argsort(keys, kind="stable")


@numba.njit(cache=True, nogil=True)
def _radix_argsort(keys, bits, digit):
    # Least significant digit first, each pass a stable counting sort of (key, index) by ``digit`` bits: the
    # keys travel with their indices, so no pass reads through a permutation. Where numpy's stable argsort of
    # 3M sparse int64 keys (a key rule's combined codes) took 0.55-0.63 s, this took 0.17-0.19 s.
    n = keys.shape[0]
    size = 1 << digit
    mask = size - 1
    key_in = keys.copy()
    index_in = np.arange(n)
    key_out = np.empty(n, dtype=np.int64)
    index_out = np.empty(n, dtype=np.int64)
    counts = np.empty(size + 1, dtype=np.int64)
    shift = 0
    while shift < bits:
        counts[:] = 0
        for i in range(n):
            counts[((key_in[i] >> shift) & mask) + 1] += 1
        for d in range(size):
            counts[d + 1] += counts[d]
        for i in range(n):
            d = (key_in[i] >> shift) & mask
            at = counts[d]
            key_out[at] = key_in[i]
            index_out[at] = index_in[i]
            counts[d] = at + 1
        key_in, key_out = key_out, key_in
        index_in, index_out = index_out, index_in
        shift += digit
    return index_in


def unique_sorted(keys: Any, xp: Any = np) -> Any:
    """Sorted distinct values of ``keys`` (any sortable 1-D array of ``xp``, numpy or cupy)."""
    keys = xp.sort(keys)
    return keys[run_starts(keys, xp)] if keys.size else keys


def unique_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of ``keys`` and how often each occurs (int64)."""
    keys = np.sort(keys)
    if keys.size == 0:
        return keys, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    counts = np.diff(np.append(starts, keys.size))
    return keys[starts], counts.astype(np.int64)


def dense_unique(values: Any, bound: int, xp: Any = np) -> tuple[Any, Any, Any]:
    """``np.unique(values, return_inverse=True, return_counts=True)`` for non-negative ints below ``bound``.

    O(n + bound) with a bincount instead of an O(n log n) sort: pattern ids live in a small space. All three
    results are arrays of ``xp`` (where ``values`` live); the inverse is int32 when ``bound`` allows (4 bytes
    a value rather than 8: there is one per candidate pair).
    """
    index = xp.int32 if bound <= np.iinfo(np.int32).max else xp.int64
    if not values.shape[0]:  # no pairs: CuPy 13's bincount cannot size an empty input's result
        return values.astype(xp.int64), xp.zeros(0, dtype=index), xp.zeros(0, dtype=xp.int64)
    counts = xp.bincount(values, minlength=bound)
    uniq = xp.flatnonzero(counts)
    lookup = xp.zeros(bound, dtype=index)
    lookup[uniq] = xp.arange(uniq.size, dtype=index)
    return uniq, lookup[values], counts[uniq]


def repeat(values: Any, counts: Any, xp: Any = np) -> Any:
    """``np.repeat(values, counts)`` for 1-D arrays of ``xp``: value i repeated ``counts[i]`` times.

    CuPy's ``repeat`` takes the counts only as a host int, list or tuple; on the device the position of every
    output element in ``cumsum(counts)`` names its value instead (one sync, for the total).
    """
    if xp is np:
        return np.repeat(values, counts)
    ends = xp.cumsum(counts)
    total = int(ends[-1]) if ends.size else 0
    return values[xp.searchsorted(ends, xp.arange(total, dtype=ends.dtype), side="right")]


def factorize(series: Any) -> tuple[np.ndarray, Any]:
    """Codes of a column's values in order of first appearance: (int64[n], -1 for null or "", uniques).

    ``uniques`` is an Arrow ``large_string`` array for a column of strings (Arrow-backed, or Python objects
    that are all str), else a numpy array: a Python object per distinct value would cost ~70 bytes each, and
    the profiles take their golden values from it with Arrow.
    """
    if hasattr(series, "to_pandas"):  # cudf: factorising on the host keeps one code path
        series = series.to_pandas()
    codes, index = pd.factorize(series, sort=False, use_na_sentinel=True)
    codes = codes.astype(np.int64, copy=False)
    if not (len(index) and (pd.api.types.is_string_dtype(series) or series.dtype == object)):
        return codes, np.asarray(index)
    if isinstance(index.dtype, pd.StringDtype):  # Arrow-backed: taken as it is, no Python string per value
        uniques: Any = pa.array(index, type=pa.large_string())
    else:
        uniques = np.asarray(index, dtype=object)
        if all(isinstance(v, str) for v in uniques):
            uniques = pa.array(uniques, type=pa.large_string())
    if isinstance(uniques, pa.ChunkedArray):
        uniques = uniques.combine_chunks()
    if isinstance(uniques, pa.Array):
        empty = np.flatnonzero(pc.equal(uniques, "").to_numpy(zero_copy_only=False))
    else:
        empty = np.flatnonzero(uniques == "")
    if empty.size:
        codes = np.where(codes == empty[0], -1, codes)
    return codes, uniques


def cached_factorize(cache: dict | None, name: str, series: Any, xp: Any = np) -> tuple[Any, np.ndarray]:
    """:func:`factorize` through a per-run cache keyed by column name (no cache: computed each time).

    With ``xp`` other than numpy the codes come back as an ``xp`` array, copied to the device once per column
    and cached there too; the uniques stay on the host.
    """
    if cache is None:
        codes, uniques = factorize(series)
        return (codes if xp is np else xp.asarray(codes)), uniques
    if name not in cache:
        cache[name] = factorize(series)
    if xp is np:
        return cache[name]
    key = ("device", name)
    if key not in cache:
        cache[key] = xp.asarray(cache[name][0])
    return cache[key], cache[name][1]


def factorize_columns(cache: dict, frame: Any, names: Sequence[str], threads: int = 1) -> None:
    """Fill ``cache`` with :func:`factorize` of each of ``frame``'s columns ``names`` not in it yet.

    The columns are factorised at once, a thread each: Arrow's hashing, which does the work for Arrow-backed
    strings, releases the GIL. Names that are not columns of ``frame`` are skipped.
    """
    todo = [name for name in dict.fromkeys(names) if name in frame.columns and name not in cache]
    for name, result in zip(todo, thread_map(lambda name: factorize(frame[name]), todo, threads)):
        cache[name] = result


# FNV-1a's 64-bit prime, and the two multipliers of MurmurHash3's finaliser (fmix64)
_FNV_PRIME = np.uint64(0x100000001B3)
_FMIX_1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX_2 = np.uint64(0xC4CEB9FE1A85EC53)


def large_string_buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Views of a ``large_string`` array's value bytes and its n + 1 offsets (no copy); value ``i`` spans
    ``chars[offsets[i]:offsets[i + 1]]`` (a null slot's span is whatever Arrow left there)."""
    n = len(array)
    _, offset_buffer, data_buffer = array.buffers()
    if offset_buffer is None:  # an empty array may come without buffers
        return np.zeros(0, dtype=np.uint8), np.zeros(n + 1, dtype=np.int64)
    offsets = np.frombuffer(offset_buffer, dtype=np.int64, count=array.offset + n + 1)[array.offset :]
    chars = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return chars, offsets


def string_buffers(array: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(chars, offsets, valid : bool[n])`` of a string array (one chunk, as ``large_string``), the first two
    as :func:`large_string_buffers` gives them: no copy when it is one ``large_string`` chunk already."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not pa.types.is_large_string(array.type):
        array = array.cast(pa.large_string())
    chars, offsets = large_string_buffers(array)
    valid = (np.ones(len(array), dtype=np.bool_) if array.null_count == 0
             else array.is_valid().to_numpy(zero_copy_only=False))
    return chars, offsets, valid


def large_string_array(chars: np.ndarray, offsets: np.ndarray, valid: np.ndarray) -> pa.LargeStringArray:
    """A ``large_string`` array made from its buffers: value ``i`` is ``chars[offsets[i]:offsets[i + 1]]``
    (int64 offsets, n + 1 of them), null where ``valid`` (bool[n]) is False."""
    n = valid.shape[0]
    nulls = int(n - np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(pa.large_string(), n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(chars)],
                                 null_count=nulls)


def row_hashes(columns: Sequence[pa.Array | pa.ChunkedArray]) -> np.ndarray:
    """A 64-bit hash of each row of aligned string columns (uint64[n]); equal rows hash equal.

    Not a cryptographic hash, nor one that stays the same across versions: for finding candidate repeats, which
    the caller confirms on the values themselves. The bytes are read straight from the Arrow buffers by a
    parallel Numba loop, with no Python string per value; a null hashes apart from every string, the empty one
    included.
    """
    table = pa.table({str(i): column for i, column in enumerate(columns)})
    out = np.zeros(table.num_rows, dtype=np.uint64)
    start = 0
    for batch in table.to_batches():  # aligned slices of every column, no copy
        stop = start + batch.num_rows
        for array in batch.columns:
            _hash_strings_into(*string_buffers(array), out[start:stop])
        start = stop
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _hash_strings_into(chars, offsets, valid, out):
    # out[i] := fmix64(FNV-1a over (length + 1, or 0 for null; the value's bytes), starting from out[i]): the
    # length keeps ("ab", "c") apart from ("a", "bc") when columns are chained
    for i in numba.prange(out.shape[0]):
        h = out[i]
        if valid[i]:
            a = offsets[i]
            b = offsets[i + 1]
            h = (h ^ np.uint64(b - a + 1)) * _FNV_PRIME
            for k in range(a, b):
                h = (h ^ np.uint64(chars[k])) * _FNV_PRIME
        else:
            h = (h ^ np.uint64(0)) * _FNV_PRIME
        h ^= h >> np.uint64(33)
        h *= _FMIX_1
        h ^= h >> np.uint64(33)
        h *= _FMIX_2
        h ^= h >> np.uint64(33)
        out[i] = h

