"""The CUDA twin of the embedder: run under the CUDA simulator, and compiled to PTX without a GPU.

The simulator and the real ``numba.cuda`` cannot share a process, so the simulator test runs only when
``NUMBA_ENABLE_CUDASIM=1`` is set (``NUMBA_ENABLE_CUDASIM=1 pytest -m cuda``) and the PTX test only when it is not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cuda_support import SIMULATOR as SIM
from cuda_support import compile_ptx


@pytest.mark.cuda
@pytest.mark.skipif(not SIM, reason="set NUMBA_ENABLE_CUDASIM=1 to run CUDA kernels in the simulator")
def test_cuda_embed_matches_cpu_in_simulator():
    from gpucdp.embed import embed_records

    first = pd.Series(["anna", None, "jonathan", "", "li", "ångström"])
    last = pd.Series(["lee", "smith", None, None, "wei", "x"])
    args = {"weights": [1.0, 0.7], "dim": 16, "q": 3}
    cpu = embed_records([first, last], target="cpu", **args)
    gpu = embed_records([first, last], target="cuda", **args)
    np.testing.assert_allclose(gpu, cpu, atol=1e-6)
    assert np.all(gpu[3] == 0)


@pytest.mark.cuda
@pytest.mark.skipif(SIM, reason="PTX compilation needs the real numba.cuda, not the simulator")
def test_cuda_embed_compiles_to_ptx(monkeypatch):
    pytest.importorskip("numba.cuda")
    from gpucdp.kernels import embed as kernels
    from numba import types as nt

    if kernels.embed_cuda is None:
        pytest.skip("numba-cuda is not installed")
    sig = (
        nt.Array(nt.uint8, 1, "C"),
        nt.Array(nt.int64, 2, "C"),
        nt.Array(nt.float32, 1, "C"),
        nt.int64,
        nt.int64,
        nt.Array(nt.float32, 2, "C"),
    )
    ptx = compile_ptx(monkeypatch, kernels.embed_cuda.py_func, sig)
    assert ".entry" in ptx and ".local" in ptx
