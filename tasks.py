"""Invoke tasks for gpuready: `invoke --list`. The tasks live in the package (gpuready.cli)."""

from gpuready.cli.namespace import ns
from gpuready.cli.program import usage_errors_exit_2

usage_errors_exit_2()

__all__ = ["ns"]
