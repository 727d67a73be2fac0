"""Slow, obviously correct pure-Python versions of the kernels, for tests only.

Strings are ``bytes``. These are textbook definitions with no length cap: callers truncate to ``MAX_LEN`` when
they compare against a capped kernel. :func:`compare_oracle` restates the comparison-kernel semantics of
``gpucdp.kernels.compare`` level by level, with no reuse of values between levels.
"""

from __future__ import annotations

import datetime
import math
from collections import Counter

import numpy as np

# Method codes, restated here rather than imported so a wrong constant in the kernel shows up.
EXACT, JARO_WINKLER, JARO, LEVENSHTEIN, DAMERAU, JACCARD = 0, 1, 2, 3, 4, 5
DATE_EXACT, DATE_SWAP, DATE_DAYS, NUMERIC_ABS, NUMERIC_REL = 6, 7, 8, 9, 10
STRING_METHODS = {EXACT, JARO_WINKLER, JARO, LEVENSHTEIN, DAMERAU, JACCARD}


def jaro(a: bytes, b: bytes) -> float:
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    window = max(0, max(len(a), len(b)) // 2 - 1)
    taken = [False] * len(b)
    matched_a = []
    for i, ch in enumerate(a):
        for j in range(max(0, i - window), min(len(b), i + window + 1)):
            if not taken[j] and b[j] == ch:
                taken[j] = True
                matched_a.append(ch)
                break
    m = len(matched_a)
    if m == 0:
        return 0.0
    matched_b = [b[j] for j in range(len(b)) if taken[j]]
    t = sum(x != y for x, y in zip(matched_a, matched_b)) // 2
    return (m / len(a) + m / len(b) + (m - t) / m) / 3.0


def jaro_winkler(a: bytes, b: bytes, prefix_scale: float = 0.1) -> float:
    sim = jaro(a, b)
    if sim > 0.7:
        prefix = 0
        for x, y in zip(a[:4], b[:4]):
            if x != y:
                break
            prefix += 1
        sim += prefix * prefix_scale * (1.0 - sim)
    return sim


def _edit_distance(a: bytes, b: bytes, transpositions: bool) -> int:
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if transpositions and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def levenshtein(a: bytes, b: bytes) -> int:
    return _edit_distance(a, b, transpositions=False)


def damerau_osa(a: bytes, b: bytes) -> int:
    """Optimal string alignment: adjacent transpositions count one edit, no substring edited twice."""
    return _edit_distance(a, b, transpositions=True)


def qgram_jaccard(a: bytes, b: bytes, q: int = 2) -> float:
    """Jaccard of q-gram multisets; a string shorter than q is one gram, itself."""

    def grams(s: bytes) -> Counter:
        if len(s) < q:
            return Counter([s])
        return Counter(s[i : i + q] for i in range(len(s) - q + 1))

    ga, gb = grams(a), grams(b)
    union = sum((ga | gb).values())
    return sum((ga & gb).values()) / union


def days_from_civil(y: int, m: int, d: int) -> int:
    return (datetime.date(y, m, d) - datetime.date(1970, 1, 1)).days


def _days(v: float) -> int:
    n = int(v)
    return days_from_civil(n // 10000, (n // 100) % 100, n % 100)


def date_swap(a: int, b: int) -> bool:
    ya, ma, da = a // 10000, (a // 100) % 100, a % 100
    yb, mb, db = b // 10000, (b // 100) % 100, b % 100
    return a != b and ya == yb and ma == db and da == mb


MAX_LEN = 64


def _level_matches(method: int, thr: float, sa: bytes, sb: bytes, x: float, y: float) -> bool:
    ca, cb = sa[:MAX_LEN], sb[:MAX_LEN]
    if method == EXACT:
        return sa == sb
    if method == JARO_WINKLER:
        return jaro_winkler(ca, cb) >= thr
    if method == JARO:
        return jaro(ca, cb) >= thr
    if method == LEVENSHTEIN:
        return levenshtein(ca, cb) <= thr
    if method == DAMERAU:
        return damerau_osa(ca, cb) <= thr
    if method == JACCARD:
        return qgram_jaccard(ca, cb, 2) >= thr
    if method == DATE_EXACT:
        return x == y
    if method == DATE_SWAP:
        return date_swap(int(x), int(y))
    if method == DATE_DAYS:
        return abs(_days(x) - _days(y)) <= thr
    if method == NUMERIC_ABS:
        return abs(x - y) <= thr
    if method == NUMERIC_REL:
        return abs(x - y) <= thr * max(abs(x), abs(y))
    raise AssertionError(f"unknown method {method}")


def compare_oracle(
    pairs: list[tuple[int, int]],
    strings: list[list[bytes]],
    nums: list[list[float]],
    levels: list[list[tuple[int, int, float]]],
) -> tuple[np.ndarray, np.ndarray]:
    """Gamma and pattern of each pair, straight from the definition.

    Parameters
    ----------
    pairs : list of (left, right) record positions.
    strings : strings[s][i] is string column s of record i (b"" is NULL).
    nums : nums[k][i] is numeric column k of record i (NaN is NULL).
    levels : levels[c] is comparison c's list of (method, column, threshold), strongest first.

    Returns
    -------
    gamma : int8[m, C]
    pattern : int64[m]
    """
    gamma = np.zeros((len(pairs), len(levels)), dtype=np.int8)
    pattern = np.zeros(len(pairs), dtype=np.int64)
    for p, (i, j) in enumerate(pairs):
        stride = 1
        for c, comp in enumerate(levels):
            g = None
            any_present = False
            for l, (method, col, thr) in enumerate(comp):
                if method in STRING_METHODS:
                    sa, sb, x, y = strings[col][i], strings[col][j], 0.0, 0.0
                    null = not sa or not sb
                else:
                    sa, sb, x, y = b"", b"", nums[col][i], nums[col][j]
                    null = math.isnan(x) or math.isnan(y)
                if null:
                    continue
                any_present = True
                if _level_matches(method, thr, sa, sb, x, y):
                    g = len(comp) - l
                    break
            if g is None:
                g = 0 if any_present else -1
            gamma[p, c] = g
            pattern[p] += (g + 1) * stride
            stride *= len(comp) + 2
    return gamma, pattern


def to_kernel_inputs(
    strings: list[list[bytes]], nums: list[list[float]], levels: list[list[tuple[int, int, float]]], n: int
) -> dict[str, np.ndarray]:
    """The oracle's lists as the arrays ``compare_pairs`` takes (chars, offsets, nums, level tables)."""
    lengths = [len(s) for col in strings for s in col]
    # record by record: record i's strings one after the other, offsets[i, s] where string s starts
    offsets = np.zeros((n, len(strings) + 1), dtype=np.int64)
    start = 0
    for i in range(n):
        for s, col in enumerate(strings):
            offsets[i, s] = start
            start += len(col[i])
        offsets[i, len(strings)] = start
    chars = np.frombuffer(b"".join(col[i] for i in range(n) for col in strings), dtype=np.uint8)
    assert chars.shape[0] == sum(lengths)
    width = max((len(comp) for comp in levels), default=1)
    level_method = np.zeros((len(levels), width), dtype=np.int8)
    level_col = np.zeros((len(levels), width), dtype=np.int32)
    level_thr = np.zeros((len(levels), width), dtype=np.float64)
    for c, comp in enumerate(levels):
        for lv, (method, col, thr) in enumerate(comp):
            level_method[c, lv], level_col[c, lv], level_thr[c, lv] = method, col, thr
    return {
        "chars": chars,
        "offsets": offsets,
        "nums": np.ascontiguousarray(np.array(nums, dtype=np.float64).reshape(len(nums), n).T),
        "level_method": level_method,
        "level_col": level_col,
        "level_thr": level_thr,
        "n_levels": np.array([len(comp) for comp in levels], dtype=np.int32),
    }


# Values that make every method's levels both match and miss: near and swapped dates, similar names.
DATE_POOL = [19850403.0, 19850304.0, 19850405.0, 19860403.0, 20000229.0, 20000301.0, 19991231.0, float("nan")]
NAME_POOL = [b"", b"john", b"jon", b"johm", b"ojhn", b"johnathan", b"smith", b"smyth", "José".encode()]
NAME_POOL.append(b"x" * 70)  # longer than MAX_LEN
THRESHOLDS = {
    EXACT: [0.0],
    JARO_WINKLER: [0.5, 0.7, 0.88, 0.95, 1.0],
    JARO: [0.5, 0.7, 0.88, 0.95, 1.0],
    LEVENSHTEIN: [0.0, 1.0, 2.0, 3.0],
    DAMERAU: [0.0, 1.0, 2.0, 3.0],
    JACCARD: [0.0, 0.3, 0.5, 1.0],
    DATE_EXACT: [0.0],
    DATE_SWAP: [0.0],
    DATE_DAYS: [0.0, 1.0, 2.0, 30.0, 400.0],
    NUMERIC_ABS: [0.0, 1.0, 100.0],
    NUMERIC_REL: [0.0, 1e-7, 1e-3],
}


def random_case(rng: np.random.Generator, n_records: int, n_pairs: int):
    """A random small comparison problem: (pairs, strings, nums, levels), in the oracle's form."""
    n_str, n_num = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    strings = [[NAME_POOL[k] for k in rng.integers(0, len(NAME_POOL), n_records)] for _ in range(n_str)]
    nums = [[DATE_POOL[k] for k in rng.integers(0, len(DATE_POOL), n_records)] for _ in range(n_num)]
    levels = []
    for _ in range(int(rng.integers(1, 5))):
        comp = []
        for _ in range(int(rng.integers(1, 5))):
            if comp and rng.random() < 0.4:  # the method and column of an earlier level: exercises reuse
                method, col = comp[int(rng.integers(0, len(comp)))][:2]
            else:
                method = int(rng.integers(0, 11))
                col = int(rng.integers(0, n_str if method in STRING_METHODS else n_num))
            comp.append((method, col, float(rng.choice(THRESHOLDS[method]))))
        levels.append(comp)
    pairs = [(int(i), int(j)) for i, j in rng.integers(0, n_records, (n_pairs, 2))]
    return pairs, strings, nums, levels
