"""Errors that reach the user as one clear line and an exit code (PRODUCT.md)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CPU_ONLY = 3


class GpureadyError(Exception):
    """An expected failure: shown as its message, never as a traceback."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(GpureadyError):
    """Bad input or usage: a flag value, a malformed file (exit 2)."""

    exit_code = EXIT_USAGE


class MatrixError(UsageError):
    """The matrix data is malformed or inconsistent (exit 2)."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        super().__init__(f"matrix file {file}: {key}: {problem}")
        self.file, self.key, self.problem = file, key, problem


class WorkFailed(GpureadyError):
    """The work itself failed: a check, a lock, no installable plan (exit 1)."""

    exit_code = EXIT_FAILED
