"""The CUDA comparison kernel: the same answers as the CPU kernel, and it compiles to PTX without a GPU.

The CUDA simulator must be switched on before ``numba.cuda`` is first imported, and the simulator and the
real ``numba.cuda`` cannot live in one process. So the simulator check runs in this process when it already
runs under ``NUMBA_ENABLE_CUDASIM=1`` (or on a real GPU), and otherwise in a child process with the
simulator on; the PTX check needs the real ``numba.cuda`` and is skipped under the simulator.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import oracles

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
TESTS_DIR = Path(__file__).resolve().parent


def _real_gpu() -> bool:
    if SIMULATOR:
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - no driver, no toolkit, no numba-cuda: all mean "no GPU"
        return False


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
    if SIMULATOR:
        check_cuda_matches_cpu(n_pairs=50)
        return
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r}); import test_cuda_kernels as t; "
        "t.check_cuda_matches_cpu(n_pairs=50)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.cuda
@pytest.mark.gpu
@pytest.mark.skipif(not _real_gpu(), reason="needs a real CUDA GPU")
def test_cuda_kernel_matches_cpu_on_gpu():
    check_cuda_matches_cpu(n_pairs=20_000, n_cases=5, seed=1)


@pytest.mark.cuda
@pytest.mark.skipif(SIMULATOR, reason="PTX compilation needs the real numba.cuda, not the simulator")
def test_compare_kernel_compiles_to_ptx(monkeypatch):
    numba_cuda = pytest.importorskip("numba.cuda")
    from numba import types as nt

    from gpucdp.kernels import compare

    # Compiling a kernel that calls device functions asks the driver for the current device's compute
    # capability; without a GPU there is none, so pretend to be an sm_90.
    monkeypatch.setattr(
        numba_cuda.dispatcher, "get_current_device", lambda: types.SimpleNamespace(compute_capability=(9, 0))
    )
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
    ptx, _ = numba_cuda.compile_ptx(compare._cuda_kernel().py_func, signature, cc=(9, 0))
    assert ".visible .entry" in ptx and ".target sm_90" in ptx
