"""The plan: the environment to build, why, and what was rejected (PRODUCT.md's codes).

What `planner.make_plan` returns and every later step carries: lock turns it into inputs,
install records it, certify checks the environment against it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from ..errors import WorkFailed
from .facts import HostFacts

# Rejection codes
DRIVER_TOO_OLD = "driver-too-old"
PTX_DRIVER_TOO_OLD = "ptx-driver-too-old"
GPU_ARCH_UNSUPPORTED = "gpu-arch-unsupported"
PYTHON_UNSUPPORTED = "python-unsupported"
PLATFORM_UNSUPPORTED = "platform-unsupported"
NOT_INSTALLABLE = "not-installable"
# Warning codes
NO_GPU = "no-gpu"
CPU_FALLBACK = "cpu-fallback"
PTX_JIT = "ptx-jit"
EXPERIMENTAL_GPU = "experimental-gpu"
UNKNOWN_GPU = "unknown-compute-capability"
KNOWN_ISSUE = "known-issue"  # a field-reported failure of the combination (matrix/known-issues.toml)
WSL_LINUX_DRIVER = "wsl-linux-driver"  # a Linux-looking driver number given for a WSL2 host

@dataclass(frozen=True)
class Finding:
    code: str
    message: str


@dataclass(frozen=True)
class Rejection:
    tensorflow: str
    code: str
    message: str


@dataclass(frozen=True)
class Plan:
    device: str  # "gpu" | "cpu"
    tensorflow: str
    python: str
    cuda: str | None
    cudnn: str | None
    flavor: str
    env: str
    platform: str
    distribution: str  # "tensorflow" | "tensorflow-cpu"
    source: str  # "pypi" | "conda-forge": where TensorFlow itself comes from
    requirements: tuple[str, ...]  # pip requirement lines (the conda flavor's pip: section)
    and_cuda: str  # "extra" | "taken-apart" | "none"
    conda_packages: tuple[str, ...]  # conda specs (conda flavor only)
    conda_channel: str | None
    virtual_packages: dict[str, str]
    glibc: str | None  # the glibc floor of the chosen wheels
    build_cuda: str | None  # the CUDA release TensorFlow was built with ("12.5.1")
    reasons: tuple[str, ...]
    warnings: tuple[Finding, ...]
    rejected: tuple[Rejection, ...]
    host: HostFacts
    environment: dict[str, str] = field(default_factory=dict)  # what activation sets (a known issue's remedy)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["host"] = self.host.to_dict()
        for key in ("requirements", "conda_packages", "reasons"):
            data[key] = list(data[key])
        data["warnings"] = [asdict(w) for w in self.warnings]
        data["rejected"] = [asdict(r) for r in self.rejected]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        values = dict(data)
        values["host"] = HostFacts.from_dict(data["host"])
        for key in ("requirements", "conda_packages", "reasons"):
            values[key] = tuple(data[key])
        values["warnings"] = tuple(Finding(**w) for w in data["warnings"])
        values["rejected"] = tuple(Rejection(**r) for r in data["rejected"])
        return cls(**{k: values[k] for k in cls.__dataclass_fields__ if k in values})


class NoPlan(WorkFailed):
    """No installable plan, not even for the CPU (exit 1)."""

    def __init__(self, reasons: Iterable[str], ways_out: Iterable[str],
                 rejected: Iterable[Rejection] = (), host: HostFacts | None = None) -> None:
        self.reasons = tuple(reasons)
        self.ways_out = tuple(ways_out)
        self.rejected = tuple(rejected)
        self.host = host
        text = "no installable TensorFlow for this host: " + "; ".join(self.reasons)
        if self.ways_out:
            text += ". Ways out: " + "; ".join(self.ways_out)
        super().__init__(text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": None,
            "error": self.message,
            "reasons": list(self.reasons),
            "ways_out": list(self.ways_out),
            "rejected": [asdict(r) for r in self.rejected],
            "host": self.host.to_dict() if self.host else None,
        }
