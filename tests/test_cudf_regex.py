"""The standardisation's regular expressions mean the same to cuDF's regex engine as to pandas.

On the GPU backend the standardisation runs its ``.str`` regex operations on cuDF, whose engine (libcudf's
``regcomp.cpp``) reads some escapes differently from Python's ``re`` and RE2 (pyarrow), which pandas uses:

- inside ``[...]`` it decodes only ``\\n \\r \\t \\a \\b \\f``, octal, ``\\x..`` and ``\\w \\s \\d``
  (and their negations); any other escaped character is that character itself, so ``[\\v]`` holds the
  letter ``v``;
- the end of a range is taken as written, never decoded: ``[\\x00-\\x1f]`` runs from NUL to the letter ``x``
  (then holds ``1`` and ``f``), so a range must end in the character itself;
- outside a class, an escape must be a known one or an escapable punctuation character.

CI has no cuDF, so this test reads each class as libcudf's parser does (a model written from those rules) and
holds the characters it matches against Python's reading of the same class; a pattern that would mean
something else on the GPU fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import gpucdp.standardize

# What libcudf decodes after a backslash inside a class; other escaped characters stand for themselves.
_CLASS_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\x07", "b": "\x08", "f": "\x0c"}
_SPACE = "\t\n\x0b\x0c\r "
_DIGIT = "0123456789"
_WORD = _DIGIT + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_BUILTIN = {"s": _SPACE, "d": _DIGIT, "w": _WORD}
# Outside a class: decoded escapes, anchors and classes, then the punctuation libcudf accepts escaped.
_ESCAPES_OUTSIDE = set("tnrafxwWsSdDbBAZ01234567") | set(".-+*\\?^$|{}()[]<>\"~'`_@=;:!#%&,/ ")
_ALPHABET = [chr(c) for c in range(1, 256)]


def _libcudf_class(pattern: str, start: int) -> tuple[set[str], int]:
    """The characters (of :data:`_ALPHABET`) that libcudf's regex compiler puts in the class opening at
    ``pattern[start]``, and the index just past its closing bracket."""
    i = start + 1

    def next_char() -> tuple[bool, str]:
        nonlocal i
        c = pattern[i]
        i += 1
        if c == "\\":
            c = pattern[i]
            i += 1
            return True, c
        return False, c

    quoted, c = next_char()
    negated = not quoted and c == "^"
    if negated:
        quoted, c = next_char()
    members: set[str] = set()
    literals: list[list[str]] = []  # [first, last] of each range, a single character being [c, c]
    first = True
    while True:
        if quoted and c in _CLASS_ESCAPES:
            c = _CLASS_ESCAPES[c]
        elif quoted and c in "01234567":
            digits = c
            while len(digits) < 3 and pattern[i] in "01234567":
                digits += pattern[i]
                i += 1
            c = chr(int(digits, 8))
        elif quoted and c == "x":
            c = chr(int(pattern[i:i + 2], 16))
            i += 2
        elif quoted and c.lower() in _BUILTIN:
            chars = set(_BUILTIN[c.lower()])
            members |= chars if c.islower() else set(_ALPHABET) - chars
            quoted, c = next_char()
            first = False
            continue
        if not quoted and c == "]" and not first:
            break
        first = False
        if not quoted and c == "-" and literals:
            end_quoted, end = next_char()
            if not end_quoted and end == "]":
                literals.append(["-", "-"])
                break
            literals[-1][1] = end  # the range's end as written: an escape there is not decoded
        else:
            literals.append([c, c])
        quoted, c = next_char()
    for lo, hi in literals:
        members |= {ch for ch in _ALPHABET if lo <= ch <= hi}
    return (set(_ALPHABET) - members if negated else members), i


def _patterns() -> list[str]:
    """Every string constant of the standardisation module that compiles as a regex with a class or escape."""
    source = Path(gpucdp.standardize.__file__).read_text()
    found = []
    for node in ast.walk(ast.parse(source)):
        text = node.value if isinstance(node, ast.Constant) else None
        if isinstance(text, str) and ("[" in text or "\\" in text):
            try:
                re.compile(text)
            except re.error:
                continue
            found.append(text)
    return found


def _check(pattern: str) -> list[str]:
    """What libcudf would read differently in ``pattern``: one line per class or escape."""
    problems = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if pattern[i + 1] not in _ESCAPES_OUTSIDE:
                problems.append(f"escape \\{pattern[i + 1]} outside a class is not one libcudf knows")
            i += 2
        elif c == "[":
            cudf_members, end = _libcudf_class(pattern, i)
            text = pattern[i:end]
            python_members = {ch for ch in _ALPHABET if re.fullmatch(text, ch)}
            if cudf_members != python_members:
                extra = "".join(sorted(cudf_members - python_members))
                lost = "".join(sorted(python_members - cudf_members))
                problems.append(f"class {text!r}: libcudf adds {extra!r} and drops {lost!r}")
            i = end
        else:
            i += 1
    return problems


def test_the_module_has_the_patterns_this_test_reads():
    patterns = _patterns()
    assert len(patterns) >= 20
    assert gpucdp.standardize._WS in patterns


@pytest.mark.parametrize("pattern", _patterns())
def test_libcudf_reads_each_pattern_as_python_does(pattern):
    assert _check(pattern) == []


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"[ \t\v]", "libcudf adds 'v'"),  # \v is not decoded in a class
        (r"[\x00-\x1f]", "libcudf adds"),  # a range's end is not decoded
        (r"[^\x00-\x7f]", "libcudf adds"),
        (r"\v+", "escape \\v outside a class"),
    ],
)
def test_the_model_catches_what_libcudf_reads_differently(pattern, why):
    problems = _check(pattern)
    assert problems and why in problems[0]


def test_the_model_reads_plain_classes_as_python_does():
    for pattern in (r"[^a-z ]+", r"['\-]", r"[-/.]", r"[/-]", r"[^A-Z0-9]", "[ \\t\\x0b]",
                    "[\\x00-\x1f\\x7f]", r"[\d.]", r"[^\d@]"):
        assert _check(pattern) == [], pattern
