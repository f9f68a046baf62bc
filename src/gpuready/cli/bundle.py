"""`invoke bundle`: one environment with everything it needs to be built and certified offline."""

from __future__ import annotations

from invoke import task
from invoke.exceptions import Exit

from ..errors import UsageError
from ..model.plan import NoPlan
from ._common import PLAN_FLAGS, PLAN_HELP, cli_errors, plan_for_flags, settings

BUNDLE_HELP = {
    **PLAN_HELP,
    "env": "bundle the environment folder envs/NAME (default: the one planned for this host or the plan flags)",
    "out": "the bundle folder to write (replaced only when the new bundle is complete)",
    "tar": "write the bundle as one file, OUT.tar, instead of a folder",
    "jobs": "files fetched at once (default 8)",
}


def _jobs(value: object) -> int:
    try:
        jobs = int(str(value))
    except ValueError:
        raise UsageError(f"--jobs must be a whole number, not {value!r}") from None
    if not 1 <= jobs <= 64:
        raise UsageError(f"--jobs must be between 1 and 64, not {jobs}")
    return jobs


@task(help=BUNDLE_HELP)
@cli_errors
def bundle(c, out=None, env=None, tar=False, jobs=None, driver=None, gpu=None, python=None, platform=None,
           wsl=False, flavor=None, tf=None):
    """Write a bundle: a lock, its wheels, gpuready and uv, to set up with no network."""
    from .. import bundle as bundling
    from ..lock import folders_named, lock_plan
    from ..lock.folder import EnvFolder, find_env

    if not out:
        raise UsageError("--out DIR is required: the folder the bundle is written to")
    workers = _jobs(8 if jobs is None else jobs)
    plan_flags = dict(driver=driver, gpu=gpu, python=python, platform=platform, wsl=wsl, flavor=flavor, tf=tf)
    given = sorted(f"--{k}" for k in PLAN_FLAGS if plan_flags.get(k))
    if env and given:
        raise UsageError(f"--env and {', '.join(given)}: give the folder or the plan flags, not both")
    conf = settings(c)
    bundling.check_out(out, tar)  # a bad --out stops here, before any work
    if env:
        folder = folders_named(conf.envs_dir, [env])[0]
    else:
        try:
            chosen = plan_for_flags(conf, **plan_flags)
        except NoPlan as error:
            from .render import show_no_plan

            show_no_plan(error)
            raise Exit(code=error.exit_code) from None
        if chosen.flavor != "pip":
            raise UsageError(bundling.CONDA_NOT_YET)
        folder = find_env(conf.envs_dir, chosen)
        if folder is None:
            if EnvFolder(f"{conf.envs_dir}/{chosen.env}").inputs_path.exists():
                raise UsageError(f"envs/{chosen.env} holds other inputs than this plan: relock it "
                                 f"(invoke lock --env {chosen.env}) or give --env NAME")
            print(f"envs/{chosen.env} is not locked yet: locking it first", flush=True)
            folder = lock_plan(chosen, conf.envs_dir, conf, lambda m: print(m, flush=True))

    def say(message: str) -> None:
        if not message.startswith("fetched "):
            print(f"  {message}", flush=True)

    print(f"bundling envs/{folder.name} into {out}{'.tar' if tar else ''} ...", flush=True)
    result = bundling.make_bundle(folder, out, conf, tar=tar, jobs=workers, progress=say)
    print(f"wrote {result.path}: {result.files} files, {result.size / 1e6:.0f} MB "
          f"({result.fetched / 1e6:.0f} MB fetched, the rest from the cache) in {result.seconds:.1f} s", flush=True)
    if tar:
        print(f"sha256 {result.manifest_sha256}  {result.path.name}")
        print(f"On the offline host:  tar xf {result.path.name} && bash {result.path.stem}/install.sh "
              "--prefix PREFIX [--allow-cpu] [--level N]")
        print(f"From a mirror, at first boot:  invoke cloud.user-data --bundle-url URL --bundle-sha256 "
              f"{result.manifest_sha256}")
    else:
        print(f"On the offline host:  bash {result.path}/install.sh --prefix PREFIX [--allow-cpu] [--level N]")
