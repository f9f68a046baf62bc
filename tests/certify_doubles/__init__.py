"""Test doubles for certification: Python environments made on the spot, and a check process
that misbehaves on purpose (hangs, is killed, crashes, prints garbage), which a real TensorFlow
cannot be made to do here. Tests only: nothing here is part of the product."""

from __future__ import annotations

import json
import sysconfig
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
MISBEHAVE = HERE / "misbehave.py"


def bare_env(path: Path) -> Path:
    """A real, empty virtual environment (no pip, no TensorFlow) at `path`."""
    venv.create(path, with_pip=False, symlinks=True, clear=True)
    return path


def site_packages(prefix: Path) -> Path:
    relative = Path(sysconfig.get_path("purelib")).relative_to(sysconfig.get_path("data"))
    return prefix / relative


def add_distribution(prefix: Path, name: str, version: str) -> None:
    """Make `name==version` visible to the environment's importlib.metadata (metadata only)."""
    info = site_packages(prefix) / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                                   encoding="utf-8")


def add_fake_tensorflow(prefix: Path, build_info: str) -> Path:
    """A `tensorflow` package folder holding only python/platform/build_info.py: enough for the
    CUDA library probe, which reads it as text and never imports TensorFlow."""
    root = site_packages(prefix) / "tensorflow"
    platform = root / "python" / "platform"
    platform.mkdir(parents=True, exist_ok=True)
    (root / "__init__.py").write_text("raise ImportError('a stand-in, not TensorFlow')\n", encoding="utf-8")
    (platform / "build_info.py").write_text(f"import collections\n\n{build_info}\n", encoding="utf-8")
    return root


def write_install_record(prefix: Path, *, packages: dict[str, str], plan: dict | None = None,
                         lock_text: str = "tensorflow-cpu==2.21.0\n", env: str = "tf2.21-cpu-py3.11-pip",
                         full_plan: dict | None = None) -> Path:
    """The record `invoke install` leaves in <prefix>/gpuready/ (install.json and the lock copy)."""
    import hashlib

    meta = prefix / "gpuready"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "requirements.txt").write_text(lock_text, encoding="utf-8")
    record = {"env": env, "flavor": "pip", "prefix": str(prefix),
              "plan": plan or {"env": env, "device": "cpu", "tensorflow": "2.21.0"},
              "lock_file": "requirements.txt",
              "lock_sha256": hashlib.sha256(lock_text.encode()).hexdigest(), "packages": packages}
    if full_plan is not None:
        record["full_plan"] = full_plan
    path = meta / "install.json"
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return path
