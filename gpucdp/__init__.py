"""gpucdp: GPU-first identity resolution for customer data platforms.

>>> import gpucdp
>>> result = gpucdp.resolve(["crm.parquet", "web.csv"], out="profiles/")   # doctest: +SKIP
>>> result.profiles, result.membership                                      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "resolve",
    "ResolveResult",
    "Settings",
    "load_settings",
    "get_backend",
    "FSModel",
    "load_model",
    "GpucdpError",
    "UserError",
    "SettingsError",
    "InputError",
    "OutputError",
    "InternalError",
]

_LAZY = {
    "resolve": "gpucdp.pipeline",
    "ResolveResult": "gpucdp.pipeline",
    "Settings": "gpucdp.settings",
    "load_settings": "gpucdp.settings",
    "get_backend": "gpucdp.backend",
    "FSModel": "gpucdp.model",
    "load_model": "gpucdp.model",
    "GpucdpError": "gpucdp.errors",
    "UserError": "gpucdp.errors",
    "SettingsError": "gpucdp.errors",
    "InputError": "gpucdp.errors",
    "OutputError": "gpucdp.errors",
    "InternalError": "gpucdp.errors",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `import gpucdp` (and the CLI's --help) does not pay for numba, pandas and faiss imports.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gpucdp' has no attribute {name!r}")
