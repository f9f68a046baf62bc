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
    name: str
    compute_capability: str | None  # "8.0", or None when it could not be known
    memory_mib: int | None = None
    uuid: str | None = None


@dataclass(frozen=True)
class Driver:
    version: str | None = None  # "535.104.05" (the Windows number under WSL)
    cuda: str | None = None  # newest CUDA the driver supports, "12.2"
    source: str | None = None  # "nvml" | "nvidia-smi" | "proc" | "override" | None

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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gpus"] = [asdict(g) for g in self.gpus]
        data["probes"] = [asdict(p) for p in self.probes]
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
        )

    def with_(self, **changes: Any) -> HostFacts:
        return replace(self, **changes)
