"""Certify an environment (write its certificate) and verify an existing certificate.

Level 0 runs here, without TensorFlow (`level0`); levels 1-3 run the bundled check in the
environment's own Python (`runner`). The diagnosis matches what was captured against the known
failure signatures (`diagnosis`). `verify` says, without importing TensorFlow, whether an
existing certificate still holds: it believes none of the certificate's claims, only what follows
from its recorded checks (`evidence`), and re-checks the installed files against their RECORD.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..env.installed_files import check_installed_files, fingerprint
from ..env.inventory import installed_packages
from ..env.layout import (CERTIFY_LOG, certificate_path, meta_dir, python_of, read_install_record, read_state,
                          record_certificate_digest, write_certificate)
from ..errors import UsageError
from ..files import sha256_bytes, sha256_file
from ..model.certificate import FAILED, Certificate, Throughput, decide_status, gpus_at_work
from ..model.facts import HostFacts
from ..model.flags import DEFAULT_LEVEL, LEVELS
from ..model.known_issues import context_of_environment, name_known_issues
from ..model.matrix import Matrix
from ..model.records import RecordError
from .diagnosis import diagnose_run
from .evidence import inconsistencies
from .level0 import FILES, level0
from .signing import signature_path, verify_signature
from .runner import DEFAULT_LEVEL_TIMEOUT, EventHandler, child_environment, environment_python, expectations, run_check


def _log_path(prefix: Path) -> Path:
    """<prefix>/gpuready/certify.log, or a temporary file when the prefix is read-only."""
    try:
        path = meta_dir(prefix) / CERTIFY_LOG
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        return path
    except OSError:
        handle, name = tempfile.mkstemp(prefix="gpuready-certify-", suffix=".log")
        os.close(handle)
        return Path(name)


def default_host() -> HostFacts:
    from ..detect import detect_host  # probes the driver: only when no facts were given
    from ..model.matrix import load

    return detect_host(load(None))


def certify(prefix: Path, *, level: int = DEFAULT_LEVEL, allow_cpu: bool = False,
            timeout: float | None = None, host: HostFacts | None = None,
            on_event: EventHandler | None = None, script: Path | None = None,
            extra_args: tuple[str, ...] = (), write: bool = True, matrix: Matrix | None = None) -> Certificate:
    """Certify the environment at `prefix` up to `level`; write and return the certificate.

    timeout: the time limit of each level in seconds (default DEFAULT_LEVEL_TIMEOUT).
    allow_cpu: recorded in the certificate; a cpu-only certificate then exits 0.
    on_event(kind, data): progress ("level", n), ("start", check name), ("check", Check).
    script / extra_args: another check script and arguments (tests, fault injection).
    matrix: names the known issue a failure signature is (Finding.known_issue).
    Raises UsageError for a bad level, a missing prefix or one without a Python."""
    if level not in LEVELS:
        raise UsageError(f"--level must be one of {', '.join(map(str, LEVELS))}, not {level}")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"the time limit must be a positive number of seconds, not {timeout}")
    prefix = Path(prefix).expanduser().absolute()
    python = environment_python(prefix)
    host = host if host is not None else default_host()
    started = time.monotonic()
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = read_install_record(prefix)
    env = child_environment(prefix)

    installed = installed_packages(prefix, record.flavor if record else None)
    checks = level0(prefix, python, record, host, installed, env)
    if on_event is not None:
        on_event("level", 0)
        for check in checks:
            on_event("check", check)

    log = run = None
    if level >= 1:
        log = _log_path(prefix)
        limit = float(timeout) if timeout is not None else DEFAULT_LEVEL_TIMEOUT
        run = run_check(python, level, expect=expectations(record.inputs if record else None, host), log=log,
                        limits={n: limit for n in LEVELS}, script=script, on_event=on_event,
                        extra_args=extra_args, env=env)
        checks += run.checks
    result = run.result if run and run.result else {}
    gpus = list(result.get("gpus") or [])
    gpus_used = gpus_at_work(level, record.inputs.device if record else None, len(host.gpus), len(gpus))
    findings = diagnose_run(run, log=log, host=host, python=python, prefix=prefix)
    if matrix is not None:
        findings = name_known_issues(findings, matrix,
                                     context_of_environment(record.inputs if record else None, installed, host))
    cert = Certificate(
        status=decide_status(checks, gpus_used), level=level, prefix=str(prefix), checks=tuple(checks),
        python=str(python), env=record.env if record else None, host=host,
        plan=record.plan if record else None, inputs=record.inputs if record else None,
        lock_sha256=record.lock_sha256 if record else None, packages=installed,
        files_checked=next((c.details.get("files") for c in checks if c.name == FILES[0]), None),
        tensorflow=dict(result.get("tensorflow") or {}), gpus=tuple(gpus),
        throughput=Throughput.from_dict(result.get("throughput")), diagnosis=tuple(findings),
        log=str(log) if log else None, created=created,
        seconds=round(time.monotonic() - started, 3), gpuready_version=__version__,
        allow_cpu=allow_cpu,
    )
    if write:
        path = write_certificate(prefix, cert)
        signature_path(path).unlink(missing_ok=True)  # it signed the certificate this one replaces
        record_certificate_digest(prefix, sha256_file(path), cert.status)
    return cert


# ----------------------------------------------------------------------------- verify


@dataclass
class Verification:
    ok: bool
    reasons: list[str]
    certificate: Certificate | None = None
    path: Path | None = None
    trusted: bool = False  # its claims follow from its evidence (and its signature holds, when asked)
    signer: str | None = None  # whose key signed it, when --allowed-signers was given

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reasons": list(self.reasons),
                "certificate": str(self.path) if self.path else None,
                "status": self.certificate.status if self.certificate else None,
                "level": self.certificate.level if self.certificate else None,
                "trusted": self.trusted, "signer": self.signer}


def _gpu_keys(host: HostFacts | None) -> list[tuple[Any, ...]]:
    return [(g.name, g.compute_capability, g.uuid) for g in (host.gpus if host else ())]


def _files_reasons(prefix: Path, cert: Certificate) -> list[str]:
    """The installed files against their RECORD. Quick when nothing changed: the RECORD digests
    and the files' stat fingerprint equal those level 0 recorded; else every file is hashed."""
    check = cert.check(FILES[0])
    recorded = check.details if check is not None else {}
    quick = fingerprint(prefix)
    reasons = []
    old = recorded.get("records")
    if isinstance(old, dict):
        # one added or removed is the packages' business; an edited one is this check's
        changed = sorted(n for n in set(old) & set(quick.records) if old[n] != quick.records[n])
        if changed:
            reasons.append("the RECORD of " + ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if
                                                                       len(changed) > 5 else "")
                           + " changed since certification")
    clean = check is not None and check.status != "fail" and not recorded.get("mismatches")
    if not reasons and clean and recorded.get("stat_sha256") and recorded.get("stat_sha256") == quick.stat_sha256:
        return []  # the files are as they were when level 0 found them all matching
    report = check_installed_files(prefix)
    if report.ok:
        return reasons
    if report.ok:
        return []
    named = [f"{m.path} ({m.distribution}) is {m.why}" for m in report.mismatches]
    return reasons + [f"{len(named)} installed file(s) differ from their wheel's RECORD since certification: "
                      + ", ".join(named[:5]) + (f" and {len(named) - 5} more" if len(named) > 5 else "")]


def verify(prefix: Path, host: HostFacts, *, allowed_signers: Path | None = None) -> Verification:
    """Does the certificate in `prefix` still hold on this host? No TensorFlow import.

    Its provenance: the digest setup's state recorded for it, and with `allowed_signers` its
    SSH signature. Its evidence: status, level and figures must follow from the recorded checks.
    Its environment: same driver, same GPUs, same lock, same packages, every installed file as
    its RECORD says; and it did not record a failure."""
    prefix = Path(prefix).expanduser().absolute()
    path = certificate_path(prefix)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Verification(False, [f"no certificate at {path}"], None, path)
    except OSError as error:
        return Verification(False, [f"the certificate {path} cannot be read: {error.strerror or error}"], None, path)
    try:
        cert = Certificate.parse(data, str(path))
    except RecordError as error:
        return Verification(False, [f"the certificate is unreadable: {error.message}"], None, path)
    forged: list[str] = []
    state = read_state(prefix)
    if state is not None and state.certificate_sha256 and state.certificate_sha256 != sha256_bytes(data):
        forged.append(f"the certificate is not the one gpuready wrote: its sha256 differs from the one "
                      f"recorded in {meta_dir(prefix) / 'state.json'}")
    signer = None
    if allowed_signers is not None:
        signer, problem = verify_signature(data, signature_path(path), allowed_signers)
        if problem:
            forged.append(problem)
    forged += [f"the certificate contradicts its own checks: {problem}" for problem in inconsistencies(cert)]
    reasons = list(forged)
    if cert.status == FAILED:
        reasons.append("the certificate records a failed certification")
    old_driver = cert.host.driver.version if cert.host else None
    if old_driver != host.driver.version:
        reasons.append(f"the driver changed: {old_driver or 'none'} -> {host.driver.version or 'none'}")
    old_gpus, new_gpus = _gpu_keys(cert.host), _gpu_keys(host)
    if old_gpus != new_gpus:
        def describe(keys: list[tuple[Any, ...]]) -> str:
            return ", ".join(f"{n} ({cc})" for n, cc, _ in keys) or "none"
        reasons.append(f"the GPUs changed: {describe(old_gpus)} -> {describe(new_gpus)}")
    try:
        record = read_install_record(prefix)
    except RecordError as error:
        record = None
        reasons.append(error.message)
    recorded = record.lock_sha256 if record else None
    if recorded != cert.lock_sha256:
        reasons.append(f"the lock changed: certified {cert.lock_sha256 or 'none'}, installed {recorded or 'none'}")
    elif record is not None:
        lock = meta_dir(prefix) / record.lock_file
        if not lock.is_file() or sha256_file(lock) != recorded:
            reasons.append(f"the lock copy {lock} is missing or was modified")
    if python_of(prefix) is None:
        reasons.append(f"no Python interpreter in {prefix}")
    installed = installed_packages(prefix, record.flavor if record else None)
    if installed != cert.packages:
        reasons.append("the installed packages changed: " + _package_changes(cert.packages, installed))
    reasons += _files_reasons(prefix, cert)
    return Verification(not reasons, reasons, cert, path, trusted=not forged, signer=signer)
def _package_changes(old: dict[str, str], new: dict[str, str]) -> str:
    changes = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before != after:
            changes.append(f"{name} {before or '(absent)'} -> {after or '(removed)'}")
    return ", ".join(changes[:5]) + (f" and {len(changes) - 5} more" if len(changes) > 5 else "")
