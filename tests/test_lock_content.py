"""`invoke lock --check` reads what the lock files say, not only whether they match lock-state.toml.

Each case edits a locked folder the way someone smuggling a change would, re-hashes
lock-state.toml so the hash comparison passes, and expects the check to name the file and line.
No network: the folders are written from hand-made lock files in uv's shapes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuready.lock import content
from gpuready.lock import folder as folder_mod
from gpuready.model import inputs as inputs_mod

from .conftest import ROOT, run_cli
from .lock_doubles.fixtures import GPU, plan_for
from .lock_doubles.handmade import fake_sha, pip_lock_files, rehash


@pytest.fixture
def locked(tmp_path, matrix) -> folder_mod.EnvFolder:
    inputs = inputs_mod.inputs_from_plan(plan_for(matrix, driver="none", python="3.11"))
    folder = folder_mod.EnvFolder(tmp_path / "envs" / inputs.env)
    folder.write(inputs, pip_lock_files(inputs, {"absl-py": "2.3.1", "numpy": "2.3.4"}))
    assert folder.is_current() == (True, "current")
    return folder


def edit(folder: folder_mod.EnvFolder, name: str, old: str, new: str) -> None:
    path = folder.path / name
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    rehash(folder.path)


def line_of(folder: folder_mod.EnvFolder, name: str, needle: str) -> int:
    return next(i for i, line in enumerate((folder.path / name).read_text().splitlines(), 1) if needle in line)


SMUGGLED = (f"evil-pkg==1.0 \\\n    --hash=sha256:{fake_sha('evil')}\n    # via tensorflow-cpu\n")


@pytest.mark.parametrize("case, file, old, new, needle, message", [
    ("smuggled package, valid hash", "requirements.txt", "numpy==", SMUGGLED + "numpy==", "evil-pkg==",
     "evil-pkg==1.0 is not in pylock.toml"),
    ("extra index", "requirements.txt", "--only-binary :all:", "--only-binary :all:\n--extra-index-url https://elsewhere.example/simple",
     "--extra-index-url", "an extra index line (--extra-index-url)"),
    ("index", "requirements.txt", "--only-binary :all:", "--only-binary :all:\n-i https://elsewhere.example/simple",
     "-i https", "an index line (-i)"),
    ("find-links", "requirements.txt", "--only-binary :all:", "--only-binary :all:\n--find-links /tmp/wheels",
     "--find-links", "a find-links line"),
    ("editable", "requirements.txt", "numpy==", "-e ./src/evil\nnumpy==", "-e ./src", "an editable requirement (-e)"),
    ("include", "requirements.txt", "numpy==", "-r other.txt\nnumpy==", "-r other", "an include (-r)"),
    ("constraints", "requirements.txt", "numpy==", "-c other.txt\nnumpy==", "-c other", "a constraints include (-c)"),
    ("URL", "requirements.txt", "numpy==", "evil @ https://elsewhere.example/evil-1.0-py3-none-any.whl\nnumpy==",
     "evil @", "direct URL or VCS reference"),
    ("VCS", "requirements.txt", "numpy==", "git+https://elsewhere.example/evil.git\nnumpy==", "git+https",
     "a URL, VCS or path requirement"),
    ("unpinned", "requirements.txt", "numpy==2.3.4", "numpy>=2.3.4", "numpy>=", "numpy is not pinned with =="),
    ("unhashed", "requirements.txt", "absl-py==2.3.1 \\\n    --hash=sha256:" + fake_sha("absl-py", "2.3.1", "a") + " \\\n"
     "    --hash=sha256:" + fake_sha("absl-py", "2.3.1", "b") + "\n", "absl-py==2.3.1\n", "absl-py==",
     "absl-py==2.3.1 has no --hash"),
    ("pylock version disagrees", "pylock.toml", 'version = "2.3.4"', 'version = "2.3.3"', 'name = "numpy"',
     "numpy is 2.3.3 here but 2.3.4 in requirements.txt"),
    ("pylock hash disagrees", "pylock.toml", fake_sha("numpy", "2.3.4", "a"), fake_sha("numpy", "9"),
     fake_sha("numpy", "9"), "has a sha256 that requirements.txt"),
])
def test_an_edited_lock_with_rehashed_state_fails_the_check_naming_file_and_line(locked, case, file, old, new,
                                                                                 needle, message):
    edit(locked, file, old, new)
    result = locked.check()
    assert not result.ok and not result.relock_ok, case
    where = f"{file}:{line_of(locked, file, needle)}"
    assert any(str(p).startswith(where) and message in str(p) for p in result.problems), (case, result.problems)


def test_a_pin_nothing_asks_for_fails_even_when_pylock_agrees(locked):
    """Smuggled into both files consistently: `# via` names a package the lock does not have."""
    text = (locked.path / "requirements.txt").read_text()
    (locked.path / "requirements.txt").write_text(text.replace("# via tensorflow-cpu", "# via not-in-the-lock", 1))
    rehash(locked.path)
    problems = [str(p) for p in locked.check().problems]
    line = line_of(locked, "requirements.txt", "absl-py==")
    assert problems == [f"requirements.txt:{line}: absl-py==2.3.1: nothing in the lock asks for it (via "
                        "not-in-the-lock, not in this lock); uv writes `# via` under every pin it resolved"]


def test_pylock_lacking_a_package_and_requirements_in_edited(locked):
    text = (locked.path / "pylock.toml").read_text()
    start = text.index('[[packages]]\nname = "numpy"')
    (locked.path / "pylock.toml").write_text(text[:start] + text[text.index("[[packages]]", start + 1):])
    (locked.path / "requirements.in").write_text((locked.path / "requirements.in").read_text()
                                                 + "--extra-index-url https://elsewhere.example/simple\n")
    rehash(locked.path)
    problems = [str(p) for p in locked.check().problems]
    numpy_line = line_of(locked, "requirements.txt", "numpy==")
    assert f"requirements.txt:{numpy_line}: numpy==2.3.4 is not in pylock.toml" in " ".join(problems)
    assert any(p.startswith("requirements.in: differs from what inputs.toml makes") for p in problems)


def test_the_committed_locks_pass_the_content_check():
    for folder in folder_mod.env_folders(ROOT / "envs"):
        assert folder.content_problems() == [], folder.name


def test_conda_lock_content():
    good = {"metadata": {"channels": [{"url": "conda-forge"}]},
            "package": [{"name": "python", "version": "3.11", "manager": "conda", "url": "https://c/p.conda",
                         "hash": {"md5": "1", "sha256": "2"}},
                        {"name": "keras", "version": "3", "manager": "pip", "url": "https://f/k.whl",
                         "hash": {"sha256": "3"}}]}
    assert content.check_conda_lock(good, "conda-forge") == []
    extra = {**good, "metadata": {"channels": [{"url": "conda-forge"}, {"url": "https://elsewhere.example/ch"}]}}
    assert [str(p) for p in content.check_conda_lock(extra, "conda-forge")] == [
        "conda-lock.yml: channel 'https://elsewhere.example/ch': the inputs name only 'conda-forge'"]
    bare = {**good, "package": [{"name": "keras", "version": "3", "manager": "pip", "url": "https://f/k.whl",
                                 "hash": {"md5": "1"}}, {"name": "x", "version": "1", "manager": "conda"}]}
    assert [str(p) for p in content.check_conda_lock(bare, "conda-forge")] == [
        "conda-lock.yml: keras 3 has no hash", "conda-lock.yml: x 1 has no url", "conda-lock.yml: x 1 has no hash"]


def test_lock_check_task_exits_1_naming_file_and_line(locked, tmp_path):
    edit(locked, "requirements.txt", "--only-binary :all:",
         "--only-binary :all:\n--extra-index-url https://elsewhere.example/simple")
    line = line_of(locked, "requirements.txt", "--extra-index-url")
    result = run_cli("-r", str(ROOT), "lock", "--check", cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"stale    envs/{locked.name}: requirements.txt:{line}: an extra index line (--extra-index-url)" in result.stdout
    assert locked.name in result.stderr and "Traceback" not in result.stderr
