"""The conda flavor: the real conda-lock, driven end to end against a local channel through a
conda executable double built on py-rattler (tests/lock_doubles/fake_conda.py), with the
pip: section resolved from the local wheel index served on 127.0.0.1."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
import yaml

from gpuready.lock import folder as folder_mod
from gpuready.model import inputs as inputs_mod
from gpuready import errors
from gpuready.lock import index as index_mod
from gpuready import tools
from gpuready import lock as locking
from gpuready.config import Settings

from .lock_doubles.wheels import closed_port_url

from .lock_doubles.fixtures import (  # noqa: F401
    GPU, conda_channel, conda_double, lock_env, plan_for, served_index, tree, uv_cache, wheel_index)


def settings(index: str, exe: Path | None, **more) -> Settings:
    return Settings(**{"index_url": index, "index_timeout": 10, "conda_exe": str(exe) if exe else None,
                       "conda_bootstrap": False, **more})


def lock_yaml(folder: folder_mod.EnvFolder) -> list[dict]:
    return yaml.safe_load(folder.lock_file.read_text())["package"]


def test_conda_forge_cuda_build_when_the_virtual_packages_state_cuda(tmp_path, matrix, served_index,
                                                                     conda_double, lock_env):
    plan = plan_for(matrix, python="3.11", tf="2.19", flavor="conda", **GPU)
    assert plan.source == "conda-forge" and plan.virtual_packages["__cuda"] == "12.8"
    folder = locking.lock_plan(plan, tmp_path, settings(served_index, conda_double))
    assert folder.name == "tf2.19-cuda12.8-py3.11-conda"
    packages = {p["name"]: p for p in lock_yaml(folder)}
    assert set(packages) == {"python", "pip", "tensorflow", "cuda-version"}
    tf = packages["tensorflow"]
    assert tf["url"].endswith("/linux-64/tensorflow-2.19.1-cuda128py311h8b3c4f5_250.tar.bz2")
    assert tf["manager"] == "conda" and len(tf["hash"]["md5"]) == 32 and len(tf["hash"]["sha256"]) == 64
    assert packages["python"]["version"] == "3.11.11"
    env_yml = yaml.safe_load((folder.path / "environment.yml").read_text())
    assert env_yml["channels"] == ["conda-forge"]
    assert env_yml["dependencies"] == ["python=3.11", "pip", "tensorflow=2.19.1=cuda*", "cuda-version=12.8"]
    assert env_yml["allow-pypi-requests"] is False and env_yml["pip-repositories"] == [served_index]
    virtual = yaml.safe_load((folder.path / "virtual-packages.yml").read_text())
    assert virtual == {"subdirs": {"linux-64": {"packages": {
        "__unix": "0", "__linux": "4.18", "__glibc": "2.17", "__cuda": "12.8"}}}}
    assert folder.is_current() == (True, "current")


def test_cpu_plan_takes_the_cpu_build(tmp_path, matrix, served_index, conda_double, lock_env):
    plan = plan_for(matrix, driver="none", python="3.11", tf="2.19", flavor="conda")
    folder = locking.lock_plan(plan, tmp_path, settings(served_index, conda_double))
    tf = next(p for p in lock_yaml(folder) if p["name"] == "tensorflow")
    assert "cpu_py311" in tf["url"]


@pytest.mark.parametrize("cuda, build", [("12.8", "cuda128py312"), (None, "cpu_py312")])
def test_the_solver_picks_the_build_the_virtual_packages_allow(tmp_path, matrix, served_index, conda_double,
                                                                lock_env, cuda, build):
    """A spec without a build string: the CUDA build (higher build number) wins exactly when
    virtual-packages.yml states __cuda."""
    plan = plan_for(matrix, python="3.12", tf="2.19", flavor="conda", **GPU)
    base = inputs_mod.inputs_from_plan(plan)
    virtual = {k: v for k, v in base.virtual_packages.items() if k != "__cuda"}
    if cuda:
        virtual["__cuda"] = cuda
    inputs = base.model_copy(update=dict(conda_packages=("python=3.12", "pip", "tensorflow=2.19.1"), virtual_packages=virtual))
    folder = locking.lock_inputs(tmp_path / base.env, inputs, settings(served_index, conda_double))
    tf = next(p for p in lock_yaml(folder) if p["name"] == "tensorflow")
    assert build in tf["url"]


def test_pypi_tensorflow_in_the_pip_section_with_the_pip_flavor_pins(tmp_path, matrix, served_index,
                                                                      conda_double, lock_env):
    plan = plan_for(matrix, python="3.11", flavor="conda", **GPU)
    assert (plan.source, plan.tensorflow) == ("pypi", "2.21.0")
    folder = locking.lock_plan(plan, tmp_path, settings(served_index, conda_double))
    packages = lock_yaml(folder)
    conda = {p["name"] for p in packages if p["manager"] == "conda"}
    pip = {p["name"]: p for p in packages if p["manager"] == "pip"}
    assert conda == {"python", "pip"}, "Python and pip come from conda"
    assert pip["tensorflow"]["version"] == "2.21.0"
    assert pip["tensorflow"]["url"].endswith("tensorflow-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl"), \
        "the manylinux_2_27 wheel is chosen (conda-lock alone knows only 2_17/2_18/2_24/2_28)"
    assert pip["nvidia-cudnn-cu12"]["version"] == "9.24.0.43" and pip["nvidia-nccl-cu12"]["version"] == "2.27.7"
    assert all(len(p["hash"]["sha256"]) == 64 for p in pip.values())
    env_yml = yaml.safe_load((folder.path / "environment.yml").read_text())
    assert env_yml["dependencies"][-1] == {"pip": list(plan.requirements)}
    assert folder.is_current() == (True, "current")


def test_same_inputs_same_bytes(tmp_path, matrix, served_index, conda_double, lock_env):
    plan = plan_for(matrix, python="3.11", tf="2.19", flavor="conda", **GPU)
    first = locking.lock_plan(plan, tmp_path / "a", settings(served_index, conda_double))
    second = locking.lock_plan(plan, tmp_path / "b", settings(served_index, conda_double))
    assert tree(first.path) == tree(second.path)


def test_unsatisfiable_keeps_the_previous_lock(tmp_path, matrix, served_index, conda_double, lock_env):
    plan = plan_for(matrix, python="3.11", tf="2.19", flavor="conda", **GPU)
    folder = locking.lock_plan(plan, tmp_path, settings(served_index, conda_double))
    before = tree(folder.path)
    no_cuda = folder.inputs.model_copy(update=dict(virtual_packages={k: v for k, v in folder.inputs.virtual_packages.items()
                                                        if k != "__cuda"}))
    with pytest.raises(index_mod.ResolutionFailed) as caught:
        locking.lock_inputs(folder.path, no_cuda, settings(served_index, conda_double))
    message = caught.value.message
    assert "could not solve tf2.19-cuda12.8-py3.11-conda on conda-forge for linux-64" in message
    assert "__cuda *, for which no candidates were found" in message and "Traceback" not in message
    assert "Nothing was written" in message
    assert tree(folder.path) == before


def test_unreachable_pip_index_is_one_clear_error(tmp_path, matrix, conda_double, lock_env):
    url = closed_port_url()
    plan = plan_for(matrix, python="3.11", flavor="conda", **GPU)
    start = time.monotonic()
    with pytest.raises(index_mod.IndexUnreachable) as caught:
        locking.lock_plan(plan, tmp_path / "envs", settings(url, conda_double, index_timeout=2))
    assert time.monotonic() - start < 60
    assert f"the package index {url} could not be reached" in caught.value.message
    assert "Connection refused" in caught.value.message and "Traceback" not in caught.value.message
    assert not (tmp_path / "envs").exists()


# --------------------------------------------------------------------------- finding conda


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_find_conda_order(tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "_ensureconda_dir", lambda: tmp_path / "ensureconda")
    path = os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")])
    env = {"PATH": path}
    _exe(tmp_path / "b" / "conda")
    assert tools.find_conda(Settings(), env) == tools.CondaExe(str(tmp_path / "b" / "conda"), "conda on PATH")
    _exe(tmp_path / "a" / "micromamba")
    found = tools.find_conda(Settings(), env)
    assert (found.how, found.kind) == ("micromamba on PATH", "micromamba")
    _exe(tmp_path / "b" / "mamba")
    assert tools.find_conda(Settings(), env).how == "mamba on PATH"
    named = _exe(tmp_path / "elsewhere" / "my-conda")
    assert tools.find_conda(Settings(conda_exe=str(named)), env).how == f"gpuready.conda_exe = {named}"
    assert tools.find_conda(Settings(conda_exe="conda"), env).path == str(tmp_path / "b" / "conda")


def test_find_conda_off_path(tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "_ensureconda_dir", lambda: tmp_path / "ensureconda")
    activated = _exe(tmp_path / "miniforge" / "bin" / "conda")
    assert tools.find_conda(Settings(), {"PATH": "", "CONDA_EXE": str(activated)}).how == "$CONDA_EXE"
    bootstrapped = _exe(tmp_path / "ensureconda" / "micromamba")
    found = tools.find_conda(Settings(), {"PATH": ""})
    assert found.path == str(bootstrapped) and "conda-lock's bootstrap folder" in found.how


def test_missing_conda_names_everything_it_looked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "_ensureconda_dir", lambda: tmp_path / "ensureconda")
    with pytest.raises(tools.CondaNotFound) as caught:
        tools.find_conda(Settings(conda_bootstrap=False), {"PATH": str(tmp_path)})
    message = caught.value.message
    for looked in ("mamba, micromamba, conda on PATH", "$CONDA_EXE", "MAMBA_EXE unset",
                   str(tmp_path / "ensureconda"), "gpuready.conda_bootstrap is false", "gpuready.conda_exe"):
        assert looked in message
    with pytest.raises(tools.CondaNotFound, match="'/no/such/conda' is neither an executable"):
        tools.find_conda(Settings(conda_exe="/no/such/conda"), {"PATH": ""})


def test_the_bootstrap_download_is_bounded(tmp_path, monkeypatch):
    """ensureconda's download is given the index timeout; a hung one is cut off, not waited on."""
    slow = tmp_path / "slow-python"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setattr(tools.sys, "executable", str(slow))
    monkeypatch.setattr(tools, "_ensureconda_dir", lambda: tmp_path / "ensureconda")
    with pytest.raises(tools.CondaNotFound, match=r"bootstrap download of micromamba \(no answer within 1 s\)"):
        tools.find_conda(Settings(index_timeout=1), {"PATH": ""})


def test_missing_conda_writes_nothing(tmp_path, matrix, served_index, lock_env, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    plan = plan_for(matrix, python="3.11", tf="2.19", flavor="conda", **GPU)
    with pytest.raises(tools.CondaNotFound, match="no conda executable"):
        locking.lock_plan(plan, tmp_path / "envs", settings(served_index, None))
    assert not (tmp_path / "envs").exists()


def test_credentials_in_the_index_url_are_not_written_into_environment_yml(tmp_path, matrix, conda_double,
                                                                          lock_env):
    plan = plan_for(matrix, python="3.11", tf="2.19", flavor="conda", **GPU)
    with pytest.raises(errors.UsageError, match="carries credentials"):
        locking.lock_plan(plan, tmp_path / "envs", settings("https://me:secret@mirror.example/simple",
                                                            conda_double))
    assert not (tmp_path / "envs").exists()
