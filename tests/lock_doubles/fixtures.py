"""pytest fixtures for the lock tests: import them into a test module to use them.

    from .lock_doubles.fixtures import wheel_index, served_index, conda_channel, conda_double, lock_env, plan_for  # noqa: F401
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from gpuready.model.flags import apply_overrides, constraints_from_flags
from gpuready.model.facts import HostFacts
from gpuready.model.plan import Plan
from gpuready.model.planner import make_plan

from .channel import build_channel
from .conda import channel_env, install_double
from .wheels import build_index, serve


@pytest.fixture(scope="session")
def wheel_index(tmp_path_factory: pytest.TempPathFactory) -> str:
    """file:// URL of a local simple index of tiny wheels (uv reads it directly)."""
    simple = build_index(tmp_path_factory.mktemp("wheel-index"))
    return simple.as_uri()


@pytest.fixture(scope="session")
def served_index(wheel_index: str) -> Iterator[str]:
    """The same index over HTTP on 127.0.0.1, for conda-lock's pip solver."""
    root = Path(wheel_index.removeprefix("file://")).parent
    with serve(root) as base:
        yield f"{base}/simple"


@pytest.fixture(scope="session")
def conda_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_channel(tmp_path_factory.mktemp("channel") / "conda-forge")


@pytest.fixture(scope="session")
def conda_double(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_double(tmp_path_factory.mktemp("conda-bin"))


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture
def lock_env(monkeypatch: pytest.MonkeyPatch, uv_cache: Path, conda_channel: Path,
             tmp_path: Path) -> dict[str, str]:
    """An environment with no user uv config, a private uv cache, the double's channel, and a
    HOME with nothing in it (no ~/.invoke.yaml, no ensureconda folder). Returns the changes."""
    for key in list(os.environ):
        if key.startswith(("UV_", "CONDA_", "MAMBA_", "INVOKE_")) or key in ("PIP_INDEX_URL",):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    changes = {"UV_CACHE_DIR": str(uv_cache), "HOME": str(home),
               "XDG_DATA_HOME": str(home / ".local" / "share"),
               "XDG_CONFIG_HOME": str(home / ".config"), **channel_env({"conda-forge": conda_channel})}
    for key, value in changes.items():
        monkeypatch.setenv(key, value)
    return changes


def plan_for(matrix: Any, *, tf: str | None = None, flavor: str | None = None,
             base: HostFacts | None = None, **flags: Any) -> Plan:
    """What `invoke plan FLAGS` plans, on a plain linux-64 host instead of the detected one."""
    host = apply_overrides(base or HostFacts(platform="linux-64", python="3.11", glibc="2.36"),
                           matrix, **flags)
    return make_plan(host, matrix, constraints_from_flags(tf, flavor, flags.get("python")))


def tree(path: Path) -> dict[str, bytes]:
    """Every file under `path` and its bytes, to compare a folder before and after."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def tree_sans_cutoff(path: Path) -> dict[str, bytes]:
    """`tree`, with lock-state.toml's cut-off line left out: two new folders locked seconds apart
    take different cut-offs (now) and must otherwise be byte for byte the same."""
    files = tree(path)
    state = files.get("lock-state.toml")
    if state is not None:
        files["lock-state.toml"] = b"".join(line for line in state.splitlines(keepends=True)
                                            if not line.startswith(b"exclude_newer = "))
    return files


GPU = {"driver": "560.35.03", "gpu": "8.0"}
OLD_DRIVER = {"driver": "470.82.01", "gpu": "7.5"}
