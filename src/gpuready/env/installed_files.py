"""Every installed file against the hash its wheel's RECORD gives it.

A wheel's installer writes `<name>-<version>.dist-info/RECORD`: each installed file with its
size and `sha256=<urlsafe base64, no padding>` digest (the binary distribution format spec).
Checking them proves the files are those the lock's hash-verified wheels brought, not ones
edited since. Entries without a hash (RECORD itself, its signatures) are not checked, nor
`.pyc` files (the spec lets installers leave them out; Python rewrites them itself). The
dist-info folders conda installed are left to conda: it rewrites files it installs (prefix
replacement), so their RECORD does not describe them. Read through `importlib.metadata`, with
no Python of the environment started.
"""

from __future__ import annotations

import base64
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .inventory import conda_records, flavor_of
from .layout import site_packages

CHUNK = 1 << 20
MAX_LISTED = 50  # modified or missing files named in a report; the rest are counted
WORKERS = max(1, min(8, os.cpu_count() or 1))  # hashlib releases the GIL on large reads


@dataclass(frozen=True)
class Mismatch:
    path: str  # as RECORD names it, relative to site-packages
    distribution: str  # "name version"
    why: str  # "modified" | "missing" | "unreadable: ..."


@dataclass
class FilesReport:
    """What checking the installed files found."""

    files: int = 0  # files whose hash was checked
    distributions: int = 0  # dist-info folders whose RECORD was read
    mismatches: list[Mismatch] = field(default_factory=list)
    without_record: list[str] = field(default_factory=list)  # "name version": no RECORD to check against
    left_to_conda: int = 0  # dist-info folders conda owns

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")


def _check_one(path: Path, algorithm: str, expected: str, size: int | None) -> str | None:
    """None when the file matches; else why not."""
    try:
        if size is not None and path.stat().st_size != size:
            return "modified"
        return None if _digest(path, algorithm) == expected else "modified"
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as error:  # ValueError: an algorithm hashlib does not know
        return f"unreadable: {getattr(error, 'strerror', None) or error}"


def check_installed_files(prefix: Path) -> FilesReport:
    """Check every hashed file of every distribution in the prefix's site-packages."""
    report = FilesReport()
    site = site_packages(prefix)
    if site is None:
        return report
    owned = conda_records(prefix)[1] if flavor_of(prefix) == "conda" else frozenset()
    jobs: list[tuple[Path, str, str, int | None, str, str]] = []
    for folder in sorted(site.glob("*.dist-info")):
        if folder.name in owned:
            report.left_to_conda += 1
            continue
        dist = metadata.PathDistribution(folder)
        label = f"{dist.metadata['Name'] or folder.name} {dist.version or ''}".strip()
        files = dist.files
        if files is None:
            report.without_record.append(label)
            continue
        report.distributions += 1
        for entry in files:
            if entry.hash is None or entry.suffix == ".pyc":
                continue
            jobs.append((Path(str(entry.locate())), entry.hash.mode, entry.hash.value, entry.size,
                         str(entry), label))
    with ThreadPoolExecutor(WORKERS) as pool:
        results = pool.map(lambda job: _check_one(*job[:4]), jobs)
        for job, why in zip(jobs, results):
            report.files += 1
            if why is not None:
                report.mismatches.append(Mismatch(path=job[4], distribution=job[5], why=why))
    return report


__all__ = ["FilesReport", "Mismatch", "check_installed_files", "MAX_LISTED"]
