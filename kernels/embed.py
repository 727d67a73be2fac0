"""Character n-gram feature hashing: strings → dense float32 vectors, for the kNN blocking stage.

The per-record function is written once, in :func:`build`, and compiled twice: with ``numba.njit`` for the CPU
(:func:`embed_cpu`, a ``prange`` over chunks of records) and with ``numba.cuda.jit(device=True)`` for the GPU
(:data:`embed_cuda`, a thread per record). The CUDA half is built only when ``numba.cuda`` imports, so CPU use
needs no CUDA toolkit.

Inputs are Arrow-style packed strings (see :func:`gpucdp.embed.pack_strings`): ``chars : uint8[total]`` and
``offsets : int64[F, n + 1]``; field ``f`` of record ``i`` is ``chars[offsets[f, i]:offsets[f, i + 1]]`` and a
zero length means missing.

Notes
-----
For each field, every q-gram of ``" " + value + " "`` is hashed with 32-bit FNV-1a, whose offset basis is
perturbed by the field index (so equal grams in different fields land in different buckets), then finalised
with a multiply–xorshift mix because FNV's low bits are weak. The mixed hash gives the bucket
(``h % dim``) and a ±1 sign (bit 31), which makes collisions cancel on average instead of adding up
(Weinberger et al. 2009, "Feature hashing for large scale multitask learning").

A field's sub-vector is L2-normalised and scaled by the field weight, so a long field does not dominate and a
missing field contributes 0; the record vector is the sum of the sub-vectors, L2-normalised (all fields missing
→ the zero vector, whose similarity to everything is 0).

No separate whole-token feature is used: the space padding already gives a value of one or two characters its
own grams (``"al"`` → ``" al"``, ``"al "``), so short fields and word boundaries count without it. A value shorter
than ``q - 2`` characters is hashed as one gram (its whole padded form). The hash works on bytes, so the
embedder is case- and accent-sensitive: the standardize stage lowercases and folds before it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["MAX_DIM_CUDA", "build", "embed_cpu", "embed_cuda", "embed_record_host"]

# Widest embedding the CUDA kernel supports: its per-thread scratch is a local array of compile-time size.
MAX_DIM_CUDA = 256

_MASK32 = 0xFFFFFFFF
_FNV_BASIS = 2166136261
_FNV_PRIME = 16777619
# Multipliers of the finaliser are below 2**31 so that a 32-bit value times one stays inside int64 on both
# targets (numba types mixed uint64/int64 arithmetic as float64, so everything here is int64 on purpose).
_MIX1 = 0x2C1B3C6D
_MIX2 = 0x297A2D39
_SPACE = 32


def build(jit):
    """Compile the per-record embedder with ``jit`` (``numba.njit(...)`` or ``numba.cuda.jit(device=True)``).

    Parameters
    ----------
    jit : callable
        The decorator to compile with.

    Returns
    -------
    callable
        ``embed_record(chars, offsets, weights, i, dim, q, out, scratch)`` that writes record ``i``'s vector
        into ``out[i, :dim]`` using ``scratch : float32[>= dim]`` as working space (it allocates nothing;
        ``scratch`` is cleared on entry and left zeroed).
    """

    @jit
    def gram_hash(chars, start, length, p, q, basis):
        # Gram p of the virtual padded string " " + value + " " (length + 2 bytes), never materialised.
        padded = length + 2
        end = p + q
        end = min(end, padded)
        h = basis
        for j in range(p, end):
            if j == 0 or j == padded - 1:
                c = _SPACE
            else:
                c = np.int64(chars[start + j - 1])
            h = ((h ^ c) * _FNV_PRIME) & _MASK32
        h ^= h >> 16
        h = (h * _MIX1) & _MASK32
        h ^= h >> 13
        h = (h * _MIX2) & _MASK32
        h ^= h >> 16
        return h

    @jit
    def embed_record(chars, offsets, weights, i, dim, q, out, scratch):
        n_fields = offsets.shape[0]
        for j in range(dim):
            out[i, j] = 0.0
            scratch[j] = 0.0
        for f in range(n_fields):
            start = offsets[f, i]
            length = offsets[f, i + 1] - start
            if length <= 0:
                continue
            basis = (_FNV_BASIS ^ ((f + 1) * _FNV_PRIME)) & _MASK32
            n_grams = length + 3 - q
            n_grams = max(n_grams, 1)
            # Pass 1 counts the field's signed buckets in scratch and tracks the squared norm as it goes
            # ((x + s)^2 = x^2 + 2 s x + 1), so no loop over all dim buckets is needed per field.
            norm2 = 0.0
            for p in range(n_grams):
                h = gram_hash(chars, start, length, p, q, basis)
                bucket = h % dim
                sign = -1.0 if (h >> 31) & 1 else 1.0
                norm2 += 2.0 * sign * scratch[bucket] + 1.0
                scratch[bucket] += sign
            # Pass 2 adds the normalised counts to the record and clears scratch for the next field. Signs may
            # cancel a field to exactly zero: it then adds nothing.
            scale = weights[f] / math.sqrt(norm2) if norm2 > 0.5 else 0.0
            for p in range(n_grams):
                h = gram_hash(chars, start, length, p, q, basis)
                bucket = h % dim
                out[i, bucket] += scratch[bucket] * scale
                scratch[bucket] = 0.0
        norm2 = 0.0
        for j in range(dim):
            norm2 += out[i, j] * out[i, j]
        if norm2 > 0.0:
            inv = 1.0 / math.sqrt(norm2)
            for j in range(dim):
                out[i, j] *= inv

    return embed_record


embed_record_host = build(numba.njit(cache=True, nogil=True))


@numba.njit(cache=True, nogil=True, parallel=True)
def embed_cpu(chars, offsets, weights, dim, q, out):
    """Embed every record on the CPU (a ``prange`` over chunks of records, one scratch row per chunk).

    Parameters
    ----------
    chars : uint8[total]
        Concatenated UTF-8 bytes of all fields.
    offsets : int64[F, n + 1]
        Field ``f`` of record ``i`` is ``chars[offsets[f, i]:offsets[f, i + 1]]``; zero length = missing.
    weights : float32[F]
        Weight of each field's (unit) sub-vector.
    dim : int
        Embedding width, ``out.shape[1]``.
    q : int
        Gram length.
    out : float32[n, dim]
        Written in place: L2-normalised rows (all-missing records → zero rows).
    """
    n = offsets.shape[1] - 1
    n_chunks = min(n, 256)
    if n_chunks == 0:
        return
    scratch = np.empty((n_chunks, dim), dtype=np.float32)
    for c in numba.prange(n_chunks):
        lo = c * n // n_chunks
        hi = (c + 1) * n // n_chunks
        for i in range(lo, hi):
            embed_record_host(chars, offsets, weights, i, dim, q, out, scratch[c])


embed_cuda = None
try:  # the CUDA twin is optional: numba-cuda may be missing on CPU-only installs
    from numba import cuda as _cuda

    _embed_record_device = build(_cuda.jit(device=True))

    @_cuda.jit
    def embed_cuda(chars, offsets, weights, dim, q, out):
        """Embed every record on the GPU, a thread per record; same arguments as :func:`embed_cpu`.

        ``dim`` must not exceed :data:`MAX_DIM_CUDA` (checked by :func:`gpucdp.embed.embed_records`).
        """
        i = _cuda.grid(1)
        if i < out.shape[0]:
            scratch = _cuda.local.array(MAX_DIM_CUDA, numba.float32)
            _embed_record_device(chars, offsets, weights, i, dim, q, out, scratch)

except ImportError:  # pragma: no cover - depends on the install
    embed_cuda = None
