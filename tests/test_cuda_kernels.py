"""The CUDA comparison kernel: the same answers as the CPU kernel, and it compiles to PTX without a GPU
(see cuda_support for how the simulator and PTX checks are run)."""

from __future__ import annotations

import numpy as np
import oracles
import pytest
from cuda_support import SIMULATOR, compile_ptx, real_gpu, simulate


def check_cuda_matches_cpu(n_pairs: int, n_cases: int = 3, seed: int = 0) -> None:
    """Run random cases through both kernels and assert equal outputs (runs on the simulator or a GPU)."""
    from gpucdp.kernels.compare import compare_pairs

    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        n_records = 12
        pairs, strings, nums, levels = oracles.random_case(rng, n_records, n_pairs)
        inputs = oracles.to_kernel_inputs(strings, nums, levels, n_records)
        left = np.array([p[0] for p in pairs], dtype=np.int64)
        right = np.array([p[1] for p in pairs], dtype=np.int64)
        gamma, pattern = compare_pairs(left, right, **inputs, target="cpu")
        d_gamma, d_pattern = compare_pairs(left, right, **inputs, target="cuda")
        np.testing.assert_array_equal(d_gamma.copy_to_host(), gamma)
        np.testing.assert_array_equal(d_pattern.copy_to_host(), pattern)


@pytest.mark.cuda
def test_cuda_kernel_matches_cpu_in_simulator():
    simulate("test_cuda_kernels", "check_cuda_matches_cpu(n_pairs=50)")


@pytest.mark.cuda
@pytest.mark.gpu
@pytest.mark.skipif(not real_gpu(), reason="needs a real CUDA GPU")
def test_cuda_kernel_matches_cpu_on_gpu():
    check_cuda_matches_cpu(n_pairs=20_000, n_cases=5, seed=1)


@pytest.mark.cuda
@pytest.mark.skipif(SIMULATOR, reason="PTX compilation needs the real numba.cuda, not the simulator")
def test_compare_kernel_compiles_to_ptx(monkeypatch):
    pytest.importorskip("numba.cuda")
    from gpucdp.kernels import compare
    from numba import types as nt

    signature = (
        nt.int64[::1],  # left
        nt.int64[::1],  # right
        nt.uint8[::1],  # chars
        nt.int64[:, ::1],  # offsets
        nt.float64[:, ::1],  # nums
        nt.int8[:, ::1],  # level_method
        nt.int32[:, ::1],  # level_col
        nt.float64[:, ::1],  # level_thr
        nt.int32[::1],  # n_levels
        nt.int64[::1],  # strides
        nt.int8[:, ::1],  # gamma
        nt.int32[::1],  # pattern
    )
    ptx = compile_ptx(monkeypatch, compare._cuda_kernel().py_func, signature)
    assert ".visible .entry" in ptx and ".target sm_90" in ptx
