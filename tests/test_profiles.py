import numpy as np
import pandas as pd

from gpucdp.profiles import build_profiles, golden_values, profile_ids
from gpucdp.settings import FieldSettings


def test_golden_value_is_most_frequent_then_smallest():
    labels = np.array([0, 0, 0, 1, 1, 2])
    values = pd.Series(["bob", "rob", "rob", "amy", "zoe", None])
    assert golden_values(labels, values, 3).tolist() == ["rob", "amy", None]


def test_profile_ids_are_stable_and_depend_on_the_anchor():
    ids = profile_ids(np.array([0, 0, 1]), ["crm", "web", "pos"], ["7", "3", "1"])
    again = profile_ids(np.array([1, 1, 0]), ["crm", "web", "pos"], ["7", "3", "1"])
    assert ids[0] == again[1] and ids[1] == again[0]
    assert all(i.startswith("p") and len(i) == 17 for i in ids)


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
