"""Clustering: which scored pairs make one person, with an over-merge guard.

Connected components ("single" linkage) are transitive: one wrong edge between two people merges everything on
both sides, and the more records a run holds, the more such edges it has. The default, "average" linkage,
joins two groups of records only when all the pairs scored between them, taken together, say match: it merges
groups agglomeratively, each round joining every two groups that are each other's best partner (highest summed
log-odds over the pairs between them), as long as that sum is positive and one of those pairs reaches the
threshold. Records joined by pairs far above the threshold (two guard steps: 0.999 at 0.9) start as one group,
which saves rounds and changes little. A person whose records agree only through one bridging record stays
together; two people bridged by one record, whose other pairs disagree, do not. Groups only ever merge inside
one connected component of the edges at the threshold, so average linkage only splits what single linkage
would join.

The over-merge guard looks at clusters larger than ``max_cluster_size`` and clusters their records again, each
cluster on its own, with stricter thresholds (1 − (1 − t)/10 per step) until they fall apart or the steps run
out; clusters still too big are flagged in the output and the manifest rather than silently trusted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from gpucdp import memory
from gpucdp.arrays import run_starts, stable_argsort
from gpucdp.backend import Backend, to_host
from gpucdp.evaluate import sizes_summary

__all__ = ["ClusterResult", "cluster_pairs", "size_summary", "working_set"]

GUARD_STEPS = 4
#: Average linkage starts from the groups joined by edges this many guard steps above the threshold.
CORE_STEPS = 2
#: Rounds of average-linkage merging at most (each joins pairs of mutually best groups; a group of k records
#: takes about log2(k) rounds, a star of k records around one up to k, and so can k groups of one person whose
#: pairs agree about equally: the largest group has the largest sum with each, and takes one a round). Groups
#: not merged by then stay apart, and the manifest's ``merge_rounds_capped`` counts it.
MAX_MERGE_ROUNDS = 1000
#: Each pair's log-odds are rounded to this grid (2^-20 bits) and summed as int64 fixed point, so that a sum
#: is exact and the same in any order: a device's atomic additions, whose order changes from run to run, give
#: the host's sums (float sums, rounded afterwards, could differ in the last place and flip a near tie).
_SUM_GRID = float(2**20)
# A probability's log-odds are clipped to ±_WEIGHT_CLIP bits (as the model clips match weights), so that a
# probability of exactly 1 or 0 counts as strong evidence, not an infinity.
_WEIGHT_CLIP = 60.0
LINKAGES = ("average", "single")


@dataclass
class ClusterResult:
    """Cluster labels per record and what the guard did.

    Attributes
    ----------
    labels : int64[n]
        Cluster label per record, numbered 0.. in order of each cluster's first record.
    record_probability : float64[n]
        The highest match probability among the kept edges of each record inside its cluster (NaN for records
        alone).
    oversized : bool[n]
        Records in clusters still above the size cap after the guard.
    stats : dict
    """

    labels: np.ndarray
    record_probability: np.ndarray
    oversized: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)


def _relabel_first_seen(labels: Any, xp: Any = np) -> Any:
    """Renumber labels 0.. in order of each label's first record (labels are non-negative ints)."""
    n = labels.shape[0]
    if n == 0:
        return labels.astype(xp.int64)
    if xp is np:  # one pass on the host, where the sorts below took ~0.4 s for 3M records
        return _relabel_first_seen_host(labels, int(labels.max()) + 1)
    # A stable sort puts each label's first record at the head of its run.
    by_label = stable_argsort(labels, xp)
    head = run_starts(labels[by_label], xp)
    firsts = by_label[head]  # first record of each label, in label order
    rank = xp.empty(firsts.size, dtype=xp.int64)
    rank[stable_argsort(firsts, xp)] = xp.arange(firsts.size, dtype=xp.int64)
    out = xp.empty(n, dtype=xp.int64)
    out[by_label] = rank[xp.cumsum(head) - 1]
    return out


@numba.njit(cache=True, nogil=True)
def _relabel_first_seen_host(labels, bound):
    new = np.full(bound, -1, dtype=np.int64)
    out = np.empty(labels.shape[0], dtype=np.int64)
    seen = 0
    for i in range(labels.shape[0]):
        label = labels[i]
        if new[label] < 0:
            new[label] = seen
            seen += 1
        out[i] = new[label]
    return out


def _count_labels(labels: Any, xp: Any = np) -> int:
    """How many distinct labels (non-negative ints) ``labels`` holds."""
    if not labels.shape[0]:
        return 0
    return int(xp.count_nonzero(xp.bincount(labels)))


def _max_per_record(n: int, left: Any, right: Any, values: Any, labels: Any, xp: Any = np) -> tuple[Any, int]:
    """The largest of ``values`` (>= 0) over the edges at each record whose two records share a label:
    float64[n], NaN where a record has none; and how many edges that is.

    ``maximum.at`` is a scatter on both numpy and CuPy (whose ``.at`` has no ``fmax``, hence -1 for "none");
    the host runs the same scatter as a Numba loop, which also skips the edges between labels (0.3-0.5 s
    against 0.8-1.0 s for numpy's ``.at`` on 11.8M random edges of 3M records, and no mask).
    """
    out = xp.full(n, -1.0, dtype=xp.float64)
    if xp is np:
        used = _max_at_host(out, left, right, values, labels)
    else:
        inside = labels[left] == labels[right]
        left, right, values = left[inside], right[inside], values[inside]
        used = int(left.shape[0])
        xp.maximum.at(out, left, values)
        xp.maximum.at(out, right, values)
    out[out < 0] = xp.nan
    return out, used


@numba.njit(cache=True, nogil=True)
def _max_at_host(out, left, right, values, labels):
    used = 0
    for i in range(values.shape[0]):
        a, b = left[i], right[i]
        if labels[a] != labels[b]:
            continue
        v = values[i]
        out[a] = max(out[a], v)
        out[b] = max(out[b], v)
        used += 1
    return used


# Edges per block of the host's two parallel passes that keep edges.
_KEEP_BLOCK = 1 << 16


def _kept_edges(n: int, left: Any, right: Any, probability: Any, steps: Any, record_step: Any, xp: Any = np,
                chunk_size: int | None = None, before_write: Callable[[int], None] | None = None
                ) -> tuple[Any, Any, Any]:
    """The edges whose probability reaches their step's threshold, in their order.

    An edge's step is the larger of its records' ``record_step`` (int8[n]; None: step 0 for every record), and
    its threshold ``steps[step]`` (float64[GUARD_STEPS + 1]). On the host two parallel Numba passes count and
    write the kept edges, with no mask and no per-edge temporary; the device fills a mask ``chunk_size`` edges
    at a time and compresses by it. ``before_write`` is told how many edges are kept before they are written
    (the stage's memory check).
    """
    if xp is np:
        # with no steps yet every edge is held against steps[0], and its records' steps are not read
        stepped = record_step is not None
        if not stepped:
            record_step = np.zeros(0, dtype=np.int8)
        blocks = (int(left.shape[0]) + _KEEP_BLOCK - 1) // _KEEP_BLOCK
        starts = np.zeros(blocks + 1, dtype=np.int64)
        nothing = (left[:0], right[:0], probability[:0])
        _keep_pass(left, right, probability, steps, record_step, stepped, _KEEP_BLOCK, starts[1:], *nothing, False)
        np.cumsum(starts, out=starts)
        kept = int(starts[-1])
        if before_write is not None:
            before_write(kept)
        out = (np.empty(kept, left.dtype), np.empty(kept, right.dtype), np.empty(kept, probability.dtype))
        _keep_pass(left, right, probability, steps, record_step, stepped, _KEEP_BLOCK, starts, *out, True)
        return out
    # a chunk's gathers (two int8 steps and a float64 threshold per edge) are its only temporaries
    mask = xp.empty(int(left.shape[0]), dtype=xp.bool_)
    threshold = float(steps[0]) if record_step is None else None
    for part in _chunks(int(left.shape[0]), chunk_size):
        if threshold is not None:
            mask[part] = probability[part] >= threshold
        else:
            mask[part] = probability[part] >= steps[xp.maximum(record_step[left[part]], record_step[right[part]])]
    if before_write is not None:
        before_write(int(xp.count_nonzero(mask)))
    return left[mask], right[mask], probability[mask]


def _chunks(length: int, chunk_size: int | None) -> list[slice]:
    """Slices of ``chunk_size`` (None: all) covering ``range(length)``."""
    step = max(int(chunk_size or length), 1)
    return [slice(start, start + step) for start in range(0, length, step)]


@numba.njit(cache=True, nogil=True, parallel=True)
def _keep_pass(left, right, probability, steps, record_step, stepped, block, starts, out_left, out_right,
               out_probability, write):
    # Block b of the edges: its kept edges counted into starts[b], or, with ``write``, written from starts[b] on
    # (one function for both passes: one compilation).
    for b in numba.prange((left.shape[0] + block - 1) // block):
        at = starts[b] if write else 0
        for i in range(b * block, min((b + 1) * block, left.shape[0])):
            step = max(record_step[left[i]], record_step[right[i]]) if stepped else 0
            if probability[i] >= steps[step]:
                if write:
                    out_left[at] = left[i]
                    out_right[at] = right[i]
                    out_probability[at] = probability[i]
                at += 1
        if not write:
            starts[b] = at


def _pairs_among(n: int, left: Any, right: Any, probability: Any, members: Any, xp: Any = np,
                 chunk_size: int | None = None, before_write: Callable[[int], None] | None = None,
                 sorted_left: bool = False) -> tuple[Any, Any, Any]:
    """The pairs whose two records are both ``members`` (bool[n]), in their order: the scored pairs a guard round
    weighs.

    On the host, when the pairs are sorted by ``left`` (as the pipeline hands them over), two Numba passes read
    only the members' own runs of pairs, found by binary search: a guard round's few big clusters cost their
    pairs, not every scored pair. Otherwise every pair is read, through :func:`_kept_edges` with a step of its
    own for the members (threshold −∞) and for the rest (+∞), so that the pass reads one byte a record.
    """
    if xp is np and sorted_left:
        ids = np.flatnonzero(members).astype(left.dtype)
        nothing = (left[:0], right[:0], probability[:0])
        count = _among_pass(left, right, probability, ids, members, *nothing, False)
        if before_write is not None:
            before_write(count)
        out = (np.empty(count, left.dtype), np.empty(count, right.dtype), np.empty(count, probability.dtype))
        _among_pass(left, right, probability, ids, members, *out, True)
        return out
    steps = xp.asarray(np.array([-np.inf, np.inf]))
    return _kept_edges(n, left, right, probability, steps, (~members).astype(xp.int8), xp, chunk_size,
                       before_write)


@numba.njit(cache=True, nogil=True)
def _among_pass(left, right, probability, ids, members, out_left, out_right, out_probability, write):
    # the pairs of each member (``ids``, ascending) as the left record, whose right record is a member too:
    # counted, or, with ``write``, written
    at = 0
    for record in ids:
        i = np.searchsorted(left, record)
        while i < left.shape[0] and left[i] == record:
            if members[right[i]]:
                if write:
                    out_left[at] = left[i]
                    out_right[at] = right[i]
                    out_probability[at] = probability[i]
                at += 1
            i += 1
    return at


def _local_ids(members: Any, ids: Any, xp: Any = np) -> Any:
    """Each of ``ids`` (records among ``members``, ascending) numbered among the members, in the ids' dtype."""
    return xp.searchsorted(members, ids).astype(ids.dtype)


def _log_odds(probability: Any, xp: Any = np) -> Any:
    """log2(p / (1 − p)), within about ±60 bits (p and 1 − p floored at 2^-60): a pair's evidence, in bits."""
    floor = 2.0**-_WEIGHT_CLIP
    return xp.log2(xp.maximum(probability, floor)) - xp.log2(xp.maximum(1.0 - probability, floor))


def _log_odds_units(probability: Any, xp: Any = np) -> Any:
    """:func:`_log_odds` in units of 2^-20 bits (:data:`_SUM_GRID`), int64: what average linkage sums."""
    return xp.rint(_log_odds(probability, xp) * _SUM_GRID).astype(xp.int64)


@numba.njit(cache=True, nogil=True)
def _log_odds_units_host(p):
    floor = 2.0**-_WEIGHT_CLIP  # globals: compile-time constants to Numba
    return np.int64(np.rint((math.log2(max(p, floor)) - math.log2(max(1.0 - p, floor))) * _SUM_GRID))


def _cross_pairs(left: Any, right: Any, probability: Any, outer: Any, core: Any, groups: int, steps: Any,
                 record_step: Any, chunk_size: int, xp: Any = np,
                 before_write: Callable[[int], None] | None = None) -> tuple[Any, Any, Any]:
    """The scored pairs that average linkage weighs: inside one outer component, between two cores.

    Returns, per such pair, ``min(core) * groups + max(core)`` (int64), its log-odds (int64, in units of
    2^-20 bits: :func:`_log_odds_units`) and whether it reaches its records' step threshold (bool). On the
    host two parallel Numba passes count and write them, with no per-pair temporary (they read every scored
    pair). The device, too, counts before it writes: a mask ``chunk_size`` pairs at a time, then each chunk's
    pairs gathered into their place. ``before_write`` is told how many there are before they are written (the
    stage's memory check).
    """
    if xp is np:
        # A record in a component of one core has no pair to weigh: a byte per record says so, read before the
        # labels (most pairs end there), and consecutive pairs between the same two cores (a record's pairs
        # with one other core) are summed as they are written.
        core_outer = np.empty(groups, dtype=np.int64)
        core_outer[core] = outer
        mixed = (np.bincount(core_outer, minlength=int(outer.max()) + 1) > 1)[outer] if groups else outer > 0
        blocks = (int(left.shape[0]) + _KEEP_BLOCK - 1) // _KEEP_BLOCK
        starts = np.zeros(blocks + 1, dtype=np.int64)
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.bool_))
        _cross_pass(left, right, probability, outer, core, mixed, groups, steps, record_step, _KEEP_BLOCK,
                    starts[1:], *empty, False)
        np.cumsum(starts, out=starts)
        if before_write is not None:
            before_write(int(starts[-1]))
        out = (np.empty(int(starts[-1]), np.int64), np.empty(int(starts[-1]), np.int64),
               np.empty(int(starts[-1]), np.bool_))
        _cross_pass(left, right, probability, outer, core, mixed, groups, steps, record_step, _KEEP_BLOCK, starts,
                    *out, True)
        return out
    parts = _chunks(int(left.shape[0]), chunk_size)
    mask = xp.empty(int(left.shape[0]), dtype=xp.bool_)
    for part in parts:
        l, r = left[part], right[part]
        mask[part] = (outer[l] == outer[r]) & (core[l] != core[r])
    count = int(xp.count_nonzero(mask))
    if before_write is not None:
        before_write(count)
    keys = xp.empty(count, dtype=xp.int64)
    weights = xp.empty(count, dtype=xp.int64)
    eligible = xp.empty(count, dtype=xp.bool_)
    at = 0
    for part in parts:
        chosen = mask[part]
        l, r, p = left[part][chosen], right[part][chosen], probability[part][chosen]
        cl, cr = core[l], core[r]
        into = slice(at, at + int(l.shape[0]))
        keys[into] = xp.minimum(cl, cr) * groups + xp.maximum(cl, cr)
        weights[into] = _log_odds_units(p, xp)
        eligible[into] = p >= steps[xp.maximum(record_step[l], record_step[r])]
        at = into.stop
    return keys, weights, eligible


@numba.njit(cache=True, nogil=True, parallel=True)
def _cross_pass(left, right, probability, outer, core, mixed, groups, steps, record_step, block, starts, out_key,
                out_weight, out_eligible, write):
    # as _keep_pass: block b's pairs counted into starts[b], or, with ``write``, written from starts[b] on; a
    # pair with the key of the block's last one is added to it
    for b in numba.prange((left.shape[0] + block - 1) // block):
        at = starts[b] if write else 0
        last = -1
        for i in range(b * block, min((b + 1) * block, left.shape[0])):
            a, c = left[i], right[i]
            if not (mixed[a] and mixed[c]) or outer[a] != outer[c] or core[a] == core[c]:
                continue
            key = min(core[a], core[c]) * groups + max(core[a], core[c])
            if key != last:
                at += 1
                last = key
                if write:
                    out_key[at - 1] = key
                    out_weight[at - 1] = 0
                    out_eligible[at - 1] = False
            if write:
                out_weight[at - 1] += _log_odds_units_host(probability[i])
                out_eligible[at - 1] |= probability[i] >= steps[max(record_step[a], record_step[c])]
        if not write:
            starts[b] = at


def _group_pairs(keys: Any, weights: Any, eligible: Any, xp: Any = np) -> tuple[Any, Any, Any]:
    """Distinct ``keys`` (int64), the summed ``weights`` (int64, exact) and whether any pair is ``eligible``,
    per key."""
    if not keys.size:
        return keys, weights, eligible
    if xp is np:  # an argsort and segment reductions, with no inverse: 3.3M keys in 0.16 s against 0.25 s
        order = np.argsort(keys)
        keys = keys[order]
        starts = np.flatnonzero(run_starts(keys))
        return keys[starts], np.add.reduceat(weights[order], starts), np.logical_or.reduceat(eligible[order], starts)
    keys, inverse = xp.unique(keys, return_inverse=True)
    inverse = inverse.ravel()
    # int64 sums by a scatter-add on their uint64 bits (CuPy's add.at has uint64, not int64; two's complement
    # wraps the same): exact, where a float bincount's atomic additions round in a varying order
    sums = xp.zeros(int(keys.size), dtype=xp.uint64)
    xp.add.at(sums, inverse, weights.view(xp.uint64))
    sums = sums.view(xp.int64)
    reach = xp.bincount(inverse, weights=eligible.astype(xp.float64), minlength=int(keys.size)) > 0
    return keys, sums, reach


def _average_linkage(core: Any, groups: int, outer: Any, keys: Any, weights: Any, eligible: Any,
                     xp: Any = np) -> tuple[Any, int]:
    """Merge groups by average linkage, starting from ``core`` (group per record, numbered 0..groups-1 in order
    of each group's first record), weighing the pairs between groups (:func:`_cross_pairs`).

    Each round every group names its best partner: of the groups it has a positive summed log-odds with and at
    least one eligible pair, the highest sum (on a 2^-20 grid), the lowest-numbered on a tie. Two groups that
    name each other merge, keeping the lower number, which is also the group whose first record comes first:
    numbers, and so the result, do not depend on how the components were labelled. Returns each record's group
    and the rounds run.

    Groups merge only inside one outer component (``outer``, per record), and a component in which no two
    groups merged in a round has none left that may: its pairs leave the table, so that the later rounds,
    which a few big components need, cost those components' pairs, not every component's.
    """
    keys, sums, reach = _group_pairs(keys, weights, eligible, xp)
    group_outer = xp.zeros(groups, dtype=xp.int64)
    group_outer[core] = outer
    merging = xp.zeros(int(outer.max()) + 1 if outer.shape[0] else 0, dtype=xp.bool_)  # per component
    to = xp.arange(groups, dtype=xp.int64)
    # per group: its best score and best partner (float64: the scatter-min CuPy has), set for the groups of a
    # round's table and put back after it, so that a round costs its table, not the number of groups
    best = xp.full(groups, -np.inf, dtype=xp.float64)
    partner = xp.full(groups, np.inf, dtype=xp.float64)
    rounds = 0
    while keys.size and rounds < MAX_MERGE_ROUNDS:
        a, b = keys // groups, keys % groups
        score = sums.astype(xp.float64)  # exact: sums stay far below 2^53 units
        ok = reach & (score > 0)
        if not bool(ok.any()):
            break
        ends = xp.concatenate([a[ok], b[ok]])
        other = xp.concatenate([b[ok], a[ok]])
        both = xp.concatenate([score[ok], score[ok]])
        xp.maximum.at(best, ends, both)
        top = both == best[ends]
        xp.minimum.at(partner, ends[top], other[top].astype(xp.float64))
        mutual = ok & (partner[a] == b) & (partner[b] == a)
        best[ends] = -np.inf
        partner[ends] = np.inf
        if not bool(mutual.any()):
            break
        to[b[mutual]] = a[mutual]  # each group is in one mutual pair at most: ``a`` stays a group of its own
        merged = group_outer[a[mutual]]
        merging[merged] = True
        live = merging[group_outer[a]]
        merging[merged] = False
        a, b = to[a], to[b]
        apart = live & (a != b)
        a, b = a[apart], b[apart]
        keys, sums, reach = _group_pairs(xp.minimum(a, b) * groups + xp.maximum(a, b), sums[apart], reach[apart], xp)
        rounds += 1
    while True:  # follow merges made in later rounds to their end
        onward = to[to]
        if bool(xp.all(onward == to)):
            break
        to = onward
    return to[core], rounds


def working_set(n: int, scored: int, *, linkage: str, chunk_size: int, kept: int = 0, cross: int = 0,
                among: int = 0, guard: int = 0, index_bytes: int = 4) -> int:
    """Bytes :func:`cluster_pairs` holds at its peak beyond the scored pairs it is given (on the high side).

    The kept edges (and their subsets: the cores', a guard round's) and the per-record arrays last the whole
    stage; the rest is the larger of what the passes over the scored pairs, the merge rounds and the last pass
    over the kept edges hold. The constants are in :mod:`gpucdp.memory`, measured on the device's arrays.

    Parameters
    ----------
    n : int
        Records.
    scored : int
        Scored pairs.
    linkage : {"average", "single"}
    chunk_size : int
        Pairs per step of the device's passes (0 on the host, whose passes hold no chunk).
    kept, cross, among : int
        Edges kept at the threshold; pairs between groups that average linkage weighs; pairs inside big
        clusters that a guard round weighs. A count not known yet is 0: the stage checks again as each
        becomes known.
    guard : {0, 1}
        Whether a guard round runs.
    index_bytes : int
        Bytes of a record number in the pairs (4 for int32).
    """
    edge = 2 * index_bytes + 8  # left, right, probability
    lasting = (n * (memory.CLUSTER_BYTES_PER_RECORD + guard * memory.CLUSTER_GUARD_BYTES_PER_RECORD)
               + kept * memory.CLUSTER_EDGE_COPIES * edge)
    # a chunk of the passes over the scored pairs (average linkage) or over the kept edges (the guard's)
    chunked = min(chunk_size, scored if linkage == "average" else kept)
    passes = scored * memory.CLUSTER_BYTES_PER_SCORED_PAIR + chunked * memory.CLUSTER_CHUNK_BYTES_PER_PAIR
    rounds = 0
    if linkage == "average":
        lasting += among * edge
        passes += cross * memory.CLUSTER_BYTES_PER_CROSS_PAIR
        rounds = cross * memory.CLUSTER_MERGE_BYTES_PER_CROSS_PAIR
    return int(lasting + max(passes, rounds, kept * memory.CLUSTER_BYTES_PER_KEPT_EDGE))


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
    position: Any = None,
    linkage: str = "average",
    chunk_size: int = 1 << 24,
    need: Callable[..., None] | None = None,
) -> ClusterResult:
    """Cluster records: average linkage (or connected components) over the edges with probability ≥ threshold.

    Parameters
    ----------
    n : int
        Number of records.
    left, right : int32 or int64[m]
        Scored candidate pairs (read in their own dtype, not copied).
    probability : float32/float64[m]
        Match probability per pair.
    threshold : float
        Edges at or above it may join clusters (with average linkage, when the pairs between the groups agree).
    max_cluster_size : int
        Clusters above it are split by the guard (when ``split_oversized``) or flagged.
    backend : Backend
        Provides the array module (the pairs and probabilities may be its arrays: on the GPU backend they stay
        on the device, and only per-record results come back) and connected components (Numba union-find on the
        host, cuGraph or the Numba CUDA kernel on the GPU).
    position : int64[n], optional
        When the pairs number the records in another order than the input's: record i of the input is number
        ``position[i]`` (an ``xp`` array). The results are per input record, labelled in input order.
    linkage : {"average", "single"}
        "single": connected components of the edges at the threshold. "average": groups inside those
        components merge only while the pairs between them, summed in log-odds, say match (module docstring).
    chunk_size : int
        Pairs per step of the device's array operations over all scored pairs.
    need : callable, optional
        The memory check: called with the bytes the stage will hold beyond the pairs it was given
        (:func:`working_set`) and the counts they come from (as keywords), each time one of those counts
        becomes known, before the arrays of that count are made; it raises to stop the run.
    """
    if linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    xp = backend.xp
    left, right = xp.asarray(left), xp.asarray(right)
    probability = xp.asarray(probability, dtype=xp.float64)
    scored = (left, right, probability)  # average linkage weighs every scored pair, not only the kept edges
    edges_scored = int(left.shape[0])
    # A stricter threshold only ever removes edges, so the guard works on the edges kept at the threshold:
    # about one per record, where the scored pairs are many. Each guard round raises some records' step, so
    # its edges are a subset of the round before's, and are kept from those. The steps go CORE_STEPS further
    # for average linkage's cores.
    steps = [threshold]
    for _ in range(GUARD_STEPS + CORE_STEPS):
        steps.append(1.0 - (1.0 - steps[-1]) / 10.0)
    steps = xp.asarray(np.array(steps, dtype=np.float64))
    record_step = xp.zeros(n, dtype=xp.int8)  # 0..GUARD_STEPS: gathered per edge, so the narrowest type
    merge_rounds = capped = 0
    counts = {"kept": 0, "cross": 0, "among": 0, "guard": 0}

    def check(name: str) -> Callable[[int], None]:
        """The memory check to run once the count ``name`` is known (before its arrays are written)."""
        def known(count: int) -> None:
            counts[name] = max(counts[name], count)
            if need is not None:  # (the host's passes have no chunks)
                need(working_set(n, edges_scored, linkage=linkage, chunk_size=chunk_size if xp is not np else 0,
                                 index_bytes=left.itemsize, **counts), **counts)
        return known

    def clusters(m: int, kept: tuple[Any, Any, Any], scored: tuple[Any, Any, Any],
                 step: Any) -> tuple[Any, int, Any]:
        """Labels of ``m`` records, the merge rounds, and the connected components, from the edges kept at
        their records' steps ``step`` (and, for average linkage, the ``scored`` pairs that may lie inside
        those)."""
        components = xp.asarray(backend.connected_components(m, kept[0], kept[1]))
        if linkage == "single":
            return components, 0, components
        core_left, core_right, _ = _kept_edges(m, *kept, steps[CORE_STEPS:], step, xp, chunk_size)
        core = _relabel_first_seen(xp.asarray(backend.connected_components(m, core_left, core_right)), xp)
        del core_left, core_right
        groups = int(core.max()) + 1 if m else 0
        keys, weights, eligible = _cross_pairs(*scored, components, core, groups, steps, step,
                                               chunk_size, xp, check("cross"))
        return (*_average_linkage(core, groups, components, keys, weights, eligible, xp), components)

    left, right, probability = _kept_edges(n, left, right, probability, steps, None, xp, chunk_size,
                                           check("kept"))
    labels, rounds, components = clusters(n, (left, right, probability), scored, record_step)
    merge_rounds += rounds
    capped += rounds >= MAX_MERGE_ROUNDS
    kept_apart = _count_labels(labels, xp) - _count_labels(components, xp)
    del components
    guard_rounds = 0
    split_clusters = 0
    sorted_left = None  # whether the scored pairs are sorted by left: looked at once, when a guard round needs it
    while split_oversized and guard_rounds < GUARD_STEPS and n:
        sizes = xp.bincount(labels, minlength=int(labels.max()) + 1)
        big = sizes > max_cluster_size
        if not bool(big.any()):
            break
        guard_rounds += 1
        check("guard")(1)
        split_clusters += int(big.sum())
        in_big = big[labels]
        record_step[in_big] = xp.minimum(record_step[in_big] + 1, GUARD_STEPS)
        left, right, probability = _kept_edges(n, left, right, probability, steps, record_step, xp, chunk_size)
        # Only the big clusters' records are clustered again, numbered among themselves (so that a round costs
        # them, not every record), each cluster from the kept edges inside it; the other records keep their
        # labels, and the new ones are numbered after them. (For connected components this is what clustering
        # every record again would give: no kept edge ever joined two clusters.)
        inside = in_big[left] & (labels[left] == labels[right])
        members = xp.flatnonzero(in_big)
        kept = (_local_ids(members, left[inside], xp), _local_ids(members, right[inside], xp),
                probability[inside])
        del inside
        if linkage == "average":
            if sorted_left is None and xp is np:
                sorted_left = bool(np.all(scored[0][1:] >= scored[0][:-1]))
            among = _pairs_among(n, *scored, in_big, xp, chunk_size, check("among"), bool(sorted_left))
            among = _local_ids(members, among[0], xp), _local_ids(members, among[1], xp), among[2]
        else:
            among = kept  # (not read)
        split, rounds, _ = clusters(int(members.shape[0]), kept, among, record_step[members])
        del kept, among
        # renumbered at once, so that labels stay below n (the host's renumbering holds an array of the largest)
        labels[members] = split + (int(labels.max()) + 1)
        labels = _relabel_first_seen(labels, xp)
        merge_rounds += rounds
        capped += rounds >= MAX_MERGE_ROUNDS
    # Per record from here on: what the profiles need comes back to the host, the pairs stay where they are.
    # (Kept edges between groups that average linkage did not merge join nothing, and are no record's best.)
    record_probability, edges_kept = _max_per_record(n, left, right, probability, labels, xp)
    if position is not None:  # back to input order, before the labels are numbered by first record
        labels, record_probability = labels[position], record_probability[position]
    labels = to_host(_relabel_first_seen(labels.astype(xp.int64), xp))
    record_probability = to_host(record_probability)
    sizes = np.bincount(labels, minlength=int(labels.max(initial=-1)) + 1)
    oversized = sizes[labels] > max_cluster_size if n else np.zeros(0, dtype=bool)
    stats = size_summary(labels)
    stats.update({
        "linkage": linkage,
        "threshold": threshold,
        "edges_scored": edges_scored,
        "edges_kept": edges_kept,
        "max_cluster_size": max_cluster_size,
        "merge_rounds": merge_rounds,
        # how many times the merging stopped at MAX_MERGE_ROUNDS with groups that might still merge left apart
        "merge_rounds_capped": int(capped),
        # how many more clusters average linkage made than the connected components held (before the guard)
        "kept_apart": kept_apart,
        "guard_rounds": guard_rounds,
        "guard_clusters_split": split_clusters,
        "oversized_clusters": int((sizes > max_cluster_size).sum()),
        "oversized_records": int(oversized.sum()),
    })
    return ClusterResult(labels, record_probability, oversized, stats)
