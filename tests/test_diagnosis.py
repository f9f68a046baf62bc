"""The diagnosis against log excerpts of every reference failure signature, and against clean
logs (no false alarms). The excerpts under tests/data/logs/ follow TensorFlow's real messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpuready.certify import diagnosis
from gpuready.model import signatures
from gpuready.model.certificate import INFO, PROBLEM
from gpuready.errors import UsageError

LOGS = Path(__file__).parent / "data" / "logs"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "failure-signatures.md"

# log file -> (the cause it must name, the reference row it encodes)
SIGNATURE_LOGS = {
    "sig01-cuda-drivers-not-found.log": ("cuda-driver-not-found", 1),
    "sig02-cannot-dlopen-2.11.log": ("cuda-libraries-not-loaded", 2),
    "sig02-skipping-registering-2.16.log": ("cuda-libraries-not-loaded", 2),
    "sig02-error-loading-cuda-libraries-2.18.log": ("cuda-libraries-not-loaded", 2),
    "sig03-cudnn-version-mismatch.log": ("cudnn-version-mismatch", 3),
    "sig04-cudnn-handle.log": ("cudnn-handle", 4),
    "sig05-libdevice-not-found.log": ("xla-toolchain-missing", 5),
    "sig05-ptxas-not-found.log": ("xla-toolchain-missing", 5),
    "sig06-unsupported-ptx.log": ("unsupported-ptx-version", 6),
    "sig07-blackwell-invalid-ptx.log": ("gpu-arch-unsupported", 7),
    "sig08-cuinit-no-device.log": ("cuda-init-failed", 8),
    # CUDA error 303 is libcuda not loading (CUDA_ERROR_SHARED_OBJECT_INIT_FAILED), not a device
    # problem: reference row 8 lists it, but its advice (CUDA_VISIBLE_DEVICES) points the wrong way.
    "sig08-cuinit-303.log": ("cuda-driver-not-loadable", None),
    "sig08-kernel-driver-not-running.log": ("cuda-init-failed", 8),
    "sig10-cpu-only-build.log": ("cpu-only-build", 10),
    "sig11-nvml-mismatch.log": ("nvml-driver-mismatch", 11),
    "sig12-oom.log": ("out-of-memory", 12),
}
CLEAN_LOGS = ["clean-gpu-2.21.log", "clean-cpu-plain.log", "sig09-factory-noise.log", "info-ptx-jit-h100.log"]


def read(name: str) -> str:
    return (LOGS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(SIGNATURE_LOGS))
def test_each_reference_signature_names_its_cause(name: str) -> None:
    want, ref = SIGNATURE_LOGS[name]
    findings = signatures.diagnose(read(name))
    cause = signatures.primary(findings)
    assert cause is not None and cause.id == want, [f.id for f in findings]
    assert cause.ref == ref
    assert cause.cause and cause.fix and cause.evidence
    assert cause.evidence in read(name) or cause.evidence.endswith("...")


def test_every_row_of_the_reference_table_has_a_signature_and_a_log() -> None:
    loaded = signatures.load_signatures().signatures
    refs = {s.ref for s in loaded if s.ref is not None}
    assert refs == set(range(1, 13))
    covered = {ref for _, ref in SIGNATURE_LOGS.values() if ref} | {9}  # 9 is noise: tested below
    assert covered == set(range(1, 13))
    if REFERENCE.exists():  # the table itself, when the shared folder is beside the checkout
        rows = re.findall(r"^\| (\d+) \|", REFERENCE.read_text(encoding="utf-8"), re.MULTILINE)
        assert {int(r) for r in rows} == refs


@pytest.mark.parametrize("name", CLEAN_LOGS)
def test_clean_logs_raise_no_alarm(name: str) -> None:
    findings = signatures.diagnose(read(name))
    assert signatures.primary(findings) is None, [(f.id, f.evidence) for f in findings]


def test_the_check_log_of_a_cpu_only_host_is_clean_there() -> None:
    text = read("clean-cpu-check-2.21.log")
    assert signatures.primary(signatures.diagnose(text, host_has_gpu=False)) is None
    # The same log from a host with a GPU is the classic "GPU not used": a CPU-only wheel.
    assert signatures.primary(signatures.diagnose(text, host_has_gpu=True)).id == "cpu-only-build"


def test_factory_noise_is_information_never_the_cause() -> None:
    text = read("sig09-factory-noise.log") + read("sig03-cudnn-version-mismatch.log")
    findings = signatures.diagnose(text)
    assert signatures.primary(findings).id == "cudnn-version-mismatch"
    noise = next(f for f in findings if f.id == "factory-registration-noise")
    assert noise.severity == INFO and noise.ref == 9


def test_no_driver_messages_are_harmless_on_a_host_without_gpu() -> None:
    for name in ("sig01-cuda-drivers-not-found.log", "sig08-cuinit-no-device.log"):
        findings = signatures.diagnose(read(name), host_has_gpu=False)
        assert signatures.primary(findings) is None
        assert findings[0].severity == INFO and "no NVIDIA GPU" in findings[0].note
        assert signatures.primary(signatures.diagnose(read(name), host_has_gpu=True)) is not None


def test_the_libraries_the_log_names_are_named() -> None:
    cause = signatures.primary(signatures.diagnose(read("sig02-cannot-dlopen-2.11.log")))
    assert "libcudnn.so.8, libcusolver.so.11" in cause.cause
    cause = signatures.primary(signatures.diagnose(read("sig07-blackwell-invalid-ptx.log")))
    assert "compute capability: 12.0" in cause.cause
    cause = signatures.primary(signatures.diagnose(read("sig03-cudnn-version-mismatch.log")))
    assert "8.7.0 but source was compiled with: 8.9.4" in cause.cause


def test_precedence_the_specific_cause_comes_first() -> None:
    ids = [f.id for f in signatures.diagnose(read("sig11-nvml-mismatch.log"))]
    assert ids[0] == "nvml-driver-mismatch" and "cuda-init-failed" in ids
    # an unsupported PTX version is not reported as an unsupported architecture too
    assert [f.id for f in signatures.diagnose(read("sig06-unsupported-ptx.log"))] == ["unsupported-ptx-version"]


def test_merge_keeps_each_finding_once_problems_first() -> None:
    a = signatures.diagnose(read("sig09-factory-noise.log"))
    b = signatures.diagnose(read("sig12-oom.log"))
    merged = signatures.merge(a, b, b)
    assert [f.id for f in merged] == ["out-of-memory", "factory-registration-noise", "cpu-instructions-noise"]


def test_own_findings_fill_their_templates() -> None:
    found = signatures.finding("check-timeout", level=2, limit=600.0, check="xla", log="/x/certify.log")
    assert "Level 2" in found.cause and "600 s" in found.cause and "'xla'" in found.cause
    assert "/x/certify.log" in found.fix and found.severity == PROBLEM
    assert "?" in signatures.finding("check-crashed").cause, "a missing value never raises"


@pytest.mark.parametrize("text, message", [
    ('[[signature]]\nid = "x"\n', "'title' is required"),
    ('[[signature]]\nid="x"\ntitle="t"\nseverity="problem"\ncause="c"\nfix="f"\nany=["("]\n', "bad regular expression"),
    ('[[signature]]\nid="x"\ntitle="t"\nseverity="fatal"\ncause="c"\nfix="f"\nany=["a"]\n', "severity must be"),
    ('[[signature]]\nid="x"\ntitle="t"\nseverity="info"\ncause="c"\nfix="f"\nany=["a"]\nextra=1\n', "unknown keys"),
    ('[[signature]]\nid="x"\ntitle="t"\nseverity="info"\ncause="c"\nfix="f"\n', "needs 'any' or 'all'"),
    ('[[signature]]\nid="x"\ntitle="t"\nseverity="info"\ncause="c"\nfix="f"\nany=["a"]\n' * 2, "duplicate id"),
    ("not toml [", "signatures file"),
])
def test_malformed_signatures_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        signatures.parse_signatures(text, "custom.toml")


# ----------------------------------------------------------------------------- library probe (pure)


def probe(first_failure=None, driver_ok=True, cuda_build=True, libraries=None):
    libs = libraries if libraries is not None else [
        {"name": "libcudart.so.12", "ok": True, "path": "/env/site/nvidia/cuda_runtime/lib/libcudart.so.12"}]
    return {"tensorflow": {"found": True, "is_cuda_build": cuda_build},
            "driver": {"name": "libcuda.so.1", "ok": driver_ok, "error": None if driver_ok else "libcuda.so.1: nope"},
            "libraries": libs, "first_failure": first_failure}


def test_library_findings_name_the_first_library_that_fails() -> None:
    failed = {"name": "libcusparse.so.12", "ok": False, "path": "/env/nvidia/cusparse/lib/libcusparse.so.12",
              "error": "libnvJitLink.so.12: cannot open shared object file: No such file or directory",
              "missing_dependency": "libnvJitLink.so.12"}
    [found] = diagnosis.library_findings(probe(failed))
    assert found.id == "cuda-library-not-loadable"
    assert "libnvJitLink.so.12 cannot be loaded" in found.cause and "libcusparse.so.12 needs" in found.cause


def test_library_findings_when_everything_loads_point_at_the_search_path() -> None:
    [found] = diagnosis.library_findings(probe())
    assert found.id == "cuda-libraries-load" and found.severity == INFO
    assert "/env/site/nvidia/cuda_runtime/lib" in found.cause


def test_library_findings_report_the_driver_unless_the_host_has_no_gpu() -> None:
    ids = [f.id for f in diagnosis.library_findings(probe(driver_ok=False))]
    assert ids[0] == "cuda-driver-not-loadable"
    assert "cuda-driver-not-loadable" not in [f.id for f in diagnosis.library_findings(probe(driver_ok=False),
                                                                                   host_has_gpu=False)]


def test_library_findings_say_nothing_for_a_cpu_build_or_no_probe() -> None:
    assert diagnosis.library_findings(probe(cuda_build=False)) == []
    assert diagnosis.library_findings(None) == []
    assert diagnosis.library_findings({"error": "boom"}) == []


def test_common_harmless_lines_are_notes() -> None:
    findings = signatures.diagnose(read("sig02-skipping-registering-2.16.log"))
    notes = {f.id for f in findings if f.severity == INFO}
    assert {"tensorrt-not-found", "numa-node-noise"} <= notes
    assert signatures.primary(findings).id == "cuda-libraries-not-loaded"
