"""Tests of the synthetic data generator: shape, determinism, the documented rates, hard negatives, output."""

from __future__ import annotations

import csv
import json
import math
from importlib import resources

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from rapidfuzz.distance import OSA

from gpucdp import synth
from gpucdp.errors import OutputError, SettingsError

N = 12_000  # records per frame; the whole module stays well under 50k records


@pytest.fixture(scope="module")
def frame():
    return synth.generate_frame(N, seed=7)


@pytest.fixture(scope="module")
def clean():
    return synth.generate_frame(N // 2, seed=7, difficulty=0.0)


def _nickname_only() -> set[str]:
    nicks = {r["nickname"] for r in csv.DictReader(resources.files("gpucdp.data").joinpath("nicknames.csv")
                                                    .read_text().splitlines())}
    return nicks - set(synth._pools().first_email.to_pylist())


def _shape(values: pd.Series) -> pd.Series:
    return values.dropna().str.replace(r"\d", "9", regex=True)


# ------------------------------------------------------------------------------------------- structure


def test_columns_types_and_alignment(frame):
    records, truth = frame
    assert tuple(records.columns) == synth.COLUMNS
    assert tuple(truth.columns) == synth.TRUTH_COLUMNS
    assert len(records) == len(truth) == N
    assert all(pd.api.types.is_string_dtype(records[c]) for c in synth.COLUMNS)
    assert truth["true_id"].dtype == np.int64
    assert records["record_id"].is_unique
    assert (records["record_id"].to_numpy() == truth["record_id"].to_numpy()).all()
    assert (records["source"].to_numpy() == truth["source"].to_numpy()).all()
    assert set(records["source"]) == set(synth.SOURCES)
    prefix = records["record_id"].str.split("-").str[0]
    assert (prefix == records["source"]).all()
    assert records["record_id"].str.fullmatch(r"[a-z]+-\d{9}").all()


def test_same_seed_same_output_other_seed_other_output():
    a = list(synth.generate(3_000, seed=11, chunk_size=1_000))
    b = list(synth.generate(3_000, seed=11, chunk_size=1_000))
    for (ra, ta), (rb, tb) in zip(a, b):
        pd.testing.assert_frame_equal(ra, rb)
        pd.testing.assert_frame_equal(ta, tb)
    other, _ = synth.generate_frame(1_000, seed=12)
    assert not other.equals(a[0][0])


@pytest.mark.parametrize("n, chunk", [(1, 250_000), (10_001, 3_000), (4_000, 4_000)])
def test_exact_count_and_people_stay_in_one_chunk(n, chunk):
    chunks = list(synth.generate(n, seed=1, chunk_size=chunk))
    assert [len(r) for r, _ in chunks] == [min(chunk, n - i) for i in range(0, n, chunk)]
    truth = pd.concat([t for _, t in chunks], ignore_index=True)
    assert len(truth) == n and truth["record_id"].is_unique
    ids_per_chunk = [set(t["true_id"]) for _, t in chunks]
    assert sum(map(len, ids_per_chunk)) == len(set().union(*ids_per_chunk))  # no person spans two chunks
    assert truth["true_id"].min() == 0


def test_records_per_person_are_skewed(frame):
    per_person = frame[1]["true_id"].value_counts()
    assert 0.55 < (per_person == 1).mean() < 0.8
    assert 0.03 < (per_person >= 5).mean() < 0.2
    assert per_person.max() >= 15


# ---------------------------------------------------------------------------------------------- rates


def test_missing_rate_follows_the_table(frame, clean):
    records, _ = frame
    crm = records[records["source"] == "crm"]  # crm always fills names: only the "missing" corruption hits
    rate = crm["first_name"].isna().mean()
    assert abs(rate - synth.CORRUPTION_RATES["missing"]) < 0.02
    assert crm["address_line"].isna().mean() > rate  # crm's own gaps come on top
    assert records["dob"].isna().mean() > 0.3  # pos and web rarely keep a birth date
    assert clean[0].notna().all().all()


def test_nicknames_appear_at_difficulty_only(frame, clean):
    only = _nickname_only()
    share = frame[0]["first_name"].str.lower().isin(only).mean()
    # nickname rate times the share of people whose given name has a nickname (most common ones do)
    assert 0.4 * synth.CORRUPTION_RATES["nickname"] < share < 1.2 * synth.CORRUPTION_RATES["nickname"]
    assert clean[0]["first_name"].str.lower().isin(only).sum() == 0


def test_each_source_writes_dates_and_phones_its_own_way(frame, clean):
    shapes = {"iso": "9999-99-99", "us": "99/99/9999", "eu": "99.99.9999", "compact": "99999999"}
    phones = {"paren": "(999) 999-9999", "dash": "999-999-9999", "plus1": "+9 999 999 9999",
              "digits": "9999999999"}
    for records, strict in ((frame[0], False), (clean[0], True)):
        for source, habits in synth.SOURCE_HABITS.items():
            rows = records[records["source"] == source]
            dates = _shape(rows["dob"]).value_counts(normalize=True)
            phone = _shape(rows["phone"]).value_counts(normalize=True)
            assert dates.index[0] == shapes[habits.date_format]
            assert phone.index[0] == phones[habits.phone_format]
            if strict:
                assert len(dates) == 1 and len(phone) == 1
            elif source != "pos":  # pos keeps too few dates to measure
                assert dates.iloc[0] < 0.99 and phone.iloc[0] < 0.99
    assert len({h.date_format for h in synth.SOURCE_HABITS.values()}) >= 3


def test_casing_follows_source_habits(frame):
    records, _ = frame
    names = records.dropna(subset=["last_name"])
    upper = names["last_name"].str.isupper().groupby(names["source"]).mean()
    assert upper["pos"] > 0.8 and upper["crm"] < 0.2
    lower = names["last_name"].str.islower().groupby(names["source"]).mean()
    assert lower["web"] > 0.4


def test_street_suffixes_are_abbreviated_sometimes(frame, clean):
    def abbreviated(records):
        return records["address_line"].dropna().str.contains(r"\b(?:St|Ave|Rd|Dr)\b", case=False).mean()

    assert abbreviated(frame[0]) > 0.15
    assert abbreviated(clean[0]) == 0.0


def test_people_move(frame):
    records, truth = frame
    joined = records.assign(true_id=truth["true_id"]).dropna(subset=["postcode"])
    postcodes = joined.groupby("true_id")["postcode"].nunique()
    assert (postcodes > 1).sum() > 20


def test_emails_keep_their_shape(frame):
    emails = frame[0]["email"].dropna()
    assert (emails.str.count("@") == 1).all()
    assert (emails.str.lower() == emails).mean() > 0.6


# --------------------------------------------------------------------------------------- hard negatives


def test_households_share_surname_address_and_phone(frame):
    records, truth = frame
    rows = records.assign(true_id=truth["true_id"]).dropna(subset=["last_name", "address_line", "phone"])
    key = (rows["last_name"].str.lower() + "|" + rows["address_line"].str.lower() + "|"
           + rows["phone"].str.replace(r"\D", "", regex=True).str[-10:])
    assert (rows.groupby(key)["true_id"].nunique() > 1).sum() >= 10
    emails = records.assign(true_id=truth["true_id"]).dropna(subset=["email"])
    assert (emails.groupby(emails["email"].str.lower())["true_id"].nunique() > 1).sum() >= 10


def test_twins_and_juniors_exist(clean):
    records, truth = clean
    rows = records.assign(true_id=truth["true_id"])
    key = rows["last_name"] + "|" + rows["address_line"]
    twins = rows.groupby([key, rows["dob"]]).agg(people=("true_id", "nunique"),
                                                   names=("first_name", "nunique"))
    assert ((twins["people"] > 1) & (twins["names"] > 1)).any()
    juniors = rows.groupby([key, rows["first_name"]]).agg(people=("true_id", "nunique"),
                                                          dobs=("dob", "nunique"))
    assert ((juniors["people"] > 1) & (juniors["dobs"] > 1)).any()


# ------------------------------------------------------------------------------------- inner helpers


def test_typos_are_one_edit_at_the_rate():
    rng = np.random.default_rng(0)
    words = pa.array(["Robert", "Smith", "12 Main Street", None, "a", "New York"] * 500)
    out = synth._typos(rng, words, 0.3)
    before, after = words.to_pylist(), out.to_pylist()
    changed = [OSA.distance(a, b) for a, b in zip(before, after) if a is not None]
    assert max(changed) == 1
    assert 0.15 < np.mean(changed) < 0.3  # a no-op substitute (space, punctuation) is allowed
    assert [a is None for a in after] == [b is None for b in before]


def test_email_typos_stay_on_one_side_of_the_at():
    rng = np.random.default_rng(1)
    emails = pa.array(["john.smith@gmail.com", "ab@x.io"] * 500)
    at = np.array([10, 2] * 500)
    out = synth._typos(rng, emails, 1.0, at).to_pylist()
    assert all(s.count("@") == 1 for s in out)
    assert sum(s.split("@")[1] != "gmail.com" for s in out[::2]) > 50


def test_render_matches_python_formatting():
    days = np.array([0, 5_000, -12_000, 13_000], dtype=np.int64)
    dates = days.astype("datetime64[D]").astype(object)
    digits = synth._digits(np.array([d.year * 10_000 + d.month * 100 + d.day for d in dates]), 8)
    for f, fmt in enumerate(["%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y", "%Y%m%d"]):
        out = synth._render(digits, np.full(len(days), f), synth._DATE_TEMPLATES).to_pylist()
        assert out == [d.strftime(fmt) for d in dates]
    valid = np.array([True, False, True, False])
    out = synth._render(digits, np.zeros(4, np.int64), synth._DATE_TEMPLATES, valid).to_pylist()
    assert [o is None for o in out] == [False, True, False, True]


def test_nickname_table_is_clean():
    text = resources.files("gpucdp.data").joinpath("nicknames.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert rows and set(rows[0]) == {"nickname", "canonical"}
    pairs = [(r["nickname"], r["canonical"]) for r in rows]
    assert len(pairs) == len(set(pairs))
    assert all(n == n.strip().lower() and c == c.strip().lower() and n != c for n, c in pairs)
    assert len({c for _, c in pairs}) >= 150
    assert ("bob", "robert") in pairs and ("liz", "elizabeth") in pairs


# ----------------------------------------------------------------------------------------------- output


def test_write_dataset_round_trip(tmp_path):
    out = tmp_path / "data"
    seen = []
    summary = synth.write_dataset(out, 5_000, seed=3, chunk_size=2_000, progress=seen.append)
    assert seen == [2_000, 4_000, 5_000]
    records = pd.read_parquet(out / "records")
    truth = pd.read_parquet(out / "truth")
    expected = list(synth.generate(5_000, seed=3, chunk_size=2_000))
    pd.testing.assert_frame_equal(records, pd.concat([r for r, _ in expected], ignore_index=True),
                                  check_dtype=False)
    pd.testing.assert_frame_equal(truth, pd.concat([t for _, t in expected], ignore_index=True),
                                  check_dtype=False)
    assert summary["records"] == 5_000 and summary["people"] == truth["true_id"].nunique()
    assert sum(summary["sources"].values()) == 5_000 and len(summary["files"]) == 6
    assert summary["records_per_second"] > 0
    saved = json.loads((out / "synth.json").read_text())
    assert saved["arguments"]["seed"] == 3 and saved["corruption_rates"] == synth.CORRUPTION_RATES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary folder left behind


def test_write_dataset_refuses_an_existing_folder_unless_overwrite(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="already exists"):
        synth.write_dataset(out, 10)
    assert (out / "keep.txt").exists()
    summary = synth.write_dataset(out, 10, overwrite=True, sources=["crm", "web"])
    assert not (out / "keep.txt").exists() and summary["records"] == 10
    assert set(summary["sources"]) == {"crm", "web"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize("kwargs, name", [
    ({"n_records": 0}, "n_records"),
    ({"n_records": 2.5}, "n_records"),
    ({"n_records": True}, "n_records"),
    ({"seed": -1}, "seed"),
    ({"difficulty": 1.5}, "difficulty"),
    ({"difficulty": -0.1}, "difficulty"),
    ({"difficulty": math.nan}, "difficulty"),
    ({"difficulty": "hard"}, "difficulty"),
    ({"chunk_size": 0}, "chunk_size"),
    ({"sources": ["crm", "fax"]}, "sources"),
    ({"sources": []}, "sources"),
    ({"sources": "crm"}, "sources"),
    ({"sources": ["crm", "crm"]}, "sources"),
])
def test_bad_arguments_raise_settings_error(tmp_path, kwargs, name):
    args = {"n_records": 10, **kwargs}
    with pytest.raises(SettingsError, match=name):
        next(synth.generate(**args))
    with pytest.raises(SettingsError, match=name):
        synth.write_dataset(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()
