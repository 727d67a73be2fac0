"""Synthetic customer records with ground truth, at any scale.

Identity-resolution engines are judged on data that looks like the user's. This module makes such data:
people, each with one or more records in several source systems (``crm``, ``web``, ``pos``, ``loyalty``,
``support``), each system with its own habits, damaged by the errors real records carry, and mixed with the
look-alikes that make linkage hard (relatives, twins, Jr/Sr, common names in big cities). The truth (which
records belong to one person) is a separate table, so the records themselves look like ordinary input.

The generative story, per chunk of records
------------------------------------------
1. **People.** Each person gets a number of records ``k`` from a truncated Zipf law, ``P(k) ∝ k**-2.2`` for
   ``1 <= k <= 64`` (:data:`RECORDS_PER_PERSON`): about 67% of people have one record, about 9% have five or
   more, the mean is about 2.3 records per person. People are drawn until the chunk holds exactly its share
   of records (the last person of a chunk may lose records to the cut); a person's records share one chunk.
2. **Attributes.** Sex, first name (Zipf within sex, exponent 0.6), surname (Zipf over 1,000 common US
   surnames, exponent 0.6, carrying 65% of the mass; the rest spread evenly over ~25,000 rarer generated
   surnames), birth date (uniform 1935..2006), city (Zipf over 120 US cities, exponent 1.0, so common names
   pile up in big cities), postcode (the city's 3-digit prefix + 2 digits), street address, a phone number
   (the city's area code, 20% another one), an email made of the name, sometimes a second one.
3. **Households (hard negatives).** A share of people (:data:`HOUSEHOLD_RATES`, not scaled by
   ``difficulty``: they are facts about the population, not data-entry errors) join the household of the
   previous independent person: *relatives* share surname, address and home phone (different first name and
   birth date, sometimes the email), *twins* also share the birth date, *juniors* share first name, surname,
   address and phone with a birth date 25..35 years apart (some of their records carry a "Jr" suffix).
4. **Records.** Each record picks a source by :data:`SOURCE_HABITS` weights; the source decides which fields
   it fills, its date format, phone format and letter casing. Records are shuffled within the chunk and
   numbered ``"<source>-<global index>"`` (zero-padded to 9 digits or more).
5. **Corruption.** Each entry of :data:`CORRUPTION_RATES` is its probability at ``difficulty=0.5``; at
   difficulty ``d`` it is ``min(1, rate * d / 0.5)``, so ``d=0`` is clean (every field filled, each source
   writes only its own formats and casing) and ``d=1`` doubles every rate. A source's own gaps follow its
   fill rates at ``d >= 0.5`` and shrink linearly to none at ``d=0``.

6. **Semantic variation** (``variation="semantic"``, off by default): on top of the above, changes that
   typos don't explain and a character n-gram embedding misses (:data:`SEMANTIC_RATES`): more nicknames,
   apartment units spelled out ("Apartment 4", "Unit 4", "Suite 4"), address parts reordered ("Apt 4 12
   Main St", "Main St 12"), city aliases ("NYC", "Philly", "Saint Louis"). It draws from a generator of its
   own, so the default output does not change.

Determinism: the same arguments (``chunk_size`` included) give identical output; each chunk draws from its
own numpy generator seeded by ``(seed, chunk index)``. Everything is vectorised: sampling in numpy, strings
with pyarrow compute, fixed-width fields (dates, phones, postcodes, ids) and typos straight on Arrow buffers.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gpucdp.errors import OutputError, SettingsError

__all__ = [
    "SOURCES",
    "COLUMNS",
    "TRUTH_COLUMNS",
    "CORRUPTION_RATES",
    "HOUSEHOLD_RATES",
    "RECORDS_PER_PERSON",
    "SOURCE_HABITS",
    "DATE_FORMATS",
    "PHONE_FORMATS",
    "generate",
    "generate_frame",
    "write_dataset",
    "VARIATIONS",
    "SEMANTIC_RATES",
]

SOURCES: tuple[str, ...] = ("crm", "web", "pos", "loyalty", "support")
COLUMNS: tuple[str, ...] = (
    "record_id", "source", "first_name", "last_name", "dob", "email", "phone", "address_line", "city",
    "postcode",
)
TRUTH_COLUMNS: tuple[str, ...] = ("record_id", "source", "true_id")

#: Records per person: truncated Zipf, ``P(k) ∝ k**-exponent`` for ``1 <= k <= max``.
RECORDS_PER_PERSON: dict[str, float] = {"exponent": 2.2, "max": 64}

#: Probability of each corruption at ``difficulty=0.5`` (scaled linearly: 0 at 0, twice these at 1).
CORRUPTION_RATES: dict[str, float] = {
    "missing": 0.04,  # per record and field, on top of the source's own gaps
    "typo_first_name": 0.04,  # insert / delete / QWERTY-neighbour substitute / transpose, one edit
    "typo_last_name": 0.04,
    "typo_address": 0.03,
    "typo_city": 0.02,
    "nickname": 0.15,  # per record whose person's given name has nicknames (robert -> bob)
    "initial": 0.03,  # given name reduced to "J." or "J"
    "name_swap": 0.01,  # first and last name exchanged
    "surname_change": 0.12,  # per woman with 2+ records: her later records carry a new surname (marriage)
    "alt_email": 0.2,  # per person: owns a second email, used by about half of their records
    "email_typo": 0.02,
    "moved": 0.15,  # per person with 2+ records: later records have another street, city and postcode
    "street_abbrev": 0.4,  # Street -> St, Avenue -> Ave, "Apt 4" -> "#4"
    "phone_format": 0.15,  # the record uses another phone format than its source's own
    "phone_typo": 0.02,  # one digit replaced
    "date_format": 0.08,  # the record uses another date format than its source's own
    "day_month_swap": 0.03,  # when the day is 12 or less
    "dob_typo": 0.02,  # year or day off by one
    "postcode_typo": 0.02,  # one digit replaced
    "postcode_zero_lost": 0.3,  # of postcodes starting with 0: the zero is dropped (spreadsheet damage)
}

#: Share of people created inside the previous independent person's household (not scaled by difficulty).
HOUSEHOLD_RATES: dict[str, float] = {
    "relative": 0.08,  # same surname, address, home phone; other first name and birth date
    "twin": 0.006,  # same surname, address, phone and birth date; other first name
    "junior": 0.012,  # same first name, surname, address, phone; birth date 25..35 years apart (men only:
    #                   drawn for a woman, it becomes a relative, so the effective share is about half)
    "shared_email": 0.25,  # of relatives and twins: also share the household's email
    "junior_suffix": 0.3,  # of a junior's records: surname written with " jr"
}

#: ``variation`` values: ``typos`` (the default data) or ``semantic`` (also :data:`SEMANTIC_RATES`).
VARIATIONS: tuple[str, ...] = ("typos", "semantic")
#: Probability of each semantic change (``variation="semantic"``), not scaled by difficulty.
SEMANTIC_RATES: dict[str, float] = {
    "nickname": 0.35,  # per record whose person's given name has nicknames, on top of the typo-level rate
    "unit_word": 0.5,  # of records with an apartment unit: "Apartment 4" / "Unit 4" / "Suite 4"
    "address_reorder": 0.25,  # unit first ("Apt 4 12 Main St"), or without a unit the number last
    "city_alias": 0.4,  # of records in a city with a common alias (_CITY_ALIASES)
}
_UNIT_WORDS: tuple[str, ...] = ("Apartment ", "Unit ", "Suite ")
_CITY_ALIASES: dict[str, str] = {
    "New York": "NYC", "Los Angeles": "LA", "San Francisco": "SF", "Philadelphia": "Philly",
    "Las Vegas": "Vegas", "Washington": "Washington DC", "Fort Worth": "Ft Worth", "Fort Wayne": "Ft Wayne",
    "Saint Paul": "St Paul", "St. Louis": "Saint Louis", "St. Petersburg": "Saint Petersburg",
    "Salt Lake City": "SLC", "Oklahoma City": "OKC", "New Orleans": "NOLA",
}

DATE_FORMATS: tuple[str, ...] = ("iso", "us", "eu", "compact")  # 1985-04-03, 04/03/1985, 03.04.1985, 19850403
PHONE_FORMATS: tuple[str, ...] = ("paren", "dash", "plus1", "digits")  # (415) 555-0134, 415-555-0134, ...
_CASINGS: tuple[str, ...] = ("title", "upper", "lower")


@dataclass(frozen=True)
class _SourceHabits:
    """How one source system writes records (fill: probability a field is present, at difficulty >= 0.5)."""

    weight: float
    fill: dict[str, float]
    date_format: str
    phone_format: str
    casing: dict[str, float]


def _fill(first=1.0, last=1.0, dob=1.0, email=1.0, phone=1.0, address=1.0, city=1.0, postcode=1.0):
    return {"first_name": first, "last_name": last, "dob": dob, "email": email, "phone": phone,
            "address_line": address, "city": city, "postcode": postcode}


#: Each default source's share of records, fill rates, date and phone formats and casing mix.
SOURCE_HABITS: dict[str, _SourceHabits] = {
    "crm": _SourceHabits(0.30, _fill(dob=0.85, email=0.85, phone=0.9, address=0.95, city=0.95, postcode=0.95),
                         "iso", "paren", {"title": 0.85, "upper": 0.1, "lower": 0.05}),
    "web": _SourceHabits(0.25, _fill(dob=0.4, phone=0.5, address=0.15, city=0.3, postcode=0.5),
                         "us", "dash", {"title": 0.4, "upper": 0.05, "lower": 0.55}),
    "pos": _SourceHabits(0.20, _fill(first=0.9, last=0.95, dob=0.05, email=0.35, phone=0.85, address=0.1,
                                     city=0.2, postcode=0.7),
                         "compact", "digits", {"title": 0.05, "upper": 0.9, "lower": 0.05}),
    "loyalty": _SourceHabits(0.15, _fill(dob=0.8, email=0.75, phone=0.95, address=0.7, city=0.75,
                                         postcode=0.9),
                             "us", "plus1", {"title": 0.9, "upper": 0.05, "lower": 0.05}),
    "support": _SourceHabits(0.10, _fill(dob=0.25, email=0.95, phone=0.75, address=0.35, city=0.4,
                                         postcode=0.4),
                             "eu", "dash", {"title": 0.6, "upper": 0.0, "lower": 0.4}),
}

_FIRST_DAY = int(np.datetime64("1935-01-01", "D").astype(np.int64))
_LAST_DAY = int(np.datetime64("2006-12-31", "D").astype(np.int64))

_STREET_SUFFIXES: tuple[tuple[str, str, float], ...] = (  # full, abbreviation, weight
    ("Street", "St", 0.30), ("Avenue", "Ave", 0.18), ("Road", "Rd", 0.12), ("Drive", "Dr", 0.12),
    ("Lane", "Ln", 0.07), ("Boulevard", "Blvd", 0.04), ("Court", "Ct", 0.05), ("Place", "Pl", 0.03),
    ("Circle", "Cir", 0.03), ("Parkway", "Pkwy", 0.02), ("Terrace", "Ter", 0.02), ("Trail", "Trl", 0.01),
    ("Highway", "Hwy", 0.01),
)
_EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("gmail.com", 0.36), ("yahoo.com", 0.14), ("hotmail.com", 0.09), ("outlook.com", 0.08),
    ("icloud.com", 0.07),
    ("aol.com", 0.05), ("comcast.net", 0.04), ("msn.com", 0.03), ("live.com", 0.03), ("att.net", 0.03),
    ("verizon.net", 0.02), ("protonmail.com", 0.02), ("mail.com", 0.02), ("sbcglobal.net", 0.02),
)
# Rarer surnames: onset + link + ending gives ~25k plausible names for the long tail of the surname law.
_SURNAME_ONSETS = (
    "ash black brad bran brook cald cart chad clay cor dal dun els fair fen gal gold grim hal hart hol kel "
    "kings lang lock mal mar mer mor nor ol pem pres rad rav red ros sal shel stan stock strat thorn tal van "
    "wal wes "
    "whit win wood yar zell brum crom dra fal gar har jan kov"
).split()
_SURNAME_LINKS = ("", "a", "e", "i", "o", "en", "er", "in", "an", "ing", "el", "ow")
_SURNAME_ENDINGS = (
    "ford ley ton well wood by field more worth ham stead wick bury combe dale son sen berg stein ski ovich "
    "ini "
    "etti ez ova man mann ner baum hurst land ridge brook croft thwaite ly ard er ing ot"
).split()

_QWERTY_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _qwerty_table() -> tuple[np.ndarray, np.ndarray]:
    """uint8[256, 8] neighbour bytes and int64[256] counts: the keys around each key, as typists miss them.

    Upper-case letters get upper-case neighbours; bytes without a key (space, punctuation) have none.
    """
    where = {ch: (r, c) for r, row in enumerate(_QWERTY_ROWS) for c, ch in enumerate(row)}
    table = np.zeros((256, 8), np.uint8)
    count = np.zeros(256, np.int64)
    for ch, (r, c) in where.items():
        near = [
            _QWERTY_ROWS[rr][cc]
            for rr in (r - 1, r, r + 1)
            for cc in (c - 1, c, c + 1)
            if 0 <= rr < len(_QWERTY_ROWS) and 0 <= cc < len(_QWERTY_ROWS[rr]) and (rr, cc) != (r, c)
        ]
        for key, keys in ((ch, near), (ch.upper(), [k.upper() for k in near])):
            table[ord(key), : len(keys)] = [ord(k) for k in keys]
            count[ord(key)] = len(keys)
    return table, count


_NEIGHBOUR_BYTES, _NEIGHBOUR_COUNT = _qwerty_table()


# --------------------------------------------------------------------------------------------------- pools


def _data_lines(name: str) -> list[str]:
    text = resources.files("gpucdp.data").joinpath(name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    w = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return np.cumsum(w / w.sum())


@dataclass(frozen=True)
class _Pools:
    """Name and place pools as Arrow arrays, with the cumulative weights used to sample them."""

    first: pa.Array  # male names then female names, Title case (every pool is Title case: see _recase)
    first_email: pa.Array  # the same, lower case letters only, for email addresses
    n_male: int
    male_cdf: np.ndarray
    female_cdf: np.ndarray
    nick_start: np.ndarray  # int64[n_first]: where a first name's nicknames start in `nicknames`
    nick_count: np.ndarray  # int64[n_first]
    nicknames: pa.Array
    last: pa.Array
    last_email: pa.Array
    last_cdf: np.ndarray
    city: pa.Array
    zip3: np.ndarray
    area_code: np.ndarray
    city_cdf: np.ndarray
    street: pa.Array
    street_cdf: np.ndarray
    suffix: pa.Array  # full names then abbreviations
    suffix_cdf: np.ndarray
    domain: pa.Array
    domain_cdf: np.ndarray


@lru_cache(maxsize=1)
def _pools() -> _Pools:
    rows = list(csv.DictReader(_data_lines("synth_first_names.csv")))
    male = [r["name"] for r in rows if r["sex"] == "M"]
    female = [r["name"] for r in rows if r["sex"] == "F"]
    first = male + female

    by_canonical: dict[str, list[str]] = {}
    for r in csv.DictReader(_data_lines("nicknames.csv")):
        by_canonical.setdefault(r["canonical"], []).append(r["nickname"])
    nick_list: list[str] = []
    nick_start = np.zeros(len(first), np.int64)
    nick_count = np.zeros(len(first), np.int64)
    for i, name in enumerate(first):
        nicks = by_canonical.get(name, [])
        nick_start[i], nick_count[i] = len(nick_list), len(nicks)
        nick_list.extend(nicks)

    head = _data_lines("synth_last_names.txt")
    seen = set(head)
    tail = []
    for onset in _SURNAME_ONSETS:
        for link in _SURNAME_LINKS:
            for ending in _SURNAME_ENDINGS:
                name = onset + link + ending
                if name not in seen:
                    seen.add(name)
                    tail.append(name)
    head_w = np.arange(1, len(head) + 1, dtype=np.float64) ** -0.6
    weights = np.concatenate([0.65 * head_w / head_w.sum(), np.full(len(tail), 0.35 / len(tail))])

    cities = list(csv.DictReader(_data_lines("synth_cities.csv")))
    streets = _data_lines("synth_streets.txt")
    suffix_w = np.array([w for _, _, w in _STREET_SUFFIXES])
    domain_w = np.array([w for _, w in _EMAIL_DOMAINS])
    def title(names: list[str]) -> pa.Array:
        return pc.utf8_title(pa.array(names, pa.string()))

    def letters(names: list[str]) -> pa.Array:
        return pc.replace_substring_regex(pc.utf8_lower(pa.array(names, pa.string())), "[^a-z]", "")

    return _Pools(
        first=title(first),
        first_email=letters(first),
        n_male=len(male),
        male_cdf=_zipf_cdf(len(male), 0.6),
        female_cdf=_zipf_cdf(len(female), 0.6),
        nick_start=nick_start,
        nick_count=nick_count,
        nicknames=title(nick_list),
        last=title(head + tail),
        last_email=letters(head + tail),
        last_cdf=np.cumsum(weights / weights.sum()),
        city=pa.array([c["city"] for c in cities], pa.string()),
        zip3=np.array([int(c["zip3"]) for c in cities], np.int64),
        area_code=np.array([int(c["area_code"]) for c in cities], np.int64),
        city_cdf=_zipf_cdf(len(cities), 1.0),
        street=pa.array(streets, pa.string()),
        street_cdf=_zipf_cdf(len(streets), 0.8),
        suffix=pa.array([f for f, _, _ in _STREET_SUFFIXES] + [a for _, a, _ in _STREET_SUFFIXES],
                        pa.string()),
        suffix_cdf=np.cumsum(suffix_w / suffix_w.sum()),
        domain=pa.array([d for d, _ in _EMAIL_DOMAINS], pa.string()),
        domain_cdf=np.cumsum(domain_w / domain_w.sum()),
    )


def _draw(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    # searchsorted on the cumulative weights; the clip guards the last bin against float round-off.
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1)


# ------------------------------------------------------------------------------------- byte templates


@dataclass(frozen=True)
class _Template:
    """A fixed-width string with digit slots: literals at ``lit_pos``, digit ``dig_idx`` at ``dig_pos``."""

    length: int
    lit_pos: np.ndarray
    lit_bytes: np.ndarray
    dig_pos: np.ndarray
    dig_idx: np.ndarray


def _template(*parts: str | int) -> _Template:
    lit_pos, lit_bytes, dig_pos, dig_idx = [], [], [], []
    pos = 0
    for part in parts:
        if isinstance(part, int):
            dig_pos.append(pos)
            dig_idx.append(part)
            pos += 1
        else:
            for b in part.encode("ascii"):
                lit_pos.append(pos)
                lit_bytes.append(b)
                pos += 1
    return _Template(pos, np.array(lit_pos, np.int64), np.array(lit_bytes, np.uint8),
                     np.array(dig_pos, np.int64), np.array(dig_idx, np.int64))


# Date digits are YYYYMMDD (indices 0..7); phone digits are AAAEEELLLL (0..9).
_DATE_TEMPLATES = (
    _template(0, 1, 2, 3, "-", 4, 5, "-", 6, 7),
    _template(4, 5, "/", 6, 7, "/", 0, 1, 2, 3),
    _template(6, 7, ".", 4, 5, ".", 0, 1, 2, 3),
    _template(0, 1, 2, 3, 4, 5, 6, 7),
)
_PHONE_TEMPLATES = (
    _template("(", 0, 1, 2, ") ", 3, 4, 5, "-", 6, 7, 8, 9),
    _template(0, 1, 2, "-", 3, 4, 5, "-", 6, 7, 8, 9),
    _template("+1 ", 0, 1, 2, " ", 3, 4, 5, " ", 6, 7, 8, 9),
    _template(*range(10)),
)
_POSTCODE_TEMPLATES = (_template(*range(5)),)


_DIGITS4 = ((np.arange(10_000)[:, None] // np.array([1000, 100, 10, 1])) % 10).astype(np.uint8)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """uint8[n, width]: the decimal digits of non-negative int64 ``values``, most significant first."""
    groups = -(-width // 4)
    out = np.empty((len(values), 4 * groups), np.uint8)
    rest = values.astype(np.int64, copy=True)
    for g in range(groups - 1, -1, -1):  # four digits per table lookup instead of one division per digit
        out[:, 4 * g: 4 * g + 4] = _DIGITS4[rest % 10_000]
        rest //= 10_000
    return out[:, 4 * groups - width:]


def _render(digits: np.ndarray, fmt: np.ndarray, templates: Sequence[_Template],
            valid: np.ndarray | None = None) -> pa.Array:
    """Fill byte templates with digits, straight into an Arrow string array's buffers.

    Parameters
    ----------
    digits : uint8[n, k]
        Digit values (0..9) that the templates' slots index.
    fmt : int[n]
        Template of each row.
    templates : sequence of _Template
    valid : bool[n], optional
        False makes the row null.

    Returns
    -------
    pyarrow.StringArray[n]
    """
    n = len(fmt)
    valid = np.ones(n, bool) if valid is None else valid
    lengths = np.where(valid, np.array([t.length for t in templates], np.int64)[fmt], 0)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Rows are laid out in an [n, widest] byte matrix, then the unused tail of each row is masked away.
    width = max(t.length for t in templates)
    matrix = np.zeros((n, width), np.uint8)
    for f, t in enumerate(templates):
        rows = np.flatnonzero((fmt == f) & valid)
        if rows.size == 0:
            continue
        block = np.empty((rows.size, t.length), np.uint8)
        block[:, t.lit_pos] = t.lit_bytes
        block[:, t.dig_pos] = digits[rows][:, t.dig_idx] + ord("0")
        matrix[rows, : t.length] = block
    data = matrix[np.arange(width) < lengths[:, None]]
    bitmap = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    if offsets[-1] < 2**31:
        return pa.Array.from_buffers(pa.string(), n, [bitmap, pa.py_buffer(offsets.astype(np.int32)),
                                                      pa.py_buffer(data)])
    return pa.Array.from_buffers(pa.large_string(), n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)])


# ------------------------------------------------------------------------------------------ corruption


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """int64[n + 1] offsets from 0 and a writable copy of the uint8 character data of a string array."""
    bufs = arr.buffers()
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(bufs[1], width, count=len(arr) + 1, offset=arr.offset * width().itemsize)
    offsets = offsets.astype(np.int64)
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return offsets - offsets[0], data[offsets[0]: offsets[-1]].copy()


def _neighbour(byte: np.ndarray, v: np.ndarray) -> np.ndarray:
    count = _NEIGHBOUR_COUNT[byte]
    pick = _NEIGHBOUR_BYTES[byte, np.minimum((v * count).astype(np.int64), np.maximum(count - 1, 0))]
    return np.where(count > 0, pick, byte)


def _typos(rng: np.random.Generator, arr: pa.Array, rate: float, at: np.ndarray | None = None) -> pa.Array:
    """One keyboard error in a share ``rate`` of the strings, on the Arrow buffers (no Python per row).

    Each chosen string gets one edit at a uniform position: insert a QWERTY neighbour of the key there, delete
    it, replace it by a neighbour, or swap it with the next one (a quarter each). Strings must be ASCII (our
    pools are), so a byte is a character.

    Parameters
    ----------
    arr : pyarrow.StringArray[n]
    rate : float
        Probability that a string gets an edit.
    at : int64[n], optional
        Position of an ``@`` in each string (emails): the edit stays on one side of it, the domain 30% of the
        time, so the address keeps its shape.
    """
    n = len(arr)
    chosen = rng.random(n) < rate
    kind = rng.integers(0, 4, n)
    u = rng.random(n)
    v = rng.random(n)
    w = rng.random(n)
    offsets, data = _buffers(arr)
    lengths = np.diff(offsets)
    start = np.zeros(n, np.int64)
    span = lengths.copy()
    if at is not None:
        domain = (w < 0.3) & (at >= 0)
        start = np.where(domain, at + 1, 0)
        span = np.where(domain, lengths - at - 1, np.where(at >= 0, at, lengths))
    rows = np.flatnonzero(chosen & (span >= 2) & np.asarray(arr.is_valid()))
    if rows.size == 0:
        return arr
    kind, u, v = kind[rows], u[rows], v[rows]
    inside = np.minimum((u * span[rows]).astype(np.int64), span[rows] - 1)
    pos = offsets[rows] + start[rows] + inside

    sub = kind == 2
    data[pos[sub]] = _neighbour(data[pos[sub]], v[sub])
    swap = kind == 3
    p = offsets[rows][swap] + start[rows][swap] + np.minimum(inside[swap], span[rows][swap] - 2)
    data[p], data[p + 1] = data[p + 1], data[p].copy()

    ins, dele = kind == 0, kind == 1
    grown = np.insert(data, pos[ins], _neighbour(data[pos[ins]], v[ins]))
    # np.insert puts each new byte before `pos`, shifting every later byte; deletions must follow that shift.
    shifted = pos[dele] + np.searchsorted(pos[ins], pos[dele], side="right")
    data = np.delete(grown, shifted)
    lengths[rows[ins]] += 1
    lengths[rows[dele]] -= 1
    new_offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    validity = arr.buffers()[0] if arr.offset == 0 else None
    if validity is None and arr.null_count:
        validity = pa.py_buffer(np.packbits(np.asarray(arr.is_valid()), bitorder="little"))
    buffers = [validity, pa.py_buffer(new_offsets), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.large_string(), n, buffers).cast(pa.string())


def _patch(arr: pa.Array, rows: np.ndarray, values: pa.Array) -> pa.Array:
    """Replace ``arr[rows]`` by ``values`` without leaving Arrow (concatenate, then one take)."""
    if rows.size == 0:
        return arr
    index = np.arange(len(arr), dtype=np.int64)
    index[rows] = len(arr) + np.arange(rows.size)
    return pa.concat_arrays([arr, values.cast(arr.type)]).take(pa.array(index))


def _recase(arr: pa.Array, casing: np.ndarray) -> pa.Array:
    """Apply casing 0 Title (a no-op: pools are Title case), 1 UPPER, 2 lower, touching only those rows."""
    up, low = np.flatnonzero(casing == 1), np.flatnonzero(casing == 2)
    rows = np.concatenate([up, low])
    values = pa.concat_arrays([pc.utf8_upper(arr.take(pa.array(up))), pc.utf8_lower(arr.take(pa.array(low)))])
    return _patch(arr, rows, values)


def _where(mask: np.ndarray, a: pa.Array, b: pa.Array) -> pa.Array:
    return pc.if_else(pa.array(mask, pa.bool_()), a, b)


def _join(*parts: pa.Array | str, sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep, null_handling="skip")


def _effective(difficulty: float) -> dict[str, float]:
    return {k: min(1.0, v * difficulty / 0.5) for k, v in CORRUPTION_RATES.items()}


# ------------------------------------------------------------------------------------------- one chunk


def _records_per_person(rng: np.random.Generator, target: int) -> np.ndarray:
    """int64[n_people]: records per person, summing exactly to ``target``."""
    k_max = int(RECORDS_PER_PERSON["max"])
    cdf = _zipf_cdf(k_max, RECORDS_PER_PERSON["exponent"])
    mean = float(np.sum(np.diff(np.concatenate([[0.0], cdf])) * np.arange(1, k_max + 1)))
    parts, total = [], 0
    while total < target:
        draw = _draw(rng, cdf, int((target - total) / mean * 1.05) + 16) + 1
        parts.append(draw)
        total += int(draw.sum())
    counts = np.concatenate(parts)
    cum = np.cumsum(counts)
    last = int(np.searchsorted(cum, target))  # first person reaching the target
    counts = counts[: last + 1].copy()
    counts[-1] -= int(cum[last]) - target
    return counts


_EMAIL_PATTERN_WEIGHTS = (0.12, 0.08, 0.08, 0.05, 0.25, 0.17, 0.15, 0.10)


def _emails(rng: np.random.Generator, pools: _Pools, first: np.ndarray, last: np.ndarray,
            birth_year: np.ndarray) -> pa.Array:
    """One email per person from their name: first.last@, flast@, first_last@, first.last42@, first1985@ ...

    Parameters
    ----------
    first, last : int64[p]
        Indices into the first-name and surname pools.
    birth_year : int64[p]

    Returns
    -------
    pyarrow.StringArray[p], lower case.
    """
    p = len(first)
    pattern = rng.choice(len(_EMAIL_PATTERN_WEIGHTS), p, p=_EMAIL_PATTERN_WEIGHTS)
    number = rng.integers(1, 1000, p)
    domain = _draw(rng, pools.domain_cdf, p)
    pieces, order = [], []
    for g in range(len(_EMAIL_PATTERN_WEIGHTS)):  # build each pattern on its own rows only
        rows = np.flatnonzero(pattern == g)
        f = pools.first_email.take(pa.array(first[rows]))
        la = pools.last_email.take(pa.array(last[rows]))
        i = pc.utf8_slice_codeunits(f, 0, 1) if g in (2, 7) else None
        num = pc.cast(pa.array(number[rows]), pa.string()) if g in (4, 5) else None
        yr = pc.cast(pa.array(birth_year[rows]), pa.string()) if g in (6, 7) else None
        parts = ((f, ".", la), (f, la), (i, la), (f, "_", la), (f, ".", la, num), (f, la, num), (f, yr),
                 (i, la, yr))[g]
        local = _join(*parts)
        pieces.append(_join(local, "@", pools.domain.take(pa.array(domain[rows]))))
        order.append(rows)
    inverse = np.empty(p, np.int64)
    inverse[np.concatenate(order)] = np.arange(p)
    return pa.concat_arrays(pieces).take(pa.array(inverse))


def _semantic_address(srng: np.random.Generator, unit_number: np.ndarray, unit_no: pa.Array, unit: pa.Array,
                      number: pa.Array, street: pa.Array, suffix: pa.Array, city: pa.Array
                      ) -> tuple[pa.Array, pa.Array]:
    """Address line and city with the semantic variation: unit words, reordered parts, city aliases."""
    n = len(number)
    has_unit = unit_number > 0
    words = pa.array(_UNIT_WORDS, pa.string()).take(pa.array(srng.integers(0, len(_UNIT_WORDS), n)))
    spelled = has_unit & (srng.random(n) < SEMANTIC_RATES["unit_word"])
    unit = _where(spelled, _join(words, unit_no), unit)
    reorder = srng.random(n) < SEMANTIC_RATES["address_reorder"]
    line = _where(reorder & has_unit, _join(unit, number, street, suffix, sep=" "),
                  _where(reorder, _join(street, suffix, number, sep=" "), _join(number, street, suffix, unit, sep=" ")))
    names = pa.array(list(_CITY_ALIASES), pa.string())
    index = pc.fill_null(pc.index_in(city, value_set=names), -1).to_numpy().astype(np.int64)
    aliased = (index >= 0) & (srng.random(n) < SEMANTIC_RATES["city_alias"])
    aliases = pa.array(list(_CITY_ALIASES.values()), pa.string()).take(pa.array(np.maximum(index, 0)))
    return line, _where(aliased, aliases, city)


def _chunk(seed: int, index: int, n: int, record_offset: int, id_width: int, people_offset: int,
           difficulty: float, sources: tuple[str, ...], variation: str = "typos"
           ) -> tuple[pa.Table, pa.Table, int]:
    """Generate chunk ``index``: (records table, truth table, number of people)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    # The semantic variation draws from its own stream: the default stream, and so the default data, stay put.
    srng = np.random.default_rng(np.random.SeedSequence([seed, index, 1])) if variation == "semantic" else None
    pools = _pools()
    rate = _effective(difficulty)
    gap_scale = min(1.0, 2.0 * difficulty)

    # ---- people -------------------------------------------------------------------------------------
    counts = _records_per_person(rng, n)
    p = len(counts)
    female = rng.random(p) < 0.5
    first = np.where(female, pools.n_male + _draw(rng, pools.female_cdf, p), _draw(rng, pools.male_cdf, p))
    last = _draw(rng, pools.last_cdf, p)
    dob = rng.integers(_FIRST_DAY, _LAST_DAY + 1, p)

    def address(size):
        city = _draw(rng, pools.city_cdf, size)
        return {
            "city": city,
            "zip": pools.zip3[city] * 100 + rng.integers(0, 100, size),
            "street": _draw(rng, pools.street_cdf, size),
            "suffix": _draw(rng, pools.suffix_cdf, size),
            # House numbers are log-uniform: many small numbers, a few five-digit ones.
            "number": np.exp(rng.uniform(0, math.log(20000), size)).astype(np.int64),
            "unit": np.where(rng.random(size) < 0.15, rng.integers(1, 400, size), 0),
        }

    home = address(p)
    moved_to = address(p)
    area = np.where(rng.random(p) < 0.8, pools.area_code[home["city"]],
                    pools.area_code[_draw(rng, pools.city_cdf, p)])
    phone = area * 10_000_000 + rng.integers(200, 1000, p) * 10_000 + rng.integers(0, 10_000, p)

    # Households: kind 0 independent, 1 relative, 2 twin, 3 junior; members copy the last independent one.
    h = HOUSEHOLD_RATES
    members = [h["relative"], h["twin"], h["junior"]]
    kind = rng.choice(4, p, p=[1.0 - sum(members), *members])
    kind[0] = 0
    anchor = np.maximum.accumulate(np.where(kind == 0, np.arange(p), 0))
    kind[(kind == 3) & female[anchor]] = 1  # Jr/Sr is a father-son custom: a woman's "junior" is a relative
    member = kind > 0
    last[member] = last[anchor[member]]
    for key in home:
        home[key][member] = home[key][anchor[member]]
    phone[member] = phone[anchor[member]]
    twin, junior = kind == 2, kind == 3
    dob[twin] = dob[anchor[twin]]
    first[junior] = first[anchor[junior]]
    female[junior] = female[anchor[junior]]
    gap = rng.integers(25 * 365, 35 * 365 + 1, p)
    later = dob[anchor] + gap
    dob[junior] = np.where(later[junior] <= _LAST_DAY, later[junior], dob[anchor[junior]] - gap[junior])
    same_first = (kind == 1) | twin
    clash = same_first & (first == first[anchor])
    first[clash] = (first[clash] + 1) % len(pools.first)  # relatives and twins never share a given name

    # Later life: marriage (new surname) and moving, from a random record on.
    multi = counts >= 2
    change_at = np.where(multi, rng.integers(1, np.maximum(counts, 2)), counts)
    married = multi & female & (rng.random(p) < rate["surname_change"])
    new_last = _draw(rng, pools.last_cdf, p)
    move_at = np.where(multi, rng.integers(1, np.maximum(counts, 2)), counts)
    moved = multi & (rng.random(p) < rate["moved"])

    year = dob.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    shares = member & ~junior & (rng.random(p) < h["shared_email"])
    email = _emails(rng, pools, first, last, year)
    email = email.take(pa.array(np.where(shares, anchor, np.arange(p))))  # the household's address
    has_alt = rng.random(p) < rate["alt_email"]
    alt_rows = np.flatnonzero(has_alt)
    alt_slot = np.full(p, -1, np.int64)
    alt_slot[alt_rows] = p + np.arange(alt_rows.size)
    email = pa.concat_arrays([email, _emails(rng, pools, first[alt_rows], last[alt_rows], year[alt_rows])])

    # ---- records --------------------------------------------------------------------------------------
    starts = np.cumsum(counts) - counts
    person = np.repeat(np.arange(p), counts)
    rank = np.arange(n) - np.repeat(starts, counts)
    order = rng.permutation(n)  # a person's records must not sit next to each other
    person, rank = person[order], rank[order]

    habits = [SOURCE_HABITS[s] for s in sources]
    weights = np.array([hb.weight for hb in habits])
    src = rng.choice(len(sources), n, p=weights / weights.sum())

    def per_source(values: Sequence[float]) -> np.ndarray:
        return np.asarray(values, np.float64)[src]

    def absent(field: str) -> np.ndarray:
        gone = per_source([1.0 - hb.fill[field] for hb in habits]) * gap_scale
        return rng.random(n) < np.minimum(1.0, gone + rate["missing"])

    missing = {field: absent(field) for field in COLUMNS[2:]}
    # A record with neither name, email nor phone would be junk no system keeps: give it back its phone.
    missing["phone"] &= ~(missing["first_name"] & missing["last_name"] & missing["email"])

    # Given name: canonical, nickname or initial.
    fi = first[person]
    nick_n = pools.nick_count[fi]
    use_nick = (nick_n > 0) & (rng.random(n) < rate["nickname"])
    nick_i = pools.nick_start[fi] + (rng.random(n) * np.maximum(nick_n, 1)).astype(np.int64)
    if srng is not None:
        use_nick |= (nick_n > 0) & (srng.random(n) < SEMANTIC_RATES["nickname"])
    given = pa.concat_arrays([pools.first, pools.nicknames]).take(
        pa.array(np.where(use_nick, len(pools.first) + nick_i, fi)))
    initial = pc.utf8_slice_codeunits(given, 0, 1)
    use_initial = rng.random(n) < rate["initial"]
    given = _where(use_initial, _where(rng.random(n) < 0.5, _join(initial, "."), initial), given)

    surname = pools.last.take(pa.array(np.where(married[person] & (rank >= change_at[person]),
                                                new_last[person], last[person])))
    jr = (kind[person] == 3) & (rng.random(n) < h["junior_suffix"])
    younger = dob[person] > dob[anchor[person]]
    surname = _where(jr, _join(surname, pc.if_else(pa.array(younger), " Jr", " Sr")), surname)
    swap = rng.random(n) < rate["name_swap"]
    given, surname = _where(swap, surname, given), _where(swap, given, surname)

    # Address: home or, for later records of movers, the new one.
    after_move = moved[person] & (rank >= move_at[person])
    addr = {k: np.where(after_move, moved_to[k][person], home[k][person]) for k in home}
    abbrev = rng.random(n) < rate["street_abbrev"]
    suffix = pools.suffix.take(pa.array(addr["suffix"] + abbrev * len(_STREET_SUFFIXES)))
    unit_no = pc.cast(pa.array(addr["unit"]), pa.string())
    unit = _where(addr["unit"] > 0, _where(abbrev, _join("#", unit_no), _join("Apt ", unit_no)),
                  pa.nulls(n, pa.string()))
    number = pc.cast(pa.array(addr["number"]), pa.string())
    street = pools.street.take(pa.array(addr["street"]))
    city = pools.city.take(pa.array(addr["city"]))
    if srng is None:
        address_line = _join(number, street, suffix, unit, sep=" ")
    else:
        address_line, city = _semantic_address(srng, addr["unit"], unit_no, unit, number, street, suffix, city)

    postcode_digits = _digits(addr["zip"], 5)
    bad = np.flatnonzero(rng.random(n) < rate["postcode_typo"])
    postcode_digits[bad, rng.integers(0, 5, bad.size)] = rng.integers(0, 10, bad.size)
    postcode = _render(postcode_digits, np.zeros(n, np.int64), _POSTCODE_TEMPLATES, ~missing["postcode"])
    zero_lost = (postcode_digits[:, 0] == 0) & (rng.random(n) < rate["postcode_zero_lost"])
    postcode = _where(zero_lost, pc.utf8_ltrim(postcode, characters="0"), postcode)

    # Phone: digits, a typo now and then, the source's format or another one.
    ph_digits = _digits(phone[person], 10)
    bad = np.flatnonzero(rng.random(n) < rate["phone_typo"])
    ph_digits[bad, rng.integers(3, 10, bad.size)] = rng.integers(0, 10, bad.size)
    own = per_source([PHONE_FORMATS.index(hb.phone_format) for hb in habits]).astype(np.int64)
    ph_fmt = np.where(rng.random(n) < rate["phone_format"], rng.integers(0, len(PHONE_FORMATS), n), own)
    phone_arr = _render(ph_digits, ph_fmt, _PHONE_TEMPLATES, ~missing["phone"])

    # Date of birth: year/month/day, off-by-one typos, day/month swaps, the source's format or another one.
    days = dob[person].astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    y = months.astype("datetime64[Y]").astype(np.int64) + 1970
    m = months.astype(np.int64) % 12 + 1
    d = (days - months).astype(np.int64) + 1
    typo = rng.random(n) < rate["dob_typo"]
    step = rng.choice(np.array([-1, 1]), n)
    on_year = rng.random(n) < 0.5
    y = np.where(typo & on_year, y + step, y)
    d = np.where(typo & ~on_year, np.clip(d + step, 1, 28), d)
    swap_dm = (d <= 12) & (rng.random(n) < rate["day_month_swap"])
    m, d = np.where(swap_dm, d, m), np.where(swap_dm, m, d)
    own = per_source([DATE_FORMATS.index(hb.date_format) for hb in habits]).astype(np.int64)
    dt_fmt = np.where(rng.random(n) < rate["date_format"], rng.integers(0, len(DATE_FORMATS), n), own)
    dob_arr = _render(_digits(y * 10_000 + m * 100 + d, 8), dt_fmt, _DATE_TEMPLATES, ~missing["dob"])

    # Email: primary or alternate, sometimes mistyped.
    use_alt = has_alt[person] & (rng.random(n) < 0.5)
    email_arr = email.take(pa.array(np.where(use_alt, alt_slot[person], person)))

    # Typos go through Python, on the affected rows only.
    given = _typos(rng, given, rate["typo_first_name"])
    surname = _typos(rng, surname, rate["typo_last_name"])
    address_line = _typos(rng, address_line, rate["typo_address"])
    city = _typos(rng, city, rate["typo_city"])
    at = pc.fill_null(pc.find_substring(email_arr, "@"), -1).to_numpy().astype(np.int64)
    email_arr = _typos(rng, email_arr, rate["email_typo"], at)

    # Casing by source habit; emails only follow an all-upper system.
    casing = np.empty(n, np.int8)
    u = rng.random(n)
    for s, hb in enumerate(habits):
        cut = np.cumsum([hb.casing.get(c, 0.0) for c in _CASINGS])
        casing[src == s] = np.minimum(np.searchsorted(cut / cut[-1], u[src == s], side="right"), 2)

    def cased(arr: pa.Array) -> pa.Array:
        return _recase(arr, casing)

    def gaps(arr: pa.Array, field: str) -> pa.Array:
        return _where(missing[field], pa.nulls(n, pa.string()), arr)

    email_arr = _recase(email_arr, np.where(casing == 1, 1, 0))
    source_names = pa.array(sources, pa.string()).take(pa.array(src))
    rid_templates = [_template(f"{s}-", *range(id_width)) for s in sources]
    record_id = _render(_digits(record_offset + np.arange(n, dtype=np.int64), id_width), src, rid_templates)

    records = pa.table({
        "record_id": record_id,
        "source": source_names,
        "first_name": gaps(cased(given), "first_name"),
        "last_name": gaps(cased(surname), "last_name"),
        "dob": dob_arr,
        "email": gaps(email_arr, "email"),
        "phone": phone_arr,
        "address_line": gaps(cased(address_line), "address_line"),
        "city": gaps(cased(city), "city"),
        "postcode": postcode,
    })
    truth = pa.table({
        "record_id": record_id,
        "source": source_names,
        "true_id": pa.array(people_offset + person.astype(np.int64), pa.int64()),
    })
    return records, truth, p


# ---------------------------------------------------------------------------------------------- public


def _check(n_records: Any, seed: Any, difficulty: Any, chunk_size: Any, sources: Any,
           variation: Any = "typos") -> tuple[str, ...]:
    def is_int(x: Any) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    if not is_int(n_records) or n_records < 1:
        raise SettingsError(f"n_records={n_records!r} is invalid: pass an integer of at least 1.")
    if not is_int(seed) or seed < 0:
        raise SettingsError(f"seed={seed!r} is invalid: pass a non-negative integer.")
    if (isinstance(difficulty, bool) or not isinstance(difficulty, (int, float, np.number))
            or not 0.0 <= float(difficulty) <= 1.0):
        raise SettingsError(
            f"difficulty={difficulty!r} is invalid: pass a number from 0 (clean) to 1 (hard).")
    if not is_int(chunk_size) or chunk_size < 1:
        raise SettingsError(f"chunk_size={chunk_size!r} is invalid: pass an integer of at least 1.")
    if variation not in VARIATIONS:
        raise SettingsError(f"variation={variation!r} is invalid: pass one of {', '.join(VARIATIONS)}.")
    if sources is None:
        return SOURCES
    if isinstance(sources, str) or not isinstance(sources, Sequence):
        raise SettingsError(
            f"sources={sources!r} is invalid: pass a list of source names, e.g. ['crm', 'web'].")
    chosen = tuple(sources)
    unknown = [s for s in chosen if s not in SOURCE_HABITS]
    if not chosen or unknown or len(set(chosen)) != len(chosen):
        raise SettingsError(
            f"sources={list(chosen)!r} is invalid: pass one or more distinct names from {list(SOURCES)}"
            + (f" ({unknown!r} unknown)." if unknown else "."))
    return chosen


def _tables(n_records: int, seed: int, difficulty: float, chunk_size: int, sources: tuple[str, ...],
            variation: str = "typos") -> Iterator[tuple[pa.Table, pa.Table, int]]:
    id_width = max(9, len(str(n_records - 1)))
    done = people = index = 0
    while done < n_records:
        n = min(chunk_size, n_records - done)
        records, truth, p = _chunk(seed, index, n, done, id_width, people, float(difficulty), sources,
                                   variation)
        yield records, truth, p
        done, people, index = done + n, people + p, index + 1


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas()


def generate(n_records: int, *, seed: int = 0, difficulty: float = 0.5, chunk_size: int = 250_000,
             sources: Sequence[str] | None = None, variation: str = "typos",
             ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Yield synthetic records and their truth, chunk by chunk.

    Parameters
    ----------
    n_records : int
        Total number of records over all chunks (exactly).
    seed : int, default 0
        Same seed and arguments give identical chunks.
    difficulty : float, default 0.5
        0 is clean, 0.5 applies :data:`CORRUPTION_RATES`, 1 doubles them.
    chunk_size : int, default 250_000
        Records per chunk (the last may be smaller); bounds memory.
    sources : sequence of str, optional
        A subset of :data:`SOURCES` (default all); their weights are renormalised.
    variation : {"typos", "semantic"}, default "typos"
        ``semantic`` adds :data:`SEMANTIC_RATES` (nicknames, unit words, reordered addresses, city aliases).

    Yields
    ------
    records : pandas.DataFrame
        :data:`COLUMNS`, all ``str`` (missing values are null); ``record_id`` unique over the whole dataset.
    truth : pandas.DataFrame
        ``record_id`` and ``source`` (str), ``true_id`` (int64, one per person, unique over the dataset), row
        aligned with ``records``.

    Raises
    ------
    SettingsError
        An argument is out of range; the message names it.
    """
    chosen = _check(n_records, seed, difficulty, chunk_size, sources, variation)
    for records, truth, _ in _tables(int(n_records), int(seed), float(difficulty), int(chunk_size), chosen,
                                     variation):
        yield _frame(records), _frame(truth)


def generate_frame(n_records: int, *, seed: int = 0, difficulty: float = 0.5,
                   sources: Sequence[str] | None = None, variation: str = "typos",
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All records and truth in memory, as one chunk (for tests and demos); see :func:`generate`.

    Returns
    -------
    records : pandas.DataFrame
        :data:`COLUMNS`, ``n_records`` rows.
    truth : pandas.DataFrame
        ``record_id``, ``source``, ``true_id`` (int64), row aligned with ``records``.
    """
    chunk = n_records if isinstance(n_records, (int, np.integer)) and not isinstance(n_records, bool) else 0
    records, truth = next(generate(n_records, seed=seed, difficulty=difficulty, chunk_size=max(1, chunk),
                                   sources=sources, variation=variation))
    return records, truth


def _write_chunk(folder: Path, index: int, records: pa.Table, truth: pa.Table) -> int:
    # Dictionary encoding only pays for the low-cardinality source column; elsewhere it costs time only.
    for name, table in (("records", records), ("truth", truth)):
        pq.write_table(table, folder / name / f"part-{index:05d}.parquet", use_dictionary=["source"])
    return records.num_rows


def write_dataset(out_dir: str | Path, n_records: int, *, seed: int = 0, difficulty: float = 0.5,
                  chunk_size: int = 250_000, sources: Sequence[str] | None = None, variation: str = "typos",
                  overwrite: bool = False,
                  progress: Callable[[int], None] | None = None) -> dict:
    """Write a synthetic dataset to Parquet, one file per chunk, atomically.

    Layout: ``out_dir/records/part-00000.parquet ...`` (:data:`COLUMNS`), ``out_dir/truth/part-00000.parquet
    ...`` (:data:`TRUTH_COLUMNS`) and ``out_dir/synth.json`` (arguments, rates, counts, timing). Everything is
    written into a temporary sibling folder that is renamed to ``out_dir`` at the end, so a failed run leaves
    nothing behind.

    Parameters
    ----------
    out_dir : str or Path
        Folder to create.
    n_records, seed, difficulty, chunk_size, sources, variation
        As for :func:`generate`.
    overwrite : bool, default False
        Replace an existing ``out_dir`` (only once the new one is complete).
    progress : callable(int), optional
        Called after each chunk with the number of records written so far.

    Returns
    -------
    dict
        ``records``, ``people``, ``sources`` (records per source), ``files`` (paths relative to ``out_dir``),
        ``seconds``, ``records_per_second``, plus the arguments and rates (the content of ``synth.json``).

    Raises
    ------
    SettingsError
        An argument is out of range.
    OutputError
        ``out_dir`` exists and ``overwrite`` is false, or it cannot be written.
    """
    chosen = _check(n_records, seed, difficulty, chunk_size, sources, variation)
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise OutputError(f"output folder {str(out)!r} already exists: choose another folder or pass "
                          "overwrite=True (--overwrite) to replace it.")
    started = time.perf_counter()
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        (tmp / "records").mkdir(parents=True)
        (tmp / "truth").mkdir()
    except OSError as exc:
        raise OutputError(f"cannot create output folder next to {str(out)!r}: {exc}; check the path and its "
                          "permissions.") from exc
    try:
        files: list[str] = []
        by_source = dict.fromkeys(chosen, 0)
        people = done = 0
        # One writer thread: chunk i is compressed and written while chunk i + 1 is generated (pyarrow
        # releases the GIL); waiting for the previous write first keeps at most two chunks in memory.
        with ThreadPoolExecutor(max_workers=1) as writer:
            pending = None
            for i, (records, truth, p) in enumerate(
                    _tables(int(n_records), int(seed), float(difficulty), int(chunk_size), chosen, variation)):
                for c in pc.value_counts(records["source"]).to_pylist():
                    by_source[c["values"]] += c["counts"]
                people += p
                if pending is not None:
                    done += pending.result()
                    if progress is not None:
                        progress(done)
                pending = writer.submit(_write_chunk, tmp, i, records, truth)
                files += [f"records/part-{i:05d}.parquet", f"truth/part-{i:05d}.parquet"]
            done += pending.result()
            if progress is not None:
                progress(done)
        seconds = time.perf_counter() - started
        summary = {
            "records": done,
            "people": people,
            "sources": by_source,
            "files": files,
            "seconds": round(seconds, 3),
            "records_per_second": round(done / seconds, 1) if seconds > 0 else None,
            "arguments": {"n_records": int(n_records), "seed": int(seed), "difficulty": float(difficulty),
                          "chunk_size": int(chunk_size), "sources": list(chosen), "variation": variation},
            "corruption_rates": dict(CORRUPTION_RATES),
            "effective_rates": _effective(float(difficulty)),
            "household_rates": dict(HOUSEHOLD_RATES),
            "records_per_person": dict(RECORDS_PER_PERSON),
            "source_habits": {s: asdict(SOURCE_HABITS[s]) for s in chosen},
        }
        (tmp / "synth.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
            os.replace(tmp, out)
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        else:
            os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write the dataset to {str(out)!r}: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
