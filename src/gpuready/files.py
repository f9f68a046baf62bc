"""Writing files so that a reader sees the old bytes or the new ones, never half; digests.

Every file gpuready writes (locks, records, certificates, the matrix, metrics) goes through
`write_atomic`: a temporary file beside the target, flushed to disk, then `os.replace`. A
full disk or a read-only folder is one `WriteFailed` naming the file, and the old file is
left as it was.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from .errors import WorkFailed

CHUNK = 1 << 20


class WriteFailed(WorkFailed):
    """A file could not be written (disk full, permissions): the old one is intact (exit 1)."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file, read in chunks (wheels and libraries are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_os_error(error: OSError) -> str:
    """"no space left on device" rather than "[Errno 28] No space left on device: '/x'"."""
    if error.errno == errno.ENOSPC:
        return "no space left on device"
    return (error.strerror or str(error)).lower()


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> bool:
    """Replace `path` with `data`; False when it already held exactly these bytes.

    Raises `WriteFailed` (the old file untouched) when the bytes cannot be written.
    """
    target = Path(path)
    try:
        if target.read_bytes() == data:
            return False
    except OSError:
        pass
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as error:
        raise WriteFailed(f"cannot write {target}: {describe_os_error(error)}; "
                          "the previous file (if any) is as it was") from None
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass
    return True


def check_writable(path: str | os.PathLike[str], what: str) -> Path:
    """Fail now, before any work, when a file the command will write cannot be written."""
    from .errors import UsageError

    target = Path(path).expanduser()
    if str(path).strip() == "":
        raise UsageError(f"{what}: an empty path")
    if target.is_dir():
        raise UsageError(f"{what}: {target} is a directory")
    probe = target.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{what}: cannot write {target} ({probe} is not a writable directory)")
    return target.absolute()


def check_prefix_writable(prefix: str | os.PathLike[str], what: str = "--prefix") -> Path:
    """Fail now, before locking or downloading, when an environment cannot be built at `prefix`:
    its staging folder and its lock go beside it, so the folder that holds it (or the nearest
    one that exists) must be a writable directory, and the prefix itself, if present, a directory."""
    from .errors import UsageError

    target = Path(prefix).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise UsageError(f"{what}: {target} exists and is not a directory")
    probe = target.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{what}: cannot install into {target} ({probe} is not a writable directory)")
    return target
