"""The `gpuready` console command: an Invoke Program over the same namespace as tasks.py.

Usage errors exit 2, as PRODUCT.md promises; Invoke's own is 1. For the `gpuready` command that
is done the way Invoke offers: a `Program` subclass. The stock `invoke` command has no such
extension point (Invoke 3.0's `Program.run` sets `code = 1` for every `ParseError`, and neither
its configuration nor a tasks module can change it), so tasks.py gives the stock Program the same
`parse_tasks` override with `usage_errors_exit_2()`; it runs only in an `invoke` process that
loaded this project's tasks.py, never on `import gpuready`.
"""

from __future__ import annotations

from invoke import Program
from invoke.exceptions import Exit, ParseError

from .. import __version__
from ..errors import EXIT_USAGE
from . import config_files
from .namespace import ns

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
    """Invoke's Program, with usage errors exiting 2 and every config file checked as it is read."""

    parse_core = _parse_core
    parse_tasks = _parse_tasks

    def create_config(self) -> None:
        config_files.install()
        super().create_config()


def usage_errors_exit_2() -> None:
    """The stock `invoke` command's usage errors exit 2 too (see the module's docstring), and the
    config files it reads from now on (invoke.yaml) are checked (`config_files`)."""
    Program.parse_tasks = _parse_tasks  # type: ignore[method-assign]
    config_files.install()


program = GpureadyProgram(namespace=ns, name="gpuready", binary="gpuready", version=__version__)


def main() -> None:
    program.run()
