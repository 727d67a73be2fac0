"""Tests of the q-gram hashing embedder (CPU kernel) against a slow pure-Python oracle."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gpucdp.embed import column_buffers, embed_records, pack_strings
from gpucdp.errors import InputError, SettingsError

M32 = 0xFFFFFFFF


def oracle_hash(gram: bytes, field: int) -> int:
    h = (2166136261 ^ ((field + 1) * 16777619)) & M32
    for c in gram:
        h = ((h ^ c) * 16777619) & M32
    h ^= h >> 16
    h = (h * 0x2C1B3C6D) & M32
    h ^= h >> 13
    h = (h * 0x297A2D39) & M32
    h ^= h >> 16
    return h


def oracle_embed(rows: list[list[str | None]], weights: list[float], dim: int, q: int) -> np.ndarray:
    """The embedder spelled out on Python strings: one record at a time, one gram at a time."""
    out = np.zeros((len(rows), dim), dtype=np.float64)
    for i, row in enumerate(rows):
        total = np.zeros(dim)
        for f, value in enumerate(row):
            if not value:
                continue
            padded = b" " + value.encode("utf-8") + b" "
            grams = [padded[p : p + q] for p in range(max(1, len(padded) - q + 1))]
            sub = np.zeros(dim)
            for gram in grams:
                h = oracle_hash(gram, f)
                sub[h % dim] += -1.0 if (h >> 31) & 1 else 1.0
            norm = math.sqrt(float(sub @ sub))
            if norm > 0:
                total += weights[f] * sub / norm
        norm = math.sqrt(float(total @ total))
        out[i] = total / norm if norm > 0 else total
    return out


text = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["a", "ab", "abc", "é", "😀", " "]))


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(text, text), min_size=1, max_size=8),
    dim=st.sampled_from([2, 7, 16, 64]),
    q=st.integers(1, 5),
)
@example(rows=[(None, None)], dim=16, q=3)
@example(rows=[("", "a")], dim=16, q=3)
@example(rows=[("x" * 40, "ab")], dim=8, q=5)
def test_kernel_matches_oracle(rows, dim, q):
    weights = [1.0, 0.5]
    columns = [pd.Series([r[f] for r in rows], dtype=object) for f in range(2)]
    got = embed_records(columns, weights, dim=dim, q=q)
    want = oracle_embed([list(r) for r in rows], weights, dim, q)
    assert got.dtype == np.float32 and got.shape == (len(rows), dim)
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_rows_are_unit_norm_and_missing_is_zero():
    first = pd.Series(["anna", None, "bob", "", "christopher"], dtype="str")
    last = pa.array(["lee", None, None, None, "o'neill"])
    emb = embed_records([first, last], [1.0, 1.0], dim=32)
    norms = np.linalg.norm(emb, axis=1)
    np.testing.assert_allclose(norms[[0, 2, 4]], 1.0, atol=1e-6)
    assert np.all(emb[[1, 3]] == 0)


def test_similar_strings_are_closer_than_different_ones():
    names = pd.Series(["jonathan smith", "jonathon smith", "jonathan smyth", "maria garcia", "li wei"])
    emb = embed_records([names], [1.0], dim=64)
    sim = emb @ emb.T
    assert sim[0, 1] > 0.5 and sim[0, 2] > 0.5
    assert sim[0, 1] > sim[0, 3] + 0.3 and sim[0, 2] > sim[0, 4] + 0.3


def test_fields_are_hashed_apart_and_weighted():
    # The same value in two different fields must not look like a match.
    a = embed_records([pd.Series(["smith"]), pd.Series([None])], [1.0, 1.0], dim=64)
    b = embed_records([pd.Series([None]), pd.Series(["smith"])], [1.0, 1.0], dim=64)
    assert abs(float(a[0] @ b[0])) < 0.5
    # A zero weight removes a field entirely.
    c = embed_records([pd.Series(["smith"]), pd.Series(["zzz"])], [1.0, 0.0], dim=64)
    np.testing.assert_allclose(c, a, atol=1e-6)


def test_pack_strings_layout_and_nulls():
    s = pd.Series(["ab", None, "çd", float("nan")])
    arr = pa.array(["x", "yz", None, "w"]).slice(0)
    sliced = pa.array(["skip", "p", "", "qq", "r"]).slice(1, 4)
    chunked = pa.chunked_array([["m"], ["n", None, "o"]])
    chars, offsets = pack_strings([s, arr, sliced, chunked])
    assert chars.dtype == np.uint8 and offsets.dtype == np.int64 and offsets.shape == (4, 5)
    decoded = [
        [bytes(chars[offsets[f, i] : offsets[f, i + 1]]).decode() for i in range(4)] for f in range(4)
    ]
    assert decoded == [["ab", "", "çd", ""], ["x", "yz", "", "w"], ["p", "", "qq", "r"], ["m", "n", "", "o"]]


def test_a_null_slot_that_spans_bytes_packs_as_empty():
    """Arrow lets a null slot's offsets span bytes; the packed column must still read it as empty (null), and
    a column whose null slots are already empty is used as it is."""
    validity = pa.array([True, False, True]).buffers()[1]
    offsets = pa.py_buffer(np.array([0, 3, 6, 8], dtype=np.int64).tobytes())
    spanning = pa.Array.from_buffers(pa.large_string(), 3, [validity, offsets, pa.py_buffer(b"abcXYZde")])
    clean = pa.array(["abc", None, "de"], pa.large_string())
    for column in (spanning, clean, pa.chunked_array([spanning[:2], spanning[2:]])):
        chars, packed = column_buffers(column)
        assert [bytes(chars[packed[i] : packed[i + 1]]) for i in range(3)] == [b"abc", b"", b"de"]
    chars, _ = column_buffers(clean)
    assert np.shares_memory(chars, np.frombuffer(clean.buffers()[2], dtype=np.uint8))  # no copy


def test_pack_strings_rejects_bad_input():
    with pytest.raises(InputError, match="same length"):
        pack_strings([pd.Series(["a"]), pd.Series(["a", "b"])])
    with pytest.raises(InputError, match="at least one column"):
        pack_strings([])


def test_embed_records_validates_settings():
    col = [pd.Series(["a"])]
    with pytest.raises(SettingsError, match="dim"):
        embed_records(col, [1.0], dim=1)
    with pytest.raises(SettingsError, match="q="):
        embed_records(col, [1.0], q=0)
    with pytest.raises(SettingsError, match="weights"):
        embed_records(col, [1.0, 2.0])
    with pytest.raises(SettingsError, match="target"):
        embed_records(col, [1.0], target="tpu")


def test_numeric_columns_are_cast_to_strings():
    emb = embed_records([pd.Series([12345, 12345, 99])], [1.0], dim=16)
    np.testing.assert_allclose(emb[0], emb[1])
    assert emb.shape == (3, 16)
