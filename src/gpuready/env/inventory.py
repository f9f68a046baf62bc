"""What is installed in a prefix, read from disk without starting its Python, and how it
compares with the lock.

Python distributions come from the prefix's site-packages through `importlib.metadata`; a conda
prefix adds its conda-meta records (conda's name and version win for what conda installed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Mapping

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .layout import python_of, read_install_record, site_packages

# Installers' own tools: not in a lock, harmless when present.
TOOLING = frozenset({"pip", "setuptools", "wheel", "uv"})


def python_distributions(prefix: Path, skip: frozenset[str] = frozenset()) -> dict[str, str]:
    """{canonical name: version} of every distribution in the prefix's site-packages."""
    site = site_packages(prefix)
    found: dict[str, str] = {}
    if site is None:
        return found
    for folder in site.glob("*.dist-info"):
        if folder.name in skip:
            continue
        dist = metadata.PathDistribution(folder)
        name, version = dist.metadata["Name"], dist.version
        if name and version:
            found[canonicalize_name(name)] = version
    return found


def conda_records(prefix: Path) -> tuple[dict[str, str], frozenset[str]]:
    """({canonical name: version} from conda-meta, the dist-info folder names conda installed)."""
    records: dict[str, str] = {}
    owned: set[str] = set()
    for path in (prefix / "conda-meta").glob("*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        if "name" in data and "version" in data:
            records[canonicalize_name(str(data["name"]))] = str(data["version"])
        for file in data.get("files") or ():
            owned.update(part for part in str(file).split("/") if part.endswith(".dist-info"))
    return records, frozenset(owned)


def flavor_of(prefix: Path) -> str:
    return "conda" if (prefix / "conda-meta").is_dir() else "pip"


def installed_packages(prefix: Path, flavor: str | None = None) -> dict[str, str]:
    """{canonical name: version} installed in the prefix, as the lock names them."""
    if (flavor or flavor_of(prefix)) == "conda":
        records, owned = conda_records(prefix)
        return {**python_distributions(prefix, owned), **records}
    return python_distributions(prefix)


def same_version(a: str, b: str) -> bool:
    """Equal as versions ("2.21" == "2.21.0"), or as text when one is not a version."""
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


@dataclass(frozen=True)
class Differences:
    """How an environment differs from its lock: the one comparison install and certify make."""

    missing: tuple[str, ...]  # "name==version" the lock has and the environment lacks
    different: tuple[str, ...]  # "name: installed X, locked Y"
    extra: tuple[str, ...]  # "name==version" installed, not in the lock (installers' tools left out)

    def lines(self) -> list[str]:
        return ([f"{m} is missing" for m in self.missing] + list(self.different)
                + [f"{e} is installed but not in the lock" for e in self.extra])


def differences(locked: Mapping[str, str], installed: Mapping[str, str],
                tolerated: frozenset[str] = frozenset()) -> Differences:
    want = {canonicalize_name(k): str(v) for k, v in locked.items()}
    return Differences(
        missing=tuple(f"{n}=={v}" for n, v in sorted(want.items()) if n not in installed),
        different=tuple(f"{n} is {installed[n]}, the lock has {v}" for n, v in sorted(want.items())
                        if n in installed and not same_version(installed[n], v)),
        extra=tuple(f"{n}=={installed[n]}" for n in sorted(set(installed) - set(want)) if n not in tolerated),
    )


def compare(locked: Mapping[str, str], installed: Mapping[str, str]) -> list[str]:
    """What differs between the lock and the environment, one line each (empty: identical)."""
    return differences(locked, installed).lines()


def environment_intact(prefix: Path, lock_sha: str | None = None) -> tuple[bool, str]:
    """Quickly (no subprocess): does the prefix hold what its install record says?"""
    try:
        record = read_install_record(prefix)
    except Exception as error:  # a malformed record: not intact, and say why
        return False, getattr(error, "message", str(error))
    if record is None:
        return False, f"no environment at {prefix}" if not prefix.exists() else f"{prefix} has no install record"
    if lock_sha is not None and record.lock_sha256 != lock_sha:
        return False, "it was installed from another lock"
    if python_of(prefix) is None:
        return False, "its Python is missing"
    problems = compare(record.packages, installed_packages(prefix, record.flavor))
    if problems:
        return False, "its packages changed: " + "; ".join(problems[:5])
    return True, "intact"
