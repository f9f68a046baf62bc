"""`bundle`: everything one environment needs to be built and certified where there is no network.

A bundle is a folder (or that folder as one tar file)::

    install.sh      the entry point: bash install.sh --prefix P [--allow-cpu] [--level N]
    verify.py       checks every file against manifest.json, with only Python's standard library
    manifest.json   every other file with its size and sha256, and what the bundle holds
    env/<name>/     the environment's lock folder, as `invoke lock` wrote it
    wheels/         every wheel of the lock that the environment's Python and platform install
    tool/           gpuready's wheel, its dependencies' and uv's wheels, and their hashed requirements

Every artifact is fetched by URL and checked against the sha256 its lock names (several at
once, kept in gpuready's cache so a second bundle fetches nothing), then hard-linked (or copied)
into a staging folder that replaces `--out` only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .. import __version__
from ..config import Settings
from ..download import Artifact, BadDownload, fetch_all
from ..errors import UsageError, WorkFailed
from ..files import describe_os_error, sha256_file, write_atomic
from ..lock.folder import EnvFolder
from . import _verify
from .artifacts import build_gpuready_wheel, lock_artifacts, requirements_txt, tool_lock

MANIFEST = _verify.MANIFEST
INSTALL_SH = "install.sh"
CONDA_NOT_YET = (
    "bundle: the conda flavor cannot be bundled yet: installing its packages with no network needs "
    "a conda executable (micromamba) on the target that gpuready cannot ship as a wheel, and these "
    "machines reach no conda channel to prove such a bundle on; bundle the pip flavor instead "
    "(--flavor pip), which carries TensorFlow and the CUDA libraries as wheels")


@dataclass(frozen=True)
class BundleResult:
    path: Path
    env: str
    files: int
    size: int
    fetched: int  # bytes downloaded by this run (the rest came from the cache)
    seconds: float
    manifest_sha256: str


def problems(root: str | os.PathLike[str]) -> list[str]:
    """What is wrong with the bundle at `root` (missing, changed or added files); [] when whole."""
    return _verify.problems(root)


def read_manifest(root: str | os.PathLike[str]) -> dict:
    try:
        return _verify.read_manifest(Path(root))
    except ValueError as error:
        raise UsageError(f"--bundle: {error}") from None


def check_bundle(root: str | os.PathLike[str]) -> tuple[Path, dict]:
    """The bundle folder and its manifest, or WorkFailed naming every file that is not as made."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise UsageError(f"--bundle: {root} is not a folder (extract a .tar bundle first: tar xf FILE)")
    manifest = read_manifest(root)
    found = problems(root)
    if found:
        raise WorkFailed("the bundle is not as it was made; nothing was installed:\n  " + "\n  ".join(found))
    return root, manifest


def bundle_folder(root: Path, manifest: dict) -> EnvFolder:
    return EnvFolder(root / "env" / str(manifest["env"]))


def check_out(out: str | os.PathLike[str], tar: bool) -> Path:
    """The --out folder, refused before any work when it would overwrite something not a bundle."""
    path = Path(out).expanduser().absolute()
    target = path.with_name(path.name + ".tar") if tar else path
    if target.exists():
        if tar and not target.is_file():
            raise UsageError(f"--out: {target} exists and is not a file")
        if not tar and (not target.is_dir() or (any(target.iterdir()) and not (target / MANIFEST).is_file())):
            raise UsageError(f"--out: {target} exists and is not a gpuready bundle; choose another --out")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"--out: {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out: {parent} is not writable")
    return path


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _copy_local(artifact: Artifact, target: Path) -> Path:
    """A file:// artifact (gpuready's own wheel, just built), checked like a download."""
    from urllib.parse import unquote, urlsplit

    source = Path(unquote(urlsplit(artifact.url).path))
    if sha256_file(source) != artifact.sha256:
        raise BadDownload(f"{artifact.filename}: the built wheel does not have the sha256 uv locked")
    _place(source, target)
    return target


def make_bundle(folder: EnvFolder, out: str | os.PathLike[str], settings: Settings, *, tar: bool = False,
                jobs: int = 8, progress: Callable[[str], None] | None = None) -> BundleResult:
    """Write the bundle of `folder`'s environment at `out` (or `out`.tar)."""
    started = time.perf_counter()
    say = progress or (lambda _: None)
    inputs = folder.inputs
    if inputs.flavor != "pip":
        raise UsageError(CONDA_NOT_YET)
    path = check_out(out, tar)
    current, why = folder.is_current()
    if not current:
        raise WorkFailed(f"bundle: envs/{folder.name} is not current ({why}): relock it first "
                         f"(invoke lock --env {folder.name})")
    cache = settings.cache_path("artifacts")
    staging = path.with_name(f".{path.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    fetched = 0
    try:
        with tempfile.TemporaryDirectory(prefix="gpuready-bundle-") as tmp:
            work = Path(tmp)
            say("reading the lock")
            env_wheels = lock_artifacts((folder.path / "pylock.toml").read_text(encoding="utf-8"),
                                        inputs.python, inputs.platform, what=f"envs/{folder.name}/pylock.toml")
            say("building gpuready's wheel")
            wheel = build_gpuready_wheel(work / "dist", settings)
            say("resolving gpuready's dependencies")
            tool_pylock = tool_lock(wheel, inputs, settings, work)
            tool_wheels = lock_artifacts(tool_pylock, inputs.python, inputs.platform, what="gpuready's own lock")
            uv_wheel = next((a.filename for a in tool_wheels if a.filename.startswith("uv-")), None)
            if uv_wheel is None:
                raise WorkFailed("bundle: gpuready's own lock has no uv wheel for this platform")

            wanted = [(a, cache / a.sha256 / a.filename) for a in env_wheels + tool_wheels
                      if not a.url.startswith("file:")]
            missing = sum(a.size or 0 for a, target in wanted if not target.is_file())
            say(f"fetching {len(wanted)} files ({missing / 1e6:.0f} MB not in the cache)")

            def done(artifact: Artifact, _: Path) -> None:
                say(f"fetched {artifact.filename}")

            fetch_all(wanted, jobs=jobs, timeout=settings.index_timeout, retries=settings.index_retries,
                      on_done=done)
            fetched = missing
            for artifact in env_wheels:
                _place(cache / artifact.sha256 / artifact.filename, staging / "wheels" / artifact.filename)
            for artifact in tool_wheels:
                target = staging / "tool" / artifact.filename
                if artifact.url.startswith("file:"):
                    _copy_local(artifact, target)
                else:
                    _place(cache / artifact.sha256 / artifact.filename, target)
            (staging / "tool" / "requirements.txt").write_text(requirements_txt(tool_wheels, tool_pylock),
                                                               encoding="utf-8")
        for item in sorted(folder.path.iterdir()):
            if item.is_file() and not item.name.startswith("."):
                _place(item, staging / "env" / folder.name / item.name)
        shutil.copyfile(_verify.__file__, staging / "verify.py")
        script = _install_script(inputs.env, inputs.python, uv_wheel)
        (staging / INSTALL_SH).write_text(script, encoding="utf-8")
        os.chmod(staging / INSTALL_SH, 0o755)
        manifest = _manifest(staging, inputs, uv_wheel)
        data = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
        write_atomic(staging / MANIFEST, data)
        files, size = len(manifest["files"]), sum(e["size"] for e in manifest["files"].values())
        final = _publish(staging, path, tar)
    except OSError as error:
        raise WorkFailed(f"bundle: cannot write {staging}: {describe_os_error(error)}; --out is as it was") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BundleResult(final, inputs.env, files, size, fetched, time.perf_counter() - started,
                        sha256_file(final / MANIFEST) if final.is_dir() else sha256_file(final))


def _install_script(env: str, python: str, uv_wheel: str) -> str:
    from importlib.resources import files

    template = files("gpuready.data").joinpath("bundle-install.sh").read_text(encoding="utf-8")
    return template.replace("@ENV@", env).replace("@PYTHON@", python).replace("@UV_WHEEL@", uv_wheel)


def _manifest(root: Path, inputs, uv_wheel: str) -> dict:
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            name = path.relative_to(root).as_posix()
            files[name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return {
        "schema": _verify.SCHEMA, "env": inputs.env, "flavor": inputs.flavor, "python": inputs.python,
        "platform": inputs.platform, "tensorflow": inputs.tensorflow, "device": inputs.device,
        "uv_wheel": uv_wheel, "gpuready": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "files": files,
    }


def _publish(staging: Path, path: Path, tar: bool) -> Path:
    """Swap the finished staging folder in (or write it as one tar); the old bundle goes last."""
    if tar:
        target = path.with_name(path.name + ".tar")
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with tarfile.open(partial, "w") as archive:
                archive.add(staging, arcname=path.name)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.rename(path, old)
    try:
        os.rename(staging, path)
    except OSError:
        if old.exists():
            os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path
