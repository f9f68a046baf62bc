"""The certificate model (status, exit code, JSON round trip) and its JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from gpuready.model.certificate import (CERTIFIED, CPU_ONLY, FAILED, Certificate, Check, Finding, Throughput,
                                  decide_status, exit_code)
from gpuready.certify.junit import to_junit, write_junit
from gpuready.model.facts import HostFacts
from gpuready.model.records import RecordError


def checks(*statuses: str) -> list[Check]:
    return [Check(name=f"c{i}", level=1, status=s, reason=None if s == "pass" else f"why {i}")
            for i, s in enumerate(statuses)]


@pytest.mark.parametrize("statuses, gpus, status", [
    (("pass", "pass"), 1, CERTIFIED), (("pass", "skip", "warn"), 2, CERTIFIED),
    (("pass", "skip"), 0, CPU_ONLY), (("pass", "fail"), 1, FAILED), (("fail",), 0, FAILED),
])
def test_status_rule(statuses, gpus, status) -> None:
    assert decide_status(checks(*statuses), gpus) == status


def test_exit_codes_follow_product_md() -> None:
    assert exit_code(CERTIFIED) == 0 and exit_code(CERTIFIED, allow_cpu=True) == 0
    assert exit_code(CPU_ONLY) == 3 and exit_code(CPU_ONLY, allow_cpu=True) == 0
    assert exit_code(FAILED) == 1 and exit_code(FAILED, allow_cpu=True) == 1


def sample(status: str = CPU_ONLY) -> Certificate:
    return Certificate(
        status=status, level=2, prefix="/envs/x", env="tf2.21-cpu-py3.11-pip",
        checks=checks("pass", "skip", "fail", "warn"), host=HostFacts(platform="linux-64", python="3.11"),
        tensorflow={"version": "2.21.0"}, gpus=[{"index": 0, "device_name": "NVIDIA A100", "compute_capability": "8.0"}],
        throughput=Throughput(cpu_images_per_second=3640.5, batch_size=128, image_shape=[28, 28, 1]),
        diagnosis=[Finding(id="cpu-only-build", title="A CPU-only TensorFlow build", severity="info", cause="c",
                           fix="f", ref=10, note="n")],
        created="2026-01-01T00:00:00+00:00", gpuready_version="0.1.0", allow_cpu=True, log="/envs/x/gpuready/certify.log",
    )


def test_json_round_trip() -> None:
    cert = sample()
    again = Certificate.parse(cert.dump(), "certificate.json")
    assert again == cert
    assert again.exit_code() == 0, "allow_cpu is recorded"
    assert again.exit_code(allow_cpu=False) == 3
    data = json.loads(cert.dump())
    for key in ("status", "checks", "host", "plan", "lock_sha256", "tensorflow", "throughput", "diagnosis",
                "created", "gpuready_version"):
        assert key in data


@pytest.mark.parametrize("text", ["[]", "{}", '{"status": "great", "level": 2, "prefix": "/x"}',
                                  '{"status": "failed", "level": 2, "prefix": "/x", "checks": [{"name": "a"}]}',
                                  "not json"])
def test_a_malformed_certificate_is_a_clear_error(text: str) -> None:
    with pytest.raises(RecordError, match="certificate.json: ") as caught:
        Certificate.parse(text, "certificate.json")
    assert caught.value.exit_code == 2


def test_junit_has_one_testcase_per_check(tmp_path) -> None:
    path = write_junit(sample(), tmp_path / "certify.xml")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "4"
    suite = root.find("testsuite")
    assert suite.get("failures") == "1" and suite.get("skipped") == "1" and suite.get("errors") == "0"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["c0", "c1", "c2", "c3"]
    assert cases[0].get("classname") == "gpuready.certify.level1"
    assert cases[1].find("skipped").get("message") == "why 1"
    assert cases[2].find("failure").get("message") == "why 2"
    assert "warning: why 3" in cases[3].find("system-out").text
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["status"] == "cpu-only" and props["cpu_images_per_second"] == "3640.5"
    assert "A CPU-only TensorFlow build" in suite.find("system-out").text


def test_junit_escapes_what_it_quotes() -> None:
    base = sample()
    checks = list(base.checks)
    checks[2] = checks[2].model_copy(update={"reason": 'bad <xml> & "quotes"'})
    cert = base.model_copy(update={"checks": tuple(checks)})
    root = ET.fromstring(to_junit(cert))
    assert root.find("testsuite").findall("testcase")[2].find("failure").get("message") == 'bad <xml> & "quotes"'
