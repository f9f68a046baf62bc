"""`invoke install`: build an environment from its lock alone, atomically."""

from __future__ import annotations

import functools
from typing import Any, Callable

from invoke import task
from invoke.exceptions import Exit

from .. import install as install_mod
from ..config import settings as settings_of
from ..errors import EXIT_FAILED, GpureadyError, UsageError
from ._common import cli_errors

INSTALL_HELP = {
    "env": "install the environment folder envs/NAME (default: the one planned for this host)",
    "prefix": "where to install it (default: <user data dir>/gpuready/envs/NAME, or gpuready.prefix_root)",
}


def interrupts_exit(func: Callable[..., Any]) -> Callable[..., Any]:
    """Ctrl-C (or SIGTERM) during an install: one line, exit 1; the old environment is as it was."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            raise Exit("gpuready: interrupted; any previous environment is as it was", code=EXIT_FAILED) from None

    return wrapper


def folder_for(c: Any, env: str | None) -> tuple[Any, Any]:
    """(the env folder to install, the host plan when it is that folder's plan, else None)."""
    from ..envfolder import EnvFolder, env_folders, find_env
    from ..locking import folders_named
    from ..plan import NoPlan
    from .plan import plan_for_flags

    envs_dir = settings_of(c.config)["envs_dir"]
    if env:
        folder = folders_named(envs_dir, [env])[0]
        inputs = folder.inputs
        try:  # the host's plan for the same release: its warnings (ptx-jit) shape the activation
            plan = plan_for_flags(c, python=inputs.python, flavor=inputs.flavor, tf=f"=={inputs.tensorflow}")
        except (GpureadyError, NoPlan):
            plan = None
        return folder, plan if plan is not None and plan.env == folder.name else None
    plan = plan_for_flags(c)
    folder = find_env(envs_dir, plan)
    if folder is None:
        known = ", ".join(f.name for f in env_folders(envs_dir)) or "none"
        exists = EnvFolder(f"{envs_dir}/{plan.env}").inputs_path.exists()
        raise UsageError(f"no lock for this host's plan {plan.env} under {envs_dir}"
                         f"{' (its inputs differ from the plan)' if exists else ''}: run `invoke lock` "
                         f"first, or pass --env NAME (known: {known})")
    return folder, plan


@task(help=INSTALL_HELP)
@interrupts_exit
@cli_errors
def install(c, env=None, prefix=None):
    """Build an environment from its lock alone: hash-verified, staged, swapped in when complete."""
    from ..activation import activation_line
    from ..setup import RichSteps

    folder, plan = folder_for(c, env)
    current, why = folder.is_current()
    if not current:
        raise UsageError(f"envs/{folder.name}: {why}. Relock it (invoke lock --env {folder.name}) "
                         "or restore the committed files; nothing was installed")
    steps = RichSteps()
    result = install_mod.install(folder, prefix, settings=settings_of(c.config),
                                 warnings=[w.code for w in plan.warnings] if plan else (),
                                 plan=plan.to_dict() if plan else None, steps=steps)
    what = "Replaced" if result.replaced else "Installed"
    steps.note(f"{what} {result.env}: {len(result.packages)} packages from {folder.lock_file.name} "
               f"(sha256 {result.lock_sha256[:12]}) at {result.prefix} in {result.seconds['total']:.1f} s "
               f"with {result.installer.split(' (')[0]}.")
    for reason in result.activation.reasons:
        steps.note(f"  activation: {reason}")
    steps.note(f"Activate it with:  {activation_line(result.prefix, result.flavor)}")
