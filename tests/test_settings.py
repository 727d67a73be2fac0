import json

import pytest
import yaml

from gpucdp.errors import SettingsError
from gpucdp.settings import (
    ComparisonSettings,
    Settings,
    infer_fields,
    load_settings,
    parse_settings,
    resolve_settings,
)

COLUMNS = ["record_id", "source", "Given Name", "surname", "email", "Mobile", "date_of_birth", "zip", "address",
           "city", "loyalty_tier"]


def test_infer_fields_from_column_aliases():
    fields, unused = infer_fields(COLUMNS, exclude=["record_id", "source"])
    by_name = {f.name: f for f in fields}
    assert by_name["first_name"].type == "name" and by_name["first_name"].input_column == "Given Name"
    assert by_name["last_name"].input_column == "surname"
    assert by_name["phone"].type == "phone" and by_name["phone"].input_column == "Mobile"
    assert by_name["dob"].type == "date"
    assert by_name["postcode"].type == "postcode"
    assert by_name["address_line"].type == "address"
    assert unused == ["loyalty_tier"]


def test_default_comparisons_model_location_once():
    resolved, _ = resolve_settings(Settings(), COLUMNS)
    names = [c.name for c in resolved.comparisons]
    assert names == ["first_name", "last_name", "email", "phone", "dob", "location"]
    location = resolved.comparisons[-1]
    columns = [level.column for level in location.levels]
    # address, postcode and city are one comparison: one fact is counted once
    assert {"address_line", "postcode", "city"} <= set(columns)
    assert not any(c.name in ("postcode", "city", "address_line") for c in resolved.comparisons)
    assert resolved.blocking.rules and ["email"] in resolved.blocking.rules
    assert resolved.blocking.knn.columns


def test_round_trip_json_and_yaml(tmp_path):
    resolved, _ = resolve_settings(Settings(), COLUMNS)
    data = resolved.to_dict()
    (tmp_path / "s.json").write_text(json.dumps(data))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    assert load_settings(tmp_path / "s.json") == resolved
    assert load_settings(tmp_path / "s.yaml") == resolved


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"bogus": 1}, "bogus: unknown setting"),
        ({"cluster": {"threshold": 1.5}}, "cluster.threshold"),
        ({"cluster": {"linkage": "complete"}}, "cluster.linkage.*'average' or 'single'"),
        ({"mode": "merge"}, "mode"),
        ({"blocking": {"knn": {"k": 0}}}, "blocking.knn.k"),
        ({"fields": [{"name": "x", "type": "colour"}]}, "fields.0.type"),
        ({"comparisons": [{"name": "a", "levels": [{"method": "jaro_winkler", "column": "a"}]}]}, "threshold"),
        ({"comparisons": [{"name": "a", "levels": [{"method": "damerau", "column": "a", "threshold": 1}],
                           "term_frequency": True}]}, "term_frequency"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_invalid_settings_name_the_setting(data, needle):
    with pytest.raises(SettingsError, match=needle):
        parse_settings(data, origin="test.yaml")


def test_settings_file_errors(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(SettingsError, match="not valid"):
        load_settings(bad)


def test_no_inferable_field_is_an_error():
    with pytest.raises(SettingsError, match="no field could be inferred"):
        resolve_settings(Settings(), ["record_id", "colour", "size"])


def test_explicit_comparisons_are_kept():
    comp = ComparisonSettings.model_validate(
        {"name": "email", "levels": [{"method": "exact", "column": "email"}]})
    s = Settings(fields=[{"name": "email", "type": "email"}], comparisons=[comp])
    resolved, unused = resolve_settings(s, ["record_id", "email", "other"])
    assert resolved.comparisons == [comp]
    assert unused == ["other"]


def test_key_rules_take_their_own_block_cap():
    settings = parse_settings({"blocking": {"max_block_size": 50, "rules": [
        ["email"], {"columns": ["first_name__canon", "last_name__phonetic"], "max_block_size": 30}]}})
    assert settings.blocking.key_rules() == [(["email"], 50), (["first_name__canon", "last_name__phonetic"], 30)]
    for bad in ({"columns": [], "max_block_size": 30}, {"columns": ["email"], "max_block_size": 1},
                {"columns": ["email"]}, {"columns": ["email"], "max_block_size": 30, "cap": 2}):
        with pytest.raises(SettingsError, match="blocking.rules") as caught:
            parse_settings({"blocking": {"rules": [bad]}})
        assert "list[str]" not in str(caught.value)  # only the form the user wrote is blamed
