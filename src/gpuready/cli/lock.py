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
    "check": "write nothing; exit 1 naming every folder whose lock no longer matches its inputs or "
             "whose lock files say what a lock must not (unpinned, unhashed, index/link/editable/URL "
             "lines, pylock.toml disagreeing), with the file and line",
    "deep": "with --check: also re-resolve each pip folder with its recorded cut-off in a temporary "
            "directory and compare the bytes (needs the package index)",
    "upgrade": "move every package to the newest on the index (a new cut-off) and print what moved; "
               "without it a relock keeps every pin",
    "upgrade-package": "move only this package (and what it needs) to the newest on the index, print "
                       "what moved; may be given several times",
}


def _say(message: str) -> None:
    print(message, flush=True)


@task(help=LOCK_HELP, iterable=["env", "upgrade_package"])
@cli_errors
def lock(c, driver=None, gpu=None, python=None, platform=None, wsl=False, flavor=None, tf=None,
         env=None, all=False, check=False, deep=False, upgrade=False, upgrade_package=None):
    """Lock an environment: the plan for this host (or for the plan flags), --env folders, or --all.

    A relock with unchanged inputs keeps every pin (the folder's recorded cut-off); --upgrade and
    --upgrade-package move deliberately and print what moved."""
    names = list(env or [])
    packages = tuple(p for p in (upgrade_package or []) if p)
    if upgrade and packages:
        raise UsageError("--upgrade moves every package, --upgrade-package only those named: give one or "
                         "the other")
    if check and (upgrade or packages):
        raise UsageError("--check writes nothing; --upgrade and --upgrade-package relock: give one or the other")
    if deep and not check:
        raise UsageError("--deep is a kind of --check: use `invoke lock --check --deep`")
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
        _check(conf, envs_dir, names, plan_flags if given else None, deep)
        return
    if all:
        if packages:
            packages = locking.check_upgrade_packages(locking.existing_folders(envs_dir), packages)
        locking.lock_all(envs_dir, conf, _say, upgrade, packages)
        return
    if names:
        folders = locking.folders_named(envs_dir, names)
        if packages:
            packages = locking.check_upgrade_packages(folders, packages)
        for folder in folders:
            locking.lock_folder(folder, conf, _say, upgrade, packages)
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
    if packages:
        from ..lock.folder import EnvFolder

        packages = locking.check_upgrade_packages([EnvFolder(f"{envs_dir}/{chosen.env}")], packages)
    locking.lock_plan(chosen, envs_dir, conf, _say, upgrade, packages)


def _check(conf, envs_dir, names, plan_flags, deep=False) -> None:
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
        if deep:
            bad = dict(stale)
            for folder in checked:
                if folder.name not in bad:
                    reason = locking.deep_check(folder, conf, _say)
                    if reason is not None:
                        stale.append((folder.name, reason))
    if deep and plan_flags is not None and not stale:
        reason = locking.deep_check(folder, conf, _say)
        if reason is not None:
            stale.append((folder.name, reason))
    seconds = time.monotonic() - started
    bad = dict(stale)
    for name in folders:
        _say(f"stale    envs/{name}: {bad[name]}" if name in bad else f"current  envs/{name}")
    if stale:
        print(f"gpuready: {len(stale)} of {len(folders)} environment folders need `invoke lock`: "
              + ", ".join(name for name, _ in stale), file=sys.stderr)
        raise Exit(code=1)
    how = ", re-resolved with their cut-offs" if deep else ""
    _say(f"all {len(folders)} environment folders are current{how} ({seconds:.2f} s)")

