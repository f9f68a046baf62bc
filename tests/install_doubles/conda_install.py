"""A conda executable double for `conda-lock install`, on top of tests/lock_doubles/fake_conda.py.

No conda can be installed here (offline-testing.md), so this stands in for the two commands
conda-lock's install runs:

    <exe> create --quiet --file EXPLICIT --yes --prefix P   unpack every @EXPLICIT package from the
                                                          local channel (md5 checked, as conda does)
                                                          and record it in P/conda-meta/
    <exe> run --prefix P CMD ...                          run CMD with P/bin first on PATH

Channel URLs map to local folders through FAKE_CONDA_CHANNELS, as for the lock double; every
other command goes to that double. Tests only: never part of the product.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.parse import unquote, urlparse

LOCK_DOUBLE = Path(__file__).resolve().parent.parent / "lock_doubles" / "fake_conda.py"


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _local(url: str) -> Path:
    parts = unquote(urlparse(url).path).split("/")
    channels = json.loads(os.environ.get("FAKE_CONDA_CHANNELS", "{}"))
    channel, subdir, filename = parts[-3], parts[-2], parts[-1]
    if channel not in channels:
        raise LookupError(f"channel {channel!r} is not reachable (known: {', '.join(channels) or 'none'})")
    return Path(channels[channel]) / subdir / filename


def create(argv: list[str]) -> int:
    prefix = Path(_option(argv, "--prefix"))
    lines = Path(_option(argv, "--file")).read_text().splitlines()
    urls = [line.strip() for line in lines if line.strip() and not line.startswith(("#", "@"))]
    (prefix / "conda-meta").mkdir(parents=True, exist_ok=True)
    for entry in urls:
        url, _, md5 = entry.partition("#")
        path = _local(url)
        data = path.read_bytes()
        if md5 and hashlib.md5(data).hexdigest() != md5:
            print(f"\nChecksumMismatchError: Conda detected a mismatch between the expected content and "
                  f"downloaded content\nfor url '{url}'.\n  download saved to: {path}\n"
                  f"  expected md5: {md5}\n  actual md5: {hashlib.md5(data).hexdigest()}\n", file=sys.stderr)
            return 1
        with tarfile.open(path) as archive:
            index = json.load(archive.extractfile("info/index.json"))
            members = [m for m in archive.getmembers() if not m.name.startswith("info/")]
            archive.extractall(prefix, members=members, filter="data")
        record = {**index, "fn": path.name, "url": url, "md5": md5, "files": [m.name for m in members if m.isfile()]}
        stem = path.name.removesuffix(".tar.bz2")
        (prefix / "conda-meta" / f"{stem}.json").write_text(json.dumps(record, indent=2))
    (prefix / "conda-meta" / "history").write_text("")
    return 0


def run(argv: list[str]) -> int:
    prefix = _option(argv, "--prefix")
    rest = argv[argv.index("--prefix") + 2:]
    env = {**os.environ, "PATH": f"{prefix}/bin{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.call(rest, env=env)


def main(argv: list[str]) -> int:
    if argv[:1] == ["create"] and "--file" in argv:
        return create(argv)
    if argv[:1] == ["run"]:
        return run(argv)
    os.execv(sys.executable, [sys.executable, str(LOCK_DOUBLE), *argv])
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
