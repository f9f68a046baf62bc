"""Invoke tasks for gpuready: `invoke --list`. The tasks live in the package (gpuready.tasks)."""

from gpuready.cli import usage_errors_exit_2
from gpuready.tasks import ns

usage_errors_exit_2()

__all__ = ["ns"]
