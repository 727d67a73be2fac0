"""Connected components: parallel hooking and pointer jumping for GPUs without cuGraph, union–find on the CPU.

The hooking step is written once, in :func:`build`, and compiled twice: with ``numba.njit`` for the CPU
(:func:`components_cpu`, used by tests and as the reference of the CUDA twin) and with
``numba.cuda.jit(device=True)`` for the GPU (:func:`components_cuda`, a thread per edge, then a thread per
vertex). The CPU backend runs :func:`union_find`: one sequential pass over the edges with path halving, the
same labels, and no copy of the edges (SciPy's ``connected_components`` builds a sparse matrix of them first).

Notes
-----
Every vertex starts as its own root (``parent[v] = v``). Each round, every edge ``(u, v)`` finds the roots of
its two ends and, when they differ, hooks the larger root under the smaller with an atomic minimum; then every
vertex jumps to its root (pointer jumping). Rounds repeat until no edge hooks. Parents only ever decrease and
always point inside the vertex's component, so the loop ends, never merges two components, and leaves every
vertex pointing at its component's smallest vertex: the labels are deterministic whatever the order in which
threads ran. A race where a root was hooked by another thread between ``find`` and the atomic minimum can drop
that hook, but the edge that made it still sees two roots in the next round, so the round repeats (the classic
Shiloach–Vishkin argument; Jaiganesh & Burtscher, "A high-performance connected components implementation for
GPUs", HPDC 2018).
"""

from __future__ import annotations

import numba
import numpy as np
from gpucdp.kernels.device import as_device

__all__ = ["build", "components_cpu", "components_cuda", "union_find", "HAVE_CUDA"]

_THREADS = 256


def build(jit, atomic_min):
    """Compile ``find`` and the per-edge ``hook`` with ``jit``; ``atomic_min(array, index, value)`` returns
    the old value (``numba.cuda.atomic.min`` on the GPU, a plain read-compare-write on the CPU)."""

    @jit
    def find(parent, v):
        while parent[v] != v:
            v = parent[v]
        return v

    @jit
    def hook(parent, u, v):
        """Hook the larger of the two roots under the smaller; 1 when the ends had different roots."""
        ru = find(parent, u)
        rv = find(parent, v)
        if ru == rv:
            return 0
        if ru < rv:
            atomic_min(parent, rv, ru)
        else:
            atomic_min(parent, ru, rv)
        return 1

    return find, hook


@numba.njit(cache=True, nogil=True)
def _min_host(array, index, value):
    old = array[index]
    if value < old:
        array[index] = value
    return old


_find_host, _hook_host = build(numba.njit(cache=True, nogil=True), _min_host)


@numba.njit(cache=True, nogil=True)
def components_cpu(n, left, right):
    """Component label of every vertex: the smallest vertex of its component.

    Parameters
    ----------
    n : int
        Number of vertices.
    left, right : int32 or int64[m]
        Edge end points, each in ``[0, n)``.

    Returns
    -------
    int64[n]
    """
    parent = np.arange(n, dtype=np.int64)
    changed = 1
    while changed:
        changed = 0
        for e in range(left.shape[0]):
            changed |= _hook_host(parent, left[e], right[e])
        for v in range(n):
            parent[v] = _find_host(parent, v)
    return parent


@numba.njit(cache=True, nogil=True)
def _find_halving(parent, v):
    while parent[v] != v:
        parent[v] = parent[parent[v]]  # path halving: every other vertex on the way skips a level
        v = parent[v]
    return v


@numba.njit(cache=True, nogil=True)
def union_find(n, left, right):
    """Component label of every vertex, the smallest vertex of its component: :func:`components_cpu`'s labels
    in one pass over the edges.

    Parameters
    ----------
    n : int
        Number of vertices.
    left, right : int32 or int64[m]
        Edge end points, each in ``[0, n)``; read as they are.

    Returns
    -------
    int64[n]

    Notes
    -----
    Union–find with the larger root linked under the smaller and path halving in every find: ``parent[v] <= v``
    always holds, so each root is its tree's smallest vertex, and one pass in vertex order after the edges
    makes every label a root. Path halving bounds the work at O(m log n) whatever the edge order (Tarjan and
    van Leeuwen, "Worst-case analysis of set union algorithms", JACM 1984); a find without it can walk a chain
    of n parents for every edge.
    """
    parent = np.arange(n, dtype=np.int64)
    for e in range(left.shape[0]):
        ru = _find_halving(parent, left[e])
        rv = _find_halving(parent, right[e])
        if ru < rv:
            parent[rv] = ru
        elif rv < ru:
            parent[ru] = rv
    for v in range(n):  # parent[v] < v is final already: one step reaches the root
        parent[v] = parent[parent[v]]
    return parent


HAVE_CUDA = False
try:  # the CUDA twin is optional: numba-cuda may be missing on CPU-only installs
    from numba import cuda as _cuda

    @_cuda.jit(device=True)
    def _atomic_min(array, index, value):
        # a device function, not ``_cuda.atomic.min`` bound at import: the simulator swaps in its own
        # ``cuda`` module only when a kernel or device function runs
        return _cuda.atomic.min(array, index, value)

    _find_device, _hook_device = build(_cuda.jit(device=True), _atomic_min)

    @_cuda.jit
    def _hook_edges(parent, left, right, changed):
        e = _cuda.grid(1)
        if e < left.shape[0]:
            if _hook_device(parent, left[e], right[e]):
                changed[0] = 1

    @_cuda.jit
    def _jump(parent):
        v = _cuda.grid(1)
        if v < parent.shape[0]:
            parent[v] = _find_device(parent, v)

    HAVE_CUDA = True
except ImportError:  # pragma: no cover - depends on the install
    pass


def components_cuda(n, left, right, xp=np):
    """:func:`components_cpu` on the GPU: the same labels.

    Parameters
    ----------
    n : int
    left, right : int32 or int64[m]
        Device arrays (CuPy or Numba; read as they are) or numpy arrays (copied to the device as int64).
    xp : module
        The array module that allocates the labels (``cupy`` on a GPU, so CuPy's pool accounts for them;
        ``numpy`` under the CUDA simulator).

    Returns
    -------
    int64[n], an ``xp`` array (or a Numba device array when ``xp`` is numpy and a real GPU is used)
    """
    if not HAVE_CUDA:
        raise ValueError("components_cuda needs numba-cuda: pip install 'gpucdp[gpu]'")
    parent = xp.arange(n, dtype=np.int64)
    d_parent = as_device(parent)
    m = int(left.shape[0])
    if m and n:
        d_left = as_device(left, np.int64)
        d_right = as_device(right, np.int64)
        changed = _cuda.to_device(np.zeros(1, dtype=np.int32))
        edge_blocks = (m + _THREADS - 1) // _THREADS
        vertex_blocks = (n + _THREADS - 1) // _THREADS
        while True:
            changed[0] = 0
            _hook_edges[edge_blocks, _THREADS](d_parent, d_left, d_right, changed)
            _jump[vertex_blocks, _THREADS](d_parent)
            if int(changed.copy_to_host()[0]) == 0:  # 4 bytes back per round: O(log n) rounds in practice
                break
    if isinstance(parent, np.ndarray):
        return d_parent.copy_to_host()
    return parent


