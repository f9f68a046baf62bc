"""What every task shares: turning library errors into one line and an exit code."""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any, Callable

from invoke.exceptions import Exit

from .. import matrix as matrix_mod
from ..config import settings
from ..errors import GpureadyError


def cli_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Show a `GpureadyError` as its message and exit with its code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GpureadyError as exc:
            raise Exit(f"gpuready: {exc.message}", code=exc.exit_code) from None

    return wrapper


def load_matrix(c: Any) -> matrix_mod.Matrix:
    return matrix_mod.load(settings(c.config).get("matrix_dir"))


def print_json(data: Any) -> None:
    """Print one JSON document; a reader that closed the pipe early (`| head`) is not an error."""
    try:
        json.dump(data, sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
