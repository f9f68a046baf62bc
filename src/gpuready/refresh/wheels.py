"""Facts read from the index's file lists and from the wheels themselves: CPython and platform
tags, glibc floors, `build_info.py` (CUDA, cuDNN, architectures), the `and-cuda` extra.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from ..model.facts import PLATFORMS, xy_tuple
from .index import IndexClient, IndexFile, NotReadable

BUILD_INFO = "tensorflow/python/platform/build_info.py"
MEMBER_LIMIT = 4 * 1024 * 1024  # build_info.py and METADATA are a few kB; refuse to inflate more
ENV_PLATFORM = {  # the marker environment the and-cuda extra is read for (its GPU wheels)
    "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
    "os_name": "posix",
}


@dataclass
class WheelGroup:
    """The wheels of one distribution, release and platform."""

    pythons: tuple[str, ...]
    glibc: str | None
    files: list[IndexFile]
    requires_python: str | None

    def newest_file(self) -> IndexFile:
        def python_of(file: IndexFile) -> tuple[int, int]:
            tags = parse_wheel_filename(file.filename)[3]
            cps = [_cpython(t.interpreter) for t in tags if _cpython(t.interpreter)]
            return max((xy_tuple(p) for p in cps), default=(0, 0))
        return max(self.files, key=lambda f: (python_of(f), f.filename))


def _cpython(interpreter: str) -> str | None:
    match = re.fullmatch(r"cp(\d)(\d+)", interpreter)
    return f"{match.group(1)}.{match.group(2)}" if match else None


_LEGACY_MANYLINUX = {"manylinux1": "2.5", "manylinux2010": "2.12", "manylinux2014": "2.17"}


def platform_of(tag: str) -> tuple[str | None, str | None]:
    """A wheel platform tag -> (gpuready platform or None, glibc floor or None)."""
    match = re.fullmatch(r"(manylinux_(\d+)_(\d+)|manylinux1|manylinux2010|manylinux2014)_(\w+)", tag)
    if match:
        glibc = f"{match.group(2)}.{match.group(3)}" if match.group(2) else _LEGACY_MANYLINUX[match.group(1)]
        arch = match.group(4)
        return {"x86_64": "linux-64", "aarch64": "linux-aarch64"}.get(arch), glibc
    if re.fullmatch(r"macosx_\d+_\d+_arm64", tag):
        return "osx-arm64", None
    if tag == "win_amd64":
        return "win-64", None
    return None, None


def index_releases(files: Iterable[IndexFile]) -> dict[Version, dict[str, WheelGroup]]:
    """Final releases -> platform -> their wheels (yanked files and other platforms left out)."""
    found: dict[Version, dict[str, dict[str, Any]]] = {}
    for file in files:
        if file.yanked or not file.filename.endswith(".whl"):
            continue
        try:
            _, version, _, tags = parse_wheel_filename(file.filename)
        except InvalidWheelFilename:
            continue
        if version.is_prerelease or version.is_devrelease:
            continue
        try:
            allowed = SpecifierSet(file.requires_python) if file.requires_python else None
        except InvalidSpecifier:
            allowed = None
        floors: dict[str, list[str]] = {}  # this file's glibc floors by platform (it installs on the lowest)
        for tag in tags:
            python = _cpython(tag.interpreter)
            platform, glibc = platform_of(tag.platform)
            if python is None or platform is None:
                continue
            if allowed is not None and not allowed.contains(python, prereleases=True):
                continue
            group = found.setdefault(version, {}).setdefault(
                platform, {"pythons": set(), "glibc": set(), "files": [], "requires_python": set()})
            group["pythons"].add(python)
            if glibc:
                floors.setdefault(platform, []).append(glibc)
            if file not in group["files"]:
                group["files"].append(file)
            if file.requires_python:
                group["requires_python"].add(file.requires_python)
        for platform, values in floors.items():
            found[version][platform]["glibc"].add(min(values, key=Version))
    result: dict[Version, dict[str, WheelGroup]] = {}
    for version, platforms in found.items():
        result[version] = {}
        for platform in PLATFORMS:
            if platform not in platforms:
                continue
            group = platforms[platform]
            result[version][platform] = WheelGroup(
                pythons=tuple(sorted(group["pythons"], key=xy_tuple)),
                # The floor the release needs on this platform: the highest of its wheels'.
                glibc=max(group["glibc"], key=Version) if group["glibc"] else None,
                files=group["files"],
                requires_python=", ".join(sorted(group["requires_python"])) or None,
            )
    return result


# --------------------------------------------------------------------------- facts from a wheel


@dataclass(frozen=True)
class BuildFacts:
    is_cuda_build: bool
    cuda: str | None
    cudnn: str | None
    sass: tuple[str, ...]
    ptx: tuple[str, ...]


def parse_build_info(text: str) -> dict[str, Any]:
    """The `build_info` mapping of TensorFlow's build_info.py, read without running it."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise NotReadable(f"{BUILD_INFO} does not parse: {exc.msg}") from None
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        if not any(isinstance(t, ast.Name) and t.id == "build_info" for t in node.targets):
            continue
        value = node.value
        if isinstance(value, ast.Call):  # collections.OrderedDict([...]) or dict(...)
            func = value.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name not in ("OrderedDict", "dict") or len(value.args) > 1:
                raise NotReadable(f"{BUILD_INFO}: build_info is not literal data")
            if value.args:
                value = value.args[0]
            else:
                try:
                    return {k.arg: ast.literal_eval(k.value) for k in value.keywords if k.arg}
                except ValueError:
                    raise NotReadable(f"{BUILD_INFO}: build_info is not literal data") from None
        try:
            return dict(ast.literal_eval(value))
        except (ValueError, TypeError):
            raise NotReadable(f"{BUILD_INFO}: build_info is not literal data") from None
    raise NotReadable(f"{BUILD_INFO} has no build_info assignment")


def build_facts(info: Mapping[str, Any]) -> BuildFacts:
    if not info.get("is_cuda_build"):
        return BuildFacts(False, None, None, (), ())
    cuda, cudnn = info.get("cuda_version"), info.get("cudnn_version")
    if not isinstance(cuda, str) or not re.fullmatch(r"\d+\.\d+(\.\d+)?", cuda):
        raise NotReadable(f"build_info's cuda_version {cuda!r} is not a CUDA version")
    if not isinstance(cudnn, str) or not re.fullmatch(r"\d+(\.\d+)*", cudnn):
        raise NotReadable(f"build_info's cudnn_version {cudnn!r} is not a cuDNN version")
    caps = info.get("cuda_compute_capabilities")
    if not isinstance(caps, (list, tuple)) or not caps:
        raise NotReadable(f"build_info's cuda_compute_capabilities {caps!r} is not a list")
    sass, ptx = [], []
    for cap in caps:
        if isinstance(cap, str) and re.fullmatch(r"sm_\d{2,3}", cap):
            sass.append(cap)
        elif isinstance(cap, str) and re.fullmatch(r"compute_\d{2,3}", cap):
            ptx.append(cap)
        else:
            raise NotReadable(f"build_info's compute capability {cap!r} is neither sm_XY nor compute_XY")
    return BuildFacts(True, cuda, cudnn, tuple(sass), tuple(ptx))


def read_build(client: IndexClient, file: IndexFile) -> BuildFacts:
    """The build facts of one wheel; NotReadable when they cannot be read."""
    with client.open_wheel(file) as wheel:
        names = set(wheel.namelist())
        if BUILD_INFO not in names:
            if not any(n.startswith("tensorflow/") for n in names):
                return BuildFacts(False, None, None, (), ())  # a shim wheel that depends on another
            raise NotReadable(f"{file.filename} has no {BUILD_INFO}")
        if wheel.getinfo(BUILD_INFO).file_size > MEMBER_LIMIT:
            raise NotReadable(f"{file.filename}: {BUILD_INFO} is implausibly large")
        text = wheel.read(BUILD_INFO).decode("utf-8", errors="replace")
    return build_facts(parse_build_info(text))


def read_metadata(client: IndexClient, file: IndexFile) -> str:
    try:
        return client.core_metadata(file)
    except NotReadable:
        pass
    with client.open_wheel(file) as wheel:
        names = [n for n in wheel.namelist()
                 if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
        if len(names) != 1:
            raise NotReadable(f"{file.filename} has no single .dist-info/METADATA")
        if wheel.getinfo(names[0]).file_size > MEMBER_LIMIT:
            raise NotReadable(f"{file.filename}: {names[0]} is implausibly large")
        return wheel.read(names[0]).decode("utf-8", errors="replace")


def and_cuda_requirements(metadata: str, python: str) -> tuple[Requirement, ...] | None:
    """The `and-cuda` extra's requirements, for Linux x86_64; None when there is no such extra."""
    raw, _unparsed = parse_email(metadata)  # lenient: a field it cannot read is left aside
    extras = {canonicalize_name(e) for e in raw.get("provides_extra") or []}
    found = []
    for text in raw.get("requires_dist") or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is None:
            continue
        env = {**ENV_PLATFORM, "python_version": python, "python_full_version": f"{python}.0"}
        if req.marker.evaluate({**env, "extra": "and-cuda"}) and not req.marker.evaluate({**env, "extra": ""}):
            req.marker = None
            found.append(req)
    if not found and "and-cuda" not in extras:
        return None
    return tuple(sorted(found, key=lambda r: canonicalize_name(r.name)))
