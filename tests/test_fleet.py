"""fabfile.py (the fleet) against a real sshd on loopback: its own port, host key, authorized key and
config in a temporary folder (the machine's sshd and its config are not touched).

Fabric runs from its own virtual environment, as on a control machine: Fabric pins invoke<3,
which gpuready's own environment must not be downgraded to. The hosts get the stand-in gpuready
of test_bootstrap (its `setup` writes a certificate and exits 0, or --fake-rc N)."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT
from .test_bootstrap import fake_wheel

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def fab(tmp_path_factory) -> list[str]:
    """The `fab` command, in a virtual environment of its own (pip install fabric)."""
    venv = tmp_path_factory.mktemp("fleet") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", "fabric>=3.2"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"could not install Fabric from the package index: {proc.stderr.strip()[-300:]}")
    return [str(venv / "bin" / "fab")]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        pytest.skip("no OpenSSH server here (Debian: apt-get install openssh-server)")
    folder = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    port = free_port()
    (folder / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {folder / 'host_key'}
AuthorizedKeysFile {folder / 'authorized_keys'}
PidFile {folder / 'sshd.pid'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
""")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(folder / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.skip(f"sshd did not start: {proc.stderr.read()[-300:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.skip("sshd did not listen within 15 s")
    yield {"port": port, "key": str(folder / "client_key"), "user": getpass.getuser()}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return fake_wheel(tmp_path_factory.mktemp("fake"))


def run_fab(fab: list[str], sshd: dict, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run([*fab, "-i", sshd["key"], "-t", "10", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env)


def remote_paths(tmp_path: Path) -> list[str]:
    return ["--state-dir", str(tmp_path / "{host}" / "state"), "--venv", str(tmp_path / "{host}" / "venv"),
            "--prefix", str(tmp_path / "{host}" / "env"), "--interpreter", sys.executable]


def test_setup_on_a_fleet_gathers_one_table(fab, sshd, wheel, tmp_path) -> None:
    user, port = sshd["user"], sshd["port"]
    good = [f"{user}@127.0.0.1:{port}", f"{user}@localhost:{port}"]
    down = f"{user}@127.0.0.1:{free_port()}"
    result = run_fab(fab, sshd, "setup", "--hosts", ",".join([*good, down]), "--package", str(wheel),
                     *remote_paths(tmp_path), "--flags", "--gpu 8.0 --level 2", "--out", str(tmp_path / "certs"))
    print(result.stdout, result.stderr)  # the table, for `pytest -rP`
    assert result.returncode == 1, result.stdout + result.stderr  # one host is down
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["HOST", "RESULT", "CERTIFICATE", "TENSORFLOW"]
    rows = {line.split()[0]: line for line in lines[1:]}
    for host in good:
        assert rows[host].split()[1:9] == ["success", "certified", "2.21.0", "12.5", "1", "555.42.06",
                                           "900.0", "9.0"], result.stdout
    assert "unreachable" in rows[down] and rows[down].split()[1:3] == ["unknown", "none"]
    assert f"not certified: {down}" in result.stderr
    saved = sorted(p.name for p in (tmp_path / "certs").iterdir())
    assert saved == sorted(h.replace(":", "_") + ".json" for h in good)
    cert = json.loads((tmp_path / "certs" / saved[0]).read_text())
    assert cert["args"][-4:] == ["--gpu", "8.0", "--level", "2"]
    # Each host ran the bootstrap into its own folders, as the cloud layout has it.
    assert (tmp_path / f"127.0.0.1_{port}" / "state" / "SUCCESS").is_file()
    assert (tmp_path / f"localhost_{port}" / "state" / "certificate.json").is_file()

    again = run_fab(fab, sshd, "certificates", "--hosts", ",".join(good), "--json",
                    "--state-dir", str(tmp_path / "{host}" / "state"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert [(r["host"], r["certificate"]) for r in json.loads(again.stdout)] == [(h, "certified") for h in good]


def test_a_failed_setup_is_a_failed_row(fab, sshd, wheel, tmp_path) -> None:
    host = f"{sshd['user']}@127.0.0.1:{sshd['port']}"
    result = run_fab(fab, sshd, "setup", "--hosts", host, "--package", str(wheel), *remote_paths(tmp_path),
                     "--flags", "--fake-rc 1", "--json")
    assert result.returncode == 1
    (row,) = json.loads(result.stdout)
    assert (row["result"], row["certificate"]) == ("failed", "failed")
    assert "failed at setup (exit 1)" in row["note"]


def test_usage_errors(fab, sshd) -> None:
    result = run_fab(fab, sshd, "setup", "--hosts", "h1", "--package", "a", "--repo", "b")
    assert result.returncode == 2 and "exactly one" in result.stderr
    result = run_fab(fab, sshd, "certificates")
    assert result.returncode == 2 and "--hosts" in result.stderr


FAKE_INSTALL_SH = """#!/usr/bin/env bash
# Stands in for a bundle's install.sh (the real one is proven in test_bundle_e2e): it records its
# arguments and writes the certificate a GPU host's setup would.
set -eu
prefix=$2; shift 2
mkdir -p "$prefix/gpuready"
printf '%s\\n' "$@" > "$prefix/gpuready/args"
cat > "$prefix/gpuready/certificate.json" <<'JSON'
{"status": "certified", "level": 2, "tensorflow": {"version": "2.21.0"}, "plan": {"cuda": "12.5"},
 "gpus": [{"index": 0}], "host": {"driver": {"version": "580.65.06"}},
 "throughput": {"gpu_images_per_second": 900.0, "ratio": 9.0}}
JSON
"""


@pytest.mark.parametrize("as_tar", [False, True])
def test_setup_from_a_bundle_copies_it_and_runs_its_install_sh(fab, sshd, tmp_path, as_tar) -> None:
    import tarfile

    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "install.sh").write_text(FAKE_INSTALL_SH)
    (bundle / "manifest.json").write_text("{}")
    given = bundle
    if as_tar:
        given = tmp_path / "b.tar"
        with tarfile.open(given, "w") as archive:
            archive.add(bundle, arcname="b")
    host = f"{sshd['user']}@127.0.0.1:{sshd['port']}"
    result = run_fab(fab, sshd, "setup", "--hosts", host, "--bundle", str(given), *remote_paths(tmp_path),
                     "--flags", "--level 2 --allow-cpu", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = json.loads(result.stdout)
    assert (row["result"], row["certificate"], row["driver"]) == ("success", "certified", "580.65.06")
    label = f"127.0.0.1_{sshd['port']}"
    assert (tmp_path / label / "state" / "bundle.tar").is_file()  # copied over SSH
    assert (tmp_path / label / "env" / "gpuready" / "args").read_text().split() == ["--level", "2", "--allow-cpu"]
    assert not (tmp_path / label / "venv").exists()  # no gpuready installed from an index


def test_a_folder_that_is_not_a_bundle_is_refused(fab, sshd, tmp_path) -> None:
    result = run_fab(fab, sshd, "setup", "--hosts", "h1", "--bundle", str(tmp_path))
    assert result.returncode == 2 and "is not a bundle" in result.stderr
