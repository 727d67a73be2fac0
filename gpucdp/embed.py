"""Embed records: string fields → L2-normalised float32 vectors for the kNN blocking stage.

The default embedder is character q-gram feature hashing (:mod:`gpucdp.kernels.embed`): each field's grams are
hashed into ``dim`` signed buckets, the field's sub-vector is normalised and weighted, and the record vector is the
normalised sum. Similar strings share most grams, so their vectors have a high inner product.

Strings travel as Arrow buffers (:func:`pack_strings`), the same layout the comparison kernels read.

A column may instead be embedded by a sentence-transformers model (:mod:`gpucdp.semantic`); with both kinds,
:func:`embed_hybrid` joins them into one record vector for the kNN stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpucdp.arrays import large_string_buffers
from gpucdp.backend import to_host
from gpucdp.errors import InputError, SettingsError
from gpucdp.semantic import SemanticEmbedder
from gpucdp.settings import KnnColumn

__all__ = ["EMBED_TARGETS", "column_buffers", "embed_hybrid", "embed_records", "pack_strings"]

EMBED_TARGETS = ("cpu", "cuda")


def _to_large_string(column: Any, position: int) -> pa.Array:
    """One column as a single-chunk ``large_string`` Arrow array (nulls kept as nulls)."""
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        array = column
    elif hasattr(column, "to_arrow"):  # cudf Series, polars Series
        array = column.to_arrow()
    else:
        try:
            array = pa.array(column, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise InputError(
                f"column {position} ({getattr(column, 'name', None)!r}) cannot be read as strings ({exc}); "
                "pass a pandas Series or pyarrow array of str values"
            ) from exc
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if array.type != pa.large_string():
        try:
            array = array.cast(pa.large_string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(
                f"column {position} ({getattr(column, 'name', None)!r}) of type {array.type} cannot be cast to "
                f"string ({exc}); convert it to str first"
            ) from exc
    if array.null_count and _null_slots_hold_bytes(array):
        # Arrow does not promise that a null slot has length 0; filling makes it so and keeps the bytes clean.
        array = pc.fill_null(array, "")
    return array


def _null_slots_hold_bytes(array: pa.Array) -> bool:
    """Whether some null slot of a ``large_string`` array spans bytes (the values' lengths fall short of the
    offsets' span). One pass over the lengths, against a copy of the whole column to fill the nulls."""
    offsets = large_string_buffers(array)[1]
    span = int(offsets[-1]) - int(offsets[0]) if offsets.size else 0
    return span != (pc.sum(pc.binary_length(array)).as_py() or 0)


def pack_strings(columns: Sequence[Any], *, xp: Any = np) -> tuple[Any, Any]:
    """Pack string columns into one byte buffer and a per-field offsets table (Arrow layout).

    Parameters
    ----------
    columns : sequence of F pandas Series / pyarrow arrays / cudf Series of str, each of length n
        Nulls (None, NaN, pd.NA) become zero-length strings, which the kernels read as missing.
    xp : module, default numpy
        Where the packed arrays live. With ``cupy`` and cuDF columns the column's own device buffers
        (:func:`gpucdp.backend.string_buffers`) are packed on the device, without a host copy; other columns
        are packed on the host and copied over once.

    Returns
    -------
    chars : uint8[total]
        The bytes of all columns, column after column.
    offsets : int64[F, n + 1]
        Field ``f`` of record ``i`` is ``chars[offsets[f, i]:offsets[f, i + 1]]``.

    Raises
    ------
    InputError
        No columns, columns of different lengths, or a column that cannot be read as strings.

    Notes
    -----
    Vectorised: each column's Arrow value and offset buffers are viewed (no per-row Python), the offsets are
    rebased onto the shared buffer, and the values are concatenated once.
    """
    if len(columns) == 0:
        raise InputError("pack_strings needs at least one column; pass the string fields to embed or compare")
    if xp is not np:
        from gpucdp.backend import string_buffers

        device = [string_buffers(column) for column in columns]
        if all(buffers is not None for buffers in device):
            return _concat_buffers(device, xp)
        chars, offsets = pack_strings(columns)
        return xp.asarray(chars), xp.asarray(offsets)
    return _concat_buffers([column_buffers(c, f) for f, c in enumerate(columns)], np)


def column_buffers(column: Any, position: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One string column's bytes and offsets on the host, as :func:`pack_strings` reads them.

    Returns ``(chars : uint8[...], offsets : int64[n + 1])``: value ``i`` is ``chars[offsets[i]:offsets[i + 1]]``
    and a null is zero-length. Views of the column's Arrow buffers when it is a single-chunk ``large_string``
    without nulls; otherwise of a converted copy. ``position`` numbers the column in error messages.

    Raises
    ------
    InputError
        A column that cannot be read as strings.
    """
    return large_string_buffers(_to_large_string(column, position))


def _concat_buffers(buffers: Sequence[tuple[Any, Any]], xp: Any) -> tuple[Any, Any]:
    """One chars buffer and an int64[F, n + 1] offsets table from each column's (chars, offsets)."""
    lengths = [int(offsets.shape[0]) - 1 for _, offsets in buffers]
    n = lengths[0]
    if any(length != n for length in lengths):
        raise InputError(f"all columns must have the same length; got lengths {lengths}")
    table = xp.empty((len(buffers), n + 1), dtype=np.int64)
    pieces = []
    base = 0
    for f, (chars, offsets) in enumerate(buffers):
        first, last = int(offsets[0]), int(offsets[-1])  # two scalars back from the device per column
        table[f] = offsets.astype(np.int64) - (first - base)
        if last > first:
            pieces.append(chars[first:last])
        base += last - first
    chars = xp.concatenate(pieces) if pieces else xp.zeros(0, dtype=np.uint8)
    return chars, table


def embed_records(
    columns: Sequence[Any],
    weights: Sequence[float],
    *,
    dim: int = 64,
    q: int = 3,
    target: str = "cpu",
    xp: Any = np,
) -> Any:
    """Embed records by hashing the character q-grams of their string fields.

    Parameters
    ----------
    columns : sequence of F string columns of length n
        pandas Series / pyarrow arrays / cudf Series; nulls are missing values. Values are used as given
        (bytes), so standardise (lowercase, fold accents) first.
    weights : sequence of F floats >= 0
        Weight of each field's unit sub-vector in the record vector.
    dim : int, default 64
        Embedding width (>= 2; at most 256 for ``target="cuda"``).
    q : int, default 3
        Gram length (1..8); grams are taken over ``" " + value + " "``.
    target : {"cpu", "cuda"}
        Where the kernel runs. ``"cuda"`` needs numba-cuda and a GPU (or the CUDA simulator).
    xp : module, default numpy
        The array module of the result: with ``cupy`` (and ``target="cuda"``) the strings are packed on the
        device (cuDF columns from their own buffers) and the embeddings stay there.

    Returns
    -------
    float32[n, dim]
        One L2-normalised row per record (an ``xp`` array); a record with every field missing gets a zero row.

    Raises
    ------
    SettingsError
        ``weights``, ``dim``, ``q`` or ``target`` is invalid.
    InputError
        The columns cannot be packed (see :func:`pack_strings`).
    """
    from gpucdp.kernels import embed as kernels

    if target not in EMBED_TARGETS:
        raise SettingsError(f"target={target!r} is not valid: use one of {', '.join(EMBED_TARGETS)}")
    if not isinstance(dim, (int, np.integer)) or dim < 2:
        raise SettingsError(f"dim={dim!r} is not valid: use an integer >= 2 (64 is a good default)")
    if target == "cuda" and dim > kernels.MAX_DIM_CUDA:
        raise SettingsError(f"dim={dim} is too wide for the CUDA embedder: use dim <= {kernels.MAX_DIM_CUDA}")
    if not isinstance(q, (int, np.integer)) or not 1 <= q <= 8:
        raise SettingsError(f"q={q!r} is not valid: use an integer gram length from 1 to 8 (3 is the default)")
    weights_arr = np.asarray(weights, dtype=np.float32)
    if weights_arr.shape != (len(columns),) or not np.all(np.isfinite(weights_arr)) or np.any(weights_arr < 0):
        raise SettingsError(
            f"weights={list(weights)!r} is not valid: give one finite weight >= 0 per column "
            f"({len(columns)} columns)"
        )
    chars, offsets = pack_strings(columns, xp=xp if target == "cuda" else np)
    n = offsets.shape[1] - 1
    if target == "cpu":
        out = np.empty((n, int(dim)), dtype=np.float32)
        kernels.embed_cpu(chars, offsets, weights_arr, int(dim), int(q), out)
        return out
    return _embed_cuda(kernels, chars, offsets, weights_arr, int(dim), int(q), n, xp)


def embed_hybrid(
    prepared: Any,
    columns: Mapping[str, KnnColumn],
    *,
    dim: int = 64,
    q: int = 3,
    target: str = "cpu",
    semantic: SemanticEmbedder | None = None,
    xp: Any = np,
    device_frame: Any = None,
) -> Any:
    """Record vectors for kNN blocking from n-gram and sentence-transformers columns.

    Parameters
    ----------
    prepared : DataFrame
        The prepared columns.
    columns : mapping column -> KnnColumn
        Weight and embedder of each column.
    dim, q, target
        As for :func:`embed_records` (the n-gram part).
    semantic : SemanticEmbedder, optional
        Needed when a column uses the ``sentence-transformers`` embedder.
    xp : module, default numpy
        Where the n-gram vectors are made (:func:`embed_records`); with semantic columns as well, the result is
        on the host.
    device_frame : cuDF DataFrame, optional
        The same prepared columns on the GPU: the n-gram kernel reads its string buffers there.

    Returns
    -------
    float32[n, D]
        L2-normalised rows (zero where every column is missing). With n-gram columns only, exactly
        :func:`embed_records` (``D = dim``). Otherwise the concatenation of the n-gram block (all n-gram columns
        as one unit vector, scaled by ``sqrt`` of their summed weight) and one block per semantic column (its
        unit vector scaled by ``sqrt(weight)``), normalised: the inner product of two records is then the
        weighted mean of the blocks' cosines, over the blocks both records have.
    """
    ngram = {c: s.weight for c, s in columns.items() if s.embedder == "ngram"}
    dense = {c: s.weight for c, s in columns.items() if s.embedder != "ngram"}
    blocks = []
    if ngram:
        source = device_frame if device_frame is not None else prepared
        vectors = embed_records([source[c] for c in ngram], list(ngram.values()), dim=dim, q=q, target=target,
                                xp=xp)
        if not dense:
            return vectors
        blocks.append(to_host(vectors) * np.float32(np.sqrt(sum(ngram.values()))))
    if dense and semantic is None:
        raise SettingsError(f"blocking.knn.columns {', '.join(dense)}: the sentence-transformers embedder is not "
                            "available here; pass a SemanticEmbedder")
    for column, weight in dense.items():
        try:
            vectors = semantic.record_vectors(prepared[column])
        except SettingsError as exc:  # name the setting that asked for the model
            raise SettingsError(f"blocking.knn.columns.{column}: {exc}") from None
        blocks.append(vectors * np.float32(np.sqrt(weight)))
    out = np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def _embed_cuda(kernels: Any, chars: Any, offsets: Any, weights: np.ndarray, dim: int, q: int, n: int,
                xp: Any) -> Any:
    from gpucdp.errors import BackendUnavailableError

    if kernels.embed_cuda is None:
        raise BackendUnavailableError(
            "target='cuda' needs numba-cuda: install it with `pip install 'gpucdp[gpu]'`, or use target='cpu'"
        )
    from numba import cuda

    from gpucdp.kernels.device import as_device

    on_host = xp is np
    # Allocated through xp on a GPU, so that CuPy's pool (and the run's device memory peaks) account for it.
    out = cuda.device_array((n, dim), dtype=np.float32) if on_host else xp.empty((n, dim), dtype=np.float32)
    if n == 0:
        return out.copy_to_host() if on_host else out
    # An empty chars buffer cannot be copied to the device; one padding byte is never read.
    d_chars = as_device(chars if chars.size else xp.zeros(1, dtype=np.uint8))
    threads = 128
    blocks = (n + threads - 1) // threads
    kernels.embed_cuda[blocks, threads](d_chars, as_device(offsets), as_device(weights), dim, q, as_device(out))
    return out.copy_to_host() if on_host else out
