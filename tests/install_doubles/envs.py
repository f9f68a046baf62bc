"""Env folders for install/setup tests, locked by the real uv against a local wheel index."""

from __future__ import annotations

from gpuready.config import Settings

import os
import sys
from pathlib import Path

from gpuready.lock import uv as uv_lock
from gpuready.lock.folder import EnvFolder
from gpuready.model.inputs import Inputs, inputs_from_plan
from tests.lock_doubles.wheels import Dist, build_index

HERE = Path(__file__).resolve().parent


def small_dists() -> list[Dist]:
    """Tiny pure wheels: a 'TensorFlow' and its two dependencies (numpy in two versions)."""
    return [
        Dist("absl-py", "2.3.1", ("py3-none-any",)),
        Dist("numpy", "2.3.4", ("py3-none-any",)),
        Dist("numpy", "2.3.5", ("py3-none-any",)),
        Dist("keras", "3.12.0", ("py3-none-any",)),  # in the index, in no lock: the 'extra' double
        Dist("tensorflow-cpu", "2.21.0", ("py3-none-any",), ("absl-py", "numpy")),
    ]


def index(root: Path, dists: list[Dist] | None = None) -> Path:
    """Build the index under root (default: small_dists()); return its simple/ folder."""
    return build_index(root, dists if dists is not None else small_dists())


def cpu_inputs(env: str = "tf2.21-cpu-py3.11-pip", requirements: tuple[str, ...] = ("tensorflow-cpu==2.21.0",),
               python: str | None = None) -> Inputs:
    python = python or "%d.%d" % sys.version_info[:2]
    return Inputs(env=env, device="cpu", tensorflow="2.21.0", distribution="tensorflow-cpu", source="pypi",
                  python=python, platform="linux-64", flavor="pip", cuda=None, cudnn=None, build_cuda=None,
                  glibc=None, and_cuda="none", requirements=requirements)


def lock(envs_dir: Path, inputs: Inputs, simple: Path, work: Path) -> EnvFolder:
    """Lock `inputs` with the real uv against the local index into envs_dir/<env>."""
    work.mkdir(parents=True, exist_ok=True)
    files = uv_lock.lock(inputs, work, Settings(index_url=simple.as_uri(), index_timeout=30))
    folder = EnvFolder(envs_dir / inputs.env)
    folder.write(inputs, files)
    return folder


def lock_plan(envs_dir: Path, plan, simple: Path, work: Path) -> EnvFolder:
    return lock(envs_dir, inputs_from_plan(plan), simple, work)


def fake_uv(bin_dir: Path, real_uv: str) -> Path:
    """Write bin_dir/uv: runs fake_uv.py with this interpreter (FAKE_UV_REAL set by the caller)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "uv"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "fake_uv.py"}" "$@"\n')
    exe.chmod(0o755)
    return exe


def snapshot(prefix: Path) -> dict[str, bytes]:
    """Every regular file under prefix with its bytes (symlinks by target), for 'exactly as it was'."""
    found = {}
    for path in sorted(prefix.rglob("*")):
        rel = str(path.relative_to(prefix))
        if "__pycache__" in rel:
            continue
        if path.is_symlink():
            found[rel] = ("-> " + os.readlink(path)).encode()
        elif path.is_file():
            found[rel] = path.read_bytes()
    return found


def conda_double(bin_dir: Path) -> Path:
    """Write bin_dir/conda: the install double (conda_install.py), which hands the rest to the lock double."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "conda"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "conda_install.py"}" "$@"\n')
    exe.chmod(0o755)
    return exe
