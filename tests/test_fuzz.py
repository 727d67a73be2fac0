"""Random Unicode, empty and huge strings through standardize and every kernel: no crash, properties intact.

Text mixes any non-surrogate code point with the troublemakers of real customer data: emoji (with skin tones
and zero-width joiners), control characters, combining marks, right-to-left text and 10 kB+ strings. The CPU
kernels are checked against the oracles of tests/oracles.py (and the Python Double Metaphone); the CUDA twins
run under the simulator (``NUMBA_ENABLE_CUDASIM=1 pytest -m cuda``) on a few examples, as it is slow.
"""

from __future__ import annotations

import datetime
import math
import os
import unicodedata

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import oracles
from gpucdp.embed import embed_records
from gpucdp.kernels import similarity as sim
from gpucdp.kernels.compare import compare_pairs
from gpucdp.kernels.similarity import MAX_LEN
from gpucdp.phonetic import double_metaphone, primary_codes
from gpucdp.settings import FIELD_TYPES
from gpucdp.standardize import derived_columns, fold_ascii, standardize
from test_similarity import damerau, jaccard, jaro, jaro_winkler, levenshtein, pack

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ODD = ["😀", "👩🏽‍💻", "🇬🇧", "\u200d", "\u0301", "\u0338", "\x00", "\x07", "\t", "\n", "\x7f", "\u202e", "ß", "ǅ",
       "ﬁ", "Ａ", "ı", "İ", "中", "ا", "\ufeff", "\U0010ffff"]
unicode_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30)
odd_text = st.lists(st.sampled_from(ODD + list("aeioubcdjnrst .-'@0123456789")), max_size=30).map("".join)
combining = st.builds(lambda base, marks: "".join(c + marks for c in base), st.text("aeonz", min_size=1, max_size=8),
                      st.text(alphabet=st.characters(categories=("Mn",)), max_size=3))
huge = st.builds(lambda unit, reps: unit * reps, st.lists(st.sampled_from(ODD + ["ab"]), min_size=1, max_size=4)
                 .map("".join), st.integers(10_000, 12_000))
texts = st.one_of(st.just(""), unicode_text, odd_text, combining, huge)
nullable = st.one_of(st.none(), texts)
EDGE = ["", "😀", "\x00", "x" * 10_240, "e\u0301" * 40, "👩🏽‍💻" * 2_000, "\u202eabc", " "]


def utf8(text: str) -> bytes:
    return text.encode("utf-8")


# --------------------------------------------------------------------------------- similarity (CPU)

@FUZZ
@given(texts, texts)
@example("", "")
@example("x" * 10_240, "x" * 10_240 + "y")
@example("😀", "😁")
@example("e\u0301", "é")
def test_similarities_in_range_symmetric_identity_and_match_oracles(sa, sb):
    a, b = utf8(sa), utf8(sb)
    ca, cb = a[:MAX_LEN], b[:MAX_LEN]
    for f, oracle in ((jaro, oracles.jaro), (jaro_winkler, oracles.jaro_winkler),
                      (jaccard, lambda x, y: oracles.qgram_jaccard(x, y, 2))):
        value = f(a, b)
        assert 0.0 <= value <= 1.0
        assert value == pytest.approx(f(b, a), abs=1e-12)
        assert value == pytest.approx(oracle(ca, cb), abs=1e-12)
        if a:
            assert f(a, a) == 1.0
    for f, oracle in ((levenshtein, oracles.levenshtein), (damerau, oracles.damerau_osa)):
        distance = oracle(ca, cb)
        assert f(a, b, 200) == f(b, a, 200) == distance
        assert f(a, b, 2) == min(distance, 3)
        assert f(a, a, 0) == 0
    assert sim.exact_host(*pack(a, b)) == (a == b)  # exact compares whole strings, past MAX_LEN too


@FUZZ
@given(st.integers(0, 99_999_999), st.integers(0, 99_999_999))
@example(20000229, 20000229)
@example(19850403, 19850304)
@example(0, 0)
def test_date_functions_total_on_any_number(a, b):
    assert sim.date_swap_host(a, b) == oracles.date_swap(a, b) == sim.date_swap_host(b, a)
    y, m, d = a // 10_000, a // 100 % 100, a % 100
    days = sim.days_from_civil_host(y, m, d)  # any number: an answer, not a crash
    try:
        datetime.date(y, m, d)
    except ValueError:
        return
    assert days == oracles.days_from_civil(y, m, d)


# ----------------------------------------------------------------------------------- compare kernel (CPU)

def _compare_case(values: list[str], seed: int):
    """A random level table (as oracles.random_case builds it) over the given strings as every string column."""
    n = len(values)
    pairs, strings, nums, levels = oracles.random_case(np.random.default_rng(seed), n, 3 * n)
    strings = [[utf8(v) for v in np.roll(values, s)] for s in range(len(strings))]
    left = np.array([p[0] for p in pairs], dtype=np.int64)
    right = np.array([p[1] for p in pairs], dtype=np.int64)
    return left, right, pairs, strings, nums, levels, oracles.to_kernel_inputs(strings, nums, levels, n)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(texts, min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_compare_kernel_matches_oracle_on_any_text(values, seed):
    left, right, pairs, strings, nums, levels, inputs = _compare_case(values, seed)
    gamma, pattern = compare_pairs(left, right, **inputs, target="cpu")
    expected_gamma, expected_pattern = oracles.compare_oracle(pairs, strings, nums, levels)
    np.testing.assert_array_equal(gamma, expected_gamma)
    np.testing.assert_array_equal(pattern, expected_pattern)


# --------------------------------------------------------------------------------------- embedding (CPU)

def _assert_unit_or_zero(vectors: np.ndarray, empty: np.ndarray) -> None:
    assert np.isfinite(vectors).all()
    norms = np.linalg.norm(vectors, axis=1)
    np.testing.assert_allclose(norms[~empty], 1.0, atol=1e-5)
    assert (vectors[empty] == 0).all()


@FUZZ
@given(st.lists(st.tuples(nullable, nullable), min_size=1, max_size=6), st.sampled_from([8, 64]),
       st.integers(1, 5))
def test_embeddings_are_unit_or_zero(rows, dim, q):
    first = pd.Series([r[0] for r in rows], dtype=object)
    last = pd.Series([r[1] for r in rows], dtype=object)
    vectors = embed_records([first, last], [1.0, 0.5], dim=dim, q=q, target="cpu")
    assert vectors.shape == (len(rows), dim) and vectors.dtype == np.float32
    empty = np.array([not a and not b for a, b in rows])
    _assert_unit_or_zero(vectors, empty)
    again = embed_records([first, last], [1.0, 0.5], dim=dim, q=q, target="cpu")
    np.testing.assert_array_equal(vectors, again)


# ------------------------------------------------------------------------------------- phonetic (Numba)

@FUZZ
@given(st.lists(nullable, max_size=8))
@example(EDGE + [None])
def test_primary_codes_match_double_metaphone_on_any_text(values):
    codes = primary_codes(values).to_pylist()
    assert codes == [None if v is None else (double_metaphone(v)[0] or None) for v in values]
    assert all(c is None or (c.isascii() and c.isupper() or c.isdigit() or c.isalpha()) for c in codes)


# ------------------------------------------------------------------------------------------- standardize

@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(nullable, min_size=1, max_size=8), st.sampled_from(["mdy", "dmy"]))
@example(EDGE + [None], "mdy")
def test_standardize_every_type_never_fails_and_counts_add_up(values, date_order):
    frame = pd.DataFrame({ftype: pd.Series(values, dtype=object) for ftype in FIELD_TYPES if ftype != "numeric"})
    frame["numeric"] = pd.Series([v if v is None else (v[:20] or None) for v in values], dtype=object)
    out, stats = standardize(frame, [(t, t) for t in FIELD_TYPES], date_order=date_order)
    assert len(out) == len(values)
    for ftype in FIELD_TYPES:
        produced = derived_columns(ftype, ftype)
        assert set(produced) <= set(out.columns), ftype
        main = f"{ftype}__num" if ftype == "numeric" else ftype
        nulls = int(out[main].isna().sum())
        assert stats[ftype]["missing"] + stats[ftype]["unparseable"] == nulls, ftype
        for column in produced:
            for value in out[column].tolist():
                if isinstance(value, float):
                    assert math.isnan(value) or math.isfinite(value), (column, value)
                else:
                    assert value is None or isinstance(value, str), (column, value)
    dates = out["date__ymd"].dropna()
    assert ((dates >= 1_000_101) & (dates <= 99_991_231)).all()


@FUZZ
@given(texts)
@example("Zoë Łukasz Straße Ørsted")
def test_fold_ascii_is_idempotent_and_drops_combining_marks(text):
    folded = fold_ascii(text)
    assert fold_ascii(folded) == folded
    assert not any(unicodedata.combining(ch) for ch in folded)


# ------------------------------------------------------------------------------------- CUDA (simulator)

cuda_sim = pytest.mark.skipif(not SIM, reason="set NUMBA_ENABLE_CUDASIM=1 to run CUDA kernels in the simulator")


@pytest.mark.cuda
@cuda_sim
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.just(""), odd_text, combining), min_size=2, max_size=3), st.integers(0, 2**32 - 1))
@example(["x" * 10_240, "👩🏽‍💻" * 30, ""], 1)
def test_cuda_compare_kernel_matches_cpu_on_any_text(values, seed):
    left, right, _, _, _, _, inputs = _compare_case(values, seed)
    gamma, pattern = compare_pairs(left, right, **inputs, target="cpu")
    d_gamma, d_pattern = compare_pairs(left, right, **inputs, target="cuda")
    np.testing.assert_array_equal(d_gamma.copy_to_host(), gamma)
    np.testing.assert_array_equal(d_pattern.copy_to_host(), pattern)


@pytest.mark.cuda
@cuda_sim
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), odd_text, combining), min_size=1, max_size=3))
@example(["x" * 10_240, None, "😀"])
def test_cuda_embeddings_match_cpu_on_any_text(values):
    column = pd.Series(values, dtype=object)
    cpu = embed_records([column], [1.0], dim=16, q=3, target="cpu")
    gpu = embed_records([column], [1.0], dim=16, q=3, target="cuda")
    np.testing.assert_allclose(gpu, cpu, atol=1e-6)
    _assert_unit_or_zero(gpu, np.array([not v for v in values]))
