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
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from ..config import Settings
from ..errors import EXIT_USAGE, GpureadyError, UsageError, WorkFailed
from ..model.inputs import Inputs, inputs_from_plan
from packaging.utils import canonicalize_name

from .folder import Cutoff, EnvFolder, env_folders

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


def now_utc() -> str:
    """The cut-off a new resolution takes: now, to the second, RFC 3339 UTC."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def choose_cutoff(folder: EnvFolder, inputs: Inputs, upgrade: bool = False,
                  upgrade_packages: tuple[str, ...] = ()) -> tuple[Cutoff, str]:
    """The cut-off to lock `inputs` into `folder` with, and why (printed).

    Unchanged inputs keep the recorded cut-off (so nothing moves); --upgrade-package gives the
    named packages a cut-off of now; --upgrade, new inputs or a new folder take now. A folder
    locked before cut-offs were recorded gets, per package, the upload time of its locked wheel
    (`_upload_times`), so its first relock keeps its pins.
    """
    state = folder.state()
    same_inputs = state is not None and state.get("input_sha256") == inputs.digest()
    recorded = Cutoff.from_state(state) if state is not None else None
    when = now_utc()
    if upgrade:
        return Cutoff(when), f"--upgrade: cut-off {when}"
    if same_inputs and recorded is not None:
        if upgrade_packages:
            return (recorded.with_packages(upgrade_packages, when),
                    f"cut-off {recorded.exclude_newer}; {', '.join(upgrade_packages)} {when}")
        return recorded, f"recorded cut-off {recorded.exclude_newer}"
    if same_inputs and recorded is None:
        uploads = _upload_times(folder)
        if uploads:
            cutoff = Cutoff(max(uploads.values()), tuple(sorted(uploads.items())))
            if upgrade_packages:
                cutoff = cutoff.with_packages(upgrade_packages, when)
            return cutoff, (f"cut-off {cutoff.exclude_newer}: none was recorded, so each package's is the "
                            "upload time of its locked wheel and nothing moves")
    why = "new inputs" if state is not None else "a new folder"
    return Cutoff(when), f"cut-off {when} ({why})"


# A release's files (wheels for every platform, the sdist) are uploaded within minutes of each
# other: a per-package cut-off this long after the locked wheel keeps all of their hashes.
_RELEASE_BATCH = timedelta(hours=1)


def _upload_times(folder: EnvFolder) -> dict[str, str]:
    """{package: an hour after the upload of its newest wheel in pylock.toml} ({} when the
    lock has none). As per-package cut-offs they make a fresh resolution pick the locked
    versions again: a folder locked before gpuready recorded cut-offs keeps its pins."""
    import tomllib

    try:
        data = tomllib.loads((folder.path / "pylock.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    found = {}
    for package in data.get("packages", []):
        if not isinstance(package, dict):
            continue
        times = [w.get("upload-time") for w in package.get("wheels", []) if isinstance(w, dict)]
        times = [t if t.tzinfo else t.replace(tzinfo=timezone.utc) for t in times if isinstance(t, datetime)]
        if times:
            newest = max(times).astimezone(timezone.utc) + _RELEASE_BATCH
            found[canonicalize_name(str(package.get("name")))] = newest.strftime("%Y-%m-%dT%H:%M:%SZ")
    return found


def moves(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What a relock moved, one line each: `name old -> new`, `added name version`, `removed ...`."""
    lines = [f"moved   {name} {before[name]} -> {after[name]}"
             for name in sorted(before.keys() & after.keys()) if before[name] != after[name]]
    lines += [f"added   {name} {after[name]}" for name in sorted(after.keys() - before.keys())]
    lines += [f"removed {name} {before[name]}" for name in sorted(before.keys() - after.keys())]
    return lines


def _previous_pins(folder: EnvFolder) -> dict[str, str]:
    try:
        return folder.locked_packages() if folder.lock_file.exists() else {}
    except Exception:  # a lock that no longer parses: everything reads as added
        return {}


def resolve(folder: EnvFolder, inputs: Inputs, work: Path, settings: Settings, progress: Progress,
            cutoff: Cutoff | None) -> tuple[dict[str, bytes], Cutoff | None]:
    """Run the flavor's locker in `work`; the files and the cut-off they were made with (None
    when the index gives no upload times: then the previous lock serves as preferences)."""
    if inputs.flavor != "pip":
        return _locker(inputs.flavor)(inputs, work, settings, progress), None
    from .uv import NoUploadTimes, lock as uv_lock

    try:
        return uv_lock(inputs, work, settings, progress, cutoff=cutoff), cutoff
    except NoUploadTimes as error:
        _say(progress, f"  {error.message}: locking without one (a relock keeps the previous pins "
                       "where they still resolve; `lock --check --deep` cannot re-resolve it)")
    previous = folder.path / "requirements.txt"
    preferences = previous.read_bytes() if previous.exists() else None
    for leftover in work.iterdir():
        leftover.unlink()
    return uv_lock(inputs, work, settings, progress, preferences=preferences), None


def lock_inputs(path: str | os.PathLike[str], inputs: Inputs, settings: Settings,
                progress: Progress = None, upgrade: bool = False,
                upgrade_packages: tuple[str, ...] = ()) -> EnvFolder:
    """Resolve `inputs` and write them with their lock files into the folder `path`.

    Unchanged inputs resolve with the folder's recorded cut-off and give the same files;
    `upgrade` moves every package to the newest on the index, `upgrade_packages` only those.
    Prints what moved."""
    folder = EnvFolder(path)
    tool = "uv" if inputs.flavor == "pip" else "conda-lock"
    cutoff, why = choose_cutoff(folder, inputs, upgrade, upgrade_packages)
    note = f", {why}" if inputs.flavor == "pip" else ""
    _say(progress, f"locking envs/{folder.name} ({inputs.flavor} flavor, {tool}{note}) ...")
    before = _previous_pins(folder)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpuready-lock-") as work:
        files, used = resolve(folder, inputs, Path(work), settings, progress, cutoff)
    folder.changed = tuple(folder.write(inputs, files, used))
    folder.seconds = time.monotonic() - started
    after = folder.locked_packages()
    folder.moves = tuple(moves(before, after)) if before else ()
    count = len(after)
    what = ("wrote " + ", ".join(folder.changed)) if folder.changed else "unchanged"
    _say(progress, f"  {what}: {count} packages, {folder.lock_file.name} sha256 "
                   f"{folder.lock_sha256()[:16]}..., {folder.seconds:.1f} s")
    if before:
        for line in folder.moves or ("no package moved",):
            _say(progress, f"  {line}")
    return folder


def lock_plan(plan: Any, envs_dir: str | os.PathLike[str], settings: Settings,
              progress: Progress = None, upgrade: bool = False,
              upgrade_packages: tuple[str, ...] = ()) -> EnvFolder:
    """Lock a `gpuready.plan.Plan` into envs_dir/<plan.env>/ (made or replaced)."""
    return lock_inputs(Path(envs_dir) / plan.env, inputs_from_plan(plan), settings, progress,
                       upgrade, upgrade_packages)


def lock_folder(folder: EnvFolder, settings: Settings, progress: Progress = None, upgrade: bool = False,
                upgrade_packages: tuple[str, ...] = ()) -> EnvFolder:
    """(Re)lock a folder from its own inputs.toml; `InputsError` (exit 2) when they are unusable.
    Of `upgrade_packages`, only those the folder's lock has apply to it."""
    names = tuple(n for n in upgrade_packages if canonicalize_name(n) in _previous_pins(folder))
    return lock_inputs(folder.path, folder.inputs, settings, progress, upgrade, names)


def check_upgrade_packages(folders: list[EnvFolder], names: tuple[str, ...]) -> tuple[str, ...]:
    """The canonical names of --upgrade-package; `UsageError` naming one that no folder's lock has."""
    canonical = tuple(dict.fromkeys(canonicalize_name(n) for n in names))
    locked: set[str] = set()
    for folder in folders:
        locked |= set(_previous_pins(folder))
    missing = [n for n in canonical if n not in locked]
    if missing:
        where = ", ".join(f"envs/{f.name}" for f in folders) or "no folder"
        raise UsageError(f"--upgrade-package: {', '.join(missing)} is not in the lock of {where}; "
                         "name a package the lock pins (a new requirement goes into inputs.toml)")
    return canonical


def lock_all(envs_dir: str | os.PathLike[str], settings: Settings,
             progress: Progress = None, upgrade: bool = False,
             upgrade_packages: tuple[str, ...] = ()) -> list[EnvFolder]:
    """Relock every folder under envs_dir. Goes on past a folder that fails (except when the
    index is unreachable: the others would fail the same way) and raises at the end."""
    from .index import IndexUnreachable

    folders = existing_folders(envs_dir)
    done, failures = [], []
    for folder in folders:
        try:
            done.append(lock_folder(folder, settings, progress, upgrade, upgrade_packages))
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
    """(name, reason) of every folder that is stale or whose lock fails the content check."""
    stale = []
    for folder in folders:
        current, reason = folder.is_current()
        if not current:
            stale.append((folder.name, reason))
    return stale


def deep_check(folder: EnvFolder, settings: Settings, progress: Progress = None) -> str | None:
    """Re-resolve a current pip folder with its recorded cut-off in a temporary directory and
    compare the bytes; None when they are the same, else why not. Needs the index. A conda folder
    has no cut-off (conda-lock takes none): its content check is all there is."""
    from .folder import LOCK_FILES
    from .index import ResolutionFailed
    from .uv import lock as uv_lock

    inputs = folder.inputs
    if inputs.flavor != "pip":
        _say(progress, f"  envs/{folder.name}: conda flavor, no cut-off to re-resolve with (content checked)")
        return None
    cutoff = folder.cutoff()
    if cutoff is None:
        return (f"lock-state.toml records no cut-off (locked before gpuready recorded one, or against an "
                f"index without upload times), so it cannot be re-resolved: relock with "
                f"`invoke lock --env {folder.name}`")
    _say(progress, f"re-resolving envs/{folder.name} with its cut-off {cutoff.exclude_newer} ...")
    with tempfile.TemporaryDirectory(prefix="gpuready-deep-") as work:
        try:
            files = uv_lock(inputs, Path(work), settings, progress, cutoff=cutoff)
        except ResolutionFailed as error:
            return f"does not re-resolve with its cut-off {cutoff.exclude_newer}: {error.message}"
        differ = [name for name in LOCK_FILES["pip"] if (folder.path / name).read_bytes() != files[name]]
        if not differ:
            return None
        from .folder import _pins

        fresh = _pins(files["requirements.txt"].decode().splitlines())
        moved = moves(folder.locked_packages(), fresh)
        said = ("; ".join(" ".join(m.split()) for m in moved) + " in the re-resolution") if moved else \
            "same pins, other bytes"
        return (f"{', '.join(differ)} differ from a re-resolution with the recorded cut-off "
                f"{cutoff.exclude_newer} ({said}): the files were edited, or the index changed since; "
                f"relock with `invoke lock --env {folder.name}`")


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
