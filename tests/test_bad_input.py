"""Every bad input the reliability issue lists, through the ``gpucdp resolve`` command.

A fatal problem exits with code 2 and ONE line on stderr naming the file, column or setting and the fix, and
leaves neither the output folder nor a temporary sibling behind. Bad *values* inside a good file are not fatal:
they become missing and are counted per column in manifest.json. (The missing input file and the unknown
settings key are covered in test_cli.py, the reader's error classes in test_io.py.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from gpucdp.cli import main

GOOD = "record_id,first_name,last_name,email\n1,Ann,Lee,ann@example.com\n2,Bob,Kim,bob@example.org\n"


def _run(tmp_path: Path, capsys, inputs: list[str], *extra: str) -> tuple[int, list[str]]:
    code = main(["resolve", *inputs, "--out", str(tmp_path / "out"), "--backend", "cpu", "--quiet", *extra])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


def _assert_refused(tmp_path: Path, code: int, err: list[str], *needles: str) -> None:
    assert code == 2, err
    assert len(err) == 1, err
    assert err[0].startswith("gpucdp resolve: error: ")
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    assert ":" in err[0][len("gpucdp resolve: error: "):], "the line says what to do after a colon"
    assert not [p for p in os.listdir(tmp_path) if p in ("out",) or p.startswith(".out")]


def _write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def _folder(tmp_path: Path, name: str, files: dict[str, str]) -> str:
    (tmp_path / name).mkdir()
    for file, content in files.items():
        _write(tmp_path, f"{name}/{file}", content)
    return str(tmp_path / name)


def _parquet(tmp_path: Path, name: str, frame: pd.DataFrame) -> str:
    frame.to_parquet(tmp_path / name)
    return str(tmp_path / name)


def _good_parquet(tmp_path: Path) -> bytes:
    frame = pd.DataFrame({"record_id": [str(i) for i in range(50)], "first_name": ["ann"] * 50})
    frame.to_parquet(tmp_path / "whole.parquet")
    data = (tmp_path / "whole.parquet").read_bytes()
    (tmp_path / "whole.parquet").unlink()
    return data


CASES = {
    "corrupt_parquet": (lambda t: [_write(t, "in.parquet", b"PAR1 not really parquet at all PAR1")],
                        ["in.parquet", "cannot be read as Parquet", "export it again"]),
    "truncated_parquet": (lambda t: [_write(t, "in.parquet", _good_parquet(t)[:300])],
                          ["in.parquet", "cannot be read as Parquet", "export it again"]),
    "wrong_delimiter": (lambda t: [_write(t, "in.csv", GOOD.replace(",", " "))],
                        ["in.csv", "'record_id'", "delimited by"]),
    "latin1_csv": (lambda t: [_write(t, "in.csv", "record_id,first_name\n1,Jos\xe9\n".encode("latin-1"))],
                   ["in.csv", "not UTF-8", "iconv"]),
    "ragged_csv": (lambda t: [_write(t, "in.csv", GOOD + "3,Cy\n4,Di,Lo,di@x.com,extra\n")],
                   ["in.csv", "a row with 2 fields where the header has 4", "quoting or the delimiter"]),
    "no_record_id_column": (lambda t: [_write(t, "in.csv", GOOD.replace("record_id", "id"))],
                            ["in.csv", "no record id column 'record_id'", "set record_id in the settings"]),
    "null_record_id": (lambda t: [_write(t, "in.csv", GOOD + ",Cy,Li,cy@x.com\n")],
                       ["in.csv", "null record id", "row 3"]),
    "duplicate_in_source": (lambda t: [_write(t, "in.csv", GOOD + "1,Cy,Li,cy@x.com\n")],
                            ["in.csv", "in/1", "unique within a source"]),
    "duplicate_across_files_of_one_source": (lambda t: [_folder(t, "crm", {"a.csv": GOOD, "b.csv": GOOD})],
                                             ["crm/1", "unique within a source"]),
    "empty_file": (lambda t: [_write(t, "in.csv", "")], ["in.csv", "is empty", "no header line"]),
    "header_only": (lambda t: [_write(t, "in.csv", "record_id,first_name\n")], ["hold no records", "in.csv"]),
    "all_null_field": (lambda t: [_write(t, "in.csv", "record_id,first_name,last_name\n1,Ann,\n2,Bob, \n")],
                       ["column 'last_name'", "empty in every record", "drop the field"]),
    "no_usable_column": (lambda t: [_write(t, "in.csv", "record_id,colour\n1,red\n")],
                         ["no field could be inferred", "colour"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_no_output(tmp_path, capsys, case):
    make, needles = CASES[case]
    code, err = _run(tmp_path, capsys, make(tmp_path))
    _assert_refused(tmp_path, code, err, *needles)


SETTINGS = {
    "unknown_key": ("blocking: {max_blok_size: 5}\n", ["blocking.max_blok_size", "unknown setting"]),
    "wrong_type": ("cluster: {threshold: high}\n", ["cluster.threshold", "number"]),
    "out_of_range_threshold": ("cluster: {threshold: 1.5}\n", ["cluster.threshold", "less than 1"]),
    "out_of_range_level": (
        "comparisons: [{name: f, levels: [{method: jaro_winkler, column: first_name, threshold: 2}]}]\n",
        ["comparisons.0.levels.0", "threshold"]),
    "not_a_mapping": ("- 1\n- 2\n", ["expected a mapping"]),
    "not_yaml": ("cluster: {threshold: [\n", ["settings.yaml", "not valid YAML"]),
    "unknown_column": ("fields: [{name: first_name, type: name, column: given}]\n",
                       ["column 'given'", "fix the column name in the settings"]),
}


@pytest.mark.parametrize("case", sorted(SETTINGS))
def test_bad_settings_are_named(tmp_path, capsys, case):
    text, needles = SETTINGS[case]
    settings = _write(tmp_path, "settings.yaml", text)
    code, err = _run(tmp_path, capsys, [_write(tmp_path, "in.csv", GOOD)], "--settings", settings)
    _assert_refused(tmp_path, code, err, *needles)


def test_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "out").write_text("not a folder")
    code = main(["resolve", _write(tmp_path, "in.csv", GOOD), "--out", str(tmp_path / "out"), "--overwrite",
                 "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not a folder: choose another --out" in err[0]
    assert (tmp_path / "out").read_text() == "not a folder"


def test_output_parent_not_writable_is_refused(tmp_path, capsys, monkeypatch):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    if os.access(parent, os.W_OK):  # root ignores permissions: pretend, the check is what is tested
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == parent else real(p, mode))
    code = main(["resolve", _write(tmp_path, "in.csv", GOOD), "--out", str(parent / "out"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    parent.chmod(0o755)
    assert code == 2 and len(err) == 1 and f"cannot write into {parent}" in err[0]
    assert os.listdir(parent) == []


def test_same_record_id_in_two_sources_is_accepted(tmp_path, capsys):
    a, b = _write(tmp_path, "crm.csv", GOOD), _write(tmp_path, "web.csv", GOOD)
    code, err = _run(tmp_path, capsys, [a, b])
    assert code == 0, err
    membership = pd.read_parquet(tmp_path / "out" / "membership.parquet")
    assert sorted(zip(membership["source"], membership["record_id"])) == [
        ("crm", "1"), ("crm", "2"), ("web", "1"), ("web", "2")]


def test_bad_values_are_missing_and_counted(tmp_path, capsys):
    """Numbers as names, unparseable dates, control characters, emoji and 10 kB strings: not fatal."""
    n = 60
    frame = pd.DataFrame({
        "record_id": [str(i) for i in range(n)],
        "first_name": ["Ann", "12345", "\x01\x02\x07", "😀😀", "x" * 10_000, "Bob"] * (n // 6),
        "last_name": ["Lee", "Kim", "Li", "Lo", "Ng", "y" * 10_000] * (n // 6),
        "dob": ["1990-01-02", "not a date", "31/31/2020", "", "1980-05-06", "😀"] * (n // 6),
        "email": ["a@b.com", "nope", "\x00@x", "😀@😀", "c@d.org", "e" * 10_000 + "@x.com"] * (n // 6),
        "phone": ["+1 617 555 0100", "12", "☎", "555-0100 ext 9", "", "\t"] * (n // 6),
    })
    path = _parquet(tmp_path, "in.parquet", frame)
    code, err = _run(tmp_path, capsys, [path])
    assert code == 0, err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    counts = manifest["standardize"]
    per = n // 6
    assert counts["first_name"] == {"missing": 0, "unparseable": 3 * per}  # digits, control chars, emoji
    assert counts["last_name"] == {"missing": 0, "unparseable": 0}
    assert counts["dob"]["missing"] == per and counts["dob"]["unparseable"] == 3 * per
    assert counts["email"]["unparseable"] >= 2 * per  # "nope" and the emoji address at least
    assert counts["phone"]["missing"] == 2 * per and counts["phone"]["unparseable"] >= 2 * per
    membership = pd.read_parquet(tmp_path / "out" / "membership.parquet")
    assert len(membership) == n and membership["profile_id"].notna().all()


def test_numbers_where_names_are_expected_are_counted(tmp_path, capsys):
    frame = pd.DataFrame({"record_id": [1, 2, 3, 4], "first_name": [1.5, 2.0, None, 4.0],
                          "last_name": ["Lee", "Lee", "Kim", "Kim"]})
    code, err = _run(tmp_path, capsys, [_parquet(tmp_path, "in.parquet", frame)])
    assert code == 0, err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["standardize"]["first_name"] == {"missing": 1, "unparseable": 3}
