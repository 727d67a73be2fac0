"""GPU benchmark: the comparison kernel's throughput, then end to end at several sizes (bench/run.py's runs).

1. Kernel: records generated and standardised once, ``--kernel-pairs`` random pairs compared on the target
   with the columns already on the device (first call compiles and is not timed); reports field comparisons
   per second (pairs × comparisons / s; the issue's target on one H200 is ≥ 2×10⁹).
2. End to end: for each size, :func:`run.bench_size` (data generated once, not timed; resolved in a fresh
   process; scored against the truth), with the backend's plan and its peak device memory.

The JSON is rewritten after every step, so a step cut short by ``timeout`` keeps what ran before it.

    python bench/gpu_bench.py --sizes 1000000 10000000 --json $OUT/gpu_bench.json
    python bench/gpu_bench.py --backend cpu --sizes 2000 --kernel-pairs 20000      # the same program on a CPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import header, write_json
from run import bench_size


def kernel_throughput(*, records: int, pairs: int, target: str, seed: int) -> dict:
    """Field comparisons per second of the comparison kernel alone, on ``target``."""
    from gpucdp import synth
    from gpucdp.compare import build_tables, prepare_columns
    from gpucdp.kernels.compare import compare_pairs
    from gpucdp.settings import Settings, resolve_settings
    from gpucdp.standardize import standardize

    frame, _ = synth.generate_frame(records, seed=seed)
    resolved, _ = resolve_settings(Settings(), [c for c in frame.columns if c not in ("record_id", "source")])
    prepared, _ = standardize(frame[[f.input_column for f in resolved.fields]].set_axis(
        [f.name for f in resolved.fields], axis=1), [(f.name, f.type) for f in resolved.fields],
        date_order=resolved.date_order)
    columns = prepare_columns(prepared, resolved.comparisons)
    tables = build_tables(resolved.comparisons, columns)
    rng = np.random.default_rng(seed)
    left = np.sort(rng.integers(0, records, pairs))  # sorted by left, as the pipeline's layout makes them
    right = rng.integers(0, records, pairs)
    arrays = [left, right, columns.chars, columns.offsets, columns.nums, tables.level_method,
              tables.level_col, tables.level_thr, tables.n_levels]
    sync = lambda: None  # noqa: E731
    if target == "cuda":
        from numba import cuda

        arrays = [cuda.to_device(np.ascontiguousarray(a)) if a.size else a for a in arrays]
        sync = cuda.synchronize
    compare_pairs(*[a[:1000] if i < 2 else a for i, a in enumerate(arrays)], target=target)  # compile
    sync()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        compare_pairs(*arrays, target=target)
        sync()
        best = min(best, time.perf_counter() - start)
    comparisons = len(tables.names)
    return {"records": records, "pairs": pairs, "comparisons": comparisons, "target": target,
            "seconds": round(best, 4), "pairs_per_second": round(pairs / best, 1),
            "field_comparisons_per_second": round(pairs * comparisons / best, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--backend", default="gpu", choices=["auto", "cpu", "gpu"])
    parser.add_argument("--kernel-pairs", type=int, default=50_000_000, help="0 skips the kernel benchmark")
    parser.add_argument("--kernel-records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", type=float, default=0.5)
    parser.add_argument("--workdir", help="keep generated data and outputs here (default: a temporary dir)")
    parser.add_argument("--json", default="bench/results/gpu_bench.json")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from gpucdp.backend import get_backend

    backend = get_backend(args.backend)
    doc = header("gpu", backend=backend.describe(), seed=args.seed, difficulty=args.difficulty, kernel=None,
                 results=[])
    console = Console(width=220)
    console.print(f"backend: {backend.name} ({backend.reason})")
    for line in backend.plan.lines():
        console.print(f"  {line}", markup=False)
    failed = False
    if args.kernel_pairs:
        try:
            doc["kernel"] = kernel_throughput(records=args.kernel_records, pairs=args.kernel_pairs,
                                              target=backend.kernel_target, seed=args.seed)
        except Exception as exc:  # noqa: BLE001 - recorded, and the end-to-end runs still go
            doc["kernel"] = {"error": _error(exc)}
            console.print(f"compare kernel FAILED: {doc['kernel']['error']}", markup=False)
            failed = True
        else:
            k = doc["kernel"]
            console.print(f"compare kernel ({k['target']}): {k['pairs']:,} pairs × {k['comparisons']} "
                          f"comparisons in {k['seconds']:.3f} s = "
                          f"{k['field_comparisons_per_second']:.3g} field comparisons/s")
        write_json(args.json, doc)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="gpucdp-gpu-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    table = Table(title=f"gpucdp end to end ({backend.name})")
    columns = ["records", "total s", "records/s", "pairs", "peak RSS GB", "peak GPU GB", "P", "R", "F1"]
    for col in columns:
        table.add_column(col, justify="right")
    for n in args.sizes:
        console.print(f"{time.strftime('%H:%M:%S')} {n:,} records: generating (unless there) and resolving")
        try:
            row = bench_size(n, workdir=workdir, backend=args.backend, seed=args.seed,
                             difficulty=args.difficulty, settings=None)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - bench_size exits with the child's stderr
            doc["results"].append({"records": n, "error": _error(exc)})
            write_json(args.json, doc)
            console.print(f"{n:,} records FAILED: {_error(exc)}", markup=False)
            failed = True
            continue
        doc["results"].append(row)
        write_json(args.json, doc)
        device = row.get("peak_device_bytes")
        table.add_row(
            f"{n:,}", f"{row['seconds']:.1f}", f"{row['records_per_second']:,.0f}",
            f"{row['candidate_pairs']:,}",
            f"{row['peak_rss_bytes'] / 2**30:.2f}", "-" if device is None else f"{device / 2**30:.2f}",
            *[f"{row['pairwise'][m]:.4f}" for m in ("precision", "recall", "f1")],
        )
        console.print(f"{n:,} records: " + ", ".join(f"{s} {t:.2f} s" for s, t in row["stages"].items()))
    if args.sizes:
        console.print(table)
    return 1 if failed else 0


def _error(exc: BaseException) -> str:
    """An exception in one line for the JSON, with the end of a child's stderr when there is one."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text[-2000:]}"


if __name__ == "__main__":
    sys.exit(main())
