"""The host-compiled similarity functions against the pure-Python oracles, rapidfuzz and jellyfish."""

from __future__ import annotations

import datetime

import jellyfish
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import OSA, Jaro, JaroWinkler, Levenshtein

import oracles
from gpucdp.kernels import similarity as sim
from gpucdp.kernels.similarity import MAX_LEN

# Small alphabets make matches, transpositions and shared prefixes common; raw bytes and encoded text cover
# arbitrary UTF-8; up to 80 bytes crosses the MAX_LEN cap.
words = st.one_of(
    st.text(alphabet="abcde", max_size=12).map(str.encode),
    st.text(alphabet="ab", min_size=60, max_size=80).map(str.encode),
    st.text(max_size=20).map(lambda s: s.encode("utf-8")),
    st.binary(max_size=80),
)
EDGE_CASES = [
    (b"", b""),
    (b"", b"abc"),
    (b"a", b"a"),
    (b"a", b"b"),
    (b"martha", b"marhta"),
    (b"dwayne", b"duane"),
    ("José".encode(), b"Jose"),
    ("Zoë Ünal".encode(), "Zoe Unal".encode()),
    (b"x" * 70, b"x" * 64 + b"y" * 6),  # equal in the first 64 bytes only
    (b"ab" * 40, b"ba" * 40),
]


def with_edge_cases(*extra):
    """Add every EDGE_CASES pair as an explicit example, followed by the ``extra`` arguments."""

    def decorate(test):
        for a, b in EDGE_CASES:
            test = example(a, b, *extra)(test)
        return test

    return decorate


def pack(a: bytes, b: bytes):
    """The two strings as (chars, a0, a1, b0, b1) of one buffer, plus fresh scratch."""
    chars = np.frombuffer(a + b, dtype=np.uint8)
    return (chars, 0, len(a), len(a), len(a) + len(b))


FLAGS_A = np.zeros(MAX_LEN, dtype=np.uint8)
FLAGS_B = np.zeros(MAX_LEN, dtype=np.uint8)
MASKS = np.zeros(sim.MASK_SLOTS, dtype=np.uint64)


def jaro(a, b):
    return sim.jaro_host(*pack(a, b), FLAGS_A, FLAGS_B)


def jaro_winkler(a, b, p=0.1):
    return sim.jaro_winkler_host(*pack(a, b), FLAGS_A, FLAGS_B, p)


def levenshtein(a, b, k):
    return sim.levenshtein_host(*pack(a, b), MASKS, k)


def damerau(a, b, k):
    return sim.damerau_host(*pack(a, b), MASKS, k)


def jaccard(a, b, q=2):
    return sim.qgram_jaccard_host(*pack(a, b), FLAGS_B, q)


def cap(s: bytes) -> bytes:
    return s[:MAX_LEN]


@settings(max_examples=150, deadline=None)
@given(words, words)
@with_edge_cases()
def test_jaro_family_matches_oracle_and_libraries(a, b):
    ca, cb = cap(a), cap(b)
    j, jw = jaro(a, b), jaro_winkler(a, b)
    assert j == pytest.approx(oracles.jaro(ca, cb), abs=1e-12)
    assert jw == pytest.approx(oracles.jaro_winkler(ca, cb), abs=1e-12)
    # rapidfuzz compares bytes objects element-wise, and uses the same 0.7 boost threshold and 4-char prefix.
    assert j == pytest.approx(Jaro.similarity(ca, cb), abs=1e-12)
    assert jw == pytest.approx(JaroWinkler.similarity(ca, cb, prefix_weight=0.1), abs=1e-12)
    jw2 = JaroWinkler.similarity(ca, cb, prefix_weight=0.2)
    assert jaro_winkler(a, b, 0.2) == pytest.approx(jw2, abs=1e-12)
    if ca and cb:  # jellyfish scores two empty strings 0, we score them 1 like rapidfuzz
        # latin-1 maps each byte to one character, so jellyfish sees the same byte sequence.
        sa, sb = ca.decode("latin-1"), cb.decode("latin-1")
        assert j == pytest.approx(jellyfish.jaro_similarity(sa, sb), abs=1e-12)
        assert jw == pytest.approx(jellyfish.jaro_winkler_similarity(sa, sb), abs=1e-12)
    # properties
    assert 0.0 <= j <= jw <= 1.0
    assert j == jaro(b, a) and jw == pytest.approx(jaro_winkler(b, a), abs=1e-15)
    assert jaro(a, a) == 1.0 and jaro_winkler(a, a) == 1.0


@settings(max_examples=300, deadline=None)
@given(words, words)
@with_edge_cases()
def test_jaro_winkler_bound_is_an_upper_bound(a, b):
    # The comparison kernel skips Jaro / Jaro-Winkler when this bound is below the level's threshold.
    scratch = np.zeros(MAX_LEN, dtype=np.uint8)
    for p, metric in ((0.0, jaro(a, b)), (0.1, jaro_winkler(a, b)), (0.2, jaro_winkler(a, b, 0.2))):
        bound = sim.jaro_winkler_bound_host(*pack(a, b), scratch, p)
        assert bound + 1e-12 >= metric
        assert 0.0 <= bound <= 1.0 + 1e-12
        assert sim.jaro_winkler_bound_host(*pack(a, a), scratch, p) == pytest.approx(1.0, abs=1e-15)
    ca, cb = cap(a), cap(b)
    if ca and cb and not {c & 63 for c in ca} & {c & 63 for c in cb}:  # no character bucket in common
        assert sim.jaro_winkler_bound_host(*pack(a, b), scratch, 0.1) == 0.0


@settings(max_examples=150, deadline=None)
@given(words, words, st.integers(0, 6))
@with_edge_cases(1)
@example(b"", b"", 0)
@example(b"kitten", b"sitting", 2)
@example(b"ca", b"abc", 2)  # OSA 3, true Damerau 2: the restricted variant is what we implement
def test_bounded_distances_match_oracle_and_rapidfuzz(a, b, k):
    ca, cb = cap(a), cap(b)
    lev, osa = oracles.levenshtein(ca, cb), oracles.damerau_osa(ca, cb)
    assert levenshtein(a, b, k) == min(lev, k + 1)
    assert damerau(a, b, k) == min(osa, k + 1)
    assert levenshtein(a, b, 200) == lev == Levenshtein.distance(ca, cb)
    assert damerau(a, b, 200) == osa == OSA.distance(ca, cb)
    # rapidfuzz's score_cutoff has the same "bound + 1 when over" convention
    assert levenshtein(a, b, k) == Levenshtein.distance(ca, cb, score_cutoff=k)
    assert damerau(a, b, k) == OSA.distance(ca, cb, score_cutoff=k)
    # properties
    assert levenshtein(b, a, k) == levenshtein(a, b, k) and damerau(b, a, k) == damerau(a, b, k)
    assert levenshtein(a, a, 0) == 0 and damerau(a, a, 0) == 0
    assert damerau(a, b, 200) <= lev <= max(len(ca), len(cb))


@settings(max_examples=100, deadline=None)
@given(words, words, words)
def test_levenshtein_triangle_inequality(a, b, c):
    d = lambda x, y: levenshtein(x, y, 200)  # noqa: E731
    assert d(a, c) <= d(a, b) + d(b, c)


@settings(max_examples=150, deadline=None)
@given(words, words, st.integers(1, 4))
@with_edge_cases(2)
@example(b"a", b"a", 2)  # shorter than q: compared as whole strings
@example(b"a", b"ab", 2)
@example(b"aaaa", b"aa", 2)  # multisets: {aa x3} vs {aa x1} -> 1/3
def test_qgram_jaccard_matches_oracle(a, b, q):
    s = jaccard(a, b, q)
    assert s == pytest.approx(oracles.qgram_jaccard(cap(a), cap(b), q), abs=1e-12)
    assert 0.0 <= s <= 1.0
    assert s == jaccard(b, a, q)
    assert jaccard(a, a, q) == 1.0


def test_qgram_jaccard_uses_multisets():
    assert jaccard(b"aaaa", b"aa") == pytest.approx(1 / 3)
    assert jaccard(b"abab", b"ab") == pytest.approx(1 / 3)  # {ab, ba, ab} vs {ab}


@settings(max_examples=100, deadline=None)
@given(words, words)
@with_edge_cases()
def test_exact_compares_whole_strings(a, b):
    assert sim.exact_host(*pack(a, b)) == (a == b)


def test_fuzzy_metrics_see_only_max_len_bytes():
    a, b = b"x" * 70, b"x" * 64 + b"y" * 6
    assert jaro_winkler(a, b) == 1.0 and levenshtein(a, b, 3) == 0 and jaccard(a, b) == 1.0
    assert not sim.exact_host(*pack(a, b))


def test_empty_strings_are_defined():
    assert jaro(b"", b"") == 1.0 and jaro_winkler(b"", b"") == 1.0 and jaccard(b"", b"") == 1.0
    assert jaro(b"", b"ab") == 0.0 and jaro_winkler(b"ab", b"") == 0.0 and jaccard(b"", b"ab") == 0.0
    assert levenshtein(b"", b"", 0) == 0 and levenshtein(b"", b"abc", 5) == 3
    assert levenshtein(b"", b"abc", 1) == 2
    assert damerau(b"abc", b"", 5) == 3


@settings(max_examples=150, deadline=None)
@given(st.dates(min_value=datetime.date(1, 1, 1), max_value=datetime.date(9999, 12, 31)))
@example(datetime.date(1970, 1, 1))
@example(datetime.date(2000, 2, 29))
@example(datetime.date(1900, 3, 1))
def test_days_from_civil_matches_datetime(d):
    assert sim.days_from_civil_host(d.year, d.month, d.day) == oracles.days_from_civil(d.year, d.month, d.day)


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (19850403, 19850304, True),
        (19850304, 19850403, True),
        (19850303, 19850303, False),  # equal is not a swap
        (19850403, 19860304, False),  # different year
        (19850403, 19850305, False),
        (20011231, 20011231, False),
    ],
)
def test_date_swap(a, b, expected):
    assert sim.date_swap_host(a, b) is expected
    assert oracles.date_swap(a, b) is expected
