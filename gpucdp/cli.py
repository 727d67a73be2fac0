"""The ``gpucdp`` command: resolve, demo, info, synth, evaluate.

Errors the user can fix print one line and exit with code 2; internal errors exit with 3 (see errors.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Sequence

from gpucdp.errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    GpucdpError,
    InputError,
    InternalError,
    OutputError,
    SettingsError,
)

__all__ = ["main"]

DEMO_MARKER = ".gpucdp-demo"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpucdp", description="Identity resolution: records in, unified profiles out.")
    from gpucdp import __version__

    parser.add_argument("--version", action="version", version=f"gpucdp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("resolve", help="resolve Parquet/CSV inputs into profiles and membership")
    p.add_argument("inputs", nargs="+", help="Parquet/CSV files, folders or globs; each is a source")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument("--settings", help="settings file (YAML or JSON); default: inferred from column names")
    p.add_argument("--backend", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--model", help="a trained model.json to reuse (skips training)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--write-pairs", action="store_true", help="also write the scored candidate pairs")
    p.add_argument("--hash-pairs", action="store_true",
                   help="with --write-pairs: keyed hashes instead of record ids in pairs.parquet")
    p.add_argument("--hash-key", default=os.environ.get("GPUCDP_HASH_KEY"),
                   help="key of those hashes, for hashes stable across runs (default: $GPUCDP_HASH_KEY, else a "
                   "random key per run, never stored)")
    p.add_argument("--memory-limit", help="peak host memory to stay within, e.g. 8GB or 512MiB (default: what "
                   "is available); a run that cannot fit stops early with exit 2")
    p.add_argument("--threads", type=int, help="host threads to use (default: every core this process may run "
                   "on); results do not depend on it")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")

    p = sub.add_parser("demo", help="generate synthetic records, resolve them and score the result")
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", type=float, default=0.5)
    p.add_argument("--out", default="gpucdp-demo", help="output folder (default: ./gpucdp-demo)")
    p.add_argument("--backend", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--json", help="also write the metrics as JSON here")
    p.add_argument("--quiet", action="store_true")

    sub.add_parser("info", help="backend chosen and why, libraries found, versions")

    p = sub.add_parser("synth", help="write synthetic customer records with ground truth")
    p.add_argument("--records", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", type=float, default=0.5)
    p.add_argument("--chunk-size", type=int, default=250_000)
    p.add_argument("--variation", choices=["typos", "semantic"], default="typos",
                   help="semantic: also nicknames, unit words, reordered addresses, city aliases")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("evaluate", help="precision/recall/F1 of a membership against the truth")
    p.add_argument("--membership", required=True, help="membership.parquet of a run")
    p.add_argument("--truth", required=True, help="truth file or folder (record_id, [source,] true_id)")
    p.add_argument("--json", help="write the metrics as JSON here")
    return parser


def _console():
    from rich.console import Console

    return Console()


def _cmd_resolve(args: argparse.Namespace) -> int:
    from gpucdp.pipeline import resolve

    if args.hash_pairs and not args.write_pairs:
        raise SettingsError("--hash-pairs only changes pairs.parquet: add --write-pairs, or drop --hash-pairs")

    result = resolve(
        args.inputs, settings=args.settings, out=args.out, backend=args.backend, model=args.model,
        overwrite=args.overwrite, quiet=args.quiet, write_pairs=args.write_pairs, memory_limit=args.memory_limit,
        hash_pairs=args.hash_pairs, hash_key=args.hash_key, threads=args.threads,
    )
    if not args.quiet:
        _console().print(
            f"{result.manifest['records']:,} records → {result.manifest['profiles']:,} profiles; wrote {args.out}/"
        )
    return EXIT_OK


def _prepare_demo_out(out: Path) -> None:
    if out.exists():
        if not (out / DEMO_MARKER).exists():
            raise OutputError(f"{out} exists and is not a gpucdp demo folder: pass another --out")


def _cmd_demo(args: argparse.Namespace) -> int:
    from gpucdp import synth
    from gpucdp.evaluate import evaluate_frames, format_table
    from gpucdp.pipeline import resolve
    from gpucdp.progress import Reporter

    out = Path(args.out)
    _prepare_demo_out(out)
    reporter = Reporter(quiet=args.quiet)
    start = time.perf_counter()
    with reporter.stage("synth") as st:
        records, truth = synth.generate_frame(args.records, seed=args.seed, difficulty=args.difficulty)
        st.count(records=len(records))
    result = resolve(records, out=out, backend=args.backend, overwrite=True, quiet=args.quiet, reporter=reporter)
    (out / DEMO_MARKER).write_text("written by `gpucdp demo`; safe to delete\n")
    metrics = evaluate_frames(result.membership, truth)
    metrics["seconds_total"] = round(time.perf_counter() - start, 3)
    metrics["stages"] = result.manifest["stages"]
    if not args.quiet:
        console = _console()
        console.print(format_table(metrics))
        console.print(f"outputs in {out}/ (profiles.parquet, membership.parquet, model.json, manifest.json)")
    else:
        pw = metrics["pairwise"]
        print(f"precision={pw['precision']:.4f} recall={pw['recall']:.4f} f1={pw['f1']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    from rich.table import Table

    from gpucdp.backend import plan_backend, probe

    info = probe()
    plan = plan_backend("auto", info)
    console = _console()
    console.print(f"backend: [bold]{plan.name}[/bold] — {plan.reason}")
    console.print(f"CUDA device: {info['cuda_device'] or 'none'}; FAISS on GPU: {'yes' if info['faiss_gpu'] else 'no'}")
    for line in plan.lines():
        console.print(f"  {line}", markup=False, soft_wrap=True)
    table = Table(title="libraries")
    table.add_column("library")
    table.add_column("version")
    for name, version in info["libraries"].items():
        table.add_row(name, version or "[dim]not installed[/dim]")
    console.print(table)
    return EXIT_OK


def _cmd_synth(args: argparse.Namespace) -> int:
    from gpucdp import synth

    summary = synth.write_dataset(
        args.out, args.records, seed=args.seed, difficulty=args.difficulty, chunk_size=args.chunk_size,
        variation=args.variation, overwrite=args.overwrite,
    )
    if not args.quiet:
        seconds = summary.get("seconds", 0.0)
        print(f"wrote {summary.get('records', args.records):,} records to {args.out}/records and the truth to "
              f"{args.out}/truth in {seconds:.1f} s")
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from gpucdp.evaluate import evaluate_files, format_table

    result = evaluate_files(args.membership, args.truth)
    _console().print(format_table(result))
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        except OSError as exc:
            raise InputError(f"cannot write {args.json}: {exc}") from None
    return EXIT_OK


COMMANDS = {
    "resolve": _cmd_resolve,
    "demo": _cmd_demo,
    "info": _cmd_info,
    "synth": _cmd_synth,
    "evaluate": _cmd_evaluate,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gpucdp`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InternalError as exc:
        traceback.print_exc()
        print(f"gpucdp {args.command}: internal error: {exc} (a bug in gpucdp; please report it with the traceback "
              "above)", file=sys.stderr)
        return exc.exit_code
    except GpucdpError as exc:
        print(f"gpucdp {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"gpucdp {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"gpucdp {args.command}: error: out of memory; use a machine with more memory or smaller inputs",
              file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as exc:  # noqa: BLE001 - a bug: show the traceback, exit with the internal-error code
        # A library's message can quote a value of the data (a name, an email): shown only when asked for.
        if os.environ.get("GPUCDP_DEBUG"):
            traceback.print_exc()
        else:
            print("".join(traceback.format_tb(exc.__traceback__)) + f"{type(exc).__name__} (message hidden as it "
                  "may quote your data; set GPUCDP_DEBUG=1 to show it)", file=sys.stderr)
        print(f"gpucdp {args.command}: internal error (a bug in gpucdp; please report it with the traceback above)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
