"""What every benchmark program in bench/ records: the machine, the versions, and where the JSON goes."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def header(benchmark: str, **extra: Any) -> dict[str, Any]:
    """The head of a benchmark's JSON: name, time, machine, Python, gpucdp and library versions, then ``extra``."""
    import gpucdp
    from gpucdp.backend import probe

    return {
        "benchmark": benchmark,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "python": platform.python_version(),
        "gpucdp": gpucdp.__version__,
        "versions": probe()["libraries"],
        **extra,
    }


def write_json(path: str | Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as indented JSON, creating the folder, and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"wrote {path}")
