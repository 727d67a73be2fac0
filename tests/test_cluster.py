import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gpucdp.backend import get_backend
from gpucdp.cluster import cluster_pairs, size_summary

BACKEND = get_backend("cpu")


def _naive_components(n, edges):
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    return [find(i) for i in range(n)]


def _same_partition(a, b):
    pairs_a = {(i, j) for i in range(len(a)) for j in range(i) if a[i] == a[j]}
    pairs_b = {(i, j) for i in range(len(b)) for j in range(i) if b[i] == b[j]}
    return pairs_a == pairs_b


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 25).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.floats(0, 1)), max_size=40))))
def test_components_match_naive_union_find(case):
    n, edges = case
    left = np.array([e[0] for e in edges], dtype=np.int64)
    right = np.array([e[1] for e in edges], dtype=np.int64)
    prob = np.array([e[2] for e in edges], dtype=np.float64)
    result = cluster_pairs(n, left, right, prob, threshold=0.5, max_cluster_size=10_000, split_oversized=False,
                           backend=BACKEND)
    expected = _naive_components(n, [(a, b) for a, b, p in edges if p >= 0.5])
    assert _same_partition(result.labels.tolist(), expected)
    # labels are numbered in order of first appearance
    firsts = [result.labels.tolist().index(k) for k in range(result.labels.max() + 1)]
    assert firsts == sorted(firsts)


def test_guard_splits_weakly_linked_chain_and_flags_the_rest():
    left = np.arange(9)
    right = left + 1
    prob = np.array([0.99, 0.95, 0.999, 0.91, 0.999, 0.999, 0.92, 0.999, 0.999])
    r = cluster_pairs(12, left, right, prob, threshold=0.9, max_cluster_size=4, split_oversized=True,
                      backend=BACKEND)
    assert r.labels.tolist() == [0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 5]
    assert r.stats["guard_rounds"] == 1 and r.stats["oversized_clusters"] == 0
    # without the guard the chain is one oversized cluster, flagged
    r = cluster_pairs(12, left, right, prob, threshold=0.9, max_cluster_size=4, split_oversized=False,
                      backend=BACKEND)
    assert r.stats["oversized_clusters"] == 1 and r.oversized[:10].all() and not r.oversized[10:].any()


def test_record_probability_is_strongest_kept_edge():
    r = cluster_pairs(4, np.array([0, 1, 0]), np.array([1, 2, 3]), np.array([0.95, 0.99, 0.2]), threshold=0.9,
                      max_cluster_size=10, split_oversized=True, backend=BACKEND)
    np.testing.assert_allclose(r.record_probability[:3], [0.95, 0.99, 0.99])
    assert np.isnan(r.record_probability[3])


def _reference_guard(n, edges, threshold, cap, rounds=4):
    """The guard as specified: each round, records in clusters above ``cap`` step up one threshold
    (1 - (1 - t) / 10), and every edge kept at the threshold is checked again against its records' higher step."""
    steps = [threshold]
    for _ in range(rounds):
        steps.append(1 - (1 - steps[-1]) / 10)
    step = [0] * n

    def kept():
        return [(a, b, p) for a, b, p in edges if p >= steps[max(step[a], step[b])]]

    labels = _naive_components(n, [(a, b) for a, b, _ in kept()])
    for _ in range(rounds):
        sizes = {label: labels.count(label) for label in labels}
        big = [i for i in range(n) if sizes[labels[i]] > cap]
        if not big:
            break
        for i in big:
            step[i] = min(step[i] + 1, rounds)
        labels = _naive_components(n, [(a, b) for a, b, _ in kept()])
    strongest = [max((p for a, b, p in kept() if i in (a, b)), default=float("nan")) for i in range(n)]
    return labels, strongest


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 30).flatmap(lambda n: st.tuples(
    st.just(n), st.integers(1, 6),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1),
                       st.sampled_from([0.5, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.99999, 1.0])), max_size=60))))
def test_guard_rounds_match_the_specification(case):
    # thresholds 0.9, 0.99, 0.999, 0.9999, 0.99999: edges are drawn around each, so that rounds split clusters
    n, cap, edges = case
    left = np.array([e[0] for e in edges], dtype=np.int32)
    right = np.array([e[1] for e in edges], dtype=np.int32)
    prob = np.array([e[2] for e in edges], dtype=np.float64)
    r = cluster_pairs(n, left, right, prob, threshold=0.9, max_cluster_size=cap, split_oversized=True,
                      backend=BACKEND)
    labels, strongest = _reference_guard(n, edges, 0.9, cap)
    assert _same_partition(r.labels.tolist(), labels)
    np.testing.assert_array_equal(r.record_probability, np.array(strongest, dtype=np.float64))


def test_size_summary():
    s = size_summary(np.array([0, 0, 1, 2, 2, 2, 3]))
    assert s["clusters"] == 4 and s["singletons"] == 2 and s["max_size"] == 3
    assert s["size_histogram"]["3-5"] == 1 and s["size_histogram"]["2"] == 1
