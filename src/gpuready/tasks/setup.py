"""`invoke setup`: detect, plan, lock, install, certify; a re-run with nothing changed does nothing."""

from __future__ import annotations

from invoke import task
from invoke.exceptions import Exit

from .. import render
from .. import setup as setup_mod
from ..plan import NoPlan
from ._common import cli_errors
from .install import interrupts_exit
from .plan import PLAN_HELP

SETUP_HELP = {
    **PLAN_HELP,
    "prefix": "where to install (default: <user data dir>/gpuready/envs/<env>, or gpuready.prefix_root)",
    "level": "certification level 0-3 (default 2: train the Conv2D model)",
    "allow-cpu": "accept an environment certified on the CPU only (exit 0 instead of 3)",
    "force": "redo everything (install and certify) even when nothing changed; a current lock is "
             "kept (it is the input: `invoke lock` remakes it)",
    "yes": "never ask (cloud-init, CI); without it, setup asks before replacing an environment",
}


@task(help=SETUP_HELP)
@interrupts_exit
@cli_errors
def setup(c, driver=None, gpu=None, python=None, platform=None, wsl=False, flavor=None, tf=None,
          prefix=None, level=2, allow_cpu=False, force=False, yes=False):
    """Detect, plan, lock, install and certify: a working, proven TensorFlow environment."""
    steps = setup_mod.RichSteps()
    flags = dict(driver=driver, gpu=gpu, python=python, platform=platform, wsl=wsl, flavor=flavor, tf=tf)
    try:
        outcome = setup_mod.run(c, plan_flags=flags, prefix=prefix, level=int(level), allow_cpu=allow_cpu,
                                force=force, yes=yes, steps=steps)
    except NoPlan as error:
        render.show_no_plan(error)
        raise Exit(code=error.exit_code) from None
    setup_mod.show(outcome, steps.console)
    if outcome.exit_code:
        raise Exit(code=outcome.exit_code)
