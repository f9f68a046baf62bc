"""The conda flavor's lock, made by conda-lock with a real conda executable.

environment.yml (conda-forge; Python and pip from conda; TensorFlow from conda-forge's
CUDA build when the plan takes it from there, else from the package index in the pip:
section, with the pip flavor's pins) and virtual-packages.yml (the plan's __cuda, __glibc,
__linux) are locked by conda-lock into conda-lock.yml for the plan's platform.

conda-lock always needs a conda-compatible executable. `find_conda` looks where users
have one: gpuready.conda_exe, then mamba, micromamba and conda on PATH, $CONDA_EXE and
$MAMBA_EXE, then the micromamba that conda-lock's own bootstrap (ensureconda) keeps, and
last lets that bootstrap download one, within the index timeout.

Run as ``python -m gpuready.lock_conda ARGS`` this module is conda-lock's command line,
with one correction: conda-lock 4.0's pip solver knows only the manylinux levels 2_17,
2_18, 2_24 and 2_28, so it can never choose a manylinux_2_27 wheel (TensorFlow 2.21,
numpy 2.3); every level from 2_17 to 2_40 is added before it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from .envfolder import Inputs
from .errors import UsageError, WorkFailed
from .lock_pip import IndexUnreachable, ResolutionFailed, index_timeout, index_url

CONDA_NAMES = ("mamba", "micromamba", "conda")
# The PyPI <-> conda names conda-lock needs for our environments: packages that conda may
# already have installed when the pip: section is solved. conda-lock assumes identity for
# the rest; its default table is downloaded from GitHub, which these machines cannot reach.
PYPI_TO_CONDA = {
    name: {"conda_name": name, "conda_forge": name, "pypi_name": name}
    for name in ("pip", "setuptools", "wheel", "numpy", "packaging")
}
_UNREACHABLE = ("ConnectionError", "Max retries exceeded", "Connection refused", "timed out",
                "Failed to establish a new connection", "NameResolutionError")


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


def _executable(path: str | os.PathLike[str] | None) -> str | None:
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return os.fspath(path)
    return None


def _ensureconda_dir() -> Path:
    from ensureconda.resolve import site_path

    return site_path()


def find_conda(settings: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> CondaExe:
    """The conda executable to lock with, and how it was found; `CondaNotFound` says where it looked."""
    configured = settings.get("conda_exe")
    if configured:
        expanded = os.path.expanduser(str(configured))
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
    if settings.get("conda_bootstrap", True):
        found, why = _bootstrap(index_timeout(settings))
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
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"no answer within {timeout} s"
    found = _executable(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else None)
    if found:
        return found, "downloaded"
    last = (proc.stderr.strip().splitlines() or ["no executable"])[-1]
    return None, f"failed: {last[:200]}"


def _yaml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


def render_environment_yml(inputs: Inputs, url: str) -> str:
    lines = [
        f"# {inputs.env}: made by gpuready from inputs.toml. Relock: invoke lock --env {inputs.env}",
        f"name: {inputs.env}",
        "channels:",
        f"  - {inputs.conda_channel}",
        "dependencies:",
        *(f"  - {_yaml_str(spec)}" for spec in inputs.conda_packages),
    ]
    if inputs.requirements:
        lines.append("  - pip:")
        lines += [f"      - {_yaml_str(line)}" for line in inputs.requirements]
    lines += [
        "platforms:",
        f"  - {inputs.platform}",
        "pip-repositories:",
        f"  - {_yaml_str(url)}",
        "allow-pypi-requests: false",
    ]
    return "\n".join(lines) + "\n"


def render_virtual_packages(inputs: Inputs) -> str:
    lines = ["subdirs:", f"  {inputs.platform}:", "    packages:"]
    lines += [f"      {name}: {_yaml_str(version)}" for name, version in inputs.virtual_packages.items()]
    return "\n".join(lines) + "\n"


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if "@" in parts.netloc and "$" not in parts.netloc.split("@")[0]:
        raise UsageError(
            "gpuready.index_url carries credentials, and the conda flavor writes the index into "
            "environment.yml; use environment variables instead, e.g. https://${PIP_USER}:${PIP_PASSWORD}@host/simple")


def lock(inputs: Inputs, workdir: Path, settings: Mapping[str, Any],
         progress: Callable[[str], None] | None = None) -> dict[str, bytes]:
    """Lock the inputs in `workdir` with conda-lock; return {file name: bytes} for the folder."""
    if inputs.flavor != "conda":
        raise ValueError(f"{inputs.env} is a {inputs.flavor} environment")
    url = index_url(settings)
    _check_url(url)
    conda = find_conda(settings)
    if progress:
        progress(f"conda executable: {conda.path} ({conda.how})")
    (workdir / "environment.yml").write_text(render_environment_yml(inputs, url), encoding="utf-8")
    (workdir / "virtual-packages.yml").write_text(render_virtual_packages(inputs), encoding="utf-8")
    (workdir / "pypi-to-conda.json").write_text(json.dumps(PYPI_TO_CONDA, indent=1), encoding="utf-8")
    command = [
        sys.executable, "-m", "gpuready.lock_conda", "lock",
        "--file", "environment.yml", "--platform", inputs.platform,
        "--virtual-package-spec", "virtual-packages.yml", "--lockfile", "conda-lock.yml",
        "--conda", conda.path, "--pypi_to_conda_lookup_file", "pypi-to-conda.json",
        "--log-level", "WARNING",
    ]
    timeout = index_timeout(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDA_OVERRIDE_")}
    env["POETRY_REQUESTS_TIMEOUT"] = str(timeout)  # conda-lock's pip solver (vendored Poetry)
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    limit = max(600, timeout * 10)
    try:
        proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        raise WorkFailed(f"conda-lock did not finish within {limit} s for {inputs.env}. Nothing was written") from None
    if proc.returncode != 0 or not (workdir / "conda-lock.yml").exists():
        _raise_failure(proc, inputs, conda, url, timeout)
    return {name: (workdir / name).read_bytes()
            for name in ("environment.yml", "virtual-packages.yml", "conda-lock.yml")}


def _summary(output: str) -> str:
    """What conda-lock said, without its traceback: the solver's message when there is one."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Could not lock the environment")), None)
    if start is not None:
        end = next((i for i in range(start, len(lines)) if lines[i].strip().startswith("Command:")), len(lines))
        kept = lines[start:end]
    else:
        kept = [line for line in lines if not line.startswith(("Traceback", "  File ", "    "))
                and set(line.strip()) != {"^"} and not line.startswith("Locking dependencies")]
    kept = [line.rstrip() for line in kept if line.strip()][-12:]
    return "\n  ".join(kept) or "(no output)"


def _raise_failure(proc: subprocess.CompletedProcess, inputs: Inputs, conda: CondaExe, url: str,
                   timeout: int) -> None:
    output = (proc.stderr or "") + (proc.stdout or "")
    said = _summary(output)
    host = urlsplit(url).hostname or ""
    if host and host in output and any(marker in output for marker in _UNREACHABLE):
        last = said.splitlines()[-1].strip()
        raise IndexUnreachable(f"the package index {url} could not be reached while conda-lock solved the "
                               f"pip: section of {inputs.env} (each request waits at most "
                               f"{timeout} s, retried 5x). Nothing was written. "
                               f"conda-lock said:\n  {last}")
    if "Could not lock the environment" in output or "Unsatisfiable" in output:
        raise ResolutionFailed(
            f"{conda.kind} ({conda.path}) could not solve {inputs.env} on {inputs.conda_channel} for "
            f"{inputs.platform} with virtual packages "
            + ", ".join(f"{k} {v}" for k, v in inputs.virtual_packages.items())
            + f". Nothing was written. conda-lock said:\n  {said}")
    raise WorkFailed(f"conda-lock failed for {inputs.env} (exit {proc.returncode}) with {conda.kind} "
                     f"{conda.path}. Nothing was written. It said:\n  {said}")


def _conda_lock_main(argv: list[str]) -> None:
    import conda_lock.pypi_solver as pypi_solver

    pypi_solver.MANYLINUX_TAGS[:] = ["1", "2010", "2014"] + [f"_2_{minor}" for minor in range(17, 41)]
    from conda_lock.conda_lock import main

    sys.argv = ["conda-lock", *argv]
    main()


if __name__ == "__main__":
    _conda_lock_main(sys.argv[1:])
