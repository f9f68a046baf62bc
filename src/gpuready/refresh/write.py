"""Writing the matrix: new release blocks spliced into tensorflow.toml in version order,
existing lines (comments included) kept byte for byte, the result validated before it replaces
the file atomically.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterable, Mapping

from packaging.version import InvalidVersion, Version

from ..files import write_atomic
from ..model import matrix as matrix_mod
from .changes import NewRelease

MATRIX_FILE = "tensorflow.toml"
KERNELS_FILE = "kernels.toml"


_HEADER = re.compile(r'^\[releases\."([^"]+)"\]\s*(#.*)?$')


def _version_of(line: str) -> Version | None:
    match = _HEADER.match(line.strip())
    if not match:
        return None
    try:
        return Version(match.group(1))
    except InvalidVersion:
        return None


def splice(text: str, blocks: Mapping[Version, str]) -> str:
    """`text` with each release block put in version order (newest last), replacing the release's
    existing block where there is one. Every other line, comments included, is kept byte for byte."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for version, rendered in sorted(blocks.items()):
        block = rendered.splitlines(keepends=True)
        starts = [i for i, line in enumerate(lines) if _version_of(line) is not None]
        here = next((i for i in starts if _version_of(lines[i]) == version), None)
        if here is not None:  # replace: from its header to the next header (its comments stay)
            end = next((i for i in starts if i > here), len(lines))
            while end > here + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")) \
                    and end != len(lines):
                end -= 1
            body = [line for line in block if not line.lstrip().startswith("#")]
            while body and not body[-1].strip():
                body.pop()
            gap = end < len(lines) and lines[end].strip() != ""
            lines[here:end] = body + (["\n"] if gap else [])
            continue
        at = next((i for i in starts if (_version_of(lines[i]) or version) > version), len(lines))
        if at != len(lines):
            while at > 0 and lines[at - 1].lstrip().startswith("#"):
                at -= 1  # the comment lines just above a header belong to it
        if at == len(lines):
            if lines and lines[-1].strip():
                block.insert(0, "\n")
        else:
            block.append("\n")
            if at > 0 and lines[at - 1].strip():
                block.insert(0, "\n")
        lines[at:at] = block
    return "".join(lines)


def insert_releases(text: str, new: Iterable[NewRelease]) -> str:
    """tensorflow.toml's text with the new release blocks in version order (newest last)."""
    return splice(text, {release.version: release.render() for release in new})


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
