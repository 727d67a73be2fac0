"""The GPU path on a real GPU: cuDF buffers, CuPy fallbacks, Numba CUDA kernels, cuGraph, FAISS-GPU, end to
end.

Every test is marked ``gpu`` and skips (per test, so a CPU run still collects them) when the piece it needs is
missing: CuPy + a device for the fallbacks, cuDF, cuGraph or a GPU build of FAISS for theirs. Each compares
against the CPU path, which the rest of the suite checks against oracles. ``bench/gpu_check.sh`` runs them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpucdp.backend import probe

INFO = probe()
LIBS = INFO["libraries"]
HAS_DEVICE = INFO["cuda_device"] is not None
needs_cupy = pytest.mark.skipif(not (HAS_DEVICE and LIBS["cupy"]), reason="needs CuPy and a CUDA GPU")
needs_cudf = pytest.mark.skipif(not (HAS_DEVICE and LIBS["cudf"]), reason="needs cuDF and a CUDA GPU")
needs_cugraph = pytest.mark.skipif(not (HAS_DEVICE and LIBS["cugraph"]),
                                   reason="needs cuGraph and a CUDA GPU")
needs_faiss_gpu = pytest.mark.skipif(not INFO["faiss_gpu"],
                                     reason="needs a GPU build of FAISS and a CUDA GPU")

pytestmark = pytest.mark.gpu

STRINGS = ["ann", None, "", "zoë", "robert smith", "x" * 300, "bob"]


def _unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _scipy_labels(n, left, right):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _same_partition(a, b) -> bool:
    pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist()))
    return len(pairs) == len(set(np.asarray(a).tolist())) == len(set(np.asarray(b).tolist()))


@needs_cudf
def test_cudf_string_buffers_are_the_columns_own_and_match_arrow():
    import cudf
    import cupy

    from gpucdp.backend import string_buffers
    from gpucdp.embed import pack_strings

    series = cudf.Series(STRINGS * 3)[2:]  # a slice: the column's offset must be honoured
    chars, offsets = string_buffers(series)
    assert isinstance(chars, cupy.ndarray) and isinstance(offsets, cupy.ndarray)
    got = [bytes(chars[int(offsets[i]):int(offsets[i + 1])].get()).decode() for i in range(len(series))]
    assert got == [s or "" for s in (STRINGS * 3)[2:]]
    d_chars, d_offsets = pack_strings([series, series], xp=cupy)
    h_chars, h_offsets = pack_strings([series.to_pandas(), series.to_pandas()])
    np.testing.assert_array_equal(d_chars.get(), h_chars)
    np.testing.assert_array_equal(d_offsets.get(), h_offsets)


@needs_cudf
def test_embed_from_cudf_on_the_device_matches_cpu():
    import cudf
    import cupy

    from gpucdp.embed import embed_records

    first = pd.Series(STRINGS * 50, dtype="str")
    second = pd.Series((STRINGS[::-1]) * 50, dtype="str")
    cpu = embed_records([first, second], [1.0, 0.5], dim=64, target="cpu")
    gpu = embed_records([cudf.from_pandas(first), cudf.from_pandas(second)], [1.0, 0.5], dim=64,
                        target="cuda", xp=cupy)
    assert isinstance(gpu, cupy.ndarray)
    np.testing.assert_allclose(gpu.get(), cpu, atol=1e-6)


@needs_cupy
def test_embed_from_pandas_with_cupy_matches_cpu():
    import cupy

    from gpucdp.embed import embed_records

    column = pd.Series(STRINGS * 50, dtype="str")
    cpu = embed_records([column], [1.0], dim=32, target="cpu")
    gpu = embed_records([column], [1.0], dim=32, target="cuda", xp=cupy)
    np.testing.assert_allclose(gpu.get(), cpu, atol=1e-6)


@needs_cupy
def test_gemm_topk_on_cupy_matches_numpy():
    import cupy

    from gpucdp.gpu import gemm_topk

    x = _unit_rows(20_000, 64, seed=0)
    want = gemm_topk(x, 5, xp=np, min_similarity=0.1)
    got = gemm_topk(cupy.asarray(x), 5, xp=cupy, min_similarity=0.1)
    key = lambda q, v: set(zip(np.asarray(q).tolist(), np.asarray(v).tolist()))  # noqa: E731
    want_pairs, got_pairs = key(*want[:2]), key(got[0].get(), got[1].get())
    # GEMM rounding on the two devices may swap neighbours tied at the k-th place: allow a handful
    assert len(want_pairs ^ got_pairs) <= 10


@needs_cupy
def test_cell_topk_on_cupy_finds_the_copies_at_scale():
    import cupy

    from gpucdp.gpu import cell_topk

    rng = np.random.default_rng(4)
    centres, copies = 400_000, 5
    x = np.repeat(rng.normal(size=(centres, 32)), copies, axis=0)
    x += 0.3 * rng.normal(size=(centres * copies, 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    query, nbr, _ = cell_topk(cupy.asarray(x), 5, xp=cupy, min_similarity=0.5)
    query, nbr = query.get(), nbr.get()
    same = (query // copies) == (nbr // copies)
    pairs = np.unique(np.minimum(query, nbr)[same] * len(x) + np.maximum(query, nbr)[same])
    assert pairs.size / (centres * copies * (copies - 1) // 2) > 0.9


@needs_cupy
def test_numba_cuda_components_match_scipy():
    import cupy

    from gpucdp.kernels.components import components_cuda

    rng = np.random.default_rng(1)
    for n, m in ((1, 0), (1000, 0), (100_000, 80_000), (1_000_000, 1_500_000)):
        left, right = rng.integers(0, n, m), rng.integers(0, n, m)
        labels = components_cuda(n, cupy.asarray(left), cupy.asarray(right), cupy)
        assert isinstance(labels, cupy.ndarray)
        assert _same_partition(labels.get(), _scipy_labels(n, left, right))
        # the pipeline's int32 pairs are read without a copy: the same labels
        narrow = components_cuda(n, cupy.asarray(left, dtype=cupy.int32), cupy.asarray(right, dtype=cupy.int32),
                                 cupy)
        assert bool((narrow == labels).all())


@needs_cugraph
def test_cugraph_components_match_scipy():
    from gpucdp.backend import _cugraph_components

    rng = np.random.default_rng(2)
    n = 200_000
    left, right = rng.integers(0, n, 150_000), rng.integers(0, n, 150_000)
    labels = _cugraph_components(n, left, right).get()
    assert labels.max() < 2 * n
    assert _same_partition(labels, _scipy_labels(n, left, right))


@needs_faiss_gpu
def test_faiss_gpu_knn_matches_cpu():
    import faiss

    from gpucdp.block import knn_pairs

    x = _unit_rows(50_000, 32, seed=3)
    cpu = knn_pairs(x, k=5, min_similarity=0.2, faiss=faiss, index="flat")
    gpu = knn_pairs(x, k=5, min_similarity=0.2, faiss=faiss, index="flat", use_gpu=True)
    cpu_pairs = set(zip(cpu[0].tolist(), cpu[1].tolist()))
    gpu_pairs = set(zip(gpu[0].tolist(), gpu[1].tolist()))
    assert len(cpu_pairs ^ gpu_pairs) <= 0.001 * len(cpu_pairs)


@needs_faiss_gpu
def test_faiss_gpu_graph_index_past_the_exact_limit_finds_the_copies(monkeypatch):
    import faiss

    from gpucdp import block

    rng = np.random.default_rng(5)
    x = np.repeat(rng.normal(size=(20_000, 32)), 5, axis=0) + 0.3 * rng.normal(size=(100_000, 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    monkeypatch.setattr(block, "GPU_EXACT_MAX", 50_000)  # CAGRA (or IVF-Flat) instead of exact
    left, right, sim = block.knn_pairs(x, k=5, min_similarity=0.5, faiss=faiss, use_gpu=True)
    np.testing.assert_allclose(sim, np.einsum("ij,ij->i", x[left], x[right]), atol=1e-3)
    same = (left // 5) == (right // 5)
    assert same.sum() / (20_000 * 10) > 0.9


@needs_cupy
def test_device_memory_peaks_from_the_cupy_pool():
    import cupy

    from gpucdp.gpu import DeviceMemory

    memory = DeviceMemory(cupy)
    free, total = memory.info()
    assert 0 < free <= total
    with memory.stage("alloc"):
        block = cupy.zeros(64 << 20, dtype=cupy.uint8)
        del block
    assert memory.describe()["peak_bytes_by_stage"]["alloc"] >= 64 << 20


@needs_cupy
@pytest.mark.parametrize("knn", [False, True])
def test_cpu_and_gpu_paths_give_the_same_clusters(knn):
    from gpucdp import synth
    from gpucdp.pipeline import resolve

    records, _ = synth.generate_frame(4000, seed=7)
    settings = {"blocking": {"knn": {"enabled": knn}}}
    cpu = resolve(records, settings=settings, backend="cpu")
    gpu = resolve(records, settings=settings, backend="gpu")
    assert gpu.manifest["backend"]["name"] == "gpu"
    assert gpu.manifest["device_memory"]["peak_bytes"] > 0
    merged = cpu.membership.merge(gpu.membership, on=["source", "record_id"], suffixes=("_cpu", "_gpu"))
    assert len(merged) == 4000
    same = (merged["profile_id_cpu"] == merged["profile_id_gpu"]).mean()
    if not knn:  # key rules, comparison, model and clusters: exactly the CPU's results
        assert cpu.manifest["blocking"]["candidate_pairs"] == gpu.manifest["blocking"]["candidate_pairs"]
        assert same == 1.0 and cpu.model.to_dict() == gpu.model.to_dict()
        return
    # kNN: FAISS on the CPU and FAISS-GPU or the CuPy GEMM may break ties at the k-th neighbour differently
    # (tests/test_device_flow.py met one on 3,000 records), and so may the model trained on the pairs
    cpu_pairs, gpu_pairs = (r.manifest["blocking"]["candidate_pairs"] for r in (cpu, gpu))
    assert abs(cpu_pairs - gpu_pairs) <= 0.005 * cpu_pairs
    assert same >= 0.99


@needs_cupy
@pytest.mark.parametrize("linkage", ["average", "single"])
def test_cluster_stage_on_cupy_matches_the_host_within_its_estimate(linkage):
    # The cluster stage's device branch (chunked masks, unique/bincount, the .at scatters, the guard's
    # renumbering) against the host's Numba passes; and its memory estimate against CuPy's own pool.
    import cupy
    from test_cluster import _people_graph

    from gpucdp.backend import get_backend
    from gpucdp.cluster import cluster_pairs

    n, left, right, probability = _people_graph(20_000, seed=4)
    options = {"threshold": 0.9, "max_cluster_size": 6, "split_oversized": True, "linkage": linkage}
    host = cluster_pairs(n, left, right, probability, backend=get_backend("cpu"), **options)
    pool = cupy.get_default_memory_pool()
    pairs = cupy.asarray(left), cupy.asarray(right), cupy.asarray(probability)
    pool.free_all_blocks()
    held = pool.used_bytes()
    estimates = []
    device = cluster_pairs(n, *pairs, backend=get_backend("gpu"), chunk_size=50_000,
                           need=lambda working_set, **counts: estimates.append(working_set), **options)
    cupy.cuda.Device().synchronize()
    assert host.stats["guard_rounds"] > 0
    assert np.array_equal(device.labels, host.labels) and device.stats == host.stats
    np.testing.assert_array_equal(device.record_probability, host.record_probability)
    assert pool.total_bytes() - held <= max(estimates)
