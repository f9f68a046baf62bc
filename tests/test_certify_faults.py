"""Fault injection: a check process that hangs, is killed, crashes or prints garbage; an
environment without TensorFlow; a prefix that does not exist. Each must end as a `failed`
certificate (or a clear usage error), never as a traceback from gpuready."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from gpuready.certify import runner
from gpuready.certify import service
from gpuready.model.certificate import FAIL, FAILED, PASS, Certificate
from gpuready.errors import UsageError
from gpuready.model.facts import HostFacts
from gpuready.env.layout import certificate_path

from .certify_doubles import MISBEHAVE, bare_env
from .conftest import run_cli

HOST = HostFacts(platform="linux-64", python="3.11", glibc="2.36")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bare_env(tmp_path_factory.mktemp("faults") / "env")


def misbehave(env: Path, behave: str, *, timeout: float = 5.0, level: int = 1,
              extra: tuple[str, ...] = ()) -> Certificate:
    return service.certify(env, level=level, timeout=timeout, host=HOST, script=MISBEHAVE,
                               extra_args=("--behave", behave, *extra))


def test_a_hanging_check_is_stopped_at_the_level_limit_and_keeps_what_it_did(env: Path) -> None:
    started = time.monotonic()
    cert = misbehave(env, "hang", timeout=1.0)
    assert time.monotonic() - started < 10
    assert cert.status == FAILED and cert.exit_code() == 1
    assert cert.check("import").status == PASS, "checks done before the hang are kept"
    limit = cert.check("time-limit")
    assert limit.status == FAIL and limit.level == 1
    assert "level 1 did not finish within 1 s" in limit.reason and "'gpu-ops'" in limit.reason
    ids = [f.id for f in cert.diagnosis]
    assert "check-timeout" in ids
    assert "cudnn-handle" in ids, "the captured log is still diagnosed"
    assert certificate_path(env).is_file()


def test_a_hang_takes_its_children_with_it(env: Path) -> None:
    cert = misbehave(env, "hang-with-child", timeout=1.0)
    assert cert.status == FAILED
    pid = int(Path(cert.log).read_text().split("child pid ")[1].split()[0])
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the check's child {pid} outlived the time limit")


def test_the_limit_is_per_level_not_for_the_whole_run(env: Path) -> None:
    cert = misbehave(env, "slow-levels", timeout=1.5, level=3, extra=("--seconds", "0.8"))
    assert [c.name for c in cert.checks if c.level >= 1] == ["import", "level-1", "level-2", "level-3"]
    assert not cert.failures, cert.failures


@pytest.mark.parametrize("behave, how", [("killed", "killed by SIGKILL"), ("segfault", "killed by SIGSEGV"),
                                         ("silent-exit", "exited 3 without printing a result")])
def test_a_check_that_dies_becomes_a_failed_certificate(env: Path, behave: str, how: str) -> None:
    cert = misbehave(env, behave)
    assert cert.status == FAILED
    process = cert.check("check-process")
    assert process.status == FAIL and how in process.reason and "'gpu-ops'" in process.reason
    assert cert.check("import").status == PASS
    assert cert.diagnosis[0].id == "cudnn-handle", "the log's signature is named first"
    assert "check-crashed" in [f.id for f in cert.diagnosis]


@pytest.mark.parametrize("behave, shown", [("garbage", "Hello from a sitecustomize"),
                                           ("wrong-json", '{"hello": "world"}'),
                                           ("bad-status", '"maybe"')])
def test_output_that_is_not_a_result_becomes_a_failed_certificate(env: Path, behave: str, shown: str) -> None:
    cert = misbehave(env, behave)
    assert cert.status == FAILED
    output = cert.check("check-output")
    assert output.status == FAIL and shown in output.reason
    assert "check-garbage" in [f.id for f in cert.diagnosis]


def test_an_environment_without_tensorflow_fails_with_the_cause(env: Path) -> None:
    cert = service.certify(env, level=2, host=HOST)
    assert cert.status == FAILED
    imported = cert.check("import")
    assert imported.status == FAIL and "ModuleNotFoundError" in imported.reason
    later = [c for c in cert.checks if c.level >= 1 and c.name != "import"]
    assert later and all(c.status == "skip" and "which did not pass" in c.reason for c in later)
    assert cert.diagnosis[0].id == "tensorflow-not-installed"


def test_certify_cli_on_an_environment_without_tensorflow(env: Path, tmp_path: Path) -> None:
    junit = tmp_path / "checks.xml"
    done = run_cli("certify", "--prefix", str(env), "--level", "1", "--json", "--junit", str(junit))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    cert = json.loads(done.stdout)
    assert cert["status"] == "failed"
    assert cert["diagnosis"][0]["id"] == "tensorflow-not-installed"
    assert "<failure" in junit.read_text()


def test_a_prefix_that_does_not_exist_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        service.certify(tmp_path / "nope", host=HOST)
    done = run_cli("certify", "--prefix", str(tmp_path / "nope"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "nope").exists(), "nothing is created for a missing prefix"


def test_a_directory_without_python_is_bad_input(tmp_path: Path) -> None:
    done = run_cli("certify", "--prefix", str(tmp_path))
    assert done.returncode == 2 and "no Python interpreter" in done.stderr


@pytest.mark.parametrize("args, message", [
    (("--level", "4"), "--level must be"), (("--level", "two"), "--level must be"),
    (("--timeout", "soon"), "--timeout must be"), (("--timeout", "-1"), "--timeout must be positive"),
    (("--env", "a", "--prefix", "/tmp"), "not both"),
])
def test_bad_flags_exit_2(env: Path, args: tuple[str, ...], message: str) -> None:
    full = args if "--prefix" in args else ("--prefix", str(env), *args)
    done = run_cli("certify", *full)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_the_human_summary_shows_text_with_brackets_as_written(env: Path) -> None:
    done = run_cli("certify", "--prefix", str(env), "--level", "1")
    assert done.returncode == 1
    assert "Status: failed: 1 check(s) failed: import." in done.stdout
    assert "pip install 'tensorflow[and-cuda]'" in done.stdout, "rich markup must not eat [and-cuda]"
    assert "seen: ModuleNotFoundError: No module named 'tensorflow'" in done.stdout


def test_a_check_that_cannot_start_is_a_failed_check(env: Path, tmp_path: Path) -> None:
    run = runner.run_check(tmp_path / "no-python", 1, expect={}, log=tmp_path / "log",
                                limits={1: 5.0}, env={})
    [check] = run.checks
    assert check.name == "check-process" and check.status == FAIL and "could not be started" in check.reason


@pytest.mark.parametrize("behave, quoted", [
    ("fail-unknown", "CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access was encountered"),
    ("fail-quiet", "gpu-ops: the GPU's matmul differs from the CPU's by 3.5"),
])
def test_a_failed_certificate_always_names_a_cause(env: Path, behave: str, quoted: str) -> None:
    cert = misbehave(env, behave)
    assert cert.status == FAILED
    cause = next(f for f in cert.diagnosis if f.severity == "problem")
    assert cause.id == "unrecognised-error" and quoted in cause.cause
