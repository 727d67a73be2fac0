"""String and date similarity functions, written once and compiled for the CPU and for CUDA.

Every function is plain Python on ``uint8`` arrays inside :func:`build`, a factory that receives the
decorator, and is compiled twice (STYLE.md, "One source for CPU and CUDA kernels")::

    jaro_winkler_host    numba.njit(cache=True, nogil=True)   CPU kernels and Python
    jaro_winkler_device  numba.cuda.jit(device=True)          CUDA kernels; None without numba-cuda

Strings arrive as slices of an Arrow-style character buffer: a function receives ``(chars, a0, a1, b0, b1)``
and compares ``chars[a0:a1]`` with ``chars[b0:b1]`` byte by byte. Input is ASCII after standardisation, but
any bytes (UTF-8 or not) are accepted; a multi-byte character simply counts as several bytes.

The fuzzy metrics (Jaro, Jaro–Winkler, Levenshtein, Damerau, q-gram Jaccard) look at the first
``MAX_LEN`` = 64 bytes of each string only, so their scratch fits in local memory; ``exact`` compares whole
strings. Scalar code never allocates: callers pass scratch arrays (``uint8[MAX_LEN]`` flags,
``int32[3, MAX_LEN + 1]`` dynamic-programming rows), from ``cuda.local.array`` in a CUDA kernel or from a
per-block row of a preallocated array on the CPU. Parameters (thresholds, bounds, ``q``) travel as
arguments, never as globals.

Empty strings are defined explicitly, although the comparison kernel treats them as NULL and never calls these
functions for them: two empty strings are equal (similarity 1, distance 0); an empty and a non-empty string
have similarity 0 and distance = the other's (capped) length.
"""

from __future__ import annotations

import numba

__all__ = [
    "MAX_LEN",
    "HAVE_CUDA",
    "build",
    "jaro_host",
    "jaro_winkler_host",
    "levenshtein_host",
    "damerau_host",
    "qgram_jaccard_host",
    "exact_host",
    "days_from_civil_host",
    "date_swap_host",
    "jaro_winkler_bound_host",
    "jaro_device",
    "jaro_winkler_device",
    "levenshtein_device",
    "damerau_device",
    "qgram_jaccard_device",
    "exact_device",
    "days_from_civil_device",
    "date_swap_device",
    "jaro_winkler_bound_device",
]

#: Only the first MAX_LEN bytes of a string take part in a fuzzy comparison (scratch is sized by it).
MAX_LEN = 64

try:  # numba-cuda is optional: the CPU path must import without it
    from numba import cuda

    HAVE_CUDA = True
except ImportError:  # pragma: no cover - depends on the environment
    cuda = None
    HAVE_CUDA = False


def build(jit):
    """Compile the similarity functions with ``jit`` (``numba.njit(...)`` or ``numba.cuda.jit(device=True)``).

    Parameters
    ----------
    jit : callable
        A Numba decorator.

    Returns
    -------
    tuple
        ``(jaro, jaro_winkler, levenshtein, damerau, qgram_jaccard, exact, days_from_civil, date_swap,
        jaro_winkler_bound)``,
        each compiled by ``jit``; their docstrings document them.
    """

    @jit
    def jaro(chars, a0, a1, b0, b1, flags_a, flags_b):
        """Jaro similarity of two byte strings (first MAX_LEN bytes).

        Parameters
        ----------
        chars : uint8[total]
            Character buffer holding both strings.
        a0, a1 : int
            The first string is ``chars[a0:a1]``.
        b0, b1 : int
            The second string is ``chars[b0:b1]``.
        flags_a, flags_b : uint8[>= MAX_LEN]
            Scratch, overwritten.

        Returns
        -------
        float64
            In [0, 1]; 1 for two empty strings, 0 when exactly one is empty.

        Notes
        -----
        jaro = (m/|a| + m/|b| + (m - t)/m) / 3 with m characters matching within max(|a|,|b|)//2 - 1
        positions and t = (matched characters out of order) // 2, as in jellyfish and rapidfuzz.
        """
        la = min(a1 - a0, MAX_LEN)
        lb = min(b1 - b0, MAX_LEN)
        if la == 0 and lb == 0:
            return 1.0
        if la == 0 or lb == 0:
            return 0.0
        window = max(la, lb) // 2 - 1
        if window < 0:
            window = 0
        for i in range(la):
            flags_a[i] = 0
        for j in range(lb):
            flags_b[j] = 0
        matches = 0
        for i in range(la):
            ca = chars[a0 + i]
            lo = max(0, i - window)
            hi = min(lb, i + window + 1)
            for j in range(lo, hi):
                if flags_b[j] == 0 and chars[b0 + j] == ca:
                    flags_a[i] = 1
                    flags_b[j] = 1
                    matches += 1
                    break
        if matches == 0:
            return 0.0
        half_transpositions = 0
        k = 0
        for i in range(la):
            if flags_a[i] != 0:
                while flags_b[k] == 0:
                    k += 1
                if chars[a0 + i] != chars[b0 + k]:
                    half_transpositions += 1
                k += 1
        # Integer halving, as jellyfish and rapidfuzz do.
        t = half_transpositions // 2
        m = float(matches)
        return (m / la + m / lb + (m - t) / m) / 3.0

    @jit
    def winkler(chars, a0, a1, b0, b1, sim, prefix_scale):
        """Winkler's boost of a Jaro similarity ``sim`` above 0.7: ``sim + l * prefix_scale * (1 - sim)``, with
        l the strings' common prefix up to 4 bytes."""
        if sim > 0.7:
            limit = min(4, min(a1 - a0, b1 - b0))
            prefix = 0
            while prefix < limit and chars[a0 + prefix] == chars[b0 + prefix]:
                prefix += 1
            sim += prefix * prefix_scale * (1.0 - sim)
        return sim

    @jit
    def jaro_winkler(chars, a0, a1, b0, b1, flags_a, flags_b, prefix_scale=0.1):
        """Jaro–Winkler similarity of two byte strings (first MAX_LEN bytes).

        Parameters
        ----------
        chars : uint8[total]
            Character buffer holding both strings.
        a0, a1 : int
            The first string is ``chars[a0:a1]``.
        b0, b1 : int
            The second string is ``chars[b0:b1]``.
        flags_a, flags_b : uint8[>= MAX_LEN]
            Scratch, overwritten.
        prefix_scale : float64, default 0.1
            Winkler's p; keep it <= 0.25 so the result stays in [0, 1].

        Returns
        -------
        float64
            In [0, 1].

        Notes
        -----
        jw = jaro + l * p * (1 - jaro) when jaro > 0.7, with l the common prefix length up to 4; otherwise
        jaro. Same convention as ``rapidfuzz.distance.JaroWinkler`` (``prefix_weight``) and
        ``jellyfish.jaro_winkler_similarity``.
        """
        return winkler(chars, a0, a1, b0, b1, jaro(chars, a0, a1, b0, b1, flags_a, flags_b), prefix_scale)

    @jit
    def jaro_winkler_bound(chars, a0, a1, b0, b1, counts, prefix_scale):
        """An upper bound on Jaro (``prefix_scale`` = 0) or Jaro–Winkler, from the characters the strings share.

        Jaro's m matched characters pair up equal characters, so m is at most the size of the strings'
        multiset intersection; with m there and no transpositions the formula gives a bound that costs one
        pass over each string instead of Jaro's windowed search. The comparison kernel skips the exact
        metric when the bound is already below every threshold that would read it.

        Parameters
        ----------
        chars : uint8[total]
        a0, a1, b0, b1 : int
            The strings are ``chars[a0:a1]`` and ``chars[b0:b1]`` (first MAX_LEN bytes, as in ``jaro``).
        counts : uint8[>= 64]
            Scratch, overwritten; characters are counted in 64 buckets (``byte & 63``), and bytes sharing a
            bucket only loosen the bound.
        prefix_scale : float64
            0 for Jaro, Winkler's p for Jaro–Winkler.

        Returns
        -------
        float64
            At least the metric's value, equal when every shared character is matched in order (identical
            strings, say). Callers compare it with a small margin, since the two are rounded differently.
        """
        la = min(a1 - a0, MAX_LEN)
        lb = min(b1 - b0, MAX_LEN)
        if la == 0 or lb == 0:
            return 1.0 if la == lb else 0.0
        for i in range(la):
            counts[chars[a0 + i] & 63] = 0
        for j in range(lb):
            counts[chars[b0 + j] & 63] = 0
        for i in range(la):
            counts[chars[a0 + i] & 63] += 1
        common = 0
        for j in range(lb):
            h = chars[b0 + j] & 63
            if counts[h] > 0:
                counts[h] -= 1
                common += 1
        if common == 0:
            return 0.0
        m = float(common)
        return winkler(chars, a0, a1, b0, b1, (m / la + m / lb + 1.0) / 3.0, prefix_scale)

    @jit
    def edit_distance(chars, a0, a1, b0, b1, work, max_dist, transpositions):
        """Bounded Levenshtein or optimal-string-alignment distance of two byte strings (first MAX_LEN bytes).

        Parameters
        ----------
        chars : uint8[total]
            Character buffer holding both strings.
        a0, a1 : int
            The first string is ``chars[a0:a1]``.
        b0, b1 : int
            The second string is ``chars[b0:b1]``.
        work : int32[>= 3, >= MAX_LEN + 1]
            Scratch rows, overwritten.
        max_dist : int
            The bound, >= 0.
        transpositions : bool
            Also count swapping two adjacent characters as one edit (OSA, "restricted Damerau"), no substring
            edited twice (rapidfuzz ``OSA``); False gives Levenshtein.

        Returns
        -------
        int
            ``min(distance, max_dist + 1)``; stops as soon as a row exceeds the bound.
        """
        la = min(a1 - a0, MAX_LEN)
        lb = min(b1 - b0, MAX_LEN)
        over = max_dist + 1
        if abs(la - lb) > max_dist:
            return over
        if la == 0 or lb == 0:
            return la + lb
        for j in range(lb + 1):
            work[0, j] = j
        # Only cells with |i - j| <= max_dist can hold a distance within the bound (Ukkonen's band): a row
        # covers 2·max_dist + 1 cells and the cells just outside it read as ``over``. A transposition reads
        # row i - 2 at column j - 2, which stays inside that row's band.
        for i in range(1, la + 1):
            cur = i % 3
            prev = (i - 1) % 3
            prev2 = (i - 2) % 3
            lo = max(1, i - max_dist)
            hi = min(lb, i + max_dist)
            if lo == 1:
                work[cur, 0] = i
                row_min = i
            else:
                work[cur, lo - 1] = over
                row_min = over
            if i > 1 and i + max_dist <= lb:
                work[prev, i + max_dist] = over
            ca = chars[a0 + i - 1]
            for j in range(lo, hi + 1):
                cb = chars[b0 + j - 1]
                v = work[prev, j - 1]
                if cb != ca:
                    v += 1
                d = work[prev, j] + 1
                if d < v:
                    v = d
                d = work[cur, j - 1] + 1
                if d < v:
                    v = d
                if (transpositions and i > 1 and j > 1
                        and ca == chars[b0 + j - 2] and chars[a0 + i - 2] == cb):
                    d = work[prev2, j - 2] + 1
                    if d < v:
                        v = d
                work[cur, j] = v
                if v < row_min:
                    row_min = v
            # A transposition jumps a row, but D[i-1][j-1] <= D[i-2][j-2] + 1, so row minima still never
            # decrease and the early exit stays exact.
            if row_min > max_dist:
                return over
        dist = work[la % 3, lb]
        if dist > max_dist:
            return over
        return dist

    @jit
    def levenshtein(chars, a0, a1, b0, b1, work, max_dist):
        """Bounded Levenshtein distance: :func:`edit_distance` without transpositions."""
        return edit_distance(chars, a0, a1, b0, b1, work, max_dist, False)

    @jit
    def damerau(chars, a0, a1, b0, b1, work, max_dist):
        """Bounded optimal-string-alignment (restricted Damerau) distance: :func:`edit_distance` with them."""
        return edit_distance(chars, a0, a1, b0, b1, work, max_dist, True)

    @jit
    def qgram_jaccard(chars, a0, a1, b0, b1, used, q=2):
        """Jaccard similarity of the q-gram *multisets* of two byte strings (first MAX_LEN bytes).

        Parameters
        ----------
        chars : uint8[total]
            Character buffer holding both strings.
        a0, a1 : int
            The first string is ``chars[a0:a1]``.
        b0, b1 : int
            The second string is ``chars[b0:b1]``.
        used : uint8[>= MAX_LEN]
            Scratch, overwritten.
        q : int, default 2
            Gram length, >= 1.

        Returns
        -------
        float64
            |A ∩ B| / |A ∪ B| with multiplicities (min / max of the counts), in [0, 1]. A string shorter
            than q is a single gram (itself): two such strings score 1 when equal, else 0; against a longer
            string, 0.
        """
        la = min(a1 - a0, MAX_LEN)
        lb = min(b1 - b0, MAX_LEN)
        if la < q or lb < q:
            # A string shorter than q is one gram, itself; it can only equal a string of the same length.
            if la != lb:
                return 0.0
            for i in range(la):
                if chars[a0 + i] != chars[b0 + i]:
                    return 0.0
            return 1.0
        na = la - q + 1
        nb = lb - q + 1
        for j in range(nb):
            used[j] = 0
        common = 0
        for i in range(na):
            for j in range(nb):
                if used[j] != 0:
                    continue
                same = True
                for t in range(q):
                    if chars[a0 + i + t] != chars[b0 + j + t]:
                        same = False
                        break
                if same:
                    used[j] = 1
                    common += 1
                    break
        return common / float(na + nb - common)

    @jit
    def exact(chars, a0, a1, b0, b1):
        """Byte equality of two whole strings (not capped at MAX_LEN).

        Parameters
        ----------
        chars : uint8[total]
            Character buffer holding both strings.
        a0, a1 : int
            The first string is ``chars[a0:a1]``.
        b0, b1 : int
            The second string is ``chars[b0:b1]``.

        Returns
        -------
        bool
        """
        n = a1 - a0
        if n != b1 - b0:
            return False
        for i in range(n):
            if chars[a0 + i] != chars[b0 + i]:
                return False
        return True

    @jit
    def days_from_civil(y, m, d):
        """Days since 1970-01-01 of a proleptic Gregorian date.

        Parameters
        ----------
        y, m, d : int
            Year, month 1-12, day 1-31.

        Returns
        -------
        int
            Negative before 1970.

        Notes
        -----
        Howard Hinnant's ``days_from_civil`` (http://howardhinnant.github.io/date_algorithms.html).
        """
        # // floors here (unlike C's /), so the era needs none of Hinnant's adjustment for negative years.
        if m <= 2:
            y -= 1
        era = y // 400
        yoe = y - era * 400
        if m > 2:
            mp = m - 3
        else:
            mp = m + 9
        doy = (153 * mp + 2) // 5 + d - 1
        doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
        return era * 146097 + doe - 719468

    @jit
    def date_swap(a, b):
        """Whether two yyyymmdd dates differ only by swapping day and month.

        Parameters
        ----------
        a, b : int
            Dates encoded as yyyymmdd, e.g. 19850403.

        Returns
        -------
        bool
            Same year, a's month == b's day, a's day == b's month, and a != b.
        """
        if a == b or a // 10000 != b // 10000:
            return False
        return (a // 100) % 100 == b % 100 and a % 100 == (b // 100) % 100

    return (jaro, jaro_winkler, levenshtein, damerau, qgram_jaccard, exact, days_from_civil, date_swap,
            jaro_winkler_bound)


(
    jaro_host,
    jaro_winkler_host,
    levenshtein_host,
    damerau_host,
    qgram_jaccard_host,
    exact_host,
    days_from_civil_host,
    date_swap_host,
    jaro_winkler_bound_host,
) = build(numba.njit(cache=True, nogil=True))

# cuda.jit(device=True) only wraps the functions; they are compiled when a kernel that calls them is.
if HAVE_CUDA:
    (
        jaro_device,
        jaro_winkler_device,
        levenshtein_device,
        damerau_device,
        qgram_jaccard_device,
        exact_device,
        days_from_civil_device,
        date_swap_device,
        jaro_winkler_bound_device,
    ) = build(cuda.jit(device=True))
else:  # pragma: no cover - depends on the environment
    jaro_device = jaro_winkler_device = levenshtein_device = damerau_device = None
    qgram_jaccard_device = exact_device = days_from_civil_device = date_swap_device = None
    jaro_winkler_bound_device = None
