"""Blocking: which pairs of records are worth comparing.

Candidate pairs come from two sources, united by the pipeline:

- :func:`knn_pairs`: a FAISS kNN self-join on the record embeddings (:mod:`gpucdp.embed`) with a similarity floor,
  which finds fuzzy matches (typos, swapped or missing fields);
- :func:`key_pairs` over :func:`key_codes`: every pair inside each block of records sharing an exact key (email,
  phone, surname + date of birth, …), with oversized blocks skipped and counted.

:func:`filter_mode` then keeps the pairs a linkage mode asks for. Pairs are always *canonical*
(:func:`canonical_pairs`): ``left < right``, unique, sorted by ``(left, right)``, and numbered in
:func:`pair_dtype` (int32 up to 2^31 records: 8 bytes a pair, where int64 would take 16).

Only :mod:`gpucdp.backend` imports GPU libraries: the caller passes the ``faiss`` module in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
import pandas as pd

from gpucdp.arrays import cached_factorize, repeat, run_starts, stable_argsort
from gpucdp.backend import to_host
from gpucdp.errors import BackendUnavailableError, InputError, SettingsError
from gpucdp.kernels import pairs as pairs_kernels
from gpucdp.parallel import thread_map

__all__ = [
    "CELL_SIZE",
    "EXACT_MAX",
    "GPU_EXACT_MAX",
    "CUPY_EXACT_MAX",
    "INDEX_CHOICES",
    "IVF_MAX",
    "MODES",
    "canonical_pairs",
    "filter_mode",
    "key_codes",
    "key_pair_keys",
    "key_pairs",
    "knn_pairs",
    "pack_pairs",
    "pair_dtype",
    "union_pairs",
]

MODES = ("dedupe", "link", "link_and_dedupe")
INDEX_CHOICES = ("auto", "flat", "ivf", "hnsw", "cells")
# Up to this many distinct vectors an exact search is fast enough (~20k² inner products) and loses nothing.
EXACT_MAX = 20_000
# On a GPU an exact search stays fast far higher (FAISS GPU brute force over 5M x 5M inner products).
GPU_EXACT_MAX = 5_000_000
# Without FAISS GPU the exact search is CuPy's: each batch's similarities are written out and read once per
# neighbour, about 4 x 8 bytes a similarity (k = 5), 8 TB at 500k vectors, ~2 s at an H200's 4 TB/s (an
# estimate, not measured); past it, the k-means cells.
CUPY_EXACT_MAX = 500_000
# Rows per cell of the CPU cell join (index="cells"): the Gram matrix of a cell is CELL_SIZE² inner products.
CELL_SIZE = 256
# Up to this many distinct vectors ``auto`` uses IVF on the CPU too: sqrt(n) lists, IVF_NPROBE probes. Past it
# FAISS's list scan grows too slow on a small CPU (41 s for 1M vectors, 1024 lists, 1 probe, 2 cores) and the
# cell join takes over.
IVF_MAX = 200_000
IVF_NPROBE = 4
# FAISS's GPU IVF probes at most this many lists a query (its k-selection limit); the clone refuses more.
GPU_MAX_NPROBE = 2048
# Most edges a record keeps in a CAGRA graph: the graph is built as n x twice this (uint32) before pruning,
# and FAISS's own default is 64 (CAGRA's search, not its degree, sets how many neighbours come back).
CAGRA_GRAPH_DEGREE = 64


# Candidate pairs number their records in int32 up to this many records (indices up to 2^31 - 1).
INT32_PAIRS_MAX_RECORDS = 2**31


def pair_dtype(n: int) -> Any:
    """The dtype of canonical pairs over ``n`` records: int32 while every index fits, else int64.

    Pairs are the largest arrays of a run (tens of candidate pairs per record), so their indices take the
    narrowest type that holds them. Code that combines two indices arithmetically (``left * n + right``) must
    widen them to int64 first.
    """
    return np.dtype(np.int32) if n <= INT32_PAIRS_MAX_RECORDS else np.dtype(np.int64)


def _empty_pairs(xp: Any = np, dtype: Any = np.int64) -> tuple[Any, Any]:
    return xp.zeros(0, dtype=dtype), xp.zeros(0, dtype=dtype)


def canonical_pairs(left: Any, right: Any, xp: Any = np) -> tuple[Any, Any]:
    """Make pairs canonical: ``(min, max)`` per pair, self pairs dropped, unique, sorted.

    Parameters
    ----------
    left, right : int[m]
        Record indices (>= 0) of each pair, in any order, possibly repeated.
    xp : module, default numpy
        The array module the pairs live in (``cupy``: the work stays on the device).

    Returns
    -------
    left, right : int32 or int64[m']
        ``left < right``, each pair once, sorted by ``(left, right)``; :func:`pair_dtype` of the largest index
        + 1.
    """
    lo, hi, _ = _canonical(left, right, None, xp)
    return lo, hi


# Pairs pack into one int64 key (lo * base + hi) while base**2 stays below 2**63.
_PACK_LIMIT = 3_037_000_499
# Combined key codes stay below this (see key_codes).
_CODE_LIMIT = 2**62


def _canonical(left: Any, right: Any, values: Any, xp: Any = np) -> tuple[Any, Any, Any]:
    """Canonical pairs, optionally carrying one value per pair (which copy of a repeated pair keeps its value
    is not specified: the copies hold the same value up to rounding)."""
    left = xp.asarray(left, dtype=xp.int64)
    right = xp.asarray(right, dtype=xp.int64)
    if left.size == 0:
        return _empty_pairs(xp, pair_dtype(0)) + (None if values is None else values[:0],)
    base = max(int(left.max()), int(right.max())) + 1
    if base <= _PACK_LIMIT:
        keys = pack_pairs(left, right, base, xp)
        if values is None:
            return union_pairs([keys], base, xp) + (None,)
        # an unstable sort does: np.unique's return_index would force a slower stable one
        order = xp.argsort(keys)
        keys, values = keys[order], values[order]
        keep = run_starts(keys, xp)
        keep &= keys >= 0
        return _split_keys(keys[keep], base, xp) + (values[keep],)
    lo = xp.minimum(left, right)
    hi = xp.maximum(left, right)
    keep = lo != hi
    lo, hi = lo[keep], hi[keep]
    order = xp.argsort(hi, kind="stable")  # two stable sorts: by (lo, hi)
    order = order[xp.argsort(lo[order], kind="stable")]
    lo, hi = lo[order], hi[order]
    first = xp.ones(lo.size, dtype=bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return lo[first], hi[first], None if values is None else values[keep][order][first]


def pack_pairs(left: Any, right: Any, n: int, xp: Any = np) -> Any:
    """One int64 key per pair, ``min * n + max`` (-1 for a self pair), for records numbered below ``n``.

    A pair costs 8 bytes this way instead of 16, and the union of several sources of pairs is one sort of
    keys (:func:`union_pairs`).
    """
    _check_packable(n)
    if xp is np:
        keys = np.empty(left.size, dtype=np.int64)
        _packed_keys(np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64), n, keys)
        return keys
    # the same keys with array operations (a Numba CPU kernel cannot read device memory)
    lo, hi = xp.minimum(left, right), xp.maximum(left, right)
    return xp.where(lo == hi, -1, lo * n + hi)


def union_pairs(parts: list, n: int, xp: Any = np, threads: int = 1) -> tuple[Any, Any]:
    """Canonical pairs (``left < right``, unique, sorted) from lists of keys made by :func:`pack_pairs`.

    ``parts`` is emptied: its arrays are copied one after the other into one array (or the only one taken),
    each freed as soon as it is copied, and sorted in place. On the host the new array's pages take memory
    only as they are written, so the keys are held about once, not twice (on the device, CuPy allocates it
    whole, and the peak is two copies of the keys, 8 bytes a pair each). The distinct keys are then decoded
    into ``left`` and ``right`` (:func:`pair_dtype`): on the host in one pass, with no compacted copy of the
    keys, so the peak is 8 bytes a raw pair plus 8 (int32) a distinct one.

    ``threads`` (host only): the keys are sorted in that many runs at once, in place, and the runs merged as
    they are decoded (:func:`_decode_distinct`), since one sort of 68M keys took ~1.5-1.8 s on one core. The
    result does not depend on it.
    """
    if not parts:
        return _empty_pairs(xp, pair_dtype(n))
    if len(parts) == 1:
        keys = parts.pop()
    else:
        keys = xp.empty(sum(int(part.size) for part in parts), dtype=xp.int64)
        start = 0
        while parts:
            part = parts.pop(0)
            keys[start : start + part.size] = part
            start += int(part.size)
            del part
    if keys.size == 0:
        return _empty_pairs(xp, pair_dtype(n))
    if xp is np:
        return _decode_distinct(keys, n, threads)
    keys.sort()
    keep = run_starts(keys, xp)
    keep &= keys >= 0  # self pairs were packed as -1
    return _split_keys(keys[keep], n, xp)


def _split_keys(keys: Any, n: int, xp: Any = np) -> tuple[Any, Any]:
    """``(keys // n, keys % n)`` in :func:`pair_dtype`, one int64 temporary at a time."""
    dtype = pair_dtype(n)
    left = (keys // n).astype(dtype, copy=False)
    right = (keys % n).astype(dtype, copy=False)
    return left, right


# Sorted keys per block of the host decoder's two parallel passes.
_DECODE_BLOCK = 1 << 20


def _decode_distinct(keys: np.ndarray, n: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The distinct non-negative keys of ``keys`` (sorted here, in place), decoded into ``(left, right)``
    (:func:`pair_dtype`), in ascending key order.

    One thread: the keys are sorted, then two parallel passes over blocks of them count each block's distinct
    keys and decode them straight to their place, so neither a keep-mask nor a compacted copy of the keys is
    made. More threads: the keys are cut into that many runs, each sorted in place on its own thread (numpy's
    sort releases the GIL), and the runs are merged by ranges of key values (:func:`_merge_ranges`), a range
    per task, counted and then decoded in the same two passes.
    """
    runs = max(1, min(threads, keys.size // _MIN_SORT_RUN))
    if runs == 1:
        keys.sort()
        n_blocks = (keys.size + _DECODE_BLOCK - 1) // _DECODE_BLOCK
        counts = np.zeros(n_blocks + 1, dtype=np.int64)
        _count_distinct(keys, _DECODE_BLOCK, counts[1:])
        np.cumsum(counts, out=counts)
        dtype = pair_dtype(n)
        left = np.empty(int(counts[-1]), dtype=dtype)
        right = np.empty(int(counts[-1]), dtype=dtype)
        _decode_blocks(keys, _DECODE_BLOCK, counts, n, left, right)
        return left, right
    edges = np.linspace(0, keys.size, runs + 1).astype(np.int64)
    thread_map(lambda r: keys[edges[r]:edges[r + 1]].sort(), range(runs), runs)
    # Range boundaries from every run's quantiles, so that the ranges hold about as many keys each; a
    # value's every copy falls in one range, so a range's distinct keys are its own.
    ranges = 4 * runs
    picks = np.concatenate([keys[edges[r] + (edges[r + 1] - edges[r]) * np.arange(1, ranges) // ranges]
                            for r in range(runs)])
    bounds = np.unique(np.sort(picks)[runs // 2::runs])
    cuts = np.empty((runs, bounds.size + 2), dtype=np.int64)  # where each range starts in each run
    for r in range(runs):
        run = keys[edges[r]:edges[r + 1]]
        cuts[r, 0], cuts[r, -1] = edges[r], edges[r + 1]
        cuts[r, 1:-1] = edges[r] + np.searchsorted(run, bounds, side="left")
    counts = np.zeros(cuts.shape[1], dtype=np.int64)
    dtype = pair_dtype(n)
    nothing = np.empty(0, dtype=dtype)
    _merge_ranges(keys, cuts, n, counts, nothing, nothing, False)
    starts = np.zeros(cuts.shape[1], dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    left = np.empty(int(starts[-1]), dtype=dtype)
    right = np.empty(int(starts[-1]), dtype=dtype)
    _merge_ranges(keys, cuts, n, starts, left, right, True)
    return left, right


# Fewest keys a sorted run of _decode_distinct holds (fewer keys: fewer runs, down to one sort).
_MIN_SORT_RUN = 1 << 20


@numba.njit(cache=True, nogil=True, parallel=True)
def _merge_ranges(keys, cuts, n, starts, left, right, write):
    # Range j is cuts[r, j]:cuts[r, j + 1] of every sorted run r: merged by taking the smallest head each step
    # (the runs are few: one per thread), each distinct non-negative key counted into starts[j], or, with
    # ``write``, decoded from starts[j] on.
    runs = cuts.shape[0]
    for j in numba.prange(cuts.shape[1] - 1):
        at = cuts[:, j].copy()
        end = cuts[:, j + 1]
        out = starts[j] if write else 0
        previous = -1
        while True:
            best = -1
            key = 0
            for r in range(runs):
                if at[r] < end[r] and (best < 0 or keys[at[r]] < key):
                    best = r
                    key = keys[at[r]]
            if best < 0:
                break
            at[best] += 1
            if key >= 0 and key != previous:
                if write:
                    left[out] = key // n
                    right[out] = key % n
                out += 1
                previous = key
        if not write:
            starts[j] = out


@numba.njit(cache=True, nogil=True, parallel=True)
def _count_distinct(keys, block, counts):
    for b in numba.prange(counts.shape[0]):
        count = 0
        for i in range(b * block, min((b + 1) * block, keys.shape[0])):
            if keys[i] >= 0 and (i == 0 or keys[i] != keys[i - 1]):
                count += 1
        counts[b] = count


@numba.njit(cache=True, nogil=True, parallel=True)
def _decode_blocks(keys, block, starts, n, left, right):
    for b in numba.prange(starts.shape[0] - 1):
        out = starts[b]
        for i in range(b * block, min((b + 1) * block, keys.shape[0])):
            key = keys[i]
            if key >= 0 and (i == 0 or key != keys[i - 1]):
                left[out] = key // n
                right[out] = key % n
                out += 1


def _check_packable(n: int) -> None:
    if n > _PACK_LIMIT:
        raise InputError(f"{n:,} records are more than one run can pair ({_PACK_LIMIT:,}): split the input")


@numba.njit(cache=True, nogil=True, parallel=True)
def _packed_keys(left, right, base, out):
    # One fused pass instead of min, max, compare, mask and multiply-add over 10M+ pairs.
    for i in numba.prange(left.shape[0]):
        a = left[i]
        b = right[i]
        if a == b:
            out[i] = -1
        elif a < b:
            out[i] = a * base + b
        else:
            out[i] = b * base + a


def _group(codes: Any, xp: Any = np) -> tuple[Any, Any, Any]:
    """Group records by code (codes < 0 left out): members sorted by code, group starts and sizes."""
    rows = xp.flatnonzero(codes >= 0)
    order = rows[stable_argsort(codes[rows], xp)].astype(xp.int64, copy=False)
    if order.size == 0:
        return order, xp.zeros(0, dtype=xp.int64), xp.zeros(0, dtype=xp.int64)
    starts = xp.flatnonzero(run_starts(codes[order], xp))
    sizes = xp.diff(xp.concatenate((starts, xp.asarray([order.size], dtype=starts.dtype))))
    return order, starts, sizes


def _pairs_within(members: Any, starts: Any, sizes: Any, xp: Any = np) -> tuple[Any, Any]:
    """All pairs inside each group ``members[start:start + size]``, vectorised (no loop over groups)."""
    sizes = sizes.astype(xp.int64)
    total = int((sizes * (sizes - 1) // 2).sum())
    if total == 0:
        return _empty_pairs(xp)
    # Position p of a group pairs with the (size - 1 - p) positions after it: repeat each member that many
    # times, then number the repeats 1, 2, … to reach its partners.
    group_of = repeat(xp.arange(sizes.size), sizes, xp)
    pos_in_group = xp.arange(group_of.size) - repeat(xp.cumsum(sizes) - sizes, sizes, xp)
    flat_index = repeat(starts, sizes, xp) + pos_in_group
    after = sizes[group_of] - 1 - pos_in_group
    first = repeat(flat_index, after, xp)
    run_start = repeat(xp.cumsum(after) - after, after, xp)
    second = first + 1 + (xp.arange(total) - run_start)
    return members[first], members[second]


def key_codes(frame: Any, columns: Sequence[str], cache: dict | None = None, xp: Any = np) -> Any:
    """Give every record an int64 code for the tuple of its values in ``columns``.

    Parameters
    ----------
    frame : pandas or cudf DataFrame with n rows
    columns : sequence of column names
        The key's columns; records agreeing on all of them get the same code.
    cache : dict, optional
        Column name → :func:`gpucdp.arrays.factorize` result, filled and reused across calls and stages: rules
        share columns, and factorising a 1M-row string column costs ~0.15 s.
    xp : module, default numpy
        Where the codes are combined and returned (``cupy``: each column's codes are copied to the device once
        per run, through ``cache``).

    Returns
    -------
    int64[n]
        Codes >= 0, equal exactly for records with equal values in every column (not dense: they are the
        tuple's mixed-radix number while it fits), or -1 where any key column is null or the empty string (a
        missing key must not block all missing records together).

    Raises
    ------
    SettingsError
        ``columns`` is empty.
    InputError
        A column is not in ``frame``.
    """
    if len(columns) == 0:
        raise SettingsError("a blocking key needs at least one column; list the columns of the key")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"blocking key column(s) {missing} not found; available columns: {list(frame.columns)}")
    codes: Any = None
    bound = 1  # codes < bound
    for name in columns:
        col_codes, uniques = cached_factorize(cache, name, frame[name], xp)
        n_uniques = max(len(uniques), 1)
        if codes is None:
            codes, bound = col_codes.astype(xp.int64), n_uniques
            continue
        if bound * n_uniques >= _CODE_LIMIT:
            # Re-factorising brings codes below n, so the product below cannot overflow int64; two columns
            # never need it (n² < 2**62 up to 2e9 records), which saves a hash pass per rule.
            valid = codes >= 0
            dense = xp.full(codes.shape[0], -1, dtype=xp.int64)
            if xp is np:
                dense[valid], distinct = pd.factorize(codes[valid])
            else:
                distinct, dense[valid] = xp.unique(codes[valid], return_inverse=True)
            codes, bound = dense, max(len(distinct), 1)
        invalid = (codes < 0) | (col_codes < 0)
        codes = codes * n_uniques + col_codes
        codes[invalid] = -1
        bound *= n_uniques
    assert codes is not None
    return codes


def key_pairs(codes: Any, max_block_size: int, *, canonical: bool = True,
              before_pairs: Callable[[int], None] | None = None,
              xp: Any = np) -> tuple[Any, Any, dict[str, int]]:
    """All pairs of records inside each block of an exact key, skipping blocks that are too large.

    Parameters
    ----------
    codes : int64[n]
        A block key per record (:func:`key_codes`); -1 means no key (the record joins no block).
    max_block_size : int >= 2
        Blocks with more records are skipped: their all-pairs would swamp the comparison stage and such
        popular keys (a shared family phone, a placeholder email) are weak evidence anyway.
    before_pairs : callable, optional
        Called with the number of pairs the rule will make, before they are made (a memory check may refuse).
    xp : module, default numpy
        The array module of ``codes`` and of the pairs made (``cupy``: grouped and paired on the device).

    Returns
    -------
    left, right : int32/int64[m]
        Canonical pairs (see :func:`canonical_pairs`); with ``canonical=False`` int64, each pair once, in block
        order and either orientation (for a caller that canonicalises the union of several rules once).
    stats : dict
        ``blocks`` (blocks that made pairs), ``pairs``, ``oversized_blocks``, ``records_in_oversized``.
    """
    members, starts, sizes, _, stats = _blocks(codes, max_block_size, before_pairs, xp)
    left, right = _pairs_within(members, starts, sizes, xp)
    if canonical:
        left, right = canonical_pairs(left, right, xp)
    return left, right, stats


def key_pair_keys(codes: Any, max_block_size: int, *, before_pairs: Callable[[int], None] | None = None,
                  xp: Any = np) -> tuple[Any, dict[str, int]]:
    """The pairs of :func:`key_pairs` as packed keys (:func:`pack_pairs` with ``n = len(codes)``): 8 bytes a pair.

    A Numba kernel (:mod:`gpucdp.kernels.pairs`) writes each block's keys straight into the result, with no
    per-pair temporaries: on the CPU, or on the device when ``xp`` is CuPy (a thread per block).

    Returns
    -------
    keys : int64[m]
        ``min * n + max`` per pair, in block order (not sorted); see :func:`union_pairs`.
    stats : dict
        As :func:`key_pairs`'.
    """
    n = int(codes.shape[0])
    _check_packable(n)
    members, starts, sizes, counts, stats = _blocks(codes, max_block_size, before_pairs, xp)
    offsets = xp.zeros(counts.size + 1, dtype=xp.int64)
    offsets[1:] = xp.cumsum(counts)
    keys = xp.empty(stats["pairs"], dtype=xp.int64)
    if xp is np:
        pairs_kernels.block_keys_cpu(members, starts, sizes, offsets, n, keys)
    elif sizes.size:
        _block_keys_cuda(members, starts, sizes, offsets, n, keys)
    return keys, stats


def _block_keys_cuda(members: Any, starts: Any, sizes: Any, offsets: Any, n: int, out: Any) -> None:
    """Launch :data:`gpucdp.kernels.pairs.block_keys_cuda`, a thread per block, on arrays already on the device."""
    if pairs_kernels.block_keys_cuda is None:
        raise BackendUnavailableError(
            "key rules on the GPU need numba-cuda: install it with `pip install 'gpucdp[gpu]'`, or use the CPU "
            "backend"
        )
    from gpucdp.kernels.device import as_device

    threads = 128
    blocks = (int(sizes.shape[0]) + threads - 1) // threads
    pairs_kernels.block_keys_cuda[blocks, threads](as_device(members), as_device(starts), as_device(sizes),
                                                   as_device(offsets), n, as_device(out))


def _blocks(codes: Any, max_block_size: int, before_pairs: Callable[[int], None] | None,
            xp: Any) -> tuple[Any, Any, Any, Any, dict[str, int]]:
    """The blocks a rule pairs within: members, starts and sizes of the used blocks, their pair counts and
    the rule's stats (``before_pairs`` is told the total first)."""
    if not isinstance(max_block_size, (int, np.integer)) or max_block_size < 2:
        raise SettingsError(f"max_block_size={max_block_size!r} is not valid: use an integer >= 2")
    codes = xp.asarray(codes, dtype=xp.int64)
    members, starts, sizes = _group(codes, xp)
    oversized = sizes > max_block_size
    used = (sizes >= 2) & ~oversized
    used_sizes = sizes[used].astype(xp.int64)
    counts = used_sizes * (used_sizes - 1) // 2
    total = int(counts.sum())
    if before_pairs is not None:
        before_pairs(total)
    stats = {
        "blocks": int(used.sum()),
        "pairs": total,
        "oversized_blocks": int(oversized.sum()),
        "records_in_oversized": int(sizes[oversized].sum()),
    }
    return members, starts[used], used_sizes, counts, stats


def filter_mode(left: Any, right: Any, source_codes: Any, mode: str, xp: Any = np) -> tuple[Any, Any]:
    """Keep the pairs a linkage mode asks for.

    Parameters
    ----------
    left, right : int[m]
        Pairs of record indices.
    source_codes : int[n]
        The source system of each record, as a code.
    mode : {"dedupe", "link", "link_and_dedupe"}
        ``dedupe`` keeps pairs within one source, ``link`` pairs across sources, ``link_and_dedupe`` all.
    xp : module, default numpy
        The array module of the pairs (``source_codes`` is moved there).

    Returns
    -------
    left, right : [m']
        The kept pairs, in their input order and dtype.
    """
    if mode not in MODES:
        raise SettingsError(f"mode={mode!r} is not valid: use one of {', '.join(MODES)}")
    if mode == "link_and_dedupe":
        return left, right
    source_codes = xp.asarray(source_codes)
    same = source_codes[left] == source_codes[right]
    keep = same if mode == "dedupe" else ~same
    return left[keep], right[keep]


def _distinct_rows(emb: Any, xp: Any = np) -> tuple[Any, Any, Any]:
    """Group identical rows: members sorted by group, group starts and sizes (group g's vector is
    ``emb[members[starts[g]]]``); arrays of ``xp``, where ``emb`` lives."""
    words = emb.view(xp.uint32)
    # A 64-bit polynomial hash of the row's bits, then a check that the grouping is exact (a collision is
    # astronomically unlikely, but if one happens the slow exact path takes over).
    h = xp.zeros(emb.shape[0], dtype=xp.uint64)
    prime = np.uint64(1099511628211)
    for j in range(words.shape[1]):
        h = h * prime + words[:, j]
    _, inverse = xp.unique(h, return_inverse=True)
    inverse = inverse.astype(xp.int64).ravel()
    members, starts, sizes = _group(inverse, xp)
    group_of_row = xp.empty(emb.shape[0], dtype=xp.int64)
    group_of_row[members] = repeat(xp.arange(sizes.size), sizes, xp)
    if not bool(xp.array_equal(emb, emb[members[starts][group_of_row]])):
        members, starts, sizes = _group(_row_codes(words, xp), xp)
    return members, starts, sizes


def _row_codes(words: Any, xp: Any = np) -> Any:
    """A code per row of ``words`` (uint32[n, w]), equal for equal rows: their rank among the distinct rows in
    lexicographic order. Exact, by a sort of the rows themselves (CuPy's ``unique(axis=0)`` is a host-side
    sort in CuPy 13 and groups rows by a 32-bit checksum later)."""
    n = words.shape[0]
    if n == 0:
        return xp.zeros(0, dtype=xp.int64)
    order = xp.lexsort(words.T[::-1])  # the last key is the primary one: column 0 first
    ordered = words[order]
    new = xp.ones(n, dtype=xp.bool_)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    codes = xp.empty(n, dtype=xp.int64)
    codes[order] = xp.cumsum(new) - 1
    return codes


def _build_index(vectors: np.ndarray, *, kind: str, faiss: Any, use_gpu: bool, nlist: int | None,
                 nprobe: int | None, k: int) -> Any:
    """A FAISS inner-product index over ``vectors``, built on the CPU and cloned to the GPUs if asked (CAGRA
    is built on the GPU directly, over squared L2 distances: see :func:`knn_pairs`)."""
    n, dim = vectors.shape
    if kind == "cagra":  # pragma: no cover - needs a GPU build of FAISS with cuVS
        config = faiss.GpuIndexCagraConfig()
        # The graph's degree bounds its memory (n x intermediate degree while it is built), not the k that a
        # search returns: that is the search's itopk_size (see _cagra_search_parameters).
        config.graph_degree = min(CAGRA_GRAPH_DEGREE, max(32, 2 * k))
        config.intermediate_graph_degree = 2 * config.graph_degree
        index = faiss.GpuIndexCagra(faiss.StandardGpuResources(), dim, faiss.METRIC_L2, config)
        index.train(vectors)
        return index
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        if use_gpu:  # pragma: no cover - needs a GPU build of FAISS
            index = faiss.index_cpu_to_all_gpus(index)
        index.add(vectors)
    elif kind == "ivf":
        nlist = nlist or max(1, min(int(math.sqrt(n)), n // 39))
        probes = min(nprobe or IVF_NPROBE, nlist)  # more lists than there are would search no more
        if use_gpu and probes > GPU_MAX_NPROBE:
            raise SettingsError(f"blocking.knn.nprobe={nprobe}: FAISS's GPU IVF index probes at most "
                                f"{GPU_MAX_NPROBE} lists a query; set nprobe to {GPU_MAX_NPROBE} or less")
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        # 64 points per list train the coarse quantizer well enough; FAISS would sample 256 per list.
        sample = np.random.default_rng(0).choice(n, size=min(n, 64 * nlist), replace=False)
        index.train(vectors[np.sort(sample)])
        if use_gpu:  # pragma: no cover - needs a GPU build of FAISS
            # cloned trained but empty, so that the GPU assigns the vectors to their lists
            index.nprobe = probes
            index = faiss.index_cpu_to_all_gpus(index)
            faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", probes)
        else:
            index.nprobe = probes
        index.add(vectors)
    else:  # hnsw: no GPU version in FAISS, so it stays on the CPU
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
        index.add(vectors)
        index.hnsw.efSearch = max(nprobe or 64, k + 1)
    return index


def _cagra_search_parameters(faiss: Any, kk: int) -> Any:  # pragma: no cover - needs a GPU build of FAISS
    """CAGRA's search parameters for ``kk`` neighbours a query: cuVS refuses a search whose k exceeds the
    intermediate list it keeps (``itopk_size``, 64 by default), and a longer list finds more of the true
    neighbours. Twice k, in multiples of 32, within the 512 that its single-block search takes."""
    params = faiss.SearchParametersCagra()
    params.itopk_size = max(kk, min(512, 32 * math.ceil(max(64, 2 * kk) / 32)))
    return params


def _expand(members: Any, starts: Any, sizes: Any, gu: Any, gv: Any, cap: int,
            xp: Any = np) -> tuple[Any, Any, Any]:
    """Map pairs of distinct vectors (gu, gv) back to pairs of records: the first ``cap`` records of each
    vector, all combinations. Returns (left, right, edge) with the index of the vector pair each came from."""
    cu = xp.minimum(sizes[gu], cap)
    cv = xp.minimum(sizes[gv], cap)
    counts = cu * cv
    if not bool((counts != 1).any()):  # the common case: no vector is shared, nothing to expand
        return members[starts[gu]], members[starts[gv]], xp.arange(gu.size)
    edge = repeat(xp.arange(gu.size), counts, xp)
    local = xp.arange(edge.size) - repeat(xp.cumsum(counts) - counts, counts, xp)
    width = cv[edge]
    return members[starts[gu][edge] + local // width], members[starts[gv][edge] + local % width], edge


def _auto_index(n_distinct: int, on_device: bool, faiss_gpu: bool) -> str:
    """The index ``auto`` picks: exact while it is cheap (on a GPU up to :data:`GPU_EXACT_MAX` with FAISS's
    search, :data:`CUPY_EXACT_MAX` with CuPy's), then IVF (CuPy: k-means cells), and on a CPU past
    :data:`IVF_MAX` the cell join."""
    exact_max = EXACT_MAX if not on_device else GPU_EXACT_MAX if faiss_gpu else CUPY_EXACT_MAX
    if n_distinct <= max(EXACT_MAX, exact_max):
        return "flat"
    return "ivf" if on_device or n_distinct <= IVF_MAX else "cells"


def _append_expanded(parts_l: list, parts_r: list, parts_s: list, members: Any, starts: Any, sizes: Any,
                     gu: Any, gv: Any, gs: Any, cap: int, xp: Any = np) -> None:
    el, er, edge = _expand(members, starts, sizes, gu, gv, cap, xp)
    parts_l.append(el)
    parts_r.append(er)
    parts_s.append(gs[edge])


def _argsort_small(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Stable argsort of codes in ``[0, n_codes)``; narrow dtypes let numpy use its O(n) radix sort."""
    if n_codes <= 2**16:
        codes = codes.astype(np.uint16)
    return np.argsort(codes, kind="stable")


def _spherical_kmeans(x: np.ndarray, n_clusters: int, faiss: Any, seed: int) -> np.ndarray:
    """Centroids float32[n_clusters, dim] of a spherical k-means on (a sample of) ``x``."""
    kmeans = faiss.Kmeans(x.shape[1], n_clusters, niter=8, spherical=True, seed=seed,
                          max_points_per_centroid=64, verbose=False)
    kmeans.train(np.ascontiguousarray(x))
    return kmeans.centroids


def _nearest(x: np.ndarray, centroids: np.ndarray, m: int) -> np.ndarray:
    """Indices int64[len(x), m] of the m centroids with the largest inner product with each row of ``x``."""
    sims = x @ centroids.T
    if m == 1:
        return np.argmax(sims, axis=1).astype(np.int64)[:, None]
    if m >= centroids.shape[0]:
        return np.argsort(-sims, axis=1).astype(np.int64)
    top = np.argpartition(-sims, m - 1, axis=1)[:, :m]
    return top.astype(np.int64)


def _cell_join(vectors: np.ndarray, *, k: int, min_similarity: float, faiss: Any, n_cells: int | None,
               assign: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Approximate kNN self-join: exact top-k inside balanced k-means cells (CPU path of ``index="cells"``).

    Returns pairs of row indices of ``vectors`` with their inner products (each row's top ``k`` within its
    cells, ``>= min_similarity``; a pair may appear twice).

    Notes
    -----
    A two-level spherical k-means splits the vectors into ``n_cells`` cells of about :data:`CELL_SIZE` rows:
    ``sqrt(n_cells)`` coarse cells, each split into sub-cells in proportion to its size, which keeps cells
    balanced even where common names pile up and keeps assignment cheap (``2 * sqrt(n_cells)`` inner products
    per row instead of ``n_cells``). Each row joins its ``assign`` nearest sub-cells of its coarse cell. Inside a
    cell every pair's inner product is computed once and offered to both rows' top-k lists
    (:func:`_cell_top_k`, a Numba ``prange`` over cells). On the 2-core CI machine this ran several times faster
    than FAISS's IVF scan over the same number of candidates, and than per-cell BLAS calls (tiny GEMMs).
    """
    n = vectors.shape[0]
    n_cells = n_cells or max(1, n // CELL_SIZE)
    rng = np.random.default_rng(0)
    n_coarse = max(1, min(round(math.sqrt(n_cells)), n // 64))
    sample = vectors[np.sort(rng.choice(n, size=min(n, 64 * n_coarse), replace=False))]
    coarse = _spherical_kmeans(sample, n_coarse, faiss, seed=1) if n_coarse > 1 else None
    top = _nearest(vectors, coarse, 1)[:, 0] if coarse is not None else np.zeros(n, dtype=np.int64)
    order = _argsort_small(top, n_coarse)
    bounds = np.searchsorted(top[order], np.arange(n_coarse + 1))
    out_l, out_r, out_s = [], [], []
    for t in range(n_coarse):
        rows = order[bounds[t] : bounds[t + 1]]
        if rows.size < 2:
            continue
        x = vectors[rows]
        n_sub = max(1, min(round(n_cells * rows.size / n), rows.size // 64))
        if n_sub > 1:
            sub_sample = x[np.sort(rng.choice(rows.size, size=min(rows.size, 64 * n_sub), replace=False))]
            fine = _nearest(x, _spherical_kmeans(sub_sample, n_sub, faiss, seed=2 + t), min(assign, n_sub))
        else:
            fine = np.zeros((rows.size, 1), dtype=np.int64)
        flat_cells = fine.ravel()
        flat_rows = np.repeat(np.arange(rows.size), fine.shape[1])
        cell_order = _argsort_small(flat_cells, n_sub)
        cell_starts = np.searchsorted(flat_cells[cell_order], np.arange(n_sub + 1)).astype(np.int64)
        slots = flat_rows[cell_order].astype(np.int64)
        nbr = np.full((slots.size, k), -1, dtype=np.int64)
        sim = np.full((slots.size, k), -np.inf, dtype=np.float32)
        _cell_top_k(x, slots, cell_starts, np.float32(min_similarity), nbr, sim)
        found = nbr.ravel() >= 0
        out_l.append(rows[np.repeat(slots, k)[found]])
        out_r.append(rows[nbr.ravel()[found]])
        out_s.append(sim.ravel()[found])
    if not out_l:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    return np.concatenate(out_l), np.concatenate(out_r), np.concatenate(out_s)


@numba.njit(cache=True, nogil=True)
def _offer(nbr, sim, j, other, dot):
    # Insert into row j's list, kept sorted by decreasing similarity; a full list drops its last entry.
    k = nbr.shape[1]
    if dot > sim[j, k - 1]:
        p = k - 1
        while p > 0 and sim[j, p - 1] < dot:
            sim[j, p] = sim[j, p - 1]
            nbr[j, p] = nbr[j, p - 1]
            p -= 1
        sim[j, p] = dot
        nbr[j, p] = other


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def _cell_top_k(x, slots, cell_starts, min_similarity, nbr, sim):
    """Exact top-k inside each cell, in place: ``nbr[j]``/``sim[j]`` hold the best neighbours of ``slots[j]``.

    Parameters
    ----------
    x : float32[m, dim]
        The vectors.
    slots : int64[s]
        Rows of ``x`` grouped by cell: cell c is ``slots[cell_starts[c]:cell_starts[c + 1]]``.
    cell_starts : int64[n_cells + 1]
    min_similarity : float32
        Neighbours below it are ignored.
    nbr : int64[s, k], sim : float32[s, k]
        Filled with -1 / -inf by the caller; each row ends sorted by decreasing similarity.

    Notes
    -----
    A ``prange`` over cells; each inner product is computed once and offered to both rows' lists (insertion
    into a sorted list of length k, which beats a heap for the small k used here).
    """
    n_cells = cell_starts.shape[0] - 1
    dim = x.shape[1]
    for c in numba.prange(n_cells):
        lo = cell_starts[c]
        hi = cell_starts[c + 1]
        for a in range(lo, hi):
            ra = slots[a]
            for b in range(a + 1, hi):
                rb = slots[b]
                dot = np.float32(0.0)
                for d in range(dim):
                    dot += x[ra, d] * x[rb, d]
                if dot < min_similarity:
                    continue
                _offer(nbr, sim, a, rb, dot)
                _offer(nbr, sim, b, ra, dot)


def knn_pairs(
    emb: np.ndarray,
    *,
    k: int,
    min_similarity: float,
    faiss: Any,
    use_gpu: bool = False,
    index: str = "auto",
    nlist: int | None = None,
    nprobe: int | None = None,
    batch: int = 65536,
    max_group: int = 64,
    xp: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate pairs from a k-nearest-neighbour self-join of the embeddings (inner product = cosine).

    Parameters
    ----------
    emb : float32[n, dim]
        L2-normalised embeddings (:func:`gpucdp.embed.embed_records`). Zero rows (no field present) pair with
        nothing.
    k : int >= 1
        Neighbours searched per distinct vector (itself excluded).
    min_similarity : float in [-1, 1]
        Pairs below this inner product are dropped.
    faiss : module
        The FAISS module (from :class:`gpucdp.backend.Backend`); this module imports no GPU library itself.
    use_gpu : bool, default False
        Clone the index to all GPUs (``faiss.index_cpu_to_all_gpus``) before searching.
    index : {"auto", "flat", "ivf", "hnsw", "cells"}
        ``flat`` is exact; ``ivf`` is ``IndexIVFFlat`` with a coarse quantizer trained on a sample of the data;
        ``hnsw`` is ``IndexHNSWFlat`` (M = 32, CPU only); ``cells`` is exact top-k inside balanced two-level
        k-means cells of about :data:`CELL_SIZE` vectors (CPU, BLAS; see :func:`_cell_join`). ``auto``:
        ``flat`` up to :data:`EXACT_MAX` distinct vectors (:data:`GPU_EXACT_MAX` with ``use_gpu``), then
        ``ivf`` (on a GPU, FAISS's CAGRA graph index when the installed FAISS has ``GpuIndexCagra``), and on
        the CPU past :data:`IVF_MAX` distinct vectors ``cells``.
    nlist : int, optional
        IVF lists, default ``sqrt(n_distinct)`` (at most ``n_distinct / 39``); for ``cells``, the number of
        cells, default ``n_distinct / CELL_SIZE``.
    nprobe : int, optional
        IVF lists probed per query (default ``min(nlist, 4)``); for ``hnsw``, ``efSearch`` (default 64); for
        ``cells``, the cells each vector joins (default 1).
    batch : int, default 65536
        Queries per search call, which bounds the memory of the result arrays.
    max_group : int >= 1, default 64
        Cap on identical vectors: records sharing one vector are searched once; all pairs among them are
        emitted when there are at most ``max_group`` of them (a larger group, e.g. thousands of records with
        only a common name filled in, is skipped — exact-key rules and the cluster guard deal with those); each
        neighbour pair of vectors expands to at most ``max_group`` records on each side, so one popular vector
        cannot explode the pair count.
    xp : module, optional
        An array module (``cupy`` on a GPU, ``numpy`` in tests). The embeddings, the grouping of identical
        vectors and the pairs stay in it (on the device with ``cupy``; only FAISS's search reads the distinct
        vectors on the host). Without ``use_gpu`` it also searches in place of FAISS: ``flat`` by exact
        batched matrix products (:func:`gpucdp.gpu.gemm_topk`), ``ivf`` and ``cells`` by windows of k-means
        cells (:func:`gpucdp.gpu.cell_topk`); ``auto`` is exact up to :data:`CUPY_EXACT_MAX` distinct vectors
        on a GPU (up to :data:`EXACT_MAX` with numpy).

    Returns
    -------
    left, right : int32 or int64[m]
        Canonical pairs (``left < right``, unique, sorted, :func:`pair_dtype`); arrays of ``xp`` when given.
    similarity : float32[m]
        Inner product of each pair's embeddings, ``>= min_similarity``.

    Notes
    -----
    The search runs on distinct vectors only, so exact duplicates (common in real data after standardisation)
    cost nothing extra and do not crowd a record's k neighbours with copies of itself.
    """
    on = np if xp is None else xp  # where the arrays live
    emb = np.ascontiguousarray(to_host(emb), dtype=np.float32) if on is np else on.asarray(emb, dtype=on.float32)
    if emb.ndim != 2 or emb.shape[1] < 1:
        raise InputError(f"emb must be a 2-d float32 array [n, dim]; got shape {emb.shape}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise SettingsError(f"k={k!r} is not valid: use an integer >= 1 (10 is a good default)")
    if not -1.0 <= float(min_similarity) <= 1.0:
        raise SettingsError(f"min_similarity={min_similarity!r} is not valid: use a number from -1 to 1")
    if index not in INDEX_CHOICES:
        raise SettingsError(f"index={index!r} is not valid: use one of {', '.join(INDEX_CHOICES)}")
    for name, value in (("nlist", nlist), ("nprobe", nprobe)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise SettingsError(f"{name}={value!r} is not valid: use a positive integer or leave it unset")
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise SettingsError(f"batch={batch!r} is not valid: use a positive integer")
    if not isinstance(max_group, (int, np.integer)) or max_group < 1:
        raise SettingsError(f"max_group={max_group!r} is not valid: use a positive integer")

    nonzero = (emb != 0).any(axis=1)
    members, starts, sizes = _distinct_rows(emb[nonzero], on)
    # Back to indices of emb (rows without any field were left out above).
    members = on.flatnonzero(nonzero)[members]
    n_distinct = int(sizes.size)
    vectors = emb[members[starts]]

    parts_l, parts_r, parts_s = [], [], []
    # Pairs among identical records: similarity is the vector's own squared norm (1 up to rounding).
    small = (sizes >= 2) & (sizes <= max_group)
    wl, wr = _pairs_within(members, starts[small], sizes[small], on)
    if wl.size:
        parts_l.append(wl)
        parts_r.append(wr)
        parts_s.append(on.einsum("ij,ij->i", emb[wl], emb[wr]))

    if n_distinct >= 2:
        on_device = use_gpu or (xp is not None and xp is not np)
        kind = index if index != "auto" else _auto_index(n_distinct, on_device, use_gpu)
        if xp is not None and not use_gpu and kind != "hnsw":
            from gpucdp.gpu import cell_topk, gemm_topk

            search = gemm_topk if kind == "flat" else cell_topk
            gu, gv, gs = search(vectors, k, xp=xp, min_similarity=float(min_similarity))
            _append_expanded(parts_l, parts_r, parts_s, members, starts, sizes, gu, gv, gs, max_group, on)
        elif kind == "cells":
            gu, gv, gs = _cell_join(to_host(vectors), k=k, min_similarity=float(min_similarity), faiss=faiss,
                                    n_cells=nlist, assign=nprobe or 1)
            _append_expanded(parts_l, parts_r, parts_s, members, starts, sizes, on.asarray(gu), on.asarray(gv),
                             on.asarray(gs), max_group, on)
        else:
            vectors = to_host(vectors)  # FAISS's Python API searches numpy arrays
            if kind == "ivf" and index == "auto" and use_gpu and hasattr(faiss, "GpuIndexCagra"):
                kind = "cagra"  # a GPU graph index: FAISS builds with cuVS have it
            built = _build_index(vectors, kind=kind, faiss=faiss, use_gpu=use_gpu, nlist=nlist, nprobe=nprobe,
                                 k=k)
            kk = min(k + 1, n_distinct)
            params = _cagra_search_parameters(faiss, kk) if kind == "cagra" else None
            for lo in range(0, n_distinct, batch):
                hi = min(lo + batch, n_distinct)
                sims, nbrs = built.search(vectors[lo:hi], kk, params=params)
                if kind == "cagra":  # squared L2 between unit vectors → inner product
                    sims = 1.0 - sims / 2.0
                query = np.repeat(np.arange(lo, hi, dtype=np.int64), kk)
                nbrs = nbrs.ravel().astype(np.int64, copy=False)
                sims = sims.ravel()
                # -1 marks a slot with no neighbour; in some FAISS builds CAGRA puts an id past the vectors
                keep = (nbrs >= 0) & (nbrs < n_distinct) & (nbrs != query) & (sims >= min_similarity)
                # A vector pair found from both ends is expanded twice; the final canonicalisation keeps one.
                _append_expanded(parts_l, parts_r, parts_s, members, starts, sizes, on.asarray(query[keep]),
                                 on.asarray(nbrs[keep]), on.asarray(sims[keep]), max_group, on)

    if not parts_l:
        return _empty_pairs(on, pair_dtype(0)) + (on.zeros(0, dtype=on.float32),)
    left = on.concatenate(parts_l)
    right = on.concatenate(parts_r)
    sim = on.concatenate(parts_s).astype(on.float32, copy=False)
    return _canonical(left, right, sim, on)
