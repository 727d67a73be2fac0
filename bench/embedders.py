"""Embedders side by side: throughput (texts/s) of the n-gram and the sentence-transformers embedder, and what
each does for linkage on generated data whose names and addresses vary in ways typos don't explain.

Throughput embeds distinct address lines of generated records (a warm-up call first, so model loading and
Numba compilation are not timed); the n-gram embedder, ~10^5 times faster, is timed on the same texts repeated
to ``--ngram-rows`` rows so that its time is measurable (it does not deduplicate, so repeats cost the same). Accuracy generates ``--records`` records with
``variation="semantic"`` and, for each configuration, measures the pair completeness of kNN blocking alone
(the embedding's own contribution) and resolves the records end to end (pairwise P / R / F1, and the pair
completeness of all candidate pairs, key rules included):

- ``ngram``: the kNN columns below, all embedded by character n-grams (the default embedder);
- ``semantic``: the name, address and city columns by the sentence-transformers model, the rest by n-grams;
- ``hybrid``: names by n-grams, address and city by the model;
- ``hybrid+cosine``: ``hybrid``, and the location comparison gets a level "address lines' cosine in the
  model >= 0.9" after its Jaro–Winkler level (address is one fact: a comparison of its own would count it
  twice).

    python bench/embedders.py --texts 20000 --records 20000 --json bench/results/embedders.json
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from common import header, write_json

NGRAM_COLUMNS = {"first_name__canon": 1.0, "last_name": 1.0, "email__user": 1.0, "phone": 0.7, "dob": 0.7,
                 "postcode": 0.5, "address_line": 0.6, "city": 0.3}
SEMANTIC = "sentence-transformers"


def _columns(semantic: set[str]) -> dict:
    return {c: {"weight": w, "embedder": SEMANTIC} if c in semantic else w for c, w in NGRAM_COLUMNS.items()}


CONFIGS = {
    "ngram": _columns(set()),
    "semantic": _columns({"first_name__canon", "last_name", "address_line", "city"}),
    "hybrid": _columns({"address_line", "city"}),
}
COSINE_LEVEL = {"method": "cosine", "column": "address_line", "threshold": 0.9}


def _with_cosine(comparisons: list[dict]) -> list[dict]:
    """The comparisons with :data:`COSINE_LEVEL` after the location comparison's Jaro–Winkler level."""
    out = []
    for comp in comparisons:
        levels = comp["levels"]
        if comp["name"] == "location":
            at = 1 + max(i for i, lv in enumerate(levels) if lv["method"] == "jaro_winkler")
            levels = levels[:at] + [COSINE_LEVEL] + levels[at:]
        out.append({**comp, "levels": levels})
    return out


def throughput(n_texts: int, batch_size: int, ngram_rows: int) -> list[dict]:
    from gpucdp import synth
    from gpucdp.embed import embed_records
    from gpucdp.semantic import SemanticEmbedder
    from gpucdp.settings import SemanticSettings

    records, _ = synth.generate_frame(n_texts * 3, seed=1, variation="semantic")
    texts = records["address_line"].dropna().str.lower().drop_duplicates().head(n_texts).tolist()
    rows = []
    series = pd.Series(np.resize(np.array(texts, dtype=object), max(ngram_rows, len(texts))), dtype="str")
    embed_records([series.head(100)], [1.0])  # compile
    start = time.perf_counter()
    embed_records([series], [1.0])
    seconds = time.perf_counter() - start
    rows.append({"embedder": "ngram (dim 64, q 3)", "texts": len(series), "seconds": round(seconds, 3),
                 "texts_per_second": round(len(series) / seconds, 1)})
    model = SemanticEmbedder(SemanticSettings(batch_size=batch_size))
    model.encode(texts[:batch_size])  # load the model
    start = time.perf_counter()
    model.encode(texts)
    seconds = time.perf_counter() - start
    rows.append({"embedder": f"sentence-transformers (all-MiniLM-L6-v2, batch {batch_size}, {model.device})",
                 "texts": len(texts), "seconds": round(seconds, 3),
                 "texts_per_second": round(len(texts) / seconds, 1)})
    return rows


def accuracy(n_records: int, seed: int) -> list[dict]:
    from gpucdp import block, synth
    from gpucdp.backend import get_backend
    from gpucdp.embed import embed_hybrid
    from gpucdp.evaluate import blocking_metrics, evaluate_frames
    from gpucdp.pipeline import resolve
    from gpucdp.semantic import SemanticEmbedder
    from gpucdp.settings import Settings, parse_settings, resolve_settings
    from gpucdp.standardize import standardize

    records, truth = synth.generate_frame(n_records, seed=seed, variation="semantic")
    be = get_backend("cpu")
    base, _ = resolve_settings(Settings(), [c for c in records.columns if c not in ("record_id", "source")])
    prepared, _ = standardize(records[[f.name for f in base.fields]], [(f.name, f.type) for f in base.fields],
                              xdf=be.xdf)
    position = pd.Index(records["record_id"])
    rows = []
    # One embedder for every run: a distinct text is encoded once (its first encoding is in embed_seconds).
    semantic = SemanticEmbedder(base.semantic)
    for name, columns in [*CONFIGS.items(), ("hybrid+cosine", CONFIGS["hybrid"])]:
        knn = parse_settings({"blocking": {"knn": {"enabled": True, "columns": columns}}}).blocking.knn
        start = time.perf_counter()
        emb = embed_hybrid(prepared, knn.column_specs(), dim=knn.dim, q=knn.q,
                           semantic=semantic)
        embed_seconds = time.perf_counter() - start
        kl, kr, _ = block.knn_pairs(emb, k=knn.k, min_similarity=knn.min_similarity, faiss=be.faiss)
        knn_only = blocking_metrics(kl, kr, truth["true_id"].to_numpy())
        settings = {"blocking": {"knn": {"enabled": True, "columns": columns}}}
        if name == "hybrid+cosine":
            settings["comparisons"] = _with_cosine([c.model_dump(mode="json") for c in base.comparisons])
        start = time.perf_counter()
        result = resolve(records, settings=settings, backend="cpu", write_pairs=True, semantic=semantic)
        seconds = time.perf_counter() - start
        pairs = result.pairs
        left = position.get_indexer(pairs["left_record_id"])
        right = position.get_indexer(pairs["right_record_id"])
        candidates = blocking_metrics(left, right, truth["true_id"].to_numpy())
        metrics = evaluate_frames(result.membership, truth)
        rows.append({
            "config": name, "records": n_records, "dim": int(emb.shape[1]), "embed_seconds": round(embed_seconds, 2),
            "knn_pairs": knn_only["candidate_pairs"], "knn_pair_completeness": knn_only["pair_completeness"],
            "candidate_pairs": candidates["candidate_pairs"],
            "candidate_pair_completeness": candidates["pair_completeness"],
            "resolve_seconds": round(seconds, 2), "pairwise": metrics["pairwise"], "bcubed": metrics["bcubed"],
        })
        print(f"{name}: done in {seconds:.1f} s", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=20_000, help="distinct texts for the throughput part")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--ngram-rows", type=int, default=1_000_000, help="rows the n-gram embedder is timed on")
    parser.add_argument("--records", type=int, default=20_000, help="records for the accuracy part (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="bench/results/embedders.json")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    speed = throughput(args.texts, args.batch_size, args.ngram_rows)
    table = Table(title="embedding throughput (distinct address lines)")
    for col in ["embedder", "texts", "seconds", "texts/s"]:
        table.add_column(col, justify="right")
    for r in speed:
        table.add_row(r["embedder"], f"{r['texts']:,}", f"{r['seconds']:.2f}", f"{r['texts_per_second']:,.0f}")
    console.print(table)
    quality = accuracy(args.records, args.seed) if args.records else []
    if quality:
        table = Table(title=f"linkage on {args.records:,} records with the semantic variation (CPU)")
        for col in ["config", "dim", "embed s", "kNN pairs", "kNN completeness", "candidates",
                    "candidate completeness", "resolve s", "P", "R", "F1"]:
            table.add_column(col, justify="right")
        for r in quality:
            p = r["pairwise"]
            table.add_row(r["config"], str(r["dim"]), f"{r['embed_seconds']:.1f}", f"{r['knn_pairs']:,}",
                          f"{r['knn_pair_completeness']:.4f}", f"{r['candidate_pairs']:,}",
                          f"{r['candidate_pair_completeness']:.4f}", f"{r['resolve_seconds']:.1f}",
                          f"{p['precision']:.4f}", f"{p['recall']:.4f}", f"{p['f1']:.4f}")
        console.print(table)
    write_json(args.json, header("embedders", seed=args.seed, throughput=speed, accuracy=quality))
    return 0


if __name__ == "__main__":
    sys.exit(main())
