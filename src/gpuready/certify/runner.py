"""Running the bundled check inside an environment, with a time limit per level.

The check (`gpuready/check/conv2d_check.py`) runs by path with the environment's own Python and
only its packages. It reports progress as JSON lines in a file and its result as one JSON
document on stdout. A check that crashes, hangs or prints garbage becomes failed checks that say
so, with what was captured; levels that finished keep their results.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import proc
from ..env import activation
from ..env.layout import python_of
from ..errors import UsageError
from ..model.certificate import FAIL, NO_GPU, Check
from ..model.facts import HostFacts
from ..model.inputs import Inputs

DEFAULT_LEVEL_TIMEOUT = 600.0  # seconds per level; a first GPU start may JIT-compile PTX
LOG_TAIL_CHARS = 4000
OUTPUT_CHARS = 1_000_000  # of the check's stdout and stderr, the end is kept

EventHandler = Callable[[str, Any], None]


def environment_python(prefix: str | os.PathLike[str]) -> Path:
    """The interpreter of an environment prefix; UsageError (exit 2) when there is none."""
    root = Path(prefix).expanduser()
    if not root.exists():
        raise UsageError(f"no environment at {root}: the directory does not exist "
                         "(build one with `invoke setup`, or give --prefix DIR)")
    if not root.is_dir():
        raise UsageError(f"no environment at {root}: not a directory")
    python = python_of(root)
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


def read_tail(path: Path, chars: int = OUTPUT_CHARS) -> str:
    """The end of a file that may be huge (a runaway log): at most `chars` characters."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - chars))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def check_script() -> Path:
    return Path(str(resources.files("gpuready.check").joinpath("conv2d_check.py")))


def expectations(inputs: Inputs | None, host: HostFacts) -> dict[str, Any]:
    """What the check compares TensorFlow against: the lock's versions, the host's GPUs."""
    gpus = len(host.gpus)
    if inputs is None:
        expect: dict[str, Any] = {"gpus": gpus}
    elif inputs.device == "gpu":
        expect = {"device": "gpu", "tensorflow": inputs.tensorflow,
                  "cuda": inputs.build_cuda or inputs.cuda, "cudnn": inputs.cudnn, "gpus": gpus}
    else:
        expect = {"device": "cpu", "tensorflow": inputs.tensorflow, "gpus": 0}
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
                process = proc.start(command, stdout=out, stderr=err, env=env, text=False)
            except proc.NotStarted as exc:
                run.crashed = f"could not be started ({exc})"
                run.checks = _checks_of(run, partial)
                return run
            try:
                while process.poll() is None:
                    drain()
                    limit = limits.get(run.last_level, DEFAULT_LEVEL_TIMEOUT)
                    if time.monotonic() - level_started > limit:
                        proc.stop(process, grace=1.0)
                        run.timed_out = {"level": run.last_level, "limit": limit, "check": run.last_check}
                        break
                    time.sleep(0.1)
            finally:
                if process.poll() is None:  # interrupted (Ctrl-C)
                    proc.stop(process, grace=1.0)
                process.wait()
        drain()
        run.returncode = process.returncode
        run.seconds = time.monotonic() - started
        run.stdout = read_tail(work / "stdout")
        run.stderr = read_tail(work / "stderr")

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


