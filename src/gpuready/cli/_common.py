"""What every task shares: settings, the matrix, this host's plan, one-line errors, JSON output."""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any, Callable

from invoke.exceptions import Exit

from ..config import Settings, from_config
from ..errors import EXIT_FAILED, GpureadyError
from ..model import flags as flag_rules
from ..model.matrix import Matrix
from ..model.plan import Plan

PLAN_FLAGS = ("driver", "gpu", "python", "platform", "wsl", "flavor", "tf")
PLAN_HELP = {
    "driver": "what-if NVIDIA driver version (e.g. 535.104.05), or 'none'",
    "gpu": "what-if GPUs by compute capability, comma-separated (e.g. 8.0,7.5)",
    "python": "Python X.Y to plan for (default: the one running gpuready)",
    "platform": "linux-64, linux-aarch64, osx-arm64 or win-64",
    "wsl": "plan for WSL2 (the Windows driver column applies)",
    "flavor": "pip (default) or conda",
    "tf": "constrain TensorFlow with a PEP 440 specifier (e.g. 2.15 or '>=2.16,<2.19')",
}


def cli_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Show a `GpureadyError` as its message and exit with its code; never a traceback. Ctrl-C
    (or SIGTERM, which install turns into an interrupt) is one line and exit 1: whatever was
    under way stopped, and any previous environment is as it was."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GpureadyError as exc:
            raise Exit(f"gpuready: {exc.message}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("gpuready: interrupted; any previous environment is as it was", code=EXIT_FAILED) from None

    return wrapper


def settings(c: Any) -> Settings:
    """The validated gpuready settings of this run (UsageError naming a wrong one)."""
    return from_config(c.config)


def load_matrix(conf: Settings) -> Matrix:
    from ..model.matrix import load

    return load(conf.matrix_dir)


def plan_for_flags(conf: Settings, matrix: Matrix | None = None, *, driver: str | None = None,
                   gpu: str | None = None, python: str | None = None, platform: str | None = None,
                   wsl: bool = False, flavor: str | None = None, tf: str | None = None) -> Plan:
    """Detect this host, apply the what-if flags, plan. Raises NoPlan / UsageError.

    The flags are checked before anything is probed."""
    from ..detect import detect_host
    from ..model.planner import make_plan

    constraints = flag_rules.constraints_from_flags(tf, flavor, python)
    flag_rules.check_overrides(driver=driver, gpu=gpu, python=python, platform=platform)
    matrix = matrix if matrix is not None else load_matrix(conf)
    host = detect_host(matrix)
    host = flag_rules.apply_overrides(host, matrix, driver=driver, gpu=gpu, python=python,
                                      platform=platform, wsl=wsl)
    return make_plan(host, matrix, constraints)


def print_json(data: Any) -> None:
    """Print one JSON document; a reader that closed the pipe early (`| head`) is not an error."""
    try:
        json.dump(data, sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
