"""The comparison kernel: agreement levels (gamma) and one pattern id per candidate pair, in one pass.

Inputs are record columns, already prepared, and small tables that describe the comparisons:

- string columns packed record by record: ``chars : uint8[total]`` and ``offsets : int64[n, S + 1]``; string
  ``s`` of record ``i`` is ``chars[offsets[i, s] : offsets[i, s + 1]]``, and a zero-length string is NULL;
- numeric columns ``nums : float64[n, N]`` (NaN is NULL); dates are numbers yyyymmdd, e.g. 19850403.0.

A record's strings sit next to each other in ``chars``, its offsets in one row and its numbers in one row: a
pair reads a few adjacent cache lines of each record instead of two (offset and bytes) per column. On 3M
records' 36.8M candidate pairs that made the kernel 17% faster (12.7-13.3 s against 10.6-11.0 s on 2 threads),
and 1.8x on pairs of random records, whose reads all miss the cache;
- comparison ``c`` has ``n_levels[c]`` levels, strongest first; level ``l`` tests ``level_method[c, l]`` on
  column ``level_col[c, l]`` (a string or a numeric column, by method) against ``level_thr[c, l]``.

Per pair and comparison, the first level that matches gives gamma = ``n_levels[c] - l`` (strongest =
``n_levels[c]``); a level whose column is NULL on either side does not match; no match gives 0 ("else"), or -1
(the NULL level) when every column the comparison uses is NULL on at least one side. Levels with the same
method and column compute the value once (JW >= 0.95, then exact on another column, then JW >= 0.88 costs one
Jaro–Winkler), and a Jaro or Jaro–Winkler level first tries a cheap upper bound (from the characters the strings
share): pairs whose bound is below every threshold of that metric skip the metric itself. The results are the
same as computing every level in full.

The pattern id packs the gamma vector: ``pattern = sum_c (gamma_c + 1) * stride_c`` with ``stride_0 = 1`` and
``stride_{c+1} = stride_c * (n_levels[c] + 2)``; :func:`decode_patterns` inverts it.

The per-pair logic is written once in :func:`_build_pair` and compiled for the CPU (a ``numba.njit`` kernel
with ``prange`` over blocks of pairs) and for CUDA (one thread per pair). String metrics see the first
``MAX_LEN`` = 64 bytes (see :mod:`gpucdp.kernels.similarity`); ``JACCARD`` uses bigrams (q = 2).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from gpucdp.kernels import similarity as sim
from gpucdp.kernels.device import as_device
from gpucdp.kernels.similarity import HAVE_CUDA, MASK_SLOTS, MAX_LEN

if HAVE_CUDA:
    # A module global on purpose: the CUDA simulator swaps the module in a kernel's globals, not closures.
    from numba import cuda

__all__ = [
    "EXACT",
    "JARO_WINKLER",
    "JARO",
    "LEVENSHTEIN",
    "DAMERAU",
    "JACCARD",
    "DATE_EXACT",
    "DATE_SWAP",
    "DATE_DAYS",
    "NUMERIC_ABS",
    "NUMERIC_REL",
    "METHODS",
    "STRING_METHODS",
    "compare_pairs",
    "pattern_strides",
    "decode_patterns",
]

EXACT = 0  # strings byte-equal (whole strings)
JARO_WINKLER = 1  # Jaro–Winkler >= thr
JARO = 2  # Jaro >= thr
LEVENSHTEIN = 3  # Levenshtein distance <= thr
DAMERAU = 4  # optimal-string-alignment distance <= thr
JACCARD = 5  # bigram-multiset Jaccard >= thr
DATE_EXACT = 6  # numbers equal
DATE_SWAP = 7  # yyyymmdd dates with day and month swapped
DATE_DAYS = 8  # |days between yyyymmdd dates| <= thr
NUMERIC_ABS = 9  # |a - b| <= thr
NUMERIC_REL = 10  # |a - b| <= thr * max(|a|, |b|)

#: Method name (as written in settings) -> code in ``level_method``.
METHODS = {
    "exact": EXACT,
    "jaro_winkler": JARO_WINKLER,
    "jaro": JARO,
    "levenshtein": LEVENSHTEIN,
    "damerau": DAMERAU,
    "jaccard": JACCARD,
    "date_exact": DATE_EXACT,
    "date_swap": DATE_SWAP,
    "date_days": DATE_DAYS,
    "numeric_abs": NUMERIC_ABS,
    "numeric_rel": NUMERIC_REL,
}

#: Codes whose ``level_col`` indexes the string columns (the others index ``nums``).
STRING_METHODS = frozenset({EXACT, JARO_WINKLER, JARO, LEVENSHTEIN, DAMERAU, JACCARD})

# The kernel tells string methods from numeric ones by this bound; keep the codes ordered accordingly.
_LAST_STRING_METHOD = JACCARD
assert STRING_METHODS == frozenset(range(_LAST_STRING_METHOD + 1))

_JACCARD_Q = 2
_PREFIX_SCALE = 0.1
_INT32_MAX = np.iinfo(np.int32).max
# Pairs per CPU block: one set of scratch rows per block, blocks spread over threads by prange.
_CPU_BLOCK = 2048
_THREADS_PER_BLOCK = 256
#: Most levels one comparison may have (the per-pair cache of computed values is this long).
MAX_LEVELS = 16
# A similarity bound this close to a threshold is not trusted to settle the pair (bound and metric round apart).
_BOUND_MARGIN = 1e-9


def _build_pair(
    jit, jaro, jaro_winkler, levenshtein, damerau, qgram_jaccard, exact, days_from_civil, date_swap,
    jaro_winkler_bound,
):  # fmt: skip
    """Compile the comparison of pairs ``k0 <= k < k1`` with ``jit``, calling similarity functions compiled
    for the same target. A range rather than one pair, so that the CPU pays the call (and its array arguments)
    once per block of pairs; a CUDA thread passes ``(k, k + 1)``."""

    @jit
    def yyyymmdd_days(v):
        n = int(v)
        return days_from_civil(n // 10000, (n // 100) % 100, n % 100)

    @jit
    def loosest(level_method, level_col, level_thr, c, lv, nl):
        # The loosest threshold among this level and the later ones that reuse its value (same method and
        # column): the lowest similarity floor, or the highest distance ceiling.
        method = level_method[c, lv]
        col = level_col[c, lv]
        bound = level_thr[c, lv]
        for t in range(lv + 1, nl):
            if level_method[c, t] == method and level_col[c, t] == col:
                if method == LEVENSHTEIN or method == DAMERAU:
                    bound = max(bound, level_thr[c, t])
                else:
                    bound = min(bound, level_thr[c, t])
        return bound

    @jit
    def compare_range(
        k0, k1, left, right, chars, offsets, nums, level_method, level_col, level_thr, n_levels, strides,
        flags_a, flags_b, masks, values, gamma, pattern,
    ):  # fmt: skip
        for k in range(k0, k1):
            i = left[k]
            j = right[k]
            code = 0
            for c in range(n_levels.shape[0]):
                nl = n_levels[c]
                g = -1
                any_present = False
                for lv in range(nl):
                    method = level_method[c, lv]
                    col = level_col[c, lv]
                    a0 = a1 = b0 = b1 = 0
                    x = y = 0.0
                    if method <= _LAST_STRING_METHOD:
                        a0 = offsets[i, col]
                        a1 = offsets[i, col + 1]
                        b0 = offsets[j, col]
                        b1 = offsets[j, col + 1]
                        if a1 == a0 or b1 == b0:
                            continue
                    else:
                        x = nums[i, col]
                        y = nums[j, col]
                        if math.isnan(x) or math.isnan(y):
                            continue
                    any_present = True
                    # An earlier level with the same method and column computed this value already (it was
                    # not skipped: its column is this one, not NULL).
                    seen = -1
                    for t in range(lv):
                        if level_method[c, t] == method and level_col[c, t] == col:
                            seen = t
                            break
                    if seen >= 0:
                        value = values[seen]
                    elif method == EXACT:
                        value = 1.0 if exact(chars, a0, a1, b0, b1) else 0.0
                    elif method == JARO_WINKLER or method == JARO:
                        # Most candidate pairs disagree on most fields: a cheap bound settles them.
                        scale = _PREFIX_SCALE if method == JARO_WINKLER else 0.0
                        value = jaro_winkler_bound(chars, a0, a1, b0, b1, flags_a, scale)
                        if value + _BOUND_MARGIN >= loosest(level_method, level_col, level_thr, c, lv, nl):
                            if method == JARO_WINKLER:
                                value = jaro_winkler(chars, a0, a1, b0, b1, flags_a, flags_b, _PREFIX_SCALE)
                            else:
                                value = jaro(chars, a0, a1, b0, b1, flags_a, flags_b)
                    elif method == LEVENSHTEIN or method == DAMERAU:
                        bound = int(loosest(level_method, level_col, level_thr, c, lv, nl))
                        if method == LEVENSHTEIN:
                            value = float(levenshtein(chars, a0, a1, b0, b1, masks, bound))
                        else:
                            value = float(damerau(chars, a0, a1, b0, b1, masks, bound))
                    elif method == JACCARD:
                        value = qgram_jaccard(chars, a0, a1, b0, b1, flags_b, _JACCARD_Q)
                    elif method == DATE_EXACT:
                        value = 1.0 if x == y else 0.0
                    elif method == DATE_SWAP:
                        value = 1.0 if date_swap(int(x), int(y)) else 0.0
                    elif method == DATE_DAYS:
                        value = float(abs(yyyymmdd_days(x) - yyyymmdd_days(y)))
                    else:  # NUMERIC_ABS, NUMERIC_REL
                        value = abs(x - y)
                    values[lv] = value
                    thr = level_thr[c, lv]
                    if method == EXACT or method == DATE_EXACT or method == DATE_SWAP:
                        hit = value > 0.5
                    elif method == JARO_WINKLER or method == JARO or method == JACCARD:
                        hit = value >= thr
                    elif method == NUMERIC_REL:
                        hit = value <= thr * max(abs(x), abs(y))
                    else:
                        hit = value <= thr
                    if hit:
                        g = nl - lv
                        break
                if g < 0 and any_present:
                    g = 0
                gamma[k, c] = g
                code += (g + 1) * strides[c]
            pattern[k] = code

    return compare_range


_compare_range_host = _build_pair(
    numba.njit(cache=True, nogil=True),
    sim.jaro_host,
    sim.jaro_winkler_host,
    sim.levenshtein_host,
    sim.damerau_host,
    sim.qgram_jaccard_host,
    sim.exact_host,
    sim.days_from_civil_host,
    sim.date_swap_host,
    sim.jaro_winkler_bound_host,
)


@numba.njit(parallel=True, cache=True)
def _compare_cpu(
    left, right, chars, offsets, nums, level_method, level_col, level_thr, n_levels, strides,
    flags, masks, values, gamma, pattern,
):  # fmt: skip
    m = left.shape[0]
    n_blocks = flags.shape[0]
    for b in numba.prange(n_blocks):
        _compare_range_host(
            b * _CPU_BLOCK, min(m, (b + 1) * _CPU_BLOCK), left, right, chars, offsets, nums, level_method,
            level_col, level_thr, n_levels, strides, flags[b, 0], flags[b, 1], masks[b], values[b], gamma, pattern,
        )  # fmt: skip


_compare_cuda = None


def _cuda_kernel():
    """Build the CUDA kernel on first use, so importing this module never touches numba-cuda's compiler."""
    global _compare_cuda
    if _compare_cuda is None:
        compare_range = _build_pair(
            cuda.jit(device=True),
            sim.jaro_device,
            sim.jaro_winkler_device,
            sim.levenshtein_device,
            sim.damerau_device,
            sim.qgram_jaccard_device,
            sim.exact_device,
            sim.days_from_civil_device,
            sim.date_swap_device,
            sim.jaro_winkler_bound_device,
        )

        @cuda.jit
        def compare_kernel(
            left, right, chars, offsets, nums, level_method, level_col, level_thr, n_levels, strides,
            gamma, pattern,
        ):  # fmt: skip
            k = cuda.grid(1)
            if k < left.shape[0]:
                flags_a = cuda.local.array(MAX_LEN, numba.uint8)
                flags_b = cuda.local.array(MAX_LEN, numba.uint8)
                masks = cuda.local.array(MASK_SLOTS, numba.uint64)
                values = cuda.local.array(MAX_LEVELS, numba.float64)
                compare_range(
                    k, k + 1, left, right, chars, offsets, nums, level_method, level_col, level_thr, n_levels,
                    strides, flags_a, flags_b, masks, values, gamma, pattern,
                )  # fmt: skip

        _compare_cuda = compare_kernel
    return _compare_cuda


def pattern_strides(n_levels):
    """Place value of each comparison's code in the pattern id.

    Parameters
    ----------
    n_levels : int32[C]
        Number of levels of each comparison (the NULL and "else" levels not counted).

    Returns
    -------
    int64[C]
        ``stride[0] = 1``, ``stride[c + 1] = stride[c] * (n_levels[c] + 2)``.
    """
    radix = np.asarray(n_levels, dtype=np.int64) + 2
    strides = np.ones(radix.shape[0], dtype=np.int64)
    if radix.shape[0] > 1:
        strides[1:] = np.cumprod(radix[:-1])
    return strides


def _n_patterns(n_levels) -> int:
    """Size of the pattern space, ``prod(n_levels + 2)``, as an exact Python int."""
    return math.prod(int(v) + 2 for v in np.asarray(n_levels).ravel())


def decode_patterns(pattern, n_levels):
    """Gamma vectors of pattern ids.

    Parameters
    ----------
    pattern : int32[p] or int64[p]
        Pattern ids from :func:`compare_pairs`.
    n_levels : int32[C]
        Number of levels of each comparison.

    Returns
    -------
    int8[p, C]
        ``gamma[:, c] = (pattern // stride[c]) % (n_levels[c] + 2) - 1``; -1 is the NULL level.
    """
    pattern = np.asarray(pattern, dtype=np.int64)
    radix = np.asarray(n_levels, dtype=np.int64) + 2
    strides = pattern_strides(n_levels)
    return ((pattern[:, None] // strides[None, :]) % radix[None, :] - 1).astype(np.int8)


def compare_pairs(
    left, right, chars, offsets, nums, level_method, level_col, level_thr, n_levels, *, target: str = "cpu",
    xp=None,
):
    """Agreement level of every comparison, and the pattern id, for each candidate pair.

    Parameters
    ----------
    left, right : int[m]
        Record positions of the pairs: int32 (int64 past 2^31 records) is read without a copy.
    chars : uint8[total]
        Characters of all string columns.
    offsets : int64[n, S + 1]
        String ``s`` of record ``i`` is ``chars[offsets[i, s] : offsets[i, s + 1]]``; empty is NULL.
    nums : float64[n, N]
        Numeric columns, NaN is NULL; dates as yyyymmdd numbers.
    level_method : int8[C, L]
        Method code of each level (see ``METHODS``), strongest level first.
    level_col : int32[C, L]
        Column of each level: a column of ``offsets`` for string methods, of ``nums`` otherwise.
    level_thr : float64[C, L]
        Threshold of each level (similarity floor, distance ceiling or tolerance, by method).
    n_levels : int32[C]
        Levels used in each row of the tables, >= 1.
    target : {"cpu", "cuda"}
        "cpu": a parallel Numba kernel on numpy arrays. "cuda": one CUDA thread per pair; inputs may be numpy,
        Numba device or CuPy arrays, and the outputs are Numba device arrays.
    xp : module, optional
        With ``target="cuda"``: allocate the outputs as arrays of ``xp`` (CuPy), so that its memory pool, and
        the run's record of peak device memory, holds them; they are returned as such.

    Returns
    -------
    gamma : int8[m, C]
        ``n_levels[c] - l`` for the first matching level ``l``, 0 when none matches, -1 when every column of
        the comparison is NULL on at least one side.
    pattern : int32[m]
        ``sum_c (gamma[:, c] + 1) * pattern_strides(n_levels)[c]``.

    Raises
    ------
    ValueError
        If ``target`` is unknown or the pattern space ``prod(n_levels + 2)`` does not fit int32.

    Notes
    -----
    Inputs are trusted (validated by the settings layer): columns and thresholds must be in range.
    """
    n_levels_host = n_levels.copy_to_host() if hasattr(n_levels, "copy_to_host") else np.asarray(n_levels)
    if hasattr(n_levels_host, "get"):  # CuPy
        n_levels_host = n_levels_host.get()
    size = _n_patterns(n_levels_host)
    if size - 1 > _INT32_MAX:
        raise ValueError(
            f"the comparisons have {size} agreement patterns (the product of n_levels + 2), more than an "
            "int32 pattern id holds; use fewer comparisons or fewer levels per comparison"
        )
    if int(np.max(n_levels_host, initial=0)) > MAX_LEVELS:
        raise ValueError(f"a comparison has more than {MAX_LEVELS} levels; split it into several comparisons")
    strides = pattern_strides(n_levels_host)
    if target == "cpu":
        return _compare_pairs_cpu(
            left, right, chars, offsets, nums, level_method, level_col, level_thr, n_levels_host, strides
        )
    if target == "cuda":
        return _compare_pairs_cuda(
            left, right, chars, offsets, nums, level_method, level_col, level_thr, n_levels_host, strides, xp
        )
    raise ValueError(f"target={target!r} is not one of 'cpu', 'cuda'")


def _index_dtype(offsets, nums):
    """The kernels' record-index dtype: int32 while the records (the columns' length) fit, as the pipeline's
    pairs are numbered (one compiled kernel, and no per-chunk copy of the pairs), else int64."""
    n = max(offsets.shape[0], nums.shape[0])  # both 2-D (the simulator's shapes take no negative index)
    return np.int32 if n <= _INT32_MAX + 1 else np.int64


def _compare_pairs_cpu(
    left, right, chars, offsets, nums, level_method, level_col, level_thr, n_levels, strides
):
    index = _index_dtype(offsets, nums)
    left = np.ascontiguousarray(left, dtype=index)
    right = np.ascontiguousarray(right, dtype=index)
    level_method = np.ascontiguousarray(level_method, dtype=np.int8)
    m, n_comp = left.shape[0], level_method.shape[0]
    gamma = np.empty((m, n_comp), dtype=np.int8)
    pattern = np.empty(m, dtype=np.int32)
    n_blocks = (m + _CPU_BLOCK - 1) // _CPU_BLOCK
    flags = np.empty((n_blocks, 2, MAX_LEN), dtype=np.uint8)
    masks = np.empty((n_blocks, MASK_SLOTS), dtype=np.uint64)
    values = np.empty((n_blocks, MAX_LEVELS), dtype=np.float64)
    _compare_cpu(
        left,
        right,
        np.ascontiguousarray(chars, dtype=np.uint8),
        np.ascontiguousarray(offsets, dtype=np.int64),
        np.ascontiguousarray(nums, dtype=np.float64),
        level_method,
        np.ascontiguousarray(level_col, dtype=np.int32),
        np.ascontiguousarray(level_thr, dtype=np.float64),
        np.ascontiguousarray(n_levels, dtype=np.int32),
        strides,
        flags,
        masks,
        values,
        gamma,
        pattern,
    )
    return gamma, pattern


def _compare_pairs_cuda(
    left, right, chars, offsets, nums, level_method, level_col, level_thr, n_levels, strides, xp=None
):
    if not HAVE_CUDA:
        raise ValueError("target='cuda' needs numba-cuda: pip install 'gpucdp[gpu]'")

    index = _index_dtype(offsets, nums)  # host pairs are copied as this; device pairs are read as they are
    left = as_device(left, index)
    m, n_comp = left.shape[0], n_levels.shape[0]
    if xp is None:
        gamma = cuda.device_array((m, n_comp), dtype=np.int8)
        pattern = cuda.device_array(m, dtype=np.int32)
    else:
        gamma = xp.empty((m, n_comp), dtype=np.int8)
        pattern = xp.empty(m, dtype=np.int32)
    if m == 0:
        return gamma, pattern
    out_gamma, out_pattern = as_device(gamma), as_device(pattern)  # views of xp's arrays, no copy
    blocks = (m + _THREADS_PER_BLOCK - 1) // _THREADS_PER_BLOCK
    _cuda_kernel()[blocks, _THREADS_PER_BLOCK](
        left,
        as_device(right, index),
        as_device(chars, np.uint8),
        as_device(offsets, np.int64),
        as_device(nums, np.float64),
        as_device(level_method, np.int8),
        as_device(level_col, np.int32),
        as_device(level_thr, np.float64),
        as_device(n_levels, np.int32),
        as_device(strides, np.int64),
        out_gamma,
        out_pattern,
    )
    return gamma, pattern
