"""Host facts: what `detect` finds and what `plan` decides from.

Plain frozen dataclasses with a JSON round trip, so that a plan can be made for
facts recorded on another machine (or for a what-if host built from flags).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable

PLATFORMS = ("linux-64", "linux-aarch64", "osx-arm64", "win-64")

# The shapes of the facts, defined once: flags, probes, inputs and the matrix all check with these
# (with fullmatch; ASCII digits only, so "５３５" is refused, not half-parsed).
DRIVER_VERSION = re.compile(r"[0-9]{2,4}(\.[0-9]{1,3}){1,2}")  # 535.104.05, 570.26, 537.13 (Windows)
COMPUTE_CAPABILITY = re.compile(r"[0-9]{1,2}\.[0-9]")  # 8.0, 12.0
PYTHON_VERSION = re.compile(r"3\.[0-9]{1,2}")  # 3.11
WINDOWS_FILE_VERSION = re.compile(r"[0-9]{2}\.0\.([0-9]{2})\.([0-9]{1,4})")  # 32.0.15.6636 (Device Manager)


def xy_tuple(text: str) -> tuple[int, int]:
    """An "X.Y" version (a Python, a compute capability) as numbers: "8.6" -> (8, 6)."""
    major, minor = text.split(".")
    return int(major), int(minor)


def python_range(pythons: Iterable[str]) -> str:
    """"3.10–3.13" for a set of Pythons; "none" for none."""
    ordered = sorted(pythons, key=xy_tuple)
    if not ordered:
        return "none"
    return ordered[0] if len(ordered) == 1 else f"{ordered[0]}–{ordered[-1]}"


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str  # "" when the GPU does not even answer with its name
    compute_capability: str | None  # "8.0", or None when it could not be known
    memory_mib: int | None = None
    uuid: str | None = None
    healthy: bool = True  # False: the driver lists it but it does not answer (ERR!, lost, ...)
    problem: str | None = None  # what is wrong with it, in the driver's words
    mig: bool = False  # MIG mode on: CUDA sees its MIG instances (`mig_devices`), not the GPU


@dataclass(frozen=True)
class MigDevice:
    """A MIG instance: what CUDA applications (TensorFlow) see in place of a MIG-mode GPU."""

    gpu: int  # the index of the GPU it is carved from
    index: int | None = None  # its number under that GPU
    profile: str | None = None  # "1g.10gb"
    uuid: str | None = None  # "MIG-..."
    memory_mib: int | None = None


@dataclass(frozen=True)
class Driver:
    version: str | None = None  # "535.104.05" (the Windows number under WSL)
    cuda: str | None = None  # newest CUDA the driver supports, "12.2"
    source: str | None = None  # "nvml" | "nvidia-smi" | "proc" | "kernel-log" | "override" | None
    kernel_module: str | None = None  # the loaded kernel module's version, where it was read

    @property
    def present(self) -> bool:
        return self.version is not None


@dataclass(frozen=True)
class Probe:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Container:
    """Hints that we run inside a container, and whether it was given the GPU."""

    detected: bool = False
    kind: str | None = None  # "docker", "podman", "kubernetes", ...
    dev_nvidia: bool = False  # any /dev/nvidia* device node visible


@dataclass(frozen=True)
class Note:
    """What detection found about the driver or the GPUs beyond the bare facts, and what to do.

    `code` is stable (e.g. "driver-library-mismatch"); `problem` False is information (MIG is
    on, an infoROM warning). The texts come from gpuready's data (signatures.toml's findings).
    """

    code: str
    title: str
    message: str
    fix: str
    problem: bool = True


@dataclass(frozen=True)
class HostFacts:
    platform: str
    python: str
    wsl: bool = False
    glibc: str | None = None
    driver: Driver = field(default_factory=Driver)
    gpus: tuple[Gpu, ...] = ()
    conda: tuple[str, ...] = ()  # conda-compatible executables found on PATH
    container: Container = field(default_factory=Container)
    probes: tuple[Probe, ...] = ()
    overridden: tuple[str, ...] = ()  # facts replaced by plan flags
    mig_devices: tuple[MigDevice, ...] = ()
    jetson: bool = False  # an NVIDIA Jetson (Tegra): its integrated GPU is not a desktop driver's
    l4t: str | None = None  # the Jetson's Linux for Tegra release, "35.4.1"
    notes: tuple[Note, ...] = ()

    @property
    def usable_gpus(self) -> tuple[Gpu, ...]:
        """The GPUs that answer: a plan serves these; a broken neighbour is reported, not planned."""
        return tuple(g for g in self.gpus if g.healthy)

    @property
    def mig(self) -> bool:
        return any(g.mig for g in self.gpus) or bool(self.mig_devices)

    @property
    def problems(self) -> tuple[Note, ...]:
        return tuple(n for n in self.notes if n.problem)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("gpus", "probes", "mig_devices", "notes"):
            data[key] = [asdict(item) for item in getattr(self, key)]
        data["conda"] = list(self.conda)
        data["overridden"] = list(self.overridden)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostFacts:
        return cls(
            platform=data["platform"],
            python=data["python"],
            wsl=bool(data.get("wsl", False)),
            glibc=data.get("glibc"),
            driver=Driver(**(data.get("driver") or {})),
            gpus=tuple(Gpu(**g) for g in data.get("gpus") or ()),
            conda=tuple(data.get("conda") or ()),
            container=Container(**(data.get("container") or {})),
            probes=tuple(Probe(**p) for p in data.get("probes") or ()),
            overridden=tuple(data.get("overridden") or ()),
            mig_devices=tuple(MigDevice(**m) for m in data.get("mig_devices") or ()),
            jetson=bool(data.get("jetson", False)),
            l4t=data.get("l4t"),
            notes=tuple(Note(**n) for n in data.get("notes") or ()),
        )

    def with_(self, **changes: Any) -> HostFacts:
        return replace(self, **changes)
