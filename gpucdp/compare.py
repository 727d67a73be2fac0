"""Compare: the agreement level of every comparison for every candidate pair, as one pattern id per pair.

The comparisons in the settings become small tables (method, column, threshold per level) that the comparison
kernel (``gpucdp.kernels.compare``) walks for each pair; string columns reach the kernel packed record by record
(``chars`` uint8, ``offsets`` int64[n, S + 1]) and numeric ones (dates as yyyymmdd) as a float64[n, N] matrix. Pairs are
compared in chunks so that memory depends on the chunk size, not on the number of pairs.

A ``cosine`` comparison (levels on the cosine of a column's sentence-transformers embeddings) is not run by
the kernel: :func:`gpucdp.semantic.cosine_gamma` computes its level with array operations, and its code joins
the kernel's in the same pattern id, so the model sees it like any other comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gpucdp.arrays import cached_factorize, counting_argsort
from gpucdp.backend import to_host
from gpucdp.embed import column_buffers
from gpucdp.errors import BackendUnavailableError, SettingsError
from gpucdp.kernels import layout
from gpucdp.kernels.compare import METHODS, STRING_METHODS, compare_pairs, pattern_strides
from gpucdp.semantic import SemanticEmbedder, cosine_gamma
from gpucdp.settings import EMBEDDING_METHODS, ComparisonSettings

__all__ = [
    "ComparisonTables",
    "PreparedColumns",
    "prepare_columns",
    "build_tables",
    "locality_order",
    "compare_in_chunks",
]


@dataclass
class PreparedColumns:
    """The prepared columns the comparisons use, packed for the kernel.

    Attributes
    ----------
    chars : uint8[total]
        The strings record after record: record i's strings, column after column, then record i + 1's.
    offsets : int64[n, S + 1]
        String column s of record i is ``chars[offsets[i, s]:offsets[i, s + 1]]``; empty = null. Record i's
        bytes are ``chars[offsets[i, 0]:offsets[i, S]]``, and ``offsets[i, S] == offsets[i + 1, 0]``.
    nums : float64[n, N]
        Numeric columns (dates as yyyymmdd), NaN = null.
    string_names, numeric_names : list of str
    embedded : dict column -> (int64[n], float32[u, d])
        For cosine levels: each record's value code (-1 = null) and the unit vector of each distinct value.
    """

    chars: np.ndarray
    offsets: np.ndarray
    nums: np.ndarray
    string_names: list[str]
    numeric_names: list[str]
    embedded: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.offsets.shape[0])


@dataclass
class ComparisonTables:
    """Level tables of the comparisons (see ``gpucdp.kernels.compare``)."""

    level_method: np.ndarray
    level_col: np.ndarray
    level_thr: np.ndarray
    n_levels: np.ndarray
    names: list[str]
    # With cosine levels (see _split_tables): the kernel's share of the levels, and the cosine share.
    split: _SplitTables | None = None


@dataclass
class _SplitTables:
    """Comparisons with cosine levels, split between the kernel and :func:`gpucdp.semantic.cosine_gamma`.

    ``kernel`` holds the comparisons that keep a kernel level, with only those levels; ``kernel_comps[j]`` is
    the comparison of its row ``j`` and ``kernel_levels[j]`` the original index of each of its levels.
    ``cosine`` lists, per comparison with cosine levels, (comparison, original level indices, columns,
    thresholds).
    """

    kernel: ComparisonTables | None
    kernel_comps: list[int]
    kernel_levels: list[np.ndarray]
    cosine: list[tuple[int, np.ndarray, list[str], list[float]]]


def _is_numeric_method(method: str) -> bool:
    return METHODS[method] not in STRING_METHODS


def prepare_columns(prepared: pd.DataFrame, comparisons: Sequence[ComparisonSettings],
                    semantic: SemanticEmbedder | None = None, *, order: Any = None, target: str = "cpu",
                    xp: Any = np, before_packing: Callable[[int, int], None] | None = None) -> PreparedColumns:
    """Pack the prepared columns the comparisons refer to (and embed those of cosine levels with ``semantic``).

    With ``order`` (an int64[n] permutation, such as :func:`locality_order`) record ``order[k]`` is packed as
    record ``k``, as :func:`permute` would move it, but each string column goes from its own Arrow buffers
    straight to its place: the packed columns are never held twice, in input order and laid out. With
    ``target="cuda"`` they are laid out on the device and come back as arrays of ``xp``; each column crosses
    to the device once, as it is.

    ``before_packing``, if given, is called before anything is allocated (a memory check may refuse) with two
    sizes in bytes: the packed columns', and the most that is held on top while they are packed: the largest
    string column as it is read (converted, or copied to the device) and five int64 arrays per record that
    laying a column out may take (its offsets; on the device its lengths, gathered, summed; the destinations).

    Raises
    ------
    SettingsError
        A level names a column that standardisation did not produce, or applies a string method to a
        numeric column (or the reverse); a cosine level without a ``semantic`` embedder.
    """
    string_names: list[str] = []
    numeric_names: list[str] = []
    embedded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for comp in comparisons:
        for i, level in enumerate(comp.levels):
            if level.column not in prepared.columns:
                available = ", ".join(sorted(prepared.columns))
                raise SettingsError(
                    f"comparisons.{comp.name}.levels[{i}]: column {level.column!r} does not exist after "
                    f"standardisation; available: {available}"
                )
            numeric_column = pd.api.types.is_float_dtype(prepared[level.column].dtype)
            if level.method in EMBEDDING_METHODS:
                if numeric_column or semantic is None:
                    raise SettingsError(
                        f"comparisons.{comp.name}.levels[{i}]: method cosine needs a string column and the "
                        f"sentence-transformers embedder ({level.column!r} is "
                        f"{'numeric' if numeric_column else 'a string column, but no embedder was given'})"
                    )
                if level.column not in embedded:
                    try:
                        embedded[level.column] = semantic.column(prepared[level.column])
                    except SettingsError as exc:  # name the setting that asked for the model
                        raise SettingsError(f"comparisons.{comp.name}.levels[{i}]: {exc}") from None
                continue
            if _is_numeric_method(level.method) != numeric_column:
                kind = "numeric" if numeric_column else "string"
                raise SettingsError(
                    f"comparisons.{comp.name}.levels[{i}]: method {level.method} cannot compare the {kind} "
                    f"column {level.column!r} (dates: use date_* methods on '<field>__ymd', string methods on "
                    "'<field>')"
                )
            names = numeric_names if numeric_column else string_names
            if level.column not in names:
                names.append(level.column)
    n = len(prepared)
    if numeric_names:
        nums = np.column_stack([prepared[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in numeric_names])
    else:
        nums = np.zeros((n, 0), dtype=np.float64)
    sizes = [_string_bytes(prepared[c], f) for f, c in enumerate(string_names)]
    if before_packing is not None:
        table = n * (len(string_names) + 1) * 8
        # on top while packing: the largest column as read, a few int64 arrays per record (the order, the
        # positions, the column's offsets and destinations) and, on the device, the table's running sum
        before_packing(sum(sizes) + table + nums.nbytes,
                       max(sizes, default=0) + 4 * (n + 1) * 8 + (table if target == "cuda" else 0))
    if order is None:
        order = np.arange(n, dtype=np.int64)
    # each column converted (when it must be) only when its turn comes
    chars, offsets = _lay_out(sizes, lambda f: column_buffers(prepared[string_names[f]], f), order, n, target, xp,
                              lengths=lambda f: _string_lengths(prepared[string_names[f]], f))
    nums, embedded = _laid_out_records(nums, embedded, order, target, xp)
    return PreparedColumns(chars, offsets, nums, string_names, numeric_names, embedded)


def permute(columns: PreparedColumns, order: Any, *, target: str = "cpu", xp: Any = np) -> PreparedColumns:
    """The same columns with record ``order[k]`` moved to position ``k`` (``order``: an int64[n] permutation).

    A record's strings lie together, so each record's bytes move as one piece. With ``target="cuda"`` the
    columns are laid out on the device and come back as arrays of ``xp`` there: the packed strings cross to
    the device once, as they are, and :data:`gpucdp.kernels.layout.layout_cuda` moves them; the comparisons
    of candidate and random pairs then read them where they are.
    """
    chars, offsets = columns.chars, columns.offsets
    on_device = target == "cuda"
    ax = xp if on_device else np
    if on_device:
        chars, offsets = xp.asarray(chars), xp.asarray(offsets)
    n = columns.n
    order = ax.asarray(order, dtype=ax.int64)
    position = ax.empty_like(order)
    position[order] = ax.arange(n, dtype=ax.int64)
    width = int(offsets.shape[1])
    # each record's bytes as one string: their offsets are the records' first offsets, then the end
    records = ax.empty(n + 1, dtype=ax.int64)
    records[:n] = offsets[:, 0]
    records[n] = offsets[n - 1, width - 1] if n else 0
    moved = offsets[order]
    moved -= moved[:, :1].copy()  # a copy: CuPy does not guard an operand that overlaps its output
    sizes = records[1:] - records[:-1]
    base = ax.zeros(n + 1, dtype=ax.int64)
    base[1:] = ax.cumsum(sizes[order])
    moved += base[:-1, None]
    new_chars = ax.empty(int(chars.shape[0]), dtype=ax.uint8)
    if n and new_chars.shape[0]:
        dst = base[:-1][position]
        if on_device:
            _layout_cuda(chars, records, dst, new_chars)
        else:
            layout.layout_cpu(chars, records, dst, new_chars)
    nums, embedded = _laid_out_records(columns.nums, columns.embedded, order, target, xp)
    return PreparedColumns(new_chars, moved, nums, columns.string_names, columns.numeric_names, embedded)


def _lay_out(sizes: Sequence[int], column: Callable[[int], tuple[Any, Any]], order: Any, n: int, target: str,
             xp: Any, lengths: Callable[[int], Any] | None = None) -> tuple[Any, Any]:
    """String columns packed record by record in record order ``order``: ``(chars : uint8[sum(sizes)],
    offsets : int64[n, S + 1])`` (see :class:`PreparedColumns`), with record ``order[k]`` as record ``k``.

    ``column(s)`` gives column ``s`` as ``(chars, offsets : int64[n + 1])``, and ``lengths(s)``, if given, its
    values' byte lengths alone (cheaper than the bytes when the column must be converted to give them);
    ``sizes`` are the columns' byte counts, known beforehand so that the output is allocated once. First each string's length goes to its
    record's new row of the table, which a running sum turns into offsets; then, one column at a time, the
    layout kernel moves the column's bytes to those offsets, on the CPU or, with ``target="cuda"``, on the
    device (a host column is copied there first), so that only one column is ever held twice.
    """
    on_device = target == "cuda"
    ax = xp if on_device else np
    order = ax.asarray(order, dtype=ax.int64)
    position = ax.empty_like(order)
    position[order] = ax.arange(n, dtype=ax.int64)
    width = len(sizes) + 1
    offsets = ax.zeros((n, width), dtype=ax.int64)
    for s in range(len(sizes)):  # each string's length, in its record's new row
        if lengths is not None:
            column_lengths = lengths(s)
        else:
            column_offsets = column(s)[1]
            column_lengths = column_offsets[1:] - column_offsets[:-1]
        if on_device:
            offsets[position, s] = xp.asarray(column_lengths)
        else:
            _fill_lengths(np.asarray(column_lengths, dtype=np.int64), order, offsets, s)
    flat = offsets.reshape(-1)
    if on_device:  # the running sum, shifted by one: where each string starts
        running = xp.cumsum(flat)
        flat[1:] = running[:-1]
        flat[:1] = 0
        del running
    else:
        _exclusive_running_sum(flat)
    chars = ax.empty(int(sum(sizes)), dtype=ax.uint8)
    for s in range(len(sizes)):
        if not sizes[s] or not n:
            continue
        column_chars, column_offsets = column(s)
        if on_device:
            dst = offsets[:, s][position]
            _layout_cuda(xp.asarray(column_chars), xp.asarray(column_offsets), dst, chars)
        else:
            dst = np.empty(n, dtype=np.int64)
            _destinations(offsets, order, s, dst)
            layout.layout_cpu(column_chars, column_offsets, dst, chars)
        del dst
    return chars, offsets


def _string_bytes(column: Any, position: int) -> int:
    """Bytes of a string column's values as :func:`gpucdp.embed.column_buffers` packs them (nulls: none)."""
    array = _arrow_strings(column)
    if array is not None:
        return int(pc.sum(pc.binary_length(array)).as_py() or 0)
    _, offsets = column_buffers(column, position)  # anything else: converted, and measured there
    return int(offsets[-1]) - int(offsets[0])


def _string_lengths(column: Any, position: int) -> np.ndarray:
    """Each value's length in bytes as :func:`gpucdp.embed.column_buffers` packs it (a null: 0), int[n]; from
    Arrow's own lengths when the column is Arrow strings (no copy of the bytes), else from the packed copy."""
    array = _arrow_strings(column)
    if array is not None:
        lengths = pc.fill_null(pc.binary_length(array), 0)
        if isinstance(lengths, pa.ChunkedArray):
            lengths = lengths.combine_chunks()
        return lengths.to_numpy(zero_copy_only=False)
    _, offsets = column_buffers(column, position)  # anything else: converted, and measured there
    return np.diff(offsets)


def _arrow_strings(column: Any) -> pa.Array | pa.ChunkedArray | None:
    """The Arrow string array behind a column (no copy), or None when it is not one."""
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        array = column
    elif isinstance(getattr(column, "dtype", None), (pd.StringDtype, pd.ArrowDtype)):
        array = pa.array(column)  # an Arrow-backed column: no copy
    else:
        return None
    return array if pa.types.is_string(array.type) or pa.types.is_large_string(array.type) else None


def _laid_out_records(nums: Any, embedded: dict, order: Any, target: str, xp: Any) -> tuple[Any, dict]:
    """The numeric columns' rows and the cosine columns' value codes in record order ``order``."""
    if target == "cuda":
        order = xp.asarray(order, dtype=xp.int64)
        return xp.asarray(nums)[order], {name: (xp.asarray(codes)[order], vectors)
                                         for name, (codes, vectors) in embedded.items()}
    order = np.asarray(order, dtype=np.int64)
    return np.ascontiguousarray(nums[order]), {name: (codes[order], vectors)
                                               for name, (codes, vectors) in embedded.items()}


@numba.njit(cache=True, nogil=True, parallel=True)
def _fill_lengths(lengths, order, offsets, s):
    # row k, record order[k]'s string length: the table is written in order, the lengths read where they are
    for k in numba.prange(order.shape[0]):
        offsets[k, s] = lengths[order[k]]


@numba.njit(cache=True, nogil=True)
def _exclusive_running_sum(flat):
    total = 0
    for k in range(flat.shape[0]):
        value = flat[k]
        flat[k] = total
        total += value


@numba.njit(cache=True, nogil=True, parallel=True)
def _destinations(offsets, order, s, dst):
    # where record order[k]'s string of column s goes, in input order (what the layout kernel reads): the table
    # is read in order, dst written where each record is
    for k in numba.prange(order.shape[0]):
        dst[order[k]] = offsets[k, s]


def _layout_cuda(chars: Any, offsets: Any, dst: Any, out: Any) -> None:
    """Launch :data:`gpucdp.kernels.layout.layout_cuda`, a thread per record, on arrays already on the device."""
    if layout.layout_cuda is None:
        raise BackendUnavailableError(
            "target='cuda' needs numba-cuda: install it with `pip install 'gpucdp[gpu]'`, or use target='cpu'"
        )
    from gpucdp.kernels.device import as_device

    threads = 128
    blocks = (int(dst.shape[0]) + threads - 1) // threads
    layout.layout_cuda[blocks, threads](as_device(chars), as_device(offsets), as_device(dst), as_device(out))


def locality_order(prepared: pd.DataFrame, columns: Sequence[str], cache: dict | None = None) -> np.ndarray | None:
    """A record order in which likely matches sit close together: grouped by ``columns`` (nulls last).

    The comparison kernel reads both records of every pair; with records in input order the second read is a
    cache miss per column. Laid out by surname sound and given name, the candidate pairs mostly join nearby
    records, which made the kernel ~2.7x faster on 1M records.
    """
    keys = [c for c in columns if c in prepared.columns]
    if not keys:
        return None
    # np.lexsort(codes[::-1]) with nulls last, as stable counting sorts, last key first (LSD radix): the codes
    # are dense, so each pass is O(n) where lexsort took ~0.5 s on 1M records
    order = np.arange(len(prepared), dtype=np.int64)
    for c in keys[::-1]:
        code, uniques = cached_factorize(cache, c, prepared[c])
        bound = len(uniques) + 1
        code = np.where(code < 0, bound - 1, code)[order]  # null → after every value
        order = order[counting_argsort(code, bound)]
    return order


def build_tables(comparisons: Sequence[ComparisonSettings], columns: PreparedColumns) -> ComparisonTables:
    """Turn the comparison settings into the kernel's level tables."""
    c_count = len(comparisons)
    width = max(len(c.levels) for c in comparisons)
    level_method = np.zeros((c_count, width), dtype=np.int8)
    level_col = np.zeros((c_count, width), dtype=np.int32)
    level_thr = np.zeros((c_count, width), dtype=np.float64)
    n_levels = np.zeros(c_count, dtype=np.int32)
    if any(comp.uses_embeddings for comp in comparisons):
        return _split_tables(comparisons, columns)
    for c, comp in enumerate(comparisons):
        n_levels[c] = len(comp.levels)
        for i, level in enumerate(comp.levels):
            level_method[c, i] = METHODS[level.method]
            names = columns.numeric_names if _is_numeric_method(level.method) else columns.string_names
            level_col[c, i] = names.index(level.column)
            level_thr[c, i] = 0.0 if level.threshold is None else float(level.threshold)
    return ComparisonTables(level_method, level_col, level_thr, n_levels, [c.name for c in comparisons])


def _split_tables(comparisons: Sequence[ComparisonSettings], columns: PreparedColumns) -> ComparisonTables:
    """Tables for comparisons with cosine levels: the kernel gets the other levels, in their order."""
    n_levels = np.array([len(comp.levels) for comp in comparisons], dtype=np.int32)
    # The kernel checks that the pattern space fits int32, but it sees only part of it.
    if math.prod(int(v) + 2 for v in n_levels) - 1 > np.iinfo(np.int32).max:
        raise SettingsError("comparisons: more agreement patterns than an int32 pattern id holds (the product of "
                            "levels + 2 over comparisons); use fewer comparisons or fewer levels")
    kernel_settings, kernel_comps, kernel_levels, cosine = [], [], [], []
    for c, comp in enumerate(comparisons):
        on_kernel = [i for i, lv in enumerate(comp.levels) if lv.method not in EMBEDDING_METHODS]
        on_cosine = [i for i, lv in enumerate(comp.levels) if lv.method in EMBEDDING_METHODS]
        if on_kernel:
            kernel_settings.append(comp.model_copy(update={"levels": [comp.levels[i] for i in on_kernel]}))
            kernel_comps.append(c)
            kernel_levels.append(np.array(on_kernel, dtype=np.int64))
        if on_cosine:
            cosine.append((c, np.array(on_cosine, dtype=np.int64), [comp.levels[i].column for i in on_cosine],
                           [float(comp.levels[i].threshold) for i in on_cosine]))
    kernel = build_tables(kernel_settings, columns) if kernel_settings else None
    width = int(n_levels.max())
    return ComparisonTables(
        np.zeros((len(comparisons), width), np.int8), np.zeros((len(comparisons), width), np.int32),
        np.zeros((len(comparisons), width), np.float64), n_levels, [c.name for c in comparisons],
        _SplitTables(kernel, kernel_comps, kernel_levels, cosine),
    )


def compare_in_chunks(
    left: Any,
    right: Any,
    columns: PreparedColumns,
    tables: ComparisonTables,
    *,
    chunk_size: int,
    target: str = "cpu",
    advance: Callable[[int], None] | None = None,
    order: np.ndarray | None = None,
    xp: Any = np,
) -> Any:
    """Pattern id of every pair, computed chunk by chunk.

    Parameters
    ----------
    left, right : int32 or int64[m]
        Arrays of ``xp``: on the GPU backend the pairs stay on the device, and so do the patterns.
    columns : PreparedColumns
    tables : ComparisonTables
    chunk_size : int
        Pairs per kernel call.
    target : "cpu" or "cuda"
    order : int64[n], optional
        A record layout (:func:`locality_order`): the columns are permuted into it and the pairs renumbered
        and sorted, so the kernel's reads stay close together; patterns come back in the pairs' order.
    xp : module, default numpy
        The array module of the pairs and patterns (``cupy`` on the GPU backend), where cosine comparisons
        compute too.

    Returns
    -------
    int32[m]
        An array of ``xp``.
    """
    m = int(left.shape[0])
    patterns = xp.empty(m, dtype=xp.int32)
    pair_order = None
    if order is not None and m:
        columns = permute(columns, order)
        n = order.shape[0]
        rank = xp.empty(n, dtype=xp.int64)
        rank[xp.asarray(order)] = xp.arange(n, dtype=xp.int64)
        left, right = rank[left], rank[right]
        del rank
        # every method is symmetric, so each pair can be read from its smaller end
        left, right = xp.minimum(left, right), xp.maximum(left, right)
        # counting sort on the host (an argsort of 10M pairs takes ~1.2 s); the device sorts fast enough
        pair_order = counting_argsort(left, n) if xp is np else xp.argsort(left)
        left, right = left[pair_order], right[pair_order]
    chars, offsets, nums = columns.chars, columns.offsets, columns.nums
    if target == "cuda" and m:
        # Copied to the device once for all chunks, not once per chunk (an empty buffer cannot be copied: one
        # padding byte is never read).
        from gpucdp.kernels.device import as_device

        chars = as_device(chars if chars.size else np.zeros(1, dtype=np.uint8))
        offsets, nums = as_device(offsets), as_device(nums)
        columns = replace(columns, chars=chars, offsets=offsets, nums=nums)
    embedded = {name: (xp.asarray(codes), xp.asarray(vectors)) for name, (codes, vectors) in columns.embedded.items()}
    for start in range(0, m, chunk_size):
        stop = min(start + chunk_size, m)
        if tables.split is not None:
            chunk = _patterns_with_cosine(left[start:stop], right[start:stop], columns, tables, embedded,
                                          target=target, xp=xp)
        else:
            _, chunk = compare_pairs(
                left[start:stop], right[start:stop], chars, offsets, nums,
                tables.level_method, tables.level_col, tables.level_thr, tables.n_levels, target=target,
                xp=_device_xp(target, xp),
            )
            if target == "cuda" and xp is np:  # a Numba device array, for host patterns
                chunk = to_host(chunk)
        if pair_order is None:
            patterns[start:stop] = chunk
        else:
            patterns[pair_order[start:stop]] = chunk
        if advance is not None:
            advance(stop - start)
    return patterns


def _device_xp(target: str, xp: Any) -> Any:
    """The array module the CUDA kernel allocates its outputs with: CuPy's pool on the GPU backend."""
    return xp if target == "cuda" and xp is not np else None


def _patterns_with_cosine(left: Any, right: Any, columns: PreparedColumns, tables: ComparisonTables,
                          embedded: dict[str, tuple[Any, Any]], *, target: str, xp: Any) -> Any:
    """Pattern ids of pairs when some levels are cosine.

    The kernel runs each comparison's other levels, :func:`gpucdp.semantic.cosine_gamma` its cosine levels;
    each side's first match is mapped back to its level index in the comparison, and the earlier one wins, as
    if one pass had walked all levels in order (no match: "else" when any level's column is present on both
    sides, else the NULL level). Gammas are packed as the kernel packs them: ``sum_c (gamma_c + 1) * stride_c``.
    """
    split = tables.split
    m = left.shape[0]
    none = np.iinfo(np.int64).max
    first = {c: xp.full(m, none, dtype=xp.int64) for c in range(len(tables.names))}  # first matching level
    seen = {c: xp.zeros(m, dtype=bool) for c in range(len(tables.names))}  # some level present on both sides

    def merge(c: int, gamma: Any, original: np.ndarray) -> None:
        gamma = gamma.astype(xp.int64)
        n_sub = original.shape[0]
        level = xp.asarray(original)[xp.clip(n_sub - gamma, 0, n_sub - 1)]
        first[c] = xp.minimum(first[c], xp.where(gamma > 0, level, none))
        seen[c] |= gamma >= 0

    if split.kernel is not None:
        k = split.kernel
        gamma, _ = compare_pairs(left, right, columns.chars, columns.offsets, columns.nums, k.level_method,
                                 k.level_col, k.level_thr, k.n_levels, target=target, xp=_device_xp(target, xp))
        gamma = xp.asarray(gamma)  # CuPy already on the GPU; the host's copy of a Numba device array otherwise
        for j, c in enumerate(split.kernel_comps):
            merge(c, gamma[:, j], split.kernel_levels[j])
    xl, xr = xp.asarray(left), xp.asarray(right)
    for c, original, level_columns, thresholds in split.cosine:
        gamma_c = cosine_gamma(xl, xr, [embedded[col][0] for col in level_columns],
                               [embedded[col][1] for col in level_columns], thresholds, xp=xp)
        merge(c, gamma_c, original)
    strides = pattern_strides(tables.n_levels)
    pattern = xp.zeros(m, dtype=xp.int64)
    for c in range(len(tables.names)):
        n_c = int(tables.n_levels[c])
        g = xp.where(first[c] < none, n_c - first[c], xp.where(seen[c], 0, -1))
        pattern += (g + 1) * int(strides[c])
    return pattern.astype(xp.int32)
