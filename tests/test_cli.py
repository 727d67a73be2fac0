import json
import subprocess
import sys

import pandas as pd
import pytest

from gpucdp.cli import main


def test_info_runs(capsys):
    assert main(["info"]) == 0
    assert "backend" in capsys.readouterr().out


def test_resolve_then_evaluate(tmp_path, capsys):
    assert main(["synth", "--records", "3000", "--out", str(tmp_path / "data"), "--quiet"]) == 0
    out = tmp_path / "out"
    assert main(["resolve", str(tmp_path / "data" / "records"), "--out", str(out), "--backend", "cpu",
                 "--quiet"]) == 0
    assert (out / "profiles.parquet").exists() and (out / "manifest.json").exists()
    # the same input and settings give byte-identical outputs
    again = tmp_path / "again"
    assert main(["resolve", str(tmp_path / "data" / "records"), "--out", str(again), "--backend", "cpu",
                 "--quiet"]) == 0
    for name in ("profiles.parquet", "membership.parquet", "model.json"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    assert main(["evaluate", "--membership", str(out / "membership.parquet"), "--truth",
                 str(tmp_path / "data" / "truth"), "--json", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["pairwise"]["f1"] > 0.8
    # an existing output folder is refused without --overwrite, and left as it was
    before = sorted(p.name for p in out.iterdir())
    assert main(["resolve", str(tmp_path / "data" / "records"), "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.parametrize("args, needle", [
    (["resolve", "missing.csv", "--out", "o"], "missing.csv does not exist"),
    (["resolve", "in.csv", "--out", "o", "--settings", "bad.yaml"], "unknown setting"),
    (["resolve", "in.csv", "--out", "o", "--model", "nope.json"], "model file nope.json does not exist"),
    (["resolve", "in.csv", "--out", "o", "--threads", "0"], "--threads 0 (threads= in Python) must be a whole number"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"record_id": ["1"], "first_name": ["a"]}).to_csv("in.csv", index=False)
    (tmp_path / "bad.yaml").write_text("colour: blue\n")
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "o").exists()


def test_demo_runs_and_refuses_foreign_folders(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--records", "3000", "--out", str(out), "--quiet", "--json", str(tmp_path / "d.json")]) == 0
    assert "precision=" in capsys.readouterr().out
    assert json.loads((tmp_path / "d.json").read_text())["pairwise"]["precision"] > 0.8
    assert main(["demo", "--records", "3000", "--out", str(out), "--quiet"]) == 0  # its own folder: reused
    foreign = tmp_path / "mine"
    foreign.mkdir()
    assert main(["demo", "--records", "3000", "--out", str(foreign), "--quiet"]) == 2
    assert "not a gpucdp demo folder" in capsys.readouterr().err


def test_console_script_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gpucdp.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "gpucdp" in proc.stdout
