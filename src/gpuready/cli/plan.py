"""`invoke plan`: choose TensorFlow / CUDA / cuDNN for this host (or a what-if host)."""

from __future__ import annotations

from invoke import task
from invoke.exceptions import Exit

from ..model.plan import NoPlan
from ._common import PLAN_HELP, cli_errors, plan_for_flags, print_json, settings
from .render import show_no_plan, show_plan


@task(help={**PLAN_HELP, "json": "print the plan as one JSON object"})
@cli_errors
def plan(c, driver=None, gpu=None, python=None, platform=None, wsl=False, flavor=None, tf=None,
         json=False):
    """Choose the TensorFlow, CUDA and cuDNN versions for this host, and say why."""
    conf = settings(c)
    try:
        chosen = plan_for_flags(conf, driver=driver, gpu=gpu, python=python, platform=platform,
                                wsl=wsl, flavor=flavor, tf=tf)
    except NoPlan as error:
        if json:
            print_json(error.to_dict())
        else:
            show_no_plan(error)
        raise Exit(code=error.exit_code) from None
    if json:
        print_json(chosen.to_dict())
    else:
        show_plan(chosen)
