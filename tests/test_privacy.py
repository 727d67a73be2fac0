"""No raw personal data in what a run prints or records; pairs can be written with keyed hashes instead of ids."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gpucdp import pipeline, synth
from gpucdp.cli import main
from gpucdp.io import keyed_record_hashes

# Distinctive values, each checked (case-insensitively) in every output stream and document of a run, together
# with what standardisation makes of them.
PII = {
    "first_name": "Zyxquorbel", "last_name": "Vantwhistle", "email": "Zyx.Vant+promo@privmail.example",
    "phone": "+44 7700 900417", "address_line": "17 Quillfeather Lane", "postcode": "QX9 4ZZ", "dob": "1971-03-14",
}
NEEDLES = ["zyxquorbel", "vantwhistle", "zyxvant", "zyx.vant", "privmail", "900417", "quillfeather", "qx94zz",
           "qx9 4zz", "1971-03-14", "19710314"]


def _records() -> pd.DataFrame:
    records = synth.generate_frame(600, seed=4)[0]
    pii = pd.DataFrame([{"record_id": f"pii-{i}", "source": "crm", **PII} for i in range(3)])
    pii.loc[1, "first_name"] = "Zyxquorbel😀"  # bad values ride along
    pii.loc[2, "dob"] = "14/03/1971\x07"
    assert set(pii.columns) <= set(records.columns)
    return pd.concat([records, pii], ignore_index=True)


def _assert_clean(text: str, where: str) -> None:
    low = text.lower()
    for needle in NEEDLES:
        assert needle not in low, f"{needle!r} appears in {where}"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("privacy")
    _records().to_parquet(root / "records.parquet")
    return root


def test_a_run_prints_and_records_no_personal_data(data, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "gpucdp.cli", "resolve", str(data / "records.parquet"), "--out", str(out),
         "--backend", "cpu", "--write-pairs", "--hash-pairs"],
        check=False, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "records →" in proc.stdout and "compare" in proc.stderr  # the default output was shown
    _assert_clean(proc.stdout, "stdout")
    _assert_clean(proc.stderr, "stderr")
    for name in ("manifest.json", "model.json"):
        _assert_clean((out / name).read_text(), name)
    pairs = pd.read_parquet(out / "pairs.parquet")
    _assert_clean(pairs.to_csv(), "pairs.parquet")
    assert not pairs["left_record_id"].str.startswith("pii-").any()
    # the profiles do hold the data: that is their purpose (and a check that the needles would be found)
    profiles = pd.read_parquet(out / "profiles.parquet").to_csv().lower()
    assert all(needle in profiles for needle in ("zyxquorbel", "vantwhistle", "quillfeather", "900417"))


def test_error_messages_quote_no_row(tmp_path, capsys):
    row = ",".join(PII.values())
    (tmp_path / "in.csv").write_text("record_id," + ",".join(PII) + "\n1," + row + "\n2," + row + ",extra\n")
    assert main(["resolve", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "in.csv" in err
    _assert_clean(err, "the error line")


def test_a_crash_hides_the_library_message_unless_asked(data, tmp_path, monkeypatch, capsys):
    def crash(*args, **kwargs):
        raise ValueError(f"could not convert string to float: {PII['last_name']!r}")

    monkeypatch.setattr(pipeline, "build_profiles", crash)
    args = ["resolve", str(data / "records.parquet"), "--out", str(tmp_path / "out"), "--backend", "cpu",
            "--quiet"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "ValueError" in err and "GPUCDP_DEBUG=1" in err and "internal error" in err
    _assert_clean(err, "the crash report")
    monkeypatch.setenv("GPUCDP_DEBUG", "1")
    assert main(args) == 3
    assert PII["last_name"] in capsys.readouterr().err


@pytest.fixture(scope="module")
def plain(data):
    return pipeline.resolve(data / "records.parquet", backend="cpu", write_pairs=True)


def test_hash_pairs_replaces_ids_by_keyed_hashes(data, plain):
    hashed = pipeline.resolve(data / "records.parquet", backend="cpu", write_pairs=True, hash_pairs=True,
                              hash_key="team secret")
    a, b = plain.pairs, hashed.pairs
    assert len(a) == len(b) > 0
    key = b"team secret"
    for side in ("left", "right"):
        expected = keyed_record_hashes(a[f"{side}_source"].to_numpy(object), a[f"{side}_record_id"].to_numpy(object),
                                       key)
        assert b[f"{side}_record_id"].tolist() == expected.tolist()
        assert b[f"{side}_record_id"].str.fullmatch(r"h[0-9a-f]{32}").all()
        assert not set(b[f"{side}_record_id"]) & set(a[f"{side}_record_id"])
    pd.testing.assert_frame_equal(a.drop(columns=["left_record_id", "right_record_id"]),
                                  b.drop(columns=["left_record_id", "right_record_id"]))
    assert hashed.manifest["pairs_record_ids"] == "keyed hash, user key"
    pd.testing.assert_frame_equal(hashed.membership, plain.membership)  # membership keeps the real ids


def test_hashes_are_stable_only_with_a_key(data):
    def ids(**kwargs):
        return pipeline.resolve(data / "records.parquet", backend="cpu", write_pairs=True, hash_pairs=True,
                                **kwargs).pairs["left_record_id"].tolist()

    assert ids(hash_key="k1") == ids(hash_key="k1")
    assert ids(hash_key="k1") != ids(hash_key="k2")
    first, second = ids(), ids()
    assert first != second and not set(first) & set(second)


def test_keyed_hash_distinguishes_source_and_id():
    source = np.array(["a", "a", "b", "a\x1f"], dtype=object)
    record_id = np.array(["1", "2", "1", ""], dtype=object)
    hashes = keyed_record_hashes(source, record_id, b"k")
    assert len(set(hashes.tolist())) == 4
    assert keyed_record_hashes(source, record_id, b"k").tolist() == hashes.tolist()


def test_hash_pairs_needs_write_pairs(tmp_path, capsys):
    (tmp_path / "in.csv").write_text("record_id,first_name\n1,a\n")
    assert main(["resolve", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out"), "--hash-pairs"]) == 2
    assert "add --write-pairs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
