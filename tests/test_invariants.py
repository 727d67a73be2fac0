"""The pipeline checks on every run that each input record appears exactly once in membership."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from gpucdp import pipeline, synth
from gpucdp.cli import main
from gpucdp.errors import InternalError


@pytest.fixture(scope="module")
def records():
    return synth.generate_frame(800, seed=5)[0]


def _break_membership(monkeypatch, how):
    real = pipeline.build_profiles

    def broken(*args, **kwargs):
        profiles, membership = real(*args, **kwargs)
        out = how(profiles, membership)
        return out if isinstance(out, tuple) else (profiles, out)

    monkeypatch.setattr(pipeline, "build_profiles", broken)


def _moved_one_record_count(profiles):
    counts = profiles["record_count"].to_numpy().copy()
    counts[:2] += [1, -1]  # the total stays right
    return profiles.set_column(1, "record_count", pa.array(counts, pa.int32()))


BREAKS = {
    "dropped": (lambda p, m: m.slice(0, m.num_rows - 1), "rows for 800 input records"),
    "duplicated": (lambda p, m: m.take(np.r_[0, 0, np.arange(2, m.num_rows)]), "row 1 is not input record 1"),
    "reordered": (lambda p, m: m.take(np.r_[1, 0, np.arange(2, m.num_rows)]), "row 0 is not input record 0"),
    "no_profile": (lambda p, m: m.set_column(2, "profile_id", pa.array([None] + m["profile_id"].to_pylist()[1:],
                                                                        pa.string())), "no profile id"),
    "unknown_profile": (lambda p, m: m.set_column(2, "profile_id", pa.array(["p-nowhere"] +
                                                                             m["profile_id"].to_pylist()[1:])),
                        "a missing profile"),
    # records 0 and 1 are in different clusters of the fixture's records (checked below): each gets the other's id
    "another_profile": (lambda p, m: m.set_column(2, "profile_id", m["profile_id"].take(np.r_[1, 0, 2:m.num_rows])),
                        "not its cluster's profile"),
    "miscounted": (lambda p, m: (_moved_one_record_count(p), m), "record count is not its cluster's size"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_a_lost_or_repeated_record_is_an_internal_error(monkeypatch, records, case):
    how, needle = BREAKS[case]
    _break_membership(monkeypatch, how)
    with pytest.raises(InternalError, match=needle):
        pipeline.resolve(records, backend="cpu")


def test_the_cli_exits_3_and_writes_nothing(monkeypatch, records, tmp_path, capsys):
    _break_membership(monkeypatch, BREAKS["dropped"][0])
    records.to_parquet(tmp_path / "in.parquet")
    code = main(["resolve", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "out"), "--backend", "cpu",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 3 and "internal error: membership has 799 rows" in err and "Traceback" in err
    assert sorted(os.listdir(tmp_path)) == ["in.parquet"]


def test_the_check_passes_on_a_real_run(records):
    result = pipeline.resolve(records, backend="cpu")
    ids = result.membership["profile_id"]
    assert ids[0] != ids[1]  # the premise of the "another_profile" case
    assert list(result.membership["record_id"]) == list(records["record_id"].astype(str))
    assert isinstance(result.membership, pd.DataFrame)
