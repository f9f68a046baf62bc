"""An installed environment's prefix, and what gpuready keeps inside it.

One place for the layout that install writes and certify / setup read:

    <prefix>/                     the virtual environment or conda environment
    <prefix>/gpuready/install.json   what was installed: env name, plan, lock sha256
    <prefix>/gpuready/<lock file>    a copy of the lock it was built from
    <prefix>/gpuready/certificate.json  the last certificate
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import platformdirs

META_DIR = "gpuready"
INSTALL_RECORD = "install.json"
CERTIFICATE = "certificate.json"


def default_root(configured: str | None = None) -> Path:
    """Where environments are installed by default (configurable as gpuready.prefix_root)."""
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("gpuready")) / "envs"


def default_prefix(env: str, configured_root: str | None = None) -> Path:
    return default_root(configured_root) / env


def meta_dir(prefix: str | os.PathLike[str]) -> Path:
    return Path(prefix) / META_DIR


def certificate_path(prefix: str | os.PathLike[str]) -> Path:
    return meta_dir(prefix) / CERTIFICATE


def install_record_path(prefix: str | os.PathLike[str]) -> Path:
    return meta_dir(prefix) / INSTALL_RECORD


def python_of(prefix: str | os.PathLike[str]) -> Path | None:
    """The interpreter of a venv or conda prefix, or None when there is none."""
    root = Path(prefix)
    candidates = (
        [root / "python.exe", root / "Scripts" / "python.exe"] if sys.platform == "win32"
        else [root / "bin" / "python", root / "bin" / "python3"]
    )
    return next((c for c in candidates if c.exists()), None)


def read_install_record(prefix: str | os.PathLike[str]) -> dict[str, Any] | None:
    path = install_record_path(prefix)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
