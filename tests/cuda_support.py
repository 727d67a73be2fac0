"""What the CUDA tests share: the simulator switch, a child process with the simulator on, and PTX compilation
without a GPU.

The CUDA simulator must be switched on before ``numba.cuda`` is first imported, and the simulator and the real
``numba.cuda`` cannot live in one process. A simulator check therefore runs in this process when it already runs
under ``NUMBA_ENABLE_CUDASIM=1``, and otherwise in a child process with the simulator on; PTX compilation needs
the real ``numba.cuda`` and is skipped under the simulator.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
TESTS_DIR = Path(__file__).resolve().parent


def real_gpu() -> bool:
    """A CUDA device this process can use (never under the simulator)."""
    if SIMULATOR:
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - no driver, no toolkit, no numba-cuda: all mean "no GPU"
        return False


def run_in_simulator(module: str, *calls: str) -> None:
    """Run ``module.call`` for each call (a test module in tests/, Python calls) in a child process under the
    simulator."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    code = f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r}); import {module} as t; " + "; ".join(
        f"t.{call}" for call in calls)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def simulate(module: str, *calls: str) -> None:
    """Run ``module.call`` for each call under the CUDA simulator: in this process when it already runs under
    ``NUMBA_ENABLE_CUDASIM=1``, otherwise in a child process (:func:`run_in_simulator`)."""
    if not SIMULATOR:
        run_in_simulator(module, *calls)
        return
    namespace = {"t": importlib.import_module(module)}
    for call in calls:  # the tests' own literals, as run_in_simulator runs them
        eval(f"t.{call}", namespace)


def compile_ptx(monkeypatch: pytest.MonkeyPatch, py_func: Any, signature: tuple) -> str:
    """PTX of a CUDA kernel for an sm_90 (H100/H200), compiled here without a GPU."""
    numba_cuda = pytest.importorskip("numba.cuda")
    # Compiling a kernel that calls device functions asks the driver for the current device's compute
    # capability; without a GPU there is none, so answer for one.
    monkeypatch.setattr(
        numba_cuda.dispatcher, "get_current_device", lambda: types.SimpleNamespace(compute_capability=(9, 0))
    )
    ptx, _ = numba_cuda.compile_ptx(py_func, signature, cc=(9, 0))
    return ptx
