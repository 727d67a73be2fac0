"""Numba kernels of gpucdp, installed as ``gpucdp.kernels``.

Each similarity function is written once, inside a factory that receives the decorator, and compiled twice:
with ``numba.njit`` for the CPU and ``numba.cuda.jit(device=True)`` for the GPU (see STYLE.md).
"""
