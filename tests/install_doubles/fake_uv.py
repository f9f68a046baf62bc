"""A uv executable test double: `uv pip sync` misbehaves on purpose, everything else is real uv.

FAKE_UV_REAL   the real uv to hand over to
FAKE_UV_MODE   what `pip sync` does:
  die-half     unpack half of the locked wheels into the environment, then SIGKILL itself
  hang-half    unpack half, touch FAKE_UV_READY, then sleep until killed
  wait         touch FAKE_UV_READY, wait for FAKE_UV_RELEASE to exist, then run the real sync
  extra        run the real sync, then unpack one more wheel that the lock does not name
  (unset)      run the real sync
FAKE_UV_FILES  the folder holding the index's wheel files
FAKE_UV_LOG    a file that gets one line per call (the arguments)
"""

from __future__ import annotations

import glob
import os
import re
import signal
import sys
import time
import zipfile
from pathlib import Path


def _log(args: list[str]) -> None:
    path = os.environ.get("FAKE_UV_LOG")
    if path:
        with open(path, "a") as handle:
            handle.write(" ".join(args) + "\n")


def _real(args: list[str]) -> None:
    real = os.environ["FAKE_UV_REAL"]
    os.execv(real, [real, *args])


def _site(args: list[str]) -> Path:
    python = Path(args[args.index("--python") + 1])
    return Path(glob.glob(str(python.parent.parent / "lib" / "python3*" / "site-packages"))[0])


def _wheels(lock: Path) -> list[Path]:
    files = Path(os.environ["FAKE_UV_FILES"])
    found = []
    for name, version in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock.read_text(), re.M):
        stem = re.sub(r"[-_.]+", "_", name)
        found += sorted(files.glob(f"{stem}-{version}-*.whl"))[:1]
    return found


def _unpack(wheel: Path, site: Path, fraction: float = 1.0) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        for member in names[: max(1, int(len(names) * fraction))]:
            archive.extract(member, site)


def main(args: list[str]) -> None:
    _log(args)
    mode = os.environ.get("FAKE_UV_MODE", "")
    if args[:2] != ["pip", "sync"] or not mode:
        _real(args)
    lock = Path(args[-1])
    if mode in ("die-half", "hang-half"):
        site = _site(args)
        wheels = _wheels(lock)
        for wheel in wheels[: max(1, len(wheels) // 2)]:
            _unpack(wheel, site)
        if mode == "die-half":
            os.kill(os.getpid(), signal.SIGKILL)
        Path(os.environ["FAKE_UV_READY"]).touch()
        while True:
            time.sleep(1)
    if mode == "wait":
        Path(os.environ["FAKE_UV_READY"]).touch()
        while not Path(os.environ["FAKE_UV_RELEASE"]).exists():
            time.sleep(0.05)
        _real(args)
    if mode == "extra":
        import subprocess

        code = subprocess.call([os.environ["FAKE_UV_REAL"], *args])
        if code == 0:
            extra = sorted(Path(os.environ["FAKE_UV_FILES"]).glob("keras-*.whl"))[0]
            _unpack(extra, _site(args))
        sys.exit(code)
    _real(args)


if __name__ == "__main__":
    main(sys.argv[1:])
