"""Host-memory budget: estimate each heavy stage's peak before it runs, chunk to fit, or stop with a message.

The budget is ``--memory-limit`` (``memory_limit=`` in :func:`gpucdp.resolve`) or else what the machine has
available when the run starts (psutil), plus what the process already holds. Before blocking pair generation,
comparison, the model and the profiles, the pipeline asks :meth:`Budget.check` whether the stage's estimated
peak fits: the process's resident memory now (the records and everything kept from earlier stages) plus the
stage's working set, estimated from counts already known (records, candidate pairs, bytes of prepared strings,
columns). Clustering asks as it goes, each time it has counted something its arrays depend on (the edges kept,
the pairs between groups). Comparison is chunked, so its chunk size is derived from what is left
(:meth:`Budget.chunk_size`).
When a stage cannot fit, :class:`MemoryBudgetError` stops the run before any output is written, saying the
estimate, the budget and what to change. Every estimate and the budget go into manifest.json.

The bytes-per-item constants below count the arrays each stage allocates (see the stage modules); they are
deliberately on the high side: being stopped early is cheaper than being killed by the OS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil
import pyarrow as pa

from gpucdp.errors import MemoryBudgetError, SettingsError

__all__ = ["Budget", "parse_size", "format_size", "release_unused", "BLOCK_BYTES_PER_PAIR",
           "BLOCK_DEVICE_BYTES_PER_PAIR",
           "COMPARE_BYTES_PER_PAIR", "MODEL_BYTES_PER_PAIR", "MODEL_BYTES_PER_RANDOM_PAIR",
           "MODEL_BYTES_PER_WRITTEN_PAIR", "MODEL_CHUNK_BYTES_PER_PAIR", "MODEL_DENSE_PATTERNS",
           "MODEL_SORT_BYTES_PER_PAIR", "PROFILE_BYTES_PER_VALUE"]

# Pair generation keeps one int64 key per raw pair (block.pack_pairs); their union copies the keys into one
# array (on the host each part is freed once copied, and pages are committed as written), sorts it in place
# and decodes the distinct keys straight into int32 (left, right): at most 8 + 8 bytes a raw pair.
BLOCK_BYTES_PER_PAIR = 16
# On the device a rule's keys are written straight into place too (kernels.pairs); the union holds the parts
# and their concatenation (CuPy allocates it whole), and the sort a third copy; the distinct keys are then
# compacted and divided: at most 24 bytes a raw pair.
BLOCK_DEVICE_BYTES_PER_PAIR = 24
# Comparison keeps an int32 pattern per pair; the pairs arrive numbered in the record layout and sorted (the
# pipeline lays the records out before blocking), so nothing per pair is renumbered or re-sorted.
COMPARE_BYTES_PER_PAIR = 4
# Per pair of one chunk: the kernel's int8 gamma row (one byte per comparison, added) and int32 pattern, and
# the chunk's copies of its pair indices (when they are not the kernel's int32 already).
COMPARE_CHUNK_BYTES_PER_PAIR = 24
# The model, per candidate pair: the int32 index of its pattern and its float64 weight (the probability is
# written over it); when the pairs are written, their probabilities besides. Its term-frequency adjustments
# run a chunk of pairs at a time (the compare stage's chunk size): per pair of a chunk, the exact-level mask
# and the gathered record numbers, adjustments and weights. Patterns past MODEL_DENSE_PATTERNS are counted
# by a sort (xp.unique): an int64 inverse and the sort's copies instead. On 1M synthetic records the model
# stage's RSS rose ~0.07 GB above its start (8 bytes a pair).
MODEL_BYTES_PER_PAIR = 4 + 8
MODEL_BYTES_PER_WRITTEN_PAIR = 8
MODEL_CHUNK_BYTES_PER_PAIR = 1 + 8 + 4 + 8 + 8 + 8
MODEL_DENSE_PATTERNS = 1 << 24
MODEL_SORT_BYTES_PER_PAIR = 4 + 3 * 8
# Random pairs for u, compared at the end of the compare stage (counted in its check): two int64 indices (drawn,
# then renumbered as int32), their sort order, the comparison's working set.
MODEL_BYTES_PER_RANDOM_PAIR = 16 + 16 + COMPARE_BYTES_PER_PAIR
# Clustering (gpucdp.cluster.working_set), measured on the device's arrays (tests/test_cluster.py). Per
# record: the int8 step, the components' and cores' labels, the labels, the sort that numbers them, and per
# group of average linkage its partner, best score and merge (int64s); a guard round holds another set. Per
# scored pair: the byte of a pass's mask, and a chunk's gathers (steps, components, cores). The kept edges and
# their subsets (the cores', a guard round's) are copies of (left, right, probability); the last pass gathers
# two labels per kept edge. A pair between groups: its int64 key, int64 log-odds and eligibility, and in the
# merge rounds the sort by key and its sums.
CLUSTER_BYTES_PER_RECORD = 112
CLUSTER_GUARD_BYTES_PER_RECORD = 64
CLUSTER_BYTES_PER_SCORED_PAIR = 1
CLUSTER_CHUNK_BYTES_PER_PAIR = 24
CLUSTER_EDGE_COPIES = 2
CLUSTER_BYTES_PER_KEPT_EDGE = 17
CLUSTER_BYTES_PER_CROSS_PAIR = 17
CLUSTER_MERGE_BYTES_PER_CROSS_PAIR = 64
# Profiles: per record and field, factorised codes and the (cluster, value) keys and their sort (int64s), and
# the values taken for the golden values and lists; the membership table adds three strings per record.
PROFILE_BYTES_PER_VALUE = 48
PROFILE_BYTES_PER_RECORD = 3 * 64

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4,
          "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(text: str | int) -> int:
    """Bytes in a size like ``8GB`` (10^9), ``512MiB`` (2^20), ``2G`` (2^30, as in ``free -h``) or ``1000000``.

    Raises
    ------
    SettingsError
        The text is not a positive size.
    """
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
        if not match or match.group(2).lower() not in _UNITS:
            raise SettingsError(
                f"--memory-limit {text!r} is not a size: write it like 8GB, 512MiB, 2G or a number of bytes"
            )
        value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * _UNITS[unit])
    if size <= 0:
        raise SettingsError(f"--memory-limit {text!r} must be more than zero bytes")
    return size


def format_size(size: float) -> str:
    """``1.23 GB`` style, decimal units (what the messages and the manifest show)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1000
    return f"{size:.2f} TB"


def release_unused() -> None:
    """Give the memory Arrow's allocator keeps for reuse back to the operating system; the pipeline calls it
    between stages.

    Arrow's pool (mimalloc or jemalloc) holds on to the pages its freed buffers used. Standardisation and
    factorisation free most of theirs, and the arrays of the stages after them come from numpy, which does
    not reuse those pages: on 3M records the resident memory at the start of blocking fell from 2.42 to 1.80 GB.
    It takes milliseconds.
    """
    pa.default_memory_pool().release_unused()


def process_rss() -> int:
    """Resident memory of this process now, in bytes."""
    return int(psutil.Process().memory_info().rss)


@dataclass
class Budget:
    """The memory a run may use, and the estimates checked against it (recorded in the manifest).

    Attributes
    ----------
    limit : int
        Bytes the process may reach at its peak.
    source : str
        Where the limit came from: ``--memory-limit`` or the memory available when the run started.
    """

    limit: int
    source: str
    estimates: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def create(cls, memory_limit: str | int | None) -> Budget:
        """The budget for a run: ``memory_limit`` if given, else this process's RSS plus available memory."""
        if memory_limit is not None:
            return cls(parse_size(memory_limit), "--memory-limit")
        return cls(process_rss() + int(psutil.virtual_memory().available), "available memory")

    def check(self, stage: str, working_set: int, advice: str, **counts: Any) -> int:
        """Record the stage's estimated peak (RSS now + ``working_set``) and stop if it exceeds the budget.

        Returns the estimated peak in bytes.

        Raises
        ------
        MemoryBudgetError
            Names the stage, the estimate, the budget and ``advice`` (what to change).
        """
        resident = process_rss()
        peak = resident + int(working_set)
        self.estimates[stage] = {"estimate_bytes": peak, "resident_bytes": resident, **counts}
        if resident > self.limit:
            advice = "raise --memory-limit: what the run holds before this stage already exceeds it"
        if peak > self.limit:
            raise MemoryBudgetError(
                f"the {stage} stage needs about {format_size(peak)} of memory "
                f"({format_size(resident)} held now + {format_size(working_set)}) but the budget is "
                f"{format_size(self.limit)} ({self.source}): {advice}"
            )
        return peak

    def chunk_size(self, stage: str, fixed: int, per_item: int, preferred: int, minimum: int, advice: str,
                   **counts: Any) -> int:
        """Largest chunk (at most ``preferred``) whose working set fits beside ``fixed`` bytes; checked.

        ``minimum`` items per chunk is the least that is still worth a kernel launch: when even that does not
        fit, the stage cannot run within the budget and :class:`MemoryBudgetError` is raised.
        """
        free = self.limit - process_rss() - int(fixed)
        chunk = int(max(minimum, min(preferred, free // max(per_item, 1))))
        self.check(stage, int(fixed) + chunk * per_item, advice, chunk_size=chunk, **counts)
        self.estimates[stage]["chunk_size"] = chunk
        return chunk

    def describe(self) -> dict[str, Any]:
        """The budget and every stage's estimate, for manifest.json."""
        return {"budget_bytes": self.limit, "budget_source": self.source, "stages": self.estimates}
