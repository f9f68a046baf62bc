"""A local conda channel: tiny `.tar.bz2` packages with conda-forge's names, indexed by
py-rattler into `noarch/repodata.json` and `linux-64/repodata.json`.

TensorFlow 2.19.1 comes in a CUDA build (depends on `__cuda` and `cuda-version`, the
higher build number, as on conda-forge) and a CPU build, so the solver picks the CUDA
build exactly when the virtual packages state a CUDA driver.
"""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

PYTHONS = {"3.10": "3.10.16", "3.11": "3.11.11", "3.12": "3.12.9", "3.13": "3.13.2"}


@dataclass(frozen=True)
class Pkg:
    name: str
    version: str
    build: str
    build_number: int
    subdir: str  # "linux-64" | "noarch"
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    noarch: str | None = None

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.tar.bz2"


def default_packages() -> list[Pkg]:
    pkgs = [
        Pkg("pip", "25.0.1", "pyh8b19718_0", 0, "noarch", ("python >=3.9",), noarch="python"),
        Pkg("cuda-version", "12.8", "h5d125a7_3", 3, "noarch", (),
            ("__cuda >=12", "cudatoolkit 12.8|12.8.*"), noarch="generic"),
        Pkg("cuda-version", "12.6", "h7480c83_3", 3, "noarch", (),
            ("__cuda >=12", "cudatoolkit 12.6|12.6.*"), noarch="generic"),
    ]
    for short, full in PYTHONS.items():
        nodot = short.replace(".", "")
        pin = f"python >={short},<{short[:2]}{int(short[2:]) + 1}.0a0"
        pkgs += [
            Pkg("python", full, "h9e4cc4f_0_cpython", 0, "linux-64", ("__glibc >=2.17,<3.0.a0",)),
            Pkg("tensorflow", "2.19.1", f"cuda128py{nodot}h8b3c4f5_250", 250, "linux-64",
                (pin, "__cuda", "cuda-version >=12.8,<13", "__glibc >=2.17,<3.0.a0")),
            Pkg("tensorflow", "2.19.1", f"cpu_py{nodot}h2f0d1a4_50", 50, "linux-64",
                (pin, "__glibc >=2.17,<3.0.a0")),
        ]
    return pkgs


def _tar_bz2(pkg: Pkg) -> bytes:
    index = {
        "name": pkg.name, "version": pkg.version, "build": pkg.build,
        "build_number": pkg.build_number, "depends": list(pkg.depends),
        "constrains": list(pkg.constrains), "subdir": pkg.subdir, "license": "Apache-2.0",
        "timestamp": 1735689600000,
    }
    if pkg.noarch:
        index["noarch"] = pkg.noarch
    if pkg.subdir != "noarch":
        index.update(platform="linux", arch="x86_64")
    members = {
        "info/index.json": json.dumps(index, indent=2, sort_keys=True).encode(),
        "info/paths.json": json.dumps({"paths": [], "paths_version": 1}).encode(),
        "info/files": b"",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as archive:
        for path, data in members.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 1735689600, 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_channel(root: Path, packages: list[Pkg] | None = None) -> Path:
    """Write the packages under `root/<subdir>/` and index them; return `root`."""
    packages = default_packages() if packages is None else packages
    for subdir in ("noarch", "linux-64"):
        (root / subdir).mkdir(parents=True, exist_ok=True)
    for pkg in packages:
        (root / pkg.subdir / pkg.file_name).write_bytes(_tar_bz2(pkg))
    from rattler.index import index_fs

    asyncio.run(index_fs(root, write_zst=False, write_shards=False, force=True))
    return root
