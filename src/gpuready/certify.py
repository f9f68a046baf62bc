"""Certification: run the bundled Conv2D check inside an environment and write the certificate.

Level 0 is done here, without TensorFlow: the installed packages against the lock, the lock
copy against its recorded hash, the driver and GPUs against the plan. Levels 1-3 run in the
environment's own Python (`check/conv2d_check.py`, run by path), with a time limit per level;
a check that crashes, hangs or prints garbage becomes a `failed` certificate with what was
captured. The diagnosis matches the captured log against the known failure signatures.

`verify` says, cheaply (no TensorFlow import), whether an existing certificate still holds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping

from packaging.utils import canonicalize_name

from . import __version__, activation
from . import diagnosis as diag
from . import prefix as layout
from .certificate import (FAIL, FAILED, NO_GPU, PASS, PROBLEM, SKIP, WARN, Certificate,
                          Check, Finding, Throughput, decide_status)
from .envfolder import sha256_bytes, write_atomic
from .errors import UsageError
from .install import same_version
from .facts import HostFacts

LEVELS = (0, 1, 2, 3)
DEFAULT_LEVEL = 2
DEFAULT_LEVEL_TIMEOUT = 600.0  # seconds per level; a first GPU start may JIT-compile PTX
PYTHON_TIMEOUT = 60.0
LOG_FILE = "certify.log"
LOG_TAIL_CHARS = 4000
DIAGNOSIS_CHARS = 2_000_000  # the end of a huge log is where the failure is
TOOLING = frozenset({"pip", "setuptools", "wheel", "uv"})  # not in a lock, harmless when present
NOT_BUILT = f"not built by gpuready (no {layout.META_DIR}/{layout.INSTALL_RECORD})"

EventHandler = Callable[[str, Any], None]


# ----------------------------------------------------------------------------- the environment


def environment_python(prefix: str | os.PathLike[str]) -> Path:
    """The interpreter of an environment prefix; UsageError (exit 2) when there is none."""
    root = Path(prefix).expanduser()
    if not root.exists():
        raise UsageError(f"no environment at {root}: the directory does not exist "
                         "(build one with `invoke setup`, or give --prefix DIR)")
    if not root.is_dir():
        raise UsageError(f"no environment at {root}: not a directory")
    python = layout.python_of(root)
    if python is None:
        raise UsageError(f"no Python interpreter in {root} (looked for bin/python and bin/python3)")
    return python


def child_environment(prefix: str | os.PathLike[str]) -> dict[str, str]:
    """The environment the prefix's Python runs with: what its activation sets (the same
    variables `source bin/activate` would), and its bin folder first on PATH, where a conda
    cuda-nvcc puts ptxas."""
    env = activation.environment(prefix)
    bindir = Path(prefix) / ("Scripts" if sys.platform == "win32" else "bin")
    env["PATH"] = os.pathsep.join(p for p in (str(bindir), env.get("PATH", "")) if p)
    return env


def python_version(python: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> str:
    """The version of the environment's interpreter; RuntimeError when it does not run (a venv
    whose base Python was removed, a broken conda environment)."""
    try:
        done = subprocess.run([str(python), "-I", "-c", "import sys; print(sys.version.split()[0])"],
                              capture_output=True, text=True, timeout=PYTHON_TIMEOUT, check=False,
                              env=dict(env) if env is not None else None)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"{python} could not be run: {exc}") from None
    if done.returncode != 0 or not done.stdout.strip():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{python} exited {done.returncode}: {tail[0]}")
    return done.stdout.strip()


def installed_packages(prefix: str | os.PathLike[str], flavor: str | None = None) -> dict[str, str]:
    """{canonical name: version} installed in the prefix, read the way install reads it (the
    dist-info metadata of its site-packages; conda-meta records too for a conda prefix), so
    that it compares with the lock. No interpreter is started."""
    from .install import installed_packages as read

    root = Path(prefix)
    return read(root, flavor or ("conda" if (root / "conda-meta").is_dir() else "pip"))


def _driver_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


# ----------------------------------------------------------------------------- level 0


def _check(name: str, title: str, status: str, reason: str | None = None, **details: Any) -> Check:
    return Check(name=name, level=0, status=status, title=title, reason=reason, details=details)


def check_packages(expected: dict[str, str], installed: dict[str, str]) -> Check:
    """Installed packages equal the lock: none missing, none at another version. Extra
    packages (besides pip/setuptools/wheel) are a warning: the lock did not bring them."""
    title = "installed packages equal the lock"
    want = {canonicalize_name(k): str(v) for k, v in expected.items()}
    missing = sorted(n for n in want if n not in installed)
    differ = sorted(f"{n} {installed[n]} (lock: {want[n]})" for n in want
                    if n in installed and not same_version(installed[n], want[n]))
    extra = sorted(f"{n} {installed[n]}" for n in installed if n not in want and n not in TOOLING)
    details = {"expected": len(want), "installed": len(installed), "missing": missing,
               "different": differ, "extra": extra}
    if missing or differ:
        parts = []
        if differ:
            parts.append(f"{len(differ)} at another version: " + ", ".join(differ[:5])
                         + (" ..." if len(differ) > 5 else ""))
        if missing:
            parts.append(f"{len(missing)} missing: " + ", ".join(missing[:5])
                         + (" ..." if len(missing) > 5 else ""))
        return _check("packages-match-lock", title, FAIL, "; ".join(parts), **details)
    if extra:
        return _check("packages-match-lock", title, WARN,
                      f"{len(extra)} installed that the lock does not list: " + ", ".join(extra[:5])
                      + (" ..." if len(extra) > 5 else ""), **details)
    return _check("packages-match-lock", title, PASS, **details)


def check_lock_hash(prefix: Path, record: dict[str, Any]) -> Check:
    title = "the lock copy matches its recorded sha256"
    name, want = record.get("lock_file"), record.get("lock_sha256")
    if not name or not want:
        return _check("lock-hash", title, SKIP, "the install record names no lock file")
    path = layout.meta_dir(prefix) / str(name)
    if not path.is_file():
        return _check("lock-hash", title, FAIL, f"the lock copy {path} is missing", lock_file=str(path))
    have = sha256_bytes(path.read_bytes())
    if have != want:
        return _check("lock-hash", title, FAIL,
                      f"the lock copy {path} changed since install (sha256 {have[:12]}..., "
                      f"recorded {str(want)[:12]}...)", lock_file=str(path), sha256=have)
    return _check("lock-hash", title, PASS, lock_file=str(path), sha256=have)


def check_driver(plan: dict[str, Any], host: HostFacts) -> Check:
    title = "the NVIDIA driver meets the plan"
    if plan.get("device") != "gpu":
        return _check("driver-meets-plan", title, PASS, None, note="a CPU plan needs no driver",
                      driver=host.driver.version)
    planned = ((plan.get("host") or {}).get("driver") or {}).get("version")
    if not host.driver.present:
        return _check("driver-meets-plan", title, FAIL,
                      f"no NVIDIA driver found; the plan is for the GPU (made for driver {planned})",
                      planned=planned)
    assert host.driver.version is not None
    if planned and _driver_tuple(host.driver.version) < _driver_tuple(planned):
        return _check("driver-meets-plan", title, FAIL,
                      f"driver {host.driver.version} is older than {planned}, the driver the plan was made for",
                      planned=planned, driver=host.driver.version)
    return _check("driver-meets-plan", title, PASS, planned=planned, driver=host.driver.version,
                  cuda=host.driver.cuda)


def _ccs(gpus: Any) -> list[str]:
    out = []
    for gpu in gpus or ():
        cc = gpu.get("compute_capability") if isinstance(gpu, dict) else gpu.compute_capability
        out.append(str(cc))
    return sorted(out)


def check_gpus(plan: dict[str, Any], host: HostFacts) -> Check:
    title = "the GPUs are those the plan was made for"
    planned, have = _ccs((plan.get("host") or {}).get("gpus")), _ccs(host.gpus)
    details = {"planned": planned, "host": have}
    if plan.get("device") != "gpu":
        if have:
            return _check("gpus-meet-plan", title, WARN,
                          f"the plan is for the CPU; this host has {len(have)} GPU(s)", **details)
        return _check("gpus-meet-plan", title, PASS, **details)
    if not have:
        return _check("gpus-meet-plan", title, FAIL,
                      f"no GPU found; the plan is for {len(planned)} GPU(s) of compute capability "
                      + ", ".join(planned), **details)
    if planned != have:
        return _check("gpus-meet-plan", title, FAIL,
                      f"the GPUs differ from the plan's: planned compute capabilities {', '.join(planned)}, "
                      f"this host has {', '.join(have)}; plan again (`invoke setup --force`)", **details)
    return _check("gpus-meet-plan", title, PASS, **details)


def plan_of(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The plan an install record carries: the full plan (with the host facts it was made for)
    when install was given one, else the lock's inputs (versions, no host)."""
    for key in ("full_plan", "plan"):
        plan = (record or {}).get(key)
        if isinstance(plan, dict):
            return plan
    return None


def level0(prefix: Path, python: Path, record: dict[str, Any] | None, host: HostFacts,
           installed: dict[str, str]) -> list[Check]:
    """The static checks, without TensorFlow."""
    checks = []
    try:
        version = python_version(python, child_environment(prefix))
    except RuntimeError as exc:
        checks.append(_check("python", "the environment's Python runs", FAIL, str(exc), python=str(python)))
    else:
        checks.append(_check("python", "the environment's Python runs", PASS, python=str(python),
                             version=version, packages=len(installed)))
    if record is None:
        reason = NOT_BUILT
        for name, title in (("packages-match-lock", "installed packages equal the lock"),
                            ("lock-hash", "the lock copy matches its recorded sha256"),
                            ("driver-meets-plan", "the NVIDIA driver meets the plan"),
                            ("gpus-meet-plan", "the GPUs are those the plan was made for")):
            checks.append(_check(name, title, SKIP, reason))
        return checks
    checks.append(check_packages(record.get("packages") or {}, installed))
    checks.append(check_lock_hash(prefix, record))
    plan = plan_of(record)
    if isinstance(plan, dict) and isinstance(plan.get("host"), dict):
        checks.append(check_driver(plan, host))
        checks.append(check_gpus(plan, host))
    else:
        reason = "the install record has no plan" if plan is None else \
            "the install record does not say which host the plan was made for"
        for name, title in (("driver-meets-plan", "the NVIDIA driver meets the plan"),
                            ("gpus-meet-plan", "the GPUs are those the plan was made for")):
            checks.append(_check(name, title, SKIP, reason))
    return checks


# ----------------------------------------------------------------------------- levels 1-3


def check_script() -> Path:
    return Path(str(resources.files("gpuready.check").joinpath("conv2d_check.py")))


def expectations(plan: dict[str, Any] | None, host: HostFacts) -> dict[str, Any]:
    """What the check compares TensorFlow against: the plan's versions, the host's GPUs."""
    gpus = len(host.gpus)
    if plan is None:
        expect: dict[str, Any] = {"gpus": gpus}
    elif plan.get("device") == "gpu":
        expect = {"device": "gpu", "tensorflow": plan.get("tensorflow"),
                  "cuda": plan.get("build_cuda") or plan.get("cuda"), "cudnn": plan.get("cudnn"),
                  "gpus": gpus}
    else:
        expect = {"device": "cpu", "tensorflow": plan.get("tensorflow"), "gpus": 0}
        if gpus:
            expect["no_gpu_reason"] = "the plan is for the CPU"
    if not expect["gpus"] and "no_gpu_reason" not in expect:
        expect["no_gpu_reason"] = NO_GPU
    return expect


@dataclass
class CheckRun:
    """What came back from one run of the check process."""

    checks: list[Check] = field(default_factory=list)
    result: dict[str, Any] | None = None  # the parsed JSON document, when valid
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    timed_out: dict[str, Any] | None = None  # {"level", "limit", "check"}
    crashed: str | None = None  # how it ended, when it ended without a result
    garbage: str | None = None  # an excerpt of output that is not the result
    last_level: int = 1
    last_check: str | None = None


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def run_check(python: Path, level: int, *, expect: dict[str, Any], log: Path,
              limits: dict[int, float], script: Path | None = None,
              on_event: EventHandler | None = None, extra_args: tuple[str, ...] = (),
              env: Mapping[str, str] | None = None) -> CheckRun:
    """Run the check in the environment; enforce the per-level limits; keep what was done.

    env: the process environment (default: `child_environment` of the interpreter's prefix)."""
    if env is None:
        env = child_environment(python.parent.parent)
    run = CheckRun()
    with tempfile.TemporaryDirectory(prefix="gpuready-check-") as tmp:
        work = Path(tmp)
        progress = work / "progress.jsonl"
        progress.touch()
        command = [str(python), "-I", str(script or check_script()), "--level", str(level),
                   "--log", str(log), "--expect-json", json.dumps(expect), "--progress", str(progress),
                   *extra_args]
        started = time.monotonic()
        level_started = started
        partial: list[Check] = []
        offset = 0

        def drain() -> None:
            nonlocal offset, level_started
            with progress.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            complete = chunk[:chunk.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                try:
                    event = json.loads(line)
                    kind = event["event"]
                    if kind == "level":
                        run.last_level, level_started = int(event["level"]), time.monotonic()
                        run.last_check = None
                        data: Any = run.last_level
                    elif kind == "start":
                        run.last_check = data = str(event["name"])
                    elif kind == "check":
                        data = Check.from_dict(event["check"])
                        partial.append(data)
                    else:
                        continue
                except (ValueError, KeyError, TypeError):
                    continue
                if on_event is not None:
                    on_event(kind, data)

        with (work / "stdout").open("wb") as out, (work / "stderr").open("wb") as err:
            try:
                proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                        env=dict(env), start_new_session=True)
            except OSError as exc:
                run.crashed = f"could not be started ({exc})"
                run.checks = _checks_of(run, partial)
                return run
            try:
                while proc.poll() is None:
                    drain()
                    limit = limits.get(run.last_level, DEFAULT_LEVEL_TIMEOUT)
                    if time.monotonic() - level_started > limit:
                        _kill(proc)
                        run.timed_out = {"level": run.last_level, "limit": limit, "check": run.last_check}
                        break
                    time.sleep(0.1)
            finally:
                if proc.poll() is None and run.timed_out is None:  # interrupted (Ctrl-C)
                    _kill(proc)
                proc.wait()
        drain()
        run.returncode = proc.returncode
        run.seconds = time.monotonic() - started
        run.stdout = (work / "stdout").read_text(encoding="utf-8", errors="replace")
        run.stderr = (work / "stderr").read_text(encoding="utf-8", errors="replace")

    if run.timed_out is None:
        run.result, run.garbage = _parse_result(run.stdout)
        if run.result is None and run.returncode is not None and run.returncode < 0:
            run.crashed, run.garbage = f"killed by {_signal_name(run.returncode)}", None
        elif run.result is None and not run.stdout.strip():
            run.crashed, run.garbage = f"exited {run.returncode} without printing a result", None
    run.checks = _checks_of(run, partial)
    return run


def _parse_result(stdout: str) -> tuple[dict[str, Any] | None, str | None]:
    """The check's JSON document (its last line), or an excerpt of what came instead."""
    text = stdout.strip()
    if not text:
        return None, None
    try:
        result = json.loads(text.splitlines()[-1])
        if not isinstance(result, dict) or not isinstance(result.get("checks"), list):
            raise ValueError("not the check's result")
        [Check.from_dict(c) for c in result["checks"]]
        return result, None
    except (ValueError, KeyError, TypeError):
        excerpt = text[:300] + (" ..." if len(text) > 300 else "")
        return None, excerpt


def _checks_of(run: CheckRun, partial: list[Check]) -> list[Check]:
    if run.result is not None:
        checks = [Check.from_dict(c) for c in run.result["checks"]]
        for error in run.result.get("errors") or []:
            if error.get("check") is None:  # the check itself crashed outside any check
                checks.append(Check(name="check-process", level=run.last_level, status=FAIL,
                                    title="the check ran to the end",
                                    reason=str(error.get("error") or "the check failed")))
        return checks
    checks = list(partial)
    where = f" while running '{run.last_check}'" if run.last_check else ""
    if run.timed_out is not None:
        t = run.timed_out
        checks.append(Check(name="time-limit", level=t["level"], status=FAIL,
                            title=f"level {t['level']} finishes within its time limit",
                            seconds=float(t["limit"]),
                            reason=f"level {t['level']} did not finish within {t['limit']:g} s{where}; "
                                   "the check was stopped", details=dict(t)))
    elif run.crashed is not None:
        checks.append(Check(name="check-process", level=run.last_level, status=FAIL,
                            title="the check process ran to the end",
                            reason=f"the check process {run.crashed}{where}",
                            details={"returncode": run.returncode, "stderr": run.stderr[-LOG_TAIL_CHARS:]}))
    else:
        checks.append(Check(name="check-output", level=run.last_level, status=FAIL,
                            title="the check prints its result as JSON",
                            reason=f"the check printed no valid result (exit {run.returncode}): {run.garbage}",
                            details={"stdout": run.stdout[-LOG_TAIL_CHARS:]}))
    return checks


# ----------------------------------------------------------------------------- diagnosis


def _read_tail(path: Path, chars: int = DIAGNOSIS_CHARS) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - chars))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def diagnose_run(run: CheckRun | None, *, log: Path | None, host: HostFacts, python: Path,
                 prefix: Path, probe: dict[str, Any] | None = None) -> list[Finding]:
    """Signatures in the captured text, plus what gpuready established itself. The library
    probe runs (unless `probe` is given) when TensorFlow misses GPUs or cannot load CUDA."""
    has_gpu = bool(host.gpus)
    texts = [_read_tail(log) if log else ""]
    if run is not None:
        texts += [run.stderr, run.stdout if run.result is None else ""]
        if run.result:
            texts += [e.get("traceback") or e.get("error") or "" for e in run.result.get("errors") or []]
        texts += [c.reason or "" for c in run.checks if c.status == FAIL]
    text = "\n".join(t for t in texts if t)
    found = diag.diagnose(text, host_has_gpu=has_gpu)
    own: list[Finding] = []
    if run is not None:
        values = {"log": str(log), "prefix": str(prefix), "check": run.last_check or "start-up"}
        if run.timed_out:
            own.append(diag.finding("check-timeout", **values, level=run.timed_out["level"],
                                    limit=run.timed_out["limit"]))
        elif run.crashed:
            own.append(diag.finding("check-crashed", **values, how=run.crashed))
        elif run.garbage:
            own.append(diag.finding("check-garbage", **values, how=f"with {run.returncode}",
                                    excerpt=run.garbage))
    listed = len((run.result or {}).get("gpus") or []) if run else 0
    gpus_check = next((c for c in run.checks if c.name == "gpus-visible"), None) if run else None
    gpus_missing = has_gpu and gpus_check is not None and gpus_check.status == FAIL
    library_signs = {"cuda-driver-not-found", "cuda-libraries-not-loaded", "cuda-init-failed"}
    if gpus_missing or any(f.id in library_signs and f.severity == PROBLEM for f in found):
        probe = probe if probe is not None else diag.probe_libraries(python, env=child_environment(prefix))
        own += diag.library_findings(probe, host_has_gpu=has_gpu)
        if gpus_missing and not any(f.severity == PROBLEM for f in found + own):
            own.append(diag.finding("gpus-not-visible", log=str(log), prefix=str(prefix),
                                    host_gpus=len(host.gpus), listed=listed))
    return diag.merge(found, own)


# ----------------------------------------------------------------------------- certify


def _log_path(prefix: Path) -> Path:
    """<prefix>/gpuready/certify.log, or a temporary file when the prefix is read-only."""
    meta = layout.meta_dir(prefix)
    try:
        meta.mkdir(parents=True, exist_ok=True)
        path = meta / LOG_FILE
        path.write_bytes(b"")
        return path
    except OSError:
        handle, name = tempfile.mkstemp(prefix="gpuready-certify-", suffix=".log")
        os.close(handle)
        return Path(name)


def write_certificate(prefix: Path, cert: Certificate) -> Path:
    """Write atomically to <prefix>/gpuready/certificate.json."""
    path = layout.certificate_path(prefix)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, cert.to_json().encode("utf-8"))
    return path


def read_certificate(prefix: str | os.PathLike[str]) -> Certificate | None:
    """The certificate in a prefix, or None when there is none or it is unreadable."""
    try:
        return Certificate.from_json(layout.certificate_path(prefix).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def default_host() -> HostFacts:
    from . import detect, matrix  # detect probes the driver: only when no facts were given

    return detect.detect_host(matrix.load(None))


def certify(prefix: Path, *, level: int = DEFAULT_LEVEL, allow_cpu: bool = False,
            timeout: float | None = None, host: HostFacts | None = None,
            on_event: EventHandler | None = None, script: Path | None = None,
            extra_args: tuple[str, ...] = ()) -> Certificate:
    """Certify the environment at `prefix` up to `level`; write and return the certificate.

    timeout: the time limit of each level in seconds (default DEFAULT_LEVEL_TIMEOUT).
    allow_cpu: recorded in the certificate; a cpu-only certificate then exits 0.
    on_event(kind, data): progress ("level", n), ("start", check name), ("check", Check).
    script / extra_args: another check script and arguments (tests, fault injection).
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
    record = layout.read_install_record(prefix)
    plan = plan_of(record)

    installed = installed_packages(prefix, (record or {}).get("flavor"))
    checks = level0(prefix, python, record, host, installed)
    if on_event is not None:
        on_event("level", 0)
        for check in checks:
            on_event("check", check)

    log = run = None
    if level >= 1:
        log = _log_path(prefix)
        limit = float(timeout) if timeout is not None else DEFAULT_LEVEL_TIMEOUT
        run = run_check(python, level, expect=expectations(plan, host), log=log,
                        limits={n: limit for n in LEVELS}, script=script, on_event=on_event,
                        extra_args=extra_args, env=child_environment(prefix))
        checks += run.checks
    result = run.result if run and run.result else {}
    gpus = list(result.get("gpus") or [])
    if level == 0:
        gpus_used = len(host.gpus) if plan is None or plan.get("device") == "gpu" else 0
    else:
        gpus_used = len(gpus)
    findings = diagnose_run(run, log=log, host=host, python=python, prefix=prefix)
    cert = Certificate(
        status=decide_status(checks, gpus_used), level=level, prefix=str(prefix), checks=checks,
        python=str(python), env=(record or {}).get("env") or (plan or {}).get("env"),
        host=host.to_dict(), plan=plan, lock_sha256=(record or {}).get("lock_sha256"),
        packages=installed, tensorflow=dict(result.get("tensorflow") or {}), gpus=gpus,
        throughput=Throughput.from_dict(result.get("throughput")), diagnosis=findings,
        log=str(log) if log else None, created=created,
        seconds=round(time.monotonic() - started, 3), gpuready_version=__version__,
        allow_cpu=allow_cpu,
    )
    try:
        write_certificate(prefix, cert)
    except OSError as exc:
        print(f"gpuready: warning: could not write the certificate into {prefix}: {exc}", file=sys.stderr)
    return cert


# ----------------------------------------------------------------------------- verify


@dataclass
class Verification:
    ok: bool
    reasons: list[str]
    certificate: Certificate | None = None
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reasons": list(self.reasons),
                "certificate": str(self.path) if self.path else None,
                "status": self.certificate.status if self.certificate else None,
                "level": self.certificate.level if self.certificate else None}


def _gpu_keys(gpus: Any) -> list[tuple[Any, ...]]:
    keys = []
    for gpu in gpus or ():
        g = gpu if isinstance(gpu, dict) else gpu.__dict__
        keys.append((g.get("name"), g.get("compute_capability"), g.get("uuid")))
    return keys


def verify(prefix: Path, host: HostFacts) -> Verification:
    """Does the certificate in `prefix` still hold on this host? Same driver, same GPUs, same
    lock, same installed packages; and it did not record a failure. No TensorFlow import."""
    prefix = Path(prefix).expanduser().absolute()
    path = layout.certificate_path(prefix)
    if not path.is_file():
        return Verification(False, [f"no certificate at {path}"], None, path)
    cert = read_certificate(prefix)
    if cert is None:
        return Verification(False, [f"the certificate at {path} is unreadable"], None, path)
    reasons = []
    if cert.status == FAILED:
        reasons.append("the certificate records a failed certification")
    old_driver = ((cert.host or {}).get("driver") or {}).get("version")
    if old_driver != host.driver.version:
        reasons.append(f"the driver changed: {old_driver or 'none'} -> {host.driver.version or 'none'}")
    old_gpus, new_gpus = _gpu_keys((cert.host or {}).get("gpus")), _gpu_keys(host.gpus)
    if old_gpus != new_gpus:
        describe = lambda keys: ", ".join(f"{n} ({cc})" for n, cc, _ in keys) or "none"  # noqa: E731
        reasons.append(f"the GPUs changed: {describe(old_gpus)} -> {describe(new_gpus)}")
    record = layout.read_install_record(prefix)
    recorded = (record or {}).get("lock_sha256")
    if recorded != cert.lock_sha256:
        reasons.append(f"the lock changed: certified {cert.lock_sha256 or 'none'}, installed {recorded or 'none'}")
    elif record and record.get("lock_file"):
        lock = layout.meta_dir(prefix) / str(record["lock_file"])
        if not lock.is_file() or sha256_bytes(lock.read_bytes()) != recorded:
            reasons.append(f"the lock copy {lock} is missing or was modified")
    if layout.python_of(prefix) is None:
        reasons.append(f"no Python interpreter in {prefix}")
    installed = installed_packages(prefix, (record or {}).get("flavor"))
    if installed != cert.packages:
        reasons.append("the installed packages changed: " + _package_changes(cert.packages, installed))
    return Verification(not reasons, reasons, cert, path)


def _package_changes(old: dict[str, str], new: dict[str, str]) -> str:
    changes = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before != after:
            changes.append(f"{name} {before or '(absent)'} -> {after or '(removed)'}")
    return ", ".join(changes[:5]) + (f" and {len(changes) - 5} more" if len(changes) > 5 else "")

