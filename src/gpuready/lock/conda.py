"""The conda flavor's lock, made by conda-lock with a real conda executable.

environment.yml (conda-forge; Python and pip from conda; TensorFlow from conda-forge's
CUDA build when the plan takes it from there, else from the package index in the pip:
section, with the pip flavor's pins) and virtual-packages.yml (the plan's __cuda, __glibc,
__linux) are locked by conda-lock into conda-lock.yml for the plan's platform.

conda-lock always needs a conda-compatible executable (`gpuready.tools.find_conda`). It runs
in its own process (`gpuready.lock._conda_lock`), which widens the manylinux levels its pip
solver knows before it starts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import yaml

from .. import proc
from ..config import Settings
from ..errors import UsageError, WorkFailed
from ..model.inputs import Inputs
from ..tools import CondaExe, find_conda
from .index import IndexUnreachable, ResolutionFailed, index_url
# The PyPI <-> conda names conda-lock needs for our environments: packages that conda may
# already have installed when the pip: section is solved. conda-lock assumes identity for
# the rest; its default table is downloaded from GitHub, which these machines cannot reach.
PYPI_TO_CONDA = {
    name: {"conda_name": name, "conda_forge": name, "pypi_name": name}
    for name in ("pip", "setuptools", "wheel", "numpy", "packaging")
}
_UNREACHABLE = ("ConnectionError", "Max retries exceeded", "Connection refused", "timed out",
                "Failed to establish a new connection", "NameResolutionError")


def _dump(header: str, document: dict) -> str:
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1000)


def render_environment_yml(inputs: Inputs, url: str) -> str:
    dependencies: list = list(inputs.conda_packages)
    if inputs.requirements:
        dependencies.append({"pip": list(inputs.requirements)})
    return _dump(f"# {inputs.env}: made by gpuready from inputs.toml. Relock: invoke lock --env {inputs.env}\n", {
        "name": inputs.env,
        "channels": [inputs.conda_channel],
        "dependencies": dependencies,
        "platforms": [inputs.platform],
        "pip-repositories": [url],
        "allow-pypi-requests": False,
    })


def render_virtual_packages(inputs: Inputs) -> str:
    return _dump("", {"subdirs": {inputs.platform: {"packages": dict(inputs.virtual_packages)}}})


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if "@" in parts.netloc and "$" not in parts.netloc.split("@")[0]:
        raise UsageError(
            "gpuready.index_url carries credentials, and the conda flavor writes the index into "
            "environment.yml; use environment variables instead, e.g. https://${PIP_USER}:${PIP_PASSWORD}@host/simple")


def lock(inputs: Inputs, workdir: Path, settings: Settings,
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
        sys.executable, "-m", "gpuready.lock._conda_lock", "lock",
        "--file", "environment.yml", "--platform", inputs.platform,
        "--virtual-package-spec", "virtual-packages.yml", "--lockfile", "conda-lock.yml",
        "--conda", conda.path, "--pypi_to_conda_lookup_file", "pypi-to-conda.json",
        "--log-level", "WARNING",
    ]
    timeout = settings.index_timeout
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDA_OVERRIDE_")}
    env["POETRY_REQUESTS_TIMEOUT"] = str(timeout)  # conda-lock's pip solver (vendored Poetry)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    limit = max(600, timeout * 10)
    result = proc.run(command, cwd=workdir, env=env, timeout=limit)
    if result.timed_out:
        raise WorkFailed(f"conda-lock did not finish within {limit} s for {inputs.env}. Nothing was written")
    if result.returncode != 0 or not (workdir / "conda-lock.yml").exists():
        _raise_failure(result, inputs, conda, url, timeout)
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


def _raise_failure(result: proc.Result, inputs: Inputs, conda: CondaExe, url: str,
                   timeout: int) -> None:
    output = (result.stderr or "") + (result.stdout or "")
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
    raise WorkFailed(f"conda-lock failed for {inputs.env} (exit {result.returncode}) with {conda.kind} "
                     f"{conda.path}. Nothing was written. It said:\n  {said}")
