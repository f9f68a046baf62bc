"""`invoke install`, conda flavor: the real conda-lock install against a local channel.

No conda executable can be had here, so conda-lock drives a double (tests/install_doubles/
conda_install.py) that unpacks the channel's tiny packages, checking their md5 as conda does.
A conda prefix cannot be moved, so the environment is built in its final directory beside the
prefix and the prefix is a symbolic link, swapped atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpuready.env import install as install_mod
from gpuready import lock as locking
from gpuready.config import Settings
from gpuready.env.inventory import compare, installed_packages
from gpuready.errors import WorkFailed
from gpuready.env.layout import read_install_record
from tests.install_doubles import envs

from .lock_doubles.fixtures import (  # noqa: F401
    GPU, conda_channel, lock_env, plan_for, served_index, uv_cache, wheel_index)


@pytest.fixture
def conda(tmp_path, matrix, served_index, lock_env):
    exe = envs.conda_double(tmp_path / "conda-bin")
    settings = Settings(index_url=served_index, index_timeout=10, conda_exe=str(exe), conda_bootstrap=False,
                        prefix_root=str(tmp_path / "prefixes"))
    plan = plan_for(matrix, python="3.11", tf="2.19", flavor="conda", **GPU)
    folder = locking.lock_plan(plan, tmp_path / "envs", settings)
    return folder, settings


def _tree(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_conda_install_and_replace(conda):
    folder, settings = conda
    result = install_mod.install(folder, settings=settings)
    prefix = result.prefix
    assert prefix.is_symlink() and Path(os.path.realpath(prefix)).name.startswith(f".{prefix.name}.env-")
    assert result.packages["tensorflow"] == "2.19.1"
    assert compare(result.packages, installed_packages(prefix, "conda")) == []
    record = read_install_record(prefix)
    assert record.lock_file == "conda-lock.yml" and record.flavor == "conda"
    first_target = os.path.realpath(prefix)

    again = install_mod.install(folder, settings=settings)
    assert again.replaced and os.path.realpath(prefix) != first_target
    assert not Path(first_target).exists()
    names = _tree(prefix.parent)
    assert names == sorted([prefix.name, f".{prefix.name}.lock", Path(os.path.realpath(prefix)).name])


def test_corrupt_conda_package_leaves_the_environment_as_it_was(conda, conda_channel):
    folder, settings = conda
    prefix = install_mod.install(folder, settings=settings).prefix
    before = envs.snapshot(prefix)
    target = os.path.realpath(prefix)
    package = next((conda_channel / "linux-64").glob("tensorflow-2.19.1-cuda*.tar.bz2"))
    original = package.read_bytes()
    package.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        with pytest.raises(WorkFailed) as error:
            install_mod.install(folder, settings=settings)
    finally:
        package.write_bytes(original)
    assert f"hash mismatch for {package.name}: the lock has md5:" in error.value.message
    assert "Traceback" not in error.value.message
    assert os.path.realpath(prefix) == target and envs.snapshot(prefix) == before
    assert _tree(prefix.parent) == sorted([prefix.name, f".{prefix.name}.lock", Path(target).name])
