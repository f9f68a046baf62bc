"""A certificate's claims must follow from its recorded checks (`certify.evidence`).

The certificate of a GPU run (tests/certify_doubles/gpu_run.py: no GPU exists here) is accepted as
recorded; every forgery made from it by editing the JSON is named. The forgeries of a real level-0
certificate through `certify --verify` and setup's no-op are in test_certify_forgery.py."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from gpuready.certify.evidence import inconsistencies
from gpuready.model.certificate import Certificate, Throughput

from .certify_doubles.gpu_run import gpu_certificate


def edit_check(cert: Certificate, name: str, status: str | None = None, **details: Any) -> Certificate:
    checks = tuple(c.model_copy(update={"status": status or c.status, "details": {**c.details, **details}})
                   if c.name == name else c for c in cert.checks)
    return cert.model_copy(update={"checks": checks})


def drop_checks(cert: Certificate, level: int) -> Certificate:
    return cert.model_copy(update={"checks": tuple(c for c in cert.checks if c.level < level)})


def test_a_gpu_certificate_as_recorded_follows_from_its_checks() -> None:
    cert = gpu_certificate()
    assert cert.status == "certified" and cert.level == 2
    assert inconsistencies(cert) == []
    again = Certificate.parse(cert.dump(), "certificate.json")
    assert inconsistencies(again) == [], "the JSON round trip keeps it consistent"


FORGERIES: dict[str, tuple[Callable[[Certificate], Certificate], str]] = {
    "a failed check flipped to pass, its figures left": (
        lambda c: edit_check(c, "train", accuracy=0.41), "train is pass but its recorded figures say: training: "
                                                         "accuracy 0.410 is below the bar 0.90"),
    "the GPU op check passed with a wrong result": (
        lambda c: edit_check(c, "gpu-ops", results=[{**c.check("gpu-ops").details["results"][0],
                                                      "conv_rel_error": 0.3}]), "differs from the CPU by 0.3"),
    "the GPU op check passed although it ran on the CPU": (
        lambda c: edit_check(c, "gpu-ops", results=[{**c.check("gpu-ops").details["results"][0],
                                                      "matmul_device": "/device:CPU:0"}]), "ran on /device:CPU:0"),
    "the GPU op check's failure turned into a skip": (
        lambda c: edit_check(c, "gpu-ops", status="skip"), "gpu-ops is skipped although the recorded GPUs (1)"),
    "variables on the CPU, placement passed": (
        lambda c: edit_check(c, "placement", variable_devices=["/device:CPU:0"]), "variables are not on a GPU"),
    "mixed precision computing in float32": (
        lambda c: edit_check(c, "mixed-precision", dtypes={"compute": "float32"}), "computing in float32"),
    "the driver check flipped": (
        lambda c: c.model_copy(update={"host": c.host.with_(driver=c.host.driver.__class__("535.104.05", "12.2",
                                                                                         "nvml"))}),
        "driver-meets-plan is pass, but the recorded plan and host give fail"),
    "the status edited: failed to certified": (
        lambda c: edit_check(c, "xla", status="fail"), "the status is certified, but the recorded checks give failed"),
    "the level edited upwards": (
        lambda c: c.model_copy(update={"level": 3}), "level 3 is claimed but level 3's check multi-gpu is not recorded"),
    "a level claimed with only level 0 recorded": (
        lambda c: drop_checks(c, 1).model_copy(update={"throughput": None}),
        "level 2 is claimed but level 1's checks import, build-info"),
    "the GPU throughput edited": (
        lambda c: c.model_copy(update={"throughput": c.throughput.model_copy(update={"gpu_images_per_second": 99999.0})}),
        "the certificate's gpu_images_per_second is 99999.0; the throughput check measured 21000.5"),
    "a GPU throughput claimed without the throughput check passing": (
        lambda c: edit_check(c, "throughput", status="skip"),
        "a GPU throughput of 21000.5 images/s is claimed but the throughput check is skip"),
    "a throughput ratio edited in the check too": (
        lambda c: edit_check(c, "throughput", ratio=60.0).model_copy(
            update={"throughput": c.throughput.model_copy(update={"ratio": 60.0})}),
        "records a ratio of 60.0; its figures give 6.0"),
    "a CPU-only run edited into certified": (
        lambda c: c.model_copy(update={"gpus": (), "status": "certified"}), "gpus-visible records 1 GPU(s); the "
                                                                              "certificate lists 0"),
    "a check moved to another level": (
        lambda c: c.model_copy(update={"checks": tuple(x.model_copy(update={"level": 0}) if x.name == "train" else x
                                                       for x in c.checks)}), "train is a level 2 check, recorded at level 0"),
    "a modified file hidden in the file check": (
        lambda c: edit_check(c, "files-match-record", mismatches=1, modified=["tensorflow/__init__.py"]),
        "files-match-record is pass but records 1 file(s) that differ"),
}


@pytest.mark.parametrize("name", FORGERIES)
def test_each_forgery_is_named(name: str) -> None:
    forge, expected = FORGERIES[name]
    problems = inconsistencies(forge(gpu_certificate()))
    assert any(expected in p for p in problems), problems


def test_a_cpu_only_certificate_edited_into_a_gpu_one_is_refused() -> None:
    """Everything a GPU run shows, claimed without the GPU check passing."""
    cert = edit_check(gpu_certificate(), "gpu-ops", status="fail")
    cert = cert.model_copy(update={"status": "certified"})
    problems = inconsistencies(cert)
    assert "certified on the GPU without the GPU check (gpu-ops) passing" in problems
    assert any(p.startswith("the status is certified, but the recorded checks give failed") for p in problems)
    no_throughput = gpu_certificate().model_copy(update={"throughput": Throughput()})
    assert any("gpu_images_per_second is None" in p for p in inconsistencies(no_throughput))


def test_a_plan_and_inputs_for_different_devices_are_refused() -> None:
    cert = gpu_certificate()
    cpu_inputs = cert.inputs.model_copy(update={"device": "cpu"})
    problems = inconsistencies(cert.model_copy(update={"inputs": cpu_inputs}))
    assert "the plan is for the gpu, the lock's inputs for the cpu" in problems
