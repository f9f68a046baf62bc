"""Locking: a plan becomes an environment folder ``envs/<env-name>/`` with hashed lock files.

Owns: the environment folders (`folder`), the package index settings (`index`), the pip
flavor's locker (`uv`) and the conda flavor's (`conda`, run through `_conda_lock`). This
module is the room's face: lock a plan, a folder or all of them; check them.

May import: `gpuready.model`, `gpuready.proc`, `gpuready.files`, `gpuready.tools`,
`gpuready.config`. Not the command line, not `env` or `certify`.

Each lock resolves in a temporary directory and writes into envs/<env-name>/ only after it
has succeeded (`EnvFolder.write`), so every failure leaves the previous files as they were.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ..config import Settings
from ..errors import EXIT_USAGE, GpureadyError, UsageError, WorkFailed
from ..model.inputs import Inputs, inputs_from_plan
from .folder import EnvFolder, env_folders

Progress = Callable[[str], None] | None

def _say(progress: Progress, message: str) -> None:
    if progress is not None:
        progress(message)


def _locker(flavor: str) -> Callable[..., dict[str, bytes]]:
    if flavor == "pip":
        from . import uv as module
    else:
        from . import conda as module
    return module.lock


def lock_inputs(path: str | os.PathLike[str], inputs: Inputs, settings: Settings,
                progress: Progress = None) -> EnvFolder:
    """Resolve `inputs` and write them with their lock files into the folder `path`."""
    folder = EnvFolder(path)
    tool = "uv" if inputs.flavor == "pip" else "conda-lock"
    _say(progress, f"locking envs/{folder.name} ({inputs.flavor} flavor, {tool}) ...")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpuready-lock-") as work:
        files = _locker(inputs.flavor)(inputs, Path(work), settings, progress)
    folder.changed = tuple(folder.write(inputs, files))
    folder.seconds = time.monotonic() - started
    count = len(folder.locked_packages())
    what = ("wrote " + ", ".join(folder.changed)) if folder.changed else "unchanged"
    _say(progress, f"  {what}: {count} packages, {folder.lock_file.name} sha256 "
                   f"{folder.lock_sha256()[:16]}..., {folder.seconds:.1f} s")
    return folder


def lock_plan(plan: Any, envs_dir: str | os.PathLike[str], settings: Settings,
              progress: Progress = None) -> EnvFolder:
    """Lock a `gpuready.plan.Plan` into envs_dir/<plan.env>/ (made or replaced)."""
    return lock_inputs(Path(envs_dir) / plan.env, inputs_from_plan(plan), settings, progress)


def lock_folder(folder: EnvFolder, settings: Settings, progress: Progress = None) -> EnvFolder:
    """(Re)lock a folder from its own inputs.toml; `InputsError` (exit 2) when they are unusable."""
    return lock_inputs(folder.path, folder.inputs, settings, progress)


def lock_all(envs_dir: str | os.PathLike[str], settings: Settings,
             progress: Progress = None) -> list[EnvFolder]:
    """Relock every folder under envs_dir. Goes on past a folder that fails (except when the
    index is unreachable: the others would fail the same way) and raises at the end."""
    from .index import IndexUnreachable

    folders = existing_folders(envs_dir)
    done, failures = [], []
    for folder in folders:
        try:
            done.append(lock_folder(folder, settings, progress))
        except IndexUnreachable:
            raise
        except GpureadyError as error:
            _say(progress, f"  failed: {error.message}")
            failures.append((folder.name, error))
    if failures:
        code = EXIT_USAGE if all(e.exit_code == EXIT_USAGE for _, e in failures) else WorkFailed.exit_code
        raise GpureadyError(
            f"{len(failures)} of {len(folders)} environment folders could not be locked (their files are "
            "as they were): " + "; ".join(f"{name}: {e.message}" for name, e in failures), exit_code=code)
    return done


def check_folders(folders: list[EnvFolder]) -> list[tuple[str, str]]:
    stale = []
    for folder in folders:
        current, reason = folder.is_current()
        if not current:
            stale.append((folder.name, reason))
    return stale


def existing_folders(envs_dir: str | os.PathLike[str]) -> list[EnvFolder]:
    """Every folder under envs_dir; `UsageError` when envs_dir itself is missing."""
    if not Path(envs_dir).is_dir():
        raise UsageError(f"no environment folders: {envs_dir} is not a directory "
                         "(gpuready.envs_dir; make one with `invoke lock`)")
    return env_folders(envs_dir)


def folders_named(envs_dir: str | os.PathLike[str], names: list[str]) -> list[EnvFolder]:
    """The folders `--env NAME` names; `UsageError` naming the ones that do not exist."""
    missing = [n for n in names if not (Path(envs_dir) / n).is_dir() or "/" in n or n.startswith(".")]
    if missing:
        known = ", ".join(f.name for f in env_folders(envs_dir)) or "none"
        raise UsageError(f"--env: no folder {', '.join(missing)} under {envs_dir} (known: {known})")
    return [EnvFolder(Path(envs_dir) / n) for n in dict.fromkeys(names)]
