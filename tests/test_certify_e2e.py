"""End to end with a real TensorFlow: tensorflow-cpu installed from the package index into a
venv made with uv (an environment gpuready did not build), certified on this GPU-less machine.
The GPU code paths of the check run too, with logical CPU devices standing in for GPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gpuready.certify import service
from gpuready.certify.runner import check_script
from gpuready.model.facts import Driver, Gpu, HostFacts

from .conftest import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.network]

TENSORFLOW = os.environ.get("GPUREADY_E2E_TENSORFLOW", "tensorflow-cpu==2.21.0")
GPU_CHECKS = ("gpus-visible", "memory-growth", "gpu-ops", "placement", "mixed-precision", "throughput")


def uv() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


@pytest.fixture(scope="module")
def tf_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("tfcpu") / "env"
    subprocess.run([uv(), "venv", "--quiet", "--python", sys.executable, str(prefix)], check=True, timeout=300)
    subprocess.run([uv(), "pip", "install", "--quiet", "--python", str(prefix / "bin" / "python"), TENSORFLOW],
                   check=True, timeout=1200)
    return prefix


@pytest.fixture(scope="module")
def certified(tf_env: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    junit = tmp_path_factory.mktemp("junit") / "certify.xml"
    done = run_cli("certify", "--prefix", str(tf_env), "--allow-cpu", "--json", "--junit", str(junit), timeout=600)
    return done, junit


def test_level_2_certifies_cpu_only_with_allow_cpu(certified, tf_env: Path) -> None:
    done, _ = certified
    assert done.returncode == 0, done.stderr[-3000:]
    cert = json.loads(done.stdout)
    assert cert["status"] == "cpu-only" and cert["level"] == 2
    assert json.loads((tf_env / "gpuready" / "certificate.json").read_text()) == cert
    checks = {c["name"]: c for c in cert["checks"]}
    assert checks["import"]["status"] == "pass" and checks["build-info"]["details"]["is_cuda_build"] is False
    train = checks["train"]
    assert train["status"] == "pass"
    assert train["details"]["accuracy"] >= 0.9 and train["details"]["final_loss"] < train["details"]["initial_loss"]
    assert checks["xla"]["status"] == "pass"
    for name in GPU_CHECKS:
        assert checks[name]["status"] == "skip" and checks[name]["reason"] == "no GPU", name
    assert cert["throughput"]["cpu_images_per_second"] > 0 and cert["throughput"]["gpu_images_per_second"] is None
    assert cert["tensorflow"]["version"] == TENSORFLOW.split("==")[-1] or "==" not in TENSORFLOW
    assert not [f for f in cert["diagnosis"] if f["severity"] == "problem"]
    assert cert["packages"]["tensorflow-cpu"] and cert["gpuready_version"] and cert["created"]
    assert Path(cert["log"]).is_file() and "[gpuready-check] level 2" in Path(cert["log"]).read_text()
    assert "level 2" in done.stderr, "progress is shown while it runs"


def test_the_junit_file_lists_every_check(certified) -> None:
    done, junit = certified
    cert = json.loads(done.stdout)
    suite = ET.parse(junit).getroot().find("testsuite")
    assert [c.get("name") for c in suite.findall("testcase")] == [c["name"] for c in cert["checks"]]
    assert suite.get("failures") == "0"


def test_without_allow_cpu_a_cpu_only_result_exits_3(tf_env: Path) -> None:
    done = run_cli("certify", "--prefix", str(tf_env), "--level", "1", timeout=300)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "cpu-only" in done.stdout and "--allow-cpu" in done.stdout


def test_verify_and_doctor_after_certify(certified, tf_env: Path) -> None:
    done = run_cli("certify", "--prefix", str(tf_env), "--verify")
    assert done.returncode == 0 and "still holds" in done.stdout
    done = run_cli("doctor", "--prefix", str(tf_env), timeout=300)
    assert done.returncode == 0, done.stdout
    assert "Cause:" not in done.stdout


def run_check(tf_env: Path, tmp_path: Path, *args: str) -> dict:
    done = subprocess.run([str(tf_env / "bin" / "python"), str(check_script()), "--log", str(tmp_path / "check.log"),
                           *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_gpu_code_paths_with_two_simulated_gpus(tf_env: Path, tmp_path: Path, certified) -> None:
    result = run_check(tf_env, tmp_path, "--level", "3", "--simulate-gpus", "2", "--expect-json", '{"gpus": 2}')
    checks = {c["name"]: c for c in result["checks"]}
    assert result["simulated_gpus"] == 2 and len(result["gpus"]) == 2
    for name in ("gpus-visible", "memory-growth", "gpu-ops", "train", "placement", "mixed-precision", "xla",
                 "multi-gpu"):
        assert checks[name]["status"] == "pass", (name, checks[name]["reason"])
    assert checks["mixed-precision"]["details"]["dtypes"]["compute"] == "float16"
    assert checks["multi-gpu"]["details"]["replicas"] == 2
    assert checks["throughput"]["status"] in ("pass", "warn")
    assert result["throughput"]["ratio"] is not None
    # Seeds make the check deterministic: the same training as the real certification.
    cert = json.loads(certified[0].stdout)
    real = next(c for c in cert["checks"] if c["name"] == "train")["details"]
    assert (checks["train"]["details"]["initial_loss"], checks["train"]["details"]["final_loss"]) == \
        (real["initial_loss"], real["final_loss"])


def test_an_old_simulated_gpu_skips_mixed_precision_and_one_skips_multi_gpu(tf_env: Path, tmp_path: Path) -> None:
    result = run_check(tf_env, tmp_path, "--level", "3", "--simulate-gpus", "1",
                       "--expect-json", '{"gpus": 1, "simulated_cc": "6.1"}')
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["mixed-precision"]["status"] == "skip" and "6.1 < 7.0" in checks["mixed-precision"]["reason"]
    assert checks["multi-gpu"]["status"] == "skip" and "only one GPU" in checks["multi-gpu"]["reason"]
    assert checks["train"]["status"] == "pass"


def test_a_gpu_host_where_tensorflow_sees_no_gpu_fails_with_the_cause(tf_env: Path, certified) -> None:
    """The classic: the host has a GPU and a driver, but the environment holds a CPU-only wheel."""
    host = HostFacts(platform="linux-64", python="3.11", glibc="2.36",
                     driver=Driver("550.54.14", "12.4", "nvml"), gpus=(Gpu(0, "NVIDIA A100-SXM4-80GB", "8.0"),))
    kept = (tf_env / "gpuready" / "certificate.json").read_bytes()
    try:
        cert = service.certify(tf_env, level=1, host=host)
    finally:
        (tf_env / "gpuready" / "certificate.json").write_bytes(kept)
    assert cert.status == "failed" and cert.exit_code(allow_cpu=True) == 1
    assert cert.check("gpus-visible").reason == "TensorFlow lists no GPU; the host has 1"
    assert "CPU-only build" in cert.check("build-info").reason
    assert cert.diagnosis[0].id == "cpu-only-build" and cert.diagnosis[0].severity == "problem"
