"""The README stays true: its settings example is valid and resolves generated data well."""

import re
from pathlib import Path

import yaml

from gpucdp import synth
from gpucdp.evaluate import evaluate_frames
from gpucdp.pipeline import resolve
from gpucdp.settings import parse_settings

README = Path(__file__).resolve().parents[1] / "README.md"


def _settings_example() -> dict:
    block = re.search(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "the README has a ```yaml settings example"
    return yaml.safe_load(block.group(1))


def test_readme_settings_example_is_valid_and_works():
    data = _settings_example()
    parse_settings(data, origin="README.md")
    records, truth = synth.generate_frame(4000, seed=11)
    records = records.rename(columns={"first_name": "given_name"})  # the example maps given_name → first_name
    result = resolve(records, settings=data, backend="cpu")
    metrics = evaluate_frames(result.membership, truth)
    assert metrics["pairwise"]["f1"] > 0.85, metrics["pairwise"]
