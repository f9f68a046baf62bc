"""Put the conda double on disk as an executable named `conda`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def install_double(bin_dir: Path, name: str = "conda") -> Path:
    """Write `bin_dir/<name>`: a shell wrapper running fake_conda.py with this interpreter."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / name
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "fake_conda.py"}" "$@"\n')
    exe.chmod(0o755)
    return exe


def channel_env(channels: dict[str, Path]) -> dict[str, str]:
    """The environment variable that tells the double where named channels live."""
    return {"FAKE_CONDA_CHANNELS": json.dumps({k: os.fspath(v) for k, v in channels.items()})}
