"""The GPU path's fallbacks, checked where CI runs: on numpy, under the CUDA simulator, with made-up probes.

- :func:`gpucdp.gpu.gemm_topk` (kNN without FAISS-GPU) against FAISS's exact search and a numpy brute force;
- the hooking + pointer-jumping components (without cuGraph) against SciPy, on the CPU twin and, under the
  simulator, the CUDA twin;
- the comparison stage's device-side chunking against the CPU kernel, under the simulator;
- the backend plan for "cupy + numba only", "full RAPIDS" and "nothing", and what ``gpucdp info`` prints;
- the device memory helpers, with a stand-in for CuPy's memory API.
"""

from __future__ import annotations

import types

import numpy as np
import pandas
import pytest
from cuda_support import SIMULATOR, compile_ptx, simulate
from gpucdp.kernels.components import components_cpu, union_find
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strict_xp import StrictXP

from gpucdp import backend as backend_module
from gpucdp.backend import plan_backend
from gpucdp.errors import BackendUnavailableError
from gpucdp.gpu import DeviceMemory, cell_topk, check_device_fits, gemm_topk, rows_per_chunk


def _unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _neighbour_sets(query, nbr, n):
    sets = [set() for _ in range(n)]
    for q, v in zip(np.asarray(query).tolist(), np.asarray(nbr).tolist()):
        sets[q].add(v)
    return sets


# ---- kNN by GEMM + top-k

@pytest.mark.parametrize("device", [False, True])
@pytest.mark.parametrize("n, k, batch", [(500, 5, None), (257, 3, 64), (4, 10, 2), (300, 40, 100)])
def test_gemm_topk_matches_brute_force(n, k, batch, device):
    x = _unit_rows(n, 16, seed=n)
    if device:  # the CuPy stand-in: top-k by maxima up to 32 neighbours, by CuPy's full sort above
        xp = StrictXP()
        found = gemm_topk(xp.asarray(x), k, xp=xp, min_similarity=-1.0, batch=batch)
        query, nbr, sim = (a.get() for a in found)
    else:
        query, nbr, sim = gemm_topk(x, k, xp=np, min_similarity=-1.0, batch=batch)
    full = x @ x.T
    np.fill_diagonal(full, -np.inf)
    kk = min(k, n - 1)
    expected = np.argsort(-full, axis=1, kind="stable")[:, :kk]
    got = _neighbour_sets(query, nbr, n)
    for i in range(n):
        assert got[i] == set(expected[i].tolist()), i
    np.testing.assert_allclose(sim, np.einsum("ij,ij->i", x[query], x[nbr]), rtol=1e-5, atol=1e-6)
    assert query.dtype == np.int64 and nbr.dtype == np.int64 and sim.dtype == np.float32


def test_gemm_topk_matches_faiss_exact_search_and_floor():
    faiss = pytest.importorskip("faiss")
    x = _unit_rows(2000, 32, seed=1)
    index = faiss.IndexFlatIP(32)
    index.add(x)
    sims, nbrs = index.search(x, 6)
    query, nbr, sim = gemm_topk(x, 5, xp=np, min_similarity=0.2)
    got = _neighbour_sets(query, nbr, 2000)
    for i in range(2000):
        want = {int(j) for j, s in zip(nbrs[i], sims[i]) if j != i and s >= 0.2}
        # FAISS may order ties differently: compare up to neighbours at the k-th similarity
        assert want - got[i] <= {int(j) for j, s in zip(nbrs[i], sims[i]) if abs(s - sims[i][-1]) < 1e-6}, i
    assert (sim >= 0.2).all() and (query != nbr).all()


def test_knn_pairs_with_xp_equals_faiss_flat():
    faiss = pytest.importorskip("faiss")
    from gpucdp.block import knn_pairs

    x = _unit_rows(3000, 16, seed=2)
    x[5] = x[7]  # identical records are searched once
    x[100] = 0  # a record with no field pairs with nothing
    flat = knn_pairs(x, k=5, min_similarity=0.3, faiss=faiss, index="flat")
    gemm = knn_pairs(x, k=5, min_similarity=0.3, faiss=faiss, xp=np)
    np.testing.assert_array_equal(flat[0], gemm[0])
    np.testing.assert_array_equal(flat[1], gemm[1])
    np.testing.assert_allclose(flat[2], gemm[2], atol=1e-5)
    assert (5, 7) in set(zip(gemm[0].tolist(), gemm[1].tolist()))
    assert 100 not in set(gemm[0].tolist()) | set(gemm[1].tolist())


def _clustered_rows(centers: int, copies: int, dim: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.repeat(rng.normal(size=(centers, dim)), copies, axis=0)
    x += noise * rng.normal(size=(centers * copies, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_cell_topk_finds_what_exact_search_finds():
    x = _clustered_rows(2000, 5, 32, 0.3, seed=4)  # rows 5i..5i+4 are copies of one centre, cos ~0.92
    query, nbr, sim = cell_topk(x, 5, xp=np, min_similarity=0.5, cell_size=256)
    assert (query != nbr).all() and (sim >= 0.5).all()
    np.testing.assert_allclose(sim, np.einsum("ij,ij->i", x[query], x[nbr]), atol=1e-5)
    found = {(min(a, b), max(a, b)) for a, b in zip(query.tolist(), nbr.tolist())}
    siblings = {(i, j) for c in range(2000) for i in range(5 * c, 5 * c + 5) for j in range(i + 1, 5 * c + 5)}
    # measured 0.94 here; the CPU cell join (index="cells", one cell per row) found 0.56 on the same data
    assert len(found & siblings) / len(siblings) > 0.9


def test_cell_topk_small_inputs_are_exact():
    x = _unit_rows(600, 8, seed=5)
    exact = gemm_topk(x, 4, xp=np, min_similarity=0.0)
    cells = cell_topk(x, 4, xp=np, min_similarity=0.0, cell_size=256)
    for a, b in zip(exact, cells):
        np.testing.assert_array_equal(a, b)


def test_knn_pairs_with_xp_uses_cells_past_the_exact_limit(monkeypatch):
    faiss = pytest.importorskip("faiss")
    from gpucdp import block

    x = _clustered_rows(1000, 4, 16, 0.2, seed=6)
    monkeypatch.setattr(block, "EXACT_MAX", 1000)
    monkeypatch.setattr(block, "GPU_EXACT_MAX", 1000)  # 4000 distinct vectors: past them all
    monkeypatch.setattr(block, "CUPY_EXACT_MAX", 1000)
    calls = []
    monkeypatch.setattr("gpucdp.gpu.cell_topk", lambda *a, **kw: calls.append(1) or cell_topk(*a, **kw))
    left, right, _ = block.knn_pairs(x, k=4, min_similarity=0.5, faiss=faiss, xp=np)
    assert calls and left.size and (left < right).all()


# ---- connected components

def _scipy_labels(n, left, right):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _same_partition(a, b):
    # two labelings are the same partition when the pairs (a, b) are a bijection between their labels
    pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist()))
    return len(pairs) == len(set(np.asarray(a).tolist())) == len(set(np.asarray(b).tolist()))


@st.composite
def graphs(draw):
    n = draw(st.integers(1, 60))
    m = draw(st.integers(0, 3 * n))
    ends = st.integers(0, n - 1)
    edges = draw(st.lists(st.tuples(ends, ends), min_size=m, max_size=m))
    left = np.array([e[0] for e in edges], dtype=np.int64)
    right = np.array([e[1] for e in edges], dtype=np.int64)
    return n, left, right


@settings(max_examples=200, deadline=None)
@given(graphs())
@example((1, np.zeros(0, np.int64), np.zeros(0, np.int64)))  # one vertex, no edge
@example((5, np.array([0, 1, 2, 3], np.int64), np.array([0, 1, 2, 3], np.int64)))  # self loops only
@example((6, np.array([5, 4, 3, 2, 1], np.int64), np.array([4, 3, 2, 1, 0], np.int64)))  # a path, high to low
@example((4, np.array([0, 0, 1, 1], np.int64), np.array([1, 1, 0, 0], np.int64)))  # repeated edges
def test_components_cpu_matches_scipy(graph):
    n, left, right = graph
    labels = components_cpu(n, left, right)
    assert _same_partition(labels, _scipy_labels(n, left, right))
    # each vertex is labelled with the smallest vertex of its component
    for label in set(labels.tolist()):
        assert label == np.flatnonzero(labels == label).min()
    # the CPU backend's union-find gives the very same labels, from int64 or int32 edges
    np.testing.assert_array_equal(union_find(n, left, right), labels)
    np.testing.assert_array_equal(union_find(n, left.astype(np.int32), right.astype(np.int32)), labels)


@pytest.mark.parametrize("descending", [True, False])
def test_union_find_on_a_long_chain(descending):
    # one component of 100k vertices whose edges, seen twice, build the longest parent chains a find without
    # path compression would walk again for every edge (the hooking twin needs minutes here)
    n = 100_000
    a = np.arange(1, n)
    if descending:
        a = a[::-1]
    left, right = np.concatenate([a, a - 1]), np.concatenate([a - 1, a])
    labels = union_find(n, left, right)
    assert labels.dtype == np.int64 and not labels.any()


def test_components_cpu_on_a_large_random_graph():
    rng = np.random.default_rng(3)
    n = 20_000
    left, right = rng.integers(0, n, 15_000), rng.integers(0, n, 15_000)
    labels = components_cpu(n, left, right)
    assert _same_partition(labels, _scipy_labels(n, left, right))
    # the pipeline's int32 pairs: read as they are, the same int64 labels
    narrow = components_cpu(n, left.astype(np.int32), right.astype(np.int32))
    assert narrow.dtype == np.int64 and np.array_equal(narrow, labels)


def check_components_cuda_matches_cpu(seed: int = 0) -> None:
    """Random small graphs through the CUDA twin (simulator or GPU) and the CPU twin: equal labels."""
    from gpucdp.kernels.components import components_cuda

    rng = np.random.default_rng(seed)
    for n, m in ((1, 0), (12, 0), (25, 20), (40, 60)):
        left, right = rng.integers(0, n, m).astype(np.int64), rng.integers(0, n, m).astype(np.int64)
        np.testing.assert_array_equal(components_cuda(n, left, right), components_cpu(n, left, right))


def check_compare_chunks_on_cuda_match_cpu() -> None:
    """compare_in_chunks with target="cuda" (columns copied to the device once) equals the CPU path."""
    import test_compare_stage as stage

    from gpucdp.compare import build_tables, compare_in_chunks, prepare_columns

    frame = stage._frame(60, seed=4)
    rng = np.random.default_rng(5)
    left, right = rng.integers(0, 60, 90), rng.integers(0, 60, 90)
    for comps in (stage._comparisons(), stage._comparisons()[:1]):  # the second has no numeric column
        columns = prepare_columns(frame, comps)
        tables = build_tables(comps, columns)
        cpu = compare_in_chunks(left, right, columns, tables, chunk_size=1000)
        cuda = compare_in_chunks(left, right, columns, tables, chunk_size=1000, target="cuda")
        np.testing.assert_array_equal(cpu, cuda)


def _in_simulator(function: str) -> None:
    simulate("test_gpu_fallbacks", f"{function}()")


@pytest.mark.cuda
def test_components_cuda_matches_cpu_in_simulator():
    _in_simulator("check_components_cuda_matches_cpu")


@pytest.mark.cuda
def test_compare_chunks_on_cuda_match_cpu_in_simulator():
    _in_simulator("check_compare_chunks_on_cuda_match_cpu")


@pytest.mark.cuda
@pytest.mark.skipif(SIMULATOR, reason="PTX compilation needs the real numba.cuda, not the simulator")
def test_components_kernels_compile_to_ptx(monkeypatch):
    pytest.importorskip("numba.cuda")
    from gpucdp.kernels import components
    from numba import types as nt

    hook_sig = (nt.int64[::1], nt.int64[::1], nt.int64[::1], nt.int32[::1])
    for kernel, signature in ((components._hook_edges, hook_sig), (components._jump, (nt.int64[::1],))):
        ptx = compile_ptx(monkeypatch, kernel.py_func, signature)
        assert ".visible .entry" in ptx and ".target sm_90" in ptx
        if kernel is components._hook_edges:
            assert "atom.global.min.s64" in ptx


# ---- backend plan

def _probe(*present: str, device: str | None = "NVIDIA H200", faiss_gpu: bool = False) -> dict:
    names = ["numpy", "pandas", "pyarrow", "numba", "faiss", "cupy", "cudf", "cugraph", "numba_cuda"]
    base = {"numpy", "pandas", "pyarrow", "numba"}
    return {
        "libraries": {name: "1.0" if name in base or name in present else None for name in names},
        "cuda_device": device,
        "cuda_reason": None if device else "numba sees no CUDA device or driver",
        "faiss_gpu": faiss_gpu,
    }


def test_plan_cupy_and_numba_only_runs_on_the_gpu_with_fallbacks():
    plan = plan_backend("auto", _probe("cupy", "numba_cuda", "faiss"))
    assert plan.name == "gpu" and "without cudf, cugraph, faiss-gpu" in plan.reason
    assert plan.describe() == {"frames": "pandas", "arrays": "cupy", "kernels": "numba-cuda",
                               "kNN": "cupy-gemm", "components": "numba-cuda-components"}
    lines = plan.lines()
    assert ("kNN: CuPy GEMM top-k, exact up to 500k distinct vectors, in k-means cells above "
            "(faiss-gpu not installed)") in lines
    assert "frames: pandas on the host (cuDF not installed)" in lines
    assert "components: Numba CUDA hooking + pointer jumping on the GPU (cuGraph not installed)" in lines


def test_plan_full_rapids():
    plan = plan_backend("gpu", _probe("cupy", "numba_cuda", "faiss", "cudf", "cugraph", faiss_gpu=True))
    assert plan.name == "gpu" and plan.reason.endswith("cudf, cugraph, faiss-gpu")
    assert plan.describe() == {"frames": "cudf", "arrays": "cupy", "kernels": "numba-cuda",
                               "kNN": "faiss-gpu", "components": "cugraph"}
    assert not any("not installed" in line for line in plan.lines())  # no fallback, so no reason given


def test_plan_names_why_an_installed_faiss_gpu_is_not_used():
    info = _probe("cupy", "numba_cuda", "faiss", "cudf", "cugraph")
    info["faiss_gpu_reason"] = "faiss-gpu failed a test search (RuntimeError: no kernel image)"
    plan = plan_backend("gpu", info)
    assert plan.describe()["kNN"] == "cupy-gemm"
    assert any(line.startswith("kNN: CuPy GEMM") and line.endswith("(faiss-gpu failed a test search "
                                                                    "(RuntimeError: no kernel image))")
               for line in plan.lines())


class _FakeGpuFaiss:
    """What ``_faiss_gpu_fails`` calls of a GPU build of FAISS: a GPU count and an exact index."""

    def __init__(self, gpus=1, fail=None, shift=0):
        self.gpus, self.fail, self.shift = gpus, fail, shift

    def get_num_gpus(self):
        return self.gpus

    def StandardGpuResources(self):
        return object()

    def GpuIndexFlatIP(self, resources, dim):
        fake, rows = self, []

        class Index:
            def add(self, x):
                rows.append(np.asarray(x))

            def search(self, x, k):
                if fake.fail:
                    raise RuntimeError(fake.fail + "\nmore detail")
                sims = x @ np.concatenate(rows).T
                return None, (np.argsort(-sims, axis=1, kind="stable")[:, :k] + fake.shift) % len(sims[0])

        return Index()


def test_faiss_gpu_is_used_only_when_a_test_search_works():
    assert backend_module._faiss_gpu_fails(_FakeGpuFaiss()) is None
    assert backend_module._faiss_gpu_fails(_FakeGpuFaiss(gpus=0)) == "faiss-gpu sees no GPU"
    reason = backend_module._faiss_gpu_fails(_FakeGpuFaiss(fail="CUDA error: no kernel image is available"))
    assert reason == "faiss-gpu failed a test search (RuntimeError: CUDA error: no kernel image is available)"
    assert "wrong neighbours" in backend_module._faiss_gpu_fails(_FakeGpuFaiss(shift=1))


def test_plan_nothing_falls_back_to_cpu_and_gpu_names_what_is_missing(monkeypatch):
    info = _probe(device=None)
    plan = plan_backend("auto", info)
    assert plan.name == "cpu" and plan.describe()["kNN"] == "numpy-gemm"
    assert plan.reason == ("auto: CPU, because the GPU stack lacks cupy, numba_cuda, a CUDA device "
                           "(numba sees no CUDA device or driver)")
    monkeypatch.setattr(backend_module, "probe", lambda: info)
    missing = r"missing cupy, numba_cuda, a CUDA device .*gpucdp\[gpu\]"
    with pytest.raises(BackendUnavailableError, match=missing):
        backend_module.get_backend("gpu")
    assert backend_module.get_backend("auto").plan.describe()["components"] == "numba-union-find"


def test_plan_cupy_without_a_device_stays_on_the_cpu():
    plan = plan_backend("auto", _probe("cupy", "numba_cuda", "cudf", "cugraph", device=None))
    assert plan.name == "cpu" and plan.missing == ["a CUDA device (numba sees no CUDA device or driver)"]


def test_info_prints_the_plan(monkeypatch, capsys):
    from gpucdp.cli import main

    monkeypatch.setattr(backend_module, "probe", lambda: _probe("cupy", "numba_cuda", "faiss"))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backend: gpu" in out and "NVIDIA H200" in out
    assert "kNN: CuPy GEMM top-k" in out and "(faiss-gpu not installed)" in out
    assert "components: Numba CUDA hooking + pointer jumping on the GPU (cuGraph not installed)" in out


# ---- device memory

class _FakePool:
    def __init__(self):
        self.held = 0
        self.freed = 0

    def free_all_blocks(self):
        self.freed += 1
        self.held = 0

    def total_bytes(self):
        return self.held


def _fake_cupy(pool, free=6 << 30, total=8 << 30):
    runtime = types.SimpleNamespace(memGetInfo=lambda: (free, total))
    device = types.SimpleNamespace(synchronize=lambda: None)
    cuda = types.SimpleNamespace(runtime=runtime, Device=lambda: device)
    return types.SimpleNamespace(cuda=cuda, get_default_memory_pool=lambda: pool)


def test_device_memory_records_each_stage_peak():
    pool = _FakePool()
    memory = DeviceMemory(_fake_cupy(pool))
    with memory.stage("embed"):
        pool.held = 3 << 20
    with memory.stage("knn"):
        assert pool.held == 0  # free blocks released at the start of a stage
        pool.held = 7 << 20
    doc = memory.describe()
    assert doc["peak_bytes_by_stage"] == {"embed": 3 << 20, "knn": 7 << 20} and doc["peak_bytes"] == 7 << 20
    assert doc["free_bytes"] == 6 << 30 and doc["total_bytes"] == 8 << 30


def test_device_memory_is_a_no_op_on_the_cpu():
    memory = DeviceMemory(np)
    with memory.stage("embed"):
        pass
    assert memory.describe() == {} and memory.info() == (0, 0) and not memory.on_device


def test_a_run_that_cannot_fit_fails_early_saying_what_to_change():
    check_device_fits(1000, 1000, free_bytes=10 << 20, total_bytes=80 << 30)  # fits: no error
    with pytest.raises(BackendUnavailableError) as caught:
        check_device_fits(100_000_000, 2_000, free_bytes=40 << 30, total_bytes=80 << 30)
    message = str(caught.value)
    assert "186.3 GiB" in message and "40.0 of 80.0 GiB free" in message
    assert "21,474,836 records fit" in message
    assert "--backend cpu" in message and "blocking.knn.dim" in message
    assert caught.value.exit_code == 2


def test_rows_per_chunk_is_bounded():
    assert rows_per_chunk(8 << 30, 32) == (8 << 30) // 4 // 32
    assert rows_per_chunk(0, 32) == 1024
    assert rows_per_chunk(1 << 50, 1) == 1 << 26


def test_pipeline_without_faiss_uses_the_xp_search_and_finds_the_same_pairs(monkeypatch):
    from gpucdp import synth
    from gpucdp.pipeline import resolve

    records, _ = synth.generate_frame(3000, seed=8)
    settings = {"blocking": {"knn": {"enabled": True}}}
    with_faiss = resolve(records, settings=settings, backend="cpu")
    info = backend_module.probe()
    info["libraries"]["faiss"] = None
    monkeypatch.setattr(backend_module, "probe", lambda: info)
    without = backend_module.get_backend("cpu")
    assert without.faiss is None and without.knn == "numpy-gemm"
    result = resolve(records, settings=settings, backend=without)
    assert result.manifest["backend"]["plan"]["kNN"] == "numpy-gemm"
    assert result.manifest["blocking"]["knn_pairs"] == with_faiss.manifest["blocking"]["knn_pairs"] > 0
    assert (result.membership["profile_id"] == with_faiss.membership["profile_id"]).all()


def test_a_gpu_run_that_cannot_fit_stops_before_any_work(tmp_path):
    from gpucdp import synth
    from gpucdp.backend import Backend
    from gpucdp.pipeline import resolve

    pool = _FakePool()
    tiny = Backend(name="gpu", xp=_fake_cupy(pool, free=1 << 20, total=80 << 30), xdf=pandas, faiss=None,
                   faiss_gpu=False, kernel_target="cuda", reason="a GPU with 1 MiB free")
    records, _ = synth.generate_frame(2000, seed=9)
    with pytest.raises(BackendUnavailableError, match=r"2,000 records need about .* GiB of GPU memory"):
        resolve(records, out=tmp_path / "out", backend=tiny)
    assert not (tmp_path / "out").exists() and pool.freed == 0  # stopped in the read stage, nothing written
