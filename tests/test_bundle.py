"""invoke bundle, offline: the manifest check, which wheels a lock's target takes, and the refusals
that come before any work. The end-to-end run with no network is in test_bundle_e2e.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpuready.bundle import _verify, check_bundle, check_out
from gpuready.bundle.artifacts import lock_artifacts, requirements_txt, target_tags
from gpuready.errors import UsageError, WorkFailed

from .conftest import ROOT, run_cli


def make_fake_bundle(root: Path, files: dict[str, bytes]) -> Path:
    """A bundle folder as make_bundle lays it out, with made-up contents (the check reads bytes only)."""
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    entries = {name: {"sha256": _verify._sha256(root / name), "size": len(data)} for name, data in files.items()}
    manifest = {"schema": _verify.SCHEMA, "env": "tf2.21-cpu-py3.11-pip", "flavor": "pip", "python": "3.11",
                "platform": "linux-64", "tensorflow": "2.21.0", "files": entries}
    (root / _verify.MANIFEST).write_text(json.dumps(manifest))
    return root


FILES = {"install.sh": b"#!/bin/bash\n", "wheels/absl_py-2.5.1-py3-none-any.whl": b"PK" + bytes(100),
         "env/tf2.21-cpu-py3.11-pip/requirements.txt": b"absl-py==2.5.1\n"}


def damage(root: Path, how: str) -> str:
    wheel = root / "wheels/absl_py-2.5.1-py3-none-any.whl"
    if how == "one byte changed":
        data = bytearray(wheel.read_bytes())
        data[50] ^= 1
        wheel.write_bytes(bytes(data))
    elif how == "truncated":
        wheel.write_bytes(wheel.read_bytes()[:-1])
    elif how == "missing":
        wheel.unlink()
    elif how == "added":
        (root / "wheels/evil-1.0-py3-none-any.whl").write_bytes(b"PK")
        return "wheels/evil-1.0-py3-none-any.whl: not in the manifest"
    return "wheels/absl_py-2.5.1-py3-none-any.whl"


def test_a_whole_bundle_has_no_problem(tmp_path) -> None:
    root = make_fake_bundle(tmp_path, FILES)
    assert _verify.problems(root) == []
    assert check_bundle(root)[1]["env"] == "tf2.21-cpu-py3.11-pip"


@pytest.mark.parametrize("how", ["one byte changed", "truncated", "missing", "added"])
def test_every_damage_is_named(tmp_path, how) -> None:
    root = make_fake_bundle(tmp_path, FILES)
    named = damage(root, how)
    found = _verify.problems(root)
    assert len(found) == 1 and found[0].startswith(named), found
    with pytest.raises(WorkFailed, match="nothing was installed"):
        check_bundle(root)


def test_the_shipped_checker_runs_with_the_standard_library_alone(tmp_path) -> None:
    root = make_fake_bundle(tmp_path / "b", FILES)
    damage(root, "one byte changed")
    run = subprocess.run([sys.executable, "-I", "-S", _verify.__file__, str(root)], capture_output=True, text=True)
    assert run.returncode == 1
    assert "wheels/absl_py-2.5.1-py3-none-any.whl: its sha256 differs" in run.stderr


@pytest.mark.parametrize("manifest, message", [
    (None, "not a gpuready bundle"), ("{", "unreadable"), ('{"schema": 9, "files": {"a": {}}}', "schema 1"),
    ('{"schema": 1, "files": {"../etc/passwd": {"sha256": "x", "size": 1}}}', "not a path inside"),
    ('{"schema": 1, "files": {}}', "lists no files"),
])
def test_a_bad_manifest_is_one_clear_problem(tmp_path, manifest, message) -> None:
    if manifest is not None:
        (tmp_path / "manifest.json").write_text(manifest)
    found = _verify.problems(tmp_path)
    assert len(found) == 1 and message in found[0]


def test_target_tags_follow_python_and_platform() -> None:
    tags = target_tags("3.11", "linux-64")
    assert any(str(t) == "cp311-cp311-manylinux_2_28_x86_64" for t in tags)
    assert any(str(t) == "py3-none-any" for t in tags)
    assert not any(str(t).startswith("cp312-cp312") for t in tags)
    assert not any("aarch64" in str(t) for t in tags)
    with pytest.raises(UsageError, match="cannot be bundled"):
        target_tags("3.11", "osx-arm64")


PYLOCK = '''
lock-version = "1.0"
[[packages]]
name = "numpy"
version = "2.2.6"
wheels = [
  { url = "https://files.example/numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", hashes = { sha256 = "aa" }, size = 10 },
  { url = "https://files.example/numpy-2.2.6-cp312-cp312-manylinux_2_17_x86_64.whl", hashes = { sha256 = "bb" } },
  { url = "https://files.example/numpy-2.2.6-cp311-cp311-macosx_14_0_arm64.whl", hashes = { sha256 = "cc" } },
]
[[packages]]
name = "six"
version = "1.17.0"
wheels = [{ url = "https://files.example/six-1.17.0-py2.py3-none-any.whl", hashes = { sha256 = "dd" } }]
'''


def test_lock_artifacts_takes_only_the_targets_wheels() -> None:
    chosen = lock_artifacts(PYLOCK, "3.11", "linux-64", what="t")
    assert [(a.filename, a.sha256, a.size) for a in chosen] == [
        ("numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "aa", 10),
        ("six-1.17.0-py2.py3-none-any.whl", "dd", None)]
    text = requirements_txt(chosen, PYLOCK)
    assert "numpy==2.2.6 \\\n    --hash=sha256:aa\n" in text and "six==1.17.0 \\\n    --hash=sha256:dd\n" in text
    assert "bb" not in text


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('hashes = { sha256 = "dd" }', "hashes = {}"), "no URL or sha256"),
    (lambda t: t.replace("py2.py3-none-any", "py2.py3-none-win_amd64"), "six 1.17.0 has no wheel for Python 3.11"),
    (lambda t: t.replace("six-1.17.0-py2.py3-none-any.whl", "six-1.17.0.tar.gz"), "not a wheel file name"),
    (lambda t: "[[", "not a readable pylock.toml"),
])
def test_a_lock_a_bare_machine_cannot_install_offline_is_refused(edit, message) -> None:
    with pytest.raises(WorkFailed, match=message):
        lock_artifacts(edit(PYLOCK), "3.11", "linux-64", what="t")


def test_the_committed_cpu_lock_has_a_wheel_for_every_package() -> None:
    folder = ROOT / "envs" / "tf2.21-cpu-py3.11-pip"
    chosen = lock_artifacts((folder / "pylock.toml").read_text(), "3.11", "linux-64", what="cpu")
    pinned = [line.split("==")[0] for line in (folder / "requirements.txt").read_text().splitlines()
              if "==" in line and not line.startswith((" ", "#"))]
    assert len({a.filename.split("-")[0].lower() for a in chosen}) == len(pinned)


def test_out_that_is_not_a_bundle_is_refused(tmp_path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not a gpuready bundle"):
        check_out(tmp_path / "home", tar=False)
    with pytest.raises(UsageError, match="does not exist"):
        check_out(tmp_path / "no" / "b", tar=False)
    assert check_out(make_fake_bundle(tmp_path / "old", FILES), tar=False) == tmp_path / "old"


@pytest.mark.parametrize("args, message", [
    (("bundle",), "--out DIR is required"),
    (("bundle", "--out", "OUT", "--env", "tf2.21-cpu-py3.11-pip", "--gpu", "8.0"), "give the folder or the plan flags"),
    (("bundle", "--out", "OUT", "--jobs", "abc"), "--jobs must be a whole number"),
    (("bundle", "--out", "OUT", "--env", "nope"), "nope"),
    (("bundle", "--out", "OUT", "--driver", "none", "--flavor", "conda"), "conda flavor cannot be bundled yet"),
    (("bundle", "--out", "/nonexistent/x"), "does not exist"),
])
def test_bundle_refuses_bad_input_before_work(tmp_path, args, message) -> None:
    result = run_cli(*[a.replace("OUT", str(tmp_path / "b")) for a in args])
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("task", ["setup", "install"])
def test_setup_and_install_refuse_a_damaged_bundle_naming_the_file(tmp_path, task) -> None:
    root = make_fake_bundle(tmp_path / "b", FILES)
    damage(root, "one byte changed")
    prefix = tmp_path / "env"
    result = run_cli(task, "--bundle", str(root), "--prefix", str(prefix), *(["--yes"] if task == "setup" else []))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "wheels/absl_py-2.5.1-py3-none-any.whl: its sha256 differs" in result.stderr
    assert not prefix.exists()


def test_setup_bundle_refuses_plan_flags(tmp_path) -> None:
    root = make_fake_bundle(tmp_path / "b", FILES)
    result = run_cli("setup", "--bundle", str(root), "--gpu", "8.0", "--prefix", str(tmp_path / "env"))
    assert result.returncode == 2 and "--bundle and --gpu" in result.stderr


@pytest.mark.parametrize("script", ["src/gpuready/data/bundle-install.sh", "scripts/test.sh", ".ci/run"])
def test_shell_scripts_pass_shellcheck(script) -> None:
    import shutil

    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (scripts/test.sh installs it)")
    run = subprocess.run(["shellcheck", "-S", "warning", str(ROOT / script)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout
