"""Every installed file against the hash its wheel's RECORD gives it.

A wheel's installer writes `<name>-<version>.dist-info/RECORD`: each installed file with its
size and `sha256=<urlsafe base64, no padding>` digest (the binary distribution format spec).
Checking them proves the files are those the lock's hash-verified wheels brought, not ones
edited since. Entries without a hash (RECORD itself, its signatures) are not checked, nor
`.pyc` files (the spec lets installers leave them out; Python rewrites them itself). The
dist-info folders conda installed are left to conda: it rewrites files it installs (prefix
replacement), so their RECORD does not describe them. Read through `importlib.metadata`, with
no Python of the environment started.

Hashing every file of a TensorFlow environment takes seconds; setup's no-op must be quick. So
the check also records a fingerprint: the sha256 of each RECORD and one digest of every listed
file's (size, mtime, ctime, inode). A write to a file, a rename over it or a `touch` back to the
old mtime all change its ctime, which no user can set back; `fingerprint` (stat calls only) is
then compared first, and the files are hashed again only when it differs.
"""

from __future__ import annotations

import base64
import csv
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
    records: dict[str, str] = field(default_factory=dict)  # dist-info folder -> sha256 of its RECORD
    stat_sha256: str = ""  # digest of every checked file's (size, mtime, ctime, inode)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _digest(path: str, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")


def _check_one(path: str, algorithm: str, expected: str, size: int | None) -> str | None:
    """None when the file matches; else why not."""
    try:
        if size is not None and os.stat(path).st_size != size:
            return "modified"
        return None if _digest(path, algorithm) == expected else "modified"
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as error:  # ValueError: an algorithm hashlib does not know
        return f"unreadable: {getattr(error, 'strerror', None) or error}"


_Job = tuple[str, str, str, "int | None", str, str]  # file, algorithm, digest, size, RECORD path, "name version"


def _scan(prefix: Path, report: FilesReport) -> list[_Job]:
    """Every hashed file RECORD lists (fills the report's counts and RECORD digests)."""
    site = site_packages(prefix)
    if site is None:
        return []
    owned = conda_records(prefix)[1] if flavor_of(prefix) == "conda" else frozenset()
    jobs: list[_Job] = []
    for folder in sorted(site.glob("*.dist-info")):
        if folder.name in owned:
            report.left_to_conda += 1
            continue
        dist = metadata.PathDistribution(folder)
        label = f"{dist.metadata['Name'] or folder.name} {dist.version or ''}".strip()
        try:
            record = (folder / "RECORD").read_bytes()
        except OSError:
            report.without_record.append(label)
            continue
        report.records[folder.name] = hashlib.sha256(record).hexdigest()
        report.distributions += 1
        base = str(folder.parent)
        # RECORD is CSV: path, "algorithm=urlsafe-b64 digest" or empty, size or empty (the spec;
        # what importlib.metadata's `files` parses, read here without a Path per file: it is the
        # quick path of setup's no-op).
        for row in csv.reader(record.decode("utf-8", "replace").splitlines()):
            if len(row) < 2 or not row[1] or row[0].endswith(".pyc"):
                continue
            algorithm, _, value = row[1].partition("=")
            size = int(row[2]) if len(row) > 2 and row[2].isdigit() else None
            jobs.append((os.path.normpath(os.path.join(base, row[0])), algorithm, value, size, row[0], label))
    return jobs


def _stat_digest(jobs: list[_Job]) -> str:
    digest = hashlib.sha256()
    for job in jobs:
        try:
            st = os.stat(job[0])
            digest.update(f"{job[4]}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n".encode())
        except OSError:
            digest.update(f"{job[4]}\0missing\n".encode())
    return digest.hexdigest()


def fingerprint(prefix: Path) -> FilesReport:
    """The RECORD digests and the stat digest, without hashing any file (the quick comparison)."""
    report = FilesReport()
    report.stat_sha256 = _stat_digest(_scan(prefix, report))
    return report


def check_installed_files(prefix: Path) -> FilesReport:
    """Check every hashed file of every distribution in the prefix's site-packages."""
    report = FilesReport()
    jobs = _scan(prefix, report)
    report.stat_sha256 = _stat_digest(jobs)
    with ThreadPoolExecutor(WORKERS) as pool:
        results = pool.map(lambda job: _check_one(*job[:4]), jobs)
        for job, why in zip(jobs, results):
            report.files += 1
            if why is not None:
                report.mismatches.append(Mismatch(path=job[4], distribution=job[5], why=why))
    return report


__all__ = ["FilesReport", "Mismatch", "check_installed_files", "fingerprint", "MAX_LISTED"]
