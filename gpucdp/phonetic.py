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
strings. It runs in plain Python, once per *unique* value (see :mod:`gpucdp.standardize`).
"""

from __future__ import annotations

__all__ = ["double_metaphone"]

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
