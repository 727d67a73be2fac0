"""gpucdp and Splink side by side: the same generated records, resolved by each, timed and scored alike.

For each size the data is generated once to Parquet (not timed). Then gpucdp and Splink (DuckDB backend) each
resolve it in a fresh child process, one after the other, so each peak RSS is that engine's own. Both
memberships are scored against the truth with :func:`gpucdp.evaluate.evaluate_frames`. Prints a table and
writes JSON with the machine, versions, sizes, per-phase seconds, peak memory, accuracy and the exact Splink
settings used.

Phases are reported in Splink's words so the rows line up: ``clean`` (read + standardize), ``train``
(parameter estimation), ``predict`` (blocking + comparison + scoring), ``cluster`` (Splink's connected
components; gpucdp's clustering, average linkage by default, and its profile building) and ``write``
(membership to Parquet). gpucdp's own stage seconds are kept in the JSON as well.

The Splink model is set up as its documentation recommends: cleaning in DuckDB SQL; blocking rules on email,
phone, first name + dob, surname + dob and surname + postcode; the comparison library with term-frequency
adjustments on names, city and postcode; u by random sampling, lambda from deterministic rules, m by EM on two
blocking rules; prediction and connected components at match probability 0.9.

    pip install -e ".[bench]"
    python bench/vs_splink.py --sizes 100000 --json bench/results/vs_splink.json
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

THRESHOLD = 0.9

GPUCDP_CHILD = r"""
import json, resource, sys, time
from gpucdp.pipeline import resolve
args = json.loads(sys.argv[1])
start = time.perf_counter()
result = resolve(args["inputs"], out=args["out"], backend=args["backend"], quiet=True, overwrite=True)
total = time.perf_counter() - start
stages = {name: info["seconds"] for name, info in result.manifest["stages"].items()}
print(json.dumps({"seconds": total, "stages": stages, "backend": result.manifest["backend"]["name"],
                  "membership": args["out"] + "/membership.parquet",
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

# The Splink run lives in the child as source text so that nothing of Splink or DuckDB is imported in the
# parent (its RSS would not be the child's, and gpucdp does not depend on Splink).
SPLINK_CHILD = r"""
import json, logging, resource, sys, time
args = json.loads(sys.argv[1])
import duckdb
import splink
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

t0 = time.perf_counter()  # after the imports, as for gpucdp

phases = {}
con = duckdb.connect()


def q(sql):
    # fetch everything: DuckDB 2 refuses further work on a connection holding an unfinished result
    return con.execute(sql).fetchall()


if args.get("threads"):
    q(f"set threads = {int(args['threads'])}")

# --- clean: one combined table, sources as a column ------------------------------------------------------
t = time.perf_counter()
records = args["records"].replace("'", "''")
q(rf'''
create table cleaned as
with raw as (select * from read_parquet('{records}/*.parquet'))
select
    source || ':' || record_id                                         as unique_id,
    record_id,
    source,
    nullif(trim(lower(first_name)), '')                               as first_name,
    nullif(trim(lower(last_name)), '')                                as last_name,
    -- each source writes dates its own way; the separators make the four formats unambiguous
    strftime(coalesce(try_strptime(dob, '%Y-%m-%d'), try_strptime(dob, '%m/%d/%Y'),
                      try_strptime(dob, '%d.%m.%Y'), try_strptime(dob, '%Y%m%d')), '%Y-%m-%d') as dob,
    nullif(trim(lower(email)), '')                                    as email,
    -- digits only, last ten: drops the +1 country code and any punctuation
    nullif(right(regexp_replace(phone, '[^0-9]', '', 'g'), 10), '')    as phone,
    nullif(trim(regexp_replace(
        regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
            lower(address_line), '\bstreet\b', 'st', 'g'), '\bavenue\b', 'ave', 'g'),
            '\broad\b', 'rd', 'g'), '\bdrive\b', 'dr', 'g'), '\bcourt\b', 'ct', 'g'), '\blane\b', 'ln', 'g'),
        '\s+', ' ', 'g')), '')                                        as address_line,
    nullif(trim(lower(city)), '')                                     as city,
    -- ZIP codes that lost their leading zero in some export are padded back to five digits
    nullif(lpad(upper(regexp_replace(postcode, '\s', '', 'g')), 5, '0'), '00000') as postcode
from raw
''')
n_records = q("select count(*) from cleaned")[0][0]
db_api = DuckDBAPI(connection=con)
df = db_api.register("cleaned", table_name="cleaned_input")
phases["clean"] = time.perf_counter() - t

# --- train ------------------------------------------------------------------------------------------------
t = time.perf_counter()
settings = SettingsCreator(
    link_type="dedupe_only",
    unique_id_column_name="unique_id",
    blocking_rules_to_generate_predictions=[
        block_on("email"),
        block_on("phone"),
        block_on("first_name", "dob"),
        block_on("last_name", "dob"),
        block_on("last_name", "postcode"),
    ],
    comparisons=[
        cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
        cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
        cl.DateOfBirthComparison("dob", input_is_string=True, datetime_format="%Y-%m-%d"),
        cl.EmailComparison("email"),
        cl.LevenshteinAtThresholds("phone", [1, 2]),
        cl.JaroWinklerAtThresholds("address_line", [0.95, 0.88]),
        cl.ExactMatch("city").configure(term_frequency_adjustments=True),
        cl.LevenshteinAtThresholds("postcode", [1]).configure(term_frequency_adjustments=True),
    ],
    retain_matching_columns=False,
    retain_intermediate_calculation_columns=False,
    additional_columns_to_retain=["record_id", "source"],
)
linker = Linker(df, settings, log_level=logging.WARNING)
train = {}
s = time.perf_counter()
linker.training.estimate_probability_two_random_records_match(
    [block_on("email"), block_on("phone", "last_name"), block_on("first_name", "last_name", "dob")],
    recall=args["recall"],
)
train["lambda"] = time.perf_counter() - s
s = time.perf_counter()
linker.training.estimate_u_using_random_sampling(max_pairs=args["max_pairs_u"], seed=args["seed"])
train["u"] = time.perf_counter() - s
s = time.perf_counter()
linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
linker.training.estimate_parameters_using_expectation_maximisation(block_on("last_name", "postcode"))
train["em"] = time.perf_counter() - s
phases["train"] = time.perf_counter() - t

# --- predict ----------------------------------------------------------------------------------------------
t = time.perf_counter()
predictions = linker.inference.predict(threshold_match_probability=args["threshold"])
n_pairs = q(f"select count(*) from {predictions.physical_name}")[0][0]
phases["predict"] = time.perf_counter() - t

# --- cluster ----------------------------------------------------------------------------------------------
t = time.perf_counter()
clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
    predictions, threshold_match_probability=args["threshold"])
phases["cluster"] = time.perf_counter() - t

# --- write: membership in gpucdp's shape ------------------------------------------------------------------
t = time.perf_counter()
out = args["out"].replace("'", "''")
q(rf'''
copy (select c.record_id, c.source, m.cluster_id as profile_id
      from {clusters.physical_name} m join cleaned c using (unique_id))
to '{out}' (format parquet)
''')
n_clusters = q(f"select count(distinct cluster_id) from {clusters.physical_name}")[0][0]
phases["write"] = time.perf_counter() - t

print(json.dumps({
    "seconds": time.perf_counter() - t0, "phases": phases, "train": train, "records": n_records,
    "predicted_pairs": n_pairs, "clusters": n_clusters, "membership": args["out"],
    "settings": linker.misc.save_model_to_json(out_path=None),
    "splink": splink.__version__, "duckdb": duckdb.__version__,
    "duckdb_threads": q("select current_setting('threads')")[0][0],
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}, default=str))
"""

PHASES = ["clean", "train", "predict", "cluster", "write"]
# gpucdp's stages, grouped under the phase names above so that rows of the two engines line up.
GPUCDP_PHASES = {
    "read": "clean", "standardize": "clean",
    "model": "train",
    "embed": "predict", "knn": "predict", "block": "predict", "compare": "predict",
    "cluster": "cluster", "profiles": "cluster",
    "write": "write",
}


def _child(code: str, payload: dict, what: str) -> dict:
    """Run ``code`` in a fresh Python and return the JSON it prints last; exit with its stderr on failure."""
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(payload)], check=False, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _score(membership: str, truth: Path) -> dict:
    import pandas as pd

    from gpucdp.evaluate import evaluate_frames

    metrics = evaluate_frames(pd.read_parquet(membership), pd.read_parquet(truth))
    return {"pairwise": metrics["pairwise"], "bcubed": metrics["bcubed"]}


def run_gpucdp(data: Path, out: Path, *, backend: str) -> dict:
    run = _child(GPUCDP_CHILD, {"inputs": [str(data / "records")], "out": str(out), "backend": backend},
                 "gpucdp resolve")
    phases = dict.fromkeys(PHASES, 0.0)
    for stage, seconds in run["stages"].items():
        phases[GPUCDP_PHASES.get(stage, "predict")] += seconds
    return {"engine": f"gpucdp ({run['backend']})", "seconds": run["seconds"], "phases": phases,
            "stages": run["stages"], "peak_rss_bytes": run["peak_rss_bytes"],
            **_score(run["membership"], data / "truth")}


def run_splink(data: Path, out: Path, *, seed: int, threads: int | None, recall: float,
               max_pairs_u: float) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    payload = {"records": str(data / "records"), "out": str(out / "membership.parquet"), "seed": seed,
               "threads": threads, "recall": recall, "max_pairs_u": max_pairs_u, "threshold": THRESHOLD}
    run = _child(SPLINK_CHILD, payload, "Splink")
    settings = run.pop("settings")
    return {"engine": f"splink {run['splink']} (duckdb {run['duckdb']})", "seconds": run["seconds"],
            "phases": run["phases"], "train_seconds": run["train"], "peak_rss_bytes": run["peak_rss_bytes"],
            "predicted_pairs": run["predicted_pairs"], "clusters": run["clusters"],
            "duckdb_threads": run["duckdb_threads"], "model": settings,
            **_score(run["membership"], data / "truth")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000],
                        help="record counts to generate and resolve (e.g. 100000 1000000 3000000)")
    parser.add_argument("--backend", default="cpu", choices=["auto", "cpu", "gpu"], help="gpucdp backend")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", type=float, default=0.5)
    parser.add_argument("--threads", type=int, help="DuckDB threads for Splink (default: DuckDB's own)")
    parser.add_argument("--recall", type=float, default=0.6,
                        help="assumed recall of Splink's deterministic rules when estimating lambda")
    parser.add_argument("--max-pairs-u", type=float, default=1e6, help="Splink u-sampling pairs")
    parser.add_argument("--engines", nargs="+", default=["gpucdp", "splink"], choices=["gpucdp", "splink"])
    parser.add_argument("--workdir", help="keep generated data and outputs here (default: a temporary folder)")
    parser.add_argument("--json", default="bench/results/vs_splink.json")
    args = parser.parse_args(argv)
    for n in args.sizes:
        if n < 1000:
            parser.error(f"--sizes: {n} is too small to train Splink's model; use 1000 records or more")
    if not 0 < args.recall <= 1:
        parser.error(f"--recall must be in (0, 1], got {args.recall}")

    from rich.console import Console
    from rich.table import Table

    from gpucdp import synth

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="gpucdp-vs-splink-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        data = workdir / f"data-{n}"
        if not (data / "truth").exists():
            synth.write_dataset(data, n, seed=args.seed, difficulty=args.difficulty)
        for engine in args.engines:
            if engine == "gpucdp":
                row = run_gpucdp(data, workdir / f"gpucdp-{n}", backend=args.backend)
            else:
                row = run_splink(data, workdir / f"splink-{n}", seed=args.seed, threads=args.threads,
                                 recall=args.recall, max_pairs_u=args.max_pairs_u)
            rows.append({"records": n, **row})

    table = Table(title=f"gpucdp vs Splink ({os.cpu_count()} cores, threshold {THRESHOLD})")
    for col in ["records", "engine", "total s", *[f"{p} s" for p in PHASES], "peak RSS GB",
                "pair P", "pair R", "pair F1", "B³ P", "B³ R", "B³ F1"]:
        table.add_column(col, justify="left" if col == "engine" else "right")
    for r in rows:
        table.add_row(
            f"{r['records']:,}", r["engine"], f"{r['seconds']:.1f}", *[f"{r['phases'][p]:.2f}" for p in PHASES],
            f"{r['peak_rss_bytes'] / 2**30:.2f}",
            *[f"{r[kind][m]:.4f}" for kind in ("pairwise", "bcubed") for m in ("precision", "recall", "f1")],
        )
    Console(width=220).print(table)

    splink_rows = [r for r in rows if r["engine"].startswith("splink")]
    doc = header(
        "vs_splink", backend=args.backend, seed=args.seed, difficulty=args.difficulty,
        threshold_match_probability=THRESHOLD,
        splink_options={"recall": args.recall, "max_pairs_u": args.max_pairs_u, "threads": args.threads},
        results=rows,
    )
    if splink_rows:
        doc["versions"]["splink"] = splink_rows[0]["engine"].split()[1]
    write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
