"""The GPU backend's data flow, run where CI runs: :func:`gpucdp.resolve` with a strict stand-in for CuPy.

The GPU path has stages that only a GPU runs for real (CuPy arrays, Numba CUDA launches). Here the backend is
the GPU one in everything but the hardware: its array module is :class:`strict_xp.StrictXP`, which refuses
implicit device → host copies, host arrays in device operations and calls CuPy does not have, and logs every
explicit copy; the four kernel launches (block keys, string layout, comparison, embedding) and connected
components run their CPU twins on the stand-in's buffers, as the device would. So a run checks that

- the GPU path gives exactly the CPU path's results (profiles, membership, model);
- candidate pairs, their patterns, weights and probabilities never come back to the host: every device → host
  copy is per record (labels, embeddings for kNN) or per distinct pattern — unless the pairs are asked for;
- the device memory checks see the per-pair stages and stop one that cannot fit.
"""

from __future__ import annotations

import gpucdp.kernels.device
import numpy as np
import pytest
from gpucdp.kernels.compare import METHODS, STRING_METHODS
from gpucdp.kernels.compare import compare_pairs as compare_pairs_cpu
from gpucdp.kernels.components import components_cpu
from gpucdp.kernels.layout import layout_cpu
from gpucdp.kernels.pairs import block_keys_cpu
from strict_xp import DeviceArray, StrictXP

import gpucdp.block
import gpucdp.compare
import gpucdp.embed
from gpucdp import memory, synth
from gpucdp.backend import Backend, plan_backend
from gpucdp.block import knn_pairs
from gpucdp.errors import MemoryBudgetError
from gpucdp.pipeline import resolve

N_RECORDS = 3000


def _plan():
    libraries = {name: "1.0" for name in ("numpy", "pandas", "pyarrow", "numba", "faiss", "cupy",
                                          "numba_cuda")}
    libraries.update(cudf=None, cugraph=None)
    return plan_backend("gpu", {"libraries": libraries, "cuda_device": "stand-in", "cuda_reason": None,
                                "faiss_gpu": False})


@pytest.fixture
def device(monkeypatch):
    """A GPU backend on the stand-in: (backend, xp). The kernels run their CPU twins on the device buffers."""
    xp = device_xp = StrictXP()
    xp.launches = []  # the launches of the string layout and block-key kernels

    def host_view(a):  # what a kernel reads on the device: no transfer is logged
        return a._a if isinstance(a, DeviceArray) else a

    def as_device(a, dtype=None):
        return a if isinstance(a, DeviceArray) else xp.asarray(np.ascontiguousarray(a, dtype=dtype))

    def compare_pairs(*args, target="cpu", xp=None):
        if target == "cpu":  # the CPU run beside it
            return compare_pairs_cpu(*args, target="cpu")
        assert xp is device_xp  # outputs allocated in the device pool, where the peak sees them
        gamma, pattern = compare_pairs_cpu(*[host_view(a) for a in args], target="cpu")
        return xp.asarray(gamma), xp.asarray(pattern)

    def layout_cuda(chars, offsets, dst, out):
        xp.launches.append("layout")
        assert all(isinstance(a, DeviceArray) for a in (chars, offsets, dst, out))
        layout_cpu(host_view(chars), host_view(offsets), host_view(dst), host_view(out))

    def embed_cuda(kernels, chars, offsets, weights, dim, q, n, xp_):
        out = np.empty((n, dim), dtype=np.float32)
        kernels.embed_cpu(host_view(chars), host_view(offsets), weights, dim, q, out)
        return DeviceArray(out, xp)

    def block_keys_cuda(members, starts, sizes, offsets, n, out):
        xp.launches.append("block keys")
        assert all(isinstance(a, DeviceArray) for a in (members, starts, sizes, offsets, out))
        block_keys_cpu(*(host_view(a) for a in (members, starts, sizes, offsets)), n, host_view(out))

    def components(n, left, right):
        assert isinstance(left, DeviceArray) and isinstance(right, DeviceArray)
        return DeviceArray(components_cpu(n, host_view(left), host_view(right)), xp)

    monkeypatch.setattr(gpucdp.kernels.device, "as_device", as_device)
    monkeypatch.setattr(gpucdp.compare, "compare_pairs", compare_pairs)
    monkeypatch.setattr(gpucdp.compare, "_layout_cuda", layout_cuda)
    monkeypatch.setattr(gpucdp.block, "_block_keys_cuda", block_keys_cuda)
    monkeypatch.setattr(gpucdp.embed, "_embed_cuda", embed_cuda)
    import faiss
    import pandas

    plan = _plan()
    backend = Backend(name="gpu", xp=xp, xdf=pandas, faiss=faiss, faiss_gpu=False, kernel_target="cuda",
                      reason=plan.reason, components_impl=components, plan=plan)
    return backend, xp


@pytest.fixture(scope="module")
def records():
    frame, _ = synth.generate_frame(N_RECORDS, seed=11, difficulty=0.5)
    return frame


def _per_pair_copies(xp: StrictXP, n_pairs: int, n_records: int) -> list:
    """Device → host copies of a per-pair length (no per-record array of this input has that length)."""
    assert n_pairs != n_records
    return [t for t in xp.host_transfers() if t.shape and t.shape[0] == n_pairs]


CASES = {
    "key rules": {"blocking": {"knn": {"enabled": False}}},
    "key rules and kNN": {"blocking": {"knn": {"enabled": True}}},
    # across sources only, and a cluster cap so low that the over-merge guard runs its rounds on the device
    # (without kNN: on this input a record's 5th and 6th neighbours tie exactly, and FAISS and the GEMM
    # fallback break the tie differently, which is allowed)
    "link mode, guard": {"mode": "link", "blocking": {"knn": {"enabled": False}},
                         "cluster": {"max_cluster_size": 2}},
}


@pytest.mark.parametrize("case", CASES)
def test_gpu_flow_matches_the_cpu_and_keeps_pairs_on_the_device(device, records, case):
    backend, xp = device
    settings = CASES[case]
    cpu = resolve(records, settings=settings, backend="cpu")
    gpu = resolve(records, settings=settings, backend=backend)

    assert gpu.manifest["backend"]["name"] == "gpu"
    for table in ("profiles", "membership"):
        cpu_table, gpu_table = getattr(cpu, table), getattr(gpu, table)
        assert cpu_table.equals(gpu_table), table
    assert cpu.model.to_dict() == gpu.model.to_dict()
    assert gpu.manifest["blocking"]["candidate_pairs"] == cpu.manifest["blocking"]["candidate_pairs"]

    # each key rule's pairs are written by the block-key kernel on the device (a launch per rule that makes
    # pairs); then each string column the comparisons read is laid out once, on the device (a launch per
    # column), for the candidate and the random pairs alike
    rules = [r for r in gpu.manifest["blocking"]["rules"] if r["blocks"]]
    string_columns = {level["column"] for comp in gpu.manifest["settings"]["comparisons"]
                      for level in comp["levels"] if METHODS[level["method"]] in STRING_METHODS}
    assert rules and xp.launches == ["block keys"] * len(rules) + ["layout"] * len(string_columns)
    n_pairs = gpu.manifest["blocking"]["candidate_pairs"]
    assert n_pairs > 2 * N_RECORDS  # enough pairs that a per-pair copy would stand out
    assert _per_pair_copies(xp, n_pairs, N_RECORDS) == []
    # everything that did come back is per record or smaller
    copied = sum(t.nbytes for t in xp.host_transfers())
    assert max(t.nbytes for t in xp.host_transfers()) <= 8 * N_RECORDS
    assert copied < 100 * N_RECORDS
    # the device checks saw the per-pair stages
    estimates = gpu.manifest["device_memory"]["estimates"]
    assert {"block", "compare", "model", "cluster"} <= set(estimates)
    assert estimates["cluster"]["scored_pairs"] == n_pairs and estimates["cluster"]["kept"] > 0
    assert estimates["compare"]["candidate_pairs"] == n_pairs
    assert gpu.manifest["device_memory"]["peak_bytes_by_stage"]["compare"] > 0
    if "cluster" in settings:
        assert gpu.manifest["cluster"]["guard_rounds"] > 0 and gpu.manifest["cluster"]["guard_clusters_split"] > 0
    assert gpu.manifest["cluster"] == cpu.manifest["cluster"]


def test_a_trained_model_is_reused_on_the_device(device, records):
    backend, xp = device
    settings = {"blocking": {"knn": {"enabled": False}}}
    trained = resolve(records.iloc[: N_RECORDS // 2], settings=settings, backend="cpu").model
    cpu = resolve(records, settings=settings, backend="cpu", model=trained)
    gpu = resolve(records, settings=settings, backend=backend, model=trained)
    assert cpu.membership.equals(gpu.membership) and cpu.profiles.equals(gpu.profiles)
    assert gpu.model.to_dict() == trained.to_dict()
    assert _per_pair_copies(xp, gpu.manifest["blocking"]["candidate_pairs"], N_RECORDS) == []


def test_asking_for_the_pairs_brings_them_back(device, records):
    # the check above can fail: scored pairs do cross to the host when the user asks for them
    backend, xp = device
    settings = {"blocking": {"knn": {"enabled": False}}}
    cpu = resolve(records, settings=settings, backend="cpu", write_pairs=True)
    gpu = resolve(records, settings=settings, backend=backend, write_pairs=True)
    n_pairs = gpu.manifest["blocking"]["candidate_pairs"]
    assert len(_per_pair_copies(xp, n_pairs, N_RECORDS)) >= 5  # left, right, pattern, weight, probability
    assert cpu.pairs.equals(gpu.pairs)


def test_a_device_too_small_for_the_pairs_stops_before_blocking_them(device, records):
    backend, xp = device
    # the records fit (the check before any work passes), the ~N²/50 pairs of a rule on first initials do not
    xp.device_bytes = 5_000_000
    settings = {"blocking": {"knn": {"enabled": False}, "rules": [["first_name__initial"]],
                             "max_block_size": N_RECORDS}}
    with pytest.raises(MemoryBudgetError,
                       match=r"block stage needs about .* GB of GPU memory .*rule \['first_name__initial'\]"):
        resolve(records, settings=settings, backend=backend)
    xp.device_bytes = 8 * 2**30
    assert resolve(records, settings=settings, backend=backend).manifest["blocking"]["candidate_pairs"] > 20 * N_RECORDS


def test_a_device_too_small_to_cluster_stops_before_the_pairs_between_groups(device, records, monkeypatch,
                                                                             tmp_path):
    # every stage before fits; the pairs between groups that average linkage weighs are made to cost 1 TB each
    backend, _ = device
    monkeypatch.setattr(memory, "CLUSTER_BYTES_PER_CROSS_PAIR", 10**12)
    settings = {"blocking": {"knn": {"enabled": False}}}
    with pytest.raises(MemoryBudgetError, match=r"cluster stage needs about .* GB of GPU memory .*"
                                                r"cluster.linkage: single"):
        resolve(records, settings=settings, backend=backend, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # single linkage weighs no pairs between groups
    assert resolve(records, settings={**settings, "cluster": {"linkage": "single"}},
                   backend=backend).manifest["cluster"]["linkage"] == "single"


@pytest.mark.parametrize("index", ["flat", "cells", "ivf", "hnsw"])
def test_knn_pairs_on_the_device_match_the_host(index):
    # flat: the GEMM fallback; cells and ivf: windows of k-means cells; hnsw: FAISS on the host, fed from the
    # device (its distinct vectors go over, the pairs come back to the device)
    import faiss

    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(400, 16)), 3, axis=0) + rng.normal(scale=0.05, size=(1200, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    x[5], x[10] = x[6], 0  # a shared vector and an empty record
    xp = StrictXP()
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # HNSW's build is deterministic on one thread
    try:
        host = knn_pairs(x, k=4, min_similarity=0.5, faiss=faiss, index=index, xp=np)
        device = knn_pairs(xp.asarray(x), k=4, min_similarity=0.5, faiss=faiss, index=index, xp=xp)
    finally:
        faiss.omp_set_num_threads(threads)
    assert all(isinstance(a, DeviceArray) for a in device)
    copied = xp.host_transfers(min_elements=100)
    assert [t.shape for t in copied] == ([(400 * 3 - 2, 16)] if index == "hnsw" else [])
    got = [a.get() for a in device]
    np.testing.assert_array_equal(got[0], host[0])
    np.testing.assert_array_equal(got[1], host[1])
    np.testing.assert_allclose(got[2], host[2], rtol=1e-6)
    assert host[0].size > 1200


def test_cosine_comparisons_score_on_the_device(device):
    # a comparison with sentence-transformers levels: the kernel's levels and the cosine ones are merged into
    # one pattern per pair on the device, as on the host
    from test_semantic import FakeEmbedder, _comparisons, _frame

    from gpucdp.compare import build_tables, compare_in_chunks, prepare_columns

    _, xp = device
    frame, comps = _frame(300), _comparisons()
    columns = prepare_columns(frame, comps, FakeEmbedder())
    tables = build_tables(comps, columns)
    rng = np.random.default_rng(4)
    left, right = np.sort(rng.integers(0, 300, 4000)), rng.integers(0, 300, 4000)
    host = compare_in_chunks(left, right, columns, tables, chunk_size=900)
    on_device = compare_in_chunks(xp.asarray(left), xp.asarray(right), columns, tables, chunk_size=900,
                                  target="cuda", xp=xp)
    assert isinstance(on_device, DeviceArray) and xp.host_transfers(min_elements=900) == []
    np.testing.assert_array_equal(on_device.get(), host)
