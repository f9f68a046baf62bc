"""What a bundle carries: the lock's wheels for its target, and gpuready with its dependencies.

Both lists come from PEP 751 locks (the env folder's pylock.toml, and one uv writes for
gpuready itself), so every file is known by URL and sha256 before it is fetched.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from .. import proc
from ..config import Settings
from ..download import Artifact
from ..errors import UsageError, WorkFailed
from ..lock.index import index_url, uv_environment
from ..lock.uv import python_platform
from ..model.inputs import Inputs
from ..tools import require_uv

_ARCH = {"linux-64": "x86_64", "linux-aarch64": "aarch64"}


def target_tags(python: str, platform: str) -> frozenset[Tag]:
    """Every wheel tag an interpreter of `python` on `platform` (any glibc) accepts."""
    if platform not in _ARCH:
        raise UsageError(f"bundle: {platform} environments cannot be bundled yet (linux-64 and "
                         "linux-aarch64 can)")
    arch = _ARCH[platform]
    major, minor = (int(part) for part in python.split(".")[:2])
    platforms = [f"manylinux_2_{m}_{arch}" for m in range(40, 4, -1)]
    platforms += [f"manylinux2014_{arch}", f"linux_{arch}"]
    if arch == "x86_64":
        platforms += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    version = (major, minor)
    return frozenset([*cpython_tags(version, platforms=platforms),
                      *compatible_tags(version, interpreter=f"cp{major}{minor}", platforms=platforms)])


def _filename(wheel: dict) -> str:
    name = wheel.get("name")
    if isinstance(name, str) and name:
        return name
    return unquote(urlsplit(str(wheel.get("url", ""))).path.rsplit("/", 1)[-1])


def lock_artifacts(pylock: str, python: str, platform: str, *, what: str) -> list[Artifact]:
    """The wheels of a pylock.toml that an interpreter of `python` on `platform` can install.

    Every package must have at least one; a package locked without wheels (an sdist, a VCS
    link) cannot be installed offline by a bare machine and is an error naming it.
    """
    try:
        data = tomllib.loads(pylock)
    except tomllib.TOMLDecodeError as error:
        raise WorkFailed(f"{what}: not a readable pylock.toml ({error})") from None
    tags = target_tags(python, platform)
    chosen: list[Artifact] = []
    for package in data.get("packages", []):
        label = f"{package.get('name')} {package.get('version', '')}".strip()
        usable = []
        for wheel in package.get("wheels") or []:
            filename = _filename(wheel)
            try:
                wheel_tags = parse_wheel_filename(filename)[3]
            except InvalidWheelFilename:
                raise WorkFailed(f"{what}: {label}: {filename!r} is not a wheel file name") from None
            sha256 = (wheel.get("hashes") or {}).get("sha256")
            if not sha256 or not wheel.get("url"):
                raise WorkFailed(f"{what}: {label}: {filename} has no URL or sha256 in the lock")
            if wheel_tags & tags:
                usable.append(Artifact(str(wheel["url"]), filename, str(sha256), wheel.get("size")))
        if not usable:
            raise WorkFailed(f"{what}: {label} has no wheel for Python {python} on {platform} in the lock; "
                             "a bundle carries wheels only")
        chosen.extend(usable)
    if not chosen:
        raise WorkFailed(f"{what}: the lock names no package")
    return chosen


def requirements_txt(artifacts: list[Artifact], pylock: str) -> str:
    """`name==version --hash ...` lines for exactly the wheels bundled (uv --require-hashes)."""
    by_file = {a.filename: a for a in artifacts}
    lines = ["# Written by gpuready bundle: exactly the wheels in this folder, hash-pinned."]
    for package in tomllib.loads(pylock).get("packages", []):
        hashes = [by_file[_filename(w)].sha256 for w in package.get("wheels") or [] if _filename(w) in by_file]
        if hashes:
            lines.append(f"{package['name']}=={package['version']} \\")
            lines.extend(f"    --hash=sha256:{h}" + (" \\" if i < len(hashes) - 1 else "")
                         for i, h in enumerate(hashes))
    return "\n".join(lines) + "\n"


def source_checkout() -> Path | None:
    """The checkout gpuready runs from (editable install), or None for an installed wheel."""
    root = Path(__file__).resolve().parents[3]
    pyproject = root / "pyproject.toml"
    try:
        return root if 'name = "gpuready"' in pyproject.read_text(encoding="utf-8") else None
    except OSError:
        return None


def build_gpuready_wheel(out: Path, settings: Settings) -> Path:
    """gpuready as a wheel: built from the checkout with uv (needs the index for the build backend)."""
    root = source_checkout()
    if root is None:
        raise WorkFailed("bundle: gpuready is not running from a checkout, so it cannot build its own "
                         "wheel; run `invoke bundle` from a checkout of gpuready")
    uv = require_uv(settings)
    result = proc.run([uv, "build", "--wheel", "--quiet", "--no-progress", "--color", "never",
                       "--out-dir", str(out), "--default-index", index_url(settings), str(root)],
                      env=uv_environment(settings), timeout=600)
    wheels = sorted(out.glob("gpuready-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise WorkFailed("bundle: building gpuready's wheel failed: " + " / ".join(detail))
    return wheels[0]


def tool_lock(wheel: Path, inputs: Inputs, settings: Settings, workdir: Path) -> str:
    """A pylock.toml of gpuready (the wheel just built) and its dependencies, for the bundle's
    Python and platform: what the bundle's install.sh installs to run `setup`."""
    from packaging.utils import parse_wheel_filename as parse

    version = parse(wheel.name)[1]
    uv = require_uv(settings)
    (workdir / "tool.in").write_text(f"gpuready=={version}\n", encoding="utf-8")
    result = proc.run([uv, "pip", "compile", "tool.in", "-o", "pylock.tool.toml", "--format", "pylock.toml",
                       "--find-links", str(wheel.parent), "--generate-hashes", "--only-binary", ":all:",
                       "--python-version", inputs.python,
                       "--python-platform", python_platform(inputs.platform, inputs.glibc),
                       "--index-url", index_url(settings), "--no-header", "--quiet", "--no-progress",
                       "--color", "never"],
                      cwd=workdir, env=uv_environment(settings), timeout=600)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-5:]
        raise WorkFailed(f"bundle: resolving gpuready's own dependencies for Python {inputs.python} "
                         "failed: " + " / ".join(detail))
    return (workdir / "pylock.tool.toml").read_text(encoding="utf-8")
