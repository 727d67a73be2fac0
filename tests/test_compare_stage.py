import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from gpucdp.arrays import factorize
from gpucdp.compare import build_tables, compare_in_chunks, locality_order, permute, prepare_columns
from gpucdp.errors import SettingsError
from gpucdp.settings import ComparisonSettings


def _comparisons():
    return [
        ComparisonSettings.model_validate({"name": "name", "levels": [
            {"method": "exact", "column": "name"}, {"method": "jaro_winkler", "column": "name", "threshold": 0.8}]}),
        ComparisonSettings.model_validate({"name": "dob", "levels": [
            {"method": "date_exact", "column": "dob__ymd"}, {"method": "date_days", "column": "dob__ymd",
                                                              "threshold": 30}]}),
        ComparisonSettings.model_validate({"name": "city", "levels": [{"method": "exact", "column": "city"}]}),
    ]


def _frame(n, seed=0):
    rng = np.random.default_rng(seed)
    names = np.array(["ann", "anne", "bob", "rob", "robert", "zoe", None], dtype=object)
    cities = np.array(["paris", "rome", None], dtype=object)
    dob = rng.choice([19800101.0, 19800115.0, 19900101.0, np.nan], n)
    return pd.DataFrame({"name": pd.Series(rng.choice(names, n), dtype="str"),
                         "city": pd.Series(rng.choice(cities, n), dtype="str"), "dob__ymd": dob})


def test_layout_does_not_change_patterns():
    frame = _frame(500)
    comps = _comparisons()
    columns = prepare_columns(frame, comps)
    tables = build_tables(comps, columns)
    rng = np.random.default_rng(1)
    left, right = rng.integers(0, 500, 3000), rng.integers(0, 500, 3000)
    plain = compare_in_chunks(left, right, columns, tables, chunk_size=700)
    order = locality_order(frame, ["name", "city"])
    laid_out = compare_in_chunks(left, right, columns, tables, chunk_size=700, order=order)
    np.testing.assert_array_equal(plain, laid_out)
    # the layout groups equal keys together, nulls last
    names = frame["name"].to_numpy(dtype=object)[order]
    present = [x for x in names if isinstance(x, str)]
    runs = [x for i, x in enumerate(present) if i == 0 or present[i - 1] != x]
    assert len(runs) == len(set(present))  # each value in one run
    assert all(not isinstance(x, str) for x in names[len(present):])


def test_permute_moves_strings_and_numbers():
    frame = _frame(50, seed=3)
    columns = prepare_columns(frame, _comparisons())
    order = np.random.default_rng(2).permutation(50)
    moved = permute(columns, order)
    for s, name in enumerate(columns.string_names):
        for k, i in enumerate(order):
            a = moved.chars[moved.offsets[k, s]:moved.offsets[k, s + 1]].tobytes()
            b = columns.chars[columns.offsets[i, s]:columns.offsets[i, s + 1]].tobytes()
            assert a == b
            assert a == _packed_value(frame[name].iloc[i])
    np.testing.assert_array_equal(moved.nums, columns.nums[order])
    # record by record: each record's strings follow the one before's
    np.testing.assert_array_equal(moved.offsets[1:, 0], moved.offsets[:-1, -1])
    assert moved.offsets[0, 0] == 0 and moved.offsets[-1, -1] == moved.chars.shape[0]


def _packed_value(value):
    return b"" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).encode()


@pytest.mark.parametrize("kind", ["str", "object", "chunked large_string"])
def test_packing_into_a_layout_equals_permuting_the_packed_columns(kind):
    """``prepare_columns(order=...)`` lays each column out from its own buffers; it must give exactly what
    packing in input order and then permuting gives, whatever the columns hold (nulls, empty strings, multi-byte
    characters; Arrow-backed, Python objects, or several chunks), and tell the memory check the exact size."""
    n = 400
    rng = np.random.default_rng(7)
    frame = _frame(n, seed=5)
    values = np.array(["ann", "", "zoë", "日本", "a" * 70, None], dtype=object)
    names = rng.choice(values, n)
    if kind == "str":
        frame["name"] = pd.Series(names, dtype="str")
    elif kind == "object":
        frame["name"] = pd.Series(names, dtype=object)
    else:
        chunked = pa.chunked_array([pa.array(list(names[:150]), pa.large_string()),
                                    pa.array(list(names[150:]), pa.large_string())])
        frame["name"] = pd.Series(pd.arrays.ArrowExtensionArray(chunked))
    comps = _comparisons()
    order = rng.permutation(n).astype(np.int64)
    sizes = []
    laid_out = prepare_columns(frame, comps, order=order, before_packing=lambda *b: sizes.append(b))
    want = permute(prepare_columns(frame, comps), order)
    np.testing.assert_array_equal(laid_out.chars, want.chars)
    np.testing.assert_array_equal(laid_out.offsets, want.offsets)
    np.testing.assert_array_equal(laid_out.nums, want.nums)
    assert laid_out.string_names == want.string_names and laid_out.numeric_names == want.numeric_names
    s = laid_out.string_names.index("name")
    for k, i in enumerate(order):
        assert laid_out.chars[laid_out.offsets[k, s]:laid_out.offsets[k, s + 1]].tobytes() == _packed_value(names[i])
    packed = want.chars.nbytes + want.offsets.nbytes + want.nums.nbytes
    largest = int((want.offsets[:, 1:] - want.offsets[:, :-1]).sum(axis=0).max())
    assert sizes == [(packed, largest + 4 * (n + 1) * 8)]  # the column as read, and four int64s a record


def test_method_and_column_kinds_must_agree():
    frame = _frame(10)
    bad = [ComparisonSettings.model_validate({"name": "x", "levels": [{"method": "date_exact", "column": "name"}]})]
    with pytest.raises(SettingsError, match="cannot compare the string column 'name'"):
        prepare_columns(frame, bad)


def test_locality_order_is_a_stable_lexsort_with_nulls_last():
    rng = np.random.default_rng(5)
    n = 5_000
    a = pd.Series(rng.choice(["x", "y", "z", None, ""], n), dtype="str")
    b = pd.Series(rng.choice(["p", "q", None], n), dtype="str")
    frame = pd.DataFrame({"a": a, "b": b})
    got = locality_order(frame, ["a", "b", "missing"])
    codes = [factorize(frame[c])[0] for c in ("a", "b")]
    big = np.iinfo(np.int64).max
    want = np.lexsort([np.where(codes[1] < 0, big, codes[1]), np.where(codes[0] < 0, big, codes[0])])
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int64
    assert locality_order(frame, ["missing"]) is None
