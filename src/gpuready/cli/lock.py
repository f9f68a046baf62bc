"""`invoke lock`: a plan becomes envs/<env-name>/ (inputs + lock files); --check says what is stale."""

from __future__ import annotations

import sys
import time

from invoke import task
from invoke.exceptions import Exit

from .. import lock as locking
from ..errors import UsageError
from ..model.plan import NoPlan
from ._common import PLAN_HELP, cli_errors, plan_for_flags, settings

LOCK_HELP = {
    **PLAN_HELP,
    "env": "(re)lock the folder envs/NAME from its inputs.toml; may be given several times",
    "all": "relock every folder under envs/ from its inputs",
    "check": "write nothing; exit 1 naming every folder whose lock no longer matches its inputs",
}


def _say(message: str) -> None:
    print(message, flush=True)


@task(help=LOCK_HELP, iterable=["env"])
@cli_errors
def lock(c, driver=None, gpu=None, python=None, platform=None, wsl=False, flavor=None, tf=None,
         env=None, all=False, check=False):
    """Lock an environment: the plan for this host (or for the plan flags), --env folders, or --all."""
    names = list(env or [])
    plan_flags = dict(driver=driver, gpu=gpu, python=python, platform=platform, wsl=wsl,
                      flavor=flavor, tf=tf)
    given = sorted(f"--{k}" for k, v in plan_flags.items() if v)
    if all and names:
        raise UsageError("--all and --env: give one or the other")
    if given and (all or names):
        raise UsageError(f"{', '.join(given)} plan a new environment; --env and --all relock existing "
                         "folders from their inputs: give one or the other")
    conf = settings(c)
    envs_dir = conf.envs_dir

    if check:
        _check(conf, envs_dir, names, plan_flags if given else None)
        return
    if all:
        locking.lock_all(envs_dir, conf, _say)
        return
    if names:
        for folder in locking.folders_named(envs_dir, names):
            locking.lock_folder(folder, conf, _say)
        return
    try:
        chosen = plan_for_flags(conf, **plan_flags)
    except NoPlan as error:
        from .render import show_no_plan

        show_no_plan(error)
        raise Exit(code=error.exit_code) from None
    device = (f"GPU, CUDA {chosen.cuda}, cuDNN {chosen.cudnn}" if chosen.device == "gpu" else "CPU")
    _say(f"plan: {chosen.distribution} {chosen.tensorflow} ({device}), Python {chosen.python}, "
         f"{chosen.platform}, {chosen.flavor} flavor -> envs/{chosen.env}")
    for warning in chosen.warnings:
        _say(f"warning {warning.code}: {warning.message}")
    locking.lock_plan(chosen, envs_dir, conf, _say)


def _check(conf, envs_dir, names, plan_flags) -> None:
    started = time.monotonic()
    if plan_flags is not None:
        from ..lock.folder import EnvFolder, find_env

        chosen = plan_for_flags(conf, **plan_flags)
        folder = find_env(envs_dir, chosen)
        if folder is None:
            where = EnvFolder(f"{envs_dir}/{chosen.env}")
            reason = ("its inputs.toml differs from this plan" if where.inputs_path.exists()
                      else "not locked yet")
            stale, folders = [(chosen.env, reason)], [chosen.env]
        else:
            stale, folders = locking.check_folders([folder]), [folder.name]
    else:
        checked = (locking.folders_named(envs_dir, names) if names
                   else locking.existing_folders(envs_dir))
        stale, folders = locking.check_folders(checked), [f.name for f in checked]
    seconds = time.monotonic() - started
    bad = dict(stale)
    for name in folders:
        _say(f"stale    envs/{name}: {bad[name]}" if name in bad else f"current  envs/{name}")
    if stale:
        print(f"gpuready: {len(stale)} of {len(folders)} environment folders need `invoke lock`: "
              + ", ".join(name for name, _ in stale), file=sys.stderr)
        raise Exit(code=1)
    _say(f"all {len(folders)} environment folders are current ({seconds:.2f} s)")

