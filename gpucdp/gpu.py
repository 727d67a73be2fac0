"""Array-module-generic pieces of the GPU path: exact kNN by matrix products, device memory accounting.

Everything here takes the array module ``xp`` (numpy or cupy, from :class:`gpucdp.backend.Backend`) and
imports no GPU library itself, so the same function runs on numpy in CI and on CuPy on a GPU. The stages use
these where the full RAPIDS stack is missing a piece: :func:`gemm_topk` stands in for FAISS-GPU, and
:func:`gpucdp.kernels.components.components_cuda` (wired in by the backend) for cuGraph.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from gpucdp.errors import BackendUnavailableError, MemoryBudgetError

__all__ = [
    "DeviceMemory",
    "check_device_fits",
    "device_bytes_per_record",
    "cell_topk",
    "gemm_topk",
    "rows_per_chunk",
]

# Up to this many neighbours a row, the device's top-k takes one maximum per row and pass (see _row_top).
ROW_TOP_BY_MAXIMA = 32
# Share of the free device memory one chunk of work may take: the rest stays for the pool's rounding, cuDF's
# own temporaries and the kernels' outputs.
CHUNK_FRACTION = 0.25


def rows_per_chunk(free_bytes: int, bytes_per_row: int, *, low: int = 1024, high: int = 1 << 26) -> int:
    """How many rows of ``bytes_per_row`` fit in :data:`CHUNK_FRACTION` of ``free_bytes``, within
    [low, high]."""
    rows = int(free_bytes * CHUNK_FRACTION) // max(1, int(bytes_per_row))
    return max(low, min(high, rows))


def gemm_topk(vectors: Any, k: int, *, xp: Any, min_similarity: float,
              batch: int | None = None) -> tuple[Any, Any, Any]:
    """Exact k nearest neighbours of every row among all rows by inner product, one batched GEMM at a time.

    Parameters
    ----------
    vectors : float32[n, dim]
        An ``xp`` array of distinct, L2-normalised rows.
    k : int >= 1
        Neighbours per row, itself excluded.
    xp : module
        ``numpy`` or ``cupy``; the product and the top-k run there.
    min_similarity : float
        Neighbours below it are dropped.
    batch : int, optional
        Query rows per product (the product is ``batch x n`` floats); default: 64 MiB of similarities.

    Returns
    -------
    query, neighbour : int64[m]
        ``xp`` arrays: row pairs, each query's neighbours in no particular order (a pair may come from both
        ends).
    similarity : float32[m]

    Notes
    -----
    ``argpartition`` picks the ``k + 1`` largest per row (the row itself among them, since the rows are
    distinct unit vectors); the row itself is then dropped by index, so a tie with an identical-score
    neighbour cannot hide it. The cost is ``n² · dim`` multiply-adds and ``n²`` similarities written and
    read once per neighbour: the backend uses it up to :data:`gpucdp.block.CUPY_EXACT_MAX` rows.
    """
    n = int(vectors.shape[0])
    kk = min(int(k) + 1, n)
    if batch is None:
        batch = max(1, ((64 if xp is np else 512) << 20) // (4 * max(n, 1)))
    parts_q, parts_n, parts_s = [], [], []
    for lo in range(0, n, batch):
        hi = min(lo + batch, n)
        sims = vectors[lo:hi] @ vectors.T
        if kk < n:
            top, top_sims = _row_top(sims, kk, xp)
        else:
            top = xp.broadcast_to(xp.arange(n), (hi - lo, n))
            top_sims = xp.take_along_axis(sims, top, axis=1)
        query = xp.broadcast_to(xp.arange(lo, hi, dtype=np.int64)[:, None], top.shape)
        keep = (top != query) & (top_sims >= min_similarity)
        parts_q.append(query[keep])
        parts_n.append(top[keep].astype(np.int64))
        parts_s.append(top_sims[keep].astype(np.float32))
    if not parts_q:
        empty = xp.zeros(0, dtype=np.int64)
        return empty, empty, xp.zeros(0, dtype=np.float32)
    return xp.concatenate(parts_q), xp.concatenate(parts_n), xp.concatenate(parts_s)


def _row_top(sims: Any, kk: int, xp: Any) -> tuple[Any, Any]:
    """The columns of the ``kk`` largest entries of each row of ``sims`` and their values, in no set order.

    numpy's ``argpartition`` selects in linear time; CuPy's sorts every row in full, so on the device a few
    neighbours are taken one at a time, a maximum per row and pass (``sims`` is overwritten), and
    ``argpartition`` serves only for many."""
    if xp is np or kk > ROW_TOP_BY_MAXIMA:
        top = xp.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        return top, xp.take_along_axis(sims, top, axis=1)
    rows = xp.arange(sims.shape[0])
    top = xp.empty((sims.shape[0], kk), dtype=xp.int64)
    values = xp.empty((sims.shape[0], kk), dtype=sims.dtype)
    for t in range(kk):
        best = xp.argmax(sims, axis=1)
        top[:, t] = best
        values[:, t] = sims[rows, best]
        sims[rows, best] = -np.inf
    return top, values


def _spherical_kmeans(x: Any, n_clusters: int, *, xp: Any, iterations: int, seed: int) -> Any:
    """Unit centroids float32[n_clusters, dim] of ``x`` (rows already unit length), by Lloyd's iterations on
    inner products; a centroid that loses all its rows keeps its place."""
    rng = np.random.default_rng(seed)
    centroids = x[xp.asarray(np.sort(rng.choice(x.shape[0], size=n_clusters, replace=False)))]
    for _ in range(iterations):
        assign = _nearest_cells(x, centroids, 1, xp)[:, 0]
        order = xp.argsort(assign)
        # per-cluster sums from one cumulative sum over the rows sorted by cluster (no scatter-add needed)
        sums = xp.concatenate([xp.zeros((1, x.shape[1])), xp.cumsum(x[order].astype(np.float64), axis=0)])
        bounds = xp.searchsorted(assign[order], xp.arange(n_clusters + 1))
        totals = sums[bounds[1:]] - sums[bounds[:-1]]
        norms = xp.linalg.norm(totals, axis=1, keepdims=True)
        centroids = xp.where(norms > 0, totals / xp.maximum(norms, 1e-12), centroids).astype(np.float32)
    return centroids


def _nearest_cells(x: Any, centroids: Any, a: int, xp: Any) -> Any:
    """Indices int[rows, a] of each row's ``a`` nearest centroids (in no particular order), in batches of rows
    that keep the similarity matrix under 2**26 floats."""
    step = max(1, (1 << 26) // int(centroids.shape[0]))
    parts = []
    for lo in range(0, int(x.shape[0]), step):
        sims = x[lo:lo + step] @ centroids.T
        top = xp.argmax(sims, axis=1)[:, None] if a == 1 else xp.argpartition(-sims, a - 1, axis=1)[:, :a]
        parts.append(top)
    return xp.concatenate(parts)


def cell_topk(vectors: Any, k: int, *, xp: Any, min_similarity: float, cell_size: int = 512, assign: int = 2,
              batch_cells: int = 256, seed: int = 0) -> tuple[Any, Any, Any]:
    """Approximate k nearest neighbours: exact top-k inside windows of rows sorted by k-means cell.

    Parameters
    ----------
    vectors : float32[n, dim]
        An ``xp`` array of distinct, L2-normalised rows.
    k : int >= 1
    xp : module
        ``numpy`` or ``cupy``.
    min_similarity : float
    cell_size : int
        Slots per cell and per window: ``n * assign / cell_size`` k-means cells.
    assign : int
        Cells each row joins (its nearest centroids): a row near a cell boundary meets both sides.
    batch_cells : int
        Windows per batched matrix product (bounds memory: ``batch_cells * cell_size * 3 * cell_size``
        floats).

    Returns
    -------
    query, neighbour : int64[m], similarity : float32[m]
        As :func:`gemm_topk`.

    Notes
    -----
    The rows are sorted by their ``assign`` nearest of ``n * assign / cell_size`` spherical k-means centroids
    (trained on a sample; a row is placed once per centroid), cut into blocks of ``cell_size`` rows, and each
    block searched exactly against itself and its two neighbouring blocks: one ``[batch, B, d] x [batch, d,
    3B]`` batched GEMM, then ``argpartition``. A row meets its cell's other rows (a cell of about ``B`` rows
    lies within the three blocks around it) and spills into the cells sorted next to it. Fixed shapes make it
    one kernel launch per batch on a GPU, where FAISS's IVF is not installed; it plays the part of the CPU
    path's ``index="cells"``.
    """
    n = int(vectors.shape[0])
    if n <= 3 * cell_size:
        return gemm_topk(vectors, k, xp=xp, min_similarity=min_similarity)
    n_cells = max(2, n * int(assign) // cell_size)  # about cell_size slots per cell
    rng = np.random.default_rng(seed)
    sample = vectors[xp.asarray(np.sort(rng.choice(n, size=min(n, 64 * n_cells), replace=False)))]
    centroids = _spherical_kmeans(sample, n_cells, xp=xp, iterations=8, seed=seed + 1)
    a = min(int(assign), n_cells)
    cells = _nearest_cells(vectors, centroids, a, xp)
    slots = xp.argsort(cells.ravel())  # each row appears once per cell it joins, the slots sorted by cell
    order = slots // a
    n_slots = int(order.shape[0])
    n_blocks = -(-n_slots // cell_size)
    padded = xp.zeros((n_blocks + 2) * cell_size, dtype=np.int64) - 1  # one empty block before and after
    padded[cell_size:cell_size + n_slots] = order
    kk = min(int(k), 3 * cell_size - 1)
    parts_q, parts_n, parts_s = [], [], []
    for first in range(0, n_blocks, batch_cells):
        last = min(first + batch_cells, n_blocks)
        rows = padded[(first + 1) * cell_size:(last + 1) * cell_size].reshape(last - first, cell_size)
        windows = padded[xp.arange(first, last)[:, None] * cell_size + xp.arange(3 * cell_size)[None, :]]
        q = vectors[xp.maximum(rows, 0)]
        c = vectors[xp.maximum(windows, 0)]
        sims = xp.matmul(q, c.transpose(0, 2, 1))
        # padding and the row itself must never be picked
        sims = xp.where((windows[:, None, :] < 0) | (windows[:, None, :] == rows[:, :, None]), -np.inf, sims)
        top = xp.argpartition(-sims, kk - 1, axis=2)[:, :, :kk]
        top_sims = xp.take_along_axis(sims, top, axis=2)
        nbr = xp.take_along_axis(xp.broadcast_to(windows[:, None, :], sims.shape), top, axis=2)
        query = xp.broadcast_to(rows[:, :, None], top.shape)
        keep = (query >= 0) & (top_sims >= min_similarity)
        parts_q.append(query[keep])
        parts_n.append(nbr[keep])
        parts_s.append(top_sims[keep].astype(np.float32))
    return xp.concatenate(parts_q), xp.concatenate(parts_n), xp.concatenate(parts_s)


def device_bytes_per_record(dim: int, string_bytes: int) -> int:
    """Device bytes one record holds at the peak of a GPU run: its embedding (float32) and the distinct-vector
    copy kNN searches, its prepared strings (bytes and int64 offsets), its candidate pairs (int32 left and
    right, pattern, probability) at the ~10 pairs per record seen on synthetic data, and the labels of the
    components."""
    embedding = 2 * 4 * dim
    pairs = 10 * (4 + 4 + 4 + 8)
    return embedding + string_bytes + pairs + 2 * 8


def check_device_fits(n_records: int, bytes_per_record: int, free_bytes: int, total_bytes: int) -> None:
    """Fail before any work when the records cannot fit in the free device memory.

    Raises
    ------
    BackendUnavailableError
        With the sizes and what to change (exit code 2).
    """
    need = int(n_records) * int(bytes_per_record)
    if need <= free_bytes:
        return
    gib = 1 << 30
    fit = max(0, free_bytes // max(1, bytes_per_record))
    raise BackendUnavailableError(
        f"{n_records:,} records need about {need / gib:.1f} GiB of GPU memory and the GPU has "
        f"{free_bytes / gib:.1f} of {total_bytes / gib:.1f} GiB free (about {fit:,} records fit): free GPU "
        "memory (other processes), lower blocking.knn.dim or compare fewer columns, split the input into "
        "parts of at most that many records, or run with --backend cpu"
    )


@dataclass
class DeviceMemory:
    """Free device memory and the peak device memory of each stage (CuPy's pool), for the run's manifest.

    On the CPU backend (``xp`` is numpy) every method is a no-op and :meth:`describe` is empty.

    Notes
    -----
    CuPy's pool keeps freed blocks for reuse instead of returning them to the driver, so the bytes it holds at
    the end of a stage, after its free blocks were released at the start, are the stage's high-water mark
    (rounded up to the pool's block sizes). Memory taken outside the pool (cuDF's RMM, Numba device arrays,
    FAISS) is not counted; the GPU code allocates its arrays through ``xp`` so that it is.
    """

    xp: Any
    peaks: dict[str, int] = field(default_factory=dict)
    estimates: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def on_device(self) -> bool:
        return self.xp is not np

    def info(self) -> tuple[int, int]:
        """(free, total) bytes of the current device; (0, 0) on the CPU."""
        if not self.on_device:
            return 0, 0
        free, total = self.xp.cuda.runtime.memGetInfo()
        return int(free), int(total)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if not self.on_device:
            yield
            return
        pool = self.xp.get_default_memory_pool()
        pool.free_all_blocks()
        try:
            yield
        finally:
            self.xp.cuda.Device().synchronize()
            self.peaks[name] = max(self.peaks.get(name, 0), int(pool.total_bytes()))

    def check(self, stage: str, working_set: int, advice: str, **counts: Any) -> None:
        """Stop before a stage whose device working set (bytes) does not fit in the free device memory.

        The device counterpart of :meth:`gpucdp.memory.Budget.check`: on the GPU backend the candidate pairs,
        their patterns and weights live on the device, so that is the memory their stages must fit in. Free
        memory is read after the pool gave its cached free blocks back. Recorded under ``estimates``.

        Raises
        ------
        MemoryBudgetError
            Names the stage, the estimate, the free device memory and ``advice`` (what to change).
        """
        pool = self.xp.get_default_memory_pool()
        # a check inside a stage: what the pool held so far is the stage's peak so far, before it is freed
        self.peaks[stage] = max(self.peaks.get(stage, 0), int(pool.total_bytes()))
        pool.free_all_blocks()
        free, total = self.info()
        self.estimates[stage] = {"estimate_bytes": int(working_set), "free_bytes": free, **counts}
        if working_set > free:
            gb = 1e9
            raise MemoryBudgetError(
                f"the {stage} stage needs about {working_set / gb:.2f} GB of GPU memory but {free / gb:.2f} of "
                f"{total / gb:.2f} GB are free: {advice}, or run with --backend cpu"
            )

    def describe(self) -> dict[str, Any]:
        if not self.on_device:
            return {}
        free, total = self.info()
        return {"free_bytes": free, "total_bytes": total, "peak_bytes_by_stage": dict(self.peaks),
                "peak_bytes": max(self.peaks.values(), default=0), "estimates": dict(self.estimates)}
