"""Level 0 (no TensorFlow): installed packages against the lock, the lock copy against its
hash, the driver and GPUs against the plan; and `verify`, which setup's no-op path uses.
The environments are real venvs; installed packages are real dist-info metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuready.certify import level0
from gpuready.certify import runner
from gpuready.certify import service
from gpuready.env import inventory
from gpuready.env import layout
from gpuready.model.certificate import FAIL, PASS, SKIP, WARN, Certificate, Check
from gpuready.model.facts import Driver, Gpu, HostFacts
from gpuready.env.layout import certificate_path
from gpuready.model.inputs import inputs_from_plan
from gpuready.model.matrix import load
from gpuready.model.planner import make_plan

from .certify_doubles import add_distribution, bare_env, write_install_record
from .conftest import MATRIX_DIR, run_cli

NO_GPU_HOST = HostFacts(platform="linux-64", python="3.11", glibc="2.36")
GPU_HOST = NO_GPU_HOST.with_(driver=Driver("550.54.14", "12.4", "nvml"),
                             gpus=(Gpu(0, "NVIDIA A100-SXM4-80GB", "8.0", 81920, "GPU-aaaa"),))
MATRIX = load(MATRIX_DIR)
GPU_PLAN = make_plan(GPU_HOST, MATRIX)  # 2.21.0, CUDA 12.5.1 (build), cuDNN 9.24 (known issue)
CPU_PLAN = make_plan(NO_GPU_HOST, MATRIX)


@pytest.fixture
def env(tmp_path: Path) -> Path:
    prefix = bare_env(tmp_path / "env")
    add_distribution(prefix, "absl-py", "2.3.1")
    add_distribution(prefix, "tensorflow-cpu", "2.21.0")
    return prefix


def checks_of(prefix: Path, host: HostFacts = NO_GPU_HOST) -> dict[str, Check]:
    cert = service.certify(prefix, level=0, host=host)
    return {c.name: c for c in cert.checks}


def test_installed_packages_are_the_environments_not_gpureadys(env: Path) -> None:
    installed = inventory.installed_packages(env)
    assert installed == {"absl-py": "2.3.1", "tensorflow-cpu": "2.21.0"}


def test_an_interpreter_that_does_not_run_fails_level_0(env: Path) -> None:
    python = env / "bin" / "python"
    python.unlink()
    python.write_text("#!/bin/sh\necho 'base interpreter is gone' >&2\nexit 127\n")
    python.chmod(0o755)
    check = checks_of(env)["python"]
    assert check.status == FAIL and "exited 127: base interpreter is gone" in check.reason


def test_an_environment_as_locked_passes_level_0(env: Path) -> None:
    write_install_record(env, packages={"absl_py": "2.3.1", "tensorflow-cpu": "2.21.0"}, plan=CPU_PLAN)
    checks = checks_of(env)
    assert {n: c.status for n, c in checks.items()} == {
        "python": PASS, "files-match-record": PASS, "packages-match-lock": PASS, "lock-hash": PASS,
        "driver-meets-plan": PASS, "gpus-meet-plan": PASS}
    cert = layout.read_certificate(env)
    assert cert.status == "cpu-only" and cert.level == 0 and cert.env == "tf2.21-cpu-py3.11-pip"
    assert cert.lock_sha256 and cert.packages == {"absl-py": "2.3.1", "tensorflow-cpu": "2.21.0"}
    assert cert.log is None and not (env / "gpuready" / "certify.log").exists()


def test_packages_that_differ_from_the_lock_fail(env: Path) -> None:
    write_install_record(env, packages={"absl-py": "2.3.0", "tensorflow-cpu": "2.21.0", "numpy": "2.3.4"})
    check = checks_of(env)["packages-match-lock"]
    assert check.status == FAIL
    assert "absl-py is 2.3.1, the lock has 2.3.0" in check.reason and "1 missing: numpy==2.3.4" in check.reason


def test_packages_the_lock_does_not_list_warn(env: Path) -> None:
    add_distribution(env, "pip", "25.0")  # tooling is not reported
    add_distribution(env, "requests", "2.32.0")
    write_install_record(env, packages={"absl-py": "2.3.1", "tensorflow-cpu": "2.21.0"})
    check = checks_of(env)["packages-match-lock"]
    assert check.status == WARN and "requests==2.32.0" in check.reason and "pip" not in check.reason


def test_a_modified_lock_copy_fails(env: Path) -> None:
    write_install_record(env, packages={"absl-py": "2.3.1", "tensorflow-cpu": "2.21.0"})
    (env / "gpuready" / "requirements.txt").write_text("tensorflow-cpu==9.9.9\n")
    check = checks_of(env)["lock-hash"]
    assert check.status == FAIL and "changed since install" in check.reason
    (env / "gpuready" / "requirements.txt").unlink()
    assert checks_of(env)["lock-hash"].reason.endswith("is missing")


def test_a_prefix_gpuready_did_not_build_skips_the_lock_checks_with_the_reason(env: Path) -> None:
    checks = checks_of(env)
    for name in ("packages-match-lock", "lock-hash", "driver-meets-plan", "gpus-meet-plan"):
        assert checks[name].status == SKIP and "not built by gpuready" in checks[name].reason


def test_a_record_without_the_plans_host_skips_the_driver_checks(env: Path) -> None:
    write_install_record(env, packages={"absl-py": "2.3.1", "tensorflow-cpu": "2.21.0"})
    checks = checks_of(env)
    assert checks["driver-meets-plan"].status == SKIP
    assert "which host" in checks["driver-meets-plan"].reason


# ----------------------------------------------------------------------------- driver and GPUs (pure)


def test_driver_meets_the_plan() -> None:
    assert level0.check_driver(GPU_PLAN, GPU_HOST).status == PASS
    newer = GPU_HOST.with_(driver=Driver("570.124.06", "12.8", "nvml"))
    assert level0.check_driver(GPU_PLAN, newer).status == PASS
    older = level0.check_driver(GPU_PLAN, GPU_HOST.with_(driver=Driver("535.104.05", "12.2", "nvml")))
    assert older.status == FAIL and "535.104.05 is older than 550.54.14" in older.reason
    gone = level0.check_driver(GPU_PLAN, NO_GPU_HOST)
    assert gone.status == FAIL and "no NVIDIA driver" in gone.reason
    assert level0.check_driver(CPU_PLAN, NO_GPU_HOST).status == PASS


def test_gpus_meet_the_plan() -> None:
    assert level0.check_gpus(GPU_PLAN, GPU_HOST).status == PASS
    two = GPU_HOST.with_(gpus=GPU_HOST.gpus + (Gpu(1, "NVIDIA L4", "8.9"),))
    differ = level0.check_gpus(GPU_PLAN, two)
    assert differ.status == FAIL and "8.0, 8.9" in differ.reason
    none = level0.check_gpus(GPU_PLAN, NO_GPU_HOST)
    assert none.status == FAIL and "no GPU found" in none.reason
    cpu_plan_gpu_host = level0.check_gpus(CPU_PLAN, GPU_HOST)
    assert cpu_plan_gpu_host.status == WARN and "plan is for the CPU" in cpu_plan_gpu_host.reason


def test_expectations_given_to_the_check() -> None:
    assert runner.expectations(inputs_from_plan(GPU_PLAN), GPU_HOST) == {
        "device": "gpu", "tensorflow": "2.21.0", "cuda": "12.5.1", "cudnn": "9.24", "gpus": 1}
    assert runner.expectations(inputs_from_plan(CPU_PLAN), GPU_HOST) == {
        "device": "cpu", "tensorflow": "2.21.0", "gpus": 0, "no_gpu_reason": "the plan is for the CPU"}
    assert runner.expectations(None, NO_GPU_HOST) == {"gpus": 0, "no_gpu_reason": "no GPU"}
    assert runner.expectations(None, GPU_HOST) == {"gpus": 1}


def test_level_0_status_follows_the_plan(env: Path) -> None:
    write_install_record(env, packages={"absl-py": "2.3.1", "tensorflow-cpu": "2.21.0"}, plan=GPU_PLAN)
    cert = service.certify(env, level=0, host=GPU_HOST)
    assert cert.status == "certified" and cert.exit_code() == 0
    cert = service.certify(env, level=0, host=NO_GPU_HOST)
    assert cert.status == "failed", "a GPU plan on a host without driver fails level 0"


# ----------------------------------------------------------------------------- verify


def certified(env: Path, host: HostFacts = GPU_HOST) -> Certificate:
    write_install_record(env, packages={"absl-py": "2.3.1", "tensorflow-cpu": "2.21.0"}, plan=GPU_PLAN)
    return service.certify(env, level=0, host=host)


def test_verify_holds_for_the_same_host(env: Path) -> None:
    certified(env)
    result = service.verify(env, GPU_HOST)
    assert result.ok and result.reasons == [] and result.certificate.status == "certified"
    assert result.to_dict()["ok"] is True


def test_verify_notices_what_changed(env: Path) -> None:
    certified(env)
    upgraded = GPU_HOST.with_(driver=Driver("570.124.06", "12.8", "nvml"))
    assert service.verify(env, upgraded).reasons == ["the driver changed: 550.54.14 -> 570.124.06"]
    swapped = GPU_HOST.with_(gpus=(Gpu(0, "NVIDIA L4", "8.9", 23034, "GPU-bbbb"),))
    [reason] = service.verify(env, swapped).reasons
    assert "the GPUs changed: NVIDIA A100-SXM4-80GB (8.0) -> NVIDIA L4 (8.9)" == reason
    add_distribution(env, "requests", "2.32.0")
    [reason] = service.verify(env, GPU_HOST).reasons
    assert reason == "the installed packages changed: requests (absent) -> 2.32.0"


def test_verify_notices_a_new_lock_and_a_failed_or_missing_certificate(env: Path) -> None:
    certified(env)
    write_install_record(env, packages={"absl-py": "2.3.1"}, lock_text="tensorflow-cpu==2.20.0\n", plan=GPU_PLAN)
    assert any(r.startswith("the lock changed") for r in service.verify(env, GPU_HOST).reasons)
    certified(env, host=NO_GPU_HOST)  # fails: GPU plan, no driver
    assert "the certificate records a failed certification" in service.verify(env, NO_GPU_HOST).reasons
    certificate_path(env).write_text("{not json")
    assert "unreadable" in service.verify(env, GPU_HOST).reasons[0]
    certificate_path(env).unlink()
    assert service.verify(env, GPU_HOST).reasons[0].startswith("no certificate at")


def test_verify_cli(env: Path) -> None:
    detected = json.loads(run_cli("detect", "--json").stdout)
    host = HostFacts.from_dict({k: v for k, v in detected.items() if k in HostFacts.__dataclass_fields__})
    done = run_cli("certify", "--prefix", str(env), "--verify")
    assert done.returncode == 1 and "no certificate" in done.stdout
    service.certify(env, level=0, host=host)
    done = run_cli("certify", "--prefix", str(env), "--verify", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True
    add_distribution(env, "requests", "2.32.0")
    done = run_cli("certify", "--prefix", str(env), "--verify")
    assert done.returncode == 1 and "requests (absent) -> 2.32.0" in done.stdout
