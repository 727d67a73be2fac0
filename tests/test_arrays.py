"""Array helpers: the host's counting sort gives numpy's stable argsort exactly."""

import numpy as np
import pytest

from gpucdp.arrays import counting_argsort, stable_argsort


@pytest.mark.parametrize("n, bound", [(0, 1), (1, 1), (1_000, 3), (5_000, 5_000), (5_000, 19_999)])
def test_counting_argsort_is_the_stable_argsort(n, bound):
    keys = np.random.default_rng(n + bound).integers(0, bound, n).astype(np.int64)
    np.testing.assert_array_equal(counting_argsort(keys, bound), np.argsort(keys, kind="stable"))


@pytest.mark.parametrize("high", [10, 10**12])  # dense (counting sort) and sparse (numpy) keys
def test_stable_argsort_takes_either_path_with_the_same_order(high):
    keys = np.random.default_rng(1).integers(0, high, 2_000)
    np.testing.assert_array_equal(stable_argsort(keys), np.argsort(keys, kind="stable"))
    if high < 2**31:
        np.testing.assert_array_equal(stable_argsort(keys.astype(np.int32)), np.argsort(keys, kind="stable"))
    assert stable_argsort(np.zeros(0, dtype=np.int64)).size == 0
