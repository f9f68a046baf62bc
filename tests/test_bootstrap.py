"""scripts/bootstrap.sh, run for real with a stand-in gpuready (a tiny wheel whose `setup` only
writes a certificate and exits with a chosen code): markers, result.json, log, certificate copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

SCRIPT = ROOT / "scripts" / "bootstrap.sh"

FAKE_MODULE = '''\
"""A stand-in for gpuready: `gpuready setup ...` records its arguments, writes a certificate
under --prefix and exits with $FAKE_GPUREADY_RC (or --fake-rc N)."""
import json, os, sys
from pathlib import Path


def main():
    args = sys.argv[1:]
    record = os.environ.get("FAKE_GPUREADY_RECORD")
    if record:
        Path(record).write_text(json.dumps(args))
    if args[:1] != ["setup"]:
        print("fake gpuready: only setup is here")
        return 2
    rc = int(os.environ.get("FAKE_GPUREADY_RC", "0"))
    if "--fake-rc" in args:  # over SSH there is no environment to pass: a flag does it
        rc = int(args[args.index("--fake-rc") + 1])
    status = {0: "certified", 3: "cpu-only"}.get(rc, "failed")
    if "--prefix" in args:
        meta = Path(args[args.index("--prefix") + 1]) / "gpuready"
        meta.mkdir(parents=True, exist_ok=True)
        (meta / "certificate.json").write_text(json.dumps({
            "status": status, "args": args, "tensorflow": {"version": "2.21.0"},
            "plan": {"tensorflow": "2.21.0", "cuda": "12.5"}, "host": {"driver": {"version": "555.42.06"}},
            "gpus": [{"name": "stand-in"}], "throughput": {"gpu_images_per_second": 900.0, "ratio": 9.0}}))
    print("fake setup:", status)
    sys.exit(rc)
'''

# An in-tree PEP 517 backend, so that `pip install <checkout>` builds the stand-in with no download.
BACKEND = '''\
import base64, hashlib, os, zipfile

NAME, VERSION = "gpuready", "0.0.1"
FILES = {
    "gpuready_fake.py": open(os.path.join(os.path.dirname(__file__), "gpuready_fake.py")).read(),
    f"{NAME}-{VERSION}.dist-info/METADATA": f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n",
    f"{NAME}-{VERSION}.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: fake\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    f"{NAME}-{VERSION}.dist-info/entry_points.txt": "[console_scripts]\\ngpuready = gpuready_fake:main\\n",
}


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, text in FILES.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
            wheel.writestr(path, data)
        record.append(f"{NAME}-{VERSION}.dist-info/RECORD,,")
        wheel.writestr(f"{NAME}-{VERSION}.dist-info/RECORD", "\\n".join(record) + "\\n")
    return name
'''

PYPROJECT = '''\
[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]
'''


def fake_project(folder: Path) -> Path:
    """A source tree of the stand-in gpuready (pip builds it with the in-tree backend)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gpuready_fake.py").write_text(FAKE_MODULE)
    (folder / "backend.py").write_text(BACKEND)
    (folder / "pyproject.toml").write_text(PYPROJECT)
    return folder


def fake_wheel(folder: Path) -> Path:
    """The stand-in built as a wheel file."""
    project = fake_project(folder / "src")
    namespace: dict = {"__file__": str(project / "backend.py")}
    exec(compile(BACKEND, str(project / "backend.py"), "exec"), namespace)  # noqa: S102
    return folder / namespace["build_wheel"](str(folder))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return fake_wheel(tmp_path_factory.mktemp("fake"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """One tool venv for the module: the first run creates it, later runs reuse it (as on a rerun)."""
    return tmp_path_factory.mktemp("tool") / "venv"


def run(args: list[str], tmp_path: Path, *, rc: int = 0, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAKE_GPUREADY_RC": str(rc), "FAKE_GPUREADY_RECORD": str(tmp_path / "argv.json"),
           "HOME": str(tmp_path / "home"), "XDG_STATE_HOME": str(tmp_path / "state-home"),
           "XDG_DATA_HOME": str(tmp_path / "data-home")}
    env.pop("PIP_REQUIRE_VIRTUALENV", None)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env)


def paths(tmp_path: Path, venv: Path) -> list[str]:
    return ["--interpreter", sys.executable, "--venv", str(venv), "--prefix", str(tmp_path / "env"),
            "--state-dir", str(tmp_path / "state"), "--certificate", str(tmp_path / "out" / "certificate.json")]


def result(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "state" / "result.json").read_text())


def test_success_leaves_marker_result_certificate_and_log(tmp_path, wheel, venv) -> None:
    proc = run(["--package", str(wheel), *paths(tmp_path, venv), "--", "--gpu", "8.0", "--tf", ">=2.16,<2.19"],
               tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = tmp_path / "state"
    assert (state / "SUCCESS").is_file() and not (state / "FAILED").exists()
    data = result(tmp_path)
    assert data["status"] == "success" and data["exit_code"] == 0 and data["setup_exit_code"] == 0
    assert data["certificate"] == str(tmp_path / "out" / "certificate.json")
    assert json.loads((tmp_path / "out" / "certificate.json").read_text())["status"] == "certified"
    assert json.loads((tmp_path / "argv.json").read_text()) == [
        "setup", "--yes", "--prefix", str(tmp_path / "env"), "--gpu", "8.0", "--tf", ">=2.16,<2.19"]
    log = (state / "bootstrap.log").read_text()
    assert "fake setup: certified" in log and log.rstrip().endswith("== gpuready bootstrap: SUCCESS")
    assert "SUCCESS" in proc.stdout  # the same lines reach the terminal (or cloud-init's log)


@pytest.mark.parametrize("rc, status", [(1, "failed"), (3, "cpu-only")])
def test_setup_failure_is_marked_and_exits_non_zero(tmp_path, wheel, venv, rc, status) -> None:
    # A stale SUCCESS from an earlier run must not survive.
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "SUCCESS").write_text("old")
    proc = run(["--package", str(wheel), *paths(tmp_path, venv)], tmp_path, rc=rc)
    assert proc.returncode == rc
    state = tmp_path / "state"
    assert (state / "FAILED").is_file() and not (state / "SUCCESS").exists()
    assert f"failed at step 'setup' with exit code {rc}" in (state / "FAILED").read_text()
    data = result(tmp_path)
    assert (data["status"], data["step"], data["exit_code"]) == ("failed", "setup", rc)
    # The certificate of a failed run is kept too: it says why.
    assert json.loads((tmp_path / "out" / "certificate.json").read_text())["status"] == status
    if rc == 3:
        assert "--allow-cpu" in proc.stdout


def test_install_failure_is_marked_at_its_step(tmp_path, venv) -> None:
    proc = run(["--package", str(tmp_path / "no-such-gpuready.whl"), *paths(tmp_path, venv)], tmp_path)
    assert proc.returncode == 1
    data = result(tmp_path)
    assert (data["status"], data["step"], data["setup_exit_code"], data["certificate"]) == \
           ("failed", "install", None, None)
    assert "could not install gpuready" in (tmp_path / "state" / "bootstrap.log").read_text()


def test_install_from_a_git_repository(tmp_path, venv) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = fake_project(tmp_path / "repo")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git[:3], "init", "--quiet", "--initial-branch=main"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "stand-in"], check=True)
    subprocess.run([*git, "tag", "v0.0.1"], check=True)
    proc = run(["--repo", f"file://{repo}", "--ref", "v0.0.1", *paths(tmp_path, venv), "--", "--allow-cpu"],
               tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result(tmp_path)["status"] == "success"
    assert json.loads((tmp_path / "argv.json").read_text())[-1] == "--allow-cpu"


def test_too_old_or_missing_python_fails_cleanly(tmp_path, wheel) -> None:
    proc = run(["--package", str(wheel), "--interpreter", str(tmp_path / "no-python"),
                "--state-dir", str(tmp_path / "state")], tmp_path)
    assert proc.returncode == 1
    assert result(tmp_path)["step"] == "python"
    assert "older than Python 3.10" in proc.stdout


@pytest.mark.parametrize("args, message", [
    ([], "give exactly one of --package SPEC, --repo URL, --bundle-file TAR, --bundle-url URL"),
    (["--package", "gpuready", "--repo", "https://example.invalid/g.git"], "give exactly one of"),
    (["--bundle-file", "/tmp/b.tar", "--package", "gpuready"], "give exactly one of"),
    (["--bundle-file", "/tmp/b.tar"], "a bundle needs --prefix"),
    (["--bundle-url", "https://mirror.invalid/b.tar", "--prefix", "/tmp/p", "--bundle-sha256", "abc"],
     "is not a sha256"),
    (["--package", "gpuready", "--bundle-sha256", "0" * 64], "--bundle-sha256 needs a bundle"),
    (["--package"], "--package needs a value"),
    (["--repo", "--upload-pack=touch /tmp/pwned"], "may not start with '-'"),
    (["--package", "gpuready", "--ref", "main"], "--ref needs --repo"),
    (["--package", "gpuready", "--certificate", "/tmp/c.json"], "--certificate needs --prefix"),
    (["--package", "gpuready", "--bogus"], "unknown option --bogus"),
])
def test_bad_usage_exits_2_before_doing_anything(tmp_path, args, message) -> None:
    proc = run(["--state-dir", str(tmp_path / "state"), *args], tmp_path)
    assert proc.returncode == 2 and message in proc.stderr
    assert not (tmp_path / "state").exists()


def test_shellcheck_if_available() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    proc = subprocess.run(["shellcheck", "-S", "warning", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
