"""`invoke setup`: detect, plan, lock, install, certify; a re-run with nothing changed does nothing."""

from __future__ import annotations

import sys
import time

from invoke import task
from invoke.exceptions import Exit

from ..errors import GpureadyError, UsageError
from ..model.flags import DEFAULT_LEVEL, parse_level
from ..model.plan import NoPlan
from ._common import PLAN_HELP, cli_errors, plan_for_flags, settings
from .render import RichSteps, show_no_plan, show_setup

SETUP_HELP = {
    **PLAN_HELP,
    "prefix": "where to install (default: <user data dir>/gpuready/envs/<env>, or gpuready.prefix_root)",
    "level": "certification level 0-3 (default 2: train the Conv2D model)",
    "allow-cpu": "accept an environment certified on the CPU only (exit 0 instead of 3)",
    "force": "redo everything (install and certify) even when nothing changed; a current lock is "
             "kept (it is the input: `invoke lock` remakes it)",
    "yes": "never ask (cloud-init, CI); without it, setup asks before replacing an environment",
    "prom": "also write the certificate as Prometheus metrics to this .prom file (node_exporter's "
            "textfile collector)",
    "bundle": "build the environment of this bundle folder (invoke bundle) with no network: its lock, "
              "its wheels only",
}


def bundle_plan_flags(bundle: str, given: dict) -> tuple[object, dict]:
    """The checked bundle folder, and the plan flags that plan its environment on this host.

    Every file is checked against the manifest first (WorkFailed naming each one that is not as
    made); what-if flags are refused: a bundle installs its own environment, on this host."""
    from ..bundle import check_bundle

    named = sorted(f"--{k}" for k, v in given.items() if v)
    if named:
        raise UsageError(f"--bundle and {', '.join(named)}: a bundle holds one environment, planned "
                         "when it was made; give the plan flags to `invoke bundle` instead")
    if not str(bundle).strip():
        raise UsageError("--bundle needs the bundle's folder")
    root, manifest = check_bundle(bundle)
    return root, dict(python=manifest["python"], flavor=manifest["flavor"], tf=f"=={manifest['tensorflow']}")


def _confirm(question: str) -> bool:
    """Ask once; the question names paths and environments, so it is shown as text, not markup."""
    from rich.prompt import Confirm
    from rich.text import Text

    from .render import console

    return Confirm.ask(Text(question), default=False, console=console())


@task(help=SETUP_HELP)
@cli_errors
def setup(c, driver=None, gpu=None, python=None, platform=None, wsl=False, flavor=None, tf=None,
          prefix=None, level=None, allow_cpu=False, force=False, yes=False, bundle=None, prom=None):
    """Detect, plan, lock, install and certify: a working, proven TensorFlow environment."""
    from ..pipeline import run

    conf = settings(c)
    chosen_level = parse_level(DEFAULT_LEVEL if level is None else level)
    prom_path = None
    if prom is not None:
        from ..certify.metrics import check_prom_path

        prom_path = check_prom_path(prom)
    steps = RichSteps()
    started = time.perf_counter()
    where = None
    plan_flags = dict(driver=driver, gpu=gpu, python=python, platform=platform, wsl=wsl, flavor=flavor, tf=tf)
    if bundle is not None:
        where, plan_flags = bundle_plan_flags(bundle, plan_flags)
    try:
        chosen = plan_for_flags(conf, **plan_flags)
    except NoPlan as error:
        show_no_plan(error)
        raise Exit(code=error.exit_code) from None
    outcome = run(conf, chosen, prefix=prefix, level=chosen_level, allow_cpu=allow_cpu, force=force,
                  yes=yes, steps=steps, confirm=_confirm, interactive=sys.stdin.isatty(),
                  certify_timeout=conf.certify_timeout, plan_seconds=time.perf_counter() - started,
                  bundle=where)
    show_setup(outcome, steps.console)
    if prom_path is not None:
        from ..certify.metrics import write_prom
        from ..env.layout import read_certificate

        try:
            certificate = read_certificate(outcome.prefix)
        except GpureadyError:
            certificate = None
        write_prom(prom_path, certificate, verified=None if certificate else False, prefix=outcome.prefix)
    if outcome.exit_code:
        raise Exit(code=outcome.exit_code)
