"""`invoke install`: build an environment from its lock alone, atomically."""

from __future__ import annotations

from typing import Any

from invoke import task

from ..config import Settings
from ..errors import GpureadyError, UsageError
from ..files import check_prefix_writable
from ._common import cli_errors, plan_for_flags, settings

INSTALL_HELP = {
    "env": "install the environment folder envs/NAME (default: the one planned for this host)",
    "prefix": "where to install it (default: <user data dir>/gpuready/envs/NAME, or gpuready.prefix_root)",
    "bundle": "install the environment of this bundle folder (invoke bundle) from its wheels alone, "
              "with no network",
}


def folder_for(conf: Settings, env: str | None) -> tuple[Any, Any]:
    """(the env folder to install, the host plan when it is that folder's plan, else None)."""
    from ..lock import folders_named
    from ..lock.folder import EnvFolder, env_folders, find_env
    from ..model.plan import NoPlan

    if env:
        folder = folders_named(conf.envs_dir, [env])[0]
        inputs = folder.inputs
        try:  # the host's plan for the same release: its warnings (ptx-jit) shape the activation
            plan = plan_for_flags(conf, python=inputs.python, flavor=inputs.flavor, tf=f"=={inputs.tensorflow}")
        except (GpureadyError, NoPlan):
            plan = None
        return folder, plan if plan is not None and plan.env == folder.name else None
    plan = plan_for_flags(conf)
    folder = find_env(conf.envs_dir, plan)
    if folder is None:
        known = ", ".join(f.name for f in env_folders(conf.envs_dir)) or "none"
        exists = EnvFolder(f"{conf.envs_dir}/{plan.env}").inputs_path.exists()
        raise UsageError(f"no lock for this host's plan {plan.env} under {conf.envs_dir}"
                         f"{' (its inputs differ from the plan)' if exists else ''}: run `invoke lock` "
                         f"first, or pass --env NAME (known: {known})")
    return folder, plan


@task(help=INSTALL_HELP)
@cli_errors
def install(c, env=None, prefix=None, bundle=None):
    """Build an environment from its lock alone: hash-verified, staged, swapped in when complete."""
    from ..env.activation import activation_line
    from ..env.install import install as install_env
    from ..env.layout import resolve_prefix
    from .render import RichSteps

    conf = settings(c)
    if bundle is not None:
        from ..bundle import check_bundle

        if env:
            raise UsageError("--bundle and --env: a bundle holds one environment; give one or the other")
        if not str(bundle).strip():
            raise UsageError("--bundle needs the bundle's folder")
        root, manifest = check_bundle(bundle)
        conf = conf.model_copy(update={"envs_dir": str(root / "env"), "wheels_dir": str(root / "wheels")})
        env = str(manifest["env"])
    folder, plan = folder_for(conf, env)
    check_prefix_writable(resolve_prefix(folder.name, prefix, conf))  # a bad --prefix stops here, before any work
    current, why = folder.is_current()
    if not current:
        raise UsageError(f"envs/{folder.name}: {why}. Relock it (invoke lock --env {folder.name}) "
                         "or restore the committed files; nothing was installed")
    steps = RichSteps()
    result = install_env(folder, prefix, settings=conf, warnings=[w.code for w in plan.warnings] if plan else (),
                         plan=plan, steps=steps)
    what = "Replaced" if result.replaced else "Installed"
    steps.note(f"{what} {result.env}: {len(result.packages)} packages from {folder.lock_file.name} "
               f"(sha256 {result.lock_sha256[:12]}) at {result.prefix} in {result.seconds['total']:.1f} s "
               f"with {result.installer.split(' (')[0]}.")
    for reason in result.activation.reasons:
        steps.note(f"  activation: {reason}")
    steps.note(f"Activate it with:  {activation_line(result.prefix, result.flavor)}")
