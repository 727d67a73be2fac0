"""The string layout kernel (gpucdp.kernels.layout): CPU and CUDA twins against packing the permuted records
in plain Python; and the comparison kernel writing into arrays the caller's module allocated."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
from cuda_support import SIMULATOR, compile_ptx, real_gpu, simulate

from gpucdp.compare import PreparedColumns, _lay_out, permute
from gpucdp.embed import column_buffers

ALPHABET = ["a", "b", "é", "z", "0", " ", "ß", "日"]


def random_columns(rng: np.random.Generator, n_records: int, n_columns: int) -> list[list[str | None]]:
    """String columns with nulls, empty strings, multi-byte characters and a few long values."""
    columns = []
    for _ in range(n_columns):
        values: list[str | None] = []
        for _ in range(n_records):
            r = rng.random()
            if r < 0.1:
                values.append(None)
            elif r < 0.15:
                values.append("")
            else:
                length = int(rng.integers(1, 90 if r > 0.95 else 12))
                values.append("".join(rng.choice(ALPHABET, length)))
        columns.append(values)
    return columns


def pack_records(columns: list[list[str | None]]) -> tuple[np.ndarray, np.ndarray]:
    """The oracle: strings packed record by record in plain Python (chars, offsets int64[n, S + 1])."""
    n = len(columns[0])
    offsets = np.zeros((n, len(columns) + 1), dtype=np.int64)
    pieces = []
    start = 0
    for i in range(n):
        for s, column in enumerate(columns):
            offsets[i, s] = start
            value = (column[i] or "").encode()
            pieces.append(value)
            start += len(value)
        offsets[i, len(columns)] = start
    return np.frombuffer(b"".join(pieces), dtype=np.uint8), offsets


def case(seed: int, n_records: int, n_columns: int = 3):
    """(packed columns, a permutation, the oracle: the permuted strings packed afresh, and the columns)."""
    rng = np.random.default_rng(seed)
    columns = random_columns(rng, n_records, n_columns)
    order = rng.permutation(n_records).astype(np.int64)
    chars, offsets = pack_records(columns)
    want_chars, want_offsets = pack_records([[c[i] for i in order] for c in columns])
    nums = rng.random((n_records, 2))
    packed = PreparedColumns(chars, offsets, nums, [f"s{i}" for i in range(n_columns)], ["x", "y"])
    return packed, order, (want_chars, want_offsets, nums[order]), columns


@pytest.mark.parametrize("seed, n_records", [(0, 1), (1, 2), (2, 300), (3, 2_000)])
def test_cpu_layout_equals_packing_the_permuted_strings(seed, n_records):
    packed, order, (want_chars, want_offsets, want_nums), columns = case(seed, n_records)
    got = permute(packed, order)
    np.testing.assert_array_equal(got.chars, want_chars)
    np.testing.assert_array_equal(got.offsets, want_offsets)
    np.testing.assert_array_equal(got.nums, want_nums)
    # and packing the columns straight into the layout (prepare_columns' path) gives the same
    frame = pd.DataFrame({f"s{i}": pd.Series(c, dtype=object) for i, c in enumerate(columns)})
    laid_out, _ = _lay_out([sum(len((v or "").encode()) for v in c) for c in columns],
                           lambda s: column_buffers(frame[f"s{s}"], s), order, n_records, "cpu", np)
    np.testing.assert_array_equal(laid_out, want_chars)
    np.testing.assert_array_equal(_, want_offsets)


def check_cuda_layout_matches(n_records: int, seed: int = 0) -> None:
    """The CUDA twin moving what the device paths move (runs on the simulator or a GPU): each column's strings
    to their places in the record layout (``_lay_out``), and whole records (``permute``)."""
    from gpucdp.kernels.layout import layout_cuda
    from numba import cuda

    packed, order, (want_chars, want_offsets, _), columns = case(seed, n_records)
    position = np.empty_like(order)
    position[order] = np.arange(n_records)
    threads = 32
    blocks = (n_records + threads - 1) // threads
    out = cuda.device_array(want_chars.shape[0], dtype=np.uint8)
    for s, column in enumerate(columns):  # as _lay_out launches it: a column at a time
        column_chars, column_offsets = column_buffers(pd.Series(column, dtype=object), s)
        dst = want_offsets[:, s][position]
        layout_cuda[blocks, threads](cuda.to_device(np.ascontiguousarray(column_chars)),
                                     cuda.to_device(np.ascontiguousarray(column_offsets)), cuda.to_device(dst), out)
    np.testing.assert_array_equal(out.copy_to_host(), want_chars)
    records = np.append(packed.offsets[:, 0], packed.offsets[-1, -1])  # each record's bytes as one string
    base = np.zeros(n_records + 1, dtype=np.int64)
    base[1:] = np.cumsum(np.diff(records)[order])
    out = cuda.device_array(want_chars.shape[0], dtype=np.uint8)
    layout_cuda[blocks, threads](cuda.to_device(packed.chars), cuda.to_device(records),
                                 cuda.to_device(base[:-1][position]), out)
    np.testing.assert_array_equal(out.copy_to_host(), want_chars)


def check_compare_outputs_in_callers_arrays() -> None:
    """With ``xp``, the comparison kernel writes into arrays ``xp.empty`` made, and returns those."""
    from gpucdp.kernels.compare import METHODS, compare_pairs
    from numba import cuda

    made = []

    def empty(shape, dtype):
        made.append(cuda.device_array(shape, dtype=dtype))
        return made[-1]

    chars, offsets = pack_records([["ann", "anne", "bob", None]])
    args = (np.array([0, 0, 1], dtype=np.int64), np.array([1, 2, 3], dtype=np.int64), chars, offsets,
            np.zeros((4, 0)), np.array([[METHODS["exact"], METHODS["jaro_winkler"]]], dtype=np.int8),
            np.zeros((1, 2), dtype=np.int32), np.array([[0.0, 0.9]]), np.array([2], dtype=np.int32))
    gamma, pattern = compare_pairs(*args, target="cuda", xp=types.SimpleNamespace(empty=empty))
    assert gamma is made[0] and pattern is made[1]
    want_gamma, want_pattern = compare_pairs(*args, target="cpu")
    np.testing.assert_array_equal(gamma.copy_to_host(), want_gamma)
    np.testing.assert_array_equal(pattern.copy_to_host(), want_pattern)


@pytest.mark.cuda
def test_cuda_layout_matches_in_simulator():
    simulate("test_cuda_layout", "check_cuda_layout_matches(n_records=70)",
             "check_compare_outputs_in_callers_arrays()")


@pytest.mark.cuda
@pytest.mark.gpu
@pytest.mark.skipif(not real_gpu(), reason="needs a real CUDA GPU")
def test_cuda_layout_matches_on_gpu():
    check_cuda_layout_matches(n_records=50_000, seed=4)
    check_compare_outputs_in_callers_arrays()


@pytest.mark.cuda
@pytest.mark.skipif(SIMULATOR, reason="PTX compilation needs the real numba.cuda, not the simulator")
def test_layout_kernel_compiles_to_ptx(monkeypatch):
    pytest.importorskip("numba.cuda")
    from gpucdp.kernels import layout
    from numba import types as nt

    signature = (nt.uint8[::1], nt.int64[::1], nt.int64[::1], nt.uint8[::1])
    ptx = compile_ptx(monkeypatch, layout.layout_cuda.py_func, signature)
    assert ".visible .entry" in ptx and ".target sm_90" in ptx
