"""Every pair inside each block of an exact blocking key, packed as one int64 key: CPU and CUDA twins.

A key rule groups the records by key (:func:`gpucdp.block.key_pair_keys`): block ``g`` holds the records
``members[starts[g] : starts[g] + sizes[g]]``, and its ``sizes[g] * (sizes[g] - 1) / 2`` pairs go to
``out[offsets[g] : offsets[g + 1]]``, each packed as ``min * n + max`` (:func:`gpucdp.block.pack_pairs`). The
per-block loop is written once, in :func:`build`, and compiled twice: with ``numba.njit`` for the CPU
(:func:`block_keys_cpu`, a ``prange`` over blocks) and with ``numba.cuda.jit(device=True)`` for the GPU
(:data:`block_keys_cuda`, a thread per block).

Notes
-----
Writing the keys straight into the result is what keeps a rule at 8 bytes a pair: made with array operations
(repeat the members, number the repeats, gather both ends, then pack) a pair took about eight int64
temporaries on the device. A thread per block leaves the threads unevenly loaded (a block of ``s`` records
writes ``s(s - 1)/2`` keys), but blocks are capped by the rule's ``max_block_size`` and most hold a few records.
"""

from __future__ import annotations

import numba

__all__ = ["block_keys_cpu", "block_keys_cuda", "build"]


def build(jit):
    """Compile the per-block writer with ``jit`` (``numba.njit(...)`` or ``numba.cuda.jit(device=True)``)."""

    @jit
    def write_block(members, first, size, o, n, out):
        # every pair of the block's members, in member order, from out[o] on
        for a in range(size):
            u = members[first + a]
            for b in range(a + 1, size):
                v = members[first + b]
                out[o] = u * n + v if u < v else v * n + u
                o += 1

    return write_block


# Inlined into the prange loop by Numba itself, as the layout kernel's move is (a call there runs slower).
_write_block_host = build(numba.njit(cache=True, nogil=True, inline="always"))


@numba.njit(cache=True, nogil=True, parallel=True)
def block_keys_cpu(members, starts, sizes, offsets, n, out):
    """Write every block's pairs as packed keys on the CPU (a ``prange`` over blocks).

    Parameters
    ----------
    members : int64[r]
        Records, grouped by block.
    starts, sizes : int64[g]
        Block ``g`` is ``members[starts[g] : starts[g] + sizes[g]]``.
    offsets : int64[g + 1]
        Where each block's keys start in ``out``: the running sum of ``sizes * (sizes - 1) // 2``.
    n : int
        Records numbered below ``n``: a pair's key is ``min * n + max``.
    out : int64[offsets[-1]]
        Written in place.
    """
    for g in numba.prange(sizes.shape[0]):
        _write_block_host(members, starts[g], sizes[g], offsets[g], n, out)


block_keys_cuda = None
try:  # the CUDA twin is optional: numba-cuda may be missing on CPU-only installs
    from numba import cuda as _cuda

    _write_block_device = build(_cuda.jit(device=True))

    @_cuda.jit
    def block_keys_cuda(members, starts, sizes, offsets, n, out):
        """Write every block's pairs on the GPU, a thread per block; same arguments as :func:`block_keys_cpu`."""
        g = _cuda.grid(1)
        if g < sizes.shape[0]:
            _write_block_device(members, starts[g], sizes[g], offsets[g], n, out)

except ImportError:  # pragma: no cover - depends on the install
    block_keys_cuda = None
