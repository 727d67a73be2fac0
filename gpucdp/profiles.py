"""Unified profiles: one golden record per cluster, and the record → profile membership.

Survivorship: for each field the golden value is the most frequent non-null prepared value among the cluster's
records (ties go to the value seen first in the input, so the result is deterministic); emails and phones keep every
distinct value as a list. Everything works on integer codes (factorised values), never per cluster in Python.

Profile ids are stable across runs as long as a cluster keeps its anchor record (the member with the smallest
``(source, record_id)``): ``p`` + 16 hex digits of a keyed hash of the anchor.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import pandas as pd
import pyarrow as pa

from gpucdp.arrays import cached_factorize, factorize, run_starts, unique_counts, unique_sorted
from gpucdp.embed import column_buffers
from gpucdp.parallel import thread_map
from gpucdp.settings import FieldSettings

__all__ = ["build_profiles", "golden_columns", "golden_values", "profile_ids"]

_HASH_KEY = "gpucdp-profile-1"  # 16 characters, as pandas' hash needs
_IDS_PER_CHUNK = 100_000_000
# record ids and sources: Arrow string arrays (what the pipeline passes), or any sequence of str
Strings = pa.Array | pa.ChunkedArray | np.ndarray | Sequence[str]
LIST_TYPES = {"email", "phone"}


def profile_ids(labels: np.ndarray, source: Strings, record_id: Strings) -> pa.Array:
    """A profile id per cluster label (string[n_clusters]) from the cluster's anchor record.

    ``source`` and ``record_id`` (length n) may be Arrow arrays, which are used as they are: no Python string
    is made per record, only one per cluster for its hash.
    """
    labels = np.asarray(labels, dtype=np.int64)
    source, record_id = _as_arrow_strings(source), _as_arrow_strings(record_id)
    n_clusters = int(labels.max()) + 1 if labels.size else 0
    # each cluster's smallest (source, record_id), bytes compared as Arrow's sort compares them (UTF-8 byte
    # order is code point order): one pass over the records, where a sort of every record's strings took
    # ~1.7 s at 3M records on one core, the longest task of the profiles stage
    buffers = (*column_buffers(source), *column_buffers(record_id))
    anchor = _anchors(labels, n_clusters, *buffers)
    # pd.util.hash_array(anchors' "source\x1frecord_id", hash_key=_HASH_KEY, categorize=False), the ids since
    # the first release, computed from the buffers: SipHash-2-4 of the bytes, then pandas' mixing step
    hashed = np.empty(n_clusters, dtype=np.uint64)
    _anchor_siphashes(anchor, *buffers, *_HASH_KEY_WORDS, hashed)
    hashed ^= hashed >> np.uint64(30)
    hashed *= np.uint64(0xBF58476D1CE4E5B9)
    hashed ^= hashed >> np.uint64(27)
    hashed *= np.uint64(0x94D049BB133111EB)
    hashed ^= hashed >> np.uint64(31)
    return _hex_ids(hashed)


@numba.njit(cache=True, nogil=True)
def _anchors(labels, n_clusters, source_chars, source_offsets, id_chars, id_offsets):
    anchor = np.full(n_clusters, -1, dtype=np.int64)
    for i in range(labels.shape[0]):
        label = labels[i]
        a = anchor[label]
        if a < 0:
            anchor[label] = i
            continue
        order = _compare_bytes(source_chars, source_offsets[i], source_offsets[i + 1], source_offsets[a],
                               source_offsets[a + 1])
        if order == 0:
            order = _compare_bytes(id_chars, id_offsets[i], id_offsets[i + 1], id_offsets[a], id_offsets[a + 1])
        if order < 0:
            anchor[label] = i
    return anchor


# SipHash-2-4's initialisation constants ("somepseudorandomlygeneratedbytes")
_SIP = (np.uint64(0x736F6D6570736575), np.uint64(0x646F72616E646F6D), np.uint64(0x6C7967656E657261),
        np.uint64(0x7465646279746573))
_HASH_KEY_WORDS = tuple(np.frombuffer(_HASH_KEY.encode(), dtype="<u8").astype(np.uint64))  # k0, k1
_SEPARATOR = 0x1F


@numba.njit(cache=True, nogil=True, parallel=True)
def _anchor_siphashes(anchor, source_chars, source_offsets, id_chars, id_offsets, k0, k1, out):
    # SipHash-2-4 (as pandas' hash_object_array computes it) of source + "\x1f" + record_id of each anchor,
    # read in place: byte j of that text comes from the source, the separator or the record id
    for c in numba.prange(anchor.shape[0]):
        i = anchor[c]
        s0 = source_offsets[i]
        n_source = source_offsets[i + 1] - s0
        r0 = id_offsets[i]
        length = n_source + 1 + id_offsets[i + 1] - r0
        v0 = k0 ^ _SIP[0]
        v1 = k1 ^ _SIP[1]
        v2 = k0 ^ _SIP[2]
        v3 = k1 ^ _SIP[3]
        full = length - length % 8
        tail = np.uint64(length) << np.uint64(56)
        word = np.uint64(0)
        for j in range(length):
            if j < n_source:
                byte = source_chars[s0 + j]
            elif j == n_source:
                byte = _SEPARATOR
            else:
                byte = id_chars[r0 + j - n_source - 1]
            if j < full:
                word |= np.uint64(byte) << np.uint64(8 * (j % 8))
                if j % 8 == 7:
                    v3 ^= word
                    v0, v1, v2, v3 = _sip_rounds(v0, v1, v2, v3, 2)
                    v0 ^= word
                    word = np.uint64(0)
            else:
                tail |= np.uint64(byte) << np.uint64(8 * (j - full))
        v3 ^= tail
        v0, v1, v2, v3 = _sip_rounds(v0, v1, v2, v3, 2)
        v0 ^= tail
        v2 ^= np.uint64(0xFF)
        v0, v1, v2, v3 = _sip_rounds(v0, v1, v2, v3, 4)
        out[c] = v0 ^ v1 ^ v2 ^ v3


@numba.njit(cache=True, nogil=True, inline="always")
def _sip_rounds(v0, v1, v2, v3, count):
    for _ in range(count):
        v0 += v1
        v1 = _rotl(v1, 13)
        v1 ^= v0
        v0 = _rotl(v0, 32)
        v2 += v3
        v3 = _rotl(v3, 16)
        v3 ^= v2
        v0 += v3
        v3 = _rotl(v3, 21)
        v3 ^= v0
        v2 += v1
        v1 = _rotl(v1, 17)
        v1 ^= v2
        v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


@numba.njit(cache=True, nogil=True, inline="always")
def _rotl(x, bits):
    return (x << np.uint64(bits)) | (x >> np.uint64(64 - bits))


@numba.njit(cache=True, nogil=True, inline="always")
def _compare_bytes(chars, a0, a1, b0, b1):
    # -1, 0 or 1 as chars[a0:a1] sorts before, with or after chars[b0:b1] (unsigned bytes; a prefix first)
    for k in range(min(a1 - a0, b1 - b0)):
        x = chars[a0 + k]
        y = chars[b0 + k]
        if x != y:
            return -1 if x < y else 1
    if a1 - a0 == b1 - b0:
        return 0
    return -1 if a1 - a0 < b1 - b0 else 1


def _hex_ids(hashed: np.ndarray) -> pa.ChunkedArray:
    """``"p"`` + 16 lower-case hex digits of each uint64, as Arrow strings built from one byte buffer."""
    # each byte (most significant first) → its two hex digits, through a 256-entry table
    pairs = np.frombuffer(b"".join(f"{b:02x}".encode() for b in range(256)), dtype=np.uint8).reshape(256, 2)
    chunks = []
    for start in range(0, max(hashed.size, 1), _IDS_PER_CHUNK):  # int32 offsets: < 2 GiB of text a chunk
        part = np.ascontiguousarray(hashed[start:start + _IDS_PER_CHUNK], dtype=">u8")
        text = np.empty((part.size, 17), dtype=np.uint8)
        text[:, 0] = ord("p")
        text[:, 1:] = pairs[part.view(np.uint8).reshape(-1, 8)].reshape(-1, 16)
        offsets = np.arange(0, 17 * (part.size + 1), 17, dtype=np.int32)
        chunks.append(pa.StringArray.from_buffers(part.size, pa.py_buffer(offsets), pa.py_buffer(text)))
    return pa.chunked_array(chunks, type=pa.string())


def _as_arrow_strings(values: Strings) -> pa.Array | pa.ChunkedArray:
    """Arrow strings as they are; anything else (numpy object array, list) converted to ``pa.string()``."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    return pa.array(np.asarray(values, dtype=object), type=pa.string())


def golden_values(labels: np.ndarray, values: pd.Series, n_clusters: int,
                  factorized: tuple[np.ndarray, Any] | None = None) -> pa.Array:
    """Most frequent non-null value per cluster: an Arrow array of n_clusters values, null where all are null
    (NaN for a numeric column, as float64 has always written it).

    Ties go to the value that appears first in the input, so the result is deterministic. ``factorized`` is
    :func:`gpucdp.arrays.factorize` of ``values`` when the caller has it already.
    """
    codes, uniques = factorized if factorized is not None else factorize(values)
    chosen = np.full(n_clusters, -1, dtype=np.int64)  # each cluster's winning code
    keep = codes >= 0
    if not keep.any():
        return _take_uniques(uniques, chosen)
    n_codes = np.int64(len(uniques))
    key = labels[keep].astype(np.int64) * n_codes + codes[keep]
    pair, count = unique_counts(key)
    label, code = np.divmod(pair, n_codes)
    # The (label, code) pairs come sorted, so each label is a run with its codes ascending: the winner is the
    # first entry of its run that reaches the run's largest count (most frequent, then smallest code = value
    # seen first), with no sort of the pairs.
    starts = np.flatnonzero(run_starts(label))
    best = np.maximum.reduceat(count, starts)
    top = count == np.repeat(best, np.diff(np.append(starts, count.size)))
    winners = np.flatnonzero(top)
    winners = winners[run_starts(label[winners])]
    chosen[label[winners]] = code[winners]
    return _take_uniques(uniques, chosen)


def _take_uniques(uniques: Any, codes: np.ndarray) -> pa.Array:
    """``uniques[codes]`` as an Arrow array, null (NaN for floats) where a code is -1: Arrow's take on Arrow
    strings, so no Python string is made per value."""
    missing = codes < 0
    if isinstance(uniques, (pa.Array, pa.ChunkedArray)):
        return uniques.take(pa.array(codes, mask=missing))
    uniques = np.asarray(uniques)
    if uniques.dtype.kind == "f":
        out = uniques[np.where(missing, 0, codes)] if uniques.size else np.full(codes.size, np.nan)
        out[missing] = np.nan
        return pa.array(out, type=pa.float64())
    out = np.full(codes.size, None, dtype=object)
    out[~missing] = uniques[codes[~missing]]
    return pa.array(out, from_pandas=True)


def _distinct_lists(labels: np.ndarray, values: pd.Series, n_clusters: int,
                    factorized: tuple[np.ndarray, Any] | None = None) -> pa.Array:
    """Distinct non-null values per cluster, in order of first appearance in the input."""
    codes, uniques = factorized if factorized is not None else factorize(values)
    keep = codes >= 0
    n_codes = np.int64(max(len(uniques), 1))
    pair = unique_sorted(labels[keep].astype(np.int64) * n_codes + codes[keep])
    label, code = pair // n_codes, pair % n_codes
    offsets = np.zeros(n_clusters + 1, dtype=np.int64)
    np.cumsum(np.bincount(label, minlength=n_clusters), out=offsets[1:])
    flat = _take_uniques(uniques, code).cast(pa.large_string()) if len(code) else pa.array([], pa.large_string())
    return pa.LargeListArray.from_arrays(pa.array(offsets), flat)


def golden_columns(fields: Sequence[FieldSettings], columns: Sequence[str]) -> list[tuple[FieldSettings, str]]:
    """The prepared column each field's golden value comes from: ``f``, or ``f__num`` for a numeric field.

    Fields with neither among ``columns`` are left out.
    """
    used = [(f, f.name if f.name in columns else f"{f.name}__num") for f in fields]
    return [(f, column) for f, column in used if column in columns]


def build_profiles(
    record_id: Sequence[str],
    source: Sequence[str],
    prepared: pd.DataFrame,
    fields: Sequence[FieldSettings],
    labels: np.ndarray,
    record_probability: np.ndarray,
    oversized: np.ndarray,
    codes_cache: dict | None = None,
    threads: int = 1,
) -> tuple[pa.Table, pa.Table]:
    """Build the profiles and membership tables.

    Parameters
    ----------
    record_id, source : str[n]
        Arrow string arrays (used as they are) or sequences of str.
    prepared : DataFrame[n]
        Standardised columns; field ``f``'s golden value is taken from column ``f`` (or ``f__num``).
    fields : list of FieldSettings
    labels : int64[n]
        Cluster label per record, 0..n_clusters-1.
    record_probability : float64[n]
        Probability of the strongest edge that joined each record (NaN when alone).
    oversized : bool[n]
        Records whose cluster is still above the size cap.
    codes_cache : dict, optional
        The run's factorised columns (:func:`gpucdp.arrays.cached_factorize`), reused and filled here.
    threads : int, default 1
        Columns worked on at once, a thread each (:func:`gpucdp.parallel.thread_map`); the result does not
        depend on it.

    Returns
    -------
    profiles : pa.Table
        profile_id, record_count, sources (list), oversized, one golden column per field, and for email and
        phone fields the list of distinct values (``<field>_all``).
    membership : pa.Table
        record_id, source, profile_id, match_probability; in input order, one row per input record.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_clusters = int(labels.max()) + 1 if labels.size else 0
    counts = np.bincount(labels, minlength=n_clusters)
    cluster_oversized = np.zeros(n_clusters, dtype=bool)
    cluster_oversized[labels[oversized]] = True
    used = golden_columns(fields, prepared.columns)

    def field_columns(item: tuple[FieldSettings, str]) -> list[tuple[str, pa.Array]]:
        f, column = item
        values = prepared[column]
        factorized = cached_factorize(codes_cache, column, values)
        if f.type == "numeric":
            return [(f.name, golden_values(labels, values, n_clusters, factorized).cast(pa.float64()))]
        out = [(f.name, golden_values(labels, values, n_clusters, factorized).cast(pa.string()))]
        if f.type in LIST_TYPES:
            out.append((f"{f.name}_all", _distinct_lists(labels, values, n_clusters, factorized)))
        return out

    # the profile ids, the source lists and each field's golden values are independent: a thread each (each
    # field's task factorises its own column, so threads fill distinct keys of the cache)
    source, record_id = _as_arrow_strings(source), _as_arrow_strings(record_id)
    tasks = [lambda: profile_ids(labels, source, record_id),
             lambda: _distinct_lists(labels, source.to_pandas(), n_clusters),
             *[functools.partial(field_columns, item) for item in used]]
    ids, sources, *per_field = thread_map(lambda task: task(), tasks, threads)
    columns: dict[str, pa.Array] = {
        "profile_id": ids,
        "record_count": pa.array(counts, type=pa.int32()),
        "sources": sources,
        "oversized": pa.array(cluster_oversized),
    }
    for part in per_field:
        columns.update(part)
    profiles = pa.table(columns)
    membership = pa.table({
        "record_id": record_id.cast(pa.string()),
        "source": source.cast(pa.string()),
        "profile_id": ids.take(pa.array(labels)),
        "match_probability": pa.array(record_probability, type=pa.float64(), from_pandas=True),
    })
    return profiles, membership
