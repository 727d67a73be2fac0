"""End-to-end benchmark: generated records → gpucdp resolve, per stage, at several sizes, and how cost scales.

For each size the data is generated once to Parquet (not timed), then resolved in a fresh child process (so peak
RSS is that run's own), which also scores the result against the truth: pairwise and B-cubed P/R/F1, and the
blocking's pair completeness over the candidate pairs (kept in memory, not written). Prints two tables (per
stage: seconds and throughput; scaling: microseconds per record per stage, and its growth from the size before)
and writes JSON with the machine, versions, backend, settings and every figure.

    python bench/run.py                                   # 10k, 100k, 1M, 3M records
    python bench/run.py --sizes 100000 1000000 --json bench/results/run.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import header, write_json

DEFAULT_SIZES = [10_000, 100_000, 1_000_000, 3_000_000]

CHILD = r"""
import json, sys, time
import numpy as np, pandas as pd
from gpucdp.pipeline import resolve
from gpucdp.progress import peak_rss_bytes
args = json.loads(sys.argv[1])
start = time.perf_counter()
result = resolve(args["inputs"], out=args["out"], backend=args["backend"], settings=args.get("settings"),
                 quiet=True, overwrite=True, keep_candidates=True)
seconds = time.perf_counter() - start
peak = peak_rss_bytes()  # before scoring, which is not the engine's
from gpucdp.evaluate import blocking_metrics, evaluate_frames
truth = pd.read_parquet(args["truth"])
metrics = evaluate_frames(result.membership, truth)
keys = ["record_id", "source"]
labels = result.membership[keys].merge(truth, on=keys, how="left")["true_id"].to_numpy()
left, right = result.extra["candidates"]
m = result.manifest
print(json.dumps({"seconds": seconds, "stages": m["stages"], "blocking": m["blocking"], "cluster": m["cluster"],
                  "backend": m["backend"], "peak_rss_bytes": peak, "device_memory": m.get("device_memory", {}),
                  "memory": m["memory"],
                  "comparisons": len(m["settings"]["comparisons"]), "pairwise": metrics["pairwise"],
                  "bcubed": metrics["bcubed"], "blocking_quality": blocking_metrics(left, right, labels)}))
"""


def bench_size(n: int, *, workdir: Path, backend: str, seed: int, difficulty: float,
               settings: str | None) -> dict:
    from gpucdp import synth

    data = workdir / f"data-{n}-s{seed}-d{difficulty}"
    if not data.exists():
        synth.write_dataset(data, n, seed=seed, difficulty=difficulty)
    out = workdir / f"out-{n}"
    payload = {"inputs": [str(data / "records")], "out": str(out), "backend": backend,
               "truth": str(data / "truth"), "settings": settings}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"resolve failed at {n} records:\n{proc.stderr[-4000:]}")
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    stages = {name: info["seconds"] for name, info in run["stages"].items()}
    pairs = run["blocking"]["candidate_pairs"]
    compare_s = max(stages.get("compare", 0.0), 1e-9)
    block_s = max(stages.get("block", 0.0) + stages.get("knn", 0.0) + stages.get("embed", 0.0), 1e-9)
    return {
        "records": n,
        "seconds": round(run["seconds"], 3),
        "records_per_second": round(n / run["seconds"], 1),
        "candidate_pairs": pairs,
        "throughput": {
            "records_per_second": {s: round(n / max(t, 1e-9), 1) for s, t in stages.items()},
            "candidate_pairs_per_second": round(pairs / block_s, 1),
            "compared_pairs_per_second": round(pairs / compare_s, 1),
            "field_comparisons_per_second": round(pairs * run["comparisons"] / compare_s, 1),
        },
        "peak_rss_bytes": run["peak_rss_bytes"],
        "peak_device_bytes": run["device_memory"].get("peak_bytes"),
        # each stage's memory estimate (host budget; on the GPU also the device's) and the device's peak per stage,
        # to hold the estimates against what a run used
        "memory_estimates": run["memory"]["stages"],
        "device_memory": run["device_memory"],
        "stages": stages,
        # CPU seconds over wall seconds per stage: the cores each stage kept busy on average
        "cores_busy": {name: round(info.get("cpu_seconds", 0.0) / max(info["seconds"], 1e-9), 2)
                       for name, info in run["stages"].items()},
        "pairwise": run["pairwise"],
        "bcubed": run["bcubed"],
        "blocking": run["blocking_quality"],
        "blocking_rules": run["blocking"].get("rules", []),
        "knn": run["blocking"].get("knn"),
        "clusters": run["cluster"]["clusters"],
        "backend": run["backend"]["name"],
        "plan": run["backend"].get("plan", {}),
    }


def scaling(rows: list[dict]) -> list[dict]:
    """Microseconds per record per stage at each size, and how much that grew from the size before (1.0 =
    linear cost)."""
    out, previous = [], None
    for r in rows:
        per_record = {s: 1e6 * t / r["records"] for s, t in r["stages"].items()}
        per_record["total"] = 1e6 * r["seconds"] / r["records"]
        per_record["pairs_per_record"] = r["candidate_pairs"] / r["records"]
        growth = ({s: round(v / previous[s], 2) for s, v in per_record.items() if previous.get(s)}
                  if previous else {})
        out.append({"records": r["records"], "per_record": {s: round(v, 3) for s, v in per_record.items()},
                    "growth": growth})
        previous = per_record
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES)
    parser.add_argument("--backend", default="cpu", choices=["auto", "cpu", "gpu"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", type=float, default=0.5)
    parser.add_argument("--settings", help="a settings file for gpucdp (default: inferred)")
    parser.add_argument("--workdir", help="keep generated data and outputs here (default: a temporary folder)")
    parser.add_argument("--json", default="bench/results/run.json")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="gpucdp-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sorted(args.sizes):
        rows.append(bench_size(n, workdir=workdir, backend=args.backend, seed=args.seed,
                               difficulty=args.difficulty, settings=args.settings))
        doc = header("end_to_end", backend=args.backend, seed=args.seed, difficulty=args.difficulty,
                     settings=args.settings, results=rows, scaling=scaling(rows))
        write_json(args.json, doc)  # after every size, so a long run keeps what it measured

    console = Console(width=240)
    stage_names = list(dict.fromkeys(s for r in rows for s in r["stages"]))
    table = Table(title=f"gpucdp end to end ({rows[0]['backend']}, {os.cpu_count()} cores): seconds per stage")
    for col in ["records", "total s", "records/s", "pairs", *stage_names, "pairs/s compared", "peak RSS GB",
                "P", "R", "F1", "B³ F1", "blocking PC"]:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['records']:,}", f"{r['seconds']:.1f}", f"{r['records_per_second']:,.0f}",
            f"{r['candidate_pairs']:,}", *[f"{r['stages'].get(s, 0):.2f}" for s in stage_names],
            f"{r['throughput']['compared_pairs_per_second']:,.0f}", f"{r['peak_rss_bytes'] / 2**30:.2f}",
            f"{r['pairwise']['precision']:.4f}", f"{r['pairwise']['recall']:.4f}", f"{r['pairwise']['f1']:.4f}",
            f"{r['bcubed']['f1']:.4f}", f"{r['blocking']['pair_completeness']:.4f}",
        )
    console.print(table)
    scale = Table(title="scaling: µs per record (growth from the size before; 1.00 = linear)")
    for col in ["records", "total", "pairs/record", *stage_names]:
        scale.add_column(col, justify="right")
    for s in scaling(rows):
        def cell(name: str) -> str:
            value, growth = s["per_record"].get(name), s["growth"].get(name)
            if value is None:
                return ""
            return f"{value:.2f}" + (f" ({growth:.2f})" if growth else "")
        scale.add_row(f"{s['records']:,}", cell("total"), cell("pairs_per_record"), *[cell(n) for n in stage_names])
    console.print(scale)
    busy = Table(title=f"cores kept busy per stage (CPU seconds / wall seconds; {os.cpu_count()} cores)")
    for col in ["records", *stage_names]:
        busy.add_column(col, justify="right")
    for r in rows:
        busy.add_row(f"{r['records']:,}", *[f"{r['cores_busy'][s]:.2f}" if s in r["cores_busy"] else ""
                                              for s in stage_names])
    console.print(busy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
