"""A run killed (SIGKILL) at any stage leaves the previous outputs intact, never a mix, and does not upset the next.

Each killed run is a real ``gpucdp resolve --overwrite`` subprocess held at the start of a stage by the test hook
in gpucdp.pipeline (GPUCDP_TEST_PAUSE_AT=STAGE:MARKER), or, for the moment between the two renames that swap the
folders, by a wrapper around ``os.replace``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpucdp import synth
from gpucdp.cli import main
from gpucdp.io import check_output

STAGES = ["read", "standardize", "embed", "knn", "block", "compare", "model", "cluster", "profiles", "write"]

# Holds a run between moving the previous outputs aside and moving the new ones in: the only moment at which the
# output folder does not exist.
SWAP_HOLD = """
import os, sys, time
from pathlib import Path
import gpucdp.io
from gpucdp.cli import main
real = os.replace
def replace(src, dst):
    if ".tmp-" in Path(src).name:
        Path(os.environ["MARKER"]).write_text("swap")
        time.sleep(3600)
    return real(src, dst)
gpucdp.io.os.replace = replace
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupt")
    records, _ = synth.generate_frame(1500, seed=3)
    records.to_parquet(root / "records.parquet")
    (root / "settings.yaml").write_text("cluster: {threshold: 0.5}\n")  # the killed runs would write other outputs
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _previous(data: Path, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path / "out"
    assert main(["resolve", str(data / "records.parquet"), "--out", str(out), "--backend", "cpu", "--quiet"]) == 0
    return out, _snapshot(out)


def _args(data: Path, out: Path) -> list[str]:
    return ["resolve", str(data / "records.parquet"), "--out", str(out), "--backend", "cpu", "--quiet",
            "--overwrite", "--settings", str(data / "settings.yaml")]


def _kill_when_marked(command: list[str], env: dict[str, str], marker: Path) -> None:
    proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before the marker: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the run never reached the marker")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.mark.slow  # ten subprocesses, ~1 min on 2 cores
def test_killed_at_each_stage_leaves_previous_outputs(data, tmp_path):
    out, before = _previous(data, tmp_path)
    for stage in STAGES:
        marker = tmp_path / f"at-{stage}"
        _kill_when_marked([sys.executable, "-m", "gpucdp.cli", *_args(data, out)],
                          {"GPUCDP_TEST_PAUSE_AT": f"{stage}:{marker}"}, marker)
        assert _snapshot(out) == before, f"killed at {stage}: the previous outputs changed"
    # the next run completes, and its outputs are whole and new
    assert main(_args(data, out)) == 0
    after = _snapshot(out)
    assert sorted(after) == sorted(before) and after["profiles.parquet"] != before["profiles.parquet"]
    assert _siblings(out) == []


def test_killed_while_swapping_folders_is_recovered_by_the_next_run(data, tmp_path):
    out, before = _previous(data, tmp_path)
    marker = tmp_path / "at-swap"
    _kill_when_marked([sys.executable, "-c", SWAP_HOLD, *_args(data, out)], {"MARKER": str(marker)}, marker)
    # the run died with the previous outputs moved aside and its complete new ones not yet moved in
    assert not out.exists()
    left = _siblings(out)
    assert [n.split("-")[0] for n in left] == [".out.old", ".out.tmp"]
    # anything that checks the folder puts the previous outputs back and removes the dead run's temp folder
    check_output(out, overwrite=True)
    assert _snapshot(out) == before and _siblings(out) == []


def test_stale_temp_folders_are_cleaned_and_live_ones_kept(data, tmp_path):
    out, before = _previous(data, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.tmp-{dead.pid}"
    stale.mkdir()
    (stale / "profiles.parquet").write_bytes(b"half written")
    stale_old = tmp_path / f".out.old-{dead.pid}"
    stale_old.mkdir()
    live = tmp_path / f".out.tmp-{os.getppid()}"  # a running process: maybe another run writing right now
    live.mkdir()
    assert main(_args(data, out)) == 0
    assert not stale.exists() and not stale_old.exists() and live.exists()
    assert sorted(_snapshot(out)) == sorted(before)
    assert b"half written" not in _snapshot(out).values()
