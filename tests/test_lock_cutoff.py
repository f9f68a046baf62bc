"""Locks stay put: a relock with unchanged inputs resolves with the folder's recorded cut-off, so
packages uploaded since do not move it; --upgrade-package and --upgrade move deliberately and
say what moved; `lock --check --deep` re-resolves with the cut-off and compares the bytes.

Offline, against a local index whose files carry upload times (as PyPI's do) and which has
newer releases uploaded after the cut-off the tests set. The same against the real index is in
test_lock_network.py.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from gpuready.lock.folder import EnvFolder

from .conftest import ROOT, run_cli
from .lock_doubles.fixtures import conda_channel, lock_env, tree, uv_cache  # noqa: F401
from .lock_doubles.handmade import rehash
from .lock_doubles.wheels import Dist, build_index, default_dists

CPU_311 = ["--driver", "none", "--python", "3.11", "--platform", "linux-64"]
ENV = "tf2.21-cpu-py3.11-pip"
PAST = "2025-09-01T00:00:00Z"  # after the default set's uploads (2025-06-02), before the newer ones


@pytest.fixture(scope="module")
def moving_index(tmp_path_factory) -> str:
    """The default wheels, plus absl-py and numpy releases uploaded in 2026."""
    newer = [Dist("absl-py", "2.4.0", ("py3-none-any",), uploaded="2026-01-10T10:00:00Z"),
             Dist("numpy", "2.3.5", tuple(f"{c}-{c}-manylinux_2_27_x86_64.manylinux_2_28_x86_64"
                                          for c in ("cp310", "cp311", "cp312", "cp313")),
                  requires_python=">=3.10", uploaded="2026-01-10T10:00:00Z")]
    return build_index(tmp_path_factory.mktemp("moving-index"), default_dists() + newer).as_uri()


@pytest.fixture
def work(tmp_path, moving_index, lock_env) -> tuple[Path, dict[str, str]]:
    cwd = tmp_path / "work"
    cwd.mkdir()
    return cwd, {"INVOKE_GPUREADY_INDEX_URL": moving_index, "INVOKE_GPUREADY_INDEX_TIMEOUT": "10"}


def lock(work, *args):
    cwd, env = work
    return run_cli("-r", str(ROOT), "lock", *args, cwd=cwd, env=env, timeout=180)


def set_cutoff(folder: Path, when: str) -> None:
    """Make the folder's recorded cut-off `when`, as if it had been locked that day."""
    state = tomllib.loads((folder / "lock-state.toml").read_text())
    state["exclude_newer"] = when
    (folder / "lock-state.toml").write_text(tomli_w.dumps(state))


def test_relock_with_a_past_cut_off_keeps_every_byte_and_upgrades_move_deliberately(work):
    cwd, _ = work
    made = lock(work, *CPU_311)
    assert made.returncode == 0, made.stdout + made.stderr
    folder = EnvFolder(cwd / "envs" / ENV)
    assert folder.locked_packages()["absl-py"] == "2.4.0", "a new folder resolves as of now"
    assert folder.cutoff() is not None

    # Locked months ago: its cut-off is in the past, and the index has newer releases since.
    set_cutoff(folder.path, PAST)
    first = lock(work, "--env", ENV)
    assert first.returncode == 0, first.stdout + first.stderr
    assert folder.locked_packages() == {"tensorflow-cpu": "2.21.0", "absl-py": "2.3.1", "keras": "3.12.0",
                                        "numpy": "2.3.4"}
    assert f"recorded cut-off {PAST}" in first.stdout
    before = tree(folder.path)
    again = lock(work, "--env", ENV)
    assert again.returncode == 0 and "unchanged" in again.stdout and "no package moved" in again.stdout
    assert tree(folder.path) == before, "same inputs, same cut-off: the same bytes"
    everything = lock(work, "--all")
    assert everything.returncode == 0 and tree(folder.path) == before

    # --upgrade-package moves that package only, and says so.
    one = lock(work, "--env", ENV, "--upgrade-package", "absl-py")
    assert one.returncode == 0, one.stdout + one.stderr
    moved = [line.strip() for line in one.stdout.splitlines() if line.strip().startswith(("moved", "added", "removed"))]
    assert moved == ["moved   absl-py 2.3.1 -> 2.4.0"]
    assert folder.locked_packages()["numpy"] == "2.3.4"
    state = tomllib.loads(folder.state_path.read_text())
    assert state["exclude_newer"] == PAST and set(state["exclude_newer_package"]) == {"absl-py"}
    kept = tree(folder.path)
    assert lock(work, "--env", ENV).returncode == 0 and tree(folder.path) == kept, "the move is recorded"

    deep = lock(work, "--check", "--deep")
    assert deep.returncode == 0, deep.stdout + deep.stderr
    assert "re-resolved with their cut-offs" in deep.stdout

    # --upgrade moves the rest.
    every = lock(work, "--env", ENV, "--upgrade")
    assert every.returncode == 0, every.stdout + every.stderr
    assert "moved   numpy 2.3.4 -> 2.3.5" in every.stdout and "absl-py" not in every.stdout.split("sha256")[-1]
    assert tomllib.loads(folder.state_path.read_text())["exclude_newer"] > PAST


def test_deep_check_catches_an_edit_the_content_check_cannot(work):
    """numpy moved back to an older release in both files, hashes and `# via` intact, lock-state
    re-hashed: every file is self-consistent, and only re-resolving shows it is not uv's lock."""
    cwd, _ = work
    assert lock(work, *CPU_311).returncode == 0
    folder = EnvFolder(cwd / "envs" / ENV)
    set_cutoff(folder.path, PAST)
    assert lock(work, "--env", ENV).returncode == 0
    old = lock(work, "--env", ENV, "--upgrade-package", "numpy")  # numpy 2.3.5 now
    assert "moved   numpy 2.3.4 -> 2.3.5" in old.stdout
    # Put the 2.3.4 files back by hand (copied from a lock made with the past cut-off).
    state = tomllib.loads(folder.state_path.read_text())
    state.pop("exclude_newer_package")
    (folder.path / "lock-state.toml").write_text(tomli_w.dumps(state))
    shadow = cwd / "shadow"
    shadow.mkdir()
    (shadow / "envs").mkdir()
    import shutil

    shutil.copytree(folder.path, shadow / "envs" / ENV)
    assert run_cli("-r", str(ROOT), "lock", "--env", ENV, cwd=shadow, env=work[1], timeout=180).returncode == 0
    for name in ("requirements.txt", "pylock.toml"):
        (folder.path / name).write_bytes((shadow / "envs" / ENV / name).read_bytes())
    state["exclude_newer_package"] = {"numpy": "2026-02-01T00:00:00Z"}
    (folder.path / "lock-state.toml").write_text(tomli_w.dumps(state))
    rehash(folder.path)
    assert folder.is_current() == (True, "current"), "the content check passes"
    shallow = lock(work, "--check")
    assert shallow.returncode == 0
    deep = lock(work, "--check", "--deep")
    assert deep.returncode == 1, deep.stdout + deep.stderr
    assert (f"stale    envs/{ENV}: requirements.txt, pylock.toml differ from a re-resolution with the recorded "
            f"cut-off {PAST} (moved numpy 2.3.4 -> 2.3.5 in the re-resolution)") in deep.stdout
    assert f"invoke lock --env {ENV}" in deep.stdout


@pytest.mark.parametrize("args, message", [
    (["--env", ENV, "--upgrade", "--upgrade-package", "numpy"], "give one or the other"),
    (["--check", "--upgrade"], "--check writes nothing"),
    (["--deep"], "--deep is a kind of --check"),
    (["--env", ENV, "--upgrade-package", "not-a-package"], "not-a-package is not in the lock of"),
])
def test_flag_mistakes_exit_2_and_write_nothing(work, args, message):
    cwd, _ = work
    assert lock(work, *CPU_311).returncode == 0
    before = tree(cwd / "envs")
    result = lock(work, *args)
    assert result.returncode == 2 and message in result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and tree(cwd / "envs") == before
