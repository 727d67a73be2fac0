"""The string layout kernel (gpucdp.kernels.layout): CPU and CUDA twins against packing the permuted strings
in plain Python; and the comparison kernel writing into arrays the caller's module allocated."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
from cuda_support import SIMULATOR, compile_ptx, real_gpu, simulate

from gpucdp.compare import PreparedColumns, permute
from gpucdp.embed import pack_strings

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


def case(seed: int, n_records: int, n_columns: int = 3):
    """(packed columns, a permutation, the oracle: the permuted strings packed afresh)."""
    rng = np.random.default_rng(seed)
    columns = random_columns(rng, n_records, n_columns)
    order = rng.permutation(n_records).astype(np.int64)
    chars, offsets = pack_strings([pd.Series(c, dtype=object) for c in columns])
    want_chars, want_offsets = pack_strings([pd.Series([c[i] for i in order], dtype=object) for c in columns])
    nums = rng.random((2, n_records))
    packed = PreparedColumns(chars, offsets, nums, [f"s{i}" for i in range(n_columns)], ["x", "y"])
    return packed, order, (want_chars, want_offsets, nums[:, order])


@pytest.mark.parametrize("seed, n_records", [(0, 1), (1, 2), (2, 300), (3, 2_000)])
def test_cpu_layout_equals_packing_the_permuted_strings(seed, n_records):
    packed, order, (want_chars, want_offsets, want_nums) = case(seed, n_records)
    got = permute(packed, order)
    np.testing.assert_array_equal(got.chars, want_chars)
    np.testing.assert_array_equal(got.offsets, want_offsets)
    np.testing.assert_array_equal(got.nums, want_nums)


def check_cuda_layout_matches(n_records: int, seed: int = 0) -> None:
    """The CUDA twin on the offsets the CPU path computes (runs on the simulator or a GPU)."""
    from gpucdp.kernels.layout import layout_cuda
    from numba import cuda

    from gpucdp.compare import _permuted_offsets

    packed, order, (want_chars, want_offsets, _) = case(seed, n_records)
    position = np.empty_like(order)
    position[order] = np.arange(n_records)
    n_strings = packed.offsets.shape[0]
    new_offsets = np.zeros_like(packed.offsets)
    dst = np.zeros((n_strings, n_records), dtype=np.int64)
    base = 0
    for s in range(n_strings):
        _permuted_offsets(packed.offsets[s], position, new_offsets[s], dst[s], base)
        base = int(new_offsets[s, -1])
    np.testing.assert_array_equal(new_offsets, want_offsets)
    np.testing.assert_array_equal(dst, want_offsets[:, :-1][:, position])
    out = cuda.device_array(want_chars.shape[0], dtype=np.uint8)
    threads = 32
    chars = cuda.to_device(packed.chars)
    for s in range(n_strings):  # as the pipeline launches it: a column at a time
        layout_cuda[(n_records + threads - 1) // threads, threads](
            chars, cuda.to_device(packed.offsets[s]), cuda.to_device(dst[s]), out)
    np.testing.assert_array_equal(out.copy_to_host(), want_chars)


def check_compare_outputs_in_callers_arrays() -> None:
    """With ``xp``, the comparison kernel writes into arrays ``xp.empty`` made, and returns those."""
    from gpucdp.kernels.compare import METHODS, compare_pairs
    from numba import cuda

    made = []

    def empty(shape, dtype):
        made.append(cuda.device_array(shape, dtype=dtype))
        return made[-1]

    chars, offsets = pack_strings([pd.Series(["ann", "anne", "bob", None], dtype=object)])
    args = (np.array([0, 0, 1], dtype=np.int64), np.array([1, 2, 3], dtype=np.int64), chars, offsets,
            np.zeros((0, 4)), np.array([[METHODS["exact"], METHODS["jaro_winkler"]]], dtype=np.int8),
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
