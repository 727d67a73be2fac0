"""Emails and phone numbers standardized by compiled passes over Arrow's string bytes (the host's path).

:mod:`gpucdp.standardize` spells each rule as a chain of string operations that pandas and cuDF share. On the
GPU each operation is one parallel pass; on the host each is one of Arrow's passes over every value, with a new
string array after each. Emails and phone numbers rarely repeat, so they are worked on row by row, and the
chains cost 1.1-1.4 µs a row for an email and 0.8-0.9 µs for a phone number (3M records). Here a Numba loop
reads a value's bytes once, applies the same rules and writes the results straight into the output arrays:
0.3-0.4 and 0.1 µs a row.

The results are those of the string operations, which the tests check on generated values:

- phone numbers: every rule reads bytes (its regexes' classes are ASCII, which no byte of a multi-byte UTF-8
  character matches), so every value is handled here; whether ``$`` matches before a final newline (it does
  in pandas' string operations, as in Python's ``re``) is the caller's to say;
- emails: an address is lower-cased and trimmed as Unicode text first, so values with a non-ASCII byte are left
  to the caller (:func:`email_parts` flags them); on ASCII, Arrow's trim strips bytes 9-13 and 28-32, and
  lower-casing is A-Z → a-z.

The loops are serial and release the GIL: standardisation already runs a thread per field and part of rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import pyarrow as pa

from gpucdp.arrays import large_string_array, string_buffers

__all__ = ["email_parts", "phone_numbers"]

_jit = numba.njit(cache=True, nogil=True)

# What Arrow's utf8_trim_whitespace (pandas' str.strip) removes from either end of an ASCII string
_TRIMMED = np.zeros(256, dtype=np.bool_)
_TRIMMED[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
# The whitespace the address pattern excludes: [ \t\n\r\f\v]
_SPACE = np.zeros(256, dtype=np.bool_)
_SPACE[[9, 10, 11, 12, 13, 32]] = True

_AT, _DOT, _PLUS, _HASH, _COLON, _SPACE_BYTE = ord("@"), ord("."), ord("+"), ord("#"), ord(":"), ord(" ")
_ZERO, _NINE, _E, _T, _X, _NEWLINE = ord("0"), ord("9"), ord("e"), ord("t"), ord("x"), ord("\n")
_GMAIL = np.frombuffer(b"gmail.com", dtype=np.uint8)
_GOOGLEMAIL = np.frombuffer(b"googlemail.com", dtype=np.uint8)

# email status codes
_NULL, _OK, _OTHER = 0, 1, 2


def email_parts(
    values: pa.Array, plus_tag_domains: Sequence[str]
) -> tuple[pa.LargeStringArray, pa.LargeStringArray, pa.LargeStringArray, np.ndarray]:
    """Normalised email addresses, their local parts and their domains.

    Parameters
    ----------
    values : pyarrow string or large_string array, length n
        Raw addresses; nulls allowed.
    plus_tag_domains : sequence of str
        Lower-case domains whose mailboxes ignore a ``+tag`` in the local part.

    Returns
    -------
    email, user, domain : pyarrow.LargeStringArray[n]
        Null where the value is null, not an address, or not ASCII.
    non_ascii : bool[n]
        The values holding a non-ASCII byte, which the caller standardises its own way.

    Notes
    -----
    After trimming and lower-casing, a value is an address when it matches
    ``^[^@ \\t\\n\\r\\f\\v]+@(?:[^@ \\t\\n\\r\\f\\v.]+\\.)+[^@ \\t\\n\\r\\f\\v.]+$``. ``googlemail.com`` becomes
    ``gmail.com``, whose local parts lose their dots; at a domain of ``plus_tag_domains`` the local part ends
    before its first ``+``. An address whose local part ends up empty is null.
    """
    chars, offsets, valid = string_buffers(values)
    n = len(valid)
    plus_chars = np.frombuffer("".join(plus_tag_domains).encode("ascii"), dtype=np.uint8)
    plus_offsets = np.zeros(len(plus_tag_domains) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in plus_tag_domains], out=plus_offsets[1:])
    status = np.empty(n, dtype=np.uint8)
    spans = np.empty((n, 4), dtype=np.int64)  # user start, user stop (before any +tag), domain start, stop
    flags = np.empty(n, dtype=np.uint8)  # 1: drop the local part's dots, 2: the domain is written gmail.com
    lengths = np.zeros((n, 2), dtype=np.int64)  # local part, domain
    _read_emails(chars, offsets, valid, plus_chars, plus_offsets, status, spans, flags, lengths)
    ok = status == _OK
    user_offsets = _offsets(lengths[:, 0])
    domain_offsets = _offsets(lengths[:, 1])
    email_offsets = _offsets(np.where(ok, lengths[:, 0] + 1 + lengths[:, 1], 0))
    user_chars = np.empty(int(user_offsets[-1]), dtype=np.uint8)
    domain_chars = np.empty(int(domain_offsets[-1]), dtype=np.uint8)
    email_chars = np.empty(int(email_offsets[-1]), dtype=np.uint8)
    _write_emails(chars, status, spans, flags, user_offsets, domain_offsets, email_offsets, user_chars,
                  domain_chars, email_chars)
    return (large_string_array(email_chars, email_offsets, ok), large_string_array(user_chars, user_offsets, ok),
            large_string_array(domain_chars, domain_offsets, ok), status == _OTHER)


def phone_numbers(values: pa.Array, newline_ends: bool = True) -> pa.LargeStringArray:
    """National significant numbers, digits only, of raw phone numbers.

    Parameters
    ----------
    values : pyarrow string or large_string array, length n
        Raw phone numbers; nulls allowed.
    newline_ends : bool, default True
        Whether the extension pattern's ``$`` also matches before a final newline, as Python's ``re`` does and
        pandas' Arrow-backed strings do too (pandas 3.1); RE2 alone does not. The caller says which regexes it
        follows (see :func:`gpucdp.standardize._dollar_before_newline`).

    Returns
    -------
    pyarrow.LargeStringArray[n]
        Null where the value is null or gives no number.

    Notes
    -----
    An extension at the end (``(?:[eE][xX][tT]|[xX]|#)[ .:]*[0-9]+ *$``) is cut off; of the digits left, a
    leading ``00`` (the international call prefix) is dropped and the last 10 are kept. More than 15 digits
    (before keeping 10), fewer than 7, or one digit repeated throughout give null.
    """
    chars, offsets, valid = string_buffers(values)
    n = len(valid)
    spans = np.zeros((n, 3), dtype=np.int64)  # first byte, stop byte, digits to skip before the kept ones
    lengths = np.zeros(n, dtype=np.int64)
    _read_phones(chars, offsets, valid, newline_ends, spans, lengths)
    out_offsets = _offsets(lengths)
    out_chars = np.empty(int(out_offsets[-1]), dtype=np.uint8)
    _write_phones(chars, spans, out_offsets, out_chars)
    return large_string_array(out_chars, out_offsets, lengths > 0)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


@_jit
def _lower(c):
    return c + 32 if 65 <= c <= 90 else c


@_jit
def _equals_lower(chars, a, b, word, w0, w1):
    """Whether chars[a:b], lower-cased, equals word[w0:w1]."""
    if b - a != w1 - w0:
        return False
    for k in range(b - a):
        if _lower(chars[a + k]) != word[w0 + k]:
            return False
    return True


@_jit
def _read_emails(chars, offsets, valid, plus_chars, plus_offsets, status, spans, flags, lengths):
    gmail_takes_tags = False
    for j in range(plus_offsets.shape[0] - 1):
        gmail_takes_tags |= _equals_lower(_GMAIL, 0, _GMAIL.shape[0], plus_chars, plus_offsets[j], plus_offsets[j + 1])
    for i in range(valid.shape[0]):
        status[i] = _NULL
        flags[i] = 0
        if not valid[i]:
            continue
        a = offsets[i]
        b = offsets[i + 1]
        ascii_only = True
        for k in range(a, b):
            if chars[k] >= 128:
                ascii_only = False
                break
        if not ascii_only:
            status[i] = _OTHER
            continue
        while a < b and _TRIMMED[chars[a]]:
            a += 1
        while b > a and _TRIMMED[chars[b - 1]]:
            b -= 1
        # one "@" after a non-empty local part; no whitespace
        at = -1
        ok = True
        for k in range(a, b):
            c = chars[k]
            if c == _AT:
                if at >= 0:
                    ok = False
                    break
                at = k
            elif _SPACE[c]:
                ok = False
                break
        if not ok or at <= a:
            continue
        # the domain: two or more non-empty labels between dots
        d0 = at + 1
        if d0 >= b or chars[d0] == _DOT or chars[b - 1] == _DOT:
            continue
        dots = 0
        for k in range(d0, b):
            if chars[k] == _DOT:
                dots += 1
                if chars[k + 1] == _DOT:
                    ok = False
                    break
        if not ok or dots == 0:
            continue
        domain_length = b - d0
        renamed = _equals_lower(chars, d0, b, _GOOGLEMAIL, 0, _GOOGLEMAIL.shape[0])
        if renamed:
            domain_length = _GMAIL.shape[0]
        gmail = renamed or _equals_lower(chars, d0, b, _GMAIL, 0, _GMAIL.shape[0])
        takes_tags = gmail and gmail_takes_tags
        if not gmail:
            for j in range(plus_offsets.shape[0] - 1):
                if _equals_lower(chars, d0, b, plus_chars, plus_offsets[j], plus_offsets[j + 1]):
                    takes_tags = True
                    break
        user_stop = at
        if takes_tags:
            for k in range(a, at):
                if chars[k] == _PLUS:
                    user_stop = k
                    break
        user_length = user_stop - a
        if gmail:
            for k in range(a, user_stop):
                if chars[k] == _DOT:
                    user_length -= 1
        if user_length == 0:
            continue
        status[i] = _OK
        flags[i] = gmail + 2 * renamed
        spans[i, 0] = a
        spans[i, 1] = user_stop
        spans[i, 2] = d0
        spans[i, 3] = b
        lengths[i, 0] = user_length
        lengths[i, 1] = domain_length


@_jit
def _write_emails(chars, status, spans, flags, user_offsets, domain_offsets, email_offsets, user_chars,
                  domain_chars, email_chars):
    for i in range(status.shape[0]):
        if status[i] != _OK:
            continue
        drop_dots = flags[i] & 1
        u = user_offsets[i]
        e = email_offsets[i]
        for k in range(spans[i, 0], spans[i, 1]):
            c = chars[k]
            if drop_dots and c == _DOT:
                continue
            c = _lower(c)
            user_chars[u] = c
            email_chars[e] = c
            u += 1
            e += 1
        email_chars[e] = _AT
        e += 1
        d = domain_offsets[i]
        if flags[i] & 2:
            for k in range(_GMAIL.shape[0]):
                domain_chars[d + k] = _GMAIL[k]
                email_chars[e + k] = _GMAIL[k]
        else:
            for k in range(spans[i, 2], spans[i, 3]):
                c = _lower(chars[k])
                domain_chars[d] = c
                email_chars[e] = c
                d += 1
                e += 1


@_jit
def _is_digit(c):
    return _ZERO <= c <= _NINE


@_jit
def _extension_start(chars, a, b, newline_ends):
    """Where an extension at the end of chars[a:b] starts (b when there is none).

    Read from the end, the pattern's parts are fixed: spaces, digits, then ``[ .:]`` characters, then the
    marker; none of these classes shares a character with the one next to it, so the match, if any, is unique.
    With ``newline_ends`` a final newline is where the match may end (no part of the pattern takes one).
    """
    k = b
    if newline_ends and k > a and chars[k - 1] == _NEWLINE:
        k -= 1
    while k > a and chars[k - 1] == _SPACE_BYTE:
        k -= 1
    digits_end = k
    while k > a and _is_digit(chars[k - 1]):
        k -= 1
    if k == digits_end:
        return b
    while k > a and (chars[k - 1] == _SPACE_BYTE or chars[k - 1] == _DOT or chars[k - 1] == _COLON):
        k -= 1
    if k == a:
        return b
    c = _lower(chars[k - 1])
    if c == _HASH or c == _X:
        return k - 1
    if c == _T and k - 3 >= a and _lower(chars[k - 3]) == _E and _lower(chars[k - 2]) == _X:
        return k - 3
    return b


@_jit
def _read_phones(chars, offsets, valid, newline_ends, spans, lengths):
    for i in range(valid.shape[0]):
        if not valid[i]:
            continue
        a = offsets[i]
        b = _extension_start(chars, a, offsets[i + 1], newline_ends)
        digits = 0
        for k in range(a, b):
            if _is_digit(chars[k]):
                digits += 1
        skip = 0
        if digits >= 2:  # the international call prefix "00"
            seen = 0
            for k in range(a, b):
                if _is_digit(chars[k]):
                    if chars[k] != _ZERO:
                        break
                    seen += 1
                    if seen == 2:
                        skip = 2
                        break
        digits -= skip
        if digits > 15 or digits < 7:
            continue
        keep = min(digits, 10)
        skip += digits - keep
        # one digit repeated throughout is a placeholder
        seen = 0
        first = -1
        same = True
        for k in range(a, b):
            c = chars[k]
            if _is_digit(c):
                seen += 1
                if seen > skip:
                    if first < 0:
                        first = c
                    elif c != first:
                        same = False
                        break
        if same:
            continue
        spans[i, 0] = a
        spans[i, 1] = b
        spans[i, 2] = skip
        lengths[i] = keep


@_jit
def _write_phones(chars, spans, out_offsets, out_chars):
    for i in range(spans.shape[0]):
        o = out_offsets[i]
        if out_offsets[i + 1] == o:
            continue
        seen = 0
        for k in range(spans[i, 0], spans[i, 1]):
            c = chars[k]
            if _is_digit(c):
                seen += 1
                if seen > spans[i, 2]:
                    out_chars[o] = c
                    o += 1
