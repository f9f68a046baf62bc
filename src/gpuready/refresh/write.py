"""Writing the matrix: new release blocks spliced into tensorflow.toml in version order,
existing lines (comments included) kept byte for byte, the result validated before it replaces
the file atomically.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterable

from packaging.version import InvalidVersion, Version

from ..files import write_atomic
from ..model import matrix as matrix_mod
from .changes import NewRelease

MATRIX_FILE = "tensorflow.toml"


def insert_releases(text: str, new: Iterable[NewRelease]) -> str:
    """tensorflow.toml's text with the new release blocks in version order (newest last).

    Existing lines, comments included, are kept byte for byte.
    """
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    header = re.compile(r'^\[releases\."([^"]+)"\]\s*(#.*)?$')
    for release in sorted(new, key=lambda r: r.version):
        at = len(lines)
        for i, line in enumerate(lines):
            match = header.match(line.strip())
            if match:
                try:
                    later = Version(match.group(1)) > release.version
                except InvalidVersion:
                    later = False
                if later:
                    at = i
                    while at > 0 and lines[at - 1].lstrip().startswith("#"):
                        at -= 1  # the comment lines just above a header belong to it
                    break
        block = release.render().splitlines(keepends=True)
        if at == len(lines):
            if lines and lines[-1].strip():
                block.insert(0, "\n")
        else:
            block.append("\n")
            if at > 0 and lines[at - 1].strip():
                block.insert(0, "\n")
        lines[at:at] = block
    return "".join(lines)


def write_matrix_file(path: Path, text: str) -> None:
    """Replace the file atomically: readers see the old text or the new, never half of it."""
    write_atomic(path, text.encode("utf-8"))


def _stale_temporaries(folder: Path) -> None:
    """Left-overs of a refresh killed between writing and renaming (never read by the loader)."""
    for stale in folder.glob(f".{MATRIX_FILE}.*.tmp"):
        try:
            if time.time() - stale.stat().st_mtime > 60:
                stale.unlink()
        except OSError:
            pass


def find_matrix_dir(configured: str | None, start: Path | None = None) -> Path | None:
    """The matrix folder to update: configured, $GPUREADY_MATRIX, or the checkout's matrix/."""
    if configured:
        return Path(configured).expanduser()
    env = matrix_mod.default_dir()
    if env is not None:
        return env
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "matrix" / MATRIX_FILE).is_file() and (folder / "pyproject.toml").is_file():
            return folder / "matrix"
    return None
