"""The `gpuready` console command: an Invoke Program over the same namespace as tasks.py."""

from __future__ import annotations

from invoke import Program
from invoke.exceptions import Exit, ParseError

from . import __version__
from .errors import EXIT_USAGE
from .tasks import ns

_stock_parse_core = Program.parse_core
_stock_parse_tasks = Program.parse_tasks


def _parse_core(self, argv):  # type: ignore[no-untyped-def]
    try:
        _stock_parse_core(self, argv)
    except ParseError as exc:
        raise Exit(str(exc), code=EXIT_USAGE) from None


def _parse_tasks(self):  # type: ignore[no-untyped-def]
    try:
        _stock_parse_tasks(self)
    except ParseError as exc:
        raise Exit(str(exc), code=EXIT_USAGE) from None


class GpureadyProgram(Program):
    """Invoke's Program, with usage errors exiting 2 as PRODUCT.md promises (Invoke uses 1)."""

    parse_core = _parse_core
    parse_tasks = _parse_tasks


def usage_errors_exit_2() -> None:
    """Give the stock `invoke` command the same exit code 2 for usage errors.

    tasks.py calls this: Invoke has no hook for the exit code of a parse error.
    """
    Program.parse_tasks = _parse_tasks  # type: ignore[method-assign]


program = GpureadyProgram(namespace=ns, name="gpuready", binary="gpuready", version=__version__)


def main() -> None:
    program.run()
