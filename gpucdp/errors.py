"""The exceptions gpucdp raises, as one tree.

::

    GpucdpError                      base of everything raised on purpose; exit code 1
    ├── UserError                    the user can fix it; the CLI prints one line, exit code 2
    │   ├── SettingsError            a settings file or value is invalid (names the setting)
    │   ├── InputError               an input file or column is missing, unreadable or invalid
    │   │   └── DuplicateRecordError record ids repeat inside one source
    │   ├── OutputError              the output folder exists or cannot be written
    │   ├── MemoryBudgetError        a stage cannot fit the memory budget, even chunked (says what to change)
    │   └── BackendUnavailableError  ``backend="gpu"`` asked for but a GPU library is missing
    └── InternalError                an invariant of the engine broke (a bug); exit code 3

Every user-facing message says which file, column or setting is wrong and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "GpucdpError",
    "UserError",
    "SettingsError",
    "InputError",
    "DuplicateRecordError",
    "OutputError",
    "MemoryBudgetError",
    "BackendUnavailableError",
    "InternalError",
    "EXIT_OK",
    "EXIT_USER",
    "EXIT_INTERNAL",
]

EXIT_OK = 0
EXIT_USER = 2
EXIT_INTERNAL = 3


class GpucdpError(Exception):
    """Base of every error gpucdp raises on purpose."""

    exit_code = 1


class UserError(GpucdpError):
    """An error the user can fix: bad settings, bad input, unusable output folder."""

    exit_code = EXIT_USER


class SettingsError(UserError):
    """A settings file or value is invalid."""


class InputError(UserError):
    """An input file or column is missing, unreadable or invalid."""


class DuplicateRecordError(InputError):
    """Record ids repeat inside one source."""


class OutputError(UserError):
    """The output folder exists (without ``overwrite``) or cannot be written."""


class MemoryBudgetError(UserError):
    """A stage's estimated peak memory exceeds the budget (``--memory-limit`` or the available memory)."""


class BackendUnavailableError(UserError):
    """A GPU backend was requested explicitly but a required library is missing."""


class InternalError(GpucdpError):
    """An invariant of the engine broke: a bug in gpucdp, please report it."""

    exit_code = EXIT_INTERNAL
