"""Diagnosis of an environment: the signatures in what a run captured, and the library probe.

`diagnose_run` matches the check's output and log against the failure signatures and adds
what gpuready established itself (a time-out, a crash, a library that does not load).
`probe_libraries` loads, in the environment's own Python, each CUDA library TensorFlow needs and
reports the first that fails.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from .. import proc
from ..model.certificate import FAIL, PROBLEM, Finding
from ..model.facts import HostFacts
from ..model.signatures import UNRECOGNISED, diagnose, finding, merge
from .logwindow import read_for_diagnosis
from .runner import CheckRun, child_environment

# ----------------------------------------------------------------------------- CUDA libraries


def probe_script() -> Path:
    return Path(str(resources.files("gpuready.check").joinpath("cuda_libs.py")))


def probe_libraries(python: str | Path, timeout: float = 120.0,
                    env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """Run the library probe with the environment's Python (and `env`, the variables its
    activation sets); None when it could not run."""
    try:
        done = proc.run([str(python), "-I", str(probe_script())], timeout=timeout, env=env)
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
    return result if isinstance(result, dict) else None


def library_findings(probe: dict[str, Any] | None, *, host_has_gpu: bool | None = None) -> list[Finding]:
    """What the library probe says: the driver or the first library that does not load, or
    that every library loads (which points at the search path, not the files)."""
    if not probe or probe.get("error"):
        return []
    tf = probe.get("tensorflow") or {}
    if not tf.get("found") or tf.get("is_cuda_build") is not True:
        return []
    out = []
    driver = probe.get("driver") or {}
    if driver and not driver.get("ok") and host_has_gpu is not False:
        out.append(finding("cuda-driver-not-loadable", error=driver.get("error") or "unknown error"))
    failed = probe.get("first_failure")
    if failed:
        library = failed.get("missing_dependency") or failed["name"]
        error = failed.get("error") or "unknown error"
        if failed.get("missing_dependency"):
            error = f"{failed['name']} needs {library}, which is missing ({error})"
        out.append(finding("cuda-library-not-loadable", library=library, error=error,
                           evidence=failed.get("path")))
    elif probe.get("libraries"):
        where = sorted({str(Path(lib["path"]).parent) for lib in probe["libraries"]
                        if lib.get("ok") and lib.get("path") and lib["path"] != "loader search path"})
        out.append(finding("cuda-libraries-load", where=", ".join(where) or "the loader's search path"))
    return out


def diagnose_run(run: CheckRun | None, *, log: Path | None, host: HostFacts, python: Path,
                 prefix: Path, probe: dict[str, Any] | None = None) -> list[Finding]:
    """Signatures in the captured text, plus what gpuready established itself. The library
    probe runs (unless `probe` is given) when TensorFlow misses GPUs or cannot load CUDA."""
    has_gpu = bool(host.gpus)
    texts = [_read(log) if log else ""]
    if run is not None:
        texts += [run.stderr, run.stdout if run.result is None else ""]
        if run.result:
            texts += [e.get("traceback") or e.get("error") or "" for e in run.result.get("errors") or []]
        texts += [c.reason or "" for c in run.checks if c.status == FAIL]
    text = "\n".join(t for t in texts if t)
    found = diagnose(text, host_has_gpu=has_gpu)
    own: list[Finding] = []
    if run is not None:
        values = {"log": str(log), "prefix": str(prefix), "check": run.last_check or "start-up"}
        if run.timed_out:
            own.append(finding("check-timeout", **values, level=run.timed_out["level"],
                                    limit=run.timed_out["limit"]))
        elif run.crashed:
            own.append(finding("check-crashed", **values, how=run.crashed))
        elif run.garbage:
            own.append(finding("check-garbage", **values, how=f"with {run.returncode}",
                                    excerpt=run.garbage))
    listed = len((run.result or {}).get("gpus") or []) if run else 0
    gpus_check = next((c for c in run.checks if c.name == "gpus-visible"), None) if run else None
    gpus_missing = has_gpu and gpus_check is not None and gpus_check.status == FAIL
    library_signs = {"cuda-driver-not-found", "cuda-libraries-not-loaded", "cuda-init-failed",
                     "cuda-driver-not-loadable"}
    if gpus_missing or any(f.id in library_signs and f.severity == PROBLEM for f in found):
        probe = probe if probe is not None else probe_libraries(python, env=child_environment(prefix))
        own += library_findings(probe, host_has_gpu=has_gpu)
        if gpus_missing and not any(f.severity == PROBLEM for f in found + own):
            own.append(finding("gpus-not-visible", log=str(log), prefix=str(prefix),
                                    host_gpus=len(host.gpus), listed=listed))
    failed = [c for c in (run.checks if run else ()) if c.status == FAIL]
    if failed and not any(f.severity == PROBLEM for f in found + own):
        # A failed run always names a cause: the failing checks' own words where no signature
        # and no error line explains it.
        reasons = "; ".join(f"{c.name}: {c.reason or 'failed'}" for c in failed)
        own.append(finding(UNRECOGNISED, evidence=failed[0].reason,
                           lines=f"no error line matches a known signature; the failed checks say: {reasons}"))
    return merge(found, own)


def _read(log: Path) -> str:
    try:
        return read_for_diagnosis(log)
    except OSError:
        return ""


