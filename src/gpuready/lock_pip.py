"""The pip flavor's lock, made by uv.

requirements.in (the plan's requirement lines) is compiled by ``uv pip compile
--generate-hashes`` for the plan's Python and platform (no such interpreter needed) into
requirements.txt, then the fully pinned requirements.txt is compiled again, offline from the
pages the first run cached, into a PEP 751 pylock.toml, so both files describe the same
resolution.

uv runs isolated from the user's uv configuration (UV_NO_CONFIG, and no UV_* variable
but the cache and TLS ones), with the index from gpuready's settings, bounded HTTP
timeouts and a subprocess timeout, so the same inputs and the same index give the same
bytes and an unreachable index fails in bounded time with one clear message.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Callable, Mapping

from packaging.version import Version

from .config import DEFAULTS
from .envfolder import Inputs
from .errors import UsageError, WorkFailed

# The manylinux glibc levels uv can target (`uv pip compile --python-platform`).
_UV_MANYLINUX = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
# UV_* variables that change where or how uv connects, not what it resolves.
# (Not UV_NO_CACHE: the pylock.toml step reads the index pages the first step cached.)
_UV_KEEP = ("UV_CACHE_DIR", "UV_NATIVE_TLS", "UV_SYSTEM_CERTS", "UV_INSECURE_HOST")
_UNREACHABLE = ("error sending request", "Failed to fetch", "dns error", "tcp connect error",
                "operation timed out", "Could not connect")
HTTP_RETRIES = 1


class IndexUnreachable(WorkFailed):
    """The package index did not answer (exit 1); nothing was written."""


class ResolutionFailed(WorkFailed):
    """The requirements cannot be resolved on the index (exit 1); nothing was written."""


def index_url(settings: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> str:
    """gpuready.index_url, else UV_DEFAULT_INDEX / UV_INDEX_URL / PIP_INDEX_URL, else the default."""
    for value in (settings.get("index_url"), environ.get("UV_DEFAULT_INDEX"),
                  environ.get("UV_INDEX_URL"), environ.get("PIP_INDEX_URL")):
        if value:
            return str(value).rstrip("/")
    return str(settings.get("default_index_url") or DEFAULTS["gpuready"]["default_index_url"]).rstrip("/")


def index_timeout(settings: Mapping[str, Any]) -> int:
    value = settings.get("index_timeout", 30)
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"gpuready.index_timeout = {value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise UsageError(f"gpuready.index_timeout = {value!r} must be positive")
    return seconds


def python_platform(platform: str, glibc: str | None) -> str:
    """uv's --python-platform for a plan: the lowest manylinux level it knows that admits the
    wheels' glibc floor (uv has no 2_27: TensorFlow 2.21's manylinux_2_27 wheel gets 2_28)."""
    if platform in ("linux-64", "linux-aarch64"):
        arch = "x86_64" if platform == "linux-64" else "aarch64"
        minor = Version(glibc).release[1] if glibc else 17
        level = next((m for m in _UV_MANYLINUX if m >= minor), None)
        if level is None:
            raise UsageError(f"glibc {glibc} is newer than any manylinux level uv can target")
        return f"{arch}-manylinux_2_{level}"
    return {"osx-arm64": "aarch64-apple-darwin", "win-64": "x86_64-pc-windows-msvc"}[platform]


def compile_command(env: str) -> str:
    return f"invoke lock --env {env}"


def render_requirements_in(inputs: Inputs) -> str:
    cuda = f"CUDA {inputs.cuda}, cuDNN {inputs.cudnn}" if inputs.cuda else "CPU"
    head = [
        f"# {inputs.env}: TensorFlow {inputs.tensorflow} ({cuda}), Python {inputs.python}, {inputs.platform}",
        f"# Made by gpuready from inputs.toml; locked for {python_platform(inputs.platform, inputs.glibc)}.",
        f"# Relock: {compile_command(inputs.env)}",
    ]
    return "\n".join(head + list(inputs.requirements)) + "\n"


def uv_environment(settings: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment uv runs in: no user config, bounded HTTP, no Python downloads."""
    timeout = str(index_timeout(settings))
    env = {k: v for k, v in environ.items() if not k.startswith("UV_") or k in _UV_KEEP}
    env.update(UV_NO_CONFIG="1", UV_HTTP_TIMEOUT=timeout, UV_HTTP_CONNECT_TIMEOUT=timeout,
               UV_HTTP_RETRIES=str(HTTP_RETRIES), UV_PYTHON_DOWNLOADS="never", NO_COLOR="1")
    return env


def uv_binary() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def lock(inputs: Inputs, workdir: Path, settings: Mapping[str, Any],
         progress: Callable[[str], None] | None = None) -> dict[str, bytes]:
    """Resolve the inputs in `workdir`; return {file name: bytes} for the folder."""
    if inputs.flavor != "pip":
        raise ValueError(f"{inputs.env} is a {inputs.flavor} environment")
    url = index_url(settings)
    timeout = index_timeout(settings)
    target = python_platform(inputs.platform, inputs.glibc)
    (workdir / "requirements.in").write_text(render_requirements_in(inputs), encoding="utf-8")
    common = [
        "--generate-hashes", "--only-binary", ":all:",
        "--python-version", inputs.python, "--python-platform", target,
        "--index-url", url, "--custom-compile-command", compile_command(inputs.env),
        "--no-progress", "--quiet", "--color", "never",
    ]
    env = uv_environment(settings)
    # Each uv run makes a few dozen requests; each may wait `timeout` once and retry once.
    limit = timeout * 2 * (HTTP_RETRIES + 1) + 60
    _uv(["pip", "compile", "requirements.in", "-o", "requirements.txt", "--emit-build-options", *common],
        workdir, env, limit, inputs, url, target)
    # The same pins again, as PEP 751: offline, from the index pages the first run just cached.
    _uv(["pip", "compile", "requirements.txt", "--format", "pylock.toml", "-o", "pylock.toml", "--offline",
         *common], workdir, env, limit, inputs, url, target)
    return {name: (workdir / name).read_bytes()
            for name in ("requirements.in", "requirements.txt", "pylock.toml")}


def _uv(args: list[str], cwd: Path, env: dict[str, str], limit: int, inputs: Inputs,
        url: str, target: str) -> None:
    command = [uv_binary(), *args]
    try:
        proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        raise IndexUnreachable(f"uv did not finish within {limit} s resolving {inputs.env} against the "
                               f"package index {url}; is the index reachable? Nothing was written") from None
    if proc.returncode == 0:
        return
    detail = "\n  ".join(line for line in proc.stderr.strip().splitlines() if line.strip()) or "(no output)"
    if any(marker in proc.stderr for marker in _UNREACHABLE):
        raise IndexUnreachable(
            f"the package index {url} could not be reached (each request waits at most "
            f"{env['UV_HTTP_TIMEOUT']} s, retried {HTTP_RETRIES}x; set gpuready.index_url for a mirror). "
            f"Nothing was written. uv said:\n  {detail}")
    raise ResolutionFailed(
        f"uv could not resolve {inputs.env}'s requirements for Python {inputs.python} on {target} "
        f"from {url}. Nothing was written. uv said:\n  {detail}")
