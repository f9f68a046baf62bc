"""The compatibility matrix: TOML data under ``matrix/``, validated on load.

Every fact the planner uses lives in those files; this module only reads and
checks them. A malformed or inconsistent file raises `MatrixError` naming the
file, the key and what is wrong.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import MatrixError
from .facts import PLATFORMS

MATRIX_ENV = "GPUREADY_MATRIX"
FILES = ("tensorflow.toml", "cuda-wheels.toml", "cuda.toml", "gpus.toml", "conda-forge.toml")
DISTS = ("tensorflow", "tensorflow-cpu")
AND_CUDA_KINDS = ("none", "exact", "range")


@dataclass(frozen=True)
class WheelSet:
    pythons: tuple[str, ...]
    glibc: str | None = None


@dataclass(frozen=True)
class Release:
    version: Version
    cuda: str
    cudnn: str
    sass: tuple[str, ...]
    ptx: tuple[str, ...]
    gpu_platforms: tuple[str, ...]
    pins: str
    pin_overrides: tuple[str, ...]
    and_cuda: str
    extra_unresolvable_pythons: tuple[str, ...]
    extra_unresolvable_reason: str
    wheels: Mapping[str, Mapping[str, WheelSet]]
    # Set by `matrix.refresh` when a fact could not be read: what a person must fill in.
    # The planner skips a release under review.
    review: str = ""

    @property
    def minor(self) -> str:
        return f"{self.version.major}.{self.version.minor}"

    def wheel(self, dist: str, platform: str) -> WheelSet | None:
        return self.wheels.get(dist, {}).get(platform)


@dataclass(frozen=True)
class PinSet:
    name: str
    cuda: str
    cudnn: str
    packages: tuple[str, ...]


@dataclass(frozen=True)
class DriverPair:
    linux: str
    windows: str | None

    def for_host(self, windows: bool) -> str | None:
        return self.windows if windows else self.linux


@dataclass(frozen=True)
class CondaForgeRelease:
    version: Version
    cuda: tuple[str, ...]
    pythons: tuple[str, ...]
    platforms: tuple[str, ...]
    sass: tuple[str, ...]
    ptx: tuple[str, ...]
    verified: bool


@dataclass(frozen=True)
class Matrix:
    releases: tuple[Release, ...]  # newest first
    pin_sets: Mapping[str, PinSet]
    floors: Mapping[int, DriverPair]  # CUDA major -> minor-version-compatibility floor
    cuda_releases: Mapping[Version, DriverPair]  # CUDA release -> Table-3 driver
    gpu_names: tuple[tuple[str, str], ...]
    experimental_majors: tuple[int, ...]
    conda_forge: tuple[CondaForgeRelease, ...]  # newest first
    conda_channel: str
    source: str

    def release(self, version: str | Version) -> Release | None:
        wanted = Version(str(version))
        return next((r for r in self.releases if r.version == wanted), None)

    def pins_for(self, release: Release) -> PinSet | None:
        """The release's pin set with its overrides applied, or None without one."""
        if not release.pins:
            return None
        base = self.pin_sets[release.pins]
        overrides = {canonicalize_name(Requirement(o).name): o for o in release.pin_overrides}
        packages = tuple(
            overrides.pop(canonicalize_name(Requirement(p).name), p) for p in base.packages
        ) + tuple(overrides.values())
        return PinSet(base.name, base.cuda, base.cudnn, packages)

    def full_driver(self, cuda: str, windows: bool) -> str | None:
        """The Table-3 driver of a CUDA release ("12.5.1"; "12.3" means 12.3.0)."""
        version = Version(cuda)
        if len(version.release) == 2:
            version = Version(f"{cuda}.0")
        pair = self.cuda_releases.get(version)
        return pair.for_host(windows) if pair else None

    def floor(self, cuda: str, windows: bool) -> str | None:
        pair = self.floors.get(Version(cuda).major)
        return pair.for_host(windows) if pair else None

    def newest_cuda_for_driver(self, driver: str, windows: bool) -> str | None:
        """The newest CUDA "X.Y" whose Table-3 driver this driver meets."""
        have = Version(driver)
        best: Version | None = None
        for cuda, pair in self.cuda_releases.items():
            need = pair.for_host(windows)
            if need is not None and have >= Version(need) and (best is None or cuda > best):
                best = cuda
        return f"{best.major}.{best.minor}" if best else None

    def cc_for_name(self, gpu_name: str) -> str | None:
        lowered = gpu_name.lower()
        return next((cc for match, cc in self.gpu_names if match.lower() in lowered), None)

    def conda_forge_release(self, version: Version) -> CondaForgeRelease | None:
        return next((r for r in self.conda_forge if r.version == version), None)


# --------------------------------------------------------------------------- reading


class _Table:
    """A TOML table with the file and key path it came from, for error messages."""

    def __init__(self, file: str, path: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise MatrixError(file, path or "(top)", f"expected a table, got {_kind(data)}")
        self.file, self.path, self.data = file, path, data

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def only(self, *allowed: str) -> None:
        for key in self.data:
            if key not in allowed:
                raise MatrixError(
                    self.file, self._key(key), f"unknown key (expected one of: {', '.join(allowed)})"
                )

    def error(self, key: str, problem: str) -> MatrixError:
        return MatrixError(self.file, self._key(key), problem)

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self.error(key, "missing")
            return default
        value = self.data[key]
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise self.error(key, f"expected {kind.__name__}, got {_kind(value)} {value!r}")
        return value

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if value is default and default is not ...:
            return tuple(default)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{key}[{i}]", f"expected str, got {_kind(item)} {item!r}")
        return tuple(value)

    def table(self, key: str, default: Any = ...) -> _Table:
        if key not in self.data and default is not ...:
            return _Table(self.file, self._key(key), default)
        return _Table(self.file, self._key(key), self.get(key, dict))

    def items(self) -> Iterator[tuple[str, _Table]]:
        for key in self.data:
            yield key, self.table(key)

    def version(self, key: str, value: str | None = None, *, what: str = "version") -> Version:
        text = self.get(key, str) if value is None else value
        try:
            return Version(text)
        except InvalidVersion:
            raise self.error(key, f"not a valid {what}: {text!r}") from None


def _kind(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _python(table: _Table, key: str, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        parts = value.split(".")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise table.error(key, f"{value!r} is not a Python version X.Y")
    return values


def _arches(table: _Table, key: str, prefix: str, default: Any = ...) -> tuple[str, ...]:
    values = table.strings(key, default)
    for value in values:
        digits = value[len(prefix):]
        if not value.startswith(prefix) or not digits.isdigit() or len(digits) < 2:
            raise table.error(key, f"{value!r} is not of the form {prefix}XY")
    return values


def _platforms(table: _Table, key: str, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if value not in PLATFORMS:
            raise table.error(key, f"unknown platform {value!r} (expected one of {', '.join(PLATFORMS)})")
    return values


def _driver(table: _Table, key: str) -> str:
    text = table.get(key, str)
    try:
        Version(text)
    except InvalidVersion:
        raise table.error(key, f"not a driver version: {text!r}") from None
    return text


def _read_releases(table: _Table, pin_sets: Mapping[str, PinSet], cuda_file: str,
                   cuda_releases: Mapping[Version, DriverPair]) -> tuple[Release, ...]:
    table.only("schema", "releases")
    releases = []
    for name, rel in table.table("releases").items():
        version = _release_version(rel, name)
        rel.only("cuda", "cudnn", "sass", "ptx", "gpu_platforms", "pins", "pin_overrides",
                 "and_cuda", "extra_unresolvable", "wheels", "review")
        review = rel.get("review", str, "")
        # Under review, the facts refresh could not read may be missing (never guessed).
        unknown = "" if review else ...
        cuda = rel.get("cuda", str, unknown)
        if cuda or not review:
            rel.version("cuda", what="CUDA version")
            base = Version(cuda)
            full = base if len(base.release) == 3 else Version(f"{cuda}.0")
            if full not in cuda_releases and not review:
                raise rel.error("cuda", f"CUDA {cuda} has no row in {cuda_file} (releases)")
        pins = rel.get("pins", str, unknown)
        if pins and pins not in pin_sets:
            raise rel.error("pins", f"no pin set {pins!r} in cuda-wheels.toml")
        overrides = rel.strings("pin_overrides", ())
        for i, text in enumerate(overrides):
            _requirement(rel, f"pin_overrides[{i}]", text)
        and_cuda = rel.get("and_cuda", str, "none" if review else ...)
        if and_cuda not in AND_CUDA_KINDS:
            raise rel.error("and_cuda", f"expected one of {', '.join(AND_CUDA_KINDS)}, got {and_cuda!r}")
        unresolvable = rel.table("extra_unresolvable", {})
        unresolvable.only("pythons", "reason")
        wheels: dict[str, dict[str, WheelSet]] = {}
        for dist, plats in rel.table("wheels").items():
            if dist not in DISTS:
                raise plats.error("", f"unknown distribution (expected one of {', '.join(DISTS)})")
            wheels[dist] = {}
            for plat, ws in plats.items():
                _platforms(plats, plat, (plat,))
                ws.only("pythons", "glibc")
                glibc = ws.get("glibc", str, None)
                if glibc is not None:
                    ws.version("glibc", what="glibc version")
                wheels[dist][plat] = WheelSet(_python(ws, "pythons", ws.strings("pythons")), glibc)
        gpu_platforms = _platforms(rel, "gpu_platforms", rel.strings("gpu_platforms", () if review else ...))
        for plat in gpu_platforms:
            if plat not in wheels.get("tensorflow", {}):
                raise rel.error("gpu_platforms", f"{plat} has no tensorflow wheel listed under wheels")
        releases.append(Release(
            version=version,
            cuda=cuda,
            cudnn=rel.get("cudnn", str, unknown),
            sass=_arches(rel, "sass", "sm_", () if review else ...),
            ptx=_arches(rel, "ptx", "compute_", () if review else ...),
            gpu_platforms=gpu_platforms,
            pins=pins,
            pin_overrides=overrides,
            and_cuda=and_cuda,
            extra_unresolvable_pythons=_python(unresolvable, "pythons", unresolvable.strings("pythons", ())),
            extra_unresolvable_reason=unresolvable.get("reason", str, ""),
            wheels=wheels,
            review=review,
        ))
    releases.sort(key=lambda r: r.version, reverse=True)
    return tuple(releases)


def _release_version(table: _Table, name: str) -> Version:
    try:
        return Version(name)
    except InvalidVersion:
        raise MatrixError(table.file, table.path, "not a valid TensorFlow version") from None


def _requirement(table: _Table, key: str, text: str) -> Requirement:
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise table.error(key, f"not a valid requirement {text!r}: {exc}") from None
    if len(req.specifier) != 1 or next(iter(req.specifier)).operator != "==":
        raise table.error(key, f"{text!r} must pin one exact version (==)")
    return req


def _read_pin_sets(table: _Table) -> dict[str, PinSet]:
    table.only("schema", "pin_sets")
    sets = {}
    for name, pin in table.table("pin_sets").items():
        pin.only("cuda", "cudnn", "packages")
        packages = pin.strings("packages")
        for i, text in enumerate(packages):
            _requirement(pin, f"packages[{i}]", text)
        pin.version("cuda", what="CUDA version")
        pin.version("cudnn", what="cuDNN version")
        sets[name] = PinSet(name, pin.get("cuda", str), pin.get("cudnn", str), packages)
    return sets


def _read_cuda(table: _Table) -> tuple[dict[int, DriverPair], dict[Version, DriverPair]]:
    table.only("schema", "minor_version_floor", "releases")
    floors = {}
    for major, row in table.table("minor_version_floor").items():
        if not major.isdigit():
            raise row.error("", "a CUDA major version must be a whole number")
        row.only("linux", "windows")
        floors[int(major)] = DriverPair(_driver(row, "linux"),
                                        _driver(row, "windows") if "windows" in row.data else None)
    releases = {}
    for name, row in table.table("releases").items():
        version = _release_version(row, name)
        if len(version.release) != 3:
            raise row.error("", "a CUDA release is written X.Y.Z")
        row.only("linux", "windows")
        releases[version] = DriverPair(_driver(row, "linux"),
                                       _driver(row, "windows") if "windows" in row.data else None)
    for version in releases:
        if version.major not in floors:
            raise table.error("minor_version_floor", f"no floor for CUDA {version.major} (needed by {version})")
    return floors, releases


def _read_gpus(table: _Table) -> tuple[tuple[tuple[str, str], ...], tuple[int, ...]]:
    table.only("schema", "experimental_majors", "names")
    names = []
    for i, entry in enumerate(table.get("names", list)):
        row = _Table(table.file, f"names[{i}]", entry)
        row.only("match", "cc")
        cc = row.get("cc", str)
        parts = cc.split(".")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise row.error("cc", f"{cc!r} is not a compute capability X.Y")
        names.append((row.get("match", str), cc))
    majors = table.get("experimental_majors", list)
    for i, major in enumerate(majors):
        if not isinstance(major, int) or isinstance(major, bool):
            raise table.error(f"experimental_majors[{i}]", f"expected int, got {major!r}")
    return tuple(names), tuple(majors)


def _read_conda_forge(table: _Table) -> tuple[tuple[CondaForgeRelease, ...], str]:
    table.only("schema", "channel", "releases")
    releases = []
    for name, rel in table.table("releases").items():
        version = _release_version(rel, name)
        rel.only("cuda", "pythons", "platforms", "sass", "ptx", "verified")
        cuda = rel.strings("cuda")
        for value in cuda:
            rel.version("cuda", value, what="CUDA version")
        releases.append(CondaForgeRelease(
            version=version,
            cuda=cuda,
            pythons=_python(rel, "pythons", rel.strings("pythons")),
            platforms=_platforms(rel, "platforms", rel.strings("platforms")),
            sass=_arches(rel, "sass", "sm_"),
            ptx=_arches(rel, "ptx", "compute_"),
            verified=rel.get("verified", bool),
        ))
    releases.sort(key=lambda r: r.version, reverse=True)
    return tuple(releases), table.get("channel", str)


def _parse(name: str, text: str) -> _Table:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(name, "(syntax)", str(exc)) from None
    table = _Table(name, "", data)
    if table.get("schema", int) != 1:
        raise table.error("schema", "unsupported schema (expected 1)")
    return table


def parse(texts: Mapping[str, str], source: str = "matrix") -> Matrix:
    """Build a validated `Matrix` from the text of each file in `FILES`."""
    for name in FILES:
        if name not in texts:
            raise MatrixError(name, "(file)", f"missing from {source}")
    tables = {name: _parse(name, texts[name]) for name in FILES}
    pin_sets = _read_pin_sets(tables["cuda-wheels.toml"])
    floors, cuda_releases = _read_cuda(tables["cuda.toml"])
    releases = _read_releases(tables["tensorflow.toml"], pin_sets, "cuda.toml", cuda_releases)
    gpu_names, experimental = _read_gpus(tables["gpus.toml"])
    conda_forge, channel = _read_conda_forge(tables["conda-forge.toml"])
    return Matrix(releases, pin_sets, floors, cuda_releases, gpu_names, experimental,
                  conda_forge, channel, source)


def default_dir() -> Path | None:
    """The matrix folder: $GPUREADY_MATRIX, else the one shipped with the package."""
    if os.environ.get(MATRIX_ENV):
        return Path(os.environ[MATRIX_ENV])
    return None


def load(directory: str | os.PathLike[str] | None = None) -> Matrix:
    """Read and validate the matrix from a folder (default: `default_dir`)."""
    directory = directory if directory is not None else default_dir()
    if directory is None:
        root = resources.files("gpuready._matrix")
        texts = {name: root.joinpath(name).read_text(encoding="utf-8") for name in FILES
                 if root.joinpath(name).is_file()}
        return parse(texts, source=str(root))
    folder = Path(directory)
    if not folder.is_dir():
        raise MatrixError(str(folder), "(folder)", "not a directory")
    texts = {}
    for name in FILES:
        path = folder / name
        if path.is_file():
            try:
                texts[name] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise MatrixError(str(path), "(file)", f"cannot be read: {exc}") from None
    try:
        return parse(texts, source=str(folder))
    except MatrixError as exc:
        raise MatrixError(str(folder / exc.file), exc.key, exc.problem) from None
