"""`invoke doctor`: the diagnosis of a log file, an environment, or this host; exit 1 when it
finds a problem, 2 for bad input, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .certify_doubles import bare_env
from .conftest import run_cli
from .test_diagnosis import CLEAN_LOGS, LOGS, SIGNATURE_LOGS

TITLES = {  # what a user reads as the cause, per signature id
    "cuda-driver-not-found": "No CUDA driver found",
    "cuda-libraries-not-loaded": "TensorFlow cannot load its CUDA libraries",
    "cudnn-version-mismatch": "An older cuDNN is loaded than TensorFlow was built with",
    "cudnn-handle": "cuDNN could not be initialised",
    "xla-toolchain-missing": "XLA cannot find libdevice or ptxas",
    "unsupported-ptx-version": "The driver is too old for TensorFlow's PTX",
    "gpu-arch-unsupported": "This GPU architecture is not supported by the TensorFlow build",
    "cuda-init-failed": "CUDA initialisation failed (cuInit)",
    "cuda-driver-not-loadable": "The NVIDIA driver library (libcuda) cannot be loaded",
    "cpu-only-build": "A CPU-only TensorFlow build",
    "nvml-driver-mismatch": "NVIDIA kernel module and driver libraries differ",
    "out-of-memory": "The GPU ran out of memory",
}


@pytest.mark.parametrize("name", sorted(SIGNATURE_LOGS))
def test_doctor_log_names_the_cause_of_each_reference_signature(name: str) -> None:
    want, _ = SIGNATURE_LOGS[name]
    done = run_cli("doctor", "--log", str(LOGS / name))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"Cause: {TITLES[want]}." in done.stdout
    assert "Next step:" in done.stdout and "Traceback" not in done.stderr


@pytest.mark.parametrize("name", CLEAN_LOGS)
def test_doctor_log_on_clean_logs_exits_0(name: str) -> None:
    done = run_cli("doctor", "--log", str(LOGS / name))
    assert done.returncode == 0, done.stdout
    assert "Cause:" not in done.stdout


def test_doctor_log_json() -> None:
    done = run_cli("doctor", "--log", str(LOGS / "sig12-oom.log"), "--json")
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert data["problem"] is True and data["diagnosis"][0]["id"] == "out-of-memory"
    assert data["diagnosis"][0]["ref"] == 12


def test_doctor_reports_harmless_noise_as_a_note() -> None:
    done = run_cli("doctor", "--log", str(LOGS / "sig09-factory-noise.log"))
    assert done.returncode == 0 and "Note: Factory registration messages (harmless)" in done.stdout


@pytest.mark.parametrize("args, message", [
    (("--log", "/no/such/file.log"), "cannot read the log file"),
    (("--prefix", "/no/such/env"), "does not exist"),
    (("--env", "a", "--prefix", "/tmp"), "not both"),
])
def test_doctor_bad_input_exits_2(args: tuple[str, ...], message: str) -> None:
    done = run_cli("doctor", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_doctor_on_an_environment_without_tensorflow(tmp_path: Path) -> None:
    env = bare_env(tmp_path / "env")
    done = run_cli("doctor", "--prefix", str(env), "--json")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["diagnosis"][0]["id"] == "tensorflow-not-installed"
    assert [c["name"] for c in data["checks"] if c["status"] == "fail"] == ["import"]
    assert data["libraries"]["tensorflow"] == {"found": False}
    assert not (env / "gpuready" / "certificate.json").exists(), "doctor certifies nothing"


def test_doctor_on_this_host() -> None:
    done = run_cli("doctor")
    assert done.returncode in (0, 1) and "Diagnosis of this host" in done.stdout
    assert "Traceback" not in done.stderr
