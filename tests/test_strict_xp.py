"""Tests of the strict CuPy stand-in itself (tests/strict_xp.py): each checks a refusal, a log or a result."""

import operator

import numpy as np
import pytest
from strict_xp import CupyLimitError, DeviceArray, HostArrayError, StrictXP, Transfer


@pytest.fixture
def xp() -> StrictXP:
    return StrictXP()


def host(value):
    """Host values of a stand-in result (a tuple of them too), without going through the transfer log."""
    if isinstance(value, tuple):
        return tuple(host(v) for v in value)
    return value._a if isinstance(value, DeviceArray) else np.asarray(value)


# --- no implicit conversion, no host arrays, no iteration ---------------------------------------------------

@pytest.mark.parametrize("convert", [np.asarray, lambda d: np.concatenate([d]), lambda d: np.array([d, d]),
                                     np.unique, lambda d: np.where(d > 1)])
def test_implicit_conversion_to_numpy_raises_cupys_error(xp, convert):
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        convert(xp.arange(4))


def test_numpy_ufuncs_refuse_device_arrays(xp):
    with pytest.raises(TypeError, match="does not support ufuncs"):
        np.add(xp.arange(3), 1)


def test_iteration_raises_but_len_works(xp):
    d = xp.arange(3)
    assert len(d) == 3
    for loop in (list, lambda a: [x for x in a], lambda a: 1 in a, tuple):
        with pytest.raises(TypeError, match="iteration over a device array"):
            loop(d)


@pytest.mark.parametrize("misuse", [
    lambda xp, d, h: d + h,
    lambda xp, d, h: h + d,
    lambda xp, d, h: d < h,
    lambda xp, d, h: d[h],
    lambda xp, d, h: d.__setitem__(h, 0),
    lambda xp, d, h: d.__setitem__(slice(0, 3), h),
    lambda xp, d, h: d.__iadd__(h),
    lambda xp, d, h: xp.maximum(d, h),
    lambda xp, d, h: xp.concatenate([d, h]),
    lambda xp, d, h: xp.where(h > 0, d, 0),
    lambda xp, d, h: xp.searchsorted(d, h),
    lambda xp, d, h: d.astype(np.float32).clip(h, 2),
])
def test_host_arrays_in_device_operations_raise(xp, misuse):
    with pytest.raises(HostArrayError, match="host numpy array passed to a device operation; use xp.asarray"):
        misuse(xp, xp.arange(3), np.arange(3))


def test_numpy_and_python_scalars_are_fine(xp):
    d = xp.arange(3)
    assert host(d + np.int64(3)).tolist() == [3, 4, 5]
    assert host(np.float32(2) * d).tolist() == [0, 2, 4]
    assert host(xp.maximum(d, 1.5)).tolist() == [1.5, 1.5, 2]


def test_python_lists_are_refused_where_cupy_refuses_them(xp):
    d = xp.arange(3)
    with pytest.raises(TypeError, match="Unsupported type"):
        _ = d + [1, 2, 3]
    with pytest.raises(TypeError, match="Unsupported type"):
        xp.minimum(d, [1, 2, 3])
    with pytest.raises(CupyLimitError, match="must be a cupy.ndarray"):
        xp.sort([3, 1, 2])
    assert host(d[[2, 0]]).tolist() == [2, 0]  # a list index is fine, as in CuPy


# --- transfers ----------------------------------------------------------------------------------------------

def test_transfers_are_logged_with_their_sizes(xp):
    h = np.arange(12, dtype=np.int32).reshape(3, 4)
    d = xp.asarray(h)
    assert xp.transfers == [Transfer("to_device", 48, (3, 4), np.dtype(np.int32))]
    back = d[1].get()
    assert back.tolist() == [4, 5, 6, 7] and isinstance(back, np.ndarray)
    assert xp.transfers[-1] == Transfer("to_host", 16, (4,), np.dtype(np.int32))
    assert d.T.tolist()[0] == [0, 4, 8] and xp.transfers[-1].kind == "to_host"
    assert int(d[2, 3]) == 11 and xp.transfers[-1] == Transfer("scalar", 4, (), np.dtype(np.int32))
    assert [t.kind for t in xp.host_transfers()] == ["to_host", "to_host", "scalar"]
    assert xp.host_bytes(min_elements=4) == 16 + 48 and xp.host_bytes(min_elements=5) == 48
    assert xp.host_transfers(min_elements=13) == []
    xp.reset_transfers()
    assert xp.transfers == []


def test_asarray_of_a_device_array_copies_nothing(xp):
    d = xp.asarray([1, 2, 3])
    xp.reset_transfers()
    assert xp.asarray(d) is d
    f = xp.asarray(d, dtype=np.dtype(np.float32))
    assert f.dtype == np.float32 and host(f).tolist() == [1.0, 2.0, 3.0]
    assert xp.asarray(d, copy=True) is not d
    assert xp.transfers == []


def test_device_copy_is_independent_of_the_host_array(xp):
    h = np.zeros(3)
    d = xp.asarray(h)
    h[0] = 5
    assert host(d)[0] == 0


def test_backend_to_host_treats_it_as_a_cupy_array(xp):
    from gpucdp.backend import to_host

    d = xp.arange(5, dtype=xp.int64)
    interface = d.__cuda_array_interface__
    assert interface["shape"] == (5,) and interface["typestr"] == "<i8" and interface["version"] == 3
    assert interface["data"][0] == d._a.ctypes.data and interface["strides"] is None
    assert d[::2].__cuda_array_interface__["strides"] == (16,)
    assert to_host(d).tolist() == [0, 1, 2, 3, 4]
    assert xp.transfers[-1] == Transfer("to_host", 40, (5,), np.dtype(np.int64))


# --- scalars ------------------------------------------------------------------------------------------------

def test_scalar_conversions_of_size_one_arrays_are_allowed_and_logged(xp):
    d = xp.asarray([[7]])
    xp.reset_transfers()
    assert int(d) == 7 and float(d) == 7.0 and bool(d) and d.item() == 7
    assert operator.index(xp.int64(3) + xp.zeros((), dtype=xp.int64)) == 3
    assert list(range(xp.asarray(2))) == [0, 1]
    assert [t.kind for t in xp.transfers if t.kind != "to_device"] == ["scalar"] * 6


def test_scalar_conversions_of_larger_arrays_raise_like_numpy(xp):
    d, two = xp.arange(3), xp.asarray(2.0)
    xp.reset_transfers()
    with pytest.raises(TypeError):
        int(d)
    with pytest.raises(TypeError):
        float(d)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(d)
    with pytest.raises(ValueError):
        d.item()
    with pytest.raises(TypeError, match="integer scalar arrays"):
        operator.index(two)
    assert [t.kind for t in xp.transfers] == []


# --- operators, indexing, functions give numpy's results ----------------------------------------------------

BINARY = [operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.mod,
          operator.pow, operator.and_, operator.or_, operator.xor, operator.lshift, operator.rshift,
          operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge]


@pytest.mark.parametrize("op", BINARY, ids=lambda op: op.__name__)
def test_binary_operators_match_numpy(xp, op):
    a, b = np.array([5, 7, 9, 2]), np.array([1, 2, 3, 2])
    da, db = xp.asarray(a), xp.asarray(b)
    np.testing.assert_array_equal(host(op(da, db)), op(a, b))
    np.testing.assert_array_equal(host(op(da, 2)), op(a, 2))
    np.testing.assert_array_equal(host(op(2, db)), op(2, b))


def test_inplace_unary_and_matmul_operators_match_numpy(xp):
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    d = xp.asarray(a)
    same = d
    d += 1
    d *= xp.asarray(np.full((2, 3), 2.0))
    d -= 0.5
    assert d is same
    np.testing.assert_array_equal(host(d), (a + 1) * 2 - 0.5)
    np.testing.assert_array_equal(host(-d), -host(d))
    np.testing.assert_array_equal(host(abs(-d)), host(d))
    np.testing.assert_array_equal(host(~xp.asarray([True, False])), [False, True])
    np.testing.assert_array_equal(host(d @ d.T), host(d) @ host(d).T)


@pytest.mark.parametrize("key", [1, -1, slice(1, None), slice(None, None, -1), Ellipsis, None, (0, 1),
                                 (slice(None), 2), (Ellipsis, None), (None, slice(0, 1), 0), [0, 2]],
                         ids=repr)
def test_indexing_matches_numpy(xp, key):
    a = np.arange(12).reshape(3, 4)
    result = xp.asarray(a)[key]
    assert isinstance(result, DeviceArray)  # a 0-d array where numpy gives a scalar, as in CuPy
    np.testing.assert_array_equal(host(result), a[key])


def test_device_array_indices_and_values(xp):
    a = np.arange(10) * 10
    d = xp.asarray(a)
    index, mask = xp.asarray([3, 1]), d > 50
    np.testing.assert_array_equal(host(d[index]), a[[3, 1]])
    np.testing.assert_array_equal(host(d[mask]), a[a > 50])
    np.testing.assert_array_equal(host(d[xp.asarray(1):xp.asarray(3)]), a[1:3])
    d[index] = xp.asarray([-3, -1])
    d[mask] = 0
    d[0] = xp.asarray(7)
    a[[3, 1]], a[a > 50], a[0] = [-3, -1], 0, 7
    np.testing.assert_array_equal(host(d), a)


CASES = {
    "cumsum": lambda m, a: m.cumsum(a),
    "sort": lambda m, a: m.sort(a),
    "argsort": lambda m, a: m.argsort(a),
    "searchsorted": lambda m, a: m.searchsorted(m.sort(a), a, side="right"),
    "unique": lambda m, a: m.unique(a, return_index=True, return_inverse=True, return_counts=True),
    "bincount": lambda m, a: m.bincount(a, minlength=12),
    "bincount_weights": lambda m, a: m.bincount(a, weights=a * 0.5),
    "diff": lambda m, a: m.diff(a, prepend=a[:1]),
    "flatnonzero": lambda m, a: m.flatnonzero(a > 3),
    "nonzero": lambda m, a: m.nonzero(a.reshape(2, 4)),
    "count_nonzero": lambda m, a: m.count_nonzero(a),
    "where": lambda m, a: m.where(a > 3, a, -1),
    "clip": lambda m, a: m.clip(a, 2, 5),
    "isin": lambda m, a: m.isin(a, a[:3]),
    "take": lambda m, a: m.take(a, m.argsort(a)),
    "take_along_axis": lambda m, a: m.take_along_axis(a.reshape(2, 4), m.argsort(a.reshape(2, 4), axis=1), 1),
    "argmax": lambda m, a: m.argmax(a.reshape(2, 4), axis=1),
    "lexsort": lambda m, a: m.lexsort(m.stack([a, a % 3])),
    "repeat": lambda m, a: m.repeat(a, 2),
    "repeat_list": lambda m, a: m.repeat(a[:3], [1, 0, 2]),
    "concatenate": lambda m, a: m.concatenate([a, a[:2]]),
    "stack": lambda m, a: m.stack([a, a], axis=1),
    "broadcast_to": lambda m, a: m.broadcast_to(a[:, None], (8, 3)),
    "einsum": lambda m, a: m.einsum("ij,ij->i", a.reshape(2, 4), a.reshape(2, 4)),
    "matmul": lambda m, a: m.matmul(a.reshape(2, 4), a.reshape(4, 2)),
    "norm": lambda m, a: m.linalg.norm(a.reshape(2, 4).astype(m.float64), axis=1, keepdims=True),
    "reductions": lambda m, a: (m.sum(a), m.mean(a), m.any(a > 8), m.all(a >= 0), a.max(), a.min()),
    "ufuncs": lambda m, a: (m.minimum(a, 3), m.fmax(a, 2.5), m.log1p(a), m.sqrt(a), m.exp(-a), m.abs(-a),
                            m.isnan(m.log(a + 1.0)), m.isfinite(1.0 / (a + 1)),
                            m.logical_and(a > 1, a < 5), m.logical_not(a > 1)),
    "creation": lambda m, a: (m.zeros(3, dtype=m.int32), m.ones((2, 2)), m.full(3, 7), m.arange(2, 11, 3),
                              m.zeros_like(a), m.full_like(a, 4), m.empty_like(a).shape),
    "array_equal": lambda m, a: (m.array_equal(a, a), m.array_equal(a, a + 1)),
    "methods": lambda m, a: (a.reshape(4, 2).T.ravel(), a.astype(m.float32).view(m.int32), a.copy(),
                             a.cumsum(), a.argmax(), a.nonzero(), a.take(a[:2]),
                             a.sum(axis=0, keepdims=True)),
}


@pytest.mark.parametrize("name", CASES)
def test_functions_give_numpys_results(xp, name):
    a = np.array([5, 1, 4, 1, 9, 2, 6, 0])
    expected, got = CASES[name](np, a), CASES[name](xp, xp.asarray(a))
    expected, got_host = ((x if isinstance(x, tuple) else (x,)) for x in (expected, host(got)))
    for want, have in zip(expected, got_host, strict=True):
        np.testing.assert_allclose(np.asarray(have), np.asarray(want))
    assert isinstance(got, (DeviceArray, tuple))


def test_argpartition_is_a_stable_full_argsort_as_in_cupy(xp):
    a = np.array([3, 1, 3, 0, 1, 2])
    got = host(xp.argpartition(xp.asarray(a), 2))
    np.testing.assert_array_equal(got, np.argsort(a, kind="stable"))
    assert host(xp.asarray(a).argpartition(1)).tolist() == got.tolist()


def test_argsort_is_stable_as_in_cupy(xp):
    a = np.zeros(64, dtype=np.int8)
    np.testing.assert_array_equal(host(xp.argsort(xp.asarray(a))), np.arange(64))
    d = xp.asarray(a)
    assert host(d.argsort()).tolist() == list(range(64))


def test_out_arguments_write_into_the_device_array(xp):
    d, out = xp.arange(4), xp.zeros(4, dtype=xp.int64)
    assert xp.cumsum(d, out=out) is out and host(out).tolist() == [0, 1, 3, 6]
    assert xp.maximum(d, 2, out=out) is out and host(out).tolist() == [2, 2, 2, 3]


# --- CuPy's restrictions ------------------------------------------------------------------------------------

def test_repeat_refuses_device_repeats_before_cupy_14_1(xp):
    d = xp.arange(3)
    with pytest.raises(CupyLimitError, match="cannot be specified as `repeats`") as info:
        xp.repeat(d, xp.asarray([1, 2, 0]))
    assert isinstance(info.value, ValueError)  # what CuPy raises
    with pytest.raises(CupyLimitError):
        d.repeat(xp.asarray([1, 2, 0]))
    newer = StrictXP(cupy_version=(14, 1))
    assert host(newer.repeat(newer.arange(3), newer.asarray([1, 2, 0]))).tolist() == [0, 1, 1]


@pytest.mark.parametrize("call", [
    lambda xp, d: xp.argsort(d, kind="quicksort"),
    lambda xp, d: xp.sort(d, kind="mergesort"),
    lambda xp, d: d.argsort(kind="heapsort"),
    lambda xp, d: d.sort(kind="quicksort"),
    lambda xp, d: xp.argsort(d, order="x"),
    lambda xp, d: xp.argpartition(d, 1, kind="introselect"),
    lambda xp, d: xp.lexsort((d, d)),
    lambda xp, d: xp.lexsort(d),
    lambda xp, d: xp.unique(d, sorted=False),
    lambda xp, d: xp.isin(d, d, kind="table"),
    lambda xp, d: xp.einsum("i->i", d, out=d),
    lambda xp, d: xp.take(d, xp.asarray([0]), mode="clip"),
    lambda xp, d: xp.take_along_axis(d, d),
    lambda xp, d: xp.bincount(d.astype(xp.float64)),
    lambda xp, d: xp.bincount(d.reshape(2, 2)),
    lambda xp, d: xp.zeros_like(d, subok=True),
    lambda xp, d: xp.concatenate([d[0], d[1]]),
    lambda xp, d: xp.count_nonzero(d, keepdims=True),
    lambda xp, d: xp.unique(d.reshape(2, 2), axis=0),
    lambda xp, d: xp.searchsorted(d, 2.5),
    lambda xp, d: d.take(xp.asarray([0]), mode="clip"),
    lambda xp, d: d.max(initial=0),
    lambda xp, d: d.sum(where=d > 1),
], ids=["argsort-kind", "sort-kind", "method-argsort-kind", "method-sort-kind", "argsort-order",
        "argpartition-kind", "lexsort-tuple", "lexsort-1d", "unique-sorted", "isin-kind", "einsum-out",
        "take-mode", "take_along_axis-no-axis", "bincount-float", "bincount-2d", "zeros_like-subok",
        "concatenate-0d", "count_nonzero-keepdims", "unique-axis", "searchsorted-scalar", "method-take-mode",
        "method-max-initial", "method-sum-where"])
def test_arguments_cupy_refuses_raise(xp, call):
    with pytest.raises(CupyLimitError):
        call(xp, xp.asarray([3, 1, 2, 1]))


def test_an_empty_bincount_raises_as_in_cupy_13(xp):
    with pytest.raises(ValueError, match="zero-size"):
        xp.bincount(xp.asarray(np.zeros(0, dtype=np.int64)), minlength=4)


def test_ufunc_at_exists_only_where_cupy_has_it_with_its_dtypes(xp):
    index = xp.asarray([0, 2, 0])
    low = xp.full(3, 10, dtype=xp.int32)
    xp.minimum.at(low, index, xp.asarray([4, 8, 2], dtype=xp.int32))
    assert host(low).tolist() == [2, 10, 8]
    total = xp.zeros(3)
    xp.add.at(total, index, 1.5)
    assert host(total).tolist() == [3.0, 0.0, 1.5]
    with pytest.raises(CupyLimitError, match="maximum.at only supports int32"):
        xp.maximum.at(xp.zeros(3, dtype=xp.int64), index, 1)
    with pytest.raises(CupyLimitError, match="add.at only supports"):
        xp.add.at(xp.zeros(3, dtype=xp.int64), index, 1)
    with pytest.raises(NotImplementedError, match="`cupy_fmax.at` is not supported yet"):
        xp.fmax.at(xp.zeros(3), index, 1.0)
    xp.maximum.at(mask_target := xp.zeros(3, dtype=xp.int64), xp.asarray([True, False, True]), 5)
    assert host(mask_target).tolist() == [5, 0, 5]  # a boolean mask takes another path, without the limit


def test_only_checked_names_exist(xp):
    assert isinstance(xp.arange(2), xp.ndarray)
    for missing in ("genfromtxt", "asfarray", "lib"):
        assert not hasattr(xp, missing)
    with pytest.raises(AttributeError):
        _ = xp.arange(2).ctypes
    assert xp.sort.__doc__.startswith("cupy.sort(a, axis=-1, kind=None)")


# --- memory -------------------------------------------------------------------------------------------------

def test_pool_reports_the_peak_of_live_arrays_until_blocks_are_freed():
    xp = StrictXP(device_bytes=10_000)
    pool = xp.get_default_memory_pool()
    a = xp.zeros(100, dtype=xp.int64)
    b = xp.zeros(200, dtype=xp.float32)
    view = a[10:20].reshape(2, 5)  # views hold their base's memory and add nothing
    assert pool.used_bytes() == pool.total_bytes() == 1600
    assert xp.cuda.runtime.memGetInfo() == (10_000 - 1600, 10_000)
    del a
    assert pool.used_bytes() == 1600  # the view keeps the buffer alive
    del view
    assert pool.used_bytes() == 800 and pool.total_bytes() == 1600
    pool.free_all_blocks()
    assert pool.total_bytes() == 800
    del b
    assert pool.used_bytes() == 0 and xp.cuda.runtime.memGetInfo() == (10_000, 10_000)
    xp.cuda.Device().synchronize()


def test_device_memory_stage_peaks_read_the_pool():
    from gpucdp.gpu import DeviceMemory

    xp = StrictXP(device_bytes=1 << 20)
    memory = DeviceMemory(xp)
    keep = xp.zeros(1000, dtype=xp.float64)
    with memory.stage("compare"):
        scratch = xp.ones(4000, dtype=xp.float32)
        del scratch
    assert memory.on_device and memory.peaks["compare"] == 8000 + 16000
    assert memory.info() == ((1 << 20) - 8000, 1 << 20)
    assert keep.nbytes == 8000
    # a check inside a stage frees the pool's blocks: the stage's peak so far is kept, not lost
    with memory.stage("cluster"):
        scratch = xp.ones(4000, dtype=xp.float32)
        del scratch
        memory.check("cluster", 100, "never printed")
        small = xp.ones(10, dtype=xp.float32)
    assert memory.peaks["cluster"] == 8000 + 16000 and small.nbytes == 40


def test_numba_functions_refuse_device_arrays(xp):
    numba = pytest.importorskip("numba")

    @numba.njit
    def total(values):
        return values.sum()

    assert total(np.arange(3)) == 3
    with pytest.raises(numba.core.errors.TypingError, match="Cannot determine Numba type"):
        total(xp.arange(3))
