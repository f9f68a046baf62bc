"""The pip flavor's lock, made by uv.

requirements.in (the plan's requirement lines) is compiled by ``uv pip compile
--generate-hashes`` for the plan's Python and platform (no such interpreter needed) into
requirements.txt, then the fully pinned requirements.txt is compiled again, offline from the
pages the first run cached, into a PEP 751 pylock.toml, so both files describe the same
resolution.

Both runs take the lock's upload-time cut-off (`--exclude-newer`, and `--exclude-newer-package`
for packages moved one by one): files uploaded after it do not exist for the resolution, so the
same inputs with the same cut-off give the same pins and hashes on any later day. A lock with
no cut-off (an index that gives no upload times) reads the previous requirements.txt as uv's
preferences instead, which keeps its pins where they still resolve.

uv runs isolated from the user's uv configuration (UV_NO_CONFIG, and no UV_* variable
but the cache and TLS ones), with the index from gpuready's settings, bounded HTTP
timeouts and a subprocess timeout, so the same inputs and the same index give the same
bytes and an unreachable index fails in bounded time with one clear message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from packaging.version import Version

from .. import proc
from ..config import Settings
from ..errors import UsageError
from ..model.inputs import Inputs
from ..tools import require_uv
from .folder import Cutoff
from .index import HTTP_RETRIES, UNREACHABLE, IndexUnreachable, ResolutionFailed, index_url, uv_environment

NO_UPLOAD_TIME = "is missing an upload date"


class NoUploadTimes(ResolutionFailed):
    """The index lists files without upload times, so no cut-off can apply (exit 1)."""

# The manylinux glibc levels uv can target (`uv pip compile --python-platform`).
_UV_MANYLINUX = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)


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


def lock(inputs: Inputs, workdir: Path, settings: Settings,
         progress: Callable[[str], None] | None = None, cutoff: Cutoff | None = None,
         preferences: bytes | None = None) -> dict[str, bytes]:
    """Resolve the inputs in `workdir`; return {file name: bytes} for the folder.

    `cutoff`: resolve as of that upload time. `preferences`: a previous requirements.txt whose
    pins uv keeps where it can (used only without a cut-off)."""
    if inputs.flavor != "pip":
        raise ValueError(f"{inputs.env} is a {inputs.flavor} environment")
    url = index_url(settings)
    timeout = settings.index_timeout
    uv = require_uv(settings)
    target = python_platform(inputs.platform, inputs.glibc)
    (workdir / "requirements.in").write_text(render_requirements_in(inputs), encoding="utf-8")
    common = [
        "--generate-hashes", "--only-binary", ":all:",
        "--python-version", inputs.python, "--python-platform", target,
        "--index-url", url, "--custom-compile-command", compile_command(inputs.env),
        "--no-progress", "--quiet", "--color", "never",
    ]
    if cutoff is not None:
        common += ["--exclude-newer", cutoff.exclude_newer]
        for name, when in cutoff.packages:
            common += ["--exclude-newer-package", f"{name}={when}"]
    elif preferences is not None:
        (workdir / "requirements.txt").write_bytes(preferences)
    env = uv_environment(settings)
    # Each uv run makes a few dozen requests; each may wait `timeout` once and retry once.
    limit = timeout * 2 * (HTTP_RETRIES + 1) + 60
    _uv([uv, "pip", "compile", "requirements.in", "-o", "requirements.txt", "--emit-build-options", *common],
        workdir, env, limit, inputs, url, target)
    # The same pins again, as PEP 751: offline, from the index pages the first run just cached.
    _uv([uv, "pip", "compile", "requirements.txt", "--format", "pylock.toml", "-o", "pylock.toml", "--offline",
         *common], workdir, env, limit, inputs, url, target)
    return {name: (workdir / name).read_bytes()
            for name in ("requirements.in", "requirements.txt", "pylock.toml")}


def _uv(command: list[str], cwd: Path, env: dict[str, str], limit: int, inputs: Inputs,
        url: str, target: str) -> None:
    result = proc.run(command, cwd=cwd, env=env, timeout=limit)
    if result.timed_out:
        raise IndexUnreachable(f"uv did not finish within {limit} s resolving {inputs.env} against the "
                               f"package index {url}; is the index reachable? Nothing was written")
    if result.returncode == 0:
        return
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    if any(NO_UPLOAD_TIME in line for line in lines):
        raise NoUploadTimes(f"the package index {url} lists files without upload times, so the lock's "
                            "cut-off (--exclude-newer) cannot apply")
    detail = "\n  ".join(lines) or "(no output)"
    if any(marker in result.stderr for marker in UNREACHABLE):
        raise IndexUnreachable(
            f"the package index {url} could not be reached (each request waits at most "
            f"{env['UV_HTTP_TIMEOUT']} s, retried {HTTP_RETRIES}x; set gpuready.index_url for a mirror). "
            f"Nothing was written. uv said:\n  {detail}")
    raise ResolutionFailed(
        f"uv could not resolve {inputs.env}'s requirements for Python {inputs.python} on {target} "
        f"from {url}. Nothing was written. uv said:\n  {detail}")
