import numpy as np
import pandas as pd
import pyarrow as pa

from gpucdp.profiles import build_profiles, golden_values, profile_ids
from gpucdp.settings import FieldSettings


def test_golden_value_is_most_frequent_then_smallest():
    labels = np.array([0, 0, 0, 1, 1, 2])
    values = pd.Series(["bob", "rob", "rob", "amy", "zoe", None])
    assert golden_values(labels, values, 3).to_pylist() == ["rob", "amy", None]


def test_profile_ids_are_stable_and_depend_on_the_anchor():
    ids = profile_ids(np.array([0, 0, 1]), ["crm", "web", "pos"], ["7", "3", "1"]).to_pylist()
    again = profile_ids(np.array([1, 1, 0]), ["crm", "web", "pos"], ["7", "3", "1"]).to_pylist()
    assert ids[0] == again[1] and ids[1] == again[0]
    assert all(i.startswith("p") and len(i) == 17 for i in ids)
    # the ids users store: these exact values since the first release (anchor crm/7, then pos/1)
    assert ids == ["p1c937b97161d876b", "p3671b99f15d9902d"]


def _reference_ids(labels, source, record_id):
    """The documented rule in plain Python: anchor = smallest (source, record_id); keyed hash of its text."""
    anchors = {}
    for label, s, r in zip(labels, source, record_id):
        anchors[label] = min(anchors.get(label, (s, r)), (s, r))
    text = np.array([f"{s}\x1f{r}" for s, r in (anchors[k] for k in range(len(anchors)))], dtype=object)
    return [f"p{h:016x}" for h in pd.util.hash_array(text, hash_key="gpucdp-profile-1", categorize=False)]


def test_profile_ids_from_arrow_arrays_equal_the_reference():
    rng = np.random.default_rng(3)
    n = 5_000
    source = rng.choice(["crm", "web", "pos", "naïve ü"], n).tolist()
    record_id = [str(x) for x in rng.permutation(10 * n)[:n]]
    labels = rng.integers(0, 900, n)
    labels = np.unique(labels, return_inverse=True)[1]  # every label used
    expected = _reference_ids(labels, source, record_id)
    chunked = pa.chunked_array([pa.array(source[:100], pa.large_string()), pa.array(source[100:], pa.large_string())])
    assert profile_ids(labels, chunked, pa.array(record_id)).to_pylist() == expected
    assert profile_ids(labels, np.array(source, dtype=object), record_id).to_pylist() == expected


def test_profile_anchor_is_the_smallest_by_bytes_with_prefixes_and_multibyte_ids():
    # one cluster per case: a prefix sorts first, bytes compare unsigned (é = c3 a9 after z = 7a), and the
    # source decides before the record id
    cases = [
        (["crm", "crm", "crm"], ["10", "1", "1a"]),
        (["crm", "crm"], ["z", "é"]),
        (["web", "crm"], ["1", "9"]),
        (["crm", "crm", "crm"], ["😀", "e\u0301", "ẽ"]),
        (["pos", "pos"], ["", "0"]),
        (["crm", "crm", "crm"], ["x" * 31, "x" * 6 + "é" * 20, "x" * 14 + "y"]),  # texts past one 8-byte word
    ]
    labels = np.concatenate([np.full(len(ids), k) for k, (_, ids) in enumerate(cases)])
    source = [s for sources, _ in cases for s in sources]
    record_id = [r for _, ids in cases for r in ids]
    order = np.random.default_rng(0).permutation(len(labels))  # any input order
    got = profile_ids(labels[order], [source[i] for i in order], [record_id[i] for i in order]).to_pylist()
    assert got == _reference_ids(labels[order], [source[i] for i in order], [record_id[i] for i in order])


def test_build_profiles_tables():
    prepared = pd.DataFrame({"first_name": ["john", "jon", "john", None, "amy"],
                             "email": ["a@x.com", None, "b@x.com", "c@y.com", None]})
    fields = [FieldSettings(name="first_name", type="name"), FieldSettings(name="email", type="email")]
    profiles, membership = build_profiles(
        ["1", "2", "3", "4", "5"], ["crm", "web", "crm", "pos", "pos"], prepared, fields,
        np.array([0, 0, 0, 1, 2]), np.array([0.9, 0.95, 0.99, np.nan, np.nan]), np.zeros(5, bool))
    p = profiles.to_pandas()
    assert p["record_count"].tolist() == [3, 1, 1]
    assert profiles.column("first_name").to_pylist()[:2] == ["john", None]
    assert list(p["email_all"][0]) == ["a@x.com", "b@x.com"]
    assert list(p["sources"][0]) == ["crm", "web"]
    m = membership.to_pandas()
    assert m["record_id"].tolist() == ["1", "2", "3", "4", "5"]
    assert m["profile_id"].nunique() == 3 and m["profile_id"][0] == m["profile_id"][2]
    assert np.isnan(m["match_probability"][3])


def test_golden_values_equal_a_plain_python_count_on_random_clusters():
    rng = np.random.default_rng(8)
    n, n_clusters = 4_000, 700
    labels = rng.integers(0, n_clusters, n)
    values = pd.Series(rng.choice(["a", "b", "c", "d", "e", None], n, p=[0.3, 0.25, 0.2, 0.1, 0.05, 0.1]))
    first_seen = {v: i for i, v in reversed(list(enumerate(values)))}
    want = []
    for c in range(n_clusters):
        members = [v for v, label in zip(values, labels) if label == c and not pd.isna(v)]
        counts = {v: members.count(v) for v in set(members)}
        # most frequent, ties to the value seen first in the whole input
        want.append(min(counts, key=lambda v: (-counts[v], first_seen[v])) if counts else None)
    assert golden_values(labels, values, n_clusters).to_pylist() == want
