"""Array helpers: the host's counting sort gives numpy's stable argsort exactly."""

import numpy as np
import pytest
from strict_xp import StrictXP

from gpucdp.arrays import counting_argsort, dense_unique, stable_argsort


@pytest.mark.parametrize("n, bound", [(0, 1), (1, 1), (1_000, 3), (5_000, 5_000), (5_000, 19_999)])
def test_counting_argsort_is_the_stable_argsort(n, bound):
    keys = np.random.default_rng(n + bound).integers(0, bound, n).astype(np.int64)
    np.testing.assert_array_equal(counting_argsort(keys, bound), np.argsort(keys, kind="stable"))


@pytest.mark.parametrize("high", [10, 10**5, 10**12, 2**62])  # dense (counting sort) and sparse (radix) keys
def test_stable_argsort_takes_either_path_with_the_same_order(high):
    keys = np.random.default_rng(1).integers(0, high, 2_000)
    keys[:300] = keys[300:600]  # ties, whose order is the input's
    np.testing.assert_array_equal(stable_argsort(keys), np.argsort(keys, kind="stable"))
    if high < 2**31:
        np.testing.assert_array_equal(stable_argsort(keys.astype(np.int32)), np.argsort(keys, kind="stable"))
    assert stable_argsort(np.zeros(0, dtype=np.int64)).size == 0


@pytest.mark.parametrize("n", [0, 1, 2_000])
@pytest.mark.parametrize("device", [False, True])
def test_dense_unique_is_numpys_unique_on_either_side(n, device):
    values = np.random.default_rng(n).integers(0, 50, n)
    xp = StrictXP() if device else np  # the CuPy stand-in: an empty bincount raises there, as in CuPy 13
    uniq, inverse, counts = dense_unique(xp.asarray(values), 50, xp)
    host = (lambda a: a.get()) if device else np.asarray
    want = np.unique(values, return_inverse=True, return_counts=True)
    for got, expected in zip((uniq, inverse, counts), want):
        np.testing.assert_array_equal(host(got), expected)
    assert host(inverse).dtype == np.int32


def test_row_hashes_follow_the_values_not_their_layout():
    import pyarrow as pa

    from gpucdp.arrays import row_hashes

    first = ["ab", "a", None, "", "ab", "é", "x" * 300]
    second = ["c", "bc", "", None, "c", "é", "y"]
    plain = row_hashes([pa.array(first, pa.string()), pa.array(second, pa.large_string())])
    # chunked differently, sliced (an Arrow offset into the buffers), the other string type: the same hashes
    chunked = pa.chunked_array([pa.array(first[:2], pa.large_string()), pa.array(first[2:], pa.large_string())])
    sliced = pa.array(["pad"] + second, pa.string()).slice(1)
    np.testing.assert_array_equal(row_hashes([chunked, sliced]), plain)
    # equal rows hash equal; a split moved between columns, null against "", and a long value do not collide
    assert plain[0] == plain[4]
    assert len({int(h) for h in plain}) == len(plain) - 1
    assert row_hashes([pa.array([], pa.string())]).shape == (0,)


def test_row_hashes_keep_distinct_rows_apart_at_scale():
    import pyarrow as pa

    from gpucdp.arrays import row_hashes

    ids = pa.array([f"id-{i}" for i in range(200_000)], pa.large_string())
    hashes = row_hashes([pa.array(["crm"] * len(ids)), ids])
    assert np.unique(hashes).size == len(ids)


@pytest.mark.parametrize("device", [False, True])
def test_row_codes_group_equal_rows_exactly(device):
    from gpucdp.block import _row_codes

    rng = np.random.default_rng(3)
    rows = rng.integers(0, 3, size=(500, 4)).astype(np.uint32)  # many equal rows, some differing in one word
    xp = StrictXP() if device else np
    codes = _row_codes(xp.asarray(rows), xp)
    codes = codes.get() if device else codes
    _, want = np.unique(rows, axis=0, return_inverse=True)
    np.testing.assert_array_equal(codes, want.ravel())  # ranks in lexicographic order, as numpy's
    assert _row_codes(xp.asarray(rows[:0]), xp).shape == (0,)
