"""Tests of candidate-pair generation against brute-force oracles."""

from __future__ import annotations

import itertools

import faiss
import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strict_xp import StrictXP

from gpucdp import block
from gpucdp.block import (
    canonical_pairs,
    filter_mode,
    key_codes,
    key_pair_keys,
    key_pairs,
    knn_pairs,
    pack_pairs,
    pair_dtype,
    union_pairs,
)
from gpucdp.errors import InputError, SettingsError

pairs_strategy = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=60)


@settings(max_examples=100, deadline=None)
@given(pairs=pairs_strategy)
@example(pairs=[])
@example(pairs=[(3, 3)])
@example(pairs=[(5, 2), (2, 5), (2, 5)])
def test_canonical_pairs_properties(pairs):
    left = np.array([p[0] for p in pairs], dtype=np.int64)
    right = np.array([p[1] for p in pairs], dtype=np.int64)
    lo, hi = canonical_pairs(left, right)
    want = sorted({(min(a, b), max(a, b)) for a, b in pairs if a != b})
    assert list(zip(lo.tolist(), hi.tolist())) == want
    assert lo.dtype == np.int32 and hi.dtype == np.int32  # pair_dtype: int32 up to 2^31 records


def test_canonical_pairs_huge_ids_use_the_lexsort_path():
    big = np.int64(2**40)
    lo, hi = canonical_pairs(np.array([big + 1, 5, big + 1]), np.array([5, big, 5]))
    assert lo.tolist() == [5, 5] and hi.tolist() == [big, big + 1]


def brute_key_pairs(codes, max_block_size):
    blocks = {}
    for i, c in enumerate(codes):
        if c >= 0:
            blocks.setdefault(c, []).append(i)
    pairs = set()
    for members in blocks.values():
        if len(members) <= max_block_size:
            pairs.update(itertools.combinations(members, 2))
    return sorted(pairs), blocks


@settings(max_examples=100, deadline=None)
@given(codes=st.lists(st.integers(-1, 6), max_size=40), cap=st.integers(2, 6))
@example(codes=[], cap=2)
@example(codes=[-1, -1, -1], cap=2)
def test_key_pairs_matches_brute_force(codes, cap):
    left, right, stats = key_pairs(np.array(codes, dtype=np.int64), cap)
    want, blocks = brute_key_pairs(codes, cap)
    assert list(zip(left.tolist(), right.tolist())) == want
    big = [m for m in blocks.values() if len(m) > cap]
    assert stats == {
        "blocks": sum(1 for m in blocks.values() if 2 <= len(m) <= cap),
        "pairs": len(want),
        "oversized_blocks": len(big),
        "records_in_oversized": sum(len(m) for m in big),
    }


@settings(max_examples=100, deadline=None)
@given(rules=st.lists(st.lists(st.integers(-1, 5), min_size=25, max_size=25), min_size=1, max_size=4),
       extra=pairs_strategy, cap=st.integers(2, 8))
def test_packed_rule_keys_and_their_union_match_brute_force(rules, extra, cap):
    # what the pipeline does: every rule's pairs as packed keys (the CPU kernel), extra pairs (kNN's) packed
    # from (left, right), one union at the end
    n = 31
    parts, want = [], set()
    for codes in rules:
        codes = np.array(codes + [-1] * (n - len(codes)), dtype=np.int64)
        keys, stats = key_pair_keys(codes, cap)
        rule_pairs, _ = brute_key_pairs(codes.tolist(), cap)
        assert sorted(zip(*(x.tolist() for x in divmod(keys, n)))) == rule_pairs
        assert stats == key_pairs(codes, cap)[2]
        parts.append(keys)
        want.update(rule_pairs)
    left = np.array([p[0] for p in extra], dtype=np.int64)
    right = np.array([p[1] for p in extra], dtype=np.int64)
    parts.append(pack_pairs(left, right, n))
    want.update((min(a, b), max(a, b)) for a, b in extra if a != b)
    lo, hi = union_pairs(parts, n)
    assert list(zip(lo.tolist(), hi.tolist())) == sorted(want) and parts == []


@settings(max_examples=60, deadline=None)
@given(pairs=pairs_strategy, threads=st.integers(2, 7), min_run=st.integers(1, 6))
def test_union_merges_runs_sorted_on_threads_as_one_sort_does(pairs, threads, min_run):
    # runs of a few keys each (the minimum run lowered), merged by ranges of values: equal keys and self
    # pairs spread over several runs must come out once, in order, whatever the number of runs
    n = 31
    left = np.array([p[0] for p in pairs], dtype=np.int64)
    right = np.array([p[1] for p in pairs], dtype=np.int64)
    keys = np.concatenate([pack_pairs(left, right, n), pack_pairs(right[::-1], left[::-1], n)])
    want = sorted({(min(a, b), max(a, b)) for a, b in pairs if a != b})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(block, "_MIN_SORT_RUN", min_run)
        lo, hi = union_pairs([keys.copy()], n, threads=threads)
    assert list(zip(lo.tolist(), hi.tolist())) == want
    assert lo.dtype == hi.dtype == np.int32


def test_union_on_threads_at_scale():
    rng = np.random.default_rng(3)
    n = 50_000
    keys = pack_pairs(rng.integers(0, n, 3_000_000), rng.integers(0, n, 3_000_000), n)
    one = union_pairs([keys.copy()], n)
    for threads in (2, 3, 8):
        many = union_pairs([keys.copy()], n, threads=threads)
        np.testing.assert_array_equal(many[0], one[0])
        np.testing.assert_array_equal(many[1], one[1])


@settings(max_examples=50, deadline=None)
@given(pairs=pairs_strategy, block_size=st.integers(1, 9))
def test_union_decodes_distinct_keys_across_blocks_as_the_device_path_does(pairs, block_size):
    # the host decoder counts and writes each block of sorted keys apart: a run of equal keys, or of self
    # pairs (-1), that crosses a block's edge must still give one pair, as the device path's compaction does
    n = 31
    left = np.array([p[0] for p in pairs], dtype=np.int64)
    right = np.array([p[1] for p in pairs], dtype=np.int64)
    keys = pack_pairs(left, right, n)
    half = keys.size // 2
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(block, "_DECODE_BLOCK", block_size)
        lo, hi = union_pairs([keys[:half].copy(), keys[half:].copy()], n)
    xp = StrictXP()
    d_lo, d_hi = union_pairs([xp.asarray(keys[:half]), xp.asarray(keys[half:])], n, xp)
    want = sorted({(min(a, b), max(a, b)) for a, b in pairs if a != b})
    assert list(zip(lo.tolist(), hi.tolist())) == want
    assert d_lo.get().tolist() == lo.tolist() and d_hi.get().tolist() == hi.tolist()
    assert lo.dtype == hi.dtype == d_lo.dtype == d_hi.dtype == np.int32


def test_pairs_past_the_int32_limit_are_int64(monkeypatch):
    # int32 indices hold 2^31 records; past that the same pairs come as int64 (here with the limit lowered)
    keys = pack_pairs(np.array([0, 5, 3, 5]), np.array([7, 2, 7, 2]), 8)
    assert pair_dtype(8) == np.int32 and union_pairs([keys.copy()], 8)[0].dtype == np.int32
    monkeypatch.setattr(block, "INT32_PAIRS_MAX_RECORDS", 7)
    assert pair_dtype(7) == np.int32 and pair_dtype(8) == np.int64
    lo, hi = union_pairs([keys.copy()], 8)
    assert lo.dtype == hi.dtype == np.int64
    assert lo.tolist() == [0, 2, 3] and hi.tolist() == [7, 5, 7]
    assert canonical_pairs(np.array([9, 1]), np.array([1, 9]))[0].dtype == np.int64  # largest index 9


def test_packing_refuses_more_records_than_a_key_holds():
    with pytest.raises(InputError, match="more than one run can pair"):
        pack_pairs(np.zeros(1, np.int64), np.ones(1, np.int64), 2**32)


def test_key_pairs_rejects_bad_cap():
    with pytest.raises(SettingsError, match="max_block_size"):
        key_pairs(np.zeros(3, dtype=np.int64), 1)


def test_key_codes_tuple_and_nulls():
    frame = pd.DataFrame(
        {
            "a": pd.Series(["x", "x", "y", None, "x", ""], dtype="str"),
            "b": [1, 1, 1, 1, 2, 1],
        }
    )
    codes = key_codes(frame, ["a", "b"])
    assert codes.dtype == np.int64
    assert codes[0] == codes[1]
    assert len({codes[0], codes[2], codes[4]}) == 3
    assert codes[3] == -1 and codes[5] == -1
    assert (codes[[0, 2, 4]] >= 0).all()
    with pytest.raises(InputError, match="not found"):
        key_codes(frame, ["a", "zzz"])


@pytest.mark.parametrize("limit", [2**62, 4])  # 4: re-factorise before every column after the first
def test_key_codes_group_like_pandas(monkeypatch, limit):
    monkeypatch.setattr(block, "_CODE_LIMIT", limit)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({c: pd.Series(rng.choice(["p", "q", "r", None], 500), dtype="str") for c in "abcd"})
    codes = key_codes(frame, list("abcd"))
    groups = frame.groupby(list("abcd"), dropna=True).ngroup().fillna(-1).to_numpy()  # -1: a value missing
    assert ((codes < 0) == (groups < 0)).all()
    valid = groups >= 0
    pairs = set(zip(codes[valid].tolist(), groups[valid].tolist()))
    assert len(pairs) == len(set(codes[valid].tolist())) == len(set(groups[valid].tolist()))  # one-to-one


def test_filter_mode():
    left = np.array([0, 0, 1, 2])
    right = np.array([1, 2, 3, 3])
    source = np.array([0, 0, 1, 1])
    pairs = lambda mode: [tuple(p) for p in zip(*(a.tolist() for a in filter_mode(left, right, source, mode)))]
    assert pairs("dedupe") == [(0, 1), (2, 3)]
    assert pairs("link") == [(0, 2), (1, 3)]
    assert pairs("link_and_dedupe") == [(0, 1), (0, 2), (1, 3), (2, 3)]
    with pytest.raises(SettingsError, match="mode"):
        filter_mode(left, right, source, "merge")


def unit_rows(rng, n, dim):
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_knn(emb, k, min_similarity):
    """Exact top-k by inner product on distinct rows, as canonical pair → similarity."""
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    out = {}
    for i in range(emb.shape[0]):
        for j in np.argsort(-sim[i], kind="stable")[:k]:
            if sim[i, j] >= min_similarity:
                out[(min(i, j), max(i, j))] = sim[i, j]
    return out


@pytest.mark.parametrize("k,min_similarity", [(1, -1.0), (4, 0.0), (6, 0.3)])
def test_knn_pairs_exact_index_matches_brute_force(k, min_similarity):
    emb = unit_rows(np.random.default_rng(k), 300, 8)
    left, right, sim = knn_pairs(emb, k=k, min_similarity=min_similarity, faiss=faiss, index="flat")
    want = brute_knn(emb, k, min_similarity)
    assert list(zip(left.tolist(), right.tolist())) == sorted(want)
    np.testing.assert_allclose(sim, [want[p] for p in sorted(want)], atol=1e-5)
    assert sim.dtype == np.float32 and (sim >= min_similarity).all()


def test_knn_pairs_duplicates_zero_rows_and_cap():
    rng = np.random.default_rng(7)
    distinct = unit_rows(rng, 40, 8)
    # Rows 0..39 distinct; 40..42 copy row 5 (a group of 4); 43..52 copy row 9 (a group of 11); 53, 54 zero.
    emb = np.vstack([distinct, distinct[[5] * 3], distinct[[9] * 10], np.zeros((2, 8), np.float32)])
    group_of = list(range(40)) + [5] * 3 + [9] * 10
    rows_of = {g: [i for i, h in enumerate(group_of) if h == g] for g in range(40)}
    cap = 6
    left, right, sim = knn_pairs(emb, k=3, min_similarity=0.1, faiss=faiss, index="flat", max_group=cap)
    got = set(zip(left.tolist(), right.tolist()))
    want = set()
    want.update(itertools.combinations(rows_of[5], 2))  # group of 4 <= cap: all pairs
    for (a, b) in brute_knn(distinct, 3, 0.1):
        want.update((min(x, y), max(x, y)) for x in rows_of[a][:cap] for y in rows_of[b][:cap])
    assert got == want
    assert not {53, 54} & (set(left.tolist()) | set(right.tolist()))
    assert not any(a in rows_of[9] and b in rows_of[9] for a, b in got)  # group of 11 > cap: skipped
    np.testing.assert_allclose(sim, np.einsum("ij,ij->i", emb[left], emb[right]), atol=1e-5)


@pytest.mark.parametrize("k,min_similarity", [(1, -1.0), (5, 0.2)])
def test_knn_pairs_cells_with_one_cell_is_exact(k, min_similarity):
    emb = unit_rows(np.random.default_rng(11), 250, 8)
    left, right, sim = knn_pairs(emb, k=k, min_similarity=min_similarity, faiss=faiss, index="cells", nlist=1)
    want = brute_knn(emb, k, min_similarity)
    assert list(zip(left.tolist(), right.tolist())) == sorted(want)
    np.testing.assert_allclose(sim, [want[p] for p in sorted(want)], atol=1e-5)


@pytest.mark.parametrize("kind", ["ivf", "hnsw", "cells"])
def test_knn_pairs_approximate_indexes_find_near_duplicates(kind):
    rng = np.random.default_rng(3)
    base = unit_rows(rng, 400, 16)
    noisy = base + 0.15 * rng.normal(size=base.shape).astype(np.float32)
    emb = np.vstack([base, noisy / np.linalg.norm(noisy, axis=1, keepdims=True)])
    left, right, sim = knn_pairs(emb, k=5, min_similarity=0.5, faiss=faiss, index=kind, nlist=8,
                                 nprobe=2 if kind == "cells" else 8, batch=97)
    found = set(zip(left.tolist(), right.tolist()))
    recall = np.mean([(i, i + 400) in found for i in range(400)])
    # The cell join assigns each vector to one coarse cell, so pairs split across coarse cells are lost: its
    # floor is lower by design (it trades recall for speed on large CPU runs).
    assert recall > (0.7 if kind == "cells" else 0.95)
    assert (left < right).all() and (sim >= 0.5).all()


def test_knn_pairs_validates():
    emb = unit_rows(np.random.default_rng(0), 10, 4)
    with pytest.raises(SettingsError, match="k="):
        knn_pairs(emb, k=0, min_similarity=0.5, faiss=faiss)
    with pytest.raises(SettingsError, match="index"):
        knn_pairs(emb, k=2, min_similarity=0.5, faiss=faiss, index="annoy")
    with pytest.raises(InputError, match="2-d"):
        knn_pairs(emb[0], k=2, min_similarity=0.5, faiss=faiss)
    left, right, sim = knn_pairs(emb[:1], k=2, min_similarity=0.5, faiss=faiss)
    assert left.size == right.size == sim.size == 0


def test_gpu_ivf_refuses_more_probes_than_faiss_gpu_takes_naming_the_setting():
    # Checked before anything is trained or cloned, so it runs here with the CPU build of FAISS.
    vectors = np.eye(8, dtype=np.float32)
    with pytest.raises(SettingsError, match=r"blocking\.knn\.nprobe=4096: .* at most 2048"):
        block._build_index(vectors, kind="ivf", faiss=faiss, use_gpu=True, nlist=3000, nprobe=4096, k=5)
    # the lists there are bound it first: 4096 probes of 4 lists are 4 probes
    index = block._build_index(np.tile(vectors, (40, 1)), kind="ivf", faiss=faiss, use_gpu=False, nlist=4,
                               nprobe=4096, k=5)
    assert index.nprobe == 4
