"""Shared fixtures: the shipped matrix and a plain host to apply what-if facts to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpuready.model import matrix as matrix_mod
from gpuready.model.facts import HostFacts

ROOT = Path(__file__).resolve().parent.parent
MATRIX_DIR = ROOT / "matrix"


@pytest.fixture(scope="session")
def matrix() -> matrix_mod.Matrix:
    return matrix_mod.load(MATRIX_DIR)


@pytest.fixture
def linux_host() -> HostFacts:
    """A linux-64 host on Python 3.11 with a modern glibc and nothing detected."""
    return HostFacts(platform="linux-64", python="3.11", glibc="2.36")


@pytest.fixture
def small_disk(tmp_path: Path):
    """Mount a real tmpfs of SIZE_MB under tmp_path: the only way to fill a real disk here (needs root)."""
    mounted: list[Path] = []

    def mount(size_mb: int) -> Path:
        folder = tmp_path / f"small-{len(mounted)}"
        folder.mkdir()
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
                                               capture_output=True).returncode != 0:
            pytest.skip("mounting a tmpfs needs root")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_up(folder: Path) -> None:
    """Write zeros under FOLDER until its filesystem refuses more."""
    try:
        with open(folder / "filler", "wb") as out:
            while True:
                out.write(b"\0" * 4096)
                out.flush()
    except OSError:  # full: that is the point
        pass


def run_cli(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `invoke ARGS` as a user would, from the checkout, with this interpreter's invoke."""
    invoke = Path(sys.executable).with_name("invoke")
    return subprocess.run([str(invoke), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def promtool() -> str | None:
    """Prometheus's own checker: on PATH, or where scripts/test.sh unpacks Debian's package."""
    import shutil

    found = shutil.which("promtool")
    unpacked = ROOT / ".venv" / "opt" / "prometheus" / "usr" / "bin" / "promtool"
    return found or (str(unpacked) if unpacked.is_file() else None)
