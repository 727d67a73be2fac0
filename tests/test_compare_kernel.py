"""The CPU comparison kernel against ``oracles.compare_oracle``, a pure-Python statement of its semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import oracles
from gpucdp.kernels import compare
from gpucdp.kernels.compare import (
    DAMERAU,
    DATE_DAYS,
    DATE_SWAP,
    EXACT,
    JARO_WINKLER,
    LEVENSHTEIN,
    METHODS,
    NUMERIC_REL,
    STRING_METHODS,
    compare_pairs,
    decode_patterns,
    pattern_strides,
)

NAN = float("nan")


def run(pairs, strings, nums, levels, n):
    inputs = oracles.to_kernel_inputs(strings, nums, levels, n)
    left = np.array([p[0] for p in pairs], dtype=np.int64)
    right = np.array([p[1] for p in pairs], dtype=np.int64)
    return compare_pairs(left, right, **inputs), inputs["n_levels"]


def test_method_codes_match_the_oracle():
    assert METHODS == {
        "exact": 0, "jaro_winkler": 1, "jaro": 2, "levenshtein": 3, "damerau": 4, "jaccard": 5,
        "date_exact": 6, "date_swap": 7, "date_days": 8, "numeric_abs": 9, "numeric_rel": 10,
    }  # fmt: skip
    assert STRING_METHODS == oracles.STRING_METHODS


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.integers(0, 40))
def test_kernel_matches_oracle_on_random_tables(seed, n_records, n_pairs):
    pairs, strings, nums, levels = oracles.random_case(np.random.default_rng(seed), n_records, n_pairs)
    (gamma, pattern), n_levels = run(pairs, strings, nums, levels, n_records)
    want_gamma, want_pattern = oracles.compare_oracle(pairs, strings, nums, levels)
    assert gamma.dtype == np.int8 and gamma.shape == (n_pairs, len(levels))
    assert pattern.dtype == np.int32 and pattern.shape == (n_pairs,)
    np.testing.assert_array_equal(gamma, want_gamma)
    np.testing.assert_array_equal(pattern, want_pattern)
    np.testing.assert_array_equal(decode_patterns(pattern, n_levels), gamma)


def test_many_blocks_match_oracle():
    # More pairs than one CPU block, so several prange blocks (and their scratch rows) are used.
    n_pairs = 2 * compare._CPU_BLOCK + 17
    pairs, strings, nums, levels = oracles.random_case(np.random.default_rng(7), 30, n_pairs)
    (gamma, pattern), _ = run(pairs, strings, nums, levels, 30)
    want_gamma, want_pattern = oracles.compare_oracle(pairs, strings, nums, levels)
    np.testing.assert_array_equal(gamma, want_gamma)
    np.testing.assert_array_equal(pattern, want_pattern)


NAMES = [b"john", b"jon", b"", b"johnathan", b"jhon", b"jonh"]
DOBS = [19850403.0, 19850304.0, NAN, 19850405.0, 19850403.0, NAN]


def test_levels_nulls_and_reuse():
    levels = [
        [(EXACT, 0, 0.0), (JARO_WINKLER, 0, 0.95), (JARO_WINKLER, 0, 0.88)],  # JW computed once
        [(LEVENSHTEIN, 0, 1.0), (LEVENSHTEIN, 0, 2.0)],  # bound taken from the looser level
        [(DATE_SWAP, 0, 0.0), (DATE_DAYS, 0, 3.0)],
        [(DAMERAU, 0, 1.0), (DATE_DAYS, 0, 0.0)],  # a string and a numeric column in one comparison
    ]
    pairs = [(0, 1), (0, 2), (2, 5), (0, 3), (0, 4), (4, 5)]
    (gamma, pattern), n_levels = run(pairs, [NAMES], [DOBS], levels, len(NAMES))
    expected = np.array(
        [
            # john/jon: JW 0.93 -> 1; lev 1 -> 2; dates swapped -> 2; damerau 1 -> 2
            [1, 2, 2, 2],
            # john/NULL, dob/NULL: every column NULL on one side -> -1
            [-1, -1, -1, -1],
            [-1, -1, -1, -1],
            # john/johnathan: JW 0.89 -> 1; lev 5 -> 0; 2 days apart -> 1; damerau 5, dates differ -> 0
            [1, 0, 1, 0],
            # john/jhon, same dob: damerau 1 (transposition); dates equal -> swap no, days 0 -> 1
            [1, 1, 1, 2],
            # jhon/jonh, dob NULL on one side: JW 0.85 -> 0; lev 2 -> 1; dates NULL -> -1; damerau 2 -> 0
            [0, 1, -1, 0],
        ],
        dtype=np.int8,
    )
    want_gamma, want_pattern = oracles.compare_oracle(pairs, [NAMES], [DOBS], levels)
    np.testing.assert_array_equal(want_gamma, expected)  # the oracle agrees with the hand-worked table
    np.testing.assert_array_equal(gamma, expected)
    np.testing.assert_array_equal(pattern, want_pattern)
    np.testing.assert_array_equal(decode_patterns(pattern, n_levels), expected)


def test_numeric_relative_tolerance():
    levels = [[(NUMERIC_REL, 0, 0.1)]]
    nums = [[100.0, 109.0, 0.0, 0.0, -100.0]]
    pairs = [(0, 1), (2, 3), (0, 4)]
    (gamma, _), _ = run(pairs, [[b"a"] * 5], nums, levels, 5)
    np.testing.assert_array_equal(gamma[:, 0], [1, 1, 0])


def test_pattern_strides_and_decode():
    n_levels = np.array([3, 1, 2], dtype=np.int32)
    np.testing.assert_array_equal(pattern_strides(n_levels), [1, 5, 15])
    gamma = np.array([[-1, -1, -1], [3, 1, 2], [0, -1, 1]], dtype=np.int8)
    pattern = ((gamma.astype(np.int64) + 1) * pattern_strides(n_levels)).sum(axis=1)
    np.testing.assert_array_equal(pattern, [0, 4 + 2 * 5 + 3 * 15, 1 + 0 + 2 * 15])
    np.testing.assert_array_equal(decode_patterns(pattern, n_levels), gamma)


def test_pattern_space_must_fit_int32():
    n = 2
    inputs = oracles.to_kernel_inputs([[b"a", b"b"]], [[1.0, 2.0]], [[(EXACT, 0, 0.0)] * 4] * 12, n)
    assert math.prod([6] * 12) > 2**31
    with pytest.raises(ValueError, match="int32"):
        compare_pairs(np.zeros(1, np.int64), np.ones(1, np.int64), **inputs)


def test_empty_and_bad_target():
    inputs = oracles.to_kernel_inputs([[b"a", b"b"]], [[1.0, 2.0]], [[(EXACT, 0, 0.0)]], 2)
    gamma, pattern = compare_pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), **inputs)
    assert gamma.shape == (0, 1) and pattern.shape == (0,)
    with pytest.raises(ValueError, match="target"):
        compare_pairs(np.zeros(1, np.int64), np.ones(1, np.int64), **inputs, target="tpu")
