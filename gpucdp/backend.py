"""The one module that probes and imports GPU libraries.

Everything above it is written once against the objects a :class:`Backend` exposes: the array module ``xp``
(numpy or cupy), the frame module ``xdf`` (pandas or cudf), the ``faiss`` module (and whether it can put an
index on the GPU), connected components (SciPy or cuGraph) and the Numba target for kernels ("cpu" or "cuda").

``auto`` picks the GPU only when every piece of the GPU stack imports and a device is visible, and says why it
picked what it picked; an explicit ``gpu`` that cannot be served raises :class:`BackendUnavailableError` naming
what is missing and how to install it.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from gpucdp.errors import BackendUnavailableError, SettingsError

__all__ = ["Backend", "get_backend", "probe", "to_host", "BACKEND_CHOICES"]

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
    names = ["numpy", "pandas", "pyarrow", "numba", "scipy", "faiss", "cupy", "cudf", "cugraph", "numba_cuda"]
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
    faiss_gpu = False
    if libraries["faiss"] is not None:
        import faiss

        faiss_gpu = hasattr(faiss, "StandardGpuResources") and device is not None
    return {"libraries": libraries, "cuda_device": device, "cuda_reason": reason, "faiss_gpu": faiss_gpu}


def _scipy_components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    data = np.ones(left.shape[0], dtype=np.int8)
    graph = coo_matrix((data, (left, right)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False, return_labels=True)
    return labels.astype(np.int64, copy=False)


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
    """

    name: str
    xp: Any
    xdf: Any
    faiss: Any
    faiss_gpu: bool
    kernel_target: str
    reason: str
    libraries: dict[str, str | None] = field(default_factory=dict)
    components_impl: Callable[[int, Any, Any], Any] = _scipy_components

    @property
    def is_gpu(self) -> bool:
        return self.name == "gpu"

    def connected_components(self, n: int, left: Any, right: Any) -> Any:
        """Label the connected components of an undirected graph.

        Parameters
        ----------
        n : int
            Number of vertices (records); vertices without edges get labels of their own.
        left, right : int64[n_edges]
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
            "libraries": self.libraries,
        }


def _cpu_backend(reason: str, libraries: dict[str, str | None]) -> Backend:
    import pandas

    faiss = importlib.import_module("faiss") if libraries.get("faiss") else None
    return Backend(
        name="cpu",
        xp=np,
        xdf=pandas,
        faiss=faiss,
        faiss_gpu=False,
        kernel_target="cpu",
        reason=reason,
        libraries=libraries,
        components_impl=_scipy_components,
    )


def get_backend(name: str = "auto") -> Backend:
    """Resolve ``auto`` / ``cpu`` / ``gpu`` into a :class:`Backend`.

    Parameters
    ----------
    name : {"auto", "cpu", "gpu"}
        ``auto`` uses the GPU only when cupy, cudf, cugraph, numba CUDA and a device are all present.

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
    libraries = info["libraries"]
    if name == "cpu":
        return _cpu_backend("asked for the CPU backend", libraries)
    missing = [lib for lib in ("cupy", "cudf", "cugraph") if libraries.get(lib) is None]
    if info["cuda_device"] is None:
        missing.append(f"a CUDA device ({info['cuda_reason']})")
    if missing:
        if name == "gpu":
            raise BackendUnavailableError(
                f"backend='gpu' cannot be served: missing {', '.join(missing)}; {GPU_INSTALL_HINT}, "
                "or use --backend cpu"
            )
        return _cpu_backend(f"auto: CPU, because the GPU stack lacks {', '.join(missing)}", libraries)
    return _gpu_backend(info)  # pragma: no cover - needs a GPU


def _gpu_backend(info: dict[str, Any]) -> Backend:  # pragma: no cover - needs a GPU
    import cudf
    import cupy

    libraries = info["libraries"]
    faiss = importlib.import_module("faiss") if libraries.get("faiss") else None
    return Backend(
        name="gpu",
        xp=cupy,
        xdf=cudf,
        faiss=faiss,
        faiss_gpu=bool(info["faiss_gpu"]),
        kernel_target="cuda",
        reason=f"GPU: {info['cuda_device']} with cupy, cudf, cugraph"
        + ("" if info["faiss_gpu"] else "; FAISS on the CPU (no GPU build installed)"),
        libraries=libraries,
        components_impl=_cugraph_components,
    )


def to_host(array: Any) -> np.ndarray:
    """Return ``array`` as a numpy array (copying from the device when it is a cupy array)."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "__cuda_array_interface__") and hasattr(array, "get"):  # cupy
        return array.get()
    if hasattr(array, "copy_to_host"):  # numba device array
        return array.copy_to_host()
    return np.asarray(array)
