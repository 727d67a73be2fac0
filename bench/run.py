"""End-to-end benchmark: generated records → gpucdp resolve, per stage, at several sizes.

For each size the data is generated once to Parquet (not timed), then resolved in a fresh child process (so peak
RSS is that run's own), then scored against the truth. Prints a table and writes JSON with the machine,
versions, backend, sizes, per-stage seconds, throughput, peak memory and accuracy.

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

CHILD = r"""
import json, sys, time
from gpucdp.pipeline import resolve
from gpucdp.progress import peak_rss_bytes
args = json.loads(sys.argv[1])
start = time.perf_counter()
result = resolve(args["inputs"], out=args["out"], backend=args["backend"], settings=args.get("settings"),
                 quiet=True, overwrite=True)
print(json.dumps({"seconds": time.perf_counter() - start, "stages": result.manifest["stages"],
                  "blocking": result.manifest["blocking"]["candidate_pairs"],
                  "cluster": result.manifest["cluster"], "backend": result.manifest["backend"],
                  "peak_rss_bytes": peak_rss_bytes(),
                  "device_memory": result.manifest.get("device_memory", {})}))
"""


def bench_size(n: int, *, workdir: Path, backend: str, seed: int, difficulty: float) -> dict:
    from gpucdp import synth
    from gpucdp.evaluate import evaluate_files

    data = workdir / f"data-{n}"
    if not data.exists():
        synth.write_dataset(data, n, seed=seed, difficulty=difficulty)
    out = workdir / f"out-{n}"
    payload = {"inputs": [str(data / "records")], "out": str(out), "backend": backend}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"resolve failed at {n} records:\n{proc.stderr[-4000:]}")
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    metrics = evaluate_files(out / "membership.parquet", data / "truth")
    stages = {name: info["seconds"] for name, info in run["stages"].items()}
    return {
        "records": n,
        "seconds": round(run["seconds"], 3),
        "records_per_second": round(n / run["seconds"], 1),
        "candidate_pairs": run["blocking"],
        "pairs_per_second": round(run["blocking"] / max(run["stages"]["compare"]["seconds"], 1e-9), 1),
        "peak_rss_bytes": run["peak_rss_bytes"],
        "stages": stages,
        "pairwise": metrics["pairwise"],
        "bcubed": metrics["bcubed"],
        "clusters": run["cluster"]["clusters"],
        "backend": run["backend"]["name"],
        "plan": run["backend"].get("plan", {}),
        "peak_device_bytes": run["device_memory"].get("peak_bytes"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--backend", default="cpu", choices=["auto", "cpu", "gpu"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", type=float, default=0.5)
    parser.add_argument("--workdir", help="keep generated data and outputs here (default: a temporary folder)")
    parser.add_argument("--json", default="bench/results/run.json")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table


    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="gpucdp-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        rows.append(bench_size(n, workdir=workdir, backend=args.backend, seed=args.seed,
                               difficulty=args.difficulty))
    stage_names = list(rows[0]["stages"])
    table = Table(title=f"gpucdp end to end ({rows[0]['backend']}, {os.cpu_count()} cores)")
    for col in ["records", "total s", "records/s", "pairs", *stage_names, "peak RSS GB", "P", "R", "F1"]:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['records']:,}", f"{r['seconds']:.1f}", f"{r['records_per_second']:,.0f}",
            f"{r['candidate_pairs']:,}", *[f"{r['stages'].get(s, 0):.2f}" for s in stage_names],
            f"{r['peak_rss_bytes'] / 2**30:.2f}", f"{r['pairwise']['precision']:.4f}",
            f"{r['pairwise']['recall']:.4f}", f"{r['pairwise']['f1']:.4f}",
        )
    Console(width=220).print(table)
    doc = header("end_to_end", backend=args.backend, seed=args.seed, difficulty=args.difficulty, results=rows)
    write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
