"""Standardize: clean each field and derive the keys that blocking and comparison use.

Written once against the frame API that pandas and cuDF share (``.str`` methods, ``.where``, ``.map`` of a
dict, ``factorize``, ``take``), so the same code runs on the host and on the GPU: pass ``xdf=cudf`` for cuDF frames.

Every field is first factorized: all the work below runs on its *unique* values, and the results are spread
back to the rows by the factorization codes. Names, dates, cities and postcodes repeat a lot, so this is where
most of the speed comes from, and it is what lets the few steps without a vectorised form (accent folding,
Double Metaphone, nickname lookup) run in Python on the host without a per-row loop. Emails and phone numbers
rarely repeat: on the host they take one compiled pass over their bytes instead (:mod:`gpucdp.contacts`).

Derived columns, per field ``f`` (missing → null, never the empty string):

=============  ==========================================================================================
type           columns
=============  ==========================================================================================
name           ``f`` clean name; ``f__canon`` first token through the nickname table;
               ``f__phonetic`` Double Metaphone primary code of ``f``; ``f__initial`` its first letter
email          ``f`` normalised address; ``f__user``; ``f__domain``
phone          ``f`` national significant number, digits only
date           ``f`` ISO ``YYYY-MM-DD``; ``f__ymd`` float64 yyyymmdd
postcode       ``f`` upper-case alphanumerics; ``f__prefix`` outward code (UK) or first 3 characters
address        ``f`` clean address with canonical suffixes; ``f__number`` leading house number
text           ``f`` folded, lower-case, punctuation stripped
categorical    ``f`` folded, lower-case
numeric        ``f__num`` float64
=============  ==========================================================================================

Stats per field: ``missing`` counts rows that were null or blank (nothing but whitespace) on input;
``unparseable`` counts rows that had something but gave no usable value (a bad date, a phone with fewer than
7 digits, a name with no letters, an emoji-only text). The two are disjoint, and their sum is the number of
nulls in the field's main column. Nothing raises for a bad value.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import io
import re
import unicodedata
import warnings
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas
import pyarrow
import pyarrow.compute

from gpucdp.contacts import email_parts, phone_numbers
from gpucdp.errors import InputError, SettingsError
from gpucdp.parallel import thread_map
from gpucdp.phonetic import primary_codes

__all__ = ["DATE_ORDERS", "FIELD_TYPES", "MIN_PART_ROWS", "derived_columns", "fold_ascii", "row_parts",
           "standardize"]

FIELD_TYPES = ("name", "email", "phone", "date", "postcode", "address", "text", "categorical", "numeric")
DATE_ORDERS = ("mdy", "dmy")

_SUFFIXES = {
    "name": ("", "__canon", "__phonetic", "__initial"),
    "email": ("", "__user", "__domain"),
    "phone": ("",),
    "date": ("", "__ymd"),
    "postcode": ("", "__prefix"),
    "address": ("", "__number"),
    "text": ("",),
    "categorical": ("",),
    "numeric": ("__num",),
}

_NAME_AFFIXES = ("mr", "mrs", "ms", "miss", "mx", "dr", "jr", "sr", "ii", "iii", "iv")

# Providers whose mailboxes ignore a "+tag" in the local part (Yahoo uses "-", which is too common in real
# user names to strip).
_PLUS_TAG_DOMAINS = (
    "gmail.com",
    "outlook.com",
    "hotmail.com",
    "hotmail.co.uk",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "protonmail.com",
    "proton.me",
    "pm.me",
    "fastmail.com",
    "fastmail.fm",
)

# canonical token → the spellings mapped to it (USPS-style abbreviations; the canonical form maps to itself
# implicitly). "st" also stands for "saint", which keeps "st james st" and "saint james street" equal.
_ADDRESS_TOKENS = {
    "st": ("street", "str", "saint"),
    "ave": ("avenue", "av", "avn", "aven"),
    "rd": ("road",),
    "blvd": ("boulevard", "boul", "blv"),
    "dr": ("drive", "drv"),
    "ln": ("lane",),
    "ct": ("court", "crt"),
    "pl": ("place",),
    "ter": ("terrace", "terr"),
    "cir": ("circle",),
    "hwy": ("highway",),
    "pkwy": ("parkway", "pky"),
    "sq": ("square",),
    "cres": ("crescent",),
    "cl": ("close",),
    "gdns": ("gardens",),
    "mt": ("mount",),
    "n": ("north",),
    "s": ("south",),
    "e": ("east",),
    "w": ("west",),
    "ne": ("northeast",),
    "nw": ("northwest",),
    "se": ("southeast",),
    "sw": ("southwest",),
    "apt": ("apartment", "unit", "suite", "ste", "flat"),
}

_MONTHS = {
    name: number
    for number, full in enumerate(
        (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ),
        start=1,
    )
    for name in (full, full[:3])
}
_MONTHS["sept"] = 9

# Letters that Unicode decomposition does not take apart, and typographic punctuation, in ASCII.
_FOLD_TABLE = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "TH",
        "ı": "i",
        "ħ": "h",
        "Ħ": "H",
        "ŧ": "t",
        "Ŧ": "T",
        "ŋ": "n",
        "Ŋ": "N",
        "ĸ": "k",
        "ſ": "s",
        "‘": "'",
        "’": "'",
        "ʼ": "'",
        "´": "'",
        "`": "'",
        "‐": "-",
        "‑": "-",
        "‒": "-",
        "–": "-",
        "—": "-",
    }
)


def fold_ascii(text: str) -> str:
    """Fold accents and special Latin letters to ASCII.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
        ``"Zoë Łukasz Straße Ørsted"`` → ``"Zoe Lukasz Strasse Orsted"``. Compatibility forms are unfolded too
        (``"ﬁ"`` → ``"fi"``, full-width letters → ASCII). Characters with no Latin reading (CJK, emoji) are
        kept; the steps that need ASCII drop them later.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).translate(_FOLD_TABLE)


def derived_columns(field: str, ftype: str) -> list[str]:
    """The output column names :func:`standardize` makes for one field.

    Parameters
    ----------
    field : str
        The input column name.
    ftype : str
        One of :data:`FIELD_TYPES`.

    Returns
    -------
    list of str
        For example ``derived_columns("first_name", "name")`` →
        ``["first_name", "first_name__canon", "first_name__phonetic", "first_name__initial"]``.

    Raises
    ------
    SettingsError
        When ``ftype`` is not a known field type.
    """
    suffixes = _SUFFIXES.get(ftype)
    if suffixes is None:
        raise SettingsError(
            f"field {field!r} has unknown type {ftype!r}; use one of: {', '.join(FIELD_TYPES)}"
        )
    return [field + suffix for suffix in suffixes]


def standardize(
    frame: Any,
    fields: Sequence[tuple[str, str]],
    *,
    xdf: Any = pandas,
    nicknames: Mapping[str, str] | None = None,
    date_order: str = "mdy",
    threads: int = 1,
) -> tuple[Any, dict[str, dict[str, int]]]:
    """Clean the given fields and derive their match keys.

    Parameters
    ----------
    frame : pandas.DataFrame or cudf.DataFrame, n rows
        Must hold a column for every field. Values are strings (numbers for numeric fields; dates may also be
        timestamps), possibly missing; other types are read through their string form.
    fields : sequence of (str, str)
        ``(column, field_type)`` pairs; field types are :data:`FIELD_TYPES`.
    xdf : module
        The frame module, ``pandas`` or ``cudf``, matching ``frame``.
    nicknames : mapping of str to str, optional
        Nickname → canonical first name (``"bob"`` → ``"robert"``); keys and values are lower-cased. None
        loads the table packaged as ``gpucdp/data/nicknames.csv``.
    date_order : {"mdy", "dmy"}
        How to read an ambiguous slash date such as ``03/04/1985`` (both parts ≤ 12).
    threads : int, default 1
        Tasks run at once, a thread each (:func:`gpucdp.parallel.thread_map`): with more than one, each field
        is cut into parts of rows (:func:`row_parts`), so that one costly field does not hold the stage on a
        machine with many cores. The result does not depend on it. Keep 1 for cuDF frames: the GPU already
        runs each field's work in parallel.

    Returns
    -------
    frame : same type as ``frame``, n rows, same index
        Only the derived columns (see :func:`derived_columns` and the module docstring): strings, or float64
        for ``__ymd`` and ``__num``; missing and unparseable values are null.
    stats : dict
        ``{field: {"missing": int, "unparseable": int}}``.

    Raises
    ------
    SettingsError
        An unknown field type or date order, or fields whose derived columns collide.
    InputError
        A field that is not a column of ``frame``.
    """
    if date_order not in DATE_ORDERS:
        raise SettingsError(f"date_order is {date_order!r}; use one of: {', '.join(DATE_ORDERS)}")
    names: list[str] = []
    for item in fields:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise SettingsError(f"each entry of fields must be a (column, field_type) pair, got {item!r}")
        field, ftype = item
        names.extend(derived_columns(field, ftype))
        if field not in frame.columns:
            raise InputError(
                f"field {field!r} is not a column of the input; columns are: "
                f"{', '.join(map(str, frame.columns))}. Map the column or remove the field from the settings"
            )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SettingsError(
            f"fields give the derived column(s) {', '.join(repeated)} more than once; list each field once "
            "and avoid field names ending in '__canon', '__phonetic', '__initial', '__user', '__domain', '__ymd', "
            "'__prefix', '__number' or '__num'"
        )
    table = _nickname_table(nicknames)
    n = len(frame)
    parts = row_parts(n, threads)

    def one_field(item: tuple[str, str, int, int]) -> tuple[dict[str, Any], dict[str, int]]:
        field, ftype, start, stop = item
        column = frame[field] if (start, stop) == (0, n) else frame[field].iloc[start:stop]
        derived: dict[str, Any] = {}
        if ftype == "numeric":
            derived[field + "__num"], missing, unparseable = _numeric(column, xdf)
        else:
            uniq = _Unique(column, xdf, dedupe=ftype not in _NEARLY_UNIQUE or _repeats(column))
            derived_u, blank_u, failed_u = _BY_TYPE[ftype](
                uniq.values, xdf, table=table, date_order=date_order
            )
            for suffix, values in zip(_SUFFIXES[ftype], derived_u):
                derived[field + suffix] = uniq.spread(values)
            missing = uniq.null_rows + uniq.count(blank_u)
            unparseable = uniq.count(failed_u)
        return derived, {"missing": int(missing), "unparseable": int(unparseable)}

    # Fields, and the rows of a field, are independent (a value's standard form depends on that value alone):
    # on the host a thread per task (Arrow's string kernels release the GIL), with the parts put back in the
    # fields' and the rows' order whatever the thread count.
    tasks = [(field, ftype, start, stop) for field, ftype in fields for start, stop in parts]
    results = iter(thread_map(one_field, tasks, threads))
    columns: dict[str, Any] = {}
    stats: dict[str, dict[str, int]] = {}
    for field, _ in fields:
        done = [next(results) for _ in parts]
        for name in done[0][0]:
            pieces = [derived[name] for derived, _ in done]
            columns[name] = pieces[0] if len(pieces) == 1 else xdf.concat(pieces, ignore_index=True)
        stats[field] = {key: sum(part_stats[key] for _, part_stats in done) for key in done[0][1]}
    out = xdf.DataFrame(columns)
    if not columns:
        out = xdf.DataFrame(index=xdf.RangeIndex(len(frame)))
    out.index = frame.index
    return out, stats


# Rows a standardisation task takes at the least when the rows of a field are cut into parts.
MIN_PART_ROWS = 250_000


def row_parts(n: int, threads: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the parts a field's ``n`` rows are standardised in: one part per thread, of at
    least :data:`MIN_PART_ROWS` rows (a single part on one thread)."""
    size = max(MIN_PART_ROWS, -(-n // max(threads, 1)))
    return [(start, min(start + size, n)) for start in range(0, n, size)] or [(0, 0)]


# Types whose values rarely repeat: factorizing them costs more than it saves, unless a sample of the column
# says otherwise (a "text" field can be a city).
_NEARLY_UNIQUE = frozenset({"email", "phone", "text"})
# Rows of the sample, and the share of its values that must be distinct for a column to count as nearly unique.
_SAMPLE_ROWS = 1 << 16
_DISTINCT_SHARE = 0.5


def _repeats(column: Any) -> bool:
    """Whether fewer than half the values of an evenly spaced sample of ``column`` are distinct.

    A sample sees few of the repeats of values that occur a handful of times each (emails across a person's
    records), which factorizing would not pay for anyway, and nearly all those of a low-cardinality column.
    """
    sample = column.iloc[:: max(1, len(column) // _SAMPLE_ROWS)]
    present = int(sample.count())
    return present > 0 and int(sample.nunique()) < _DISTINCT_SHARE * present


class _Unique:
    """One column factorized: its unique values, and the codes that spread per-unique results back to rows.

    With ``dedupe=False`` the "unique values" are the rows themselves (nulls included) and spreading is free.
    """

    def __init__(self, column: Any, xdf: Any, dedupe: bool = True) -> None:
        self.xdf = xdf
        self.datetime = pandas.api.types.is_datetime64_any_dtype(column.dtype)
        self.codes = None
        if dedupe:
            codes, uniques = xdf.factorize(column)
            values = xdf.Series(uniques).reset_index(drop=True)
        else:
            values = column.reset_index(drop=True)
        if not self.datetime:
            from_float = pandas.api.types.is_float_dtype(column.dtype)
            values = _as_str(values)
            if from_float:
                # 4155550134.0 read as a float column: its string form must not gain a digit
                values = values.str.replace(r"\.0$", "", regex=True)
        self.values = values
        self.null_rows = 0
        self._rows: np.ndarray | None = None
        self._codes_with_nulls: pyarrow.Array | None = None
        if dedupe:
            # missing rows point at an extra null appended after the unique values
            self.null_rows = int((codes < 0).sum())
            codes = codes.copy()
            codes[codes < 0] = len(values)
            self.codes = codes

    def spread(self, values: Any) -> Any:
        """Per-unique values → per-row values (RangeIndex); missing rows get null."""
        if self.codes is None:
            return values.reset_index(drop=True)
        if _arrow_backed(values):  # Arrow's take with null indices: no extended copy, ~2x faster than pandas'
            return pandas.Series(pyarrow.compute.take(_arrow_array(values), self._arrow_codes()), dtype=values.dtype)
        if _on_host(values) and values.dtype == np.float64:
            return pandas.Series(np.append(values.to_numpy(), np.nan)[self.codes])
        tail = self.xdf.Series([None], dtype=values.dtype)
        extended = self.xdf.concat([values.reset_index(drop=True), tail], ignore_index=True)
        return extended.take(self.codes).reset_index(drop=True)

    def count(self, flags: Any) -> int:
        """The number of rows whose unique value has ``flags`` true."""
        if self.codes is None:
            return int(flags.sum())
        if isinstance(self.codes, np.ndarray):  # the rows of each unique value, counted once for all flags
            if self._rows is None:
                self._rows = np.bincount(self.codes, minlength=len(self.values) + 1)[:-1]
            return int(self._rows[flags.to_numpy(dtype=bool)].sum())
        tail = self.xdf.Series([0], dtype="int64")
        extended = self.xdf.concat([flags.astype("int64").reset_index(drop=True), tail], ignore_index=True)
        return int(extended.take(self.codes).sum())

    def _arrow_codes(self) -> pyarrow.Array:
        if self._codes_with_nulls is None:
            missing = self.codes == len(self.values)
            self._codes_with_nulls = pyarrow.array(self.codes, mask=missing if missing.any() else None)
        return self._codes_with_nulls


def _as_str(values: Any) -> Any:
    if values.dtype == _str_dtype():  # pandas' own string dtype already (as read from Arrow): nothing to do
        return values
    # astype("str") keeps nulls on pandas 3 and cuDF; the where() keeps them on pandas 2 too (where it would
    # write "None").
    return values.astype("str").where(values.notna())


@functools.lru_cache(maxsize=1)
def _str_dtype() -> Any:
    """The dtype ``astype("str")`` gives pandas strings, when it is a string dtype (pandas >= 3), else None."""
    dtype = pandas.Series(["a"]).astype("str").dtype
    return dtype if isinstance(dtype, pandas.StringDtype) else None


def _to_host_list(values: Any) -> list:
    if hasattr(values, "to_pandas"):
        values = values.to_pandas()
    return values.tolist()


def _host_map(values: Any, func: Any, only: Any = None) -> Any:
    """Apply a Python function to (a subset of) unique string values on the host, and map the results back."""
    subset = values if only is None else values[only]
    mapping = {value: func(value) for value in _to_host_list(subset.dropna())}
    if not mapping:
        return values
    mapped = values.map(mapping)
    return mapped if only is None else values.where(~only, mapped)


def _fold(values: Any) -> Any:
    """fold_ascii on the values holding non-ASCII characters; ASCII values take the vectorised path only."""
    if _arrow_backed(values):  # Arrow's own test: ~6x faster than the regex
        ascii_only = pyarrow.compute.fill_null(pyarrow.compute.string_is_ascii(_arrow_array(values)), True)
        non_ascii = pandas.Series(pyarrow.compute.invert(ascii_only), dtype=bool, index=values.index)
    else:
        non_ascii = values.str.contains("[^\\x00-\x7f]", regex=True).fillna(False).astype(bool)
    if not bool(non_ascii.any()):
        return values
    return _host_map(values, fold_ascii, only=non_ascii)


# RE2 (pyarrow) and Python disagree on \s, so pandas runs any pattern with \s in Python: spell the class out.
#
# Patterns here also run on cuDF, whose regex engine reads two things differently (tests/test_cudf_regex.py):
# in a class it decodes only \n \r \t \a \b \f, octal and \x.. (so \x0b, not \v), and a range's end is taken
# as written, so a range ends in the character itself ("\\x00-\x1f" in a Python string, not r"\x00-\x1f").
_WS = "[ \\t\\n\\r\\f\\x0b]"


def _squash(values: Any) -> Any:
    # Only the runs that change: two or more whitespace characters, or one that is not a space. Replacing every
    # single space with itself took 3x as long (0.32 against 0.10 s on 700k addresses).
    return values.str.replace(_WS + "{2,}|" + _WS.replace(" ", "", 1), " ", regex=True).str.strip()


def _nonempty(values: Any) -> Any:
    return values.where(values.str.len() > 0)


def _blank(values: Any) -> Any:
    """True where the raw value is null or nothing but whitespace. (On cuDF a null's length is null, and so is
    the comparison: the fillna makes it blank there too, as pandas has it.)"""
    return ~(values.str.strip().str.len() > 0).fillna(False)


def _failed(blank: Any, result: Any) -> Any:
    return ~blank & result.isna()


def _replace_tokens(values: Any, tokens: Mapping[str, Sequence[str]]) -> Any:
    """Replace whole space-separated tokens; values must be squashed (single spaces, no ends)."""
    # Doubling the spaces gives every token its own pair of spaces, so adjacent tokens both match one
    # " (a|b) " pattern without lookarounds (which neither RE2 nor cuDF's regex engine has).
    padded = " " + values.str.replace(" ", "  ", regex=False) + " "
    for canonical, variants in tokens.items():
        padded = padded.str.replace(" (?:" + "|".join(variants) + ") ", f" {canonical} ", regex=True)
    return _squash(padded)


def _name(values: Any, xdf: Any, *, table: Mapping[str, str], **_: Any) -> tuple:
    clean = _fold(values).str.lower()
    # "o'brien" → "obrien", "smith-jones" → "smithjones": inner apostrophes and hyphens join; any other
    # non-letter (digits, punctuation, control characters, emoji) separates
    clean = clean.str.replace(r"['\-]", "", regex=True).str.replace(r"[^a-z ]+", " ", regex=True)
    clean = _squash(clean)
    clean = _nonempty(_replace_tokens(clean, {"": _NAME_AFFIXES}))
    first = _first_token(clean)
    canon = first.map(dict(table)) if table else first.where(first.isna())
    # a single initial stays the initial: "j" is no one's nickname
    canon = canon.where(canon.notna() & (first.str.len() > 1), first)
    phonetic = _phonetic(clean, xdf)
    # the first letter: "j." and "john" share it, so an initial can still agree with a full name
    initial = clean.str.slice(0, 1)
    blank = _blank(values)
    return (clean, canon, phonetic, initial), blank, _failed(blank, clean)


def _phonetic(clean: Any, xdf: Any) -> Any:
    """Double Metaphone primary codes of clean (unique) names, null where a name has none, on the host."""
    # one compiled pass over the Arrow buffer (primary_codes) rather than a Python call per name
    arrow = clean.to_arrow() if hasattr(clean, "to_arrow") else pyarrow.array(clean, from_pandas=True)
    codes = primary_codes(arrow)
    if xdf is pandas:
        return pandas.Series(codes, index=clean.index, dtype=clean.dtype)
    return xdf.Series(codes.cast(pyarrow.string()), index=clean.index)


def _email(values: Any, xdf: Any, **_: Any) -> tuple:
    blank = _blank(values)
    if not _arrow_backed(values):
        email, user, domain = _email_columns(values)
        return (email, user, domain), blank, _failed(blank, email)
    # one compiled pass over the bytes; the rare values with non-ASCII characters take the string operations
    arrays = email_parts(_arrow_array(values), _PLUS_TAG_DOMAINS)
    email, user, domain = (pandas.Series(a, dtype=values.dtype, index=values.index) for a in arrays[:3])
    non_ascii = arrays[3]
    if non_ascii.any():
        rows = values.index[non_ascii]
        for column, other in zip((email, user, domain), _email_columns(values.loc[rows])):
            column.loc[rows] = other
    return (email, user, domain), blank, _failed(blank, email)


def _email_columns(values: Any) -> tuple:
    """Email, user and domain by string operations (cuDF, and the host's non-ASCII values)."""
    clean = values.str.strip().str.lower()
    valid = (
        clean.str.contains(r"^[^@ \t\n\r\f\x0b]+@(?:[^@ \t\n\r\f\x0b.]+\.)+[^@ \t\n\r\f\x0b.]+$", regex=True)
        .fillna(False)
        .astype(bool)
    )
    if _on_host(clean):
        # a valid address has exactly one "@": Arrow splits there ~5x faster than two regex passes (the
        # invalid ones are null from here on, as they end up either way)
        user, domain = _split_once(clean.where(valid), "@")
    else:
        user = clean.str.replace(r"@.*$", "", regex=True)
        domain = clean.str.replace(r"^.*@", "", regex=True)
    domain = domain.where(domain != "googlemail.com", "gmail.com")
    # gmail ignores dots in the local part; these providers ignore a "+tag"
    user = user.where(domain != "gmail.com", user.str.replace(".", "", regex=False))
    user = user.where(~domain.isin(_PLUS_TAG_DOMAINS), user.str.replace(r"\+.*$", "", regex=True))
    valid = valid & (user.str.len() > 0)
    user = user.where(valid)
    domain = domain.where(valid)
    email = (user + "@" + domain).where(valid)
    return email, user, domain


def _phone(values: Any, xdf: Any, **_: Any) -> tuple:
    blank = _blank(values)
    if _arrow_backed(values):  # one compiled pass over the bytes
        phone = pandas.Series(phone_numbers(_arrow_array(values), _dollar_before_newline(values.dtype)),
                              dtype=values.dtype, index=values.index)
    else:
        phone = _phone_column(values)
    return (phone,), blank, _failed(blank, phone)


def _phone_column(values: Any) -> Any:
    """The national significant number by string operations (cuDF, and pandas strings not held by Arrow)."""
    # an extension ("x22", "ext. 22", "#22") at the end is not part of the number
    clean = values.str.replace(r"(?:[eE][xX][tT]|[xX]|#)[ .:]*[0-9]+ *$", "", regex=True)
    digits = clean.str.replace(r"[^0-9]", "", regex=True)
    international = digits.str.startswith("00").fillna(False).astype(bool)  # the international call prefix
    digits = digits.where(~international, digits.str.slice(2))
    too_long = digits.str.len() > 15  # E.164 numbers have at most 15 digits: this is junk or two numbers
    # The last 10 digits drop the country code of NANP (+1) and of most European numbers written with it,
    # and the trunk "0" of 11-digit national forms: +1 415 555 0134, 001-415-555-0134, (415) 555-0134 →
    # 4155550134; +44 20 7946 0958 and 020 7946 0958 → 2079460958.
    digits = digits.str.slice(-10)
    placeholder = digits.str.contains(r"^(?:0+|1+|2+|3+|4+|5+|6+|7+|8+|9+)$", regex=True).fillna(False)
    bad = too_long | (digits.str.len() < 7) | placeholder.astype(bool)
    return digits.where(~bad)


def _postcode(values: Any, xdf: Any, **_: Any) -> tuple:
    clean = _fold(values).str.upper().str.replace(r"[^A-Z0-9]", "", regex=True)
    # ZIP+4 (94105-1234) keys on the ZIP
    zip4 = clean.str.contains(r"^[0-9]{9}$", regex=True).fillna(False).astype(bool)
    clean = clean.where(~zip4, clean.str.slice(0, 5))
    length = clean.str.len()
    valid = (
        (length >= 3) & (length <= 10) & clean.str.contains(r"[0-9]", regex=True).fillna(False).astype(bool)
    )
    clean = clean.where(valid)
    uk = clean.str.contains(r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$", regex=True).fillna(False).astype(bool)
    prefix = clean.str.slice(0, -3).where(uk, clean.str.slice(0, 3))
    blank = _blank(values)
    return (clean, prefix), blank, _failed(blank, clean)


def _address(values: Any, xdf: Any, **_: Any) -> tuple:
    clean = _fold(values).str.lower().str.replace("#", " apt ", regex=False)
    clean = clean.str.replace("'", "", regex=False).str.replace(r"[^a-z0-9 ]+", " ", regex=True)
    clean = _squash(clean)
    if _on_host(clean):
        # On the CPU a token lookup in Arrow is ~20x faster than a regex pass per canonical token (25 of
        # them); on the GPU the regex passes are the fast way.
        clean = _arrow_tokens(clean, _ADDRESS_LOOKUP)
    else:
        clean = _replace_tokens(clean, _ADDRESS_TOKENS)
    clean = _nonempty(clean)
    first = _first_token(clean)
    number = first.where(first.str.contains(r"^[0-9]+[a-z]?$", regex=True).fillna(False).astype(bool))
    blank = _blank(values)
    return (clean, number), blank, _failed(blank, clean)


_ADDRESS_LOOKUP = {
    variant: canonical for canonical, variants in _ADDRESS_TOKENS.items() for variant in variants
}


def _arrow_tokens(values: Any, lookup: Mapping[str, str]) -> Any:
    """Map whole space-separated tokens through ``lookup`` with Arrow kernels (pandas only)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(values.array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = array.cast(pa.large_string())
    lists = pc.split_pattern(array, " ")
    tokens = pc.list_flatten(lists)
    keys = pa.array(list(lookup), type=tokens.type)
    canonical = pa.array(list(lookup.values()), type=tokens.type)
    tokens = pc.coalesce(pc.take(canonical, pc.index_in(tokens, value_set=keys)), tokens)
    lists = type(lists).from_arrays(lists.offsets, tokens, mask=pc.is_null(lists))
    joined = pc.binary_join(lists, pa.scalar(" ", type=tokens.type))
    return pandas.Series(joined, dtype=values.dtype, index=values.index)


def _first_token(values: Any) -> Any:
    """What comes before the first space of squashed values (single spaces, none at the ends)."""
    if _arrow_backed(values):  # Arrow's split at the first space: ~3x faster than the regex
        parts = pyarrow.compute.split_pattern(_arrow_array(values), " ", max_splits=1)
        return pandas.Series(pyarrow.compute.list_element(parts, 0), dtype=values.dtype, index=values.index)
    return values.str.replace(r" .*$", "", regex=True)


def _arrow_array(values: Any) -> pyarrow.Array:
    """The Arrow array behind Arrow-backed pandas strings, in one chunk (no copy when it is one already)."""
    array = pyarrow.array(values.array)
    return array.combine_chunks() if isinstance(array, pyarrow.ChunkedArray) else array


def _split_once(values: Any, separator: str) -> tuple[Any, Any]:
    """What comes before and after ``separator`` in each value (pandas only); every non-null value must hold
    it exactly once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = pc.split_pattern(pa.array(values.array), separator, max_splits=1)
    return tuple(pandas.Series(pc.list_element(parts, i), dtype=values.dtype, index=values.index) for i in (0, 1))


def _on_host(values: Any) -> bool:
    return type(values).__module__.startswith("pandas")


def _arrow_backed(values: Any) -> bool:
    """pandas strings held by Arrow, whose string operations the host's Arrow shortcuts and the compiled passes
    of :mod:`gpucdp.contacts` reproduce."""
    dtype = values.dtype
    return _on_host(values) and isinstance(dtype, pandas.StringDtype) and dtype.storage == "pyarrow"


@functools.cache
def _dollar_before_newline(dtype: Any) -> bool:
    """Whether a regex's ``$`` also matches before a final newline in pandas' string operations on ``dtype``, as
    in Python's ``re`` (pandas 3.1 gives its Arrow-backed strings those semantics; RE2 alone would not):
    asked of pandas itself, so that the compiled phone pass follows the string operations it replaces."""
    return bool(pandas.Series(["1\n"], dtype=dtype).str.contains("1$", regex=True).iloc[0])


def _text(values: Any, xdf: Any, **_: Any) -> tuple:
    clean = _fold(values).str.lower().str.replace("'", "", regex=False)
    # ASCII punctuation and control characters (folding already made typographic quotes and dashes ASCII)
    clean = clean.str.replace("[\\x00-\x1f\\x7f!-/:-@\\[-`{-~]+", " ", regex=True)
    clean = _nonempty(_squash(clean))
    blank = _blank(values)
    return (clean,), blank, _failed(blank, clean)


def _categorical(values: Any, xdf: Any, **_: Any) -> tuple:
    clean = _fold(values).str.lower().str.replace("[\\x00-\x1f\\x7f]+", " ", regex=True)
    clean = _nonempty(_squash(clean))
    blank = _blank(values)
    return (clean,), blank, _failed(blank, clean)


def _date(values: Any, xdf: Any, *, date_order: str, **_: Any) -> tuple:
    if pandas.api.types.is_datetime64_any_dtype(values.dtype):
        year = values.dt.year.astype("float64")
        month = values.dt.month.astype("float64")
        day = values.dt.day.astype("float64")
        blank = values.isna()
    else:
        year, month, day = _parse_date_strings(values, date_order)
        blank = _blank(values)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    # days in month m, for m in 1..12, without a lookup table: 28 + (m + m//8) % 2 + 2 % m + 2 * (1 // m)
    month_safe = month.where((month >= 1) & (month <= 12), 1.0)
    days_in_month = 28 + (month_safe + month_safe // 8) % 2 + 2 % month_safe + 2 * (1 // month_safe)
    days_in_month = days_in_month + ((month_safe == 2) & leap).astype("float64")
    ymd = year * 10000 + month * 100 + day
    today = date.today()
    valid = (
        (
            (month >= 1)
            & (month <= 12)
            & (day >= 1)
            & (day <= days_in_month)
            & (year >= 1900)
            & (ymd <= today.year * 10000 + today.month * 100 + today.day)
        )
        .fillna(False)
        .astype(bool)
    )
    ymd = ymd.where(valid)
    digits = ymd.fillna(0).astype("int64").astype("str")
    iso = (digits.str.slice(0, 4) + "-" + digits.str.slice(4, 6) + "-" + digits.str.slice(6, 8)).where(valid)
    return (iso, ymd), blank, ~blank & ~valid


def _parse_date_strings(values: Any, date_order: str) -> tuple:
    """Year, month and day (float64, NaN where no format matched) of date strings in the accepted formats."""
    clean = values.str.strip().str.lower()
    # a time of day after the date (from a timestamp's string form) does not change the date
    clean = clean.str.replace(r"[t ][0-9]{1,2}:[0-9]{2}.*$", "", regex=True).str.strip()
    # Month names are rare: parse them on the host, into the "yyyy m d" form the numeric formats become below.
    named = clean.str.contains(r"[a-z]", regex=True).fillna(False).astype(bool)
    if bool(named.any()):
        clean = _host_map(clean, _named_date, only=named)
    # an ambiguous a/b/yyyy: flagged before it is rewritten
    slashed = (
        clean.str.contains(r"^[0-9]{1,2}[/-][0-9]{1,2}[/-][0-9]{4}$", regex=True).fillna(False).astype(bool)
    )
    # Rewrite each numeric format to "yyyy m d" (no extract(): pandas runs it in Python, while a replace with
    # back-references stays in Arrow; cuDF spells it replace_with_backrefs).
    for pattern, order in (
        (r"^([0-9]{4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})$", r"\1 \2 \3"),  # YYYY-MM-DD, YYYY/MM/DD
        (r"^([0-9]{4})([0-9]{2})([0-9]{2})$", r"\1 \2 \3"),  # YYYYMMDD
        (r"^([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})$", r"\3 \2 \1"),  # DD.MM.YYYY
        (r"^([0-9]{1,2})[/-]([0-9]{1,2})[/-]([0-9]{4})$", r"\3 \1 \2"),  # a/b/YYYY, resolved below
    ):
        clean = _replace_refs(clean, pattern, order)
    clean = _replace_refs(_replace_refs(clean, r" ([0-9]) ", r" 0\1 "), r" ([0-9])$", r" 0\1")
    clean = clean.where(
        clean.str.contains(r"^[0-9]{4} [0-9]{2} [0-9]{2}$", regex=True).fillna(False).astype(bool)
    )
    year = clean.str.slice(0, 4).astype("float64")
    first = clean.str.slice(5, 7).astype("float64")
    second = clean.str.slice(8, 10).astype("float64")
    # one part over 12 settles the order of a/b/yyyy; otherwise date_order decides. Never "repaired" beyond
    # that, so a day/month swap between two sources stays visible to the comparison.
    day_first = slashed & ((first > 12) | ((second <= 12) & (date_order == "dmy")))
    month = first.where(~day_first, second)
    day = second.where(~day_first, first)
    return year, month, day


def _replace_refs(values: Any, pattern: str, replacement: str) -> Any:
    """A regex replace whose replacement uses back-references (\\1)."""
    if hasattr(values.str, "replace_with_backrefs"):  # cuDF
        return values.str.replace_with_backrefs(pattern, replacement)
    return values.str.replace(pattern, replacement, regex=True)


_NAMED_DATE = (
    # 3-apr-1985, 3 april 1985, 03.apr.1985
    (re.compile(r"^(\d{1,2})[ ./-]*([a-z]{3,9})\.?[ .,/-]*(\d{4})$"), (3, 2, 1)),
    # april 3, 1985; apr 3rd 1985
    (re.compile(r"^([a-z]{3,9})\.?[ ./-]*(\d{1,2})(?:st|nd|rd|th)?[ .,/-]*(\d{4})$"), (3, 1, 2)),
)


def _named_date(text: str) -> str:
    """ "3-apr-1985" → "1985 4 3"; other text is returned unchanged (and fails the later checks)."""
    for pattern, (y, m, d) in _NAMED_DATE:
        match = pattern.match(text)
        if match and match.group(m) in _MONTHS:
            return f"{match.group(y)} {_MONTHS[match.group(m)]} {match.group(d)}"
    return text


def _numeric(column: Any, xdf: Any) -> tuple:
    if pandas.api.types.is_bool_dtype(column.dtype) or pandas.api.types.is_numeric_dtype(column.dtype):
        number = column.astype("float64").reset_index(drop=True)
        missing = int(number.isna().sum())
        blank = number.isna()
    else:
        text = _as_str(column.reset_index(drop=True)).str.strip()
        blank = ~(text.str.len() > 0).fillna(False)
        missing = int(blank.sum())
        number = xdf.to_numeric(text.where(~blank), errors="coerce").astype("float64")
    # inf and -inf are not measurements
    number = number.where((number > -float("inf")) & (number < float("inf")))
    unparseable = int((~blank & number.isna()).sum())
    return number, missing, unparseable


_BY_TYPE = {
    "name": _name,
    "email": _email,
    "phone": _phone,
    "date": _date,
    "postcode": _postcode,
    "address": _address,
    "text": _text,
    "categorical": _categorical,
}


def _nickname_table(nicknames: Mapping[str, str] | None) -> dict[str, str]:
    if nicknames is None:
        return _packaged_nicknames()
    return {str(k).strip().lower(): str(v).strip().lower() for k, v in nicknames.items()}


@functools.lru_cache(maxsize=1)
def _packaged_nicknames() -> dict[str, str]:
    """The packaged nickname → canonical table; a nickname with several canonical names keeps the first."""
    try:
        text = importlib.resources.files("gpucdp.data").joinpath("nicknames.csv").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        warnings.warn(
            "gpucdp/data/nicknames.csv is missing from the installed package: first names are not mapped to "
            "canonical names (reinstall gpucdp, or pass nicknames=)",
            RuntimeWarning,
            stacklevel=3,
        )
        return {}
    table: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(text)):
        nickname = (row.get("nickname") or "").strip().lower()
        canonical = (row.get("canonical") or "").strip().lower()
        if nickname and canonical:
            table.setdefault(nickname, canonical)
    return table
