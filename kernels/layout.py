"""Lay packed strings out in a new record order: the comparison's columns, in the order the kernel reads them.

Inputs are Arrow-style packed strings (see :func:`gpucdp.embed.pack_strings`): ``chars : uint8[total]`` and
``offsets : int64[S, n + 1]``; string ``s`` of record ``i`` is ``chars[offsets[s, i]:offsets[s, i + 1]]``.
Record ``i`` moves to ``position[i]``. The caller computes the new offsets (each string keeps its length;
column after column, as before); these kernels move the bytes. The per-record move is written once, in
:func:`build`, and compiled twice: with ``numba.njit`` for the CPU (:func:`layout_cpu`, a ``prange`` over
records) and with ``numba.cuda.jit(device=True)`` for the GPU (:data:`layout_cuda`, a thread per record).

Notes
-----
The loop runs over the records as they are and writes each one where it goes (a scatter), rather than reading
each new record from where it was (a gather): the reads then stream through ``chars`` and ``offsets`` and only
the writes and ``new_offsets`` jump, and a write does not stall the loop the way a read does. On 1M records
and 16 string columns this took 0.6 s against 1.0 s for the gather on 2 cores.
"""

from __future__ import annotations

import numba

__all__ = ["build", "layout_cpu", "layout_cuda"]


def build(jit):
    """Compile the per-record move with ``jit`` (``numba.njit(...)`` or ``numba.cuda.jit(device=True)``)."""

    @jit
    def move_record(chars, offsets, position, new_offsets, out, i):
        # every string of record i goes to its offset in record position[i]
        k = position[i]
        for s in range(offsets.shape[0]):
            start = offsets[s, i]
            dst = new_offsets[s, k]
            for b in range(offsets[s, i + 1] - start):
                out[dst + b] = chars[start + b]

    return move_record


_move_record_host = build(numba.njit(cache=True, nogil=True))


@numba.njit(cache=True, nogil=True, parallel=True)
def layout_cpu(chars, offsets, position, new_offsets, out):
    """Move every record's strings to its new place on the CPU (a ``prange`` over records).

    Parameters
    ----------
    chars : uint8[total]
    offsets : int64[S, n + 1]
        The strings as they are.
    position : int64[n]
        Record ``i`` becomes record ``position[i]`` (a permutation of ``0..n-1``).
    new_offsets : int64[S, n + 1]
        Where the strings go: ``new_offsets[s, position[i] + 1] - new_offsets[s, position[i]]`` is the length
        of string ``s`` of record ``i``.
    out : uint8[total]
        Written in place; every byte once.
    """
    for i in numba.prange(position.shape[0]):
        _move_record_host(chars, offsets, position, new_offsets, out, i)


layout_cuda = None
try:  # the CUDA twin is optional: numba-cuda may be missing on CPU-only installs
    from numba import cuda as _cuda

    _move_record_device = build(_cuda.jit(device=True))

    @_cuda.jit
    def layout_cuda(chars, offsets, position, new_offsets, out):
        """Move every record's strings on the GPU, a thread per record; same arguments as :func:`layout_cpu`."""
        i = _cuda.grid(1)
        if i < position.shape[0]:
            _move_record_device(chars, offsets, position, new_offsets, out, i)

except ImportError:  # pragma: no cover - depends on the install
    layout_cuda = None
