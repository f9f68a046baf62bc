"""Level 0: the static checks, without importing TensorFlow.

The environment's Python runs; the installed packages equal the lock; the lock copy matches its
recorded sha256; the driver and the GPUs are those the plan was made for; every installed file
is the one its wheel's RECORD describes (`env.installed_files`), so a file edited after install
fails level 0, named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from packaging.version import InvalidVersion, Version

from .. import proc
from ..env.installed_files import MAX_LISTED, FilesReport, check_installed_files
from ..env.inventory import TOOLING, differences
from ..env.layout import meta_dir
from ..files import sha256_file
from ..model.certificate import FAIL, PASS, SKIP, WARN, Check
from ..model.facts import HostFacts
from ..model.plan import Plan
from ..model.records import InstallRecord

PYTHON_TIMEOUT = 60.0
NOT_BUILT = "not built by gpuready (no gpuready/install.json)"
PACKAGES = ("packages-match-lock", "installed packages equal the lock")
LOCK_HASH = ("lock-hash", "the lock copy matches its recorded sha256")
DRIVER = ("driver-meets-plan", "the NVIDIA driver meets the plan")
GPUS = ("gpus-meet-plan", "the GPUs are those the plan was made for")
PYTHON = ("python", "the environment's Python runs")
FILES = ("files-match-record", "every installed file matches the hash in its wheel's RECORD")


def _check(which: tuple[str, str], status: str, reason: str | None = None, **details: Any) -> Check:
    return Check(name=which[0], level=0, status=status, title=which[1], reason=reason, details=details)


def _listed(items: tuple[str, ...], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (" ..." if len(items) > limit else "")


def check_packages(expected: Mapping[str, str], installed: Mapping[str, str]) -> Check:
    """Installed packages equal the lock: none missing, none at another version. Extra packages
    (besides the installers' own tools) are a warning: the lock did not bring them."""
    found = differences(expected, installed, tolerated=TOOLING)
    details = {"expected": len(expected), "installed": len(installed), "missing": list(found.missing),
               "different": list(found.different), "extra": list(found.extra)}
    if found.missing or found.different:
        parts = []
        if found.different:
            parts.append(f"{len(found.different)} at another version: {_listed(found.different)}")
        if found.missing:
            parts.append(f"{len(found.missing)} missing: {_listed(found.missing)}")
        return _check(PACKAGES, FAIL, "; ".join(parts), **details)
    if found.extra:
        return _check(PACKAGES, WARN, f"{len(found.extra)} installed that the lock does not list: "
                                      f"{_listed(found.extra)}", **details)
    return _check(PACKAGES, PASS, **details)


def check_lock_hash(prefix: Path, record: InstallRecord) -> Check:
    path = meta_dir(prefix) / record.lock_file
    if not path.is_file():
        return _check(LOCK_HASH, FAIL, f"the lock copy {path} is missing", lock_file=str(path))
    have = sha256_file(path)
    if have != record.lock_sha256:
        return _check(LOCK_HASH, FAIL, f"the lock copy {path} changed since install (sha256 {have[:12]}..., "
                                       f"recorded {record.lock_sha256[:12]}...)", lock_file=str(path), sha256=have)
    return _check(LOCK_HASH, PASS, lock_file=str(path), sha256=have)


def check_files(report: FilesReport) -> Check:
    """Fail naming the modified or missing files; warn for distributions with no RECORD."""
    listed = report.mismatches[:MAX_LISTED]
    details = {"files": report.files, "distributions": report.distributions,
               "mismatches": len(report.mismatches),
               "modified": [m.path for m in listed if m.why == "modified"],
               "missing": [m.path for m in listed if m.why == "missing"],
               "unreadable": [m.path for m in listed if m.why.startswith("unreadable")],
               "without_record": report.without_record, "left_to_conda": report.left_to_conda,
               "records": report.records, "stat_sha256": report.stat_sha256}
    if report.mismatches:
        named = tuple(f"{m.path} ({m.distribution}) is {m.why}" for m in report.mismatches)
        return _check(FILES, FAIL, f"{len(named)} of {report.files} installed files differ from their "
                                   f"wheel's RECORD: {_listed(named)}; reinstall from the lock "
                                   "(`invoke setup --force`)", **details)
    if report.without_record:
        return _check(FILES, WARN, f"{len(report.without_record)} distribution(s) have no RECORD to check "
                                   f"their files against: {_listed(tuple(report.without_record))}", **details)
    return _check(FILES, PASS, **details)


def _older(have: str, planned: str) -> bool:
    try:
        return Version(have) < Version(planned)
    except InvalidVersion:
        return False


def check_driver(plan: Plan, host: HostFacts) -> Check:
    if plan.device != "gpu":
        return _check(DRIVER, PASS, None, note="a CPU plan needs no driver", driver=host.driver.version)
    planned = plan.host.driver.version
    if not host.driver.present or host.driver.version is None:
        return _check(DRIVER, FAIL, f"no NVIDIA driver found; the plan is for the GPU (made for driver {planned})",
                      planned=planned)
    if planned and _older(host.driver.version, planned):
        return _check(DRIVER, FAIL, f"driver {host.driver.version} is older than {planned}, the driver the "
                                    "plan was made for", planned=planned, driver=host.driver.version)
    return _check(DRIVER, PASS, planned=planned, driver=host.driver.version, cuda=host.driver.cuda)


def check_gpus(plan: Plan, host: HostFacts) -> Check:
    planned = sorted(str(g.compute_capability) for g in plan.host.gpus)
    have = sorted(str(g.compute_capability) for g in host.gpus)
    details = {"planned": planned, "host": have}
    if plan.device != "gpu":
        if have:
            return _check(GPUS, WARN, f"the plan is for the CPU; this host has {len(have)} GPU(s)", **details)
        return _check(GPUS, PASS, **details)
    if not have:
        return _check(GPUS, FAIL, f"no GPU found; the plan is for {len(planned)} GPU(s) of compute capability "
                                  + ", ".join(planned), **details)
    if planned != have:
        return _check(GPUS, FAIL, f"the GPUs differ from the plan's: planned compute capabilities "
                                  f"{', '.join(planned)}, this host has {', '.join(have)}; plan again "
                                  "(`invoke setup --force`)", **details)
    return _check(GPUS, PASS, **details)


def _python_runs(python: Path, env: Mapping[str, str] | None) -> tuple[str | None, str]:
    """(the interpreter's full version, "") or (None, why it does not run): a venv whose base
    Python was removed, a broken conda environment."""
    try:
        result = proc.run([str(python), "-I", "-c", "import sys; print(sys.version.split()[0])"],
                          timeout=PYTHON_TIMEOUT, env=env)
    except proc.NotStarted as error:
        return None, f"{python} could not be run: {error}"
    if result.timed_out:
        return None, f"{python} did not answer within {PYTHON_TIMEOUT:g} s"
    if result.returncode != 0 or not result.stdout.strip():
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"{python} exited {result.returncode}: {tail[0]}"
    return result.stdout.strip(), ""


def level0(prefix: Path, python: Path, record: InstallRecord | None, host: HostFacts,
           installed: Mapping[str, str], env: Mapping[str, str] | None = None) -> list[Check]:
    """The static checks, without TensorFlow."""
    version, why = _python_runs(python, env)
    if version is None:
        checks = [_check(PYTHON, FAIL, why, python=str(python))]
    else:
        checks = [_check(PYTHON, PASS, python=str(python), version=version, packages=len(installed))]
    checks.append(check_files(check_installed_files(prefix)))
    if record is None:
        return checks + [_check(which, SKIP, NOT_BUILT) for which in (PACKAGES, LOCK_HASH, DRIVER, GPUS)]
    checks.append(check_packages(record.packages, installed))
    checks.append(check_lock_hash(prefix, record))
    if record.plan is not None:
        checks += [check_driver(record.plan, host), check_gpus(record.plan, host)]
    else:
        checks += [_check(which, SKIP, "the install record does not say which host the plan was made for")
                   for which in (DRIVER, GPUS)]
    return checks


__all__ = ["level0", "check_files", "check_packages", "check_driver", "check_gpus", "check_lock_hash", "NOT_BUILT"]
