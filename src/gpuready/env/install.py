"""`install`: build an environment from its lock alone, atomically (see `transaction`).

pip flavor: a virtual environment for the plan's Python (this interpreter when it matches, else
pythonX.Y on PATH, else uv's managed Python when downloads are allowed), then
``uv pip sync --require-hashes`` of the lock (pip when uv is missing). conda flavor:
``conda-lock install`` with the conda executable used for locking. Before the swap the new
environment must equal its lock (every locked package at its version, nothing else); then its
activation and its `InstallRecord` are written inside it.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from .. import __version__, proc
from ..config import Settings
from ..errors import UsageError, WorkFailed
from ..files import describe_os_error, sha256_bytes
from ..lock.folder import EnvFolder
from ..lock.index import UNREACHABLE, index_url, uv_environment
from ..model.plan import Plan
from ..progress import Steps
from ..model.records import Activation, InstallRecord
from ..tools import find_conda, find_python, find_uv, tool_version
from . import activation
from .inventory import compare, installed_packages
from .layout import meta_dir, python_of, read_install_record, resolve_prefix, write_install_record
from .transaction import (Layout, check_disk, clean_leftovers, interrupts_raise, needed_bytes, prefix_lock,
                          rmtree, swap_in)



@dataclass
class InstallResult:
    prefix: Path
    env: str
    flavor: str
    lock_sha256: str
    packages: dict[str, str]
    replaced: bool
    installer: str
    interpreter: str | None
    activation: Activation
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def work_seconds(self) -> float:
        """Time spent downloading and installing (uv / pip / conda-lock), and removing the old one."""
        return self.seconds.get("packages", 0.0) + self.seconds.get("remove_old", 0.0)


# --------------------------------------------------------------------------- tool output

_HASH_UV = re.compile(r"Hash mismatch for `(?P<pkg>[^`]+)`.*?Expected:\s*(?P<want>.+?)\s*Computed:\s*(?P<got>\S+)",
                      re.S)
_HASH_PIP = re.compile(r"^\s*(?P<pkg>\S+?) from \S+?:?\s*\n\s*Expected (?P<algo>\w+) (?P<want>\w+)\s*\n\s*Got\s+(?P<got>\w+)",
                       re.M)
_LOG_PREFIX = re.compile(r"^(?:ERROR|WARNING|INFO|DEBUG):[\w.]*:", re.M)
_HASH_CONDA = re.compile(r"mismatch between the expected content and downloaded content\s+for url "
                         r"'(?P<url>[^']+)'.*?expected (?P<algo>md5|sha256): (?P<want>\w+)\s+actual (?P=algo): "
                         r"(?P<got>\w+)", re.S)


def hash_mismatch(output: str) -> str | None:
    """'name==ver: the lock has X, the download has Y' from uv's, pip's or conda's error, or None."""
    output = _LOG_PREFIX.sub("", output)  # conda-lock relays conda's lines as ERROR:root:...
    match = _HASH_CONDA.search(output)
    if match:
        algo, package = match.group("algo"), match.group("url").rsplit("/", 1)[-1]
        return (f"{package}: the lock has {algo}:{match.group('want')}, "
                f"the downloaded file has {algo}:{match.group('got')}")
    match = _HASH_UV.search(output)
    if match:
        want = " or ".join(match.group("want").split())
        return f"{match.group('pkg')}: the lock has {want}, the downloaded file has {match.group('got')}"
    match = _HASH_PIP.search(output)
    if match:
        algo = match.group("algo")
        return (f"{match.group('pkg')}: the lock has {algo}:{match.group('want')}, "
                f"the downloaded file has {algo}:{match.group('got')}")
    return None


def run_tool(cmd: Sequence[str], *, env: dict[str, str] | None = None,
             on_line: Callable[[str], None] | None = None) -> tuple[int, str]:
    """Run an installer, each output line to `on_line`; (exit code, output). Stopped on an interrupt."""
    try:
        result = proc.run(cmd, env=env, merge=True, on_line=on_line)
    except proc.NotStarted as error:
        return 127, str(error)
    return (result.returncode if result.returncode is not None else 1), result.stdout


def _tail(output: str, lines: int = 12) -> str:
    """The last lines that say something: Python tracebacks (conda-lock's) left out."""
    kept, skip_next = [], False
    for line in output.strip().splitlines():
        if skip_next:
            skip_next = False
            continue
        if line.lstrip().startswith('File "'):
            skip_next = True
            continue
        if not line.strip() or line.startswith("Traceback") or not line.strip(" ^~"):
            continue
        kept.append(line)
    return "\n".join(kept[-lines:])


# --------------------------------------------------------------------------- install


@dataclass
class _Job:
    """What one install works from: the folder, its lock, where it goes, and how it reports."""

    folder: EnvFolder
    layout: Layout
    lock_bytes: bytes
    lock_sha: str
    locked: dict[str, str]
    settings: Settings
    warnings: tuple[str, ...]
    plan: Plan | None
    steps: Steps
    seconds: dict[str, float]

    @property
    def inputs(self):  # noqa: ANN201 - the folder's Inputs
        return self.folder.inputs


def install(folder: EnvFolder, prefix: str | os.PathLike[str] | None = None, *,
            settings: Settings | None = None, warnings: Sequence[str] = (),
            plan: Plan | None = None, steps: Steps | None = None) -> InstallResult:
    """Build the environment of an env folder at `prefix` (default: under the prefix root).

    `warnings` are the plan's warning codes (ptx-jit raises CUDA_CACHE_MAXSIZE); `plan` is the
    full plan, recorded in the environment when given.
    """
    from ..detect.host import host_platform

    settings = settings or Settings()
    steps = steps or Steps()
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    inputs = folder.inputs
    lock_file = folder.lock_file
    if not lock_file.exists():
        raise UsageError(f"{lock_file} is missing: lock the environment first (invoke lock --env {inputs.env})")
    lock_bytes = lock_file.read_bytes()
    try:
        locked = folder.locked_packages()
    except Exception as error:  # noqa: BLE001 - a lock that does not parse
        raise UsageError(f"{lock_file} cannot be read: {error}") from None
    if not locked:
        raise UsageError(f"{lock_file} locks no package: it is not a lock (relock with invoke lock --env {inputs.env})")
    if settings.wheels_dir and inputs.flavor == "conda":
        raise UsageError(f"envs/{inputs.env} is a conda environment: it installs from conda channels, "
                         "not from a folder of wheels")
    if inputs.platform != host_platform():
        raise UsageError(f"envs/{inputs.env} is for {inputs.platform} and this host is {host_platform()}: "
                         "an environment installs only on its own platform")
    layout = Layout(resolve_prefix(inputs.env, prefix, settings))
    if layout.prefix.exists():  # through a symbolic link too; a dangling link is just replaced
        if not layout.prefix.is_dir() or (any(layout.prefix.iterdir())
                                          and not (meta_dir(layout.prefix) / "install.json").is_file()):
            raise UsageError(f"{layout.prefix} exists and is not an environment gpuready installed; "
                             "choose another --prefix, or remove it yourself")
    job = _Job(folder, layout, lock_bytes, sha256_bytes(lock_bytes), locked, settings, tuple(warnings),
               plan, steps, seconds)

    with interrupts_raise(), prefix_lock(layout):
        replaced = layout.prefix.exists() or layout.prefix.is_symlink()
        clean_leftovers(layout)
        check_disk(layout.parent, needed_bytes(inputs.device, settings),
                   f"the {inputs.device.upper()} environment {inputs.env}")
        seconds["prepare"] = time.perf_counter() - started
        try:
            result = _install_conda(job) if inputs.flavor == "conda" else _install_pip(job)
        except WorkFailed as error:
            if NO_SPACE.search(error.message):
                raise WorkFailed(_no_space_message(layout)) from None
            raise
        except OSError as error:  # a write of gpuready's own beside or inside the new environment
            if error.errno == errno.ENOSPC:
                raise WorkFailed(_no_space_message(layout)) from None
            raise WorkFailed(f"cannot write under {layout.parent}: {describe_os_error(error)}; the previous "
                             "environment (if any) is as it was") from None
        result.replaced = replaced
    seconds["total"] = time.perf_counter() - started
    return result


# How uv, pip and conda say that the disk is full.
NO_SPACE = re.compile(r"No space left on device|os error 28|Errno 28|ENOSPC")


def _no_space_message(layout: Layout) -> str:
    return (f"no space left on device under {layout.parent}: the install stopped and the previous "
            "environment (if any) is as it was. Free some space, or choose another --prefix "
            "(or gpuready.prefix_root), then run again")


def source_args(settings: Settings) -> list[str]:
    """Where uv (or pip) gets the locked files: the index, or a folder of wheels with no network."""
    if settings.wheels_dir:
        return ["--offline", "--no-index", "--find-links", str(settings.wheels_dir)]
    return ["--index-url", index_url(settings)]


def _install_pip(job: _Job) -> InstallResult:
    inputs, layout, settings = job.inputs, job.layout, job.settings
    uv = find_uv(settings)
    t = time.perf_counter()
    interpreter = find_python(inputs.python, settings, uv)
    job.seconds["python"] = time.perf_counter() - t
    staging = layout.staging()
    try:
        t = time.perf_counter()
        with job.steps.step(f"Creating the virtual environment (Python {inputs.python}, {interpreter.how})"):
            if uv:
                code, output = run_tool([uv, "venv", "--no-project", "--no-config", "--relocatable",
                                         "--no-python-downloads", "--prompt", inputs.env,
                                         "--python", interpreter.path, str(staging)])
            else:
                code, output = run_tool([interpreter.path, "-m", "venv", "--without-pip",
                                         "--prompt", inputs.env, str(staging)])
            if code != 0:
                raise WorkFailed(f"creating the virtual environment failed:\n{_tail(output)}")
        job.seconds["venv"] = time.perf_counter() - t

        lock_copy = staging / f".{job.folder.lock_file.name}"
        lock_copy.write_bytes(job.lock_bytes)
        py = python_of(staging)
        assert py is not None
        index = index_url(settings)
        source = source_args(settings)
        tool_env = None
        if uv:
            cmd = [uv, "pip", "sync", "--require-hashes", "--strict", *source,
                   "--python", str(py), str(lock_copy)]
            # As for locking: no user uv config, no Python downloads; more retries for big wheels.
            tool_env = {**uv_environment(settings), "UV_HTTP_RETRIES": str(settings.index_retries)}
            if settings.wheels_dir:
                tool_env["UV_OFFLINE"] = "1"
            installer = tool_version([uv])
        else:
            pip = [sys.executable, "-m", "pip"]
            if run_tool([*pip, "--version"])[0] != 0:
                raise WorkFailed("neither uv nor pip is available to install the environment: "
                                 "pip install uv (gpuready's own dependency) and run again")
            cmd = [*pip, "--python", str(py), "install", "--require-hashes", "--no-deps", "--no-compile",
                   "--disable-pip-version-check", "--no-input",
                   *[a for a in source if a != "--offline"], "-r", str(lock_copy)]
            installer = tool_version(pip)
        t = time.perf_counter()
        with job.steps.step(f"Installing {len(job.locked)} locked packages with {installer.split(' (')[0]}") as update:
            code, output = run_tool(cmd, env=tool_env, on_line=update)
        job.seconds["packages"] = time.perf_counter() - t
        if code != 0:
            mismatch = hash_mismatch(output)
            if mismatch:
                raise WorkFailed(f"hash mismatch for {mismatch}. The index served a file that is not "
                                 "the one locked; nothing was changed")
            if settings.wheels_dir and ("not found in the" in output or "No solution" in output
                                        or "not found in the provided" in output):
                raise WorkFailed(f"a locked package has no wheel in {settings.wheels_dir}; nothing was "
                                 f"changed. uv said:\n{_tail(output, 4)}")
            if any(marker in output for marker in UNREACHABLE):
                raise WorkFailed(f"the package index {index} could not be reached (set gpuready.index_url "
                                 f"for a mirror); nothing was changed. uv said:\n{_tail(output, 4)}")
            raise WorkFailed(f"installing the locked packages failed (exit {code}); nothing was changed:\n"
                             f"{_tail(output)}")
        lock_copy.unlink()

        active = _verify_and_record(job, staging, installer, interpreter.path)

        t = time.perf_counter()
        old_target = layout.own_target()  # a conda environment there before: its directory goes too
        old = swap_in(staging, layout.prefix, layout.staging("old"))
        job.seconds["swap"] = time.perf_counter() - t
        if old is not None:
            _remove_replaced(old, old_target, job)
    finally:
        rmtree(staging)
    return InstallResult(layout.prefix, inputs.env, "pip", job.lock_sha, dict(job.locked), False, installer,
                         interpreter.path, active, job.seconds)


def _verify_and_record(job: _Job, target: Path, installer: str, python: str | None) -> Activation:
    """The last steps before a swap, the same for both flavors: the new environment must equal
    its lock; then its activation and gpuready's record of it are written inside it."""
    inputs = job.inputs
    t = time.perf_counter()
    problems = compare(job.locked, installed_packages(target, inputs.flavor))
    if problems:
        raise WorkFailed("the new environment does not match its lock, so it was not swapped in: "
                         + "; ".join(problems[:10]))
    job.seconds["verify"] = time.perf_counter() - t
    t = time.perf_counter()
    active = activation.decide(target, tensorflow=inputs.tensorflow, source=inputs.source,
                               warnings=job.warnings, environment=job.plan.environment if job.plan else None)
    activation.write(target, active, inputs.flavor)
    lock_name = job.folder.lock_file.name
    (meta_dir(target) / lock_name).write_bytes(job.lock_bytes)
    write_install_record(target, InstallRecord(
        env=inputs.env, flavor=inputs.flavor, prefix=str(job.layout.prefix), inputs=inputs, plan=job.plan,
        lock_file=lock_name, lock_sha256=job.lock_sha, packages=dict(sorted(job.locked.items())),
        warnings=job.warnings, installer=installer, interpreter=python,
        installed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), gpuready=__version__,
        seconds={k: round(v, 3) for k, v in job.seconds.items()},
    ))
    job.seconds["activation"] = time.perf_counter() - t
    return active


def _remove_replaced(old: Path | None, old_target: Path | None, job: _Job) -> None:
    """Delete what a swap replaced: the old prefix, and a conda environment it pointed to."""
    t = time.perf_counter()
    with job.steps.step("Removing the replaced environment"):
        for leftover in (old, old_target):
            if leftover is not None:
                rmtree(leftover)
    job.seconds["remove_old"] = time.perf_counter() - t


def _install_conda(job: _Job) -> InstallResult:
    inputs, layout = job.inputs, job.layout
    conda = find_conda(job.settings).path
    real = layout.staging("env")
    link = layout.staging("link")
    conda_lock = [sys.executable, "-m", "conda_lock"]
    installer = f"conda-lock with {Path(conda).name}"
    swapped = False
    try:
        lock_copy = layout.parent / f".{layout.name}.staging-{os.getpid()}.{job.folder.lock_file.name}"
        lock_copy.write_bytes(job.lock_bytes)
        t = time.perf_counter()
        with job.steps.step(f"Installing {len(job.locked)} locked packages with conda-lock ({Path(conda).name})") as update:
            try:
                code, output = run_tool([*conda_lock, "install", "--conda", conda, "--prefix", str(real),
                                         str(lock_copy)], on_line=update)
            finally:
                lock_copy.unlink(missing_ok=True)
        job.seconds["packages"] = time.perf_counter() - t
        if code != 0:
            mismatch = hash_mismatch(output)
            if mismatch:
                raise WorkFailed(f"hash mismatch for {mismatch}; nothing was changed")
            raise WorkFailed(f"conda-lock install failed (exit {code}); nothing was changed:\n{_tail(output)}")
        python = python_of(real)
        active = _verify_and_record(job, real, installer, str(python) if python else None)
        t = time.perf_counter()
        old_target = layout.own_target()
        os.symlink(real.name, link)
        old = swap_in(link, layout.prefix, layout.staging("old"))
        swapped = True
        job.seconds["swap"] = time.perf_counter() - t
        if old is not None or old_target is not None:
            _remove_replaced(old, old_target, job)
    finally:
        rmtree(link)
        if not swapped:
            rmtree(real)
    python = python_of(layout.prefix)
    return InstallResult(layout.prefix, inputs.env, "conda", job.lock_sha, dict(job.locked), False, installer,
                         str(python) if python else None, active, job.seconds)


__all__ = ["InstallResult", "Steps", "hash_mismatch", "install", "read_install_record"]
