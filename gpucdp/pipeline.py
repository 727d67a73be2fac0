"""The end-to-end job: records in, unified profiles and the record → profile mapping out.

read → standardize → embed → block → compare → model → cluster → profiles → write; see DESIGN.md. Each
stage is a function of arrays and frames; this module only wires them, times them and records what they
did in the manifest.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import os
import platform
import secrets
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import gpucdp
from gpucdp import block as block_stage
from gpucdp import memory
from gpucdp import model as model_module
from gpucdp.arrays import cached_factorize, dense_unique, factorize_columns
from gpucdp.backend import Backend, get_backend, to_host
from gpucdp.cluster import cluster_pairs
from gpucdp.compare import build_tables, compare_in_chunks, locality_order, prepare_columns
from gpucdp.embed import embed_hybrid
from gpucdp.errors import InternalError, SettingsError
from gpucdp.gpu import DeviceMemory, check_device_fits, device_bytes_per_record, rows_per_chunk
from gpucdp.io import check_fields_have_values, check_output, keyed_record_hashes, read_inputs, write_outputs
from gpucdp.model import FSModel, decode, estimate_u, load_model, pair_probabilities, train_em
from gpucdp.parallel import numba_threads, resolve_threads
from gpucdp.profiles import build_profiles, golden_columns
from gpucdp.progress import Reporter, peak_rss_bytes
from gpucdp.semantic import SemanticEmbedder
from gpucdp.settings import CPU_KNN_MAX_RECORDS, Settings, load_settings, parse_settings, resolve_settings
from gpucdp.standardize import standardize

__all__ = ["ResolveResult", "resolve"]

# Candidate pairs the latent-class model's non-match classes need (see gpucdp.model): a second class from
# PAIRS_FOR_TWO_CLASSES, each class past the second PAIRS_PER_FURTHER_CLASS more. On synthetic inputs of 1k-20k
# records (3 seeds each), a third class fitted on 4k-10k pairs split the matches into two classes, one of them
# taken for non-matches: pairwise F1 0.42 and 0.20 at 2k records where two classes gave 0.96; from 24k pairs
# on it was within 0.003 of two classes, and at 1M records it is better (0.951 against 0.938).
PAIRS_FOR_TWO_CLASSES = 2_000
PAIRS_PER_FURTHER_CLASS = 20_000
# Below this many candidate pairs EM runs from every start of model.EM_STARTS (see em_starts); 100k generated
# records make ~720k, 1M records ~8.8M.
MULTI_START_PAIRS = 1_000_000


def supported_classes(pairs: int, wanted: int) -> int:
    """Non-match classes to fit on ``pairs`` candidate pairs, at most ``wanted``: 1 (the textbook model, its u
    from random pairs) below PAIRS_FOR_TWO_CLASSES, then 2, then one more per PAIRS_PER_FURTHER_CLASS."""
    if pairs < PAIRS_FOR_TWO_CLASSES:
        return 1
    return min(wanted, 2 + pairs // PAIRS_PER_FURTHER_CLASS)


def em_starts(pairs: int) -> tuple[float, ...]:
    """EM's starting match shares for ``pairs`` candidate pairs: every one of ``model.EM_STARTS`` below
    MULTI_START_PAIRS, else the first.

    Only small inputs, whose candidate pairs mostly match, were seen to end EM from 0.3 on the worse of two
    optima. From 1M records up the first start's fit was the likelier one, and the other start, heading for
    a worse optimum, ran all its iterations: 1,000 without converging at 3M, 1.5-2.4 s more in the model stage.
    """
    return model_module.EM_STARTS if pairs < MULTI_START_PAIRS else model_module.EM_STARTS[:1]


Inputs = Sequence[str | os.PathLike] | str | os.PathLike | pd.DataFrame | Mapping[str, pd.DataFrame]


class ResolveResult:
    """What :func:`resolve` returns.

    Attributes
    ----------
    profiles : pd.DataFrame
        One row per unified profile.
    membership : pd.DataFrame
        One row per input record: record_id, source, profile_id, match_probability.
    model : FSModel
    manifest : dict
        Settings, versions, backend, inputs, per-stage timings and counts.
    pairs : pd.DataFrame or None
        Scored candidate pairs (when asked for).
    tables : dict of str to pa.Table
        The same results as Arrow tables ("profiles", "membership" and, when asked for, "pairs"), as written.

    The DataFrames are converted from the Arrow tables when first read: a run driven from the command line,
    which writes the tables and reads none of them, does not pay for the conversion (1 s per 1M records, most
    of it the profiles' list columns).
    """

    def __init__(self, profiles: pa.Table, membership: pa.Table, model: FSModel, manifest: dict[str, Any],
                 pairs: pa.Table | None = None, out: Path | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        self.tables = {"profiles": profiles, "membership": membership}
        if pairs is not None:
            self.tables["pairs"] = pairs
        self.model, self.manifest, self.out = model, manifest, out
        self.extra = extra if extra is not None else {}

    @functools.cached_property
    def profiles(self) -> pd.DataFrame:
        return self.tables["profiles"].to_pandas()

    @functools.cached_property
    def membership(self) -> pd.DataFrame:
        return self.tables["membership"].to_pandas()

    @functools.cached_property
    def pairs(self) -> pd.DataFrame | None:
        return self.tables["pairs"].to_pandas() if "pairs" in self.tables else None

    def __repr__(self) -> str:
        return (f"ResolveResult({self.manifest.get('records')} records, {self.tables['profiles'].num_rows} "
                f"profiles, out={self.out})")


def _coerce_settings(settings: Settings | Mapping[str, Any] | str | os.PathLike | None) -> Settings:
    if settings is None:
        return Settings()
    if isinstance(settings, Settings):
        return settings
    if isinstance(settings, Mapping):
        return parse_settings(dict(settings))
    return load_settings(settings)


def _term_frequencies(codes: np.ndarray) -> np.ndarray:
    """Relative frequency of each record's value among non-null values (NaN where null): float64[n].

    ``codes`` are the column's factorised values (-1 = null).
    """
    out = np.full(codes.shape[0], np.nan)
    valid = codes >= 0
    if valid.any():
        counts = np.bincount(codes[valid])
        out[valid] = counts[codes[valid]] / valid.sum()
    return out


def _random_pairs(n: int, count: int, source_codes: np.ndarray, mode: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random pairs of input records (fewer: self pairs and pairs the mode excludes are dropped)."""
    rng = np.random.default_rng(seed)
    left = rng.integers(0, n, size=count, dtype=np.int64)
    right = rng.integers(0, n, size=count, dtype=np.int64)
    keep = left != right
    if mode == "dedupe":
        keep &= source_codes[left] == source_codes[right]
    elif mode == "link":
        keep &= source_codes[left] != source_codes[right]
    return left[keep], right[keep]


def resolve(
    inputs: Inputs,
    settings: Settings | Mapping[str, Any] | str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    backend: str | Backend = "auto",
    *,
    model: FSModel | str | os.PathLike | None = None,
    overwrite: bool = False,
    quiet: bool = True,
    write_pairs: bool = False,
    keep_candidates: bool = False,
    reporter: Reporter | None = None,
    semantic: SemanticEmbedder | None = None,
    memory_limit: str | int | None = None,
    hash_pairs: bool = False,
    hash_key: str | bytes | None = None,
    threads: int | None = None,
) -> ResolveResult:
    """Resolve customer records into unified profiles.

    Parameters
    ----------
    inputs : paths, folders or globs of Parquet/CSV files; or a DataFrame, or a mapping source → DataFrame
        Each input given is a source unless the data has a source column.
    settings : Settings, mapping, path to a YAML/JSON file, or None
        None infers fields from column names and uses the default comparisons.
    out : path or None
        Output folder for profiles.parquet, membership.parquet, model.json, manifest.json (and pairs.parquet);
        written atomically. None keeps the results in memory only.
    backend : "auto", "cpu", "gpu" or a Backend
    model : FSModel or path to model.json, optional
        A trained model to reuse: training is skipped and its comparisons are used.
    overwrite : bool
        Replace an existing output folder.
    quiet : bool
        No progress bars or summary table.
    write_pairs : bool
        Also return (and write) the scored candidate pairs.
    keep_candidates : bool
        Keep the candidate pairs as record positions (input order) in ``result.extra["candidates"]`` (left,
        right int32 arrays, int64 past 2^31 records, ``left < right``, in no particular order), e.g. to score
        blocking against a truth without writing every pair out.
    semantic : SemanticEmbedder, optional
        The sentence-transformers embedder to use (default: one built from ``settings.semantic``); pass the same
        one to several runs and no distinct value is encoded twice.
    memory_limit : str, int or None
        Peak host memory the run may use (``"8GB"``, ``"512MiB"``, bytes); None: the memory available at the
        start. Heavy stages check their estimate first and stop with MemoryBudgetError (see gpucdp.memory).
    hash_pairs : bool
        In the scored pairs, replace each record id by a keyed hash of (source, record id)
        (:func:`gpucdp.io.keyed_record_hashes`), so the pairs can be shared without the ids.
    hash_key : str, bytes or None
        The key of those hashes. Given, the same record gets the same hash in every run with that key; None
        uses a random key that is never stored, so the hashes of one run cannot be linked to any other.
    threads : int or None
        Host threads the run may use: the Numba kernels' threads, and the columns that standardisation,
        factorisation and the profiles work on at once (see :mod:`gpucdp.parallel`). None: every core this
        process may run on. The results do not depend on it.

    Returns
    -------
    ResolveResult
    """
    settings = _coerce_settings(settings)
    threads = resolve_threads(threads)
    with numba_threads(threads):
        return _resolve(inputs, settings, out, backend, model, overwrite, quiet, write_pairs, keep_candidates,
                        reporter, semantic, memory_limit, hash_pairs, hash_key, threads)


def _resolve(inputs: Inputs, settings: Settings, out: str | os.PathLike | None, backend: str | Backend,
             model: FSModel | str | os.PathLike | None, overwrite: bool, quiet: bool, write_pairs: bool,
             keep_candidates: bool, reporter: Reporter | None, semantic: SemanticEmbedder | None,
             memory_limit: str | int | None, hash_pairs: bool, hash_key: str | bytes | None,
             threads: int) -> ResolveResult:
    be = backend if isinstance(backend, Backend) else get_backend(backend)
    report = reporter or Reporter(quiet=quiet)
    budget = memory.Budget.create(memory_limit)
    _pause_for_tests(report)
    if out is not None:
        check_output(out, overwrite)
    fs_model = load_model(model) if isinstance(model, (str, os.PathLike)) else model
    if fs_model is not None:
        settings = settings.model_copy(update={"comparisons": fs_model.comparisons})
    report.print(f"[dim]backend: {be.name} ({be.reason})[/dim]")
    device = DeviceMemory(be.xp)  # no-op on the CPU
    # The array module of everything per pair: on the GPU backend candidate pairs, patterns, weights and
    # probabilities are made and kept on the device, and only per-record results (cluster labels) come back.
    xp = be.xp

    def need(stage: str, working_set: int, fix: str, **counts: Any) -> None:
        """Check a per-pair stage's working set against the memory it lives in (host or device); ``fix`` says
        what to change in the run (the host's message adds the budget itself)."""
        if device.on_device:
            device.check(stage, working_set, fix, **counts)
        else:
            budget.check(stage, working_set, f"raise --memory-limit, or {fix}", **counts)

    # ---- read
    with report.stage("read") as st:
        fields_given = settings.fields is not None
        table, files = read_inputs(
            inputs,
            record_id=settings.record_id,
            source=settings.source,
            field_columns={f.name: f.input_column for f in settings.fields} if fields_given else None,
            numeric_fields=[f.name for f in settings.fields or [] if f.type == "numeric"],
            threads=threads,
        )
        columns = [c for c in table.column_names if c not in ("record_id", "source")]
        resolved, unused = resolve_settings(settings, columns)
        n = table.num_rows
        field_columns = {f.name: f.name if fields_given else f.input_column for f in resolved.fields}
        check_fields_have_values(table, field_columns)
        frame = pd.DataFrame({name: table.column(column).to_pandas() for name, column in field_columns.items()})
        # record ids and sources stay Arrow strings: a Python string per record would cost ~60 bytes and time
        record_id, source = table.column("record_id"), table.column("source")
        source_codes, source_names = pd.factorize(source.to_pandas())
        st.count(records=n, files=len(files), sources=len(source_names))
        if device.on_device:  # fail before any work when the records cannot fit on the GPU
            # prepared columns (derived keys included) take about twice the input's bytes
            string_bytes = 2 * table.nbytes // max(n, 1)
            per_record = device_bytes_per_record(resolved.blocking.knn.dim, string_bytes)
            check_device_fits(n, per_record, *device.info())
    del table

    # ---- standardize
    with (report.stage("standardize", total=len(resolved.fields), unit="fields") as st,
          device.stage("standardize")):
        on_cudf = be.xdf.__name__ == "cudf"
        xframe = be.xdf.from_pandas(frame) if on_cudf else frame
        prepared, std_stats = standardize(
            xframe, [(f.name, f.type) for f in resolved.fields], xdf=be.xdf, date_order=resolved.date_order,
            threads=1 if on_cudf else threads,
        )
        # The embedder reads cuDF's own string buffers on the device; the stages after it still take pandas.
        prepared_device = prepared if on_cudf else None
        if on_cudf:  # pragma: no cover - needs cuDF
            prepared = prepared.to_pandas()
        st.advance(len(resolved.fields))
        st.count(unparseable=int(sum(s.get("unparseable", 0) for s in std_stats.values())))
        codes_cache: dict[str, Any] = {}  # factorised prepared columns: key rules, layout, TF and profiles share them
        # Records are numbered in a layout where likely matches sit close together (surname sound, given name):
        # blocking makes its pairs in these numbers, sorted, so the comparison kernel's reads stay close with no
        # renumbering or re-sorting of the pairs. Record i of the input is number position[i]; number k is input
        # record layout[k]. Everything per record comes back to input order before the profiles.
        names = [f.name for f in resolved.fields if f.type == "name"][::-1]  # surname first, by convention
        layout_columns = [f"{n}__phonetic" for n in names[:1]] + [f"{n}__canon" for n in names[1:2]]
        # the layout's and the key rules' columns are factorised here, at once (a thread each)
        factorize_columns(codes_cache, prepared,
                          layout_columns + [c for rule, _ in resolved.blocking.key_rules() for c in rule], threads)
        layout = locality_order(prepared, layout_columns, cache=codes_cache)
        if layout is None:
            layout = np.arange(n, dtype=np.int64)
    del frame, xframe

    # ---- embed + block
    knn = resolved.blocking.knn
    # Candidate pairs from every source, packed as one int64 key each (block.pack_pairs): 8 bytes a raw pair
    # until their union is taken once, after the last rule.
    key_parts: list = []
    block_counts: dict[str, Any] = {}
    position = np.empty(n, dtype=np.int64)
    position[layout] = np.arange(n, dtype=np.int64)
    layout_x, position_x = xp.asarray(layout), xp.asarray(position)
    # One sentence-transformers embedder for kNN and cosine comparisons: each distinct value is embedded once.
    if semantic is None:
        semantic = SemanticEmbedder(resolved.semantic, "cuda" if be.is_gpu else "cpu")
    run_knn = knn.enabled is True or (knn.enabled == "auto" and (be.is_gpu or n <= CPU_KNN_MAX_RECORDS))
    block_counts["knn"] = "run" if run_knn and knn.columns else (
        f"skipped: CPU backend and {n:,} records > {CPU_KNN_MAX_RECORDS:,} (set blocking.knn.enabled: true)"
        if knn.enabled == "auto" else "disabled")
    if block_counts["knn"].startswith("skipped"):
        report.print(f"[dim]kNN blocking {block_counts['knn']}[/dim]")
    if run_knn and knn.columns:
        with report.stage("embed") as st, device.stage("embed"):
            missing = [c for c in knn.columns if c not in prepared.columns]
            if missing:
                raise SettingsError(
                    f"blocking.knn.columns: {', '.join(missing)} do not exist after standardisation; available: "
                    f"{', '.join(sorted(prepared.columns))}"
                )
            emb = embed_hybrid(prepared, knn.column_specs(), dim=knn.dim, q=knn.q, target=be.kernel_target,
                               semantic=semantic, xp=be.xp, device_frame=prepared_device)
            st.count(dim=int(emb.shape[1]), fields=len(knn.columns))
        with report.stage("knn") as st, device.stage("knn"):
            kl, kr, _ = block_stage.knn_pairs(
                emb, k=knn.k, min_similarity=knn.min_similarity, faiss=be.faiss, use_gpu=be.faiss_gpu,
                index=knn.index, nprobe=knn.nprobe,
                xp=be.xp if be.is_gpu or be.knn == "numpy-gemm" else None,
            )
            del emb
            key_parts.append(block_stage.pack_pairs(position_x[xp.asarray(kl)], position_x[xp.asarray(kr)], n, xp))
            block_counts["knn_pairs"] = int(kl.shape[0])
            st.count(pairs=int(kl.shape[0]))
            del kl, kr
    del prepared_device  # the device copy of the prepared columns was for the embedder only
    memory.release_unused()
    with report.stage("block") as st, device.stage("block"):
        rule_stats = []
        raw_pairs = sum(int(keys.size) for keys in key_parts)
        per_pair = memory.BLOCK_DEVICE_BYTES_PER_PAIR if device.on_device else memory.BLOCK_BYTES_PER_PAIR
        for rule, max_block_size in resolved.blocking.key_rules():
            missing = [c for c in rule if c not in prepared.columns]
            if missing:
                raise SettingsError(
                    f"blocking.rules {rule}: {', '.join(missing)} do not exist after standardisation; available: "
                    f"{', '.join(sorted(prepared.columns))}"
                )
            codes = block_stage.key_codes(prepared, rule, cache=codes_cache, xp=xp)[layout_x]

            def check(pairs: int, rule: list[str] = rule, max_block_size: int = max_block_size) -> None:
                need("block", (raw_pairs + pairs) * per_pair,
                     f"lower the rule's max_block_size (now {max_block_size}) or "
                     f"drop a key rule (rule {rule} alone makes {pairs:,} pairs)", raw_pairs=raw_pairs + pairs)

            keys, stats = block_stage.key_pair_keys(codes, max_block_size, before_pairs=check, xp=xp)
            del codes
            raw_pairs += stats["pairs"]
            key_parts.append(keys)
            del keys
            rule_stats.append({"rule": rule, "max_block_size": max_block_size, **stats})
        left, right = block_stage.union_pairs(key_parts, n, xp, threads=threads)
        left, right = block_stage.filter_mode(left, right, source_codes[layout], resolved.mode, xp)
        block_counts.update({"rules": rule_stats, "candidate_pairs": int(left.shape[0])})
        st.count(candidate_pairs=int(left.shape[0]))

    # ---- compare
    with report.stage("compare", total=int(left.shape[0]), unit="pairs") as st, device.stage("compare"):
        n_pairs = int(left.shape[0])
        per_pair = memory.COMPARE_CHUNK_BYTES_PER_PAIR + len(resolved.comparisons)
        # no chunk needs to be longer than the candidate or random pairs it holds
        chunk_size = preferred = min(resolved.chunk_size, max(n_pairs, resolved.model.u_pairs))
        fix = ("make fewer candidate pairs: lower blocking.max_block_size (now "
               f"{resolved.blocking.max_block_size}), drop a key rule or lower blocking.knn.k")
        # the random pairs for u are compared here too, when the model is trained
        random_bytes = resolved.model.u_pairs * memory.MODEL_BYTES_PER_RANDOM_PAIR if fs_model is None else 0

        def check(column_bytes: int, packing_bytes: int) -> None:
            """Before the columns are packed: they, the patterns and a chunk must fit; chunks from what is left."""
            nonlocal chunk_size
            fixed = n_pairs * memory.COMPARE_BYTES_PER_PAIR + column_bytes + random_bytes
            if device.on_device:  # the pairs and their patterns on the device, where the columns are laid out
                need("compare", fixed + packing_bytes + 1_000 * per_pair, fix, candidate_pairs=n_pairs,
                     column_bytes=column_bytes)
                chunk_size = min(preferred, rows_per_chunk(device.info()[0] - fixed, per_pair))
            else:
                chunk_size = budget.chunk_size(
                    "compare", fixed=fixed + packing_bytes, per_item=per_pair, preferred=preferred, minimum=1_000,
                    advice=f"raise --memory-limit, or {fix}", candidate_pairs=n_pairs, column_bytes=column_bytes)

        # Blocking is done: from here on the comparisons read the prepared columns once, to pack them, and after
        # that only the term frequencies and the profiles do. The columns and codes that only blocking and the
        # record layout read go before the packed columns are made, the comparisons' own once they are packed.
        kept = {column for _, column in golden_columns(resolved.fields, prepared.columns)}
        kept |= {comp.levels[0].column for comp in resolved.comparisons if comp.term_frequency}
        compared = {level.column for comp in resolved.comparisons for level in comp.levels}
        prepared = prepared[[c for c in prepared.columns if c in kept | compared]]
        for key in [k for k in codes_cache if (k[1] if isinstance(k, tuple) else k) not in kept]:
            del codes_cache[key]
        memory.release_unused()
        # packed straight into the record layout, where the pairs' numbers point (on the device for the GPU)
        columns_packed = prepare_columns(prepared, resolved.comparisons, semantic, order=layout_x,
                                         target=be.kernel_target, xp=xp, before_packing=check)
        tables = build_tables(resolved.comparisons, columns_packed)
        prepared = prepared[[c for c in prepared.columns if c in kept]]
        patterns = compare_in_chunks(
            left, right, columns_packed, tables, chunk_size=chunk_size, target=be.kernel_target,
            advance=st.advance, xp=xp,
        )
        random_patterns = None
        if fs_model is None:  # training: u comes from random pairs, compared while the columns are laid out
            rl, rr = _random_pairs(n, resolved.model.u_pairs, source_codes, resolved.mode, resolved.model.seed)
            index = block_stage.pair_dtype(n)  # numbered as the candidate pairs are
            rl, rr = position[rl].astype(index), position[rr].astype(index)
            by_left = np.argsort(rl, kind="stable")  # the kernel runs ~2x faster on pairs sorted by left
            random_patterns = compare_in_chunks(
                xp.asarray(rl[by_left]), xp.asarray(rr[by_left]), columns_packed, tables, chunk_size=chunk_size,
                target=be.kernel_target, xp=xp,
            )
            del rl, rr, by_left
        # Nothing later compares: the packed columns (on the GPU, their device copy) go before the model's
        # per-pair arrays are made.
        del columns_packed
        st.count(pairs=int(left.shape[0]), comparisons=len(resolved.comparisons))

    # ---- model
    memory.release_unused()
    with report.stage("model") as st, device.stage("model"):
        space = int(np.prod(tables.n_levels.astype(np.int64) + 2))
        model_per_pair = memory.MODEL_BYTES_PER_PAIR + (memory.MODEL_BYTES_PER_WRITTEN_PAIR if write_pairs else 0)
        if space > memory.MODEL_DENSE_PATTERNS:  # patterns counted by a sort instead: its temporaries on top
            model_per_pair += memory.MODEL_SORT_BYTES_PER_PAIR
        need("model", n_pairs * model_per_pair + min(n_pairs, chunk_size) * memory.MODEL_CHUNK_BYTES_PER_PAIR,
             "make fewer candidate pairs (blocking.max_block_size, key rules)", candidate_pairs=n_pairs)
        if space <= memory.MODEL_DENSE_PATTERNS:
            uniq, inverse, counts = dense_unique(patterns, space, xp)
        else:
            uniq, inverse, counts = xp.unique(patterns, return_inverse=True, return_counts=True)
        if not write_pairs:  # the pattern of each pair is kept only for the pairs output
            patterns = None
        # the distinct patterns and their counts are all EM needs: they come to the host, the pairs do not
        uniq, counts = to_host(uniq), to_host(counts)
        if fs_model is None:
            assert random_patterns is not None
            n_random = int(random_patterns.shape[0])
            u_random = estimate_u(random_patterns, tables.n_levels, distinct_pairs=n * (n - 1) / 2, xp=xp)
            del random_patterns
            if uniq.size:
                # Each extra non-match class is learnt from the data: with few candidate pairs (a small
                # input) fall back towards the textbook model, whose u comes from random pairs.
                k_non = supported_classes(int(left.shape[0]), resolved.model.non_match_classes)
                m, u, lambdas, info = train_em(
                    uniq, counts, tables.n_levels, u_random, non_match_classes=k_non,
                    max_iterations=resolved.model.em_max_iterations, tolerance=resolved.model.em_tolerance,
                    starts=em_starts(int(left.shape[0])), threads=threads,
                )
            else:
                m, u, lambdas = [np.full_like(x, 1.0 / x.size) for x in u_random], [u_random], np.array([0.5, 0.5])
                info = {"iterations": 0, "converged": False}
            info.update({"random_pairs": n_random, "candidate_pairs": int(left.shape[0]),
                         "distinct_patterns": int(uniq.size)})
            fs_model = FSModel(list(resolved.comparisons), m, u, lambdas, info, u_random)
        pattern_weight = xp.asarray(fs_model.pattern_weights(uniq) if uniq.size else np.zeros(0))
        gamma_unique = decode(uniq, tables.n_levels) if uniq.size else np.zeros((0, len(tables.names)), np.int8)
        terms = []  # (exact on it: per distinct pattern, adjustment: per record) per term-frequency comparison
        for c, comp in enumerate(resolved.comparisons):
            exact_pattern = gamma_unique[:, c] == tables.n_levels[c]  # per distinct pattern
            if not comp.term_frequency or not exact_pattern.any():
                continue
            column = comp.levels[0].column
            tf = _term_frequencies(cached_factorize(codes_cache, column, prepared[column])[0])
            baseline = float(np.nanmean(tf))  # summed in input order: the same bits whatever the layout
            # per record (NaN where null, never read: an exact level has the value on both sides), then
            # gathered for the pairs, so the logarithm runs once per record, not once per pair
            adjustment = xp.asarray(fs_model.tf_adjustment(tf, baseline, resolved.model.tf_minimum_u)[layout])
            terms.append((xp.asarray(exact_pattern), adjustment))
            del adjustment
        probability, weights = pair_probabilities(pattern_weight, inverse, left, terms, resolved.model.tf_weight,
                                                  chunk_size=chunk_size, keep_weights=write_pairs, xp=xp)
        del inverse, terms
        st.count(lam=round(fs_model.lam, 5), patterns=int(uniq.size))

    # ---- cluster
    memory.release_unused()
    with report.stage("cluster") as st, device.stage("cluster"):
        # checked as the stage learns its counts (the edges kept, the pairs between groups), before their arrays
        fix = ("make fewer candidate pairs (blocking.max_block_size, key rules), or set cluster.linkage: single "
               "(it holds no pairs between groups)")
        cluster_chunk = chunk_size  # on the device, from the memory free now that the pairs have probabilities
        if device.on_device:
            cluster_chunk = min(chunk_size, rows_per_chunk(device.info()[0], memory.CLUSTER_CHUNK_BYTES_PER_PAIR))
        clusters = cluster_pairs(
            n, left, right, probability, threshold=resolved.cluster.threshold,
            max_cluster_size=resolved.cluster.max_cluster_size, split_oversized=resolved.cluster.split_oversized,
            backend=be, position=position_x, linkage=resolved.cluster.linkage, chunk_size=cluster_chunk,
            need=lambda working_set, **counts: need("cluster", working_set, fix, records=n,
                                                    scored_pairs=n_pairs, **counts),
        )
        capped = clusters.stats["merge_rounds_capped"]  # shown only when merging stopped at the round cap
        st.count(clusters=clusters.stats["clusters"], max_size=clusters.stats["max_size"],
                 kept_apart=clusters.stats["kept_apart"], oversized=clusters.stats["oversized_clusters"],
                 **({"merge_rounds_capped": capped} if capped else {}))
    if not write_pairs:  # the pairs themselves are needed after clustering only to be written or kept
        probability = None
        if not keep_candidates:
            left = right = None

    # ---- profiles
    memory.release_unused()
    with report.stage("profiles") as st:
        budget.check("profiles", n * (len(resolved.fields) * memory.PROFILE_BYTES_PER_VALUE
                                      + memory.PROFILE_BYTES_PER_RECORD),
                     "raise --memory-limit, or resolve fewer records or fewer fields in one run", records=n)
        profiles, membership = build_profiles(
            record_id, source, prepared, resolved.fields, clusters.labels, clusters.record_probability,
            clusters.oversized, codes_cache, threads=threads,
        )
        _check_membership(membership, profiles, record_id, source, clusters.labels)
        st.count(profiles=profiles.num_rows)

    pairs_table = None
    if write_pairs:
        ids = record_id
        if hash_pairs:
            key = hash_key.encode("utf-8") if isinstance(hash_key, str) else hash_key or secrets.token_bytes(32)
            ids = pa.array(keyed_record_hashes(source.to_numpy(), record_id.to_numpy(), key), pa.string())
        # the scored pairs leave the device only when asked for, in input record numbers, sorted
        out_left, out_right, by_input = _input_order_pairs(layout, to_host(left), to_host(right))
        out_left, out_right = pa.array(out_left), pa.array(out_right)
        pairs_table = pa.table({
            "left_record_id": ids.take(out_left).cast(pa.string()),
            "left_source": source.take(out_left).cast(pa.string()),
            "right_record_id": ids.take(out_right).cast(pa.string()),
            "right_source": source.take(out_right).cast(pa.string()),
            "pattern": pa.array(to_host(patterns)[by_input], pa.int32()),
            "match_weight": pa.array(to_host(weights)[by_input], pa.float64()),
            "match_probability": pa.array(to_host(probability)[by_input], pa.float64()),
        })

    manifest: dict[str, Any] = {
        "gpucdp_version": gpucdp.__version__,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "threads": threads,
        "backend": be.describe(),
        "inputs": [f.describe() for f in files],
        "records": n,
        "sources": {str(s): int(c) for s, c in zip(source_names, np.bincount(source_codes))},
        "unused_columns": unused,
        "settings": resolved.to_dict(),
        "standardize": std_stats,
        "blocking": block_counts,
        "model": {"lambda": fs_model.lam, "class_lambdas": [float(x) for x in fs_model.lambdas],
                  **fs_model.training},
        "cluster": clusters.stats,
        "profiles": profiles.num_rows,
        "stages": report.stages,
        "memory": budget.describe(),
        "pairs_record_ids": None if not write_pairs else "raw" if not hash_pairs else (
            "keyed hash, user key" if hash_key is not None else "keyed hash, random key not stored"),
        "peak_rss_bytes": peak_rss_bytes(),
        "device_memory": device.describe(),
    }
    if out is not None:
        with report.stage("write") as st:
            tables_out = {"profiles": profiles, "membership": membership}
            if pairs_table is not None:
                tables_out["pairs"] = pairs_table
            manifest["outputs"] = sorted([f"{k}.parquet" for k in tables_out] + ["model.json", "manifest.json"])
            write_outputs(out, tables_out, {"model": fs_model.to_dict(), "manifest": manifest}, overwrite=overwrite,
                          threads=threads)
            st.count(files=len(manifest["outputs"]))
        manifest["stages"] = report.stages
    if not report.quiet:
        report.console.print(report.summary_table(n))
    return ResolveResult(
        profiles=profiles,
        membership=membership,
        model=fs_model,
        manifest=manifest,
        pairs=pairs_table,
        out=Path(out) if out is not None else None,
        extra={"candidates": _input_numbers(layout, to_host(left), to_host(right), in_place=True)}
        if keep_candidates else {},
    )


def _input_numbers(layout: np.ndarray, left: np.ndarray, right: np.ndarray,
                   in_place: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Pairs in layout numbers → input record numbers, ``left < right`` (in the pairs' order).

    ``in_place`` reuses ``left`` and ``right`` (the run's last use of them): one extra array at the peak, not four.
    """
    if not in_place:
        left, right = layout[left], layout[right]
    else:
        np.take(layout, left, out=left)
        np.take(layout, right, out=right)
    lo = np.minimum(left, right)
    return lo, np.maximum(left, right, out=right)


def _input_order_pairs(layout: np.ndarray, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pairs in layout numbers → input record numbers, canonical and sorted: (left, right, order applied)."""
    left, right = _input_numbers(layout, left, right)
    order = np.lexsort((right, left))
    return left[order], right[order], order


def _pause_for_tests(report: Reporter) -> None:
    """Test hook: with GPUCDP_TEST_PAUSE_AT=STAGE:MARKER, write MARKER and sleep at the start of STAGE.

    tests/test_interrupt.py uses it to kill a run at a known stage; it does nothing when the variable is unset.
    """
    spec = os.environ.get("GPUCDP_TEST_PAUSE_AT")
    if not spec:
        return
    stage_name, marker = spec.split(":", 1)
    inner = report.stage

    @contextlib.contextmanager
    def stage(name: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
        if name == stage_name:
            Path(marker).write_text(name)
            time.sleep(3600)
        with inner(name, *args, **kwargs) as handle:
            yield handle

    report.stage = stage  # type: ignore[method-assign]


def _check_membership(membership: pa.Table, profiles: pa.Table, record_id: pa.ChunkedArray,
                      source: pa.ChunkedArray, labels: np.ndarray) -> None:
    """Every input record appears exactly once in membership, in a profile that exists: checked on every run.

    Membership is in input order, so "exactly once" is "row i is input record i" for every i. Profile ``k`` is
    cluster ``k``: each record's profile id must be that of its cluster's profile, and each profile's record
    count its cluster's size. (An elementwise comparison: looking 3M ids up in a set of 1.3M took 1.2 s.)
    """
    n = len(record_id)
    if membership.num_rows != n:
        raise InternalError(f"membership has {membership.num_rows} rows for {n} input records")
    for name, expected in (("record_id", record_id), ("source", source)):
        same = pc.equal(membership.column(name), expected.cast(membership.column(name).type))
        wrong = np.flatnonzero(~same.to_numpy(zero_copy_only=False)) if not pc.all(same).as_py() else []
        if len(wrong):
            raise InternalError(f"membership row {int(wrong[0])} is not input record {int(wrong[0])} ({name} differs; "
                                f"{len(wrong)} rows wrong)")
    if membership.column("profile_id").null_count:
        raise InternalError("a record has no profile id")
    k = profiles.num_rows
    counts = profiles.column("record_count").to_numpy()
    if (labels.size != n or (n and (int(labels.min()) < 0 or int(labels.max()) >= k))
            or not np.array_equal(np.bincount(labels, minlength=k), counts)):
        raise InternalError("membership and profiles disagree: a cluster has no profile, or a profile's record "
                            "count is not its cluster's size")
    expected_ids = profiles.column("profile_id").take(pa.array(labels))
    if not pc.all(pc.equal(membership.column("profile_id"), expected_ids)).as_py():
        raise InternalError("membership and profiles disagree: a record's profile id is not its cluster's profile "
                            "(a missing profile, or another cluster's)")
