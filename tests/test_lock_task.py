"""`invoke lock` as a user runs it: plan flags, --env, --all, --check, and bad input.

Runs the real `invoke` from a scratch working directory (so envs/ is the scratch one), with
the index and the conda executable given through Invoke's configuration (INVOKE_GPUREADY_*
variables and ~/.invoke.yaml), as a user behind a mirror would.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gpuready.model.facts import HostFacts
from gpuready.model.flags import apply_overrides, constraints_from_flags
from gpuready.model.planner import make_plan
from gpuready.lock.folder import EnvFolder, env_folders, find_env

from .conftest import ROOT, run_cli
from .lock_doubles.fixtures import (  # noqa: F401
    conda_channel, conda_double, lock_env, served_index, tree, uv_cache, wheel_index)
from .lock_doubles.wheels import closed_port_url

GPU_311 = ["--driver", "560.35.03", "--gpu", "8.0", "--python", "3.11", "--platform", "linux-64"]
CPU_311 = ["--driver", "none", "--python", "3.11", "--platform", "linux-64"]


def lock(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180):
    return run_cli("-r", str(ROOT), "lock", *args, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def work(tmp_path, wheel_index, lock_env) -> tuple[Path, dict[str, str]]:
    """A scratch working directory and the environment that points gpuready at the local index."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    return cwd, {"INVOKE_GPUREADY_INDEX_URL": wheel_index, "INVOKE_GPUREADY_INDEX_TIMEOUT": "10"}


# --------------------------------------------------------------------------- the committed default set

# The committed default set (envs/README.md): the plan flags of each folder. GPU plans for the
# newest TensorFlow on every Python it supports, the newest release that runs on drivers older
# than 525 (CUDA 11.8), and the CPU plan; all pip, linux-64.
DEFAULT_SET: tuple[dict[str, str], ...] = (
    *({"driver": "560.35.03", "gpu": "8.0", "python": py, "platform": "linux-64"}
      for py in ("3.10", "3.11", "3.12", "3.13")),
    {"driver": "470.82.01", "gpu": "7.5", "python": "3.11", "platform": "linux-64"},
    {"driver": "none", "python": "3.11", "platform": "linux-64"},
)


def default_set_command(flags: dict[str, str]) -> str:
    return "invoke lock " + " ".join(f"--{k} {v}" for k, v in flags.items())


def default_set_plans(matrix) -> list:
    """The default set's plans, made as `invoke lock FLAGS` makes them, on a neutral host
    (linux-64, glibc unknown) instead of the detected one."""
    base = HostFacts(platform="linux-64", python="3.11")
    return [make_plan(apply_overrides(base, matrix, **flags), matrix, constraints_from_flags(None, None, flags["python"]))
            for flags in DEFAULT_SET]



def test_check_on_the_committed_envs_is_current_offline_in_under_two_seconds():
    best = None
    for _ in range(2):
        start = time.monotonic()
        result = run_cli("lock", "--check", cwd=ROOT, env={"INVOKE_GPUREADY_INDEX_URL": closed_port_url()})
        elapsed = time.monotonic() - start
        best = elapsed if best is None else min(best, elapsed)
        assert result.returncode == 0, result.stdout + result.stderr
    assert best < 2.0, f"invoke lock --check took {best:.2f} s"
    for folder in env_folders(ROOT / "envs"):
        assert f"current  envs/{folder.name}" in result.stdout


def test_the_committed_envs_are_the_default_set(matrix):
    plans = default_set_plans(matrix)
    # The pip folders are the default set; conda folders come from the refresh workflow, on a
    # machine that reaches conda-forge.
    assert {f.name for f in env_folders(ROOT / "envs") if f.inputs.flavor == "pip"} == {p.env for p in plans}
    for plan in plans:
        folder = find_env(ROOT / "envs", plan)
        assert folder is not None, f"envs/{plan.env} does not hold the inputs of today's plan"
        assert folder.is_current() == (True, "current")
        assert folder.inputs.flavor == "pip" and folder.inputs.platform == "linux-64"
    readme = (ROOT / "envs" / "README.md").read_text()
    for flags in DEFAULT_SET:
        assert default_set_command(flags) in readme


# --------------------------------------------------------------------------- locking


def test_plan_flags_lock_a_folder_and_check_says_current(work):
    cwd, env = work
    result = lock(cwd, *GPU_311, env=env)
    assert result.returncode == 0, result.stderr
    assert "plan: tensorflow 2.21.0 (GPU, CUDA 12.5, cuDNN 9.24), Python 3.11" in result.stdout
    assert "envs/tf2.21-cuda12.5-py3.11-pip" in result.stdout
    folder = EnvFolder(cwd / "envs" / "tf2.21-cuda12.5-py3.11-pip")
    assert folder.is_current() == (True, "current")
    check = lock(cwd, "--check", env=env)
    assert check.returncode == 0 and "all 1 environment folders are current" in check.stdout
    assert lock(cwd, "--check", *GPU_311, env=env).returncode == 0
    other = lock(cwd, "--check", *CPU_311, env=env)
    assert other.returncode == 1 and "tf2.21-cpu-py3.11-pip: not locked yet" in other.stdout


def test_all_twice_leaves_every_byte_as_it_was_and_env_takes_several(work):
    cwd, env = work
    assert lock(cwd, *GPU_311, env=env).returncode == 0
    assert lock(cwd, *CPU_311, env=env).returncode == 0
    first = lock(cwd, "--all", env=env)
    assert first.returncode == 0, first.stderr
    before = tree(cwd / "envs")
    second = lock(cwd, "--all", env=env)
    assert second.returncode == 0 and second.stdout.count("unchanged") == 2
    assert tree(cwd / "envs") == before
    both = lock(cwd, "--env", "tf2.21-cpu-py3.11-pip", "--env", "tf2.21-cuda12.5-py3.11-pip", env=env)
    assert both.returncode == 0 and both.stdout.count("locking envs/") == 2
    assert tree(cwd / "envs") == before


def test_check_names_every_stale_folder_and_writes_nothing(work):
    cwd, env = work
    assert lock(cwd, *GPU_311, env=env).returncode == 0
    assert lock(cwd, *CPU_311, env=env).returncode == 0
    assert lock(cwd, "--driver", "470.82.01", "--gpu", "7.5", "--python", "3.11", "--platform", "linux-64",
                env=env).returncode == 0
    envs = cwd / "envs"
    gpu, cpu, old = (envs / n for n in ("tf2.21-cuda12.5-py3.11-pip", "tf2.21-cpu-py3.11-pip",
                                         "tf2.14-cuda11.8-py3.11-pip"))
    lock_file = gpu / "requirements.txt"
    lock_file.write_text(lock_file.read_text().replace("numpy==2.3.4", "numpy==2.3.5"))  # edited by hand
    (cpu / "inputs.toml").write_text((cpu / "inputs.toml").read_text().replace("2.21.0", "2.20.0"))
    (old / "inputs.toml").unlink()
    before = tree(envs)
    result = lock(cwd, "--check", env=env)
    assert result.returncode == 1
    assert "stale    envs/tf2.21-cuda12.5-py3.11-pip: requirements.txt was changed after locking" in result.stdout
    assert "stale    envs/tf2.21-cpu-py3.11-pip: inputs.toml changed since the lock" in result.stdout
    assert "stale    envs/tf2.14-cuda11.8-py3.11-pip: no inputs.toml" in result.stdout
    assert "3 of 3 environment folders need `invoke lock`" in result.stderr
    assert tree(envs) == before
    one = lock(cwd, "--check", "--env", "tf2.21-cpu-py3.11-pip", env=env)
    assert one.returncode == 1 and "tf2.21-cuda12.5" not in one.stdout
    # Relocking from the edited inputs makes the folder current again.
    relock = lock(cwd, "--env", "tf2.21-cpu-py3.11-pip", env=env)
    assert relock.returncode == 1 and "tensorflow-cpu" in relock.stderr, "2.20.0 is not on the local index"
    assert tree(envs) == before, "a failed relock writes nothing"
    missing = lock(cwd, "--env", "tf2.14-cuda11.8-py3.11-pip", env=env)
    assert missing.returncode == 2 and "inputs.toml is missing" in missing.stderr


@pytest.mark.parametrize("args, message", [
    (["--all", "--env", "x"], "--all and --env"),
    (["--driver", "535.104.05", "--all"], "--driver plan a new environment"),
    (["--env", "nope"], "--env: no folder nope under envs"),
    (["--python", "three"], "--python: 'three' is not a Python version"),
    (["--check", "--env", "nope"], "--env: no folder nope"),
])
def test_usage_errors_exit_2_with_one_line(work, args, message):
    cwd, env = work
    (cwd / "envs").mkdir()
    result = lock(cwd, *args, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_check_without_an_envs_folder_is_a_usage_error(work):
    cwd, env = work
    result = lock(cwd, "--check", env=env)
    assert result.returncode == 2 and "envs is not a directory" in result.stderr


def test_unreachable_index(work):
    cwd, env = work
    url = closed_port_url()
    result = lock(cwd, *GPU_311, env={**env, "INVOKE_GPUREADY_INDEX_URL": url})
    assert result.returncode == 1
    assert f"gpuready: the package index {url} could not be reached" in result.stderr
    assert "Traceback" not in result.stderr and not (cwd / "envs").exists()


def test_conda_flavor_with_the_configured_executable(work, conda_double, served_index):
    cwd, env = work
    env = {**env, "INVOKE_GPUREADY_INDEX_URL": served_index, "INVOKE_GPUREADY_CONDA_EXE": str(conda_double)}
    result = lock(cwd, *GPU_311, "--flavor", "conda", "--tf", "2.19", env=env)
    assert result.returncode == 0, result.stderr
    assert f"conda executable: {conda_double} (gpuready.conda_exe = {conda_double})" in result.stdout
    folder = EnvFolder(cwd / "envs" / "tf2.19-cuda12.8-py3.11-conda")
    assert folder.is_current() == (True, "current")
    assert "cuda128py311" in (folder.path / "conda-lock.yml").read_text()
    before = tree(cwd / "envs")
    assert lock(cwd, "--all", env=env).returncode == 0
    assert tree(cwd / "envs") == before


def test_missing_conda_executable(work, lock_env, tmp_path):
    cwd, env = work
    home = Path(lock_env["HOME"])
    (home / ".invoke.yaml").write_text("gpuready:\n  conda_bootstrap: false\n")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = lock(cwd, *GPU_311, "--flavor", "conda", env={**env, "PATH": str(empty)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gpuready: no conda executable (conda, mamba or micromamba)" in result.stderr
    assert "mamba, micromamba, conda on PATH" in result.stderr and "$CONDA_EXE" in result.stderr
    assert not (cwd / "envs").exists()
    named = lock(cwd, *GPU_311, "--flavor", "conda", env={**env, "INVOKE_GPUREADY_CONDA_EXE": "/no/conda"})
    assert named.returncode == 1 and "gpuready.conda_exe = '/no/conda' is neither" in named.stderr
