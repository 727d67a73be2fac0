"""Compare: the agreement level of every comparison for every candidate pair, as one pattern id per pair.

The comparisons in the settings become small tables (method, column, threshold per level) that the comparison
kernel (``gpucdp.kernels.compare``) walks for each pair; string columns reach the kernel as Arrow-style buffers
(``chars`` uint8, ``offsets`` int64) and numeric ones (dates as yyyymmdd) as a float64 matrix. Pairs are
compared in chunks so that memory depends on the chunk size, not on the number of pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from gpucdp.embed import pack_strings
from gpucdp.errors import SettingsError
from gpucdp.kernels.compare import METHODS, STRING_METHODS, compare_pairs
from gpucdp.settings import ComparisonSettings

__all__ = ["ComparisonTables", "PreparedColumns", "build_tables", "compare_in_chunks"]


@dataclass
class PreparedColumns:
    """The prepared columns the comparisons use, packed for the kernel.

    Attributes
    ----------
    chars : uint8[total]
    offsets : int64[S, n + 1]
        String column s of record i is ``chars[offsets[s, i]:offsets[s, i + 1]]``; empty = null.
    nums : float64[N, n]
        Numeric columns (dates as yyyymmdd), NaN = null.
    string_names, numeric_names : list of str
    """

    chars: np.ndarray
    offsets: np.ndarray
    nums: np.ndarray
    string_names: list[str]
    numeric_names: list[str]

    @property
    def n(self) -> int:
        return int(self.offsets.shape[1] - 1) if self.offsets.size else int(self.nums.shape[1])


@dataclass
class ComparisonTables:
    """Level tables of the comparisons (see ``gpucdp.kernels.compare``)."""

    level_method: np.ndarray
    level_col: np.ndarray
    level_thr: np.ndarray
    n_levels: np.ndarray
    names: list[str]


def _is_numeric_method(method: str) -> bool:
    return METHODS[method] not in STRING_METHODS


def prepare_columns(prepared: pd.DataFrame, comparisons: Sequence[ComparisonSettings]) -> PreparedColumns:
    """Pack the prepared columns the comparisons refer to.

    Raises
    ------
    SettingsError
        A level names a column that standardisation did not produce, or applies a string method to a
        numeric column (or the reverse).
    """
    string_names: list[str] = []
    numeric_names: list[str] = []
    for comp in comparisons:
        for i, level in enumerate(comp.levels):
            if level.column not in prepared.columns:
                available = ", ".join(sorted(prepared.columns))
                raise SettingsError(
                    f"comparisons.{comp.name}.levels[{i}]: column {level.column!r} does not exist after "
                    f"standardisation; available: {available}"
                )
            numeric_column = pd.api.types.is_float_dtype(prepared[level.column].dtype)
            if _is_numeric_method(level.method) != numeric_column:
                kind = "numeric" if numeric_column else "string"
                raise SettingsError(
                    f"comparisons.{comp.name}.levels[{i}]: method {level.method} cannot compare the {kind} "
                    f"column {level.column!r} (dates: use date_* methods on '<field>__ymd', string methods on "
                    "'<field>')"
                )
            target = numeric_names if numeric_column else string_names
            if level.column not in target:
                target.append(level.column)
    n = len(prepared)
    if string_names:
        chars, offsets = pack_strings([prepared[c] for c in string_names])
    else:
        chars, offsets = np.zeros(0, dtype=np.uint8), np.zeros((0, n + 1), dtype=np.int64)
    if numeric_names:
        nums = np.vstack([prepared[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in numeric_names])
    else:
        nums = np.zeros((0, n), dtype=np.float64)
    return PreparedColumns(chars, offsets, np.ascontiguousarray(nums), string_names, numeric_names)


def build_tables(comparisons: Sequence[ComparisonSettings], columns: PreparedColumns) -> ComparisonTables:
    """Turn the comparison settings into the kernel's level tables."""
    c_count = len(comparisons)
    width = max(len(c.levels) for c in comparisons)
    level_method = np.zeros((c_count, width), dtype=np.int8)
    level_col = np.zeros((c_count, width), dtype=np.int32)
    level_thr = np.zeros((c_count, width), dtype=np.float64)
    n_levels = np.zeros(c_count, dtype=np.int32)
    for c, comp in enumerate(comparisons):
        n_levels[c] = len(comp.levels)
        for i, level in enumerate(comp.levels):
            level_method[c, i] = METHODS[level.method]
            names = columns.numeric_names if _is_numeric_method(level.method) else columns.string_names
            level_col[c, i] = names.index(level.column)
            level_thr[c, i] = 0.0 if level.threshold is None else float(level.threshold)
    return ComparisonTables(level_method, level_col, level_thr, n_levels, [c.name for c in comparisons])


def compare_in_chunks(
    left: np.ndarray,
    right: np.ndarray,
    columns: PreparedColumns,
    tables: ComparisonTables,
    *,
    chunk_size: int,
    target: str = "cpu",
    advance: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Pattern id of every pair, computed chunk by chunk.

    Parameters
    ----------
    left, right : int64[m]
    columns : PreparedColumns
    tables : ComparisonTables
    chunk_size : int
        Pairs per kernel call.
    target : "cpu" or "cuda"

    Returns
    -------
    int32[m]
    """
    m = int(left.shape[0])
    patterns = np.empty(m, dtype=np.int32)
    for start in range(0, m, chunk_size):
        stop = min(start + chunk_size, m)
        _, pattern = compare_pairs(
            left[start:stop], right[start:stop], columns.chars, columns.offsets, columns.nums,
            tables.level_method, tables.level_col, tables.level_thr, tables.n_levels, target=target,
        )
        patterns[start:stop] = np.asarray(pattern) if target == "cpu" else pattern.copy_to_host()
        if advance is not None:
            advance(stop - start)
    return patterns
