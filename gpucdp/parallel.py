"""Host threads: the per-column work of the host stages runs on every core the run may use.

Standardisation, factorisation and the profiles work column by column, and the columns do not depend on each
other. Most of that work is Arrow's string kernels (behind pandas' Arrow-backed strings), Arrow's hashing and
numpy's sorts, which release the GIL, so a thread per column runs them on separate cores without copying the
frame into other processes. The Numba kernels have their own thread pool; :func:`numba_threads` sets its size
for the run, so one ``--threads`` bounds both.

The results never depend on the number of threads: every task is a function of its own column, and results
come back in the order the tasks were given.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numba

from gpucdp.errors import SettingsError

__all__ = ["available_cores", "numba_threads", "resolve_threads", "thread_map"]

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """The run's thread count: ``threads`` checked, or every available core when None.

    Raises
    ------
    SettingsError
        ``threads`` is not a positive whole number.
    """
    if threads is None:
        return available_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise SettingsError(f"--threads {threads!r} (threads= in Python) must be a whole number of at least 1; "
                            f"leave it out to use every core ({available_cores()} here)")
    return threads


def thread_map(func: Callable[[T], R], items: Iterable[T], threads: int) -> list[R]:
    """``[func(x) for x in items]``, run on up to ``threads`` threads; results in the order of ``items``.

    The first task to fail (in ``items`` order) re-raises its exception here once the tasks already running
    end; tasks not yet started are cancelled. With one thread or one item it runs in the calling thread.
    """
    items = list(items)
    workers = min(threads, len(items))
    if workers <= 1:
        return [func(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gpucdp") as pool:
        futures = [pool.submit(func, x) for x in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


@contextlib.contextmanager
def numba_threads(threads: int) -> Iterator[int]:
    """Run the block with Numba's parallel kernels on at most ``threads`` threads; yields the number set.

    Numba's pool was sized at import (``NUMBA_NUM_THREADS``, every core by default); a run cannot use more
    than that, only fewer. The previous setting is restored afterwards.
    """
    previous = numba.get_num_threads()
    count = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(count)
    try:
        yield count
    finally:
        numba.set_num_threads(previous)
