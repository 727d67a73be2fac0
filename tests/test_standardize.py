"""standardize: each field type on hand-made values, the stats, the frame contract and the errors."""

from __future__ import annotations

import math
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gpucdp.errors import InputError, SettingsError
from gpucdp.phonetic import double_metaphone
from gpucdp.standardize import FIELD_TYPES, derived_columns, fold_ascii, standardize

NICKNAMES = {"bob": "robert", "Bill": "William", "liz": "elizabeth", "j": "john"}
LONG = "x" * 10_000


def run(values, ftype, **kwargs):
    """Standardize one column; return (derived frame, stats of the field)."""
    frame = pd.DataFrame({"f": pd.Series(values, dtype=kwargs.pop("dtype", object))})
    kwargs.setdefault("nicknames", NICKNAMES)
    out, stats = standardize(frame, [("f", ftype)], **kwargs)
    assert list(out.columns) == derived_columns("f", ftype)
    assert len(out) == len(frame) and out.index.equals(frame.index)
    for column in out.columns:  # missing is null, never the empty string
        if out[column].dtype != np.float64:
            assert not (out[column] == "").any(), column
    return out, stats["f"]


def values(series):
    """A column as a list with every null spelled None."""
    return [None if (v is None or (isinstance(v, float) and math.isnan(v))) else v for v in series.tolist()]


# ---------------------------------------------------------------------------------------------------- contrac


def test_derived_columns_for_every_type():
    assert derived_columns("first", "name") == ["first", "first__canon", "first__phonetic", "first__initial"]
    assert derived_columns("e", "email") == ["e", "e__user", "e__domain"]
    assert derived_columns("p", "phone") == ["p"]
    assert derived_columns("d", "date") == ["d", "d__ymd"]
    assert derived_columns("z", "postcode") == ["z", "z__prefix"]
    assert derived_columns("a", "address") == ["a", "a__number"]
    assert derived_columns("t", "text") == ["t"]
    assert derived_columns("c", "categorical") == ["c"]
    assert derived_columns("n", "numeric") == ["n__num"]
    assert len(FIELD_TYPES) == 9


def test_unknown_field_type_names_field_and_type():
    with pytest.raises(SettingsError, match=r"'dob'.*'birthday'"):
        derived_columns("dob", "birthday")
    frame = pd.DataFrame({"dob": ["1985-04-03"]})
    with pytest.raises(SettingsError, match=r"'dob'.*'birthday'"):
        standardize(frame, [("dob", "birthday")])


def test_missing_column_bad_date_order_and_collisions():
    frame = pd.DataFrame({"a": ["x"], "a__canon": ["y"]})
    with pytest.raises(InputError, match="'b'"):
        standardize(frame, [("b", "text")])
    with pytest.raises(SettingsError, match="date_order"):
        standardize(frame, [("a", "text")], date_order="ymd")
    with pytest.raises(SettingsError, match="a__canon"):
        standardize(frame, [("a", "name"), ("a__canon", "text")], nicknames={})
    with pytest.raises(SettingsError, match="more than once"):
        standardize(frame, [("a", "text"), ("a", "text")])


def test_new_frame_same_index_only_derived_columns():
    frame = pd.DataFrame(
        {"name": ["Ann", None, "Bob"], "city": ["Paris", "Rome", None], "other": [1, 2, 3]},
        index=pd.Index(["r9", "r3", "r5"], name="record_id"),
    )
    before = frame.copy()
    out, stats = standardize(frame, [("name", "name"), ("city", "categorical")], nicknames=NICKNAMES)
    pd.testing.assert_frame_equal(frame, before)  # the input is not touched
    assert out.index.equals(frame.index)
    assert list(out.columns) == ["name", "name__canon", "name__phonetic", "name__initial", "city"]
    assert values(out["name__canon"]) == ["ann", None, "robert"]
    assert stats == {"name": {"missing": 1, "unparseable": 0}, "city": {"missing": 1, "unparseable": 0}}


def test_empty_frame_and_no_fields():
    frame = pd.DataFrame({"n": pd.Series([], dtype="str"), "d": pd.Series([], dtype="str")})
    out, stats = standardize(frame, [("n", "name"), ("d", "date")], nicknames={})
    assert len(out) == 0 and list(out.columns) == ["n", "n__canon", "n__phonetic", "n__initial", "d", "d__ymd"]
    assert stats["n"] == {"missing": 0, "unparseable": 0}
    out, stats = standardize(pd.DataFrame({"x": [1, 2]}), [])
    assert len(out) == 2 and stats == {}


@pytest.mark.parametrize("dtype", [object, "str"])
def test_string_dtypes_give_the_same_result(dtype):
    raw = ["  José ", None, "Bob", "", "   "]
    out, stats = run(raw, "name", dtype=dtype)
    assert values(out["f"]) == ["jose", None, "bob", None, None]
    assert stats == {"missing": 3, "unparseable": 0}


# -------------------------------------------------------------------------------------------------------- nam


def test_name_cleaning():
    raw = [
        "  José  María ",
        "O'Brien",
        "Smith-Jones",
        "Mr. John Smith Jr.",
        "DR  ZOË  ØRSTED III",
        "Straße",
        "Łukasz\tWójcik",
        "anne-marie",
        "Ms",
        "J.",
        "mrs",
    ]
    out, stats = run(raw, "name")
    assert values(out["f"]) == [
        "jose maria",
        "obrien",
        "smithjones",
        "john smith",
        "zoe orsted",
        "strasse",
        "lukasz wojcik",
        "annemarie",
        None,  # a title alone leaves no name
        "j",
        None,
    ]
    assert stats == {"missing": 0, "unparseable": 2}


def test_name_junk():
    raw = [
        None,
        np.nan,
        pd.NA,
        "",
        "   ",
        "\t\n",
        "🙂",
        "12345",
        12345,
        3.5,
        "bob\x00by",
        LONG,
        "李小龍",
        "ann 🙂",
    ]
    out, stats = run(raw, "name")
    assert values(out["f"]) == [
        None,
        None,
        None,
        None,
        None,
        None,  # missing
        None,
        None,
        None,
        None,  # unparseable: no letters
        "bob by",  # a control character separates
        LONG,
        None,  # no Latin letters: unparseable (transliteration is out of scope)
        "ann",
    ]
    assert stats == {"missing": 6, "unparseable": 5}


def test_name_canon_and_phonetic():
    raw = ["Bob Smith", "bill", "Liz", "J", "j smith", "Robert", "Zebulon", None]
    out, _ = run(raw, "name")
    assert values(out["f__canon"]) == ["robert", "william", "elizabeth", "j", "j", "robert", "zebulon", None]
    clean = values(out["f"])
    assert values(out["f__phonetic"]) == [double_metaphone(v)[0] if v else None for v in clean]
    assert values(out["f__initial"]) == [v[0] if v else None for v in clean]
    out, _ = run(["Smyth", "smith", "Catherine", "Kathryn"], "name")
    assert values(out["f__phonetic"]) == ["SM0", "SM0", "K0RN", "K0RN"]


def test_name_phonetic_null_when_no_code():
    out, _ = run(["h", "wh"], "name")  # letters, but Double Metaphone gives an empty code
    assert values(out["f"]) == ["h", "wh"]
    assert values(out["f__phonetic"]) == [None, "A"]


def test_packaged_nickname_table_loads():
    out, _ = run(["Bob", "Abby"], "name", nicknames=None)
    assert values(out["f__canon"])[1] == "abigail"


# ------------------------------------------------------------------------------------------------------- emai


def test_email():
    raw = [
        "  John.Doe+news@GoogleMail.com ",
        "j.o.h.n@gmail.com",
        "first.last+tag@outlook.com",
        "me+x@icloud.com",
        "first.last+tag@yahoo.com",  # yahoo: untouched
        "first.last+tag@example.org",
        "a@b",  # no dot in the domain
        "a@@b.com",
        "no-at-sign.com",
        "a b@c.com",
        "+only@gmail.com",  # nothing left of the user
        "x@.com",
        "",
        None,
        "🙂@🙂.com",
    ]
    out, stats = run(raw, "email")
    assert values(out["f"]) == [
        "johndoe@gmail.com",
        "john@gmail.com",
        "first.last@outlook.com",
        "me@icloud.com",
        "first.last+tag@yahoo.com",
        "first.last+tag@example.org",
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        "🙂@🙂.com",
    ]
    assert values(out["f__user"])[:3] == ["johndoe", "john", "first.last"]
    assert values(out["f__domain"])[:3] == ["gmail.com", "gmail.com", "outlook.com"]
    assert values(out["f__user"])[6] is None and values(out["f__domain"])[6] is None
    assert stats == {"missing": 2, "unparseable": 6}


# ------------------------------------------------------------------------------------------------------- phon


def test_phone():
    raw = [
        "+1 415 555 0134",
        "(415) 555-0134",
        "415.555.0134",
        "001-415-555-0134",
        "+44 20 7946 0958",
        "020 7946 0958",
        "415-555-0134 ext. 22",
        "415 555 0134 x7",
        "555 0134",  # 7 digits: kept
        "123456",  # 6 digits: unparseable
        "0000000000",  # placeholder
        "1" * 20,  # more than 15 digits
        "n/a",
        "",
        None,
    ]
    out, stats = run(raw, "phone")
    assert values(out["f"]) == ["4155550134"] * 4 + ["2079460958"] * 2 + ["4155550134"] * 2 + [
        "5550134",
        None,
        None,
        None,
        None,
        None,
        None,
    ]
    assert stats == {"missing": 2, "unparseable": 4}


def test_phone_from_float_and_int_columns():
    out, _ = run([4155550134.0, np.nan, 14155550134.0], "phone", dtype="float64")
    assert values(out["f"]) == ["4155550134", None, "4155550134"]
    out, _ = run([4155550134, 14155550134], "phone", dtype="int64")
    assert values(out["f"]) == ["4155550134", "4155550134"]


# -------------------------------------------------------------------------------------------------------- dat


def test_date_formats():
    raw = [
        "1985-04-03",
        "1985/4/3",
        "19850403",
        "03.04.1985",
        "3-Apr-1985",
        "03 april 1985",
        "April 3, 1985",
        "apr 3rd 1985",
        "1985-04-03T10:30:00Z",
        "1985-04-03 00:00:00",
        "13/04/1985",  # day > 12: clear
        "04/13/1985",
        "31-12-1999",
    ]
    out, stats = run(raw, "date")
    assert values(out["f"]) == ["1985-04-03"] * 10 + ["1985-04-13", "1985-04-13", "1999-12-31"]
    assert out["f__ymd"].tolist()[:2] == [19850403.0, 19850403.0]
    assert out["f__ymd"].dtype == np.float64
    assert stats == {"missing": 0, "unparseable": 0}


def test_date_order_decides_ambiguous_slash_dates():
    out, _ = run(["03/04/1985", "3/4/1985"], "date", date_order="mdy")
    assert values(out["f"]) == ["1985-03-04", "1985-03-04"]
    out, _ = run(["03/04/1985", "3/4/1985"], "date", date_order="dmy")
    assert values(out["f"]) == ["1985-04-03", "1985-04-03"]


def test_invalid_dates_are_unparseable_never_repaired():
    future = f"{date.today().year + 1}-01-01"
    raw = [
        "1985-13-01",
        "1985-02-30",
        "1900-02-29",
        "2000-02-29",
        "1899-12-31",
        future,
        "85-04-03",
        "soon",
        "2001-04-31",
        "0/0/2000",
        "",
        " ",
        None,
        LONG,
    ]
    out, stats = run(raw, "date")
    assert values(out["f"]) == [None, None, None, "2000-02-29"] + [None] * 10
    assert math.isnan(out["f__ymd"].iloc[0]) and out["f__ymd"].iloc[3] == 20000229.0
    assert stats == {"missing": 3, "unparseable": 10}


def test_date_from_timestamps():
    stamps = pd.Series(pd.to_datetime(["1985-04-03 13:00", None, "2001-12-31 00:00"]))
    out, stats = run(stamps, "date", dtype=stamps.dtype)
    assert values(out["f"]) == ["1985-04-03", None, "2001-12-31"]
    assert out["f__ymd"].tolist()[2] == 20011231.0
    assert stats == {"missing": 1, "unparseable": 0}
    arrow = stamps.astype("timestamp[ns][pyarrow]")
    out, _ = run(arrow, "date", dtype=arrow.dtype)
    assert values(out["f"]) == ["1985-04-03", None, "2001-12-31"]
    mixed = [
        pd.Timestamp("1985-04-03"),
        datetime(1990, 1, 2, 3, 4),
        date(1991, 5, 6),
        np.datetime64("1992-07-08"),
    ]
    out, _ = run(mixed, "date")
    assert values(out["f"]) == ["1985-04-03", "1990-01-02", "1991-05-06", "1992-07-08"]


# ---------------------------------------------------------------------------------------------------- postcod


def test_postcode():
    raw = ["sw1a 1aa", "EC1A-1BB", "M1 1AE", "94105", "94105-1234", "K1A 0B1", "02134", "n/a", "12", "", None]
    out, stats = run(raw, "postcode")
    assert values(out["f"]) == [
        "SW1A1AA",
        "EC1A1BB",
        "M11AE",
        "94105",
        "94105",
        "K1A0B1",
        "02134",
        None,
        None,
        None,
        None,
    ]
    assert values(out["f__prefix"]) == [
        "SW1A",
        "EC1A",
        "M1",
        "941",
        "941",
        "K1A",
        "021",
        None,
        None,
        None,
        None,
    ]
    assert stats == {"missing": 2, "unparseable": 2}


# ----------------------------------------------------------------------------------------------------- addres


def test_address():
    raw = [
        "123 Main Street",
        "123 MAIN ST.",
        "12b North Avenue, Apt 4",
        "77 Ocean Boulevard Suite 9",
        "5 Saint James Street",
        "#5, 10 Rue de l'Église",
        "1 Old Road Unit 2",
        "PO Box 12",
        "  ",
        None,
        "🙂",
    ]
    out, stats = run(raw, "address")
    assert values(out["f"]) == [
        "123 main st",
        "123 main st",
        "12b n ave apt 4",
        "77 ocean blvd apt 9",
        "5 st james st",
        "apt 5 10 rue de leglise",
        "1 old rd apt 2",
        "po box 12",
        None,
        None,
        None,
    ]
    assert values(out["f__number"]) == ["123", "123", "12b", "77", "5", None, "1", None, None, None, None]
    assert stats == {"missing": 2, "unparseable": 1}


# ------------------------------------------------------------------------------- text, categorical, numeric


def test_text_and_categorical():
    raw = ["  Hello,   WORLD! ", "Café-Crème", "a\x00b", "🙂", "...", "", None, "Ünïcödé  ", LONG]
    out, stats = run(raw, "text")
    assert values(out["f"]) == ["hello world", "cafe creme", "a b", "🙂", None, None, None, "unicode", LONG]
    assert stats == {"missing": 2, "unparseable": 1}
    out, stats = run(raw, "categorical")
    assert values(out["f"]) == [
        "hello, world!",
        "cafe-creme",
        "a b",
        "🙂",
        "...",
        None,
        None,
        "unicode",
        LONG,
    ]
    assert stats == {"missing": 2, "unparseable": 0}


def test_numeric():
    out, stats = run(["1.5", " 7 ", "-2", "1e3", "x", "inf", "", None, "nan"], "numeric")
    assert values(out["f__num"]) == [1.5, 7.0, -2.0, 1000.0, None, None, None, None, None]
    assert out["f__num"].dtype == np.float64
    assert stats == {"missing": 2, "unparseable": 3}
    out, stats = run([1, 2, 3], "numeric", dtype="int64")
    assert out["f__num"].tolist() == [1.0, 2.0, 3.0] and stats == {"missing": 0, "unparseable": 0}
    out, stats = run([1.5, np.nan, np.inf], "numeric", dtype="float64")
    assert values(out["f__num"]) == [1.5, None, None] and stats == {"missing": 1, "unparseable": 1}


# -------------------------------------------------------------------------------------------------- propertie


def test_fold_ascii():
    assert (
        fold_ascii("Zoë Łukasz Straße Ørsted Æsir œuvre ﬁne") == "Zoe Lukasz Strasse Orsted AEsir oeuvre fine"
    )
    assert fold_ascii("O’Brien – Jr") == "O'Brien - Jr"
    assert fold_ascii("李") == "李"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=30)), min_size=1, max_size=20))
@example([None, "", " "])
@example(["\x00", "\u00a0", "🙂🙂", LONG])
def test_any_text_in_any_field_never_raises(raw):
    frame = pd.DataFrame({t: pd.Series(raw, dtype=object) for t in FIELD_TYPES})
    out, stats = standardize(frame, [(t, t) for t in FIELD_TYPES], nicknames=NICKNAMES)
    assert len(out) == len(raw)
    for ftype in FIELD_TYPES:
        main = derived_columns(ftype, ftype)[0]
        nulls = int(out[main].isna().sum())
        assert stats[ftype]["missing"] + stats[ftype]["unparseable"] == nulls, ftype
        if out[main].dtype != np.float64:
            assert not (out[main] == "").any()


def test_gpu_token_path_agrees_with_the_arrow_path():
    # cuDF replaces address tokens with one regex pass per canonical token; pandas uses an Arrow lookup
    from gpucdp.standardize import _ADDRESS_LOOKUP, _ADDRESS_TOKENS, _arrow_tokens, _replace_tokens

    raw = pd.Series(
        ["12 north main street apt 4", "street street", "1 st", "sw saint james place", "a", None],
        dtype="str",
    )
    expected = ["12 n main st apt 4", "st st", "1 st", "sw st james pl", "a", None]
    assert values(_arrow_tokens(raw, _ADDRESS_LOOKUP)) == expected
    assert values(_replace_tokens(raw, _ADDRESS_TOKENS)) == expected


@pytest.mark.gpu
def test_cudf_gives_the_pandas_result():
    cudf = pytest.importorskip("cudf")
    raw = {
        "name": ["  José ", "Bob Smith", None, "🙂", "Mr. O'Brien"],
        "email": ["John.Doe+x@GoogleMail.com", "a@b", None, "x@y.co", " "],
        "phone": ["+1 415 555 0134", "123", None, "020 7946 0958", "0000000000"],
        "date": ["1985-04-03", "03/04/1985", "3-Apr-1985", "1985-02-30", None],
        "postcode": ["sw1a 1aa", "94105-1234", None, "n/a", "K1A 0B1"],
        "address": ["123 Main Street", "#5, 12b North Avenue", None, "", "1 Saint James Place"],
        "text": ["Hello, World!", None, "", "Café", "a\tb"],
        "categorical": ["Paris", "PARIS ", None, "", "Zoë"],
        "numeric": ["1.5", "x", None, "", "3"],
    }
    frame = pd.DataFrame({k: pd.Series(v, dtype="str") for k, v in raw.items()})
    fields = [(t, t) for t in FIELD_TYPES]
    expected, expected_stats = standardize(frame, fields, nicknames=NICKNAMES)
    got, got_stats = standardize(cudf.from_pandas(frame), fields, xdf=cudf, nicknames=NICKNAMES)
    assert got_stats == expected_stats
    got = got.to_pandas()
    for column in expected.columns:
        assert values(got[column]) == values(expected[column]), column


def test_email_split_on_the_host_equals_the_regex_path_that_cudf_runs(monkeypatch):
    import gpucdp.standardize as std

    values = pd.Series(["A.B+x@GMail.com", "a@b@c.com", "no-at-sign", " x@y.org ", "@y.org", "x@", "x@y",
                        "j.doe@googlemail.com", "é@ü.de", "", None, "a b@c.com", "u+tag@outlook.com"] * 3)
    frame = pd.DataFrame({"email": values})
    host, host_stats = standardize(frame, [("email", "email")])
    monkeypatch.setattr(std, "_on_host", lambda _: False)
    regex, regex_stats = standardize(frame, [("email", "email")])
    pd.testing.assert_frame_equal(host, regex)
    assert host_stats == regex_stats
    assert host["email"].iloc[0] == "ab@gmail.com" and pd.isna(host["email"].iloc[1])


def test_nearly_unique_types_are_factorized_when_a_sample_of_them_repeats(monkeypatch):
    import gpucdp.standardize as std

    cities = pd.Series(["London", " paris", None, "São Paulo", "LONDON", "   "] * 400, dtype="str")
    phones = pd.Series([f"+1 415 555 {i:04d}" if i % 7 else None for i in range(2400)], dtype="str")
    assert std._repeats(cities)
    assert not std._repeats(phones)
    assert not std._repeats(pd.Series([None] * 10, dtype="str"))
    frame = pd.DataFrame({"city": cities, "phone": phones, "email": phones.str.replace(" ", "") + "@x.org"})
    fields = [("city", "text"), ("phone", "phone"), ("email", "email")]
    dedupe = {}
    real_unique = std._Unique

    def spy(column, xdf, **kwargs):
        dedupe[column.name] = kwargs["dedupe"]
        return real_unique(column, xdf, **kwargs)

    monkeypatch.setattr(std, "_Unique", spy)
    factorized, stats = standardize(frame, fields)
    assert dedupe == {"city": True, "phone": False, "email": False}
    monkeypatch.setattr(std, "_repeats", lambda _: False)
    row_by_row, row_stats = standardize(frame, fields)
    assert dedupe["city"] is False
    pd.testing.assert_frame_equal(factorized, row_by_row)
    assert stats == row_stats
    assert values(factorized["city"].iloc[:6]) == ["london", "paris", None, "sao paulo", "london", None]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=" \t\n\r\x0b\x0c\x1cab\u00a0", max_size=12)), min_size=1))
def test_squash_rewrites_only_the_runs_that_change(raw):
    from gpucdp.standardize import _WS, _squash

    values = pd.Series(raw, dtype="str")
    every_run = values.str.replace(_WS + "+", " ", regex=True).str.strip()
    pd.testing.assert_series_equal(_squash(values), every_run)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=" ab1é\t", max_size=10)), min_size=1))
def test_first_token_and_fold_on_the_host_equal_the_regexes_that_cudf_runs(raw):
    import gpucdp.standardize as std

    values = std._squash(pd.Series(raw, dtype="str"))
    host = std._first_token(values), std._fold(values)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(std, "_arrow_backed", lambda _: False)
        regex = std._first_token(values), std._fold(values)
    pd.testing.assert_series_equal(host[0], regex[0])
    pd.testing.assert_series_equal(host[1], regex[1])
