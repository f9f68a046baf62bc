"""Host facts: what `detect` finds and what `plan` decides from.

Plain frozen dataclasses with a JSON round trip, so that a plan can be made for
facts recorded on another machine (or for a what-if host built from flags).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

PLATFORMS = ("linux-64", "linux-aarch64", "osx-arm64", "win-64")


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
