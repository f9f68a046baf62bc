"""The environment-folder model (gpuready.envfolder): inputs, hashes, atomic writes, staleness.

No resolver runs here: the lock files are small hand-written stand-ins. The real uv and
conda-lock runs are in test_lock_pip.py and test_lock_conda.py.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from gpuready import files
from gpuready.lock import folder as folder_mod
from gpuready.model import inputs as inputs_mod
from gpuready.errors import EXIT_USAGE

from .lock_doubles.fixtures import GPU, OLD_DRIVER, plan_for
from .lock_doubles.handmade import pip_lock_files

def pip_files(inputs: inputs_mod.Inputs) -> dict[str, bytes]:
    return pip_lock_files(inputs)


@pytest.fixture
def gpu_inputs(matrix) -> inputs_mod.Inputs:
    return inputs_mod.inputs_from_plan(plan_for(matrix, python="3.11", **GPU))


@pytest.fixture
def locked(tmp_path, gpu_inputs) -> folder_mod.EnvFolder:
    folder = folder_mod.EnvFolder(tmp_path / "envs" / gpu_inputs.env)
    folder.write(gpu_inputs, pip_files(gpu_inputs))
    return folder


# --------------------------------------------------------------------------- inputs


def test_inputs_from_plan_hold_what_the_lock_needs(matrix, gpu_inputs):
    plan = plan_for(matrix, python="3.11", **GPU)
    assert gpu_inputs.env == plan.env == "tf2.21-cuda12.5-py3.11-pip"
    assert (gpu_inputs.tensorflow, gpu_inputs.python, gpu_inputs.platform) == ("2.21.0", "3.11", "linux-64")
    assert (gpu_inputs.device, gpu_inputs.cuda, gpu_inputs.cudnn, gpu_inputs.flavor) == ("gpu", "12.5", "9.24", "pip")  # 9.24: the autotuner known issue
    assert gpu_inputs.requirements == plan.requirements
    assert gpu_inputs.virtual_packages["__cuda"] == "12.5"
    assert gpu_inputs.virtual_packages["__glibc"] == "2.27"


def test_inputs_toml_round_trips_and_reads_as_a_person_would(gpu_inputs):
    text = gpu_inputs.to_toml()
    assert inputs_mod.Inputs.from_toml(text) == gpu_inputs
    data = tomllib.loads(text)
    assert data["tensorflow"] == "2.21.0" and data["cuda"] == "12.5" and data["flavor"] == "pip"
    assert data["virtual_packages"]["__cuda"] == "12.5" and data["virtual_packages"]["__glibc"] == "2.27"
    assert data["gpuready"]["version"]
    assert text.startswith("# Inputs of envs/tf2.21-cuda12.5-py3.11-pip")
    assert "invoke lock --env tf2.21-cuda12.5-py3.11-pip" in text


def test_cpu_inputs_leave_out_cuda(matrix):
    inputs = inputs_mod.inputs_from_plan(plan_for(matrix, driver="none", python="3.11"))
    data = tomllib.loads(inputs.to_toml())
    assert "cuda" not in data and "cudnn" not in data and "__cuda" not in data["virtual_packages"]
    assert inputs_mod.Inputs.from_toml(inputs.to_toml()) == inputs


def test_input_hash_ignores_gpuready_version_and_formatting(gpu_inputs):
    text = gpu_inputs.to_toml()
    other_version = text.replace('version = "', 'version = "99.', 1)
    reformatted = "\n".join(line.rstrip() for line in other_version.splitlines() if not line.startswith("#"))
    assert inputs_mod.Inputs.from_toml(reformatted).digest() == gpu_inputs.digest()
    assert gpu_inputs.model_copy(update=dict(tensorflow="2.21.1")).digest() != gpu_inputs.digest()
    assert gpu_inputs.model_copy(update=dict(virtual_packages={**gpu_inputs.virtual_packages, "__cuda": "12.8"})).digest() \
        != gpu_inputs.digest()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('python = "3.11"', 'python = "three"'), "python = 'three' is not a Python version"),
    (lambda t: t.replace('flavor = "pip"', 'flavor = "poetry"'), "flavor = 'poetry' is not one of pip, conda"),
    (lambda t: t.replace('tensorflow = "2.21.0"\n', ""), "missing key 'tensorflow'"),
    (lambda t: t.replace('"nvidia-nccl-cu12==2.27.7"', '"nvidia nccl !!"'), "is not a requirement"),
    (lambda t: "surprise = 1\n" + t, "unknown key 'surprise'"),
    (lambda t: t.replace("requirements = [", "requirements = 3\nx = ["), "unknown key 'x'"),
    (lambda t: t.replace("[virtual_packages]", "[virtual_packages]\ncuda = \"12\""), "virtual_packages must map"),
    (lambda t: t.replace("env = ", "env = = "), "not valid TOML"),
])
def test_malformed_inputs_are_usage_errors_naming_the_problem(tmp_path, gpu_inputs, edit, message):
    folder = folder_mod.EnvFolder(tmp_path / gpu_inputs.env)
    folder.path.mkdir()
    folder.inputs_path.write_text(edit(gpu_inputs.to_toml()))
    with pytest.raises(inputs_mod.InputsError) as caught:
        folder.inputs
    assert message in caught.value.message
    assert caught.value.exit_code == EXIT_USAGE
    assert f"envs/{gpu_inputs.env}/inputs.toml" in caught.value.message


def test_missing_inputs_and_a_renamed_folder(tmp_path, gpu_inputs):
    folder = folder_mod.EnvFolder(tmp_path / "elsewhere")
    with pytest.raises(inputs_mod.InputsError, match="inputs.toml is missing"):
        folder.inputs
    folder.path.mkdir()
    folder.inputs_path.write_text(gpu_inputs.to_toml())
    with pytest.raises(inputs_mod.InputsError, match="folder is named 'elsewhere'"):
        folder.inputs


# --------------------------------------------------------------------------- writing and checking


def test_write_records_hashes_and_reads_back_current(locked, gpu_inputs):
    assert sorted(p.name for p in locked.path.iterdir()) == [
        "inputs.toml", "lock-state.toml", "pylock.toml", "requirements.in", "requirements.txt"]
    state = locked.state()
    assert state["input_sha256"] == gpu_inputs.digest()
    assert state["files"]["requirements.txt"] == locked.lock_sha256()
    assert locked.lock_file.name == "requirements.txt"
    assert locked.is_current() == (True, "current")
    assert locked.locked_packages()["tensorflow"] == "2.21.0"
    assert locked.locked_packages()["nvidia-nccl-cu12"] == "2.27.7"


def test_rewriting_the_same_lock_changes_nothing(locked, gpu_inputs):
    mtimes = {p.name: p.stat().st_mtime_ns for p in locked.path.iterdir()}
    assert locked.write(gpu_inputs, pip_files(gpu_inputs)) == []
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in locked.path.iterdir()}
    assert not list(locked.path.glob(".*.tmp"))


def test_a_hand_edited_lock_is_stale(locked):
    text = locked.lock_file.read_text()
    locked.lock_file.write_text(text.replace("--hash=sha256:", "--hash=sha256:0", 1))
    current, reason = locked.is_current()
    assert not current and "requirements.txt was changed after locking" in reason


def test_edited_inputs_are_stale(locked):
    locked.inputs_path.write_text(locked.inputs_path.read_text().replace("2.21.0", "2.21.1"))
    current, reason = locked.is_current()
    assert not current and "inputs.toml changed since the lock" in reason


def test_malformed_or_missing_inputs_are_stale(locked):
    locked.inputs_path.write_text(locked.inputs_path.read_text().replace('device = "gpu"', 'device = "tpu"'))
    assert locked.is_current() == (False, f"envs/{locked.name}/inputs.toml: device = 'tpu' is not one of gpu, cpu")
    locked.inputs_path.unlink()
    current, reason = locked.is_current()
    assert not current and reason.startswith("no inputs.toml")


@pytest.mark.parametrize("damage, expected", [
    (lambda f: (f.path / "pylock.toml").unlink(), "pylock.toml is missing"),
    (lambda f: f.state_path.unlink(), "no readable lock-state.toml"),
    (lambda f: f.state_path.write_text("schema = 1\n"), "no readable lock-state.toml"),
    (lambda f: f.state_path.write_text(f.state_path.read_text().replace("schema = 1", "schema = 0")),
     "lock schema 0"),
    (lambda f: (f.path / "requirements.in").write_text("tensorflow\n"), "requirements.in was changed"),
])
def test_every_kind_of_damage_reads_as_stale(locked, damage, expected):
    damage(locked)
    current, reason = locked.is_current()
    assert not current and expected in reason


def test_a_lock_whose_pins_disagree_with_the_inputs_is_stale_even_with_matching_hashes(tmp_path, gpu_inputs):
    folder = folder_mod.EnvFolder(tmp_path / gpu_inputs.env)
    files = pip_lock_files(gpu_inputs, {"nvidia-nccl-cu12": "2.28.3"})
    folder.write(gpu_inputs, files)
    current, reason = folder.is_current()
    assert not current and "nvidia-nccl-cu12 2.28.3, but the inputs ask for nvidia-nccl-cu12==2.27.7" in reason


def test_a_failed_write_leaves_the_previous_files(locked, gpu_inputs, monkeypatch):
    before = {p.name: p.read_bytes() for p in locked.path.iterdir()}
    newer = gpu_inputs.model_copy(update=dict(requirements=gpu_inputs.requirements + ("keras==3.12.0",)))
    real_replace = os.replace

    def failing(src, dst):
        if Path(dst).name == "requirements.txt":
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", failing)
    with pytest.raises(files.WriteFailed, match="requirements.txt: no space left on device") as caught:
        locked.write(newer, pip_files(newer))
    assert caught.value.exit_code == 1
    monkeypatch.setattr(files.os, "replace", real_replace)
    assert not list(locked.path.glob(".*.tmp")), "the temporary file is removed"
    assert (locked.path / "requirements.txt").read_bytes() == before["requirements.txt"]
    assert locked.state_path.read_bytes() == before["lock-state.toml"], "lock-state is written last"
    current, reason = locked.is_current()
    assert not current, "inputs.toml was replaced, lock-state was not: the folder reads as stale, not current"


def test_conda_lock_packages_for_the_plan_platform(tmp_path, matrix):
    inputs = inputs_mod.inputs_from_plan(plan_for(matrix, python="3.11", tf="2.19", flavor="conda", **GPU))
    assert inputs.source == "conda-forge" and "tensorflow=2.19.1=cuda*" in inputs.conda_packages
    folder = folder_mod.EnvFolder(tmp_path / inputs.env)
    lock = """\
version: 1
metadata: {channels: [{url: conda-forge, used_env_vars: []}]}
package:
- {name: python, version: 3.11.11, manager: conda, platform: linux-64, url: "https://c.example/p.conda", hash: {md5: "1", sha256: "2"}}
- {name: pip, version: 25.0.1, manager: conda, platform: linux-64, url: "https://c.example/p.conda", hash: {md5: "1", sha256: "2"}}
- {name: cuda-version, version: "12.8", manager: conda, platform: linux-64, url: "https://c.example/p.conda", hash: {md5: "1", sha256: "2"}}
- {name: tensorflow, version: 2.19.1, manager: conda, platform: linux-64, url: "https://c.example/p.conda", hash: {md5: "1", sha256: "2"}}
- {name: tensorflow, version: 2.18.0, manager: conda, platform: osx-arm64, url: "https://c.example/p.conda", hash: {md5: "1", sha256: "2"}}
- {name: Keras, version: 3.12.0, manager: pip, platform: linux-64, url: "https://f.example/k.whl", hash: {sha256: "3"}}
"""
    folder.write(inputs, {"environment.yml": b"x\n", "virtual-packages.yml": b"y\n", "conda-lock.yml": lock.encode()})
    assert folder.lock_file.name == "conda-lock.yml"
    assert folder.locked_packages() == {"python": "3.11.11", "pip": "25.0.1", "cuda-version": "12.8",
                                        "tensorflow": "2.19.1", "keras": "3.12.0"}
    assert folder.is_current() == (True, "current")
    # The conda specs are checked too: python=3.11 takes 3.11.x, tensorflow=2.19.1=cuda* only 2.19.1.
    older = lock.replace("version: 2.19.1", "version: 2.19.0")
    folder.write(inputs, {"environment.yml": b"x\n", "virtual-packages.yml": b"y\n", "conda-lock.yml": older.encode()})
    assert folder.is_current() == (
        False, "conda-lock.yml has tensorflow 2.19.0, but the inputs ask for tensorflow=2.19.1=cuda*")
    other_python = lock.replace("version: 3.11.11", "version: 3.12.1")
    folder.write(inputs, {"environment.yml": b"x\n", "virtual-packages.yml": b"y\n",
                          "conda-lock.yml": other_python.encode()})
    assert folder.is_current() == (False, "conda-lock.yml has python 3.12.1, but the inputs ask for python=3.11")


def test_find_env_and_env_folders(tmp_path, matrix, locked):
    envs = locked.path.parent
    (envs / ".hidden").mkdir()
    (envs / "README.md").write_text("x")
    assert [f.name for f in folder_mod.env_folders(envs)] == [locked.name]
    assert folder_mod.env_folders(tmp_path / "absent") == []
    assert folder_mod.find_env(envs, plan_for(matrix, python="3.11", **GPU)).name == locked.name
    assert folder_mod.find_env(envs, plan_for(matrix, python="3.12", **GPU)) is None
    assert folder_mod.find_env(envs, plan_for(matrix, python="3.11", **OLD_DRIVER)) is None


def test_check_all_lists_stale_folders_with_reasons(tmp_path, locked):
    from gpuready.lock import check_folders
    from gpuready.lock.folder import env_folders

    def check_all(envs):
        return check_folders(env_folders(envs))

    envs = locked.path.parent
    assert check_all(envs) == [] and check_all(tmp_path / "absent") == []
    (envs / "half-made").mkdir()
    locked.lock_file.write_text("tensorflow==2.21.0\n")
    assert check_all(envs) == [
        ("half-made", "no inputs.toml: not an environment folder, or its inputs were removed"),
        (locked.name, "requirements.txt was changed after locking (its sha256 no longer matches lock-state.toml)"),
    ]
