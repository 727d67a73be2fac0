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
``uint64[MASK_SLOTS]`` bit masks), from ``cuda.local.array`` in a CUDA kernel or from a per-block row of a
preallocated array on the CPU. Parameters (thresholds, bounds, ``q``) travel as
arguments, never as globals.

Empty strings are defined explicitly, although the comparison kernel treats them as NULL and never calls these
functions for them: two empty strings are equal (similarity 1, distance 0); an empty and a non-empty string
have similarity 0 and distance = the other's (capped) length.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "MAX_LEN",
    "MASK_SLOTS",
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
assert MAX_LEN <= 64, "the bit-parallel edit distance holds a string's positions in one uint64"
#: Slots of the edit distances' scratch: one bit mask per byte value.
MASK_SLOTS = 256
# The bit-parallel edit distance's words (module constants, so that Numba types them uint64 on both targets).
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)

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
    def edit_distance(chars, a0, a1, b0, b1, masks, max_dist, transpositions):
        """Bounded Levenshtein or optimal-string-alignment distance of two byte strings (first MAX_LEN bytes).

        Bit-parallel: the column of the dynamic programme over the first string is held as bit vectors of
        its vertical differences (+1 / -1 / 0 between neighbouring cells), and each character of the second
        string advances the whole column in a few word operations (Myers 1999; in Hyyrö's 2001 formulation
        for a global distance, and with Hyyrö's 2003 transposition term for OSA). MAX_LEN = 64 bytes fit
        one uint64. On 1M records' candidate pairs this was 2-3x faster than the banded programme it replaced
        (email with bound 2: 1.3 s against 3.6 s on one thread), with the same distances.

        Parameters
        ----------
        chars : uint8[total]
            Character buffer holding both strings.
        a0, a1 : int
            The first string is ``chars[a0:a1]``.
        b0, b1 : int
            The second string is ``chars[b0:b1]``.
        masks : uint64[>= 256]
            Scratch, overwritten (any content on entry): the positions of each byte value in the first string.
        max_dist : int
            The bound, >= 0.
        transpositions : bool
            Also count swapping two adjacent characters as one edit (OSA, "restricted Damerau"), no substring
            edited twice (rapidfuzz ``OSA``); False gives Levenshtein.

        Returns
        -------
        int
            ``min(distance, max_dist + 1)``; stops as soon as the distance cannot come back within the bound.
        """
        la = min(a1 - a0, MAX_LEN)
        lb = min(b1 - b0, MAX_LEN)
        over = max_dist + 1
        if abs(la - lb) > max_dist:
            return over
        if la == 0 or lb == 0:
            return la + lb
        for i in range(la):
            masks[chars[a0 + i]] = _ZERO
        for j in range(lb):
            masks[chars[b0 + j]] = _ZERO
        for i in range(la):
            masks[chars[a0 + i]] |= _ONE << np.uint64(i)
        plus = _ALL >> np.uint64(MAX_LEN - la)  # column 0: D[i][0] = i, every vertical step +1
        minus = _ZERO
        diagonal = _ZERO  # last column's zero-cost diagonal steps (a match, or a transposition)
        previous = _ZERO  # positions of the previous character of the second string
        last = _ONE << np.uint64(la - 1)
        dist = la  # D[la][j]
        for j in range(lb):
            match = masks[chars[b0 + j]]
            x = match | minus
            if transpositions:
                # a transposition: this character matches at i while the previous one matched at i - 1, and
                # the last column did not already reach (i - 1, j - 1) for free
                x |= ((~diagonal & match) << _ONE) & previous
            diagonal = (((match & plus) + plus) ^ plus) | x
            up = minus | ~(diagonal | plus)  # horizontal +1 steps
            down = plus & diagonal  # horizontal -1 steps
            if up & last:
                dist += 1
            elif down & last:
                dist -= 1
            # each later column lowers the last cell by at most one
            if dist - (lb - 1 - j) > max_dist:
                return over
            up = (up << _ONE) | _ONE  # row 0: D[0][j] = j, every horizontal step +1
            down = down << _ONE
            plus = down | ~(diagonal | up)
            minus = up & diagonal
            previous = match
        if dist > max_dist:
            return over
        return dist

    @jit
    def levenshtein(chars, a0, a1, b0, b1, masks, max_dist):
        """Bounded Levenshtein distance: :func:`edit_distance` without transpositions."""
        return edit_distance(chars, a0, a1, b0, b1, masks, max_dist, False)

    @jit
    def damerau(chars, a0, a1, b0, b1, masks, max_dist):
        """Bounded optimal-string-alignment (restricted Damerau) distance: :func:`edit_distance` with them."""
        return edit_distance(chars, a0, a1, b0, b1, masks, max_dist, True)

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
