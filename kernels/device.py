"""Arrays handed to the CUDA kernels: one rule for every launch wrapper (comparison, embedding, components)."""

from __future__ import annotations

from typing import Any

import numpy as np

try:  # numba-cuda is optional: the CPU path must import without it
    from numba import cuda
except ImportError:  # pragma: no cover - depends on the environment
    cuda = None

__all__ = ["as_device"]


def as_device(a: Any, dtype: Any = None) -> Any:
    """A Numba device array for ``a``, copying only what is not on the device yet.

    Numba device arrays pass as they are; arrays exposing ``__cuda_array_interface__`` (CuPy, cuDF buffers) are
    wrapped without a copy; host arrays are copied to the device, C-contiguous and as ``dtype`` when given.
    """
    if hasattr(a, "copy_to_host"):
        return a
    if hasattr(a, "__cuda_array_interface__"):
        return cuda.as_cuda_array(a)
    return cuda.to_device(np.ascontiguousarray(a, dtype=dtype))
