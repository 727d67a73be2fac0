"""Gather packed strings into a new record order: the comparison's columns laid out for the kernel.

Inputs are Arrow-style packed strings (see :func:`gpucdp.embed.pack_strings`): ``chars : uint8[total]`` and
``offsets : int64[S, n + 1]``; string ``s`` of record ``i`` is ``chars[offsets[s, i]:offsets[s, i + 1]]``.
The caller computes the new offsets (each string keeps its length; column after column, as before); the
kernels copy the bytes. The per-record copy is written once, in :func:`build`, and compiled twice: with
``numba.njit`` for the CPU (:func:`gather_cpu`, a ``prange`` over records) and with
``numba.cuda.jit(device=True)`` for the GPU (:data:`gather_cuda`, a thread per record).

Notes
-----
One record per iteration, all its columns together: the reads of one record's strings are scattered (each
column is its own region of ``chars``), its writes are too, but every byte is read once and written once.
"""

from __future__ import annotations

import numba

__all__ = ["build", "gather_cpu", "gather_cuda"]


def build(jit):
    """Compile the per-record copy with ``jit`` (``numba.njit(...)`` or ``numba.cuda.jit(device=True)``)."""

    @jit
    def gather_record(chars, offsets, order, new_offsets, out, k):
        # record order[k] becomes record k: each of its strings moves to its new offset
        i = order[k]
        for s in range(offsets.shape[0]):
            start = offsets[s, i]
            dst = new_offsets[s, k]
            for b in range(offsets[s, i + 1] - start):
                out[dst + b] = chars[start + b]

    return gather_record


_gather_record_host = build(numba.njit(cache=True, nogil=True))


@numba.njit(cache=True, nogil=True, parallel=True)
def gather_cpu(chars, offsets, order, new_offsets, out):
    """Copy every record's strings to its new place on the CPU (a ``prange`` over records).

    Parameters
    ----------
    chars : uint8[total]
    offsets : int64[S, n + 1]
        The strings as they are.
    order : int64[n]
        Record ``order[k]`` becomes record ``k``.
    new_offsets : int64[S, n + 1]
        Where the strings go: ``new_offsets[s, k + 1] - new_offsets[s, k]`` is the length of string ``s`` of
        record ``order[k]``.
    out : uint8[total]
        Written in place.
    """
    for k in numba.prange(order.shape[0]):
        _gather_record_host(chars, offsets, order, new_offsets, out, k)


gather_cuda = None
try:  # the CUDA twin is optional: numba-cuda may be missing on CPU-only installs
    from numba import cuda as _cuda

    _gather_record_device = build(_cuda.jit(device=True))

    @_cuda.jit
    def gather_cuda(chars, offsets, order, new_offsets, out):
        """Copy every record's strings on the GPU, a thread per record; same arguments as :func:`gather_cpu`."""
        k = _cuda.grid(1)
        if k < order.shape[0]:
            _gather_record_device(chars, offsets, order, new_offsets, out, k)

except ImportError:  # pragma: no cover - depends on the install
    gather_cuda = None
