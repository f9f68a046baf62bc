"""`doctor`: the cause of a broken environment, of a pasted TensorFlow log, or of this host.

No training: an environment gets level 0 and the level-1 smoke check, the CUDA library probe and
the diagnosis; a log file is matched against the failure signatures alone (it may come from any
machine, so no host context applies), read in bounded memory however large it is
(`logwindow`); this host is diagnosed from what detection found (its notes).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from ..env.inventory import installed_packages
from ..env.layout import read_install_record
from ..errors import UsageError
from ..model.certificate import FAIL, INFO, PROBLEM, Check, Finding
from ..model.facts import HostFacts
from ..model.known_issues import Context, context_of_environment, context_of_log, name_known_issues
from ..model.matrix import Matrix
from ..model.signatures import diagnose, merge
from .diagnosis import diagnose_run, library_findings, probe_libraries
from .logwindow import read_for_diagnosis
from .level0 import level0
from .runner import DEFAULT_LEVEL_TIMEOUT, child_environment, environment_python, expectations, run_check


@dataclass
class Diagnosis:
    sources: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    libraries: dict[str, Any] | None = None

    @property
    def problem(self) -> bool:
        return any(f.severity == PROBLEM for f in self.findings) or any(c.status == FAIL for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"sources": self.sources, "problem": self.problem,
                "checks": [c.model_dump(mode="json") for c in self.checks],
                "diagnosis": [f.model_dump(mode="json") for f in self.findings], "libraries": self.libraries}


def read_log(path: Path) -> str:
    """What the diagnosis reads of a log: all of a small one, head, marks and tail of a huge one."""
    if path.is_dir():
        raise UsageError(f"cannot read the log file {path}: it is a directory")
    try:
        return read_for_diagnosis(path)
    except OSError as exc:
        raise UsageError(f"cannot read the log file {path}: {exc.strerror or exc}") from None


def diagnose_log(path: Path, into: Diagnosis, matrix: Matrix | None = None) -> None:
    text = read_log(path)
    findings = diagnose(text)
    if matrix is not None:
        findings = name_known_issues(findings, matrix, context_of_log(text))
    into.findings += findings
    into.sources.append(f"log {path}")


def diagnose_host(host: HostFacts, into: Diagnosis, matrix: Matrix | None = None) -> None:
    """What detection found (a mismatch, a container that lost its GPUs, a Jetson, ...), then
    the signatures in the probes' words."""
    into.sources.append("this host")
    into.findings += [Finding(id=n.code, title=n.title, severity=PROBLEM if n.problem else INFO, cause=n.message,
                              fix=n.fix) for n in host.notes]
    findings = diagnose("\n".join(p.detail for p in host.probes), host_has_gpu=bool(host.gpus))
    if matrix is not None:
        context = Context(compute_capabilities=tuple(g.compute_capability for g in host.gpus if g.compute_capability),
                          platform=host.platform)
        findings = name_known_issues(findings, matrix, context)
    into.findings += findings


def diagnose_environment(target: Path, host: HostFacts, into: Diagnosis, matrix: Matrix | None = None) -> None:
    """Level 0 and the level-1 smoke check (no training), the library probe, the diagnosis."""
    python = environment_python(target)
    into.sources.append(f"environment {target}")
    record = read_install_record(target)
    installed = installed_packages(target, record.flavor if record else None)
    env = child_environment(target)
    checks = level0(target, python, record, host, installed, env)
    with tempfile.TemporaryDirectory(prefix="gpuready-doctor-") as tmp:
        log = Path(tmp) / "doctor.log"
        run = run_check(python, 1, expect=expectations(record.inputs if record else None, host), log=log,
                        limits={1: DEFAULT_LEVEL_TIMEOUT}, env=env)
        checks += run.checks
        probe = probe_libraries(python, env=env)
        findings = diagnose_run(run, log=log, host=host, python=python, prefix=target, probe=probe)
    into.checks += checks
    into.libraries = probe
    findings = merge(findings, library_findings(probe, host_has_gpu=bool(host.gpus)))
    if matrix is not None:
        context = context_of_environment(record.inputs if record else None, installed, host)
        findings = name_known_issues(findings, matrix, context)
    into.findings += findings


def finish(diagnosis: Diagnosis) -> Diagnosis:
    diagnosis.findings = merge(diagnosis.findings)
    return diagnosis
