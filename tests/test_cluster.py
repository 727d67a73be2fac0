import math

import numpy as np
import pytest
from gpucdp.kernels.components import components_cpu
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gpucdp.backend import Backend, get_backend
from gpucdp.cluster import CORE_STEPS, MAX_MERGE_ROUNDS, cluster_pairs, size_summary

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
                           backend=BACKEND, linkage="single")
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
                      backend=BACKEND, linkage="single")
    assert r.labels.tolist() == [0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 5]
    assert r.stats["guard_rounds"] == 1 and r.stats["oversized_clusters"] == 0
    # without the guard the chain is one oversized cluster, flagged
    r = cluster_pairs(12, left, right, prob, threshold=0.9, max_cluster_size=4, split_oversized=False,
                      backend=BACKEND, linkage="single")
    assert r.stats["oversized_clusters"] == 1 and r.oversized[:10].all() and not r.oversized[10:].any()


def test_record_probability_is_strongest_kept_edge():
    r = cluster_pairs(4, np.array([0, 1, 0]), np.array([1, 2, 3]), np.array([0.95, 0.99, 0.2]), threshold=0.9,
                      max_cluster_size=10, split_oversized=True, backend=BACKEND)
    np.testing.assert_allclose(r.record_probability[:3], [0.95, 0.99, 0.99])
    assert np.isnan(r.record_probability[3])


def _log_odds(p):
    return math.log2(max(p, 2.0**-60)) - math.log2(max(1.0 - p, 2.0**-60))


def _reference_average(n, edges, steps, step, kept):
    """Average linkage as specified, pair by pair: cores from the kept edges ``CORE_STEPS`` steps stronger;
    then rounds in which every group names its best partner (highest summed log-odds over every scored pair
    between them, each rounded to a 2^-20 grid first, positive, with one pair at its step's threshold; the
    lowest group on a tie; groups numbered by their first record) and each two groups that name each other
    merge. Groups merge only inside one connected component of the kept edges."""
    outer = _naive_components(n, [(a, b) for a, b, _ in kept])
    core = _naive_components(n, [(a, b) for a, b, p in kept if p >= steps[max(step[a], step[b]) + CORE_STEPS]])
    first = {}
    for i in range(n):
        first.setdefault(core[i], i)
    group = [first[core[i]] for i in range(n)]  # a group is named by its first record
    for _ in range(MAX_MERGE_ROUNDS):
        sums, reach = {}, {}
        for a, b, p in edges:
            if outer[a] != outer[b] or group[a] == group[b]:
                continue
            key = (min(group[a], group[b]), max(group[a], group[b]))
            sums[key] = sums.get(key, 0) + round(_log_odds(p) * 2.0**20)
            reach[key] = reach.get(key, False) or p >= steps[max(step[a], step[b])]
        best = {}
        for (g, h), total in sums.items():
            score = total
            if reach[(g, h)] and score > 0:
                for x, y in ((g, h), (h, g)):
                    if x not in best or (score, -y) > (best[x][0], -best[x][1]):
                        best[x] = (score, y)
        mutual = [(g, h) for (g, h) in sums if g in best and best[g][1] == h and best[h][1] == g]
        if not mutual:
            break
        for g, h in mutual:
            group = [g if x == h else x for x in group]
    return group


def _reference_guard(n, edges, threshold, cap, rounds=4, linkage="single"):
    """The guard as specified: each round, records in clusters above ``cap`` step up one threshold
    (1 - (1 - t) / 10), and every edge kept at the threshold is checked again against its records' higher step."""
    steps = [threshold]
    for _ in range(rounds + CORE_STEPS):
        steps.append(1 - (1 - steps[-1]) / 10)
    step = [0] * n

    def kept():
        return [(a, b, p) for a, b, p in edges if p >= steps[max(step[a], step[b])]]

    def clusters():
        if linkage == "single":
            return _naive_components(n, [(a, b) for a, b, _ in kept()])
        return _reference_average(n, edges, steps, step, kept())

    labels = clusters()
    for _ in range(rounds):
        sizes = {label: labels.count(label) for label in labels}
        big = [i for i in range(n) if sizes[labels[i]] > cap]
        if not big:
            break
        for i in big:
            step[i] = min(step[i] + 1, rounds)
        if linkage == "single":  # every record again
            labels = clusters()
            continue
        # each big cluster on its own, from the kept edges inside it; the other records keep their clusters
        inside = [(a, b, p) for a, b, p in kept() if labels[a] == labels[b] and a in big]
        split = _reference_average(n, edges, steps, step, inside)
        labels = [("split", split[i]) if i in big else labels[i] for i in range(n)]
    inside = [(a, b, p) for a, b, p in kept() if labels[a] == labels[b]]
    strongest = [max((p for a, b, p in inside if i in (a, b)), default=float("nan")) for i in range(n)]
    return labels, strongest


# thresholds 0.9, 0.99, 0.999, 0.9999, 0.99999 (and the cores' 0.999...): edges are drawn around each, so that
# rounds split clusters; weak pairs weigh against merges
_PROBABILITIES = [0.01, 0.2, 0.5, 0.85, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.99999, 1.0]


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 30).flatmap(lambda n: st.tuples(
    st.just(n), st.integers(1, 6),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.sampled_from(_PROBABILITIES)),
             max_size=60))))
@pytest.mark.parametrize("linkage", ["single", "average"])
def test_guard_rounds_match_the_specification(linkage, case):
    n, cap, edges = case
    edges = [(a, b, p) for a, b, p in edges if a != b]  # candidate pairs never pair a record with itself
    left = np.array([e[0] for e in edges], dtype=np.int32)
    right = np.array([e[1] for e in edges], dtype=np.int32)
    prob = np.array([e[2] for e in edges], dtype=np.float64)
    r = cluster_pairs(n, left, right, prob, threshold=0.9, max_cluster_size=cap, split_oversized=True,
                      backend=BACKEND, linkage=linkage)
    labels, strongest = _reference_guard(n, edges, 0.9, cap, linkage=linkage)
    assert _same_partition(r.labels.tolist(), labels)
    np.testing.assert_array_equal(r.record_probability, np.array(strongest, dtype=np.float64))


@settings(max_examples=150, deadline=None)
@example((2, []))  # no pairs: every record alone
@example((3, [(0, 1, 1.0), (1, 2, 0.0), (0, 2, 0.5)]))  # probabilities 1 and 0: log-odds clipped, not infinite
@example((4, [(0, 1, 0.95), (2, 3, 0.95), (1, 2, 0.95), (0, 3, 0.95)]))  # equal sums: the lowest partner wins
@given(st.integers(2, 40).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.sampled_from(_PROBABILITIES)),
             max_size=120))))
def test_average_linkage_matches_the_specification(case):
    # no guard: average linkage alone, on denser graphs than the guard test's
    n, edges = case
    edges = [(a, b, p) for a, b, p in edges if a != b]
    left = np.array([e[0] for e in edges], dtype=np.int64)
    right = np.array([e[1] for e in edges], dtype=np.int64)
    prob = np.array([e[2] for e in edges], dtype=np.float64)
    r = cluster_pairs(n, left, right, prob, threshold=0.9, max_cluster_size=10_000, split_oversized=False,
                      backend=BACKEND)
    labels, strongest = _reference_guard(n, edges, 0.9, 10_000, rounds=0, linkage="average")
    assert _same_partition(r.labels.tolist(), labels)
    np.testing.assert_array_equal(r.record_probability, np.array(strongest, dtype=np.float64))
    single = cluster_pairs(n, left, right, prob, threshold=0.9, max_cluster_size=10_000, split_oversized=False,
                           backend=BACKEND, linkage="single")
    # average linkage only splits what connected components join
    assert all(single.labels[i] == single.labels[j] for i in range(n) for j in range(n)
               if r.labels[i] == r.labels[j])
    assert r.stats["kept_apart"] == r.stats["clusters"] - single.stats["clusters"]


def test_average_linkage_keeps_two_people_apart_across_one_bridging_pair():
    # records 0-2 are one person, 3-5 another; one pair (2, 3) reaches the threshold, but the other pairs
    # scored between the two say no: connected components merge them, average linkage does not
    left = np.array([0, 1, 0, 3, 4, 3, 2, 0, 1, 2])
    right = np.array([1, 2, 2, 4, 5, 5, 3, 3, 4, 4])
    prob = np.array([0.9999, 0.9999, 0.9999, 0.9999, 0.9999, 0.9999, 0.95, 0.001, 0.001, 0.01])
    kwargs = {"threshold": 0.9, "max_cluster_size": 100, "split_oversized": False, "backend": BACKEND}
    single = cluster_pairs(6, left, right, prob, linkage="single", **kwargs)
    average = cluster_pairs(6, left, right, prob, **kwargs)
    assert single.labels.tolist() == [0] * 6
    assert average.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert average.stats["kept_apart"] == 1 and average.stats["linkage"] == "average"
    # the bridging pair joins nothing, so it is no record's strongest edge
    np.testing.assert_array_equal(average.record_probability, [0.9999] * 6)


def test_average_linkage_keeps_a_chain_without_evidence_against_it():
    # one person's records, each scored only against the next, at the threshold: nothing says no, so the
    # chain holds together as in connected components
    left = np.arange(5)
    right = left + 1
    prob = np.array([0.92, 0.95, 0.91, 0.999, 0.93])
    r = cluster_pairs(6, left, right, prob, threshold=0.9, max_cluster_size=100, split_oversized=False,
                      backend=BACKEND)
    assert r.labels.tolist() == [0] * 6 and r.stats["kept_apart"] == 0 and r.stats["merge_rounds"] >= 3


def test_average_linkage_joins_groups_only_through_a_pair_at_the_threshold():
    # {0, 1} and {2, 3} agree through four pairs at 0.85 (10 bits together) but none at the threshold; record
    # 4 reaches both at 0.95 yet disagrees with 0 and 3. Nothing merges: the groups' own pairs are below the
    # threshold, and 4's pairs with either group sum to less than nothing.
    left = np.array([0, 2, 0, 0, 1, 1, 1, 4, 4, 4])
    right = np.array([1, 3, 2, 3, 2, 3, 4, 2, 0, 3])
    prob = np.array([0.9999, 0.9999, 0.85, 0.85, 0.85, 0.85, 0.95, 0.95, 0.01, 0.01])
    r = cluster_pairs(5, left, right, prob, threshold=0.9, max_cluster_size=100, split_oversized=False,
                      backend=BACKEND)
    assert r.labels.tolist() == [0, 0, 1, 1, 2]


def test_merging_stopped_by_the_round_cap_is_counted(monkeypatch):
    # 30 records whose pairs all agree equally: the largest group has the largest sum with every other and
    # takes one a round, 29 rounds in all
    left, right = np.triu_indices(30, 1)
    probability = np.full(left.size, 0.97)
    options = {"threshold": 0.9, "max_cluster_size": 100, "split_oversized": True, "backend": BACKEND}
    whole = cluster_pairs(30, left, right, probability, **options)
    assert whole.stats["clusters"] == 1 and whole.stats["merge_rounds"] == 29
    assert whole.stats["merge_rounds_capped"] == 0
    monkeypatch.setattr("gpucdp.cluster.MAX_MERGE_ROUNDS", 10)
    capped = cluster_pairs(30, left, right, probability, **options)
    assert capped.stats["merge_rounds_capped"] == 1 and capped.stats["clusters"] == 20


def test_an_unknown_linkage_is_refused():
    with pytest.raises(ValueError, match="linkage"):
        cluster_pairs(2, np.array([0]), np.array([1]), np.array([0.99]), threshold=0.9, max_cluster_size=10,
                      split_oversized=False, backend=BACKEND, linkage="complete")


def _people_graph(people, seed):
    """Scored pairs of records of ``people`` persons (1-12 records each, shuffled): pairs inside a person
    mostly far above the threshold, some just above, some below; random pairs between persons mostly far
    below, a few wrongly above (the bridges average linkage weighs)."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.geometric(0.4, people), 12)
    person = rng.permutation(np.repeat(np.arange(people), sizes))
    n = person.size
    by_person = np.argsort(person, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    left, right = [], []
    for start, size in zip(starts, sizes):
        members = by_person[start:start + size]
        i, j = np.triu_indices(size, 1)
        left.append(members[i])
        right.append(members[j])
    left, right = np.concatenate(left), np.concatenate(right)
    inside = rng.choice([0.99999, 0.995, 0.95, 0.5, 0.01], size=left.size, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    a, b = rng.integers(0, n, 3 * n), rng.integers(0, n, 3 * n)
    a, b = a[(a != b) & (person[a] != person[b])], b[(a != b) & (person[a] != person[b])]
    between = rng.choice([0.001, 0.3, 0.95, 0.995], size=a.size, p=[0.85, 0.1, 0.04, 0.01])
    left, right = np.concatenate([left, np.minimum(a, b)]), np.concatenate([right, np.maximum(a, b)])
    probability = np.concatenate([inside, between])
    order = np.lexsort((right, left))  # as the pipeline hands them over: sorted by record
    left, right, probability = left[order].astype(np.int32), right[order].astype(np.int32), probability[order]
    return n, left, right, probability


def _device_backend(xp):
    """The GPU backend on the CuPy stand-in; components by the CPU kernel on the device buffers."""
    from strict_xp import DeviceArray

    def components(n, left, right):
        assert isinstance(left, DeviceArray) and isinstance(right, DeviceArray)
        return DeviceArray(components_cpu(n, left._a, right._a), xp)

    return Backend(name="gpu", xp=xp, xdf=None, faiss=None, faiss_gpu=False, kernel_target="cuda",
                   reason="the CuPy stand-in", components_impl=components)


@pytest.mark.parametrize("linkage", ["average", "single"])
def test_the_device_clusters_as_the_host_whatever_its_chunks(linkage):
    from strict_xp import StrictXP

    n, left, right, probability = _people_graph(1500, seed=5)
    options = {"threshold": 0.9, "max_cluster_size": 6, "split_oversized": True, "linkage": linkage}
    host = cluster_pairs(n, left, right, probability, backend=BACKEND, **options)
    assert host.stats["guard_rounds"] > 0 and (host.stats["kept_apart"] > 0) == (linkage == "average")
    for chunk_size in (97, 4096, 1 << 24):
        xp = StrictXP()
        device = cluster_pairs(n, xp.asarray(left), xp.asarray(right), xp.asarray(probability),
                               backend=_device_backend(xp), chunk_size=chunk_size, **options)
        assert np.array_equal(device.labels, host.labels), chunk_size
        np.testing.assert_array_equal(device.record_probability, host.record_probability)
        assert device.stats == host.stats


@pytest.mark.parametrize("linkage", ["average", "single"])
def test_the_clusters_do_not_depend_on_the_order_of_the_pairs(linkage):
    # sorted by record, a guard round reads only the big clusters' own pairs (binary search); shuffled, every pair
    n, left, right, probability = _people_graph(1500, seed=3)
    options = {"threshold": 0.9, "max_cluster_size": 5, "split_oversized": True, "backend": BACKEND,
               "linkage": linkage}
    in_order = cluster_pairs(n, left, right, probability, **options)
    shuffled = np.random.default_rng(0).permutation(left.size)
    result = cluster_pairs(n, left[shuffled], right[shuffled], probability[shuffled], **options)
    assert in_order.stats["guard_rounds"] > 1
    assert np.array_equal(in_order.labels, result.labels) and in_order.stats == result.stats
    np.testing.assert_array_equal(in_order.record_probability, result.record_probability)


@pytest.mark.parametrize(("linkage", "cap", "chunk_size"), [
    ("average", 100, 1 << 24), ("average", 100, 512), ("average", 4, 512), ("single", 100, 1 << 24),
    ("single", 4, 512),
])
def test_the_working_set_bounds_what_the_device_holds(linkage, cap, chunk_size):
    # The stage's memory check is only as good as its estimate: on the stand-in, whose pool counts every
    # device array, the largest estimate must cover the stage's peak above the pairs it was given, and not
    # by so much that a run that fits is stopped.
    from strict_xp import StrictXP

    n, left, right, probability = _people_graph(3000, seed=9)
    xp = StrictXP()
    pairs = xp.asarray(left), xp.asarray(right), xp.asarray(probability)
    pool = xp.get_default_memory_pool()
    pool.free_all_blocks()
    held = pool.used_bytes()
    estimates = []

    def need(working_set, **counts):
        estimates.append((working_set, counts))

    result = cluster_pairs(n, *pairs, threshold=0.9, max_cluster_size=cap, split_oversized=True,
                           backend=_device_backend(xp), linkage=linkage, chunk_size=chunk_size, need=need)
    peak = pool.total_bytes() - held
    largest, counts = max(estimates, key=lambda e: e[0])
    assert peak <= largest <= 3 * peak, (peak, largest, counts)
    assert counts["kept"] == int((probability >= 0.9).sum())
    assert (counts["guard"] == 1) == (result.stats["guard_rounds"] > 0)
    assert (counts["cross"] > 0) == (linkage == "average")
    # checked before each count's arrays are made: the estimates only grow
    assert [e[0] for e in estimates] == sorted(e[0] for e in estimates)


def test_size_summary():
    s = size_summary(np.array([0, 0, 1, 2, 2, 2, 3]))
    assert s["clusters"] == 4 and s["singletons"] == 2 and s["max_size"] == 3
    assert s["size_histogram"]["3-5"] == 1 and s["size_histogram"]["2"] == 1


def test_summed_weights_are_exact_in_any_order_on_either_side():
    # Average linkage sums each pair's log-odds in int64 units of 2^-20 bits, so that a device's atomic
    # additions, whose order varies from run to run, give the host's sums exactly (float sums could differ in
    # the last place).
    from strict_xp import StrictXP

    from gpucdp.cluster import _group_pairs, _log_odds_units

    rng = np.random.default_rng(5)
    keys = rng.integers(0, 300, 20_000).astype(np.int64)
    weights = _log_odds_units(rng.uniform(0.0, 1.0, 20_000))
    weights[:50] = _log_odds_units(np.array([0.0, 1.0] * 25))  # the clipped ends, +-60 bits
    eligible = rng.uniform(size=20_000) > 0.7
    want = _group_pairs(keys, weights, eligible)
    assert want[1].dtype == np.int64
    xp = StrictXP()
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(keys.size)
        got = _group_pairs(xp.asarray(keys[order]), xp.asarray(weights[order]), xp.asarray(eligible[order]),
                           xp)
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b.get())
    assert abs(int(_log_odds_units(np.array([1.0]))[0])) == 60 * 2**20
