"""`invoke cloud.user-data`: cloud-init user-data, checked by cloud-init's own schema validator
and run the way cloud-init runs it (write_files, then the runcmd line through /bin/sh)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gpuready import cloud
from gpuready.errors import UsageError

from .conftest import ROOT, run_cli
from .test_bootstrap import fake_wheel

CASES = {
    "repo": (["--repo", "https://github.com/example/gpuready.git", "--ref", "v0.1.0"], []),
    "package-with-plan-flags": (
        ["--package", "gpuready==0.1.0", "--driver", "550.54.15", "--gpu", "8.0,8.0", "--python", "3.11",
         "--tf", ">=2.16,<2.19", "--flavor", "conda", "--level", "3", "--allow-cpu"],
        ["--driver", "550.54.15", "--gpu", "8.0,8.0", "--python", "3.11", "--flavor", "conda",
         "--tf", ">=2.16,<2.19", "--level", "3", "--allow-cpu"]),
    "wheel-url": (["--package", "https://files.example.invalid/gpuready-0.1.0-py3-none-any.whl?a=1&b='x'"], []),
    "direct-reference": (["--package", "gpuready @ https://example.invalid/gpuready-0.1.0-py3-none-any.whl"], []),
    "bundle-url": (["--bundle-url", "https://mirror.example.invalid/b.tar", "--bundle-sha256", "a" * 64,
                    "--allow-cpu"], ["--allow-cpu"]),
}


def cloud_init_schema(path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("cloud-init") is None:
        pytest.skip("cloud-init is not installed (Debian: apt-get install cloud-init)")
    return subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_user_data_passes_cloud_init_schema(case, tmp_path) -> None:
    flags, setup_flags = CASES[case]
    result = run_cli("cloud.user-data", *flags)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("#cloud-config\n")
    path = tmp_path / "user-data.yaml"
    path.write_text(text)
    check = cloud_init_schema(path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Valid cloud-config" in check.stdout

    doc = yaml.safe_load(text)
    (script,) = doc["write_files"]
    assert script["path"] == cloud.SCRIPT_PATH and script["permissions"] == "0755"
    assert script["content"] == (ROOT / "scripts" / "bootstrap.sh").read_text()  # byte for byte
    if case == "bundle-url":  # the image's python3 is all a bundle needs: no package mirror either
        assert doc["package_update"] is False and not doc.get("packages")
        assert shlex.split(doc["runcmd"][0])[1:5] == ["--bundle-url", "https://mirror.example.invalid/b.tar",
                                                     "--bundle-sha256", "a" * 64]
    else:
        assert {"python3-venv", "git"} <= set(doc["packages"])
    (command,) = doc["runcmd"]
    argv = shlex.split(command)
    assert argv[0] == cloud.SCRIPT_PATH
    given = dict(zip(flags[::2], flags[1::2]))
    if "--bundle-url" in given:
        assert "--package" not in argv and "--repo" not in argv
    elif "--repo" in given:
        assert argv[argv.index("--repo") + 1] == given["--repo"] and argv[argv.index("--ref") + 1] == "v0.1.0"
    else:
        assert argv[argv.index("--package") + 1] == given["--package"]
    assert argv[argv.index("--prefix") + 1] == cloud.PREFIX
    assert argv[argv.index("--certificate") + 1] == "/var/lib/gpuready/certificate.json"
    assert argv[argv.index("--state-dir") + 1] == "/var/lib/gpuready"
    assert argv[argv.index("--") + 1:] == setup_flags


def test_the_shipped_script_is_scripts_bootstrap() -> None:
    assert cloud.bootstrap_script() == (ROOT / "scripts" / "bootstrap.sh").read_text()


def test_cloud_init_schema_rejects_a_broken_document(tmp_path) -> None:
    """The validator bites: the same document with a value of the wrong type fails.

    (cloud-init 22.4, Debian 12's, accepts unknown top-level keys, so a misspelt module name
    would pass it; the YAML checks above cover the keys this document needs.)"""
    text = cloud.user_data(cloud.Source(package="gpuready"), [])
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("permissions: '0755'", "permissions: [0755]"))
    check = cloud_init_schema(path)
    assert check.returncode != 0 and "permissions" in check.stdout + check.stderr


@pytest.mark.parametrize("flags, named", [
    (["--package", "gpuready", "--flavor", "rpm"], "--flavor"),
    (["--package", "gpuready", "--driver", "banana"], "--driver"),
    (["--package", "gpuready", "--gpu", "9"], "--gpu"),
    (["--package", "gpuready", "--level", "7"], "--level"),
    (["--package", "gpuready", "--platform", "osx-arm64"], "--platform"),
    (["--package", "gpuready", "--wsl"], "--wsl"),
    (["--package", "gpuready", "--tf", ">>2"], "--tf"),
    (["--package", "-e ."], "--package"),
    (["--repo", "--upload-pack=touch /tmp/pwned"], "--repo"),
    (["--repo", "https://example.invalid/g.git", "--ref", "-x"], "--ref"),
    (["--package", "gpuready", "--repo", "https://example.invalid/g.git"], "exactly one"),
    ([], "exactly one"),
    (["--bundle-url", "http://mirror.invalid/b.tar"], "plain http"),
    (["--bundle-url", "ftp://mirror.invalid/b.tar"], "is not an https:// URL"),
    (["--bundle-url", "https://mirror.invalid/b.tar", "--repo", "https://example.invalid/g.git"], "bundle alone"),
    (["--bundle-sha256", "0" * 64], "needs --bundle-url"),
    (["--bundle-url", "https://mirror.invalid/b.tar", "--bundle-sha256", "XYZ"], "not a sha256"),
])
def test_bad_input_is_one_line_exit_2(flags, named) -> None:
    result = run_cli("cloud.user-data", *flags)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], lines


def test_every_word_is_quoted() -> None:
    source = cloud.check_source(None, None, "gpuready @ https://example.invalid/x.whl?a=1;b=$(id)")
    command = cloud.bootstrap_command(source, ["--tf", ">=2.16; rm -rf /"])
    assert shlex.split(command)[2] == "gpuready @ https://example.invalid/x.whl?a=1;b=$(id)"
    assert shlex.split(command)[-2:] == ["--tf", ">=2.16; rm -rf /"]


@pytest.mark.parametrize("rc", [0, 1])
def test_first_boot_as_cloud_init_runs_it(tmp_path, rc) -> None:
    """write_files, then the runcmd line through /bin/sh; only the fixed paths point into tmp_path.

    The stand-in gpuready's `setup` writes a certificate and exits with `rc`."""
    wheel = fake_wheel(tmp_path / "fake")
    where = {"script": str(tmp_path / "sbin" / "gpuready-bootstrap"), "venv": str(tmp_path / "tool"),
             "prefix": str(tmp_path / "env"), "state_dir": str(tmp_path / "state"),
             "log": str(tmp_path / "log" / "bootstrap.log"), "certificate": str(tmp_path / "state" / "certificate.json")}
    doc = yaml.safe_load(cloud.user_data(cloud.Source(package=str(wheel)), ["--gpu", "8.0"], **where))
    for item in doc["write_files"]:
        target = Path(item["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item["content"])
        target.chmod(int(item["permissions"], 8))
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path / "root"), "FAKE_GPUREADY_RC": str(rc),
           "LANG": "C.UTF-8"}
    # cloud-init has no interpreter choice: the instance's python3 must be 3.10+ (it is on current images).
    python = shutil.which("python3", path=env["PATH"])
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info >= (3, 10))"],
                             capture_output=True, text=True).stdout.strip() if python else "False"
    if version != "True":
        pytest.skip("this machine's python3 is older than 3.10")
    proc = subprocess.run(["/bin/sh", "-c", doc["runcmd"][0]], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == rc, proc.stdout + proc.stderr
    state = tmp_path / "state"
    data = json.loads((state / "result.json").read_text())
    assert data["status"] == ("success" if rc == 0 else "failed")
    assert (state / ("SUCCESS" if rc == 0 else "FAILED")).is_file()
    assert json.loads(Path(where["certificate"]).read_text())["args"][:4] == ["setup", "--yes", "--prefix",
                                                                             where["prefix"]]
    assert Path(where["log"]).read_text().strip().endswith("SUCCESS" if rc == 0 else f"see {where['log']}")


def test_user_data_function_rejects_both_sources() -> None:
    with pytest.raises(UsageError):
        cloud.check_source("https://example.invalid/g.git", None, "gpuready")


def test_the_fleet_uses_the_cloud_layout() -> None:
    """fabfile.py runs without gpuready (only Fabric), so it repeats these paths: keep them equal."""
    text = (ROOT / "fabfile.py").read_text()
    for name in ("STATE_DIR", "VENV", "PREFIX"):
        assert f'{name} = "{getattr(cloud, name)}"' in text, name
