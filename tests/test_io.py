import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpucdp.errors import DuplicateRecordError, InputError, OutputError
from gpucdp.io import check_output, expand_inputs, read_inputs, write_outputs

FIELDS = {"first_name": "first_name", "postcode": "postcode"}


def _read(inputs, fields=FIELDS):
    return read_inputs(inputs, record_id="record_id", source="source", field_columns=fields)


def test_files_folders_globs_are_sources(tmp_path):
    pd.DataFrame({"record_id": ["1", "2"], "first_name": ["ann", "bob"], "postcode": ["02139", None]}).to_csv(
        tmp_path / "crm.csv", index=False)
    web = tmp_path / "web"
    web.mkdir()
    for i in range(2):
        pq.write_table(pa.table({"record_id": [f"w{i}"], "first_name": ["cy"], "postcode": ["02139"]}),
                       web / f"part-{i}.parquet")
    table, files = _read([tmp_path / "crm.csv", web])
    assert table.num_rows == 4
    assert table.column("source").to_pylist() == ["crm", "crm", "web", "web"]
    # CSV columns are strings: the leading zero of a postcode survives
    assert table.column("postcode").to_pylist()[0] == "02139"
    assert [f.rows for f in files] == [2, 1, 1]
    globbed = expand_inputs([str(web / "*.parquet")])
    assert [f.source for f in globbed] == ["part-0", "part-1"]


def test_pandas_index_columns_are_not_data(tmp_path):
    frame = pd.DataFrame({"record_id": ["1", "2"], "first_name": ["a", "b"], "postcode": ["x", "y"]}, index=[5, 9])
    frame.to_parquet(tmp_path / "p.parquet")  # stores the index as __index_level_0__
    table, _ = read_inputs([tmp_path / "p.parquet"], record_id="record_id", source="source", field_columns=None)
    assert "__index_level_0__" not in table.column_names


def test_source_column_overrides_file_name(tmp_path):
    frame = pd.DataFrame({"record_id": ["1", "2"], "source": ["pos", None], "first_name": ["a", "b"],
                          "postcode": ["x", "y"]})
    table, _ = _read({"all": frame})
    assert table.column("source").to_pylist() == ["pos", "all"]


def test_missing_field_column_in_one_source_is_null_and_reported(tmp_path):
    a = pd.DataFrame({"record_id": ["1"], "first_name": ["a"], "postcode": ["x"]})
    b = pd.DataFrame({"record_id": ["1"], "first_name": ["b"]})
    table, files = _read({"a": a, "b": b})
    assert table.column("postcode").to_pylist() == ["x", None]
    assert files[1].missing_columns == ["postcode"]


@pytest.mark.parametrize("case, needle", [
    ("missing_file", "does not exist"),
    ("empty_folder", "holds no .parquet or .csv"),
    ("bad_glob", "matches no Parquet"),
    ("bad_extension", "neither Parquet nor CSV"),
    ("corrupt_parquet", "cannot be read as Parquet"),
    ("no_record_id", "no record id column 'record_id'"),
    ("null_record_id", "null record id"),
    ("duplicate_record_id", "unique within a source"),
    ("field_nowhere", "is in none of the inputs"),
    ("latin1_csv", "not UTF-8"),
    ("empty", "hold no records"),
])
def test_bad_inputs_are_named(tmp_path, case, needle):
    path = tmp_path / "in.parquet"
    fields = FIELDS
    if case == "missing_file":
        inputs = [tmp_path / "nope.parquet"]
    elif case == "empty_folder":
        (tmp_path / "empty").mkdir()
        inputs = [tmp_path / "empty"]
    elif case == "bad_glob":
        inputs = [str(tmp_path / "*.parquet")]
    elif case == "bad_extension":
        (tmp_path / "x.xlsx").write_text("x")
        inputs = [tmp_path / "x.xlsx"]
    elif case == "corrupt_parquet":
        path.write_bytes(b"PAR1 this is not parquet")
        inputs = [path]
    elif case == "latin1_csv":
        p = tmp_path / "l.csv"
        p.write_bytes("record_id,first_name,postcode\n1,Jos\xe9,x\n".encode("latin-1"))
        inputs = [p]
    else:
        frame = {
            "no_record_id": pd.DataFrame({"id": ["1"], "first_name": ["a"], "postcode": ["x"]}),
            "null_record_id": pd.DataFrame({"record_id": ["1", None], "first_name": ["a", "b"], "postcode": ["x", "y"]}),
            "duplicate_record_id": pd.DataFrame({"record_id": ["1", "1"], "first_name": ["a", "b"],
                                                 "postcode": ["x", "y"]}),
            "field_nowhere": pd.DataFrame({"record_id": ["1"], "first_name": ["a"]}),
            "empty": pd.DataFrame({"record_id": pd.Series([], dtype=str), "first_name": pd.Series([], dtype=str),
                                   "postcode": pd.Series([], dtype=str)}),
        }[case]
        frame.to_parquet(path)
        inputs = [path]
    error = DuplicateRecordError if case == "duplicate_record_id" else InputError
    with pytest.raises(error, match=needle) as info:
        _read(inputs, fields)
    if case in ("null_record_id", "corrupt_parquet"):
        assert "in.parquet" in str(info.value)


def test_same_record_id_in_two_sources_is_fine():
    a = pd.DataFrame({"record_id": ["1"], "first_name": ["a"], "postcode": ["x"]})
    table, _ = _read({"crm": a, "web": a})
    assert table.num_rows == 2


def test_atomic_write_and_overwrite(tmp_path):
    out = tmp_path / "out"
    write_outputs(out, {"t": pd.DataFrame({"a": [1]})}, {"m": {"x": 1}}, overwrite=False)
    assert sorted(os.listdir(out)) == ["m.json", "t.parquet"]
    with pytest.raises(OutputError, match="already exists"):
        check_output(out, overwrite=False)
    write_outputs(out, {"u": pd.DataFrame({"a": [2]})}, {}, overwrite=True)
    assert os.listdir(out) == ["u.parquet"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_failed_write_leaves_previous_outputs(tmp_path):
    out = tmp_path / "out"
    write_outputs(out, {"t": pd.DataFrame({"a": [1]})}, {}, overwrite=False)
    with pytest.raises(TypeError):
        write_outputs(out, {"t": pd.DataFrame({"a": [9]})}, {"m": {"bad": object()}}, overwrite=True)
    assert pd.read_parquet(out / "t.parquet")["a"].tolist() == [1]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_tables_written_at_once_are_the_same_and_still_atomic(tmp_path):
    tables = {name: pd.DataFrame({"a": list(range(i, i + 50)), "s": [f"v{j}" for j in range(50)]})
              for i, name in enumerate(["p", "q", "r"])}
    written = write_outputs(tmp_path / "one", tables, {}, overwrite=False)
    written_at_once = write_outputs(tmp_path / "many", tables, {}, overwrite=False, threads=3)
    assert [p.name for p in written] == [p.name for p in written_at_once] == ["p.parquet", "q.parquet", "r.parquet"]
    for name in tables:
        assert pq.read_table(tmp_path / "one" / f"{name}.parquet").equals(
            pq.read_table(tmp_path / "many" / f"{name}.parquet"))
    # one table that cannot be written: no output, the previous one kept, no temporary folder left
    bad = dict(tables, q=pd.DataFrame({"a": [object()]}))
    with pytest.raises(pa.ArrowException):
        write_outputs(tmp_path / "many", bad, {}, overwrite=True, threads=3)
    assert pd.read_parquet(tmp_path / "many" / "q.parquet")["a"].tolist() == list(range(1, 51))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_output_parent_must_exist(tmp_path):
    with pytest.raises(OutputError, match="parent folder"):
        check_output(tmp_path / "a" / "b", overwrite=False)


def test_repeated_ids_are_found_and_counted_in_any_order(tmp_path):
    # four records share two ids, in different files of one source, far apart; another source reuses an id
    crm, web = tmp_path / "crm", tmp_path / "web"
    crm.mkdir(), web.mkdir()
    for part, ids in enumerate([["a", "b", "dup1"], ["c", "dup2", "d"], ["dup2", "e", "dup1"]]):
        pd.DataFrame({"record_id": ids, "first_name": ["x"] * 3, "postcode": ["y"] * 3}).to_parquet(
            crm / f"part-{part}.parquet")
    pd.DataFrame({"record_id": ["a"], "first_name": ["x"], "postcode": ["y"]}).to_parquet(web / "w.parquet")
    with pytest.raises(DuplicateRecordError, match=r"^4 records share a record id .*e\.g\. crm/dup1, crm/dup2\)"):
        _read([crm, web], FIELDS)


def test_colliding_hashes_are_not_taken_for_repeats(monkeypatch):
    # every row hashes alike: the candidates are compared as strings, and only true repeats are refused
    import numpy as np

    from gpucdp import io

    monkeypatch.setattr(io, "row_hashes", lambda columns: np.zeros(len(columns[0]), dtype=np.uint64))
    unique = pd.DataFrame({"record_id": ["1", "2", "3"], "first_name": ["a"] * 3, "postcode": ["x"] * 3})
    table, _ = _read({"crm": unique, "web": unique})
    assert table.num_rows == 6
    repeated = unique.assign(record_id=["1", "2", "1"])
    with pytest.raises(DuplicateRecordError, match=r"^2 records share .*crm/1\)"):
        _read({"crm": repeated, "web": unique})


def test_a_field_with_its_only_value_late_in_the_column_is_accepted():
    from gpucdp.io import check_fields_have_values

    n = 100_000  # past the first windows the check looks at
    blank = pa.chunked_array([pa.array([None, "  "] * (n // 2), pa.large_string())])
    late = pa.chunked_array([blank.chunk(0).slice(0, n - 1), pa.array(["ann"], pa.large_string())])
    table = pa.table({"late": late, "blank": blank, "number": pa.array([None] * (n - 1) + [1.0])})
    check_fields_have_values(table, {"late": "late", "number": "number"})
    with pytest.raises(InputError, match="column 'blank' .* empty in every record"):
        check_fields_have_values(table, {"late": "late", "blank": "blank"})


def test_files_read_at_once_give_the_same_table_and_the_first_error(tmp_path):
    for part in range(5):
        pd.DataFrame({"record_id": [f"{part}-{i}" for i in range(50)], "first_name": ["ann"] * 50,
                      "postcode": [str(part)] * 50}).to_parquet(tmp_path / f"part-{part}.parquet")
    one, files_one = read_inputs([tmp_path], record_id="record_id", source="source", field_columns=FIELDS)
    many, files_many = read_inputs([tmp_path], record_id="record_id", source="source", field_columns=FIELDS,
                                   threads=4)
    assert many.equals(one)
    assert [f.describe() for f in files_many] == [f.describe() for f in files_one]
    for part in (3, 1):  # two broken files: the first in input order is named
        (tmp_path / f"part-{part}.parquet").write_bytes(b"PAR1 not parquet")
    with pytest.raises(InputError, match="part-1.parquet cannot be read"):
        read_inputs([tmp_path], record_id="record_id", source="source", field_columns=FIELDS, threads=4)
