"""The certificate: what `certify` proved about an environment, as a typed record.

Pure. The status follows PRODUCT.md and is decided from the checks alone (`decide_status`),
so a certificate can be re-derived from its own evidence: `failed` when any check failed;
`cpu-only` when nothing failed but no GPU took part; `certified` otherwise. The exit code of a
status is defined once, here (`exit_code`).
"""

from __future__ import annotations

from typing import Any, Iterable, Literal

from pydantic import Field, field_validator

from ..errors import EXIT_CPU_ONLY, EXIT_FAILED, EXIT_OK
from ._record import Record
from .facts import HostFacts
from .inputs import Inputs
from .plan import Plan

SCHEMA = 2
CERTIFICATE_FILE = "certificate.json"

PASS, FAIL, SKIP, WARN = "pass", "fail", "skip", "warn"
CHECK_STATUSES = (PASS, FAIL, SKIP, WARN)
CERTIFIED, CPU_ONLY, FAILED = "certified", "cpu-only", "failed"
STATUSES = (CERTIFIED, CPU_ONLY, FAILED)
NOT_CERTIFIED = "skipped"  # setup's status for a what-if plan it installed but could not certify
NO_GPU = "no GPU"  # the reason every GPU-only check gives on a host without one
# The checks whose pass means a GPU took part (the check script's names).
GPU_EVIDENCE = ("gpu-ops", "train")
# Every check a certification of each level records (level 0 by gpuready, 1-3 by the check
# script), so that a certificate claiming a level must hold that level's checks.
LEVEL_CHECKS: dict[int, tuple[str, ...]] = {
    0: ("python", "files-match-record", "packages-match-lock", "lock-hash", "driver-meets-plan", "gpus-meet-plan"),
    1: ("import", "build-info", "gpus-visible", "memory-growth", "gpu-ops"),
    2: ("train", "placement", "mixed-precision", "xla", "throughput"),
    3: ("multi-gpu",),
}
# What the runner records when the check process did not finish: always a failure.
PROCESS_FAILURES = ("check-process", "time-limit", "check-output")

PROBLEM, INFO = "problem", "info"  # severities of a diagnosis finding


class Check(Record):
    name: str
    level: int
    status: Literal["pass", "fail", "skip", "warn"]
    title: str = ""
    seconds: float = 0.0
    reason: str | None = None  # why it failed, was skipped or warns
    details: dict[str, Any] = {}

    @field_validator("title", mode="before")
    @classmethod
    def _no_null_title(cls, value: Any) -> Any:
        return "" if value is None else value

    @classmethod
    def from_dict(cls, data: Any) -> Check:
        """A check as the check script reports it; ValueError when it is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"a check is an object, not {data!r:.80}")
        try:
            return cls.model_validate(data)
        except Exception as error:  # pydantic's ValidationError is a ValueError
            raise ValueError(f"check {data.get('name')!r}: {error}") from None


class Finding(Record):
    """One diagnosis: a matched failure signature, or a fact gpuready established itself."""

    id: str
    title: str
    severity: Literal["problem", "info"]
    cause: str
    fix: str
    evidence: str | None = None  # the log lines that matched
    ref: int | None = None  # row of the reference table of failure signatures
    note: str | None = None  # context, e.g. "expected on a host with no GPU"
    known_issue: str | None = None  # the id of a known issue (matrix/known-issues.toml) it is


class Throughput(Record):
    gpu_images_per_second: float | None = None
    cpu_images_per_second: float | None = None
    ratio: float | None = None
    batch_size: int | None = None
    image_shape: list[int] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Throughput | None:
        if not data:
            return None
        return cls.model_validate({k: data.get(k) for k in cls.model_fields})


class Certificate(Record):
    schema_version: Literal[2] = Field(SCHEMA, alias="schema")
    status: Literal["certified", "cpu-only", "failed"]
    level: int
    prefix: str
    checks: tuple[Check, ...]
    python: str | None = None
    env: str | None = None
    host: HostFacts | None = None
    plan: Plan | None = None  # the plan the environment was built for, when gpuready built it
    inputs: Inputs | None = None  # the lock's inputs, when gpuready built it
    lock_sha256: str | None = None
    packages: dict[str, str] = {}  # installed {name: version}
    files_checked: int | None = None  # installed files verified against their RECORD (level 0)
    tensorflow: dict[str, Any] = {}  # version, keras, build info
    gpus: tuple[dict[str, Any], ...] = ()  # as TensorFlow lists them
    throughput: Throughput | None = None
    diagnosis: tuple[Finding, ...] = ()
    log: str | None = None  # the captured TensorFlow log
    created: str = ""  # ISO 8601, UTC
    seconds: float = 0.0
    gpuready_version: str = ""
    allow_cpu: bool = False  # --allow-cpu was given: a cpu-only certificate exits 0

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

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)



def gpus_used(checks: Iterable[Check]) -> int:
    """How many GPUs the checks show at work: the GPU op checks that passed, one per GPU."""
    return sum(1 for c in checks if c.name == "gpu-ops" and c.status == PASS)


def gpus_at_work(level: int, device: str | None, host_gpus: int, listed: int) -> int:
    """How many GPUs a certification counts as at work. Level 0 imports no TensorFlow: the host's
    GPUs, when the plan is for the GPU (or there is no plan); from level 1 on, those TensorFlow
    listed. `certify` and the verification of a certificate both decide with this."""
    if level == 0:
        return host_gpus if device in (None, "gpu") else 0
    return listed


def decide_status(checks: Iterable[Check], gpus: int) -> str:
    """failed if any check failed; cpu-only if no GPU took part; else certified."""
    if any(c.status == FAIL for c in checks):
        return FAILED
    return CERTIFIED if gpus > 0 else CPU_ONLY


def exit_code(status: str | None, allow_cpu: bool = False) -> int:
    """The exit code of a certification status (PRODUCT.md): the one mapping gpuready uses."""
    if status == CPU_ONLY:
        return EXIT_OK if allow_cpu else EXIT_CPU_ONLY
    if status == FAILED:
        return EXIT_FAILED
    return EXIT_OK
