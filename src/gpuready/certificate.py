"""The certificate: what `certify` proved about an environment, as data.

Pure: no I/O beyond (de)serialising. The status and the exit code follow PRODUCT.md:
`failed` when any check failed; `cpu-only` when nothing failed but no GPU took part;
`certified` otherwise. Exit 0 certified; 1 failed; 3 cpu-only unless --allow-cpu (then 0).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from .errors import EXIT_CPU_ONLY, EXIT_FAILED, EXIT_OK

SCHEMA = 1

PASS, FAIL, SKIP, WARN = "pass", "fail", "skip", "warn"
CHECK_STATUSES = (PASS, FAIL, SKIP, WARN)
CERTIFIED, CPU_ONLY, FAILED = "certified", "cpu-only", "failed"
STATUSES = (CERTIFIED, CPU_ONLY, FAILED)
NO_GPU = "no GPU"  # the reason every GPU-only check gives on a host without one

PROBLEM, INFO = "problem", "info"  # severities of a diagnosis finding


@dataclass
class Check:
    name: str
    level: int
    status: str  # pass | fail | skip | warn
    title: str = ""
    seconds: float = 0.0
    reason: str | None = None  # why it failed, was skipped or warns
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        status = data.get("status")
        if status not in CHECK_STATUSES:
            raise ValueError(f"check {data.get('name')!r}: unknown status {status!r}")
        return cls(name=str(data["name"]), level=int(data["level"]), status=status,
                   title=str(data.get("title") or ""), seconds=float(data.get("seconds") or 0.0),
                   reason=data.get("reason"), details=dict(data.get("details") or {}))


@dataclass
class Finding:
    """One diagnosis: a matched failure signature (or a fact gpuready established itself)."""

    id: str
    title: str
    severity: str  # problem | info
    cause: str
    fix: str
    evidence: str | None = None  # the log line that matched
    ref: int | None = None  # row of the reference table of failure signatures
    note: str | None = None  # context, e.g. "expected on a host with no GPU"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


@dataclass
class Throughput:
    gpu_images_per_second: float | None = None
    cpu_images_per_second: float | None = None
    ratio: float | None = None
    batch_size: int | None = None
    image_shape: list[int] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Throughput | None:
        if not data:
            return None
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


@dataclass
class Certificate:
    status: str
    level: int
    prefix: str
    checks: list[Check]
    python: str | None = None
    env: str | None = None
    host: dict[str, Any] | None = None  # HostFacts.to_dict()
    plan: dict[str, Any] | None = None  # Plan.to_dict(), when gpuready built the environment
    lock_sha256: str | None = None
    packages: dict[str, str] = field(default_factory=dict)  # installed {name: version}
    tensorflow: dict[str, Any] = field(default_factory=dict)  # version, keras, build info
    gpus: list[dict[str, Any]] = field(default_factory=list)  # as TensorFlow lists them
    throughput: Throughput | None = None
    diagnosis: list[Finding] = field(default_factory=list)
    log: str | None = None  # the captured TensorFlow log
    created: str = ""  # ISO 8601, UTC
    seconds: float = 0.0
    gpuready_version: str = ""
    allow_cpu: bool = False  # --allow-cpu was given: a cpu-only certificate exits 0
    schema: int = SCHEMA

    # ------------------------------------------------------------------ queries

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.diagnosis if f.severity == PROBLEM]

    def exit_code(self, allow_cpu: bool | None = None) -> int:
        return exit_code(self.status, self.allow_cpu if allow_cpu is None else allow_cpu)

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["throughput"] = asdict(self.throughput) if self.throughput else None
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Certificate:
        if not isinstance(data, dict):
            raise ValueError("a certificate is a JSON object")
        status = data.get("status")
        if status not in STATUSES:
            raise ValueError(f"unknown certificate status {status!r}")
        return cls(
            status=status, level=int(data["level"]), prefix=str(data["prefix"]),
            checks=[Check.from_dict(c) for c in data.get("checks") or []],
            python=data.get("python"), env=data.get("env"), host=data.get("host"),
            plan=data.get("plan"), lock_sha256=data.get("lock_sha256"),
            packages=dict(data.get("packages") or {}), tensorflow=dict(data.get("tensorflow") or {}),
            gpus=list(data.get("gpus") or []), throughput=Throughput.from_dict(data.get("throughput")),
            diagnosis=[Finding.from_dict(f) for f in data.get("diagnosis") or []],
            log=data.get("log"), created=str(data.get("created") or ""),
            seconds=float(data.get("seconds") or 0.0),
            gpuready_version=str(data.get("gpuready_version") or ""),
            allow_cpu=bool(data.get("allow_cpu", False)),
            schema=int(data.get("schema") or SCHEMA),
        )

    @classmethod
    def from_json(cls, text: str) -> Certificate:
        try:
            return cls.from_dict(json.loads(text))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a gpuready certificate: {exc}") from None


def decide_status(checks: Iterable[Check], gpus_used: int) -> str:
    """failed if any check failed; cpu-only if no GPU took part; else certified."""
    if any(c.status == FAIL for c in checks):
        return FAILED
    return CERTIFIED if gpus_used > 0 else CPU_ONLY


def exit_code(status: str, allow_cpu: bool = False) -> int:
    if status == CERTIFIED:
        return EXIT_OK
    if status == CPU_ONLY:
        return EXIT_OK if allow_cpu else EXIT_CPU_ONLY
    return EXIT_FAILED
