"""The install transaction: a staging directory beside the prefix, swapped in when complete.

    <parent>/<name>                   the environment (pip: a virtual environment;
                                      conda: a symbolic link to the real directory)
    <parent>/.<name>.lock             the per-prefix lock (install: exclusive; certify: shared)
    <parent>/.<name>.staging-<pid>-<n>  an install under way (pip)
    <parent>/.<name>.env-<pid>-<n>    a conda environment's real directory (conda prefixes
                                      cannot be moved, so the link is what is swapped)

A failure or an interrupt leaves the old environment exactly as it was and removes the staging
directory; what a killed run left behind is removed by the next run that holds the lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..config import Settings
from ..errors import WorkFailed
from .layout import has_install_record

GB = 1_000_000_000
# Installed sizes measured on linux-64 (Python 3.11): tensorflow[and-cuda] 2.21 with the CUDA 12.5
# wheels is about 6.2 GB; the CPU environment about 1.9 GB. Headroom covers the package cache.
ESTIMATED_BYTES = {"gpu": int(6.2 * GB), "cpu": int(1.9 * GB)}
HEADROOM_BYTES = int(0.5 * GB)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP during an install, raised where the main thread is."""


@dataclass(frozen=True)
class Layout:
    """The prefix and the paths gpuready keeps beside it."""

    prefix: Path

    @property
    def parent(self) -> Path:
        return self.prefix.parent

    @property
    def name(self) -> str:
        return self.prefix.name

    @property
    def lock_path(self) -> Path:
        return self.parent / f".{self.name}.lock"

    def staging(self, kind: str = "staging") -> Path:
        return self.parent / f".{self.name}.{kind}-{os.getpid()}-{time.time_ns() % 10**9:09d}"

    def own_target(self) -> Path | None:
        """The directory the prefix links to, when gpuready made it (a conda environment)."""
        if not self.prefix.is_symlink():
            return None
        target = Path(os.path.realpath(self.prefix))
        ours = target.parent == Path(os.path.realpath(self.parent)) and target.name.startswith(f".{self.name}.env-")
        return target if ours else None

    def leftovers(self) -> list[Path]:
        return sorted(p for kind in ("staging", "old", "link", "env")
                      for p in self.parent.glob(f".{self.name}.{kind}-*"))


@contextlib.contextmanager
def prefix_lock(layout: Layout, *, shared: bool = False) -> Iterator[None]:
    """Hold the per-prefix lock, or stop at once (WorkFailed) when another run holds it.

    An install holds it exclusively (it builds beside the prefix and swaps); a certify holds it
    shared, so that no install replaces the environment while it is being tested, and several
    certifies may run together. The lock is an flock on a file that is never removed: the kernel
    releases it when its holder dies, so a lock is never left behind and a pid reused later
    cannot look like its owner. Where the prefix's folder cannot be written, a certify goes on
    unlocked: no gpuready install can run there either."""
    if os.name != "posix":  # pragma: no cover - Windows: one holder at a time
        yield from _filelock(layout)
        return
    import fcntl

    fd = _open_lock(layout, create=not shared)
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkFailed(_held_message(layout, fd, shared)) from None
        except OSError as error:
            raise WorkFailed(f"cannot lock {layout.lock_path}: {error.strerror}") from None
        yield
    finally:
        os.close(fd)  # releases the flock


def _open_lock(layout: Layout, *, create: bool) -> int | None:
    """The lock file's descriptor; None where a certify cannot create it (a read-only folder)."""
    try:
        if create:
            layout.parent.mkdir(parents=True, exist_ok=True)
        return os.open(layout.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as error:
        if not create:
            try:
                return os.open(layout.lock_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                return None
        where = layout.parent if not layout.parent.is_dir() else layout.lock_path
        raise WorkFailed(f"cannot create {where}: {error.strerror}") from None


def _held_message(layout: Layout, fd: int, shared: bool) -> str:
    import fcntl

    if shared:
        return (f"an install into {layout.prefix} is running (it holds {layout.lock_path}) and will "
                "replace the environment; certify it when the install has finished")
    try:  # only certifies (shared holders) let a shared lock through
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return (f"another gpuready install into {layout.prefix} is running (it holds {layout.lock_path}); "
                "wait for it to finish, then run again")
    fcntl.flock(fd, fcntl.LOCK_UN)
    return (f"a gpuready certify of {layout.prefix} is running (it holds {layout.lock_path}); the "
            "environment is not replaced while it is tested: wait for it to finish, then run again")


def _filelock(layout: Layout) -> Iterator[None]:  # pragma: no cover - Windows
    from filelock import FileLock, Timeout

    layout.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(layout.lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise WorkFailed(f"another gpuready run is using {layout.prefix} (it holds {layout.lock_path}); "
                         "wait for it to finish, then run again") from None
    try:
        yield
    finally:
        lock.release()


def sweep_stale(layout: Layout) -> list[Path]:
    """Remove what a killed install left beside the prefix, when no run holds the prefix's lock.

    Any task on a prefix calls it (setup's no-op too), so a 6 GB staging folder does not wait for
    the next real install. The lock decides (an flock dies with its holder), not the pid in the
    folder's name, which another process may have by now. Returns what was removed."""
    if not layout.leftovers():
        return []
    try:
        with prefix_lock(layout):
            return clean_leftovers(layout)
    except WorkFailed:  # a live run holds it: its folders are not stale
        return []


def rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def clean_leftovers(layout: Layout) -> list[Path]:
    """Remove what a killed install left beside the prefix (the lock is held: nothing is live).

    A pip environment moved aside (``.old-*``) while the prefix is missing is put back first:
    that is the one moment of a two-step swap at which a kill can strike.
    """
    prefix = layout.prefix
    live_target = None
    if prefix.is_symlink():
        live_target = Path(os.path.realpath(prefix))
    if not prefix.exists() and not prefix.is_symlink():
        for old in layout.parent.glob(f".{layout.name}.old-*"):
            if has_install_record(old):
                os.rename(old, prefix)
                break
    removed = []
    for path in layout.leftovers():
        if live_target is not None and Path(os.path.realpath(path)) == live_target:
            continue
        rmtree(path)
        removed.append(path)
    return removed


def check_disk(where: Path, need: int, what: str) -> None:
    """Stop before downloading when the file system cannot hold the environment."""
    probe = where
    while not probe.exists():
        probe = probe.parent
    stats = os.statvfs(probe)
    free = stats.f_bavail * stats.f_frsize
    if free < need:
        raise WorkFailed(f"not enough disk space for {what}: it needs about {need / GB:.1f} GB "
                         f"and {probe} has {free / GB:.1f} GB free. Free some space, choose another "
                         "--prefix (or gpuready.prefix_root), or lower gpuready.min_free_gb if you "
                         "know it fits")


def needed_bytes(device: str, settings: Settings) -> int:
    if settings.min_free_gb is not None:
        return int(settings.min_free_gb * GB)
    return ESTIMATED_BYTES.get(device, ESTIMATED_BYTES["gpu"]) + HEADROOM_BYTES


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2); False where that is not supported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP for the few system calls of a swap."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def swap_in(staging: Path, prefix: Path, aside: Path) -> Path | None:
    """Put `staging` at `prefix`; return where the old environment went (None if there was none).

    One atomic exchange where the kernel offers it, else two renames with the old environment
    put back if the second fails.
    """
    with _signals_held():
        if not prefix.exists() and not prefix.is_symlink():
            os.rename(staging, prefix)
            return None
        if _exchange(staging, prefix):
            return staging
        os.rename(prefix, aside)
        try:
            os.rename(staging, prefix)
        except OSError:
            os.rename(aside, prefix)
            raise
        return aside


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into an exception, so that cleanup runs as for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


