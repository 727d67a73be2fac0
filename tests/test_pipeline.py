"""End to end on generated data with known truth: accuracy floors and the run's invariants."""

import json

import pandas as pd
import pytest

from gpucdp import model as model_module
from gpucdp import synth
from gpucdp.evaluate import evaluate_frames
from gpucdp.model import load_model
from gpucdp.pipeline import MULTI_START_PAIRS, em_starts, resolve, supported_classes

N_RECORDS = 12_000


@pytest.fixture(scope="module")
def generated():
    return synth.generate_frame(N_RECORDS, seed=7, difficulty=0.5)


@pytest.fixture(scope="module")
def run(generated, tmp_path_factory):
    records, _ = generated
    out = tmp_path_factory.mktemp("run") / "out"
    result = resolve(records, out=out, backend="cpu", write_pairs=True)
    return result, out


def test_accuracy_floors(run, generated):
    result, _ = run
    _, truth = generated
    metrics = evaluate_frames(result.membership, truth)
    assert metrics["pairwise"]["precision"] >= 0.95, metrics["pairwise"]
    assert metrics["pairwise"]["recall"] >= 0.93, metrics["pairwise"]
    assert metrics["bcubed"]["f1"] >= 0.95, metrics["bcubed"]


def test_average_linkage_is_more_precise_than_connected_components(run, generated):
    # the same model and pairs, clustered both ways: on these 12k records connected components give pairwise
    # precision 0.966 and recall 0.968, average linkage 0.989 and 0.961
    result, out = run
    records, truth = generated
    single = resolve(records, backend="cpu", model=out / "model.json", settings={"cluster": {"linkage": "single"}})
    average, components = evaluate_frames(result.membership, truth), evaluate_frames(single.membership, truth)
    assert average["pairwise"]["precision"] >= components["pairwise"]["precision"] + 0.01
    assert average["pairwise"]["recall"] >= components["pairwise"]["recall"] - 0.02
    assert average["pairwise"]["f1"] > components["pairwise"]["f1"]
    assert result.manifest["cluster"]["linkage"] == "average" and result.manifest["cluster"]["kept_apart"] > 0
    assert single.manifest["cluster"]["linkage"] == "single" and single.manifest["cluster"]["kept_apart"] == 0


def test_merging_stopped_by_the_round_cap_shows_in_the_run(run, generated, monkeypatch):
    # the stage's counts (progress line, summary table) name it only when it happened; the manifest always
    result, out = run
    assert result.manifest["cluster"]["merge_rounds_capped"] == 0
    assert "merge_rounds_capped" not in result.manifest["stages"]["cluster"]
    monkeypatch.setattr("gpucdp.cluster.MAX_MERGE_ROUNDS", 1)
    capped = resolve(generated[0], backend="cpu", model=out / "model.json")
    times = capped.manifest["cluster"]["merge_rounds_capped"]
    assert times >= 1 and capped.manifest["stages"]["cluster"]["merge_rounds_capped"] == times
    assert capped.manifest["cluster"]["clusters"] > result.manifest["cluster"]["clusters"]


@pytest.mark.parametrize("seed", [0, 1])
def test_accuracy_floors_on_a_small_input(seed):
    # 2k records make ~9-10k candidate pairs: too few for a third non-match class, which split the matches in
    # two and took one half for non-matches (pairwise F1 0.42 and 0.20 on these inputs, before
    # pipeline.supported_classes)
    records, truth = synth.generate_frame(2_000, seed=seed)
    result = resolve(records, backend="cpu")
    assert result.model.training["non_match_classes"] == 2
    metrics = evaluate_frames(result.membership, truth)
    assert metrics["pairwise"]["f1"] >= 0.93, metrics["pairwise"]
    assert metrics["bcubed"]["f1"] >= 0.93, metrics["bcubed"]


def test_em_keeps_the_likelier_of_its_starts(monkeypatch):
    # 1k records whose candidate pairs mostly match: from a match share of 0.3 alone, EM ends where a non-match
    # class holds part of the matches (pairwise recall 0.58); from 0.7 it finds the likelier fit
    records, truth = synth.generate_frame(1_000, seed=1)
    result = resolve(records, backend="cpu")
    training = result.model.training
    assert [start["match_share"] for start in training["starts"]] == [0.3, 0.7]
    assert training["start_kept"] == 0.7
    assert training["log_likelihood"] == max(start["log_likelihood"] for start in training["starts"])
    assert evaluate_frames(result.membership, truth)["pairwise"]["f1"] >= 0.9
    monkeypatch.setattr(model_module, "EM_STARTS", (0.3,))
    one_start = resolve(records, backend="cpu")
    assert evaluate_frames(one_start.membership, truth)["pairwise"]["f1"] < 0.8


def test_em_starts_follow_the_candidate_pairs():
    assert em_starts(MULTI_START_PAIRS - 1) == model_module.EM_STARTS == (0.3, 0.7)
    assert em_starts(MULTI_START_PAIRS) == (0.3,)


def test_non_match_classes_follow_the_candidate_pairs():
    assert [supported_classes(p, 3) for p in (0, 1_999, 2_000, 19_999, 20_000, 10**9)] == [1, 1, 2, 2, 3, 3]
    assert supported_classes(10**9, 4) == 4 and supported_classes(20_000, 4) == 3
    assert supported_classes(10**9, 1) == 1 and supported_classes(10**9, 2) == 2


def test_every_record_exactly_once(run, generated):
    result, _ = run
    records, _ = generated
    m = result.membership
    assert len(m) == len(records)
    assert not m.duplicated(["source", "record_id"]).any()
    assert set(zip(m["source"], m["record_id"])) == set(zip(records["source"], records["record_id"]))
    assert m["profile_id"].notna().all()
    assert set(m["profile_id"]) == set(result.profiles["profile_id"])
    counts = m.groupby("profile_id").size()
    assert (result.profiles.set_index("profile_id")["record_count"].sort_index() == counts.sort_index()).all()


def test_outputs_written(run):
    result, out = run
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", "membership.parquet", "model.json", "pairs.parquet", "profiles.parquet"]
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("settings", "backend", "inputs", "stages", "blocking", "cluster", "standardize", "model"):
        assert key in manifest
    assert manifest["records"] == N_RECORDS
    assert set(manifest["stages"]) >= {"read", "standardize", "embed", "knn", "block", "compare", "model",
                                       "cluster", "profiles"}
    # each stage's CPU time, every thread's (a loaded machine may give a stage less CPU than wall time)
    assert all(info["cpu_seconds"] >= 0 for info in manifest["stages"].values())
    assert manifest["stages"]["compare"]["cpu_seconds"] > 0
    assert manifest["blocking"]["knn"] == "run"  # small input on the CPU: kNN runs under "auto"
    assert pd.read_parquet(out / "membership.parquet").shape[0] == N_RECORDS
    pairs = pd.read_parquet(out / "pairs.parquet")
    assert pairs["match_probability"].between(0, 1).all()


def test_model_reuse_skips_training_and_gives_same_clusters(run, generated):
    result, out = run
    records, _ = generated
    again = resolve(records, backend="cpu", model=out / "model.json")
    assert again.model.training == load_model(out / "model.json").training
    pd.testing.assert_series_equal(again.membership["profile_id"], result.membership["profile_id"])


def test_deterministic(run, generated):
    result, _ = run
    records, _ = generated
    again = resolve(records, backend="cpu")
    pd.testing.assert_frame_equal(again.membership, result.membership)
    pd.testing.assert_frame_equal(again.profiles, result.profiles)


def test_link_mode_keeps_only_cross_source_pairs(generated):
    records, _ = generated
    sub = records.head(3000)
    result = resolve(sub, settings={"mode": "link"}, backend="cpu", write_pairs=True)
    assert (result.pairs["left_source"] != result.pairs["right_source"]).all()
    result = resolve(sub, settings={"mode": "dedupe"}, backend="cpu", write_pairs=True)
    assert (result.pairs["left_source"] == result.pairs["right_source"]).all()


def test_knn_can_be_switched_off(generated):
    records, _ = generated
    result = resolve(records.head(2000), settings={"blocking": {"knn": {"enabled": False}}}, backend="cpu")
    assert result.manifest["blocking"]["knn"] == "disabled"
    assert "knn" not in result.manifest["stages"]
    assert len(result.membership) == 2000


def test_bad_comparison_column_is_named(generated):
    records, _ = generated
    from gpucdp.errors import SettingsError

    settings = {"comparisons": [{"name": "x", "levels": [{"method": "exact", "column": "nope"}]}]}
    with pytest.raises(SettingsError, match="column 'nope' does not exist"):
        resolve(records.head(100), settings=settings, backend="cpu")


def test_tiny_input_merges_its_duplicates():
    frame = pd.DataFrame({
        "record_id": ["1", "2", "3"],
        "first_name": ["Ann", "ann", "Bob"],
        "last_name": ["Lee", "LEE", "Kim"],
        "email": ["ann.lee@example.com", "ann.lee@example.com", "bob@example.org"],
    })
    result = resolve(frame, backend="cpu")
    ids = result.membership["profile_id"].tolist()
    assert ids[0] == ids[1] != ids[2]
    assert result.model.training["non_match_classes"] == 1  # too few pairs for the latent classes


def test_a_rule_keeps_its_own_block_cap(generated):
    records, _ = generated
    rules = [["last_name__phonetic"], {"columns": ["last_name__phonetic"], "max_block_size": 2}]
    settings = {"blocking": {"knn": {"enabled": False}, "rules": rules, "max_block_size": 1000}}
    result = resolve(records.head(3000), settings=settings, backend="cpu")
    loose, tight = result.manifest["blocking"]["rules"]
    assert (loose["max_block_size"], tight["max_block_size"]) == (1000, 2)
    assert tight["pairs"] < loose["pairs"] and tight["oversized_blocks"] > loose["oversized_blocks"]


def test_candidates_kept_on_request(generated):
    records, _ = generated
    result = resolve(records.head(2000), backend="cpu", keep_candidates=True)
    left, right = result.extra["candidates"]
    assert len(left) == len(right) == result.manifest["blocking"]["candidate_pairs"] > 0
    assert (left < right).all() and right.max() < 2000
    assert "candidates" not in resolve(records.head(200), backend="cpu").extra


def test_result_frames_are_converted_from_the_arrow_tables_when_first_read(run):
    result, out = run
    assert set(result.tables) == {"profiles", "membership", "pairs"}
    fresh = type(result)(result.tables["profiles"], result.tables["membership"], result.model, result.manifest)
    assert "membership" not in vars(fresh) and fresh.pairs is None  # nothing converted until read
    assert fresh.membership.equals(result.tables["membership"].to_pandas())
    assert "membership" in vars(fresh) and fresh.membership is fresh.membership
    written = pd.read_parquet(out / "membership.parquet")
    assert written.equals(result.membership)
