"""The compatibility matrix: TOML data under ``matrix/``, validated on load.

Every fact the planner uses lives in those files; this module holds their types and the
questions the planner asks of them. Reading and checking the files is `_matrix_files`: a
malformed or inconsistent file raises `MatrixError` naming the file, the key and what is wrong.

    tensorflow.toml     releases: Python tags, platforms, glibc floors, build_info's CUDA/cuDNN,
                        the and-cuda extra, the pin set
    kernels.toml        the GPU code measured in each release's wheel (SASS, PTX, PTX ISA per set)
    cuda-wheels.toml    the CUDA wheel pin sets of TensorFlow's tested configurations
    cuda.toml           CUDA releases -> drivers (Table 3), minor-version floors, PTX ISA -> CUDA
    gpus.toml           GPU names -> compute capability; driver branches per architecture
    conda-forge.toml    conda-forge's TensorFlow builds
    known-issues.toml   field-reported failures and the planner's remedies
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Mapping

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from ..errors import MatrixError
from .gpu_names import GpuNames

MATRIX_ENV = "GPUREADY_MATRIX"
FILES = ("tensorflow.toml", "kernels.toml", "cuda-wheels.toml", "cuda.toml", "gpus.toml",
         "conda-forge.toml", "known-issues.toml")
DISTS = ("tensorflow", "tensorflow-cpu")
AND_CUDA_KINDS = ("none", "exact", "range")
SCOPE_ALL, SCOPE_NCCL = "all", "nccl"


@dataclass(frozen=True)
class WheelSet:
    pythons: tuple[str, ...]
    glibc: str | None = None


@dataclass(frozen=True)
class KernelSet:
    """Fatbins of one library and section with the same GPU code (kernels.toml)."""

    library: str  # "libtensorflow_cc.so.2"
    section: str  # "nv_fatbin" (main kernels) | "embedded" (MLIR-generated kernels)
    fatbins: int
    sass: tuple[str, ...]  # "sm_80", ...
    ptx: str | None  # "compute_90", or None: SASS only
    target: str | None  # the PTX's .target: "sm_90", or "sm_90a" (serves compute capability 9.0 alone)
    isa: str | None  # the PTX ISA, "8.5"
    scope: str  # "all" | "nccl" (NCCL's collectives: multi-GPU all-reduce only)
    tool: str  # "cuobjdump 13.5.37"

    @property
    def label(self) -> str:
        what = {"nv_fatbin": "main kernels", "embedded": "MLIR-generated kernels"}.get(self.section, self.section)
        if self.scope == SCOPE_NCCL:
            what = "NCCL collectives"
        return f"{what} ({self.library})"


@dataclass(frozen=True)
class ReleaseKernels:
    wheel: str
    sha256: str
    measured: str
    sets: tuple[KernelSet, ...]
    unmeasured: str = ""  # why the wheel's code could not be read (then `sets` is empty)


@dataclass(frozen=True)
class Release:
    version: Version
    cuda: str
    cudnn: str
    sass: tuple[str, ...]  # build_info's claim
    ptx: tuple[str, ...]  # build_info's claim
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
    kernels: ReleaseKernels | None = None  # measured (kernels.toml); None: build_info's claim only

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
    source: str = ""


@dataclass(frozen=True)
class Architecture:
    """The driver branches that drive a GPU architecture (gpus.toml [[architectures]])."""

    name: str
    ccs: tuple[str, ...]
    first_branch: int | None
    last_branch: int | None
    source: str


@dataclass(frozen=True)
class Remedy:
    kind: str  # "pin" | "env" | "none"
    requirement: str | None = None  # pin: "nvidia-cudnn-cu12==9.24.0.43" (a conda spec for conda)
    name: str | None = None  # env
    value: str | None = None
    advice: str | None = None

    @property
    def package(self) -> str | None:
        """The package a pin replaces (its name as the lock writes it)."""
        if self.kind != "pin" or not self.requirement:
            return None
        if "==" in self.requirement:
            return canonicalize_name(Requirement(self.requirement).name)
        return canonicalize_name(self.requirement.split("=")[0].split()[0])


@dataclass(frozen=True)
class KnownIssue:
    id: str
    title: str
    tensorflow: SpecifierSet
    compute_capabilities: tuple[str, ...]  # () = any GPU
    packages: Mapping[str, SpecifierSet]  # canonical name -> affected versions
    platforms: tuple[str, ...]
    flavor: str  # "pip" | "conda" | "any"
    symptom: str  # a failure signature id
    sources: tuple[str, ...]
    remedy: Remedy
    checked: str
    status: str


@dataclass(frozen=True)
class Matrix:
    releases: tuple[Release, ...]  # newest first
    pin_sets: Mapping[str, PinSet]
    floors: Mapping[int, DriverPair]  # CUDA major -> minor-version-compatibility floor
    cuda_releases: Mapping[Version, DriverPair]  # CUDA release -> Table-3 driver
    ptx_isa: Mapping[str, Version]  # PTX ISA "8.5" -> the first CUDA release whose driver JITs it
    gpu_names: GpuNames
    experimental_majors: tuple[int, ...]
    architectures: tuple[Architecture, ...]
    conda_forge: tuple[CondaForgeRelease, ...]  # newest first
    conda_channel: str
    known_issues: tuple[KnownIssue, ...] = ()
    source: str = "matrix"

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

    def isa_driver(self, isa: str, windows: bool) -> tuple[str, str | None] | None:
        """(the CUDA release that brought PTX ISA `isa`, the driver that JITs it), or None."""
        cuda = self.ptx_isa.get(isa)
        if cuda is None:
            return None
        return str(cuda), self.full_driver(str(cuda), windows)

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
        """The compute capability of a GPU by its exact model, or None when unknown or ambiguous."""
        return self.gpu_names.compute_capability(gpu_name)

    def architecture(self, cc: str) -> Architecture | None:
        return next((a for a in self.architectures if cc in a.ccs), None)

    def conda_forge_release(self, version: Version) -> CondaForgeRelease | None:
        return next((r for r in self.conda_forge if r.version == version), None)


def parse(texts: Mapping[str, str], source: str = "matrix") -> Matrix:
    """Build a validated `Matrix` from the text of each file in `FILES`."""
    from ._matrix_files import read_all

    for name in FILES:
        if name not in texts:
            raise MatrixError(name, "(file)", f"missing from {source}")
    return read_all(texts, source)


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


__all__ = ["Architecture", "CondaForgeRelease", "DriverPair", "KernelSet", "KnownIssue", "Matrix", "PinSet",
           "Release", "ReleaseKernels", "Remedy", "Version", "WheelSet", "load", "parse"]
