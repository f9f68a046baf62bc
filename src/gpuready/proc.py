"""The one way gpuready runs another program (uv, conda-lock, nvidia-smi, the check, Python).

Every child starts in its own process group and, on Linux, is killed by the kernel when
gpuready dies (PR_SET_PDEATHSIG), so neither a timeout, Ctrl-C nor a `kill -9` of gpuready
leaves a uv writing into an abandoned staging folder. Output is captured with a bound: the
first and the last lines are kept, the middle of a runaway log is counted, not stored.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import IO, Callable, Mapping, Sequence

KILL_GRACE_S = 5.0
HEAD_LINES = 200
TAIL_CHARS = 256 * 1024
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Result:
    """How a program ended and what it printed (bounded)."""

    command: tuple[str, ...]
    returncode: int | None  # None: stopped at the time limit
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def signal_name(self) -> str | None:
        """"SIGSEGV" when the program was killed by a signal."""
        if self.returncode is None or self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class NotStarted(OSError):
    """The program could not be started (not found, not executable)."""


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def start(command: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
          stdout: int | IO[bytes] | None = subprocess.PIPE, stderr: int | IO[bytes] | None = subprocess.PIPE,
          text: bool = True, stdin: IO[bytes] | None = None) -> subprocess.Popen:
    """Start a program in its own process group, dying with gpuready; `NotStarted` when it cannot.

    stdin: an open file the program reads (default: nothing, /dev/null)."""
    posix = os.name == "posix"
    try:
        return subprocess.Popen(
            [str(c) for c in command], stdin=subprocess.DEVNULL if stdin is None else stdin, stdout=stdout, stderr=stderr,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=posix,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            **({"text": True, "errors": "replace"} if text else {}))
    except OSError as error:
        raise NotStarted(error.errno, f"{command[0]} could not be started: {error.strerror or error}") from None


def stop(process: subprocess.Popen, grace: float = KILL_GRACE_S) -> None:
    """End a program and everything it started: SIGTERM to its group, SIGKILL after `grace`."""
    if process.poll() is not None:
        return
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:  # stuck in the kernel (a hung driver): leave it
            pass


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(OSError):
        if os.name == "posix":
            os.killpg(process.pid, signum)
        else:  # pragma: no cover - Windows
            process.kill()


class _Capture:
    """The head and the tail of a stream; the lines in between are only counted."""

    def __init__(self, on_line: Callable[[str], None] | None) -> None:
        self.head: list[str] = []
        self.tail: deque[str] = deque()
        self.tail_chars = 0
        self.dropped = 0
        self.on_line = on_line

    def add(self, line: str) -> None:
        if self.on_line is not None:
            with contextlib.suppress(Exception):
                self.on_line(line.rstrip("\n"))
        if len(self.head) < HEAD_LINES:
            self.head.append(line)
            return
        self.tail.append(line)
        self.tail_chars += len(line)
        while self.tail_chars > TAIL_CHARS and len(self.tail) > 1:
            self.tail_chars -= len(self.tail.popleft())
            self.dropped += 1

    def text(self) -> str:
        gap = [f"[... {self.dropped} lines not kept ...]\n"] if self.dropped else []
        return "".join(self.head + gap + list(self.tail))


def run(command: Sequence[str], *, timeout: float | None = None, env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None, merge: bool = False,
        on_line: Callable[[str], None] | None = None, stdin: IO[bytes] | None = None) -> Result:
    """Run a program to its end or its time limit; stop it (and its children) on an interrupt.

    merge: stderr goes into stdout (one stream, in order). on_line: each line as it comes.
    stdin: an open file the program reads (ssh-keygen -Y verify reads the signed file there).
    Raises `NotStarted` when the program cannot be started.
    """
    started = time.monotonic()
    process = start(command, env=env, cwd=cwd, stderr=subprocess.STDOUT if merge else subprocess.PIPE, stdin=stdin)
    out, err = _Capture(on_line), _Capture(None if merge else on_line)
    readers = [threading.Thread(target=_pump, args=(process.stdout, out), daemon=True)]
    if not merge:
        readers.append(threading.Thread(target=_pump, args=(process.stderr, err), daemon=True))
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        stop(process, grace=1.0)
    except BaseException:
        stop(process)
        raise
    for reader in readers:
        reader.join(timeout=5)
    return Result(tuple(str(c) for c in command), None if timed_out else process.returncode,
                  out.text(), err.text(), time.monotonic() - started, timed_out)


def _pump(stream: IO[str] | None, capture: _Capture) -> None:
    if stream is None:
        return
    with contextlib.suppress(ValueError, OSError):
        for line in stream:
            capture.add(line)
    with contextlib.suppress(OSError):
        stream.close()
