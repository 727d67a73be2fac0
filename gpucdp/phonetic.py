"""Phonetic keys for names: Double Metaphone.

Why Double Metaphone: Soundex keeps the first letter as written, so catherine/kathryn (C365/K365),
philip/filip and carl/karl get different keys; NYSIIS splits catherine/kathryn and smith/smyth (jellyfish's
codes). Double Metaphone gives each of these pairs one primary code ("smith"/"smyth" → SM0,
"catherine"/"kathryn" → K0RN, "philip"/"filip" → FLP, "jon"/"john" → JN), and its rules cover the Germanic,
Slavic, Romance and Greek spellings common in customer data. The standardize stage keys on the primary code;
the secondary (an alternate pronunciation: "smith" SM0/XMT meets "schmidt" XMT/SMT) is returned for callers
that want both.

The rules follow Lawrence Philips' reference implementation (1999/2000) without its cut to four characters:
the whole code is returned, so long names stay distinct (a comparison may still compare prefixes). The tests
check both codes against the C++ reference wrapped by the ``doublemetaphone`` package on tens of thousands of
strings.

:func:`double_metaphone` is plain Python and gives both codes; it is the spec. :func:`primary_codes` gives the
primary code of many strings at once from a ``numba.njit`` port of the same rules over an Arrow string buffer,
35-60 times faster; the standardize stage uses it on the *unique* clean names. The port compiles in about 15 s
the first time and is cached on disk after that (``cache=True``).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpucdp.arrays import large_string_array, large_string_buffers
from gpucdp.errors import InputError

__all__ = ["double_metaphone", "primary_codes"]

_VOWELS = frozenset("AEIOUY")
_PAD = "     "  # the reference pads the word so rules may look past its end and see spaces


def double_metaphone(word: str) -> tuple[str, str]:
    """Double Metaphone codes of one word or name.

    Parameters
    ----------
    word : str
        Any text; upper-cased here. Letters outside A–Z (other than Ç and Ñ) and digits are skipped, so fold
        accents first (``é`` → ``e``) for the best codes. Spaces separate words (``"van dam"``).

    Returns
    -------
    (str, str)
        The primary and the secondary code, over the alphabet ``0AFHJKLMNPRSTX`` (``0`` is "th"). The
        secondary equals the primary when the word has one pronunciation; both are ``""`` for a word with no
        letters.

    Notes
    -----
    L. Philips, "The Double Metaphone Search Algorithm", C/C++ Users Journal 18(6), 2000.
    """
    w = word.upper()
    length = len(w)
    if length == 0:
        return "", ""
    last = length - 1
    s = w + _PAD
    end = len(s)
    primary: list[str] = []
    secondary: list[str] = []

    def at(start: int, size: int, *options: str) -> bool:
        # out-of-range starts never match (the reference's StringAt); slices past the pad come out short
        return 0 <= start < end and s[start : start + size] in options

    def char(pos: int) -> str:
        return s[pos] if 0 <= pos < end else ""

    def vowel(pos: int) -> bool:
        return 0 <= pos < end and s[pos] in _VOWELS

    def add(main: str, alt: str | None = None) -> None:
        primary.append(main)
        secondary.append(main if alt is None else alt)

    slavo_germanic = "W" in w or "K" in w or "CZ" in w or "WITZ" in w

    current = 0
    if at(0, 2, "GN", "KN", "PN", "WR", "PS"):
        current = 1
    if s[0] == "X":  # "Xavier": an initial X sounds as S
        add("S")
        current = 1

    while current < length:
        c = s[current]
        if c in _VOWELS:
            if current == 0:
                add("A")
            current += 1
        elif c == "B":
            add("P")
            current += 2 if char(current + 1) == "B" else 1
        elif c == "Ç":
            add("S")
            current += 1
        elif c == "C":
            current = _c(s, current, last, at, char, vowel, add)
        elif c == "D":
            if at(current, 2, "DG"):
                if at(current + 2, 1, "I", "E", "Y"):  # "edge"
                    add("J")
                    current += 3
                else:  # "edgar"
                    add("TK")
                    current += 2
            elif at(current, 2, "DT", "DD"):
                add("T")
                current += 2
            else:
                add("T")
                current += 1
        elif c == "F":
            add("F")
            current += 2 if char(current + 1) == "F" else 1
        elif c == "G":
            current = _g(s, current, at, char, vowel, add, slavo_germanic)
        elif c == "H":
            # keep H only when first or between vowels
            if (current == 0 or vowel(current - 1)) and vowel(current + 1):
                add("H")
                current += 2
            else:
                current += 1
        elif c == "J":
            current = _j(current, last, at, char, vowel, add, slavo_germanic)
        elif c == "K":
            add("K")
            current += 2 if char(current + 1) == "K" else 1
        elif c == "L":
            if char(current + 1) == "L":
                # Spanish "cabrillo", "gallegos": the LL may be silent
                if (current == length - 3 and at(current - 1, 4, "ILLO", "ILLA", "ALLE")) or (
                    (at(last - 1, 2, "AS", "OS") or at(last, 1, "A", "O")) and at(current - 1, 4, "ALLE")
                ):
                    add("L", "")
                    current += 2
                    continue
                current += 2
            else:
                current += 1
            add("L")
        elif c == "M":
            if (at(current - 1, 3, "UMB") and (current + 1 == last or at(current + 2, 2, "ER"))) or char(
                current + 1
            ) == "M":
                current += 2  # "dumb", "thumb": silent B
            else:
                current += 1
            add("M")
        elif c == "N":
            add("N")
            current += 2 if char(current + 1) == "N" else 1
        elif c == "Ñ":
            add("N")
            current += 1
        elif c == "P":
            if char(current + 1) == "H":
                add("F")
                current += 2
            else:
                add("P")  # "campbell", "raspberry": the B or P after is silent
                current += 2 if at(current + 1, 1, "P", "B") else 1
        elif c == "Q":
            add("K")
            current += 2 if char(current + 1) == "Q" else 1
        elif c == "R":
            # French "rogier", but not "hochmeier"
            if (
                current == last
                and not slavo_germanic
                and at(current - 2, 2, "IE")
                and not at(current - 4, 2, "ME", "MA")
            ):
                add("", "R")
            else:
                add("R")
            current += 2 if char(current + 1) == "R" else 1
        elif c == "S":
            current = _s(s, current, last, at, char, vowel, add, slavo_germanic)
        elif c == "T":
            if at(current, 4, "TION") or at(current, 3, "TIA", "TCH"):
                add("X")
                current += 3
            elif at(current, 2, "TH") or at(current, 3, "TTH"):
                # "thomas", "thames", or Germanic: a hard T
                if at(current + 2, 2, "OM", "AM") or at(0, 4, "VAN ", "VON ") or at(0, 3, "SCH"):
                    add("T")
                else:
                    add("0", "T")
                current += 2
            else:
                add("T")
                current += 2 if at(current + 1, 1, "T", "D") else 1
        elif c == "V":
            add("F")
            current += 2 if char(current + 1) == "V" else 1
        elif c == "W":
            if at(current, 2, "WR"):
                add("R")
                current += 2
                continue
            if current == 0 and (vowel(current + 1) or at(current, 2, "WH")):
                # "Wasserman" should match "Vasserman"; "Uomo" should match "Womo"
                if vowel(current + 1):
                    add("A", "F")
                else:
                    add("A")
            # "Arnow" should match "Arnoff"
            if (
                (current == last and vowel(current - 1))
                or at(current - 1, 5, "EWSKI", "EWSKY", "OWSKI", "OWSKY")
                or at(0, 3, "SCH")
            ):
                add("", "F")
                current += 1
            elif at(current, 4, "WICZ", "WITZ"):  # Polish "filipowicz"
                add("TS", "FX")
                current += 4
            else:
                current += 1
        elif c == "X":
            # French "breaux": a final X is silent
            if not (current == last and (at(current - 3, 3, "IAU", "EAU") or at(current - 2, 2, "AU", "OU"))):
                add("KS")
            current += 2 if at(current + 1, 1, "C", "X") else 1
        elif c == "Z":
            if char(current + 1) == "H":  # Chinese pinyin "zhao"
                add("J")
                current += 2
            else:
                if at(current + 1, 2, "ZO", "ZI", "ZA") or (
                    slavo_germanic and current > 0 and char(current - 1) != "T"
                ):
                    add("S", "TS")
                else:
                    add("S")
                current += 2 if char(current + 1) == "Z" else 1
        else:
            current += 1
    return "".join(primary), "".join(secondary)


def _c(s, current, last, at, char, vowel, add) -> int:
    # Germanic "bacher", "macher": a hard CH
    if (
        current > 1
        and not vowel(current - 2)
        and at(current - 1, 3, "ACH")
        and char(current + 2) != "I"
        and (char(current + 2) != "E" or at(current - 2, 6, "BACHER", "MACHER"))
    ):
        add("K")
        return current + 2
    if current == 0 and at(current, 6, "CAESAR"):
        add("S")
        return current + 2
    if at(current, 4, "CHIA"):  # Italian "chianti"
        add("K")
        return current + 2
    if at(current, 2, "CH"):
        if current > 0 and at(current, 4, "CHAE"):  # "michael"
            add("K", "X")
            return current + 2
        # Greek roots: "chemistry", "chorus"
        if (
            current == 0
            and (at(current + 1, 5, "HARAC", "HARIS") or at(current + 1, 3, "HOR", "HYM", "HIA", "HEM"))
            and not at(0, 5, "CHORE")
        ):
            add("K")
            return current + 2
        # Germanic, Greek or otherwise CH for a KH sound: "architect" but not "arch", "orchestra", "orchid"
        if (
            at(0, 4, "VAN ", "VON ")
            or at(0, 3, "SCH")
            or at(current - 2, 6, "ORCHES", "ARCHIT", "ORCHID")
            or at(current + 2, 1, "T", "S")
            or (
                (at(current - 1, 1, "A", "O", "U", "E") or current == 0)
                and at(current + 2, 1, "L", "R", "N", "M", "B", "H", "F", "V", "W", " ")
            )
        ):
            add("K")
        elif current > 0:
            if at(0, 2, "MC"):
                add("K")
            else:
                add("X", "K")
        else:
            add("X")
        return current + 2
    if at(current, 2, "CZ") and not at(current - 2, 4, "WICZ"):  # "czerny"
        add("S", "X")
        return current + 2
    if at(current + 1, 3, "CIA"):  # "focaccia"
        add("X")
        return current + 3
    if at(current, 2, "CC") and not (current == 1 and s[0] == "M"):  # but not "McClellan"
        # "bellocchio" but not "bacchus"
        if at(current + 2, 1, "I", "E", "H") and not at(current + 2, 2, "HU"):
            if (current == 1 and char(current - 1) == "A") or at(current - 1, 5, "UCCEE", "UCCES"):
                add("KS")  # "accident", "accede", "succeed"
            else:
                add("X")  # "bacci", "bertucci"
            return current + 3
        add("K")  # Pierce's rule
        return current + 2
    if at(current, 2, "CK", "CG", "CQ"):
        add("K")
        return current + 2
    if at(current, 2, "CI", "CE", "CY"):
        if at(current, 3, "CIO", "CIE", "CIA"):  # Italian vs English
            add("S", "X")
        else:
            add("S")
        return current + 2
    add("K")
    if at(current + 1, 2, " C", " Q", " G"):  # "mac caffrey", "mac gregor"
        return current + 3
    if at(current + 1, 1, "C", "K", "Q") and not at(current + 1, 2, "CE", "CI"):
        return current + 2
    return current + 1


def _g(s, current, at, char, vowel, add, slavo_germanic) -> int:
    nxt = char(current + 1)
    if nxt == "H":
        if current > 0 and not vowel(current - 1):
            add("K")
            return current + 2
        if current == 0:  # "ghislane", "ghiradelli"
            add("J" if char(current + 2) == "I" else "K")
            return current + 2
        # Parker's rule: "hugh", "bough", "broughton" are silent
        if (
            (current > 1 and at(current - 2, 1, "B", "H", "D"))
            or (current > 2 and at(current - 3, 1, "B", "H", "D"))
            or (current > 3 and at(current - 4, 1, "B", "H"))
        ):
            return current + 2
        # "laugh", "mclaughlin", "cough", "rough", "tough"
        if current > 2 and char(current - 1) == "U" and at(current - 3, 1, "C", "G", "L", "R", "T"):
            add("F")
        elif current > 0 and char(current - 1) != "I":
            add("K")
        return current + 2
    if nxt == "N":
        if current == 1 and vowel(0) and not slavo_germanic:
            add("KN", "N")
        elif not at(current + 2, 2, "EY") and char(current + 1) != "Y" and not slavo_germanic:
            add("N", "KN")  # but not "cagney"
        else:
            add("KN")
        return current + 2
    if at(current + 1, 2, "LI") and not slavo_germanic:  # "tagliaro"
        add("KL", "L")
        return current + 2
    # -ges-, -gep-, -gel-, -gie- at the start
    if current == 0 and (
        nxt == "Y" or at(current + 1, 2, "ES", "EP", "EB", "EL", "EY", "IB", "IL", "IN", "IE", "EI", "ER")
    ):
        add("K", "J")
        return current + 2
    # -ger-, -gy-
    if (
        (at(current + 1, 2, "ER") or nxt == "Y")
        and not at(0, 6, "DANGER", "RANGER", "MANGER")
        and not at(current - 1, 1, "E", "I")
        and not at(current - 1, 3, "RGY", "OGY")
    ):
        add("K", "J")
        return current + 2
    # Italian "biaggi"
    if at(current + 1, 1, "E", "I", "Y") or at(current - 1, 4, "AGGI", "OGGI"):
        if at(0, 4, "VAN ", "VON ") or at(0, 3, "SCH") or at(current + 1, 2, "ET"):
            add("K")  # obviously Germanic
        elif at(current + 1, 4, "IER "):
            add("J")  # always soft with a French ending
        else:
            add("J", "K")
        return current + 2
    add("K")
    return current + 2 if nxt == "G" else current + 1


def _j(current, last, at, char, vowel, add, slavo_germanic) -> int:
    # Spanish "jose", "san jacinto"
    if at(current, 4, "JOSE") or at(0, 4, "SAN "):
        if (current == 0 and char(current + 4) == " ") or at(0, 4, "SAN "):
            add("H")
        else:
            add("J", "H")
        return current + 1
    if current == 0:
        add("J", "A")  # "Yankelovich" / "Jankelowicz"
    elif vowel(current - 1) and not slavo_germanic and char(current + 1) in ("A", "O"):
        add("J", "H")  # Spanish "bajador"
    elif current == last:
        add("J", "")
    elif not at(current + 1, 1, "L", "T", "K", "S", "N", "M", "B", "Z") and not at(
        current - 1, 1, "S", "K", "L"
    ):
        add("J")
    return current + 2 if char(current + 1) == "J" else current + 1


def _s(s, current, last, at, char, vowel, add, slavo_germanic) -> int:
    if at(current - 1, 3, "ISL", "YSL"):  # "island", "isle", "carlisle": silent S
        return current + 1
    if current == 0 and at(current, 5, "SUGAR"):
        add("X", "S")
        return current + 1
    if at(current, 2, "SH"):
        if at(current + 1, 4, "HEIM", "HOEK", "HOLM", "HOLZ"):  # Germanic
            add("S")
        else:
            add("X")
        return current + 2
    if at(current, 3, "SIO", "SIA") or at(current, 4, "SIAN"):  # Italian and Armenian
        if slavo_germanic:
            add("S")
        else:
            add("S", "X")
        return current + 3
    # "smith" matches "schmidt", "snider" matches "schneider"; Slavic -sz-
    if (current == 0 and at(current + 1, 1, "M", "N", "L", "W")) or at(current + 1, 1, "Z"):
        add("S", "X")
        return current + 2 if at(current + 1, 1, "Z") else current + 1
    if at(current, 2, "SC"):
        if char(current + 2) == "H":  # Schlesinger's rule
            if at(current + 3, 2, "OO", "ER", "EN", "UY", "ED", "EM"):  # Dutch "school", "schooner"
                if at(current + 3, 2, "ER", "EN"):  # "schermerhorn", "schenker"
                    add("X", "SK")
                else:
                    add("SK")
                return current + 3
            if current == 0 and not vowel(3) and char(3) != "W":
                add("X", "S")
            else:
                add("X")
            return current + 3
        if at(current + 2, 1, "I", "E", "Y"):
            add("S")
            return current + 3
        add("SK")
        return current + 3
    if current == last and at(current - 2, 2, "AI", "OI"):  # French "resnais", "artois"
        add("", "S")
    else:
        add("S")
    return current + 2 if at(current + 1, 1, "S", "Z") else current + 1


# ---------------------------------------------------------------------------------------------------------
# primary_codes: the primary code of many strings at once, a Numba port of the rules above
# ---------------------------------------------------------------------------------------------------------


def primary_codes(values: Any) -> pa.LargeStringArray:
    """Double Metaphone primary codes of many strings at once.

    The same codes as ``double_metaphone(v)[0]``, from a compiled port of its rules that runs over the Arrow
    buffer of the strings, 35-60 times faster than a Python loop (about 0.2 µs a name against 13 µs).
    Strings with non-ASCII characters (rare after :func:`gpucdp.standardize.fold_ascii`) go through
    :func:`double_metaphone` itself, so the result is the same for any text.

    Parameters
    ----------
    values : pyarrow string array, pandas Series of str, or sequence of str or None, length n
        The words or names; nulls (None, NaN, pd.NA) are allowed.

    Returns
    -------
    pyarrow.LargeStringArray[n]
        The primary codes; null where the value is null or has no code (``""``, ``"   "``, ``"1234"``), so
        missing stays null and never the empty string. ``.to_pylist()`` gives a list of str or None.

    Raises
    ------
    InputError
        If ``values`` holds something other than strings and nulls.
    """
    arr = _as_large_string(values)
    n = len(arr)
    chars, offsets = large_string_buffers(arr)
    lengths = np.empty(n, dtype=np.int64)
    if n:
        # a code is at most two characters per character read (X → KS), so each string writes into its own
        # slot of twice its length; the slots are packed afterwards
        scratch = np.empty(2 * max(int(offsets[-1]), 1), dtype=np.uint8)
        _encode_all(chars, offsets, scratch, lengths)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    out_chars = np.empty(int(out_offsets[-1]), dtype=np.uint8)
    if n:
        _pack(scratch, offsets, out_offsets, out_chars)
    valid = lengths > 0
    if arr.null_count:
        valid &= arr.is_valid().to_numpy(zero_copy_only=False)
    codes = large_string_array(out_chars, out_offsets, valid)
    non_ascii = pc.invert(pc.fill_null(pc.string_is_ascii(arr), True))
    if pc.any(non_ascii).as_py():
        # the kernel reads bytes, not characters (and Python's upper() may change a character's length): leave
        # the few non-ASCII strings to the spec
        listed = codes.to_pylist()
        for i in np.flatnonzero(non_ascii.to_numpy(zero_copy_only=False)):
            listed[i] = double_metaphone(arr[int(i)].as_py())[0] or None
        codes = pa.array(listed, type=pa.large_string())
    return codes


def _as_large_string(values: Any) -> pa.LargeStringArray:
    kind = type(values).__name__
    try:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if not isinstance(values, pa.Array):
            values = pa.array(values, from_pandas=True)
        if not (
            pa.types.is_string(values.type)
            or pa.types.is_large_string(values.type)
            or pa.types.is_null(values.type)
        ):
            raise TypeError(f"values of type {values.type}")
        return values.cast(pa.large_string())
    except (TypeError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(
            f"primary_codes: values must be strings or nulls, got a {kind} with {exc}; "
            "convert the column to str first (e.g. series.astype('str'))"
        ) from exc


def _k(text: str) -> int:
    """Pack up to 8 ASCII characters into one integer, the form in which the kernel compares substrings."""
    key = 0
    for char in text:
        key = key * 256 + ord(char)
    return key


# Numba freezes module globals into the compiled code as constants, so each pattern of the rules is one
# integer compare. Names spell the pattern; a space is an underscore ("VAN " → _VAN_, " C" → __C).
_A, _B, _C, _D, _E, _F, _G, _H, _I, _J, _K, _L, _M = (ord(c) for c in "ABCDEFGHIJKLM")
_N, _O, _P, _Q, _R, _S, _T, _U, _V, _W, _X, _Y, _Z = (ord(c) for c in "NOPQRSTUVWXYZ")
_SP, _ZERO = ord(" "), ord("0")
_GN, _KN, _PN, _WR, _PS = _k("GN"), _k("KN"), _k("PN"), _k("WR"), _k("PS")
_DG, _DT, _DD = _k("DG"), _k("DT"), _k("DD")
_ILLO, _ILLA, _ALLE, _AS, _OS = _k("ILLO"), _k("ILLA"), _k("ALLE"), _k("AS"), _k("OS")
_UMB, _ER, _IE, _ME, _MA = _k("UMB"), _k("ER"), _k("IE"), _k("ME"), _k("MA")
_TION, _TIA, _TCH, _TH, _TTH, _OM, _AM = (
    _k("TION"),
    _k("TIA"),
    _k("TCH"),
    _k("TH"),
    _k("TTH"),
    _k("OM"),
    _k("AM"),
)
_VAN_, _VON_, _SAN_, _SCH = _k("VAN "), _k("VON "), _k("SAN "), _k("SCH")
_WH, _EWSKI, _EWSKY, _OWSKI, _OWSKY = _k("WH"), _k("EWSKI"), _k("EWSKY"), _k("OWSKI"), _k("OWSKY")
_WICZ, _WITZ, _IAU, _EAU, _AU, _OU = _k("WICZ"), _k("WITZ"), _k("IAU"), _k("EAU"), _k("AU"), _k("OU")
_ACH, _BACHER, _MACHER, _CAESAR, _CHIA = _k("ACH"), _k("BACHER"), _k("MACHER"), _k("CAESAR"), _k("CHIA")
_CH, _CHAE, _HARAC, _HARIS, _CHORE = _k("CH"), _k("CHAE"), _k("HARAC"), _k("HARIS"), _k("CHORE")
_HOR, _HYM, _HIA, _HEM = _k("HOR"), _k("HYM"), _k("HIA"), _k("HEM")
_ORCHES, _ARCHIT, _ORCHID, _MC = _k("ORCHES"), _k("ARCHIT"), _k("ORCHID"), _k("MC")
_CZ, _CIA, _CC, _HU, _UCCEE, _UCCES = _k("CZ"), _k("CIA"), _k("CC"), _k("HU"), _k("UCCEE"), _k("UCCES")
_CK, _CG, _CQ, _CI, _CE, _CY, _CIO, _CIE = (
    _k("CK"),
    _k("CG"),
    _k("CQ"),
    _k("CI"),
    _k("CE"),
    _k("CY"),
    _k("CIO"),
    _k("CIE"),
)
__C, __Q, __G = _k(" C"), _k(" Q"), _k(" G")
_EY, _LI, _ES, _EP, _EB, _EL, _IB, _IL, _IN, _EI = (
    _k(p) for p in ("EY", "LI", "ES", "EP", "EB", "EL", "IB", "IL", "IN", "EI")
)
_DANGER, _RANGER, _MANGER, _RGY, _OGY = _k("DANGER"), _k("RANGER"), _k("MANGER"), _k("RGY"), _k("OGY")
_AGGI, _OGGI, _ET, _IER_, _JOSE = _k("AGGI"), _k("OGGI"), _k("ET"), _k("IER "), _k("JOSE")
_ISL, _YSL, _SUGAR, _SH, _SIO, _SIA, _SIAN, _SC = (
    _k(p) for p in ("ISL", "YSL", "SUGAR", "SH", "SIO", "SIA", "SIAN", "SC")
)
_HEIM, _HOEK, _HOLM, _HOLZ = _k("HEIM"), _k("HOEK"), _k("HOLM"), _k("HOLZ")
_OO, _EN, _UY, _ED, _EM, _AI, _OI = _k("OO"), _k("EN"), _k("UY"), _k("ED"), _k("EM"), _k("AI"), _k("OI")

_jit = numba.njit(cache=True, nogil=True)


@_jit
def _ch(s, b, n, pos):
    # the upper-cased character at pos of the word s[b:b+n] padded with five spaces as the reference does;
    # 0 outside (never equal to a letter or a space, like the spec's "")
    if pos < 0 or pos >= n + 5:
        return 0
    if pos >= n:
        return _SP
    c = np.int64(s[b + pos])
    if c >= 97 and c <= 122:
        c -= 32
    return c


@_jit
def _sub(s, b, n, pos, size):
    # the packed substring of the padded word at pos, or -1 where it would start before 0 or run past the pad
    # (the spec's slice comes out short there and matches nothing)
    if pos < 0 or pos + size > n + 5:
        return -1
    key = 0
    for i in range(size):
        key = key * 256 + _ch(s, b, n, pos + i)
    return key


@_jit
def _vowel(c):
    return c == _A or c == _E or c == _I or c == _O or c == _U or c == _Y


@_jit
def _put(out, o, c):
    out[o] = c
    return o + 1


@_jit
def _encode(s, b, n, out, o):
    """Write the primary code of the word s[b:b+n] at out[o:]; return the end. Mirrors double_metaphone."""
    if n == 0:
        return o
    last = n - 1
    slavo_germanic = False
    for i in range(n):
        c = _ch(s, b, n, i)
        if c == _W or c == _K or (c == _C and i < last and _ch(s, b, n, i + 1) == _Z):
            slavo_germanic = True
            break
    current = 0
    head = _sub(s, b, n, 0, 2)
    if head == _GN or head == _KN or head == _PN or head == _WR or head == _PS:
        current = 1
    if _ch(s, b, n, 0) == _X:
        o = _put(out, o, _S)
        current = 1
    while current < n:
        c = _ch(s, b, n, current)
        nxt = _ch(s, b, n, current + 1)
        if _vowel(c):
            if current == 0:
                o = _put(out, o, _A)
            current += 1
        elif c == _B:
            o = _put(out, o, _P)
            current += 2 if nxt == _B else 1
        elif c == _C:
            current, o = _c_primary(s, b, n, current, out, o)
        elif c == _D:
            two = _sub(s, b, n, current, 2)
            if two == _DG:
                after = _ch(s, b, n, current + 2)
                if after == _I or after == _E or after == _Y:
                    o = _put(out, o, _J)
                    current += 3
                else:
                    o = _put(out, _put(out, o, _T), _K)
                    current += 2
            elif two == _DT or two == _DD:
                o = _put(out, o, _T)
                current += 2
            else:
                o = _put(out, o, _T)
                current += 1
        elif c == _F:
            o = _put(out, o, _F)
            current += 2 if nxt == _F else 1
        elif c == _G:
            current, o = _g_primary(s, b, n, current, slavo_germanic, out, o)
        elif c == _H:
            if (current == 0 or _vowel(_ch(s, b, n, current - 1))) and _vowel(nxt):
                o = _put(out, o, _H)
                current += 2
            else:
                current += 1
        elif c == _J:
            current, o = _j_primary(s, b, n, current, slavo_germanic, out, o)
        elif c == _K:
            o = _put(out, o, _K)
            current += 2 if nxt == _K else 1
        elif c == _L:
            if nxt == _L:
                four = _sub(s, b, n, current - 1, 4)
                end2 = _sub(s, b, n, last - 1, 2)
                end1 = _ch(s, b, n, last)
                if (current == n - 3 and (four == _ILLO or four == _ILLA or four == _ALLE)) or (
                    (end2 == _AS or end2 == _OS or end1 == _A or end1 == _O) and four == _ALLE
                ):
                    # Spanish silent LL: only the secondary code drops it
                    o = _put(out, o, _L)
                    current += 2
                    continue
                current += 2
            else:
                current += 1
            o = _put(out, o, _L)
        elif c == _M:
            if (
                _sub(s, b, n, current - 1, 3) == _UMB
                and (current + 1 == last or _sub(s, b, n, current + 2, 2) == _ER)
            ) or nxt == _M:
                current += 2
            else:
                current += 1
            o = _put(out, o, _M)
        elif c == _N:
            o = _put(out, o, _N)
            current += 2 if nxt == _N else 1
        elif c == _P:
            if nxt == _H:
                o = _put(out, o, _F)
                current += 2
            else:
                o = _put(out, o, _P)
                current += 2 if (nxt == _P or nxt == _B) else 1
        elif c == _Q:
            o = _put(out, o, _K)
            current += 2 if nxt == _Q else 1
        elif c == _R:
            before = _sub(s, b, n, current - 4, 2)
            french = (
                current == last
                and not slavo_germanic
                and _sub(s, b, n, current - 2, 2) == _IE
                and not (before == _ME or before == _MA)
            )
            if not french:  # a French final R is only in the secondary code
                o = _put(out, o, _R)
            current += 2 if nxt == _R else 1
        elif c == _S:
            current, o = _s_primary(s, b, n, current, slavo_germanic, out, o)
        elif c == _T:
            three = _sub(s, b, n, current, 3)
            if _sub(s, b, n, current, 4) == _TION or three == _TIA or three == _TCH:
                o = _put(out, o, _X)
                current += 3
            elif _sub(s, b, n, current, 2) == _TH or three == _TTH:
                after = _sub(s, b, n, current + 2, 2)
                start4 = _sub(s, b, n, 0, 4)
                if (
                    after == _OM
                    or after == _AM
                    or start4 == _VAN_
                    or start4 == _VON_
                    or _sub(s, b, n, 0, 3) == _SCH
                ):
                    o = _put(out, o, _T)
                else:
                    o = _put(out, o, _ZERO)
                current += 2
            else:
                o = _put(out, o, _T)
                current += 2 if (nxt == _T or nxt == _D) else 1
        elif c == _V:
            o = _put(out, o, _F)
            current += 2 if nxt == _V else 1
        elif c == _W:
            if _sub(s, b, n, current, 2) == _WR:
                o = _put(out, o, _R)
                current += 2
                continue
            if current == 0 and (_vowel(nxt) or _sub(s, b, n, current, 2) == _WH):
                o = _put(out, o, _A)
            five = _sub(s, b, n, current - 1, 5)
            four = _sub(s, b, n, current, 4)
            if (
                (current == last and _vowel(_ch(s, b, n, current - 1)))
                or five == _EWSKI
                or five == _EWSKY
                or five == _OWSKI
                or five == _OWSKY
                or _sub(s, b, n, 0, 3) == _SCH
            ):
                current += 1  # the F is only in the secondary code
            elif four == _WICZ or four == _WITZ:
                o = _put(out, _put(out, o, _T), _S)
                current += 4
            else:
                current += 1
        elif c == _X:
            three = _sub(s, b, n, current - 3, 3)
            two = _sub(s, b, n, current - 2, 2)
            if not (current == last and (three == _IAU or three == _EAU or two == _AU or two == _OU)):
                o = _put(out, _put(out, o, _K), _S)
            current += 2 if (nxt == _C or nxt == _X) else 1
        elif c == _Z:
            if nxt == _H:
                o = _put(out, o, _J)
                current += 2
            else:
                o = _put(out, o, _S)
                current += 2 if nxt == _Z else 1
        else:
            current += 1
    return o


@_jit
def _c_primary(s, b, n, current, out, o):
    # the rules of _c above, primary code only; returns (current, o)
    after = _ch(s, b, n, current + 2)
    if (
        current > 1
        and not _vowel(_ch(s, b, n, current - 2))
        and _sub(s, b, n, current - 1, 3) == _ACH
        and after != _I
        and (
            after != _E
            or _sub(s, b, n, current - 2, 6) == _BACHER
            or _sub(s, b, n, current - 2, 6) == _MACHER
        )
    ):
        return current + 2, _put(out, o, _K)
    if current == 0 and _sub(s, b, n, current, 6) == _CAESAR:
        return current + 2, _put(out, o, _S)
    if _sub(s, b, n, current, 4) == _CHIA:
        return current + 2, _put(out, o, _K)
    two = _sub(s, b, n, current, 2)
    if two == _CH:
        if current > 0 and _sub(s, b, n, current, 4) == _CHAE:
            return current + 2, _put(out, o, _K)
        five = _sub(s, b, n, current + 1, 5)
        three = _sub(s, b, n, current + 1, 3)
        if (
            current == 0
            and (
                five == _HARAC
                or five == _HARIS
                or three == _HOR
                or three == _HYM
                or three == _HIA
                or three == _HEM
            )
            and _sub(s, b, n, 0, 5) != _CHORE
        ):
            return current + 2, _put(out, o, _K)
        start4 = _sub(s, b, n, 0, 4)
        six = _sub(s, b, n, current - 2, 6)
        before = _ch(s, b, n, current - 1)
        if (
            (
                start4 == _VAN_
                or start4 == _VON_
                or _sub(s, b, n, 0, 3) == _SCH
                or six == _ORCHES
                or six == _ARCHIT
                or six == _ORCHID
                or after == _T
                or after == _S
                or (
                    (before == _A or before == _O or before == _U or before == _E or current == 0)
                    and (
                        after == _L
                        or after == _R
                        or after == _N
                        or after == _M
                        or after == _B
                        or after == _H
                        or after == _F
                        or after == _V
                        or after == _W
                        or after == _SP
                    )
                )
            )
            or current > 0
            and _sub(s, b, n, 0, 2) == _MC
        ):
            o = _put(out, o, _K)
        else:
            o = _put(out, o, _X)
        return current + 2, o
    if two == _CZ and _sub(s, b, n, current - 2, 4) != _WICZ:
        return current + 2, _put(out, o, _S)
    if _sub(s, b, n, current + 1, 3) == _CIA:
        return current + 3, _put(out, o, _X)
    if two == _CC and not (current == 1 and _ch(s, b, n, 0) == _M):
        if (after == _I or after == _E or after == _H) and _sub(s, b, n, current + 2, 2) != _HU:
            five = _sub(s, b, n, current - 1, 5)
            if (current == 1 and _ch(s, b, n, current - 1) == _A) or five == _UCCEE or five == _UCCES:
                o = _put(out, _put(out, o, _K), _S)
            else:
                o = _put(out, o, _X)
            return current + 3, o
        return current + 2, _put(out, o, _K)
    if two == _CK or two == _CG or two == _CQ:
        return current + 2, _put(out, o, _K)
    if two == _CI or two == _CE or two == _CY:
        return current + 2, _put(out, o, _S)
    o = _put(out, o, _K)
    spaced = _sub(s, b, n, current + 1, 2)
    if spaced == __C or spaced == __Q or spaced == __G:
        return current + 3, o
    nxt = _ch(s, b, n, current + 1)
    if (nxt == _C or nxt == _K or nxt == _Q) and not (spaced == _CE or spaced == _CI):
        return current + 2, o
    return current + 1, o


@_jit
def _g_primary(s, b, n, current, slavo_germanic, out, o):
    # the rules of _g above, primary code only; returns (current, o)
    nxt = _ch(s, b, n, current + 1)
    before = _ch(s, b, n, current - 1)
    if nxt == _H:
        if current > 0 and not _vowel(before):
            return current + 2, _put(out, o, _K)
        if current == 0:
            return current + 2, _put(out, o, _J if _ch(s, b, n, current + 2) == _I else _K)
        back2 = _ch(s, b, n, current - 2)
        back3 = _ch(s, b, n, current - 3)
        back4 = _ch(s, b, n, current - 4)
        if (
            (current > 1 and (back2 == _B or back2 == _H or back2 == _D))
            or (current > 2 and (back3 == _B or back3 == _H or back3 == _D))
            or (current > 3 and (back4 == _B or back4 == _H))
        ):
            return current + 2, o
        if (
            current > 2
            and before == _U
            and (back3 == _C or back3 == _G or back3 == _L or back3 == _R or back3 == _T)
        ):
            o = _put(out, o, _F)
        elif current > 0 and before != _I:
            o = _put(out, o, _K)
        return current + 2, o
    if nxt == _N:
        if current == 1 and _vowel(_ch(s, b, n, 0)) and not slavo_germanic:
            o = _put(out, _put(out, o, _K), _N)
        elif _sub(s, b, n, current + 2, 2) != _EY and nxt != _Y and not slavo_germanic:
            o = _put(out, o, _N)
        else:
            o = _put(out, _put(out, o, _K), _N)
        return current + 2, o
    two = _sub(s, b, n, current + 1, 2)
    if two == _LI and not slavo_germanic:
        return current + 2, _put(out, _put(out, o, _K), _L)
    if current == 0 and (
        nxt == _Y
        or two == _ES
        or two == _EP
        or two == _EB
        or two == _EL
        or two == _EY
        or two == _IB
        or two == _IL
        or two == _IN
        or two == _IE
        or two == _EI
        or two == _ER
    ):
        return current + 2, _put(out, o, _K)
    start6 = _sub(s, b, n, 0, 6)
    around = _sub(s, b, n, current - 1, 3)
    if (
        (two == _ER or nxt == _Y)
        and not (start6 == _DANGER or start6 == _RANGER or start6 == _MANGER)
        and not (before == _E or before == _I)
        and not (around == _RGY or around == _OGY)
    ):
        return current + 2, _put(out, o, _K)
    four = _sub(s, b, n, current - 1, 4)
    if nxt == _E or nxt == _I or nxt == _Y or four == _AGGI or four == _OGGI:
        start4 = _sub(s, b, n, 0, 4)
        if start4 == _VAN_ or start4 == _VON_ or _sub(s, b, n, 0, 3) == _SCH or two == _ET:
            o = _put(out, o, _K)
        else:  # soft, with a French ending or not
            o = _put(out, o, _J)
        return current + 2, o
    o = _put(out, o, _K)
    return (current + 2 if nxt == _G else current + 1), o


@_jit
def _j_primary(s, b, n, current, slavo_germanic, out, o):
    # the rules of _j above, primary code only; returns (current, o)
    san = _sub(s, b, n, 0, 4) == _SAN_
    if _sub(s, b, n, current, 4) == _JOSE or san:
        if (current == 0 and _ch(s, b, n, current + 4) == _SP) or san:
            o = _put(out, o, _H)
        else:
            o = _put(out, o, _J)
        return current + 1, o
    nxt = _ch(s, b, n, current + 1)
    before = _ch(s, b, n, current - 1)
    if (
        current == 0
        or _vowel(before)
        and not slavo_germanic
        and (nxt == _A or nxt == _O)
        or current == n - 1
        or not (
            nxt == _L
            or nxt == _T
            or nxt == _K
            or nxt == _S
            or nxt == _N
            or nxt == _M
            or nxt == _B
            or nxt == _Z
        )
        and not (before == _S or before == _K or before == _L)
    ):
        o = _put(out, o, _J)
    return (current + 2 if nxt == _J else current + 1), o


@_jit
def _s_primary(s, b, n, current, slavo_germanic, out, o):
    # the rules of _s above, primary code only; returns (current, o)
    around = _sub(s, b, n, current - 1, 3)
    if around == _ISL or around == _YSL:
        return current + 1, o
    if current == 0 and _sub(s, b, n, current, 5) == _SUGAR:
        return current + 1, _put(out, o, _X)
    two = _sub(s, b, n, current, 2)
    if two == _SH:
        four = _sub(s, b, n, current + 1, 4)
        germanic = four == _HEIM or four == _HOEK or four == _HOLM or four == _HOLZ
        return current + 2, _put(out, o, _S if germanic else _X)
    three = _sub(s, b, n, current, 3)
    if three == _SIO or three == _SIA or _sub(s, b, n, current, 4) == _SIAN:
        return current + 3, _put(out, o, _S)
    nxt = _ch(s, b, n, current + 1)
    if (current == 0 and (nxt == _M or nxt == _N or nxt == _L or nxt == _W)) or nxt == _Z:
        return (current + 2 if nxt == _Z else current + 1), _put(out, o, _S)
    if two == _SC:
        after = _ch(s, b, n, current + 2)
        if after == _H:
            dutch = _sub(s, b, n, current + 3, 2)
            if dutch == _OO or dutch == _ER or dutch == _EN or dutch == _UY or dutch == _ED or dutch == _EM:
                if dutch == _ER or dutch == _EN:
                    o = _put(out, o, _X)
                else:
                    o = _put(out, _put(out, o, _S), _K)
                return current + 3, o
            return current + 3, _put(out, o, _X)
        if after == _I or after == _E or after == _Y:
            return current + 3, _put(out, o, _S)
        return current + 3, _put(out, _put(out, o, _S), _K)
    back = _sub(s, b, n, current - 2, 2)
    if not (current == n - 1 and (back == _AI or back == _OI)):  # a French final S is only in the secondary
        o = _put(out, o, _S)
    return (current + 2 if (nxt == _S or nxt == _Z) else current + 1), o


@_jit
def _encode_all(chars, offsets, scratch, lengths):
    # serial: a name takes about 0.2 µs, so the unique names of a million records take tens of milliseconds,
    # and parallel=True would add seconds of compile time for less than that
    for i in range(len(lengths)):
        start = offsets[i]
        lengths[i] = _encode(chars, start, offsets[i + 1] - start, scratch, 2 * start) - 2 * start


@_jit
def _pack(scratch, offsets, out_offsets, out_chars):
    for i in range(len(out_offsets) - 1):
        src = 2 * offsets[i]
        dst = out_offsets[i]
        for j in range(out_offsets[i + 1] - dst):
            out_chars[dst + j] = scratch[src + j]
