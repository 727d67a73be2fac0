"""The memory budget: size parsing, the estimator, chunking from the budget, and stopping early."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from gpucdp import memory, synth
from gpucdp.block import key_pairs
from gpucdp.cli import main
from gpucdp.errors import MemoryBudgetError, SettingsError
from gpucdp.pipeline import resolve


@pytest.mark.parametrize("text, size", [
    ("8GB", 8 * 10**9), ("512MiB", 512 * 2**20), ("2G", 2 * 2**30), ("1.5 GiB", int(1.5 * 2**30)),
    ("100kb", 100_000), ("123", 123), (4096, 4096), ("3t", 3 * 2**40),
])
def test_parse_size(text, size):
    assert memory.parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "8 GBs", "-1GB", "0", "", "1e9"])
def test_parse_size_refuses_what_is_not_a_size(text):
    with pytest.raises(SettingsError, match="--memory-limit"):
        memory.parse_size(text)


def test_key_pairs_reports_its_pair_count_before_making_pairs():
    rng = np.random.default_rng(0)
    for max_block in (2, 5, 40):
        codes = rng.integers(-1, 300, size=5000)
        codes[rng.random(5000) < 0.3] = 7  # one oversized block, skipped
        announced = []
        left, _, _ = key_pairs(codes, max_block, canonical=False, before_pairs=announced.append)
        assert announced == [left.shape[0]]
    for codes in (np.full(10, -1), np.zeros(0, np.int64)):
        announced = []
        key_pairs(codes, 5, canonical=False, before_pairs=announced.append)
        assert announced == [0]


def test_check_records_and_refuses(monkeypatch):
    monkeypatch.setattr(memory, "process_rss", lambda: 1_000_000)
    budget = memory.Budget(5_000_000, "--memory-limit")
    assert budget.check("block", 2_000_000, "do less", raw_pairs=7) == 3_000_000
    assert budget.describe()["stages"]["block"] == {"estimate_bytes": 3_000_000, "resident_bytes": 1_000_000,
                                                     "raw_pairs": 7}
    with pytest.raises(MemoryBudgetError) as info:
        budget.check("model", 4_500_000, "lower model.u_pairs")
    message = str(info.value)
    assert "model stage needs about 5.50 MB" in message and "budget is 5.00 MB (--memory-limit)" in message
    assert message.endswith("lower model.u_pairs")


def test_chunk_size_is_derived_from_what_is_left(monkeypatch):
    monkeypatch.setattr(memory, "process_rss", lambda: 1_000_000)
    budget = memory.Budget(2_000_000, "--memory-limit")
    # 1 MB left after the resident memory; 400 kB of it fixed: 600 kB / 30 B = 20,000 pairs per chunk
    assert budget.chunk_size("compare", 400_000, 30, preferred=2_000_000, minimum=1_000, advice="x") == 20_000
    assert budget.estimates["compare"]["chunk_size"] == 20_000
    assert budget.chunk_size("compare", 0, 30, preferred=5_000, minimum=1_000, advice="x") == 5_000
    with pytest.raises(MemoryBudgetError, match="compare stage"):  # not even the minimum chunk fits
        budget.chunk_size("compare", 990_000, 30, preferred=2_000_000, minimum=1_000, advice="x")


def test_default_budget_is_available_memory():
    budget = memory.Budget.create(None)
    assert budget.source == "available memory" and budget.limit > memory.process_rss()


def _refused_run(tmp_path, capsys, limit: str) -> str:
    """``gpucdp resolve`` of 500 records under ``limit``: it must exit 2 with one line and write nothing."""
    synth.generate_frame(500, seed=1)[0].to_parquet(tmp_path / "in.parquet")
    code = main(["resolve", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "out"), "--backend", "cpu",
                 "--quiet", "--memory-limit", limit])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert sorted(os.listdir(tmp_path)) == ["in.parquet"]
    return err[0]


def test_tiny_limit_stops_early_with_exit_2_and_no_output(tmp_path, capsys):
    message = _refused_run(tmp_path, capsys, "20MB")
    assert "budget is 20.00 MB (--memory-limit)" in message and "raise --memory-limit" in message


def test_a_cluster_stage_over_the_budget_stops_with_exit_2_and_no_output(tmp_path, capsys, monkeypatch):
    # every stage before it fits; the pairs between groups average linkage weighs are made to cost 1 TB each
    monkeypatch.setattr(memory, "CLUSTER_BYTES_PER_CROSS_PAIR", 10**12)
    message = _refused_run(tmp_path, capsys, "64GB")
    assert "the cluster stage needs about" in message and "cluster.linkage: single" in message


@pytest.fixture(scope="module")
def records():
    return synth.generate_frame(3000, seed=2)[0]


def test_moderate_limit_chunks_and_gives_the_same_outputs(records, monkeypatch):
    # With the resident memory pinned at zero the estimates are the stages' working sets alone, and with the
    # blocking, clustering and profile estimates made negligible the comparison's is the largest: a limit can
    # be chosen that forces small comparison chunks whatever else the process holds.
    monkeypatch.setattr(memory, "process_rss", lambda: 0)
    for name in ("BLOCK_BYTES_PER_PAIR", "PROFILE_BYTES_PER_VALUE", "PROFILE_BYTES_PER_RECORD",
                 *(name for name in dir(memory) if name.startswith("CLUSTER_"))):
        monkeypatch.setattr(memory, name, 1)
    settings = {"model": {"u_pairs": 1000}}
    free = resolve(records, settings=settings, backend="cpu", write_pairs=True)
    stages = free.manifest["memory"]["stages"]
    pairs = stages["compare"]["candidate_pairs"]
    per_pair = memory.COMPARE_CHUNK_BYTES_PER_PAIR + len(free.manifest["settings"]["comparisons"])
    fixed = stages["compare"]["estimate_bytes"] - stages["compare"]["chunk_size"] * per_pair
    others = ("block", "model", "cluster", "profiles")
    limit = max(fixed + 1500 * per_pair, *(stages[s]["estimate_bytes"] for s in others))
    limited = resolve(records, settings=settings, backend="cpu", write_pairs=True, memory_limit=limit)
    chunk = limited.manifest["memory"]["stages"]["compare"]["chunk_size"]
    assert 1000 <= chunk < pairs / 2, (chunk, pairs)
    assert limited.manifest["memory"]["budget_bytes"] == limit
    pd.testing.assert_frame_equal(limited.membership, free.membership)
    pd.testing.assert_frame_equal(limited.profiles, free.profiles)
    pd.testing.assert_frame_equal(limited.pairs, free.pairs)


def test_manifest_records_budget_and_estimates(records, tmp_path):
    resolve(records.head(800), out=tmp_path / "out", backend="cpu", memory_limit="16GiB")
    recorded = json.loads((tmp_path / "out" / "manifest.json").read_text())["memory"]
    assert recorded["budget_bytes"] == 16 * 2**30 and recorded["budget_source"] == "--memory-limit"
    assert set(recorded["stages"]) == {"block", "compare", "model", "cluster", "profiles"}
    for stage in recorded["stages"].values():
        assert stage["estimate_bytes"] >= stage["resident_bytes"] > 0
