"""The block-key kernel (gpucdp.kernels.pairs): the CUDA twin against the CPU twin, which tests/test_block.py
checks against brute force through key_pair_keys."""

from __future__ import annotations

import numpy as np
import pytest
from cuda_support import SIMULATOR, compile_ptx, real_gpu, simulate

from gpucdp.block import _blocks


def case(seed: int, n_records: int, n_keys: int, cap: int):
    """Blocks of a random key as key_pair_keys finds them: (members, starts, sizes, offsets, n, total)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-1, n_keys, n_records)
    members, starts, sizes, counts, stats = _blocks(codes, cap, None, np)
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return members, starts, sizes, offsets, n_records, stats["pairs"]


def check_cuda_block_keys_match_cpu(n_records: int, seed: int = 0) -> None:
    """Both twins write the same keys, block by block in place (runs on the simulator or a GPU)."""
    from gpucdp.kernels.pairs import block_keys_cpu, block_keys_cuda
    from numba import cuda

    for n_keys, cap in ((1, max(n_records, 2)), (n_records // 4 + 1, 6), (n_records // 2 + 1, 3)):
        members, starts, sizes, offsets, n, total = case(seed, n_records, n_keys, cap)
        want = np.empty(total, dtype=np.int64)
        block_keys_cpu(members, starts, sizes, offsets, n, want)
        out = cuda.device_array(total, dtype=np.int64)
        threads = 32
        if sizes.size:
            block_keys_cuda[(sizes.size + threads - 1) // threads, threads](
                cuda.to_device(members), cuda.to_device(starts), cuda.to_device(sizes), cuda.to_device(offsets),
                n, out)
        got = out.copy_to_host()
        np.testing.assert_array_equal(got, want)
        # each key is a pair of two records of one block, min * n + max
        assert total == 0 or ((got // n < got % n).all() and got.min() >= 0)


@pytest.mark.cuda
def test_cuda_block_keys_match_in_simulator():
    simulate("test_cuda_pairs", "check_cuda_block_keys_match_cpu(n_records=40)",
             "check_cuda_block_keys_match_cpu(n_records=1, seed=1)")


@pytest.mark.cuda
@pytest.mark.gpu
@pytest.mark.skipif(not real_gpu(), reason="needs a real CUDA GPU")
def test_cuda_block_keys_match_on_gpu():
    check_cuda_block_keys_match_cpu(n_records=200_000, seed=3)


@pytest.mark.cuda
@pytest.mark.skipif(SIMULATOR, reason="PTX compilation needs the real numba.cuda, not the simulator")
def test_block_keys_kernel_compiles_to_ptx(monkeypatch):
    pytest.importorskip("numba.cuda")
    from gpucdp.kernels import pairs
    from numba import types as nt

    signature = (nt.int64[::1], nt.int64[::1], nt.int64[::1], nt.int64[::1], nt.int64, nt.int64[::1])
    ptx = compile_ptx(monkeypatch, pairs.block_keys_cuda.py_func, signature)
    assert ".visible .entry" in ptx and ".target sm_90" in ptx
