"""Clustering: connected components over the pairs at or above the match threshold.

Connected components are transitive: one wrong edge between two people merges everything on both sides. The
over-merge guard looks at clusters larger than ``max_cluster_size`` and re-runs the components inside them with
stricter thresholds (1 − (1 − t)/10 per step) until they fall apart or the steps run out; clusters still too big
are flagged in the output and the manifest rather than silently trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpucdp.backend import Backend, to_host
from gpucdp.evaluate import sizes_summary

__all__ = ["ClusterResult", "cluster_pairs", "size_summary"]

GUARD_STEPS = 4


@dataclass
class ClusterResult:
    """Cluster labels per record and what the guard did.

    Attributes
    ----------
    labels : int64[n]
        Cluster label per record, numbered 0.. in order of each cluster's first record.
    record_probability : float64[n]
        The highest match probability among the kept edges of each record (NaN for records alone).
    oversized : bool[n]
        Records in clusters still above the size cap after the guard.
    stats : dict
    """

    labels: np.ndarray
    record_probability: np.ndarray
    oversized: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)


def _relabel_first_seen(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0.. in order of each label's first record (labels are already dense ints)."""
    n = labels.shape[0]
    k = int(labels.max()) + 1
    first = np.full(k, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n, dtype=np.int64))
    present = first < n
    order = np.argsort(first[present], kind="stable")
    remap = np.full(k, -1, dtype=np.int64)
    remap[np.flatnonzero(present)[order]] = np.arange(order.shape[0], dtype=np.int64)
    return remap[labels]


def size_summary(labels: np.ndarray) -> dict[str, Any]:
    """Cluster count, mean size and size distribution (buckets as in :func:`gpucdp.evaluate.sizes_summary`)."""
    sizes = np.bincount(labels) if labels.size else np.zeros(0, dtype=np.int64)
    summary = sizes_summary(sizes)
    summary["mean_size"] = summary["records"] / summary["clusters"] if summary["clusters"] else 0.0
    return summary


def cluster_pairs(
    n: int,
    left: np.ndarray,
    right: np.ndarray,
    probability: np.ndarray,
    *,
    threshold: float,
    max_cluster_size: int,
    split_oversized: bool,
    backend: Backend,
) -> ClusterResult:
    """Cluster records by connected components of the edges with probability ≥ threshold.

    Parameters
    ----------
    n : int
        Number of records.
    left, right : int64[m]
        Scored candidate pairs.
    probability : float32/float64[m]
        Match probability per pair.
    threshold : float
        Edges at or above it join clusters.
    max_cluster_size : int
        Clusters above it are split by the guard (when ``split_oversized``) or flagged.
    backend : Backend
        Provides connected components (SciPy or cuGraph).
    """
    left = to_host(left).astype(np.int64, copy=False)
    right = to_host(right).astype(np.int64, copy=False)
    probability = to_host(probability).astype(np.float64, copy=False)
    edge_mask = probability >= threshold
    labels = to_host(backend.connected_components(n, left[edge_mask], right[edge_mask]))
    steps = [threshold]
    for _ in range(GUARD_STEPS):
        steps.append(1.0 - (1.0 - steps[-1]) / 10.0)
    record_step = np.zeros(n, dtype=np.int64)
    guard_rounds = 0
    split_clusters = 0
    while split_oversized and guard_rounds < GUARD_STEPS:
        sizes = np.bincount(labels, minlength=int(labels.max(initial=0)) + 1)
        big = sizes > max_cluster_size
        if not big.any():
            break
        guard_rounds += 1
        split_clusters += int(big.sum())
        in_big = big[labels]
        record_step[in_big] = np.minimum(record_step[in_big] + 1, GUARD_STEPS)
        edge_step = np.maximum(record_step[left], record_step[right])
        edge_mask = probability >= np.asarray(steps)[edge_step]
        labels = to_host(backend.connected_components(n, left[edge_mask], right[edge_mask]))
    labels = _relabel_first_seen(labels.astype(np.int64, copy=False)) if n else labels.astype(np.int64)
    sizes = np.bincount(labels, minlength=int(labels.max(initial=-1)) + 1)
    oversized = sizes[labels] > max_cluster_size if n else np.zeros(0, dtype=bool)
    record_probability = np.full(n, np.nan, dtype=np.float64)
    kept_p = probability[edge_mask]
    np.fmax.at(record_probability, left[edge_mask], kept_p)
    np.fmax.at(record_probability, right[edge_mask], kept_p)
    stats = size_summary(labels)
    stats.update({
        "threshold": threshold,
        "edges_scored": int(left.shape[0]),
        "edges_kept": int(edge_mask.sum()),
        "max_cluster_size": max_cluster_size,
        "guard_rounds": guard_rounds,
        "guard_clusters_split": split_clusters,
        "oversized_clusters": int((sizes > max_cluster_size).sum()),
        "oversized_records": int(oversized.sum()),
    })
    return ClusterResult(labels, record_probability, oversized, stats)
