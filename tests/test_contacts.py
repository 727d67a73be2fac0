"""gpucdp.contacts: the compiled email and phone passes give what standardize's string operations give."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import gpucdp.standardize as std
from gpucdp.contacts import email_parts, phone_numbers

# the characters the rules look at, their near misses, and non-ASCII ones (which emails leave to the caller)
EMAIL_CHARS = "aZ9.@+-_ \t\n\x0b\x1c\x1fé"
PHONE_CHARS = "0123456789 .:-+()#xXeEtT\t\n٣é"
DOMAINS = ["gmail.com", "GoogleMail.com", "googlemail.co", "outlook.com", "x.org", "a..b", ".c", "d.", "e",
           "pm.me", "Proton.Me", "yahoo.com"]

emails = st.one_of(
    st.text(alphabet=EMAIL_CHARS, max_size=20),
    st.builds(lambda pad, user, domain, end: pad + user + "@" + domain + end,
              st.sampled_from(["", " ", "\x1c", "\t "]), st.text(alphabet=EMAIL_CHARS, max_size=10),
              st.sampled_from(DOMAINS), st.sampled_from(["", " ", "\n", "\x1f"])),
)
phones = st.one_of(
    st.text(alphabet=PHONE_CHARS, max_size=30),
    st.builds(lambda number, marker, gap, ext, end: number + marker + gap + ext + end,
              st.text(alphabet="0123456789 -", min_size=6, max_size=18),
              st.sampled_from(["", "x", "X", "#", "ext", "EXT", "eXt", "ex", "t", "xt"]),
              st.sampled_from(["", " ", ".", ": ", " . "]), st.text(alphabet="0123456789", max_size=4),
              st.sampled_from(["", " ", "  ", "\t", "a"])),
)


def by_string_operations(values, host):
    """standardize's own path for the values: the regex split (cuDF's) or the host's Arrow split."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(std, "_on_host", lambda _: host)
        return std._email_columns(values)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), emails), min_size=1, max_size=30))
@example(["A.B+x@GMail.com", "j.doe+y@googlemail.com", "+x@gmail.com", "...@gmail.com", "a@b@c.com", "x@y",
          " u+tag@Outlook.com ", "a b@c.com", "é@ü.de", "\x1cA@B.CO\x1f", "a@b..c", "a@.b.c", "a@b.c.", "", None])
def test_emails_match_the_string_operations(raw):
    values = pd.Series(raw, dtype="str")
    email, user, domain, non_ascii = email_parts(pa.array(values.array), std._PLUS_TAG_DOMAINS)
    assert non_ascii.tolist() == [v is not None and not v.isascii() for v in raw]
    for host in (False, True):
        expected = by_string_operations(values, host)
        for got, want in zip((email, user, domain), expected):
            want = [None if pd.isna(v) else v for v in want.tolist()]
            assert [w if ok else None for w, ok in zip(want, ~non_ascii)] == got.to_pylist()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), phones), min_size=1, max_size=30))
@example(["+1 415 555 0134", "(415) 555-0134 x22", "415 555 0134 ext. 7 ", "4155550134#", "001-415-555-0134",
          "0044 20 7946 0958", "1234567890123456", "000-000-0000", "555 12", "x22", "12345678 ext22x33",
          "415.555.0134 :. 9", "٣415 555 0134", "010000#0\n", "415 555 0134 x22\n", "", None])
def test_phones_match_the_string_operations(raw):
    values = pd.Series(raw, dtype="str")
    want = [None if pd.isna(v) else v for v in std._phone_column(values).tolist()]
    newline_ends = std._dollar_before_newline(values.dtype)
    assert phone_numbers(pa.array(values.array), newline_ends).to_pylist() == want


def test_a_final_newline_ends_the_extension_only_where_the_regexes_say_so():
    values = pa.array(["415 555 0134 x22\n", "415 555 0134 x22"])
    # Python's re (and pandas' strings): "$" also before the final newline, so "x22" is an extension
    assert phone_numbers(values, True).to_pylist() == ["4155550134", "4155550134"]
    # RE2 alone: the newline follows "22", so nothing is cut and the last 10 of 12 digits are kept
    assert phone_numbers(values, False).to_pylist() == ["5555013422", "4155550134"]


def test_empty_and_all_null_arrays():
    for array in (pa.array([], type=pa.string()), pa.array([None, None], type=pa.large_string())):
        email, user, domain, non_ascii = email_parts(array, ["gmail.com"])
        assert email.to_pylist() == user.to_pylist() == domain.to_pylist() == [None] * len(array)
        assert not non_ascii.any()
        assert phone_numbers(array).to_pylist() == [None] * len(array)


@pytest.mark.parametrize("ftype", ["email", "phone"])
def test_standardize_gives_the_same_with_and_without_the_compiled_pass(monkeypatch, ftype):
    raw = ["A.B+x@GMail.com", "é@ü.de", "(415) 555-0134 x22", None, "  ", "x@y.org\n", "Zoë@x.org", "١٢٣"] * 3
    frame = pd.DataFrame({"f": pd.Series(raw, dtype="str")})
    compiled, compiled_stats = std.standardize(frame, [("f", ftype)])
    monkeypatch.setattr(std, "_arrow_backed", lambda _: False)
    operations, operations_stats = std.standardize(frame, [("f", ftype)])
    pd.testing.assert_frame_equal(compiled, operations)
    assert compiled_stats == operations_stats
    if ftype == "email":  # the non-ASCII values were filled in by the string operations
        assert compiled["f"].tolist()[:8:6] == ["ab@gmail.com", "zoë@x.org"]
