"""invoke bundle end to end: the CPU default environment bundled here, then built and certified by
the bundle's install.sh in a network namespace with no network, a clean HOME and PATH=/usr/bin:/bin,
as on an air-gapped host that has only python3."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import promtool, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.network]
ENV = "tf2.21-cpu-py3.11-pip"


def offline(*cmd: str, home: Path, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """Run with no network (a fresh network namespace), a clean environment and the system PATH."""
    return subprocess.run(["unshare", "-n", "env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin", *cmd],
                          capture_output=True, text=True, timeout=timeout, cwd=home)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.skip("unshare -n (a network namespace) is not available here")
    system = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                            capture_output=True, text=True)
    if system.stdout.strip() != "3.11":
        pytest.skip("the CPU default environment is for Python 3.11, and /usr/bin/python3 is another")
    out = tmp_path_factory.mktemp("bundle") / "b"
    result = run_cli("bundle", "--env", ENV, "--out", str(out), timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"wrote {out}:" in result.stdout
    return out


def test_install_sh_builds_and_certifies_with_no_network(bundle, tmp_path) -> None:
    home, prefix = tmp_path / "home", tmp_path / "env"
    home.mkdir()
    run = offline("bash", str(bundle / "install.sh"), "--prefix", str(prefix), "--allow-cpu", home=home)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    certificate = json.loads((prefix / "gpuready" / "certificate.json").read_text())
    assert certificate["status"] == "cpu-only" and certificate["env"] == ENV
    imported = offline(str(prefix / "bin" / "python"), "-c", "import tensorflow as tf; print(tf.__version__)",
                       home=home)
    assert imported.returncode == 0 and imported.stdout.strip().endswith("2.21.0"), imported.stderr[-2000:]

    metrics = tmp_path / "gpuready.prom"
    verified = run_cli("certify", "--prefix", str(prefix), "--verify", "--prom", str(metrics))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    text = metrics.read_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["gpuready_certified"].samples[0].value == 0  # cpu-only: not certified on a GPU
    assert families["gpuready_certificate_verified"].samples[0].value == 1
    tool = promtool()
    if tool is not None:
        checked = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_one_changed_byte_in_one_wheel_stops_the_install_naming_it(bundle, tmp_path) -> None:
    home, prefix, copy = tmp_path / "home", tmp_path / "env", tmp_path / "b"
    home.mkdir()
    shutil.copytree(bundle, copy, copy_function=os.link)
    wheel = next(p for p in sorted((copy / "wheels").iterdir()) if p.name.startswith("tensorflow_cpu-"))
    data = bytearray(wheel.read_bytes())
    wheel.unlink()  # a new file: the hard link to the fixture's wheel stays as it was
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    run = offline("bash", str(copy / "install.sh"), "--prefix", str(prefix), "--allow-cpu", home=home)
    assert run.returncode == 1
    assert f"wheels/{wheel.name}: its sha256 differs from the manifest's" in run.stderr
    assert not prefix.exists()


def test_install_bundle_from_the_checkout_needs_no_network(bundle, tmp_path) -> None:
    prefix = tmp_path / "env"
    invoke = str(Path(sys.executable).with_name("invoke"))
    run = subprocess.run(["unshare", "-n", invoke, "install", "--bundle", str(bundle), "--prefix", str(prefix)],
                         capture_output=True, text=True, timeout=1200,
                         cwd=Path(__file__).resolve().parent.parent)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (prefix / "gpuready" / "install.json").is_file()


def test_the_bootstrap_installs_a_bundle_tar_with_no_network_and_writes_metrics(bundle, tmp_path) -> None:
    """What cloud-init (--bundle-url) and the fleet (fab setup --bundle) run on each host."""
    made = run_cli("bundle", "--env", ENV, "--out", str(tmp_path / "b"), "--tar", timeout=1800)
    assert made.returncode == 0, made.stdout + made.stderr
    tarball = tmp_path / "b.tar"
    sha = next(line.split()[1] for line in made.stdout.splitlines() if line.startswith("sha256 "))
    home, state, prom = tmp_path / "home", tmp_path / "state", tmp_path / "textfile"
    for folder in (home, prom):
        folder.mkdir()
    run = offline("bash", str(Path(__file__).resolve().parent.parent / "scripts" / "bootstrap.sh"),
                  "--bundle-file", str(tarball), "--bundle-sha256", sha, "--prefix", str(tmp_path / "env"),
                  "--state-dir", str(state), "--certificate", str(state / "certificate.json"),
                  "--interpreter", "/usr/bin/python3", "--prom-dir", str(prom), "--", "--allow-cpu", home=home)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads((state / "result.json").read_text())
    assert (result["status"], result["setup_exit_code"]) == ("success", 0)
    assert json.loads((state / "certificate.json").read_text())["status"] == "cpu-only"
    families = {f.name: f for f in text_string_to_metric_families((prom / "gpuready.prom").read_text())}
    assert families["gpuready_certificate_status"].samples
