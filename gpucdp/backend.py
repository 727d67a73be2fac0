"""The one module that probes and imports GPU libraries.

Everything above it is written once against the objects a :class:`Backend` exposes: the array module ``xp``
(numpy or cupy), the frame module ``xdf`` (pandas or cudf), the ``faiss`` module (and whether it can put an
index on the GPU), connected components (a Numba union-find on the host, cuGraph on the GPU) and the Numba
target for kernels ("cpu" or "cuda").

``auto`` picks the GPU when CuPy and Numba CUDA import and a device is visible, and says why it picked what
it picked; an explicit ``gpu`` that cannot be served raises :class:`BackendUnavailableError` naming what is
missing and how to install it. The rest of the RAPIDS stack is optional: without cuDF the frames stay in
pandas on the host, without FAISS-GPU kNN is a CuPy GEMM + top-k (:func:`gpucdp.gpu.gemm_topk`,
:func:`gpucdp.gpu.cell_topk`), without cuGraph connected components run as a Numba CUDA kernel
(:mod:`gpucdp.kernels.components`). :func:`plan_backend` decides, from :func:`probe`'s report alone, which
part runs where and why; ``gpucdp info`` prints it and every run's manifest records it.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from gpucdp.errors import BackendUnavailableError, SettingsError

__all__ = [
    "Backend", "Plan", "get_backend", "plan_backend", "probe", "string_buffers", "to_host", "BACKEND_CHOICES",
]

BACKEND_CHOICES = ("auto", "cpu", "gpu")
GPU_INSTALL_HINT = (
    "install the GPU stack with `pip install 'gpucdp[gpu]'` (CUDA 12) or "
    "`conda env create -f environment.yml`"
)


def _version(module_name: str) -> str | None:
    try:
        module = importlib.import_module(module_name)
    except Exception:  # noqa: BLE001 - an optional library may fail to import in many ways
        return None
    return str(getattr(module, "__version__", "unknown"))


def probe() -> dict[str, Any]:
    """Report which libraries import and whether a CUDA device is visible.

    Returns
    -------
    dict
        ``libraries``: name → version or None; ``cuda_device``: device name or None; ``cuda_reason``: why not.
    """
    names = ["numpy", "pandas", "pyarrow", "numba", "faiss", "cupy", "cudf", "cugraph", "numba_cuda"]
    libraries = {name: _version(name) for name in names}
    device, reason = None, None
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        reason = "NUMBA_ENABLE_CUDASIM=1 (the CUDA simulator is for tests, not for runs)"
    else:
        try:
            from numba import cuda

            if cuda.is_available():
                device = cuda.get_current_device().name
                device = device.decode() if isinstance(device, bytes) else str(device)
            else:
                reason = "numba sees no CUDA device or driver"
        except Exception as exc:  # noqa: BLE001
            reason = f"numba.cuda failed to load ({type(exc).__name__})"
    faiss_gpu, faiss_reason = False, None
    if libraries["faiss"] is not None:
        import faiss

        if hasattr(faiss, "StandardGpuResources") and device is not None:
            faiss_reason = _faiss_gpu_fails(faiss)
            faiss_gpu = faiss_reason is None
    return {"libraries": libraries, "cuda_device": device, "cuda_reason": reason, "faiss_gpu": faiss_gpu,
            "faiss_gpu_reason": faiss_reason}


def _faiss_gpu_fails(faiss: Any) -> str | None:
    """Why a GPU build of FAISS cannot search on this machine (None when it can): no GPU it can see, or a
    search that fails, as on a GPU newer than the build's kernels. A tiny exact search settles it, so that the
    kNN stage falls back to the CuPy GEMM rather than failing in the middle of a run."""
    try:
        if faiss.get_num_gpus() < 1:
            return "faiss-gpu sees no GPU"
        vectors = np.eye(8, dtype=np.float32)
        index = faiss.GpuIndexFlatIP(faiss.StandardGpuResources(), 8)
        index.add(vectors)
        _, found = index.search(vectors[:2], 1)
        if found[:, 0].tolist() != [0, 1]:
            return "faiss-gpu's test search found the wrong neighbours"
    except Exception as exc:  # noqa: BLE001 - a GPU build can fail here in many ways
        return f"faiss-gpu failed a test search ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    return None


def _host_components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    from gpucdp.kernels.components import union_find

    return union_find(n, np.ascontiguousarray(left), np.ascontiguousarray(right))


def _cugraph_components(n: int, left: Any, right: Any) -> Any:  # pragma: no cover - needs a GPU
    import cudf
    import cugraph
    import cupy

    labels = cupy.arange(n, dtype=cupy.int64) + n  # records without an edge: labels of their own
    if len(left) == 0:
        return labels
    edges = cudf.DataFrame({"src": cupy.asarray(left), "dst": cupy.asarray(right)})
    graph = cugraph.Graph(directed=False)
    graph.from_cudf_edgelist(edges, source="src", destination="dst", renumber=False)
    result = cugraph.weakly_connected_components(graph)
    # component ids are arbitrary integers that may equal a record position: renumber them 0..k-1, below the
    # isolated records' labels (n..2n-1), so the two can never collide
    _, components = cupy.unique(result["labels"].values, return_inverse=True)
    labels[result["vertex"].values] = components.astype(cupy.int64).ravel()
    return labels


def _numba_components(n: int, left: Any, right: Any) -> Any:  # pragma: no cover - needs a GPU
    import cupy

    from gpucdp.kernels.components import components_cuda

    # int32 or int64 edges are read as they are (the kernel widens to the int64 labels): no copy of the edges
    return components_cuda(n, cupy.asarray(left), cupy.asarray(right), cupy)


@dataclass(frozen=True)
class Plan:
    """Which library runs each part of a run, and why: the decision behind a :class:`Backend`.

    Attributes
    ----------
    name : "cpu" or "gpu"
    reason : str
        Why this backend, in words.
    parts : dict
        Part ("frames", "arrays", "kernels", "kNN", "components") → (implementation, why); the implementation
        names are the keys of :data:`PART_TEXT`.
    missing : list of str
        What a GPU backend would still need (empty when the GPU is used).
    """

    name: str
    reason: str
    parts: dict[str, tuple[str, str]]
    missing: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per part, e.g. ``kNN: CuPy GEMM top-k (faiss-gpu not installed)``."""
        return [f"{part}: {PART_TEXT[impl]}" + (f" ({why})" if why else "")
                for part, (impl, why) in self.parts.items()]

    def describe(self) -> dict[str, str]:
        return {part: impl for part, (impl, _) in self.parts.items()}


PART_TEXT = {
    "pandas": "pandas on the host",
    "cudf": "cuDF on the GPU",
    "numpy": "numpy on the host",
    "cupy": "CuPy on the GPU",
    "numba-cpu": "Numba on the CPU",
    "numba-cuda": "Numba CUDA on the GPU",
    "faiss-cpu": "FAISS on the CPU",
    "faiss-gpu": "FAISS GPU: exact up to 5M distinct vectors, CAGRA above (IVF-Flat where FAISS lacks CAGRA)",
    "cupy-gemm": "CuPy GEMM top-k, exact up to 500k distinct vectors, in k-means cells above",
    "numpy-gemm": "numpy GEMM top-k, exact up to 20k distinct vectors, in k-means cells above",
    "numba-union-find": "Numba union-find on the host",
    "cugraph": "cuGraph weakly connected components on the GPU",
    "numba-cuda-components": "Numba CUDA hooking + pointer jumping on the GPU",
}


def plan_backend(name: str, info: dict[str, Any]) -> Plan:
    """Decide from :func:`probe`'s report which backend ``name`` resolves to and what runs each part.

    Pure: it imports nothing, so tests drive it with made-up reports ("cupy + numba only", "full RAPIDS",
    "nothing"). A GPU needs CuPy, Numba CUDA and a visible device; cuDF, cuGraph and FAISS-GPU each replace a
    fallback when present.

    Raises
    ------
    SettingsError
        ``name`` is not one of :data:`BACKEND_CHOICES`.
    """
    if name not in BACKEND_CHOICES:
        raise SettingsError(f"backend={name!r} is not valid: use one of {', '.join(BACKEND_CHOICES)}")
    libraries = info["libraries"]
    missing = [lib for lib in ("cupy", "numba_cuda") if libraries.get(lib) is None]
    if info["cuda_device"] is None:
        missing.append(f"a CUDA device ({info['cuda_reason']})")
    if name == "cpu" or missing:
        reason = ("asked for the CPU backend" if name == "cpu"
                  else f"auto: CPU, because the GPU stack lacks {', '.join(missing)}")
        knn = ("faiss-cpu", "") if libraries.get("faiss") else ("numpy-gemm", "faiss not installed")
        parts = {"frames": ("pandas", ""), "arrays": ("numpy", ""), "kernels": ("numba-cpu", ""), "kNN": knn,
                 "components": ("numba-union-find", "")}
        return Plan("cpu", reason, parts, missing)
    have = {lib: libraries.get(lib) is not None for lib in ("cudf", "cugraph")}
    parts = {
        "frames": ("cudf", "") if have["cudf"] else ("pandas", "cuDF not installed"),
        "arrays": ("cupy", ""),
        "kernels": ("numba-cuda", ""),
        "kNN": ("faiss-gpu", "") if info["faiss_gpu"] else (
            "cupy-gemm", info.get("faiss_gpu_reason")
            or ("faiss-gpu not installed" if libraries.get("faiss") else "faiss not installed")),
        "components": ("cugraph", "") if have["cugraph"] else (
            "numba-cuda-components", "cuGraph not installed"),
    }
    absent = [lib for lib, ok in (("cudf", have["cudf"]), ("cugraph", have["cugraph"]),
                                  ("faiss-gpu", bool(info["faiss_gpu"]))) if not ok]
    reason = f"GPU: {info['cuda_device']} with cupy, numba-cuda" + (
        f"; without {', '.join(absent)} (fallbacks below)" if absent else ", cudf, cugraph, faiss-gpu")
    return Plan("gpu", reason, parts)


@dataclass(frozen=True)
class Backend:
    """The resolved execution backend: which modules every stage uses.

    Attributes
    ----------
    name : "cpu" or "gpu"
    xp : module
        ``numpy`` or ``cupy``.
    xdf : module
        ``pandas`` or ``cudf``.
    faiss : module or None
        The ``faiss`` module (CPU or GPU build); None when it is not installed.
    faiss_gpu : bool
        Whether FAISS indexes can be moved to the GPU.
    kernel_target : "cpu" or "cuda"
        The Numba target for our kernels.
    reason : str
        Why this backend was picked, in words.
    plan : Plan
        What runs each part, and why.
    """

    name: str
    xp: Any
    xdf: Any
    faiss: Any
    faiss_gpu: bool
    kernel_target: str
    reason: str
    libraries: dict[str, str | None] = field(default_factory=dict)
    components_impl: Callable[[int, Any, Any], Any] = _host_components
    plan: Plan | None = None

    @property
    def is_gpu(self) -> bool:
        return self.name == "gpu"

    @property
    def knn(self) -> str:
        """The kNN implementation: a key of :data:`PART_TEXT` ("faiss-cpu", "faiss-gpu", "cupy-gemm", …)."""
        return self.plan.parts["kNN"][0] if self.plan is not None else "faiss-cpu"

    def connected_components(self, n: int, left: Any, right: Any) -> Any:
        """Label the connected components of an undirected graph.

        Parameters
        ----------
        n : int
            Number of vertices (records); vertices without edges get labels of their own.
        left, right : int32 or int64[n_edges]
            Edge end points.

        Returns
        -------
        int64[n]
            A component label per vertex, below 2n (labels are arbitrary but deterministic).
        """
        return self.components_impl(n, left, right)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kernel_target": self.kernel_target,
            "faiss_gpu": self.faiss_gpu,
            "reason": self.reason,
            "plan": self.plan.describe() if self.plan is not None else {},
            "plan_text": self.plan.lines() if self.plan is not None else [],
            "libraries": self.libraries,
        }


def _cpu_backend(plan: Plan, libraries: dict[str, str | None]) -> Backend:
    import pandas

    faiss = importlib.import_module("faiss") if libraries.get("faiss") else None
    return Backend(
        name="cpu",
        xp=np,
        xdf=pandas,
        faiss=faiss,
        faiss_gpu=False,
        kernel_target="cpu",
        reason=plan.reason,
        libraries=libraries,
        components_impl=_host_components,
        plan=plan,
    )


def get_backend(name: str = "auto") -> Backend:
    """Resolve ``auto`` / ``cpu`` / ``gpu`` into a :class:`Backend`.

    Parameters
    ----------
    name : {"auto", "cpu", "gpu"}
        ``auto`` uses the GPU when cupy, numba CUDA and a device are present (see :func:`plan_backend`).

    Raises
    ------
    SettingsError
        ``name`` is not one of the choices.
    BackendUnavailableError
        ``gpu`` was asked for and a piece of the GPU stack is missing.
    """
    if name not in BACKEND_CHOICES:
        raise SettingsError(f"backend={name!r} is not valid: use one of {', '.join(BACKEND_CHOICES)}")
    info = probe()
    plan = plan_backend(name, info)
    if plan.name == "cpu":
        if name == "gpu":
            raise BackendUnavailableError(
                f"backend='gpu' cannot be served: missing {', '.join(plan.missing)}; {GPU_INSTALL_HINT}, "
                "or use --backend cpu"
            )
        return _cpu_backend(plan, info["libraries"])
    return _gpu_backend(plan, info)  # pragma: no cover - needs a GPU


def _gpu_backend(plan: Plan, info: dict[str, Any]) -> Backend:  # pragma: no cover - needs a GPU
    import cupy

    libraries = info["libraries"]
    if plan.parts["frames"][0] == "cudf":
        xdf = importlib.import_module("cudf")
    else:
        import pandas as xdf
    faiss = importlib.import_module("faiss") if libraries.get("faiss") else None
    return Backend(
        name="gpu",
        xp=cupy,
        xdf=xdf,
        faiss=faiss,
        faiss_gpu=bool(info["faiss_gpu"]),
        kernel_target="cuda",
        reason=plan.reason,
        libraries=libraries,
        components_impl=(_cugraph_components if plan.parts["components"][0] == "cugraph"
                         else _numba_components),
        plan=plan,
    )


def string_buffers(series: Any) -> tuple[Any, Any] | None:  # pragma: no cover - needs cuDF
    """The device buffers of a cuDF string column, without a copy: (chars uint8[total], offsets int[n + 1]).

    None when ``series`` is not a cuDF Series. Nulls are filled with "" first (on the device), so that every
    null has zero length whatever libcudf left in its slot. Uses cuDF's public pylibcudf view of the column
    (``Series.to_pylibcudf``, zero-copy): the offsets are its child 0 (int32, or int64 past 2 GiB of
    characters), the characters its data buffer.
    """
    if type(series).__module__.split(".")[0] != "cudf":
        return None
    import cupy

    column, _ = series.fillna("").to_pylibcudf()
    n, start = column.size(), column.offset()
    offsets_child = column.child(0)
    wide = offsets_child.type().id().name == "INT64"
    raw = _device_bytes(offsets_child.data(), cupy).view(cupy.int64 if wide else cupy.int32)
    offsets = raw[offsets_child.offset() + start : offsets_child.offset() + start + n + 1]
    data = column.data()
    chars = _device_bytes(data, cupy) if data is not None else cupy.zeros(0, dtype=cupy.uint8)
    return chars, offsets


def _device_bytes(buffer: Any, cupy: Any) -> Any:  # pragma: no cover - needs cuDF
    """A uint8 CuPy view of a pylibcudf buffer, kept alive by the view.

    pylibcudf 26.x hands out its buffers as objects of the Span protocol (``ptr`` and ``size`` in bytes),
    which need not have ``__cuda_array_interface__``; a ``gpumemoryview`` before the protocol has ``nbytes``.
    """
    size = int(getattr(buffer, "size", None) or getattr(buffer, "nbytes", 0))
    if size == 0:
        return cupy.zeros(0, dtype=cupy.uint8)
    memory = cupy.cuda.UnownedMemory(int(buffer.ptr), size, buffer)
    return cupy.ndarray((size,), dtype=cupy.uint8, memptr=cupy.cuda.MemoryPointer(memory, 0))


def to_host(array: Any) -> np.ndarray:
    """Return ``array`` as a numpy array (copying from the device when it is a cupy array)."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "__cuda_array_interface__") and hasattr(array, "get"):  # cupy
        return array.get()
    if hasattr(array, "copy_to_host"):  # numba device array
        return array.copy_to_host()
    return np.asarray(array)
