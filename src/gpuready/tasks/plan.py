"""`invoke plan`: choose TensorFlow / CUDA / cuDNN for this host (or a what-if host)."""

from __future__ import annotations

from typing import Any

from invoke import task
from invoke.exceptions import Exit

from .. import constraints as flags
from .. import detect, render
from ..plan import NoPlan, Plan, make_plan
from ._common import cli_errors, load_matrix, print_json

PLAN_HELP = {
    "driver": "what-if NVIDIA driver version (e.g. 535.104.05), or 'none'",
    "gpu": "what-if GPUs by compute capability, comma-separated (e.g. 8.0,7.5)",
    "python": "Python X.Y to plan for (default: the one running gpuready)",
    "platform": "linux-64, linux-aarch64, osx-arm64 or win-64",
    "wsl": "plan for WSL2 (the Windows driver column applies)",
    "flavor": "pip (default) or conda",
    "tf": "constrain TensorFlow with a PEP 440 specifier (e.g. 2.15 or '>=2.16,<2.19')",
}


def plan_for_flags(c: Any, *, driver: str | None = None, gpu: str | None = None,
                   python: str | None = None, platform: str | None = None, wsl: bool = False,
                   flavor: str | None = None, tf: str | None = None) -> Plan:
    """Detect, apply the overrides, plan. Raises NoPlan / UsageError."""
    constraints = flags.constraints_from_flags(tf, flavor, python)
    matrix = load_matrix(c)
    host = detect.detect_host(matrix)
    host = flags.apply_overrides(host, matrix, driver=driver, gpu=gpu, python=python,
                                 platform=platform, wsl=wsl)
    return make_plan(host, matrix, constraints)


@task(help={**PLAN_HELP, "json": "print the plan as one JSON object"})
@cli_errors
def plan(c, driver=None, gpu=None, python=None, platform=None, wsl=False, flavor=None, tf=None,
         json=False):
    """Choose the TensorFlow, CUDA and cuDNN versions for this host, and say why."""
    try:
        chosen = plan_for_flags(c, driver=driver, gpu=gpu, python=python, platform=platform,
                                wsl=wsl, flavor=flavor, tf=tf)
    except NoPlan as error:
        if json:
            print_json(error.to_dict())
        else:
            render.show_no_plan(error)
        raise Exit(code=error.exit_code) from None
    if json:
        print_json(chosen.to_dict())
    else:
        render.show_plan(chosen)
