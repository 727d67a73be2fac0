"""Tests of gpucdp.evaluate: hand-worked cases, and properties against brute-force pair enumeration."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gpucdp.errors import DuplicateRecordError, InputError
from gpucdp.evaluate import (
    bcubed_metrics,
    blocking_metrics,
    cluster_summary,
    evaluate,
    evaluate_files,
    evaluate_frames,
    format_table,
    merge_errors,
    pairwise_metrics,
)

# ------------------------------------------------------------------------------------------------------------
# Oracles: slow, obviously correct, by listing every pair / every record
# ------------------------------------------------------------------------------------------------------------


def oracle_pairwise(pred, true):
    n = len(pred)
    pairs = list(itertools.combinations(range(n), 2))
    predicted = {p for p in pairs if pred[p[0]] == pred[p[1]]}
    actual = {p for p in pairs if true[p[0]] == true[p[1]]}
    tp = len(predicted & actual)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(actual) if actual else 1.0
    return precision, recall, tp, len(predicted), len(actual)


def oracle_bcubed(pred, true):
    n = len(pred)
    if n == 0:
        return 1.0, 1.0
    p_sum = r_sum = 0.0
    for r in range(n):
        same_pred = {s for s in range(n) if pred[s] == pred[r]}
        same_true = {s for s in range(n) if true[s] == true[r]}
        both = len(same_pred & same_true)
        p_sum += both / len(same_pred)
        r_sum += both / len(same_true)
    return p_sum / n, r_sum / n


def oracle_blocking(left, right, true):
    n = len(true)
    cands = {(min(a, b), max(a, b)) for a, b in zip(left, right) if a != b}
    true_pairs = {p for p in itertools.combinations(range(n), 2) if true[p[0]] == true[p[1]]}
    found = len(cands & true_pairs)
    completeness = found / len(true_pairs) if true_pairs else 1.0
    total = n * (n - 1) // 2
    reduction = 1.0 - len(cands) / total if total else 1.0
    return len(cands), len(true_pairs), found, completeness, reduction


# Labels from small alphabets so that clusters collide; mixed label types across pred and true.
labels_int = st.integers(min_value=0, max_value=5)
labels_str = st.sampled_from(["a", "b", "c", "d"])


@st.composite
def clusterings(draw):
    n = draw(st.integers(min_value=0, max_value=40))
    pred = draw(st.lists(labels_int, min_size=n, max_size=n))
    true = draw(st.lists(labels_str, min_size=n, max_size=n))
    return pred, true


# ------------------------------------------------------------------------------------------------------------
# Hand-made cases
# ------------------------------------------------------------------------------------------------------------


def test_perfect_clustering():
    true = [10, 10, 20, 30, 30, 30]
    pred = ["x", "x", "y", "z", "z", "z"]  # relabelled, same partition
    r = evaluate(pred, true)
    assert r["pairwise"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "true_positive_pairs": 4,
        "predicted_pairs": 4,
        "true_pairs": 4,
    }
    assert r["bcubed"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert r["merge_errors"] == {
        "over_merged_clusters": 0,
        "over_merged_records": 0,
        "under_merged_entities": 0,
        "under_merged_records": 0,
    }
    assert r["predicted"] == r["truth"]


def test_everything_merged():
    # 4 entities of sizes 2, 2, 1, 1 (6 records) all in one predicted cluster.
    true = [1, 1, 2, 2, 3, 4]
    pred = [0] * 6
    p = pairwise_metrics(pred, true)
    assert (p["true_positive_pairs"], p["predicted_pairs"], p["true_pairs"]) == (2, 15, 2)
    assert p["precision"] == pytest.approx(2 / 15)
    assert p["recall"] == 1.0
    b = bcubed_metrics(pred, true)
    # per record precision: |true(r)| / 6 → (2+2+2+2+1+1) / 6 / 6
    assert b["precision"] == pytest.approx(10 / 36)
    assert b["recall"] == 1.0
    e = merge_errors(pred, true)
    assert e == {
        "over_merged_clusters": 1,
        "over_merged_records": 6,
        "under_merged_entities": 0,
        "under_merged_records": 0,
    }


def test_all_singletons():
    true = ["a", "a", "a", "b"]
    pred = [1, 2, 3, 4]
    p = pairwise_metrics(pred, true)
    # No predicted pairs: precision is 1.0 by definition, recall 0.
    assert p["precision"] == 1.0 and p["recall"] == 0.0 and p["f1"] == 0.0
    assert p["predicted_pairs"] == 0 and p["true_pairs"] == 3
    b = bcubed_metrics(pred, true)
    assert b["precision"] == 1.0
    assert b["recall"] == pytest.approx((1 / 3 * 3 + 1) / 4)
    e = merge_errors(pred, true)
    assert e["under_merged_entities"] == 1 and e["under_merged_records"] == 3
    s = cluster_summary(pred)
    assert s["clusters"] == 4 and s["singletons"] == 4 and s["max_size"] == 1


def test_known_small_example():
    # records:   r0 r1 r2 r3 r4 r5 r6
    # pred:       A  A  A  B  B  C  C
    # true:       x  x  y  y  y  z  w
    # contingency n_ij: (A,x)=2 (A,y)=1 (B,y)=2 (C,z)=1 (C,w)=1
    # pred sizes a: A=3 B=2 C=2 → predicted pairs 3+1+1 = 5
    # true sizes b: x=2 y=3 z=1 w=1 → true pairs 1+3 = 4
    # TP = C(2,2)+C(2,2) = 2 → precision 2/5, recall 2/4, F1 = 2·0.4·0.5/0.9 = 4/9
    # B-cubed precision = (2²/3 + 1²/3 + 2²/2 + 1/2 + 1/2) / 7 = (5/3 + 3) / 7 = 2/3
    # B-cubed recall    = (2²/2 + 1²/3 + 2²/3 + 1/1 + 1/1) / 7 = (2 + 5/3 + 2) / 7 = 17/21
    # over-merged: A (x,y), C (z,w) → 2 clusters, 5 records; under-merged: y (A,B) → 1 entity, 3 records
    pred = np.array(["A", "A", "A", "B", "B", "C", "C"])
    true = pd.Series(["x", "x", "y", "y", "y", "z", "w"])
    r = evaluate(pred, true)
    p = r["pairwise"]
    assert (p["true_positive_pairs"], p["predicted_pairs"], p["true_pairs"]) == (2, 5, 4)
    assert p["precision"] == pytest.approx(0.4)
    assert p["recall"] == pytest.approx(0.5)
    assert p["f1"] == pytest.approx(4 / 9)
    assert r["bcubed"]["precision"] == pytest.approx(2 / 3)
    assert r["bcubed"]["recall"] == pytest.approx(17 / 21)
    assert r["merge_errors"] == {
        "over_merged_clusters": 2,
        "over_merged_records": 5,
        "under_merged_entities": 1,
        "under_merged_records": 3,
    }
    assert r["truth"]["size_histogram"] == {"1": 2, "2": 1, "3-5": 1, "6-10": 0, "11-50": 0, "51+": 0}
    assert r["truth"]["max_size"] == 3 and r["truth"]["clusters"] == 4 and r["truth"]["records"] == 7
    # Every value is a plain Python number: the result dumps to JSON.
    json.dumps(r)
    for section in r.values():
        for value in section.values():
            assert type(value) in (int, float, dict)


def test_cluster_summary_buckets():
    sizes = [1, 2, 3, 5, 6, 10, 11, 50, 51, 120]
    labels = np.repeat(np.arange(len(sizes)), sizes)
    s = cluster_summary(labels)
    assert s["size_histogram"] == {"1": 1, "2": 1, "3-5": 2, "6-10": 2, "11-50": 2, "51+": 2}
    assert s["clusters"] == 10 and s["records"] == sum(sizes) and s["max_size"] == 120
    assert cluster_summary([])["clusters"] == 0 and cluster_summary([])["max_size"] == 0


def test_empty_input():
    r = evaluate([], [])
    assert r["pairwise"]["precision"] == 1.0 and r["pairwise"]["recall"] == 1.0
    assert r["bcubed"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    b = blocking_metrics([], [], [])
    assert b["candidate_pairs"] == 0 and b["pair_completeness"] == 1.0 and b["reduction_ratio"] == 1.0


def test_label_inputs_of_many_kinds():
    true = ["x", "x", "y", "y"]
    expected = pairwise_metrics([1, 1, 1, 2], true)
    for pred in (
        np.array([1, 1, 1, 2], dtype=np.int64),
        pd.Series([1, 1, 1, 2], dtype="Int64"),
        pd.Series(["p", "p", "p", "q"], dtype="category"),
        pd.Series(["p", "p", "p", "q"]),  # pandas' default pyarrow-backed str
        [("p", 1), ("p", 1), ("p", 1), ("q", 1)],  # tuples are hashable labels too
        np.array([0.5, 0.5, 0.5, 2.0]),
    ):
        assert pairwise_metrics(pred, true) == expected


@settings(max_examples=50, deadline=None)
@given(clusterings())
def test_integer_label_paths_agree(case):
    # Dense integer labels take a lookup-table path, sparse ones the hash factorisation: same partition,
    # same answer, whatever the integer dtype or sign.
    pred, true = case
    dense = np.array(pred, dtype=np.int64)
    expected = evaluate(dense, true)
    for variant in (dense * 10**12 - 7, dense.astype(np.uint8), -dense, dense.astype(np.uint64) + 2**63):
        got = evaluate(variant, true)
        # Codes are numbered differently, so float sums may differ in the last bit.
        assert got["bcubed"] == pytest.approx(expected["bcubed"])
        assert {k: v for k, v in got.items() if k != "bcubed"} == {
            k: v for k, v in expected.items() if k != "bcubed"
        }


class _FakeCudfSeries:
    """Stands in for a cuDF Series: only ``to_pandas`` is used."""

    def __init__(self, values):
        self._values = values

    def to_pandas(self):
        return pd.Series(self._values)


class _FakeCupyArray:
    """Stands in for a CuPy array: ``__cuda_array_interface__`` and ``get``."""

    __cuda_array_interface__: dict = {}

    def __init__(self, values):
        self._values = np.asarray(values)

    def get(self):
        return self._values


def test_device_like_inputs_are_copied_to_host():
    import pyarrow as pa

    true = ["x", "x", "y", "y"]
    expected = evaluate([1, 1, 1, 2], true)
    assert evaluate(_FakeCupyArray([1, 1, 1, 2]), _FakeCudfSeries(true)) == expected
    assert evaluate(pa.array([1, 1, 1, 2]), pa.chunked_array([true])) == expected
    got = blocking_metrics(_FakeCupyArray([0, 2]), _FakeCupyArray([1, 3]), _FakeCudfSeries(true))
    assert got["found_true_pairs"] == 2


def test_bad_labels_raise():
    with pytest.raises(InputError, match="pred has 3 labels, true has 2"):
        evaluate([1, 2, 3], [1, 2])
    with pytest.raises(InputError, match="true has 1 missing"):
        pairwise_metrics([1, 2, 3], ["a", None, "b"])
    with pytest.raises(InputError, match="one-dimensional"):
        cluster_summary(np.zeros((2, 2)))


def test_large_counts_do_not_overflow():
    # One cluster of 100M records: C(n, 2) ≈ 5e15 must be exact (int64 / Python int, never int32).
    n = 100_000_000
    sizes = np.array([n], dtype=np.int64)
    from gpucdp.evaluate import _pairs

    assert _pairs(sizes) == n * (n - 1) // 2


# ------------------------------------------------------------------------------------------------------------
# Properties against the oracles
# ------------------------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(clusterings())
@example(([], []))
@example(([0], ["a"]))
@example(([0, 0, 0], ["a", "b", "c"]))
def test_pairwise_matches_brute_force(case):
    pred, true = case
    precision, recall, tp, n_pred, n_true = oracle_pairwise(pred, true)
    got = pairwise_metrics(pred, true)
    assert (got["true_positive_pairs"], got["predicted_pairs"], got["true_pairs"]) == (tp, n_pred, n_true)
    assert got["precision"] == pytest.approx(precision)
    assert got["recall"] == pytest.approx(recall)
    expected_f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    assert got["f1"] == pytest.approx(expected_f1)


@settings(max_examples=100, deadline=None)
@given(clusterings())
@example(([], []))
@example(([0, 1, 2], ["a", "a", "a"]))
def test_bcubed_matches_brute_force(case):
    pred, true = case
    precision, recall = oracle_bcubed(pred, true)
    got = bcubed_metrics(pred, true)
    assert got["precision"] == pytest.approx(precision)
    assert got["recall"] == pytest.approx(recall)
    assert 0.0 <= got["f1"] <= 1.0


@settings(max_examples=100, deadline=None)
@given(clusterings())
def test_merge_errors_match_brute_force(case):
    pred, true = case
    entities = {}  # predicted cluster → set of true entities
    clusters = {}  # true entity → set of predicted clusters
    for p, t in zip(pred, true):
        entities.setdefault(p, set()).add(t)
        clusters.setdefault(t, set()).add(p)
    over = {p for p, ts in entities.items() if len(ts) >= 2}
    under = {t for t, ps in clusters.items() if len(ps) >= 2}
    got = merge_errors(pred, true)
    assert got["over_merged_clusters"] == len(over)
    assert got["over_merged_records"] == sum(p in over for p in pred)
    assert got["under_merged_entities"] == len(under)
    assert got["under_merged_records"] == sum(t in under for t in true)


@st.composite
def blocking_cases(draw):
    n = draw(st.integers(min_value=0, max_value=40))
    true = draw(st.lists(labels_str, min_size=n, max_size=n))
    if n == 0:
        return [], [], true
    pos = st.integers(min_value=0, max_value=n - 1)
    pairs = draw(st.lists(st.tuples(pos, pos), max_size=120))
    # Add reversed copies and exact duplicates of some pairs, plus a self pair.
    extra = [(b, a) for a, b in pairs[::3]] + pairs[::4] + [(0, 0)]
    pairs = pairs + extra
    left = [a for a, _ in pairs]
    right = [b for _, b in pairs]
    return left, right, true


@settings(max_examples=100, deadline=None)
@given(blocking_cases())
@example(([0, 1, 1, 0, 2], [1, 0, 1, 1, 2], ["a", "a", "b"]))
def test_blocking_matches_brute_force(case):
    left, right, true = case
    cands, true_pairs, found, completeness, reduction = oracle_blocking(left, right, true)
    got = blocking_metrics(np.array(left, dtype=np.int32), np.array(right, dtype=np.int32), true)
    assert got["candidate_pairs"] == cands
    assert got["true_pairs"] == true_pairs
    assert got["found_true_pairs"] == found
    assert got["pair_completeness"] == pytest.approx(completeness)
    assert got["reduction_ratio"] == pytest.approx(reduction)


def test_blocking_bad_input():
    with pytest.raises(InputError, match="same length"):
        blocking_metrics([0, 1], [1], ["a", "b"])
    with pytest.raises(InputError, match="outside 0..1"):
        blocking_metrics([0, 2], [1, 0], ["a", "b"])
    with pytest.raises(InputError, match="integer"):
        blocking_metrics([0.0, 1.0], [1, 0], ["a", "b"])


# ------------------------------------------------------------------------------------------------------------
# Frames and files
# ------------------------------------------------------------------------------------------------------------


def _membership():
    return pd.DataFrame(
        {
            "record_id": ["1", "2", "3", "1", "2"],
            "source": ["crm", "crm", "crm", "web", "web"],
            "profile_id": [100, 100, 101, 100, 102],
        }
    )


def _truth(with_source=True):
    frame = pd.DataFrame(
        {
            "record_id": ["1", "2", "3", "1", "2"],
            "source": ["crm", "crm", "crm", "web", "web"],
            "true_id": ["p", "p", "q", "p", "q"],
        }
    )
    return frame if with_source else frame.drop(columns="source")


def test_evaluate_frames_joins_on_source_and_record_id():
    truth = _truth().iloc[::-1]  # row order must not matter
    r = evaluate_frames(_membership(), truth)
    assert r["records"] == 5 and r["joined_on"] == ["source", "record_id"]
    expected = evaluate([100, 100, 101, 100, 102], ["p", "p", "q", "p", "q"])
    for key in expected:
        assert r[key] == expected[key]
    json.dumps(r)


def test_evaluate_frames_joins_on_record_id_and_casts_dtypes():
    membership = pd.DataFrame({"record_id": ["7", "8", "9"], "source": "s", "profile_id": [1, 1, 2]})
    truth = pd.DataFrame({"record_id": [9, 8, 7], "true_id": [5, 6, 6]})  # ints, as from a CSV
    r = evaluate_frames(membership, truth)
    assert r["joined_on"] == ["record_id"]
    assert r["pairwise"]["true_positive_pairs"] == 1


def test_evaluate_frames_empty():
    r = evaluate_frames(_membership().iloc[:0], _truth().iloc[:0])
    assert r["records"] == 0 and r["pairwise"]["f1"] == 1.0


def test_evaluate_frames_missing_records():
    truth = pd.concat(
        [_truth(), pd.DataFrame({"record_id": ["8", "9"], "source": ["crm", "crm"], "true_id": ["z", "z"]})]
    )
    expected = r"2 truth record\(s\) are not in membership \(e\.g\. \('crm', '8'\)"
    with pytest.raises(InputError, match=expected):
        evaluate_frames(_membership(), truth)
    with pytest.raises(InputError, match=r"1 membership record\(s\) are not in truth"):
        evaluate_frames(_membership(), _truth().iloc[1:])


def test_evaluate_frames_errors():
    with pytest.raises(InputError, match="truth lacks column.*'true_id'"):
        evaluate_frames(_membership(), _truth().drop(columns="true_id"))
    with pytest.raises(InputError, match="membership lacks column.*'profile_id'"):
        evaluate_frames(_membership().drop(columns="profile_id"), _truth())
    # Without source in truth, record ids repeat across sources in membership: ambiguous join.
    with pytest.raises(DuplicateRecordError, match="membership has 4 rows.*source"):
        evaluate_frames(_membership(), _truth(with_source=False).drop_duplicates("record_id"))
    membership = _membership()
    membership.loc[2, "record_id"] = None
    with pytest.raises(InputError, match="membership column 'record_id' has 1 missing"):
        evaluate_frames(membership, _truth())
    truth = _truth()
    truth.loc[0, "true_id"] = None
    with pytest.raises(InputError, match="truth column 'true_id' has 1 missing"):
        evaluate_frames(_membership(), truth)


def test_evaluate_files_parquet_and_csv(tmp_path):
    membership_dir = tmp_path / "membership"
    membership_dir.mkdir()
    m = _membership()
    m.iloc[:3].to_parquet(membership_dir / "part-0.parquet", index=False)
    m.iloc[3:].to_parquet(membership_dir / "part-1.parquet", index=False)
    truth_csv = tmp_path / "truth.csv"
    _truth().to_csv(truth_csv, index=False)
    expected = evaluate_frames(m, _truth())

    assert evaluate_files(membership_dir, truth_csv) == expected  # folder of parts + CSV
    assert evaluate_files(str(membership_dir / "part-*.parquet"), truth_csv) == expected  # glob
    m.to_csv(tmp_path / "membership.csv", index=False)
    _truth().to_parquet(tmp_path / "truth.parquet", index=False)
    assert evaluate_files(tmp_path / "membership.csv", tmp_path / "truth.parquet") == expected
    format_table(expected)  # renders without error


def test_evaluate_files_keeps_csv_ids_as_strings(tmp_path):
    # "007" in the CSV must join "007" in the Parquet, not the number 7.
    pd.DataFrame({"record_id": ["007", "7"], "source": "s", "profile_id": [1, 2]}).to_parquet(
        tmp_path / "m.parquet"
    )
    (tmp_path / "t.csv").write_text("record_id,true_id\n007,a\n7,b\n")
    r = evaluate_files(tmp_path / "m.parquet", tmp_path / "t.csv")
    assert r["pairwise"]["f1"] == 1.0 and r["records"] == 2


def test_evaluate_files_errors(tmp_path):
    _membership().to_parquet(tmp_path / "m.parquet", index=False)
    with pytest.raises(InputError, match="truth file .*nope.csv.* does not exist"):
        evaluate_files(tmp_path / "m.parquet", tmp_path / "nope.csv")
    with pytest.raises(InputError, match="matches no file"):
        evaluate_files(str(tmp_path / "x-*.parquet"), tmp_path / "nope.csv")
    _truth().drop(columns="true_id").to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(InputError, match=r"truth file .*t\.csv.* lacks column\(s\) 'true_id'"):
        evaluate_files(tmp_path / "m.parquet", tmp_path / "t.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="cannot read membership file .*bad.parquet"):
        evaluate_files(tmp_path / "bad.parquet", tmp_path / "t.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no .parquet or .csv"):
        evaluate_files(tmp_path / "empty", tmp_path / "t.csv")


def test_format_table_renders_everything():
    from rich.console import Console

    r = evaluate_frames(_membership(), _truth())
    r["blocking"] = blocking_metrics([0, 1], [1, 3], [1, 1, 2, 1, 2])
    console = Console(width=100, record=True)
    console.print(format_table(r))
    text = console.export_text()
    for word in ("pairwise", "B-cubed", "over-merged", "under-merged", "singletons", "blocking", "5 records"):
        assert word in text
    assert not math.isnan(r["pairwise"]["f1"])
