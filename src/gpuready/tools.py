"""Finding the programs gpuready drives: uv, a conda executable, a Python of a given version.

Each is looked for in one place, in the order users expect, and a failure says everywhere it
looked and how to fix it.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from . import proc
from .config import Settings
from .detect.host import python_version
from .errors import UsageError, WorkFailed

CONDA_NAMES = ("mamba", "micromamba", "conda")
PROBE_TIMEOUT = 60.0


def tool_version(command: list[str]) -> str:
    """`tool --version`'s first line, or "unknown"."""
    try:
        result = proc.run([*command, "--version"], timeout=30)
    except OSError:
        return "unknown"
    text = (result.stdout.strip() or result.stderr.strip()).splitlines()
    return text[0] if text else "unknown"


def _executable(path: str | os.PathLike[str] | None) -> str | None:
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return os.fspath(path)
    return None


# --------------------------------------------------------------------------- uv


def find_uv(settings: Settings) -> str | None:
    """uv: gpuready.uv, else the binary of gpuready's `uv` dependency, else PATH; None if none."""
    if settings.uv:
        found = shutil.which(settings.uv) or _executable(Path(settings.uv).expanduser())
        if not found:
            raise UsageError(f"gpuready.uv = {settings.uv!r}: no such executable")
        return found
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def require_uv(settings: Settings) -> str:
    found = find_uv(settings)
    if found is None:
        raise WorkFailed("uv is not available: install gpuready with its dependencies "
                         "(pip install gpuready) or put uv on PATH")
    return found


# --------------------------------------------------------------------------- conda


class CondaNotFound(WorkFailed):
    """No conda-compatible executable could be found or bootstrapped (exit 1)."""


@dataclass(frozen=True)
class CondaExe:
    path: str
    how: str  # how it was found, for the user

    @property
    def kind(self) -> str:
        name = Path(self.path).name.lower().removesuffix(".exe")
        return next((k for k in ("micromamba", "mamba") if name.endswith(k)), "conda")


def _ensureconda_dir() -> Path:
    from ensureconda.resolve import site_path

    return site_path()


def find_conda(settings: Settings, environ: Mapping[str, str] = os.environ) -> CondaExe:
    """The conda executable: gpuready.conda_exe, then PATH, $CONDA_EXE / $MAMBA_EXE, then the one
    conda-lock's bootstrap keeps, last its download. `CondaNotFound` says where it looked."""
    configured = settings.conda_exe
    if configured:
        expanded = os.path.expanduser(configured)
        found = _executable(expanded) or shutil.which(expanded, path=environ.get("PATH"))
        if found:
            return CondaExe(found, f"gpuready.conda_exe = {configured}")
        raise CondaNotFound(f"gpuready.conda_exe = {configured!r} is neither an executable file nor a "
                            "command on PATH; fix it, or unset it to search PATH")
    looked = []
    for name in CONDA_NAMES:
        found = shutil.which(name, path=environ.get("PATH"))
        if found:
            return CondaExe(found, f"{name} on PATH")
    looked.append(f"{', '.join(CONDA_NAMES)} on PATH")
    for variable in ("CONDA_EXE", "MAMBA_EXE"):
        found = _executable(environ.get(variable))
        if found:
            return CondaExe(found, f"${variable}")
    looked.append("$CONDA_EXE and $MAMBA_EXE (" + ", ".join(
        f"{v}={environ[v]!r}" if environ.get(v) else f"{v} unset" for v in ("CONDA_EXE", "MAMBA_EXE")) + ")")
    bootstrap_dir = _ensureconda_dir()
    for name in ("micromamba", "conda_standalone", "mamba", "conda"):
        found = _executable(bootstrap_dir / name)
        if found:
            return CondaExe(found, f"conda-lock's bootstrap folder {bootstrap_dir}")
    looked.append(f"conda-lock's bootstrap folder {bootstrap_dir}")
    if settings.conda_bootstrap:
        found, why = _bootstrap(settings.index_timeout)
        if found:
            return CondaExe(found, "downloaded by conda-lock's bootstrap (ensureconda)")
        looked.append(f"conda-lock's bootstrap download of micromamba ({why})")
    else:
        looked.append("conda-lock's bootstrap download (off: gpuready.conda_bootstrap is false)")
    raise CondaNotFound(
        "no conda executable (conda, mamba or micromamba) for conda-lock. Looked at: "
        + "; ".join(looked)
        + ". Install micromamba or conda, or name one with gpuready.conda_exe (invoke.yaml) or "
          "INVOKE_GPUREADY_CONDA_EXE. Nothing was written")


def _bootstrap(timeout: int) -> tuple[str | None, str]:
    code = ("from ensureconda.api import ensureconda\n"
            "print(ensureconda(mamba=False, micromamba=True, conda=False, conda_exe=True) or '')")
    try:
        result = proc.run([sys.executable, "-c", code], timeout=timeout)
    except OSError as error:
        return None, f"failed: {error}"
    if result.timed_out:
        return None, f"no answer within {timeout} s"
    lines = result.stdout.strip().splitlines()
    found = _executable(lines[-1] if lines else None)
    if found:
        return found, "downloaded"
    last = (result.stderr.strip().splitlines() or ["no executable"])[-1]
    return None, f"failed: {last[:200]}"


# --------------------------------------------------------------------------- Python


@dataclass(frozen=True)
class Interpreter:
    path: str
    how: str  # "this interpreter", "python3.12 on PATH", "uv's managed Python"


def python_version_of(exe: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> str | None:
    """X.Y of an interpreter, or None when it does not run."""
    try:
        result = proc.run([str(exe), "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          timeout=PROBE_TIMEOUT, env=env)
    except OSError:
        return None
    return result.stdout.strip() if result.ok and result.stdout.strip() else None


def find_python(version: str, settings: Settings, uv: str | None) -> Interpreter:
    """An interpreter of Python `version` (X.Y) to base a virtual environment on."""
    this = python_version()
    if this == version:
        return Interpreter(sys.executable, "this interpreter")
    on_path = shutil.which(f"python{version}")
    if on_path and python_version_of(on_path) == version:
        return Interpreter(on_path, f"python{version} on PATH")
    if uv:
        found = _uv_python_find(uv, version)
        if found is None and settings.allow_python_downloads:
            proc.run([uv, "python", "install", version], timeout=900)
            found = _uv_python_find(uv, version)
        if found:
            return Interpreter(found, "uv's managed Python")
    ways = [f"install Python {version} so that python{version} is on PATH "
            f"(e.g. `apt install python{version}` or `pyenv install {version}`)"]
    if uv and not settings.allow_python_downloads:
        ways.append("let uv download it: set gpuready.allow_python_downloads: true in invoke.yaml "
                    "(or INVOKE_GPUREADY_ALLOW_PYTHON_DOWNLOADS=1)")
    ways.append(f"plan for this interpreter's Python instead (--python {this})")
    raise WorkFailed(f"the plan needs Python {version}, and no Python {version} was found "
                     f"(this interpreter is {this}"
                     f"{'' if uv else '; uv is not available'}). Ways out: " + "; ".join(ways))


def _uv_python_find(uv: str, version: str) -> str | None:
    try:
        result = proc.run([uv, "python", "find", "--no-project", "--python-preference", "only-managed",
                           "--no-python-downloads", version], timeout=60)
    except OSError:
        return None
    path = result.stdout.strip()
    return path if result.ok and path else None
