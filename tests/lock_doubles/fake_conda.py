"""A conda executable test double, built on py-rattler: enough of conda's command line for
conda-lock to lock against a local channel without the network.

    <exe> create --prefix P --dry-run --json --override-channels --channel C ... SPEC ...
    <exe> info --json
    <exe> --version

Channel names map to local directories through the environment variable
FAKE_CONDA_CHANNELS (a JSON object {"conda-forge": "/path/to/channel"}); `file://`
channels are read in place. The solve uses `rattler.solve_with_sparse_repodata` for
CONDA_SUBDIR and noarch, with the virtual packages conda would see: `__unix`/`__win`
from the platform and `__cuda`, `__glibc`, `__linux`, `__osx` from the CONDA_OVERRIDE_*
variables conda-lock sets (an empty value removes the package, as in conda). Records
are reported with the named channel's real URL (conda.anaconda.org), as conda would.
The `__*` records of conda-lock's own virtual-package channel are not loaded: the
virtual packages come from the overrides, as they do for conda.

Tests only: never part of the product.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

VERSION = "25.1.1"
OVERRIDES = {"CUDA": "__cuda", "GLIBC": "__glibc", "LINUX": "__linux", "OSX": "__osx"}


def _fail(message: str, exception: str = "CondaError", code: int = 1) -> int:
    json.dump({"error": message, "message": message, "exception_name": exception}, sys.stdout)
    sys.stdout.write("\n")
    return code


def _channel_dirs(channels: list[str]) -> list[tuple[str, Path]]:
    mapping = json.loads(os.environ.get("FAKE_CONDA_CHANNELS", "{}"))
    result = []
    for channel in channels:
        if channel.startswith("file://"):
            result.append((channel, Path(unquote(urlparse(channel).path))))
        elif channel in mapping:
            result.append((channel, Path(mapping[channel])))
        else:
            raise LookupError(f"channel {channel!r} is not reachable (the test double knows "
                              f"{', '.join(mapping) or 'none'}; set FAKE_CONDA_CHANNELS)")
    return result


def _virtual_packages(subdir: str) -> list:
    from rattler import BuildString, GenericVirtualPackage, PackageName, Version

    found = []
    if subdir.startswith(("linux", "osx")):
        found.append(("__unix", "0"))
    elif subdir.startswith("win"):
        found.append(("__win", "0"))
    for key, name in OVERRIDES.items():
        value = os.environ.get(f"CONDA_OVERRIDE_{key}", "")
        if value:
            found.append((name, value))
    return [GenericVirtualPackage(PackageName(n), Version(v), BuildString("0")) for n, v in found]


def _solve(specs: list[str], channels: list[str], subdir: str) -> list[dict]:
    from rattler import Channel, MatchSpec, SparseRepoData, solve_with_sparse_repodata

    sources = []
    for name, directory in _channel_dirs(channels):
        for sub in (subdir, "noarch"):
            repodata = directory / sub / "repodata.json"
            if not repodata.exists():
                continue
            packages = json.loads(repodata.read_text()).get("packages", {})
            if packages and all(p["name"].startswith("__") for p in packages.values()):
                continue  # conda-lock's virtual-package channel
            channel = Channel(name if not name.startswith("file://") else str(directory))
            sources.append(SparseRepoData(channel, sub, repodata))
    records = asyncio.run(solve_with_sparse_repodata(
        [MatchSpec(s) for s in specs], sources, virtual_packages=_virtual_packages(subdir)))
    actions = []
    for record in records:
        actions.append({
            "name": record.name.normalized, "version": str(record.version),
            "build": str(record.build), "build_number": record.build_number,
            "channel": str(record.channel), "subdir": record.subdir, "fn": record.file_name,
            "url": record.url, "md5": record.md5.hex() if record.md5 else None,
            "sha256": record.sha256.hex() if record.sha256 else None,
            "depends": list(record.depends), "constrains": list(record.constrains),
            "size": record.size,
        })
    return sorted(actions, key=lambda a: a["name"])


def _create(args: list[str]) -> int:
    specs, channels, prefix, dry_run = [], [], None, False
    it = iter(args)
    for arg in it:
        if arg in ("--prefix", "-p"):
            prefix = next(it)
        elif arg in ("--channel", "-c"):
            channels.append(next(it))
        elif arg == "--dry-run":
            dry_run = True
        elif arg in ("--json", "--override-channels", "--yes", "-y", "--quiet", "-q"):
            pass
        elif arg.startswith("-"):
            return _fail(f"unsupported option {arg}", "ArgumentError", 2)
        else:
            specs.append(arg)
    if not dry_run:
        return _fail("the test double only solves (--dry-run)", "ArgumentError", 2)
    subdir = os.environ.get("CONDA_SUBDIR", "linux-64")
    try:
        fetch = _solve(specs, channels, subdir)
    except LookupError as error:
        return _fail(str(error), "UnavailableInvalidChannel")
    except Exception as error:  # rattler's SolverError: unsatisfiable specs
        return _fail(f"UnsatisfiableError: {error}", "UnsatisfiableError")
    link = [{k: a[k] for k in ("name", "version", "build", "build_number", "channel")}
            for a in fetch]
    json.dump({"actions": {"FETCH": fetch, "LINK": link, "PREFIX": prefix},
               "dry_run": True, "prefix": prefix, "success": True}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("--version", "-V"):
        print(f"conda {VERSION}")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "create":
        return _create(rest)
    if command == "info":
        pkgs = os.environ.get("CONDA_PKGS_DIRS", str(Path.home() / ".conda-double" / "pkgs"))
        json.dump({"conda_version": VERSION, "pkgs_dirs": pkgs.split(","),
                   "platform": os.environ.get("CONDA_SUBDIR", "linux-64")}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    return _fail(f"the test double does not implement `{command}`", "CommandNotFoundError", 2)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)  # skip interpreter teardown: rattler's runtime threads may still be alive
