"""Progress bars per stage, stage timings, and the summary table printed at the end of a run."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import psutil
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["Reporter", "StageHandle", "peak_rss_bytes"]


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux ru_maxrss, else the current RSS)."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (ImportError, OSError):  # pragma: no cover - non-Unix
        return int(psutil.Process().memory_info().rss)


@dataclass
class StageHandle:
    name: str
    counts: dict[str, Any] = field(default_factory=dict)
    _progress: Progress | None = None
    _task: Any = None

    def advance(self, amount: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, amount)

    def total(self, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=total)

    def count(self, **counts: Any) -> None:
        self.counts.update(counts)


class Reporter:
    """Times the stages of a run, shows a bar per long stage, and prints the summary table.

    Parameters
    ----------
    quiet : bool
        No bars and no table (timings are still recorded for the manifest).
    """

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console or Console(stderr=True)
        self.stages: dict[str, dict[str, Any]] = {}

    @contextmanager
    def stage(self, name: str, total: int | None = None, unit: str = "records") -> Iterator[StageHandle]:
        handle = StageHandle(name)
        progress = None
        if not self.quiet:
            progress = Progress(
                TextColumn(f"[bold]{name:<12}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                TimeElapsedColumn(), console=self.console, transient=True,
            )
            progress.start()
            handle._progress, handle._task = progress, progress.add_task(name, total=total)
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            yield handle
        finally:
            if progress is not None:
                progress.stop()
        seconds = time.perf_counter() - start
        # the process's CPU time over the stage, every thread's: cpu_seconds / seconds is how many cores it kept
        # busy on average (a stage near 1.0 on a many-core machine is one to spread over threads)
        cpu_seconds = time.process_time() - cpu_start
        self.stages[name] = {"seconds": round(seconds, 4), "cpu_seconds": round(cpu_seconds, 4), **handle.counts}
        if not self.quiet:
            detail = ", ".join(f"{k}={_fmt(v)}" for k, v in handle.counts.items() if _scalar(v))
            self.console.print(f"[green]✓[/green] {name:<12} {seconds:8.2f} s  {detail}")

    def print(self, *args: Any) -> None:
        if not self.quiet:
            self.console.print(*args)

    def summary_table(self, records: int, title: str = "gpucdp run") -> Table:
        table = Table(title=title)
        table.add_column("stage")
        table.add_column("seconds", justify="right")
        table.add_column("records/s", justify="right")
        table.add_column("counts")
        total = 0.0
        for name, info in self.stages.items():
            seconds = float(info["seconds"])
            total += seconds
            rate = f"{records / seconds:,.0f}" if seconds > 0 else "-"
            counts = ", ".join(f"{k}={_fmt(v)}" for k, v in info.items()
                               if k not in ("seconds", "cpu_seconds") and _scalar(v))
            table.add_row(name, f"{seconds:.2f}", rate, counts)
        table.add_row("[bold]total", f"[bold]{total:.2f}", f"[bold]{records / total:,.0f}" if total else "-", "")
        return table


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool))


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)
