"""Host detection (`gpuready.detect`, `invoke detect`).

The driver and GPUs are played by test doubles (tests/detect_doubles/): a fake pynvml object and
a fake `nvidia-smi` executable put first on PATH, answering from recorded outputs, plus a fake
root folder holding proc/, dev/ and usr/lib/wsl/lib. The real machine (no GPU, no driver) is
checked through the real `invoke detect --json` and `gpuready detect --json`.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pynvml
import pytest
from rich.console import Console

from gpuready import detect as D
from gpuready.model.facts import Container, Driver, Gpu, HostFacts, Probe
from gpuready.cli.render import show_facts
from gpuready.model.planner import make_plan

from .conftest import ROOT, run_cli
from .detect_doubles.corpus import install
from .detect_doubles.fake_nvml import A100, RTX3080, T4, FakeGpu, FakeNvml

DOUBLES = Path(__file__).resolve().parent / "detect_doubles"
RECORDED = DOUBLES / "recorded"
QUERY = ["--query-gpu=driver_version,name,compute_cap,memory.total,uuid", "--format=csv,noheader,nounits"]
QUERY_R470 = ["--query-gpu=driver_version,name,memory.total,uuid", "--format=csv,noheader,nounits"]
BANNER: list[str] = []

A100_T4 = {"query": {"stdout": "a100_t4.query.csv"}, "banner": {"stdout": "a100_t4.banner.txt"}}


def no_nvml() -> FakeNvml:
    """NVML as on this machine: the library is not there."""
    return FakeNvml(fail={"nvmlInit": pynvml.NVMLError_LibraryNotFound()})


class FakeHost:
    """A root folder (proc/, dev/, usr/lib/wsl/lib) and a PATH holding only our doubles."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "root"
        for folder in ("proc", "dev"):
            (self.root / folder).mkdir(parents=True)
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.environ: dict[str, str] = {"PATH": str(self.bin)}
        self.smi_dir: Path | None = None

    def smi(self, scenario: dict[str, Any], folder: Path | None = None) -> Path:
        """Install the fake nvidia-smi (first on PATH unless `folder` says elsewhere)."""
        folder = folder or self.bin
        self.smi_dir = folder
        return install(folder, "nvidia-smi", {"recorded": str(RECORDED), **scenario})

    def calls(self) -> list[list[str]]:
        if self.smi_dir is None or not (self.smi_dir / "nvidia-smi.calls").exists():
            return []
        lines = (self.smi_dir / "nvidia-smi.calls").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def write(self, relative: str, text: str = "") -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def proc_version(self, recorded: str) -> None:
        self.write("proc/driver/nvidia/version", (RECORDED / recorded).read_text(encoding="utf-8"))

    def wsl(self) -> None:
        self.write("proc/sys/kernel/osrelease", "5.15.133.1-microsoft-standard-WSL2\n")

    def detect(self, matrix: Any, nvml: Any = None, **kwargs: Any) -> HostFacts:
        options = {"sys_platform": "linux", "machine": "x86_64", "glibc": lambda: "2.36",
                   "smi_timeout": 10.0, **kwargs}
        return D.detect_host(matrix, nvml=no_nvml() if nvml is None else nvml, root=self.root,
                             environ=self.environ, **options)


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


def names(facts: HostFacts) -> list[str]:
    return [p.name for p in facts.probes]


def probe(facts: HostFacts, name: str) -> Probe:
    return next(p for p in facts.probes if p.name == name)


# --------------------------------------------------------------------------- plain facts


@pytest.mark.parametrize("sys_platform, machine, expected", [
    ("linux", "x86_64", "linux-64"),
    ("linux", "aarch64", "linux-aarch64"),
    ("linux", "arm64", "linux-aarch64"),
    ("darwin", "arm64", "osx-arm64"),
    ("darwin", "x86_64", "osx-64"),
    ("win32", "AMD64", "win-64"),
    ("linux", "ppc64le", "linux-ppc64le"),
])
def test_platform(sys_platform: str, machine: str, expected: str) -> None:
    assert D.host_platform(sys_platform, machine) == expected


def test_platform_and_python_of_this_interpreter() -> None:
    assert D.host_platform() == D.host_platform(sys.platform, platform.machine())
    assert D.python_version() == f"{sys.version_info.major}.{sys.version_info.minor}"


def _raises(*_: Any) -> Any:
    raise ValueError("unrecognized configuration name")


@pytest.mark.parametrize("confstr, libc_ver, expected", [
    (lambda name: "glibc 2.36", lambda: ("", ""), "2.36"),
    (lambda name: "glibc 2.17", lambda: ("", ""), "2.17"),
    (_raises, lambda: ("glibc", "2.31"), "2.31"),  # no CS_GNU_LIBC_VERSION: platform.libc_ver
    (lambda name: None, lambda: ("glibc", "2.28.9000"), "2.28"),
    (lambda name: None, lambda: ("", ""), None),  # musl, macOS
    (_raises, _raises, None),
])
def test_glibc(confstr: Any, libc_ver: Any, expected: str | None) -> None:
    assert D.glibc_version(confstr, libc_ver) == expected


def test_conda_executables_are_full_paths_in_order(host: FakeHost, matrix: Any) -> None:
    for name in ("micromamba", "conda"):
        exe = host.bin / name
        exe.write_text("#!/bin/sh\n", encoding="utf-8")
        exe.chmod(0o755)
    (host.bin / "mamba").write_text("not executable", encoding="utf-8")
    facts = host.detect(matrix)
    assert facts.conda == (str(host.bin / "conda"), str(host.bin / "micromamba"))


# --------------------------------------------------------------------------- NVML


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_nvml_two_kinds_of_gpu(host: FakeHost, matrix: Any, as_bytes: bool) -> None:
    host.smi(A100_T4)  # there, but NVML answers first
    nvml = FakeNvml(as_bytes=as_bytes)
    facts = host.detect(matrix, nvml)
    assert facts.driver == Driver("535.104.05", "12.2", "nvml")
    assert facts.gpus == (
        Gpu(0, "NVIDIA A100-SXM4-80GB", "8.0", 81920, A100.uuid),
        Gpu(1, "Tesla T4", "7.5", 15360, T4.uuid),
    )
    assert names(facts) == ["nvml"]
    assert facts.probes[0].ok
    assert "NVIDIA A100-SXM4-80GB (8.0), Tesla T4 (7.5)" in facts.probes[0].detail
    assert nvml.calls[-1] == "nvmlShutdown"
    assert host.calls() == []


@pytest.mark.parametrize("error, detail", [
    (pynvml.NVMLError_LibraryNotFound(), "libnvidia-ml.so.1 not found"),
    (pynvml.NVMLError_DriverNotLoaded(), "nvmlInit failed: Driver Not Loaded"),
    (pynvml.NVMLError_LibRmVersionMismatch(), "nvmlInit failed: RM has detected an NVML/RM version mismatch."),
    (pynvml.NVMLError_NoPermission(), "nvmlInit failed: Insufficient Permissions"),
    (OSError("libnvidia-ml.so.1: cannot open shared object file"), "nvmlInit failed: libnvidia-ml.so.1"),
])
def test_nvml_init_failure_falls_back(host: FakeHost, matrix: Any, error: BaseException, detail: str) -> None:
    host.smi(A100_T4)
    nvml = FakeNvml(fail={"nvmlInit": error})
    facts = host.detect(matrix, nvml)
    assert names(facts) == ["nvml", "nvidia-smi"]
    assert not facts.probes[0].ok and facts.probes[0].detail.startswith(detail)
    assert facts.driver == Driver("535.104.05", "12.2", "nvidia-smi")
    assert "nvmlShutdown" not in nvml.calls  # nothing to shut down


def test_nvml_a_gpu_that_fails_is_kept_broken_and_the_others_kept(host: FakeHost, matrix: Any) -> None:
    host.smi(A100_T4)
    nvml = FakeNvml(fail={"nvmlDeviceGetName:1": pynvml.NVMLError_GpuIsLost()})
    facts = host.detect(matrix, nvml)
    assert probe(facts, "nvml").ok and "GPU 1 not usable (nvmlDeviceGetName failed: GPU is lost)" in \
        probe(facts, "nvml").detail
    assert nvml.calls[-1] == "nvmlShutdown"
    assert facts.driver.source == "nvml" and host.calls() == [], "NVML's list is kept: nvidia-smi is not asked"
    assert facts.gpus[0] == Gpu(0, "NVIDIA A100-SXM4-80GB", "8.0", 81920, A100.uuid)
    assert not facts.gpus[1].healthy and facts.gpus[1].problem == "nvmlDeviceGetName failed: GPU is lost"
    assert facts.usable_gpus == facts.gpus[:1]
    assert [n.code for n in facts.problems] == ["gpus-broken"]
    assert names(facts) == ["nvml", "kernel-log"], "a broken GPU sends detection to the kernel log"


@pytest.mark.parametrize("error, healthy", [
    (pynvml.NVMLError_NotSupported(), True),  # a GB10 has no dedicated memory to report
    (pynvml.NVMLError_FunctionNotFound(), True),
    (pynvml.NVMLError_Unknown(), False),  # tests/data/corpus/nvidia-smi/074: fields say Unknown Error
])
def test_nvml_an_optional_query_that_fails_leaves_the_field_unknown(host: FakeHost, matrix: Any,
                                                                    error: BaseException, healthy: bool) -> None:
    nvml = FakeNvml(fail={"nvmlDeviceGetMemoryInfo:0": error})
    facts = host.detect(matrix, nvml)
    assert [g.index for g in facts.gpus] == [0, 1], "the list is never dropped for one query"
    assert facts.gpus[0].memory_mib is None and facts.gpus[0].name == A100.name
    assert facts.gpus[0].healthy is healthy
    assert facts.gpus[1] == Gpu(1, "Tesla T4", "7.5", 15360, T4.uuid)
    assert facts.driver == Driver("535.104.05", "12.2", "nvml")


def test_nvml_a_handle_that_cannot_be_had_is_a_broken_gpu(host: FakeHost, matrix: Any) -> None:
    facts = host.detect(matrix, FakeNvml(fail={"nvmlDeviceGetHandleByIndex:0": pynvml.NVMLError_Unknown()}))
    assert facts.gpus[0] == Gpu(0, "", None, healthy=False, problem="nvmlDeviceGetHandleByIndex failed: Unknown Error")
    assert facts.gpus[1].name == "Tesla T4" and facts.gpus[1].healthy


def test_nvml_partial_driver_kept_when_nothing_else_answers(host: FakeHost, matrix: Any) -> None:
    nvml = FakeNvml(fail={"nvmlDeviceGetCount": pynvml.NVMLError_Unknown()})
    facts = host.detect(matrix, nvml)
    assert names(facts) == ["nvml", "nvidia-smi", "proc"]
    assert facts.driver == Driver("535.104.05", "12.2", "nvml")
    assert facts.gpus == ()  # no GPU list we can trust


def test_nvml_mig_instances(host: FakeHost, matrix: Any) -> None:
    instances = tuple(FakeGpu("NVIDIA A100-SXM4-80GB MIG 1g.10gb", (8, 0), 9984, f"MIG-{i}fdaf0a5-179b-f636-d15d")
                      for i in range(3))
    nvml = FakeNvml(gpus=(FakeGpu(A100.name, A100.cc, A100.memory_mib, A100.uuid, mig_devices=instances), T4))
    facts = host.detect(matrix, nvml)
    assert facts.gpus[0].mig and not facts.gpus[1].mig and facts.mig
    assert [(m.gpu, m.index, m.profile, m.memory_mib) for m in facts.mig_devices] == [
        (0, 0, "1g.10gb", 9984), (0, 1, "1g.10gb", 9984), (0, 2, "1g.10gb", 9984)]
    mig = next(n for n in facts.notes if n.code == "mig-enabled")
    assert not mig.problem and "3 MIG instances" in mig.message and "CUDA_VISIBLE_DEVICES=MIG-" in mig.fix


@pytest.mark.parametrize("nvml, cuda, note", [
    (FakeNvml(cuda=12040), "12.4", "CUDA 12.4"),
    (FakeNvml(cuda=11040, driver="470.82.01"), "11.4", "CUDA 11.4"),
    (FakeNvml(missing=("nvmlSystemGetCudaDriverVersion_v2",), cuda=12020), "12.2", "CUDA 12.2"),
    (FakeNvml(fail={"nvmlSystemGetCudaDriverVersion_v2": pynvml.NVMLError_FunctionNotFound(),
                    "nvmlSystemGetCudaDriverVersion": pynvml.NVMLError_NotSupported()}),
     "12.2", "derived from the matrix's Linux driver column"),
    (FakeNvml(cuda=0), "12.2", "derived from the matrix"),
], ids=["v2", "r470", "v1-only", "both-fail", "zero"])
def test_nvml_cuda(host: FakeHost, matrix: Any, nvml: FakeNvml, cuda: str, note: str) -> None:
    facts = host.detect(matrix, nvml)
    assert facts.driver.cuda == cuda
    assert note in facts.probes[0].detail


def test_nvml_garbage_driver_is_a_failed_probe(host: FakeHost, matrix: Any) -> None:
    facts = host.detect(matrix, FakeNvml(driver="ERR!"))
    assert not facts.probes[0].ok and "NVML gave a malformed driver version 'ERR!'" in facts.probes[0].detail
    assert facts.gpus == ()


@pytest.mark.parametrize("nvml, detail", [
    (FakeNvml(gpus=(FakeGpu("\x07\x08", (8, 0), 1, A100.uuid), T4)), "malformed GPU name"),
    (FakeNvml(gpus=(FakeGpu("Tesla T4", (7, 5), 1, "not-a-uuid"), T4)), "malformed GPU UUID"),
    (FakeNvml(gpus=(FakeGpu("Tesla T4", (75, 10), 1, T4.uuid), T4)), "malformed compute capability '75.10'"),
])
def test_nvml_garbage_about_one_gpu_breaks_that_gpu(host: FakeHost, matrix: Any, nvml: FakeNvml, detail: str) -> None:
    facts = host.detect(matrix, nvml)
    assert not facts.gpus[0].healthy and detail in facts.gpus[0].problem
    assert facts.gpus[1] == Gpu(1, "Tesla T4", "7.5", 15360, T4.uuid)


def test_nvml_not_installed(host: FakeHost, matrix: Any) -> None:
    facts = D.detect_host(matrix, nvml=D.NO_NVML, root=host.root, environ=host.environ)
    assert facts.probes[0] == Probe("nvml", False, "nvidia-ml-py (module pynvml) is not installed")


def test_nvml_zero_gpus_is_an_answer(host: FakeHost, matrix: Any) -> None:
    facts = host.detect(matrix, FakeNvml(gpus=()))
    assert facts.driver.present and facts.gpus == ()
    assert names(facts) == ["nvml"] and "0 GPUs" in facts.probes[0].detail


# --------------------------------------------------------------------------- nvidia-smi


def test_smi_two_kinds_of_gpu(host: FakeHost, matrix: Any) -> None:
    host.smi(A100_T4)
    facts = host.detect(matrix)
    assert facts.driver == Driver("535.104.05", "12.2", "nvidia-smi")
    assert facts.gpus == (
        Gpu(0, "NVIDIA A100-SXM4-80GB", "8.0", 81920, A100.uuid),
        Gpu(1, "Tesla T4", "7.5", 15360, T4.uuid),
    )
    assert names(facts) == ["nvml", "nvidia-smi"]
    assert probe(facts, "nvml").detail.startswith("libnvidia-ml.so.1 not found")
    assert probe(facts, "nvidia-smi").ok
    assert "CUDA 12.2 (banner)" in probe(facts, "nvidia-smi").detail
    assert host.calls() == [QUERY, BANNER]


def test_smi_r470_without_compute_cap(host: FakeHost, matrix: Any) -> None:
    host.smi({"query": {"stdout": "r470.query_error.txt", "exit": 2},
              "query_r470": {"stdout": "r470.query.csv"},
              "banner": {"stdout": "r470.banner.txt"}})
    facts = host.detect(matrix)
    assert host.calls() == [QUERY, QUERY_R470, BANNER]
    assert facts.driver == Driver("470.82.01", "11.4", "nvidia-smi")
    assert facts.gpus == (
        Gpu(0, "Tesla T4", "7.5", 15109, T4.uuid),  # from the matrix's name table
        Gpu(1, "Quadro K6000", None, 12204, "GPU-77aa11bb-22cc-33dd-44ee-55ff66778899"),  # unknown
    )
    detail = probe(facts, "nvidia-smi").detail
    assert "R470" in detail and "compute capability unknown" in detail


def test_smi_r470_retry_failing_too(host: FakeHost, matrix: Any) -> None:
    host.smi({"query": {"stdout": "r470.query_error.txt", "exit": 2},
              "query_r470": {"stdout": "no_driver.smi.txt", "exit": 9}})
    facts = host.detect(matrix)
    assert host.calls() == [QUERY, QUERY_R470]
    detail = probe(facts, "nvidia-smi").detail
    assert "R470" in detail and "exited with status 9: NVIDIA-SMI has failed" in detail
    assert not facts.driver.present


@pytest.mark.parametrize("scenario, detail", [
    ({"query": {"stdout": "no_driver.smi.txt", "exit": 9}},
     "nvidia-smi exited with status 9: NVIDIA-SMI has failed because it couldn't communicate"),
    ({"query": {"stdout": "no_devices.smi.txt", "exit": 6}}, "exited with status 6: No devices were found"),
    ({"query": {"stderr": "boom", "exit": 1}}, "exited with status 1: boom"),
    ({"query": {"signal": "SIGSEGV"}}, "nvidia-smi was killed by SIGSEGV (segmentation fault)"),
    ({"query": {"signal": "SIGABRT"}}, "killed by SIGABRT"),
    ({"query": {"text": ""}}, "nvidia-smi printed no GPU line"),
    ({"query": {"text": "535.104.05, Tesla T4, 7.5\n"}}, "has 3 fields, expected 5"),
    ({"query": {"text": "535.104.05, A, 8.0, 1, " + A100.uuid + "\n535.54.03, B, 8.0, 1, " + T4.uuid + "\n"}},
     "line 2: driver 535.54.03 differs from 535.104.05"),
    ({"query": {"text": "Segmentation fault\n"}}, "has 1 fields, expected 5"),
], ids=["no-driver", "no-devices", "exit-1", "segfault", "abort", "empty", "fields", "two-drivers", "prose"])
def test_smi_failure_falls_back_to_proc(host: FakeHost, matrix: Any, scenario: dict[str, Any],
                                        detail: str) -> None:
    host.smi(scenario)
    host.proc_version("proc_version.535.txt")
    facts = host.detect(matrix)
    assert names(facts) == ["nvml", "nvidia-smi", "proc", "kernel-log"]
    smi = probe(facts, "nvidia-smi")
    assert not smi.ok and detail in smi.detail, smi.detail
    assert facts.driver == Driver("535.104.05", "12.2", "proc", kernel_module="535.104.05")
    assert facts.gpus == ()
    assert probe(facts, "proc").ok


@pytest.mark.parametrize("row, problem", [
    ("535.104.05, Tesla T4, 7.5, lots, " + T4.uuid, "memory.total 'lots', not a whole number of MiB"),
    ("535.104.05, Tesla T4, sm75, 15360, " + T4.uuid, "malformed compute capability 'sm75'"),
    ("535.104.05, Tesla T4, 7.5, 15360, ???", "malformed GPU UUID '???'"),
    ("535.104.05, \udcff\udcfe, 7.5, 15360, " + T4.uuid, "malformed GPU name"),
    ("535.104.05, [Unknown Error], [N/A], 15360, " + T4.uuid, "nvidia-smi shows name as [Unknown Error]"),
    ("535.104.05, ERR!, ERR!, ERR!, ERR!", "nvidia-smi shows name as ERR!"),
], ids=["memory", "cc", "uuid", "binary", "unknown-error", "err"])
def test_smi_a_bad_row_breaks_its_gpu_and_keeps_the_others(host: FakeHost, matrix: Any, row: str,
                                                           problem: str) -> None:
    host.smi({"query": {"text": "535.104.05, NVIDIA A100-SXM4-80GB, 8.0, 81920, " + A100.uuid + "\n" + row + "\n"},
              "banner": {"stdout": "a100_t4.banner.txt"}})
    facts = host.detect(matrix)
    assert facts.gpus[0] == Gpu(0, "NVIDIA A100-SXM4-80GB", "8.0", 81920, A100.uuid)
    assert not facts.gpus[1].healthy and problem in facts.gpus[1].problem, facts.gpus[1]
    assert facts.driver == Driver("535.104.05", "12.2", "nvidia-smi")


def test_smi_timeout_is_short_and_recorded(host: FakeHost, matrix: Any) -> None:
    host.smi({"query": {"sleep": 30, "stdout": "a100_t4.query.csv"}})
    start = time.monotonic()
    facts = host.detect(matrix, smi_timeout=0.5)
    assert time.monotonic() - start < 5
    assert "did not answer within 0.5 s" in probe(facts, "nvidia-smi").detail
    assert not facts.driver.present


def test_smi_that_cannot_be_executed(host: FakeHost, matrix: Any) -> None:
    exe = host.bin / "nvidia-smi"
    exe.write_bytes(b"\x7fELF\x00garbage")
    exe.chmod(0o755)
    facts = host.detect(matrix)
    assert "could not be started" in probe(facts, "nvidia-smi").detail


def test_smi_not_found(host: FakeHost, matrix: Any) -> None:
    facts = host.detect(matrix)
    assert probe(facts, "nvidia-smi") == Probe("nvidia-smi", False, "nvidia-smi not found on PATH")


@pytest.mark.parametrize("banner, cuda, note", [
    ({"stdout": "wsl_err.banner.txt"}, "12.2", "the banner says CUDA Version: ERR!"),
    ({"text": "no table here\n"}, "12.2", "the banner shows no CUDA Version"),
    ({"signal": "SIGSEGV"}, "12.2", "banner unavailable: nvidia-smi was killed by SIGSEGV"),
    ({"stdout": "r470.banner.txt"}, "11.4", "CUDA 11.4 (banner)"),  # the banner wins over the table
])
def test_smi_cuda_from_banner_or_matrix(host: FakeHost, matrix: Any, banner: dict[str, Any], cuda: str,
                                        note: str) -> None:
    host.smi({"query": {"stdout": "a100_t4.query.csv"}, "banner": banner})
    facts = host.detect(matrix)
    assert facts.driver == Driver("535.104.05", cuda, "nvidia-smi")
    assert note in probe(facts, "nvidia-smi").detail
    assert len(facts.gpus) == 2


def test_smi_na_fields(host: FakeHost, matrix: Any) -> None:
    host.smi({"query": {"text": "550.54.15, NVIDIA L4, [N/A], [N/A], [N/A]\n"}, "banner": {"text": ""}})
    facts = host.detect(matrix)
    assert facts.gpus == (Gpu(0, "NVIDIA L4", "8.9", None, None),)
    assert facts.driver == Driver("550.54.15", "12.4", "nvidia-smi")


# --------------------------------------------------------------------------- /proc


@pytest.mark.parametrize("recorded, version, cuda", [
    ("proc_version.535.txt", "535.104.05", "12.2"),
    ("proc_version.open_550.txt", "550.54.15", "12.4"),
    ("proc_version.aarch64_570.txt", "570.124.06", "12.8"),
])
def test_proc_version(host: FakeHost, matrix: Any, recorded: str, version: str, cuda: str) -> None:
    host.proc_version(recorded)
    facts = host.detect(matrix)
    assert facts.driver == Driver(version, cuda, "proc", kernel_module=version)
    assert facts.gpus == ()
    assert names(facts) == ["nvml", "nvidia-smi", "proc", "kernel-log"]
    assert probe(facts, "proc").detail.startswith(f"kernel module {version}, CUDA {cuda} derived")


@pytest.mark.parametrize("text, detail", [
    ("", "holds no kernel module version"),
    ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  banana  today\n", "holds no kernel module version"),
])
def test_proc_garbage(host: FakeHost, matrix: Any, text: str, detail: str) -> None:
    host.write("proc/driver/nvidia/version", text)
    facts = host.detect(matrix)
    assert detail in probe(facts, "proc").detail and not facts.driver.present


def test_no_driver_at_all(host: FakeHost, matrix: Any) -> None:
    facts = host.detect(matrix)
    assert facts.driver == Driver(None, None, None)
    assert facts.gpus == ()
    assert [(p.name, p.ok) for p in facts.probes] == [("nvml", False), ("nvidia-smi", False), ("proc", False)]
    assert probe(facts, "proc").detail == "/proc/driver/nvidia/version not found (no NVIDIA kernel module loaded)"


# --------------------------------------------------------------------------- WSL


@pytest.mark.parametrize("files, environ, wsl", [
    ({"proc/sys/kernel/osrelease": "5.15.133.1-microsoft-standard-WSL2\n"}, {}, True),
    ({"proc/version": "Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com)\n"}, {}, True),
    ({}, {"WSL_DISTRO_NAME": "Ubuntu-22.04"}, True),
    ({"proc/version": "Linux version 6.1.0-13-amd64 (debian-kernel@lists.debian.org)\n"}, {}, False),
    ({}, {}, False),
])
def test_wsl_detection(host: FakeHost, files: dict[str, str], environ: dict[str, str], wsl: bool) -> None:
    for name, text in files.items():
        host.write(name, text)
    assert D.detect_wsl(host.root, environ) is wsl


@pytest.mark.parametrize("scenario, version, cuda, note", [
    ({"query": {"stdout": "wsl.query.csv"}, "banner": {"stdout": "wsl.banner.txt"}}, "537.13", "12.2",
     "CUDA 12.2 (banner)"),
    # the banner says ERR!: the Windows driver column gives 573.24 -> 12.8 (the Linux one would say 11.x)
    ({"query": {"stdout": "wsl_two_part.query.csv"}, "banner": {"stdout": "wsl_err.banner.txt"}}, "573.24",
     "12.8", "Windows driver column (the banner says CUDA Version: ERR!)"),
])
def test_wsl_smi_in_usr_lib_wsl(host: FakeHost, matrix: Any, scenario: dict[str, Any], version: str,
                                cuda: str, note: str) -> None:
    host.wsl()
    host.smi(scenario, folder=host.root / "usr/lib/wsl/lib")  # not on PATH, as on WSL
    facts = host.detect(matrix)
    assert facts.wsl is True
    assert facts.driver == Driver(version, cuda, "nvidia-smi")
    assert len(facts.gpus) == 1 and facts.gpus[0].compute_capability in ("8.6", "8.9")
    assert note in probe(facts, "nvidia-smi").detail
    assert not facts.container.detected


def test_wsl_smi_segfault_then_nothing(host: FakeHost, matrix: Any) -> None:
    host.wsl()
    host.smi({"query": {"signal": "SIGSEGV"}}, folder=host.root / "usr/lib/wsl/lib")
    facts = host.detect(matrix)
    assert facts.wsl and not facts.driver.present
    assert "SIGSEGV" in probe(facts, "nvidia-smi").detail
    assert probe(facts, "proc").detail.startswith("/proc/driver/nvidia/version not found")


def test_wsl_nvml_reports_the_windows_driver(host: FakeHost, matrix: Any) -> None:
    host.wsl()
    nvml = FakeNvml(driver="537.13", gpus=(RTX3080,), missing=("nvmlSystemGetCudaDriverVersion_v2",
                                                              "nvmlSystemGetCudaDriverVersion"))
    facts = host.detect(matrix, nvml)
    # 537.13 in the Linux column would be CUDA 12.2 too; 573.24 separates the columns below
    assert facts.driver == Driver("537.13", "12.2", "nvml")
    assert "Windows driver column" in facts.probes[0].detail
    facts = host.detect(matrix, FakeNvml(driver="573.24", gpus=(RTX3080,), cuda=0))
    assert facts.driver.cuda == "12.8"


def test_wsl_not_found_mentions_wsl_lib(host: FakeHost, matrix: Any) -> None:
    host.wsl()
    facts = host.detect(matrix)
    assert probe(facts, "nvidia-smi").detail == "nvidia-smi not found on PATH or in /usr/lib/wsl/lib"


# --------------------------------------------------------------------------- containers


@pytest.mark.parametrize("files, environ, kind", [
    ({".dockerenv": ""}, {}, "docker"),
    ({"run/.containerenv": ""}, {}, "podman"),
    ({}, {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, "kubernetes"),
    ({"proc/1/cgroup": "0::/kubepods/besteffort/pod1234/abcd\n"}, {}, "kubernetes"),
    ({"proc/1/cgroup": "12:pids:/docker/0123456789abcdef\n"}, {}, "docker"),
    ({}, {"container": "systemd-nspawn"}, "systemd-nspawn"),
    ({"proc/1/cgroup": "0::/init.scope\n"}, {}, None),
])
def test_container_hints(host: FakeHost, files: dict[str, str], environ: dict[str, str],
                         kind: str | None) -> None:
    for name, text in files.items():
        host.write(name, text)
    assert D.detect_container(host.root, environ) == Container(kind is not None, kind, False)


def test_container_without_gpu_nodes_says_so(host: FakeHost, matrix: Any) -> None:
    host.write(".dockerenv")
    host.proc_version("proc_version.535.txt")  # the host's kernel module shows through /proc
    facts = host.detect(matrix)
    assert facts.container == Container(True, "docker", False)
    for name in ("nvml", "nvidia-smi", "proc"):
        assert "docker container has no GPU device nodes (/dev/nvidia*)" in probe(facts, name).detail
    assert "(the version is the host's driver)" in probe(facts, "proc").detail
    assert facts.driver.source == "proc" and facts.gpus == ()


def test_container_with_gpu_nodes(host: FakeHost, matrix: Any) -> None:
    host.write(".dockerenv")
    host.write("dev/nvidia0")
    host.write("dev/nvidiactl")
    host.smi(A100_T4)
    facts = host.detect(matrix)
    assert facts.container == Container(True, "docker", True)
    assert "device nodes" not in probe(facts, "nvml").detail
    assert facts.driver.source == "nvidia-smi" and len(facts.gpus) == 2


# --------------------------------------------------------------------------- never raises


class Exploding:
    """An NVML whose every attribute access fails (a bug in a binding, a broken install)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"broken binding: {name}")


def test_detection_never_raises(host: FakeHost, matrix: Any) -> None:
    (host.root / "proc/driver/nvidia/version").mkdir(parents=True)  # there, but unreadable
    facts = host.detect(matrix, Exploding())
    assert "broken binding" in probe(facts, "nvml").detail
    assert probe(facts, "proc").detail == "/proc/driver/nvidia/version could not be read"
    assert not facts.driver.present


def test_without_a_matrix_the_shipped_one_is_used(host: FakeHost) -> None:
    host.proc_version("proc_version.535.txt")
    facts = host.detect(None)
    assert facts.driver == Driver("535.104.05", "12.2", "proc", kernel_module="535.104.05")


def test_unloadable_matrix_makes_cuda_unknown(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUREADY_MATRIX", str(host.root / "nowhere"))
    host.proc_version("proc_version.535.txt")
    facts = host.detect(None)
    assert facts.driver == Driver("535.104.05", None, "proc", kernel_module="535.104.05")
    assert "CUDA unknown" in probe(facts, "proc").detail


def test_json_round_trip(host: FakeHost, matrix: Any) -> None:
    host.smi(A100_T4)
    host.write(".dockerenv")
    facts = host.detect(matrix)
    data = json.loads(json.dumps(facts.to_dict()))
    assert HostFacts.from_dict(data) == facts
    assert set(data) >= {"platform", "wsl", "python", "glibc", "driver", "gpus", "probes"}
    assert set(data["gpus"][0]) >= {"index", "name", "compute_capability", "memory_mib", "uuid"}
    assert set(data["driver"]) >= {"version", "cuda", "source"}  # PRODUCT.md's fields, and new ones


def test_human_table(host: FakeHost, matrix: Any) -> None:
    host.smi(A100_T4)
    facts = host.detect(matrix)
    out = Console(record=True, width=200)
    show_facts(facts, out)
    text = out.export_text()
    for expected in ("linux-64", "535.104.05 (CUDA 12.2; from nvidia-smi)", "NVIDIA A100-SXM4-80GB",
                     "Tesla T4", "7.5", "15360", T4.uuid, "libnvidia-ml.so.1 not found", "Probes"):
        assert expected in text


# --------------------------------------------------------------------------- the real machine


def _machine_has_a_driver() -> bool:
    return bool(ctypes.util.find_library("nvidia-ml") or shutil.which("nvidia-smi")
                or Path("/proc/driver/nvidia/version").exists())


def _console_command() -> list[str]:
    exe = Path(sys.executable).with_name("gpuready")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gpuready"]


@pytest.mark.parametrize("command", ["invoke", "gpuready"])
def test_real_task_json(command: str) -> None:
    start = time.monotonic()
    if command == "invoke":
        result = run_cli("detect", "--json", timeout=60)
    else:
        result = subprocess.run([*_console_command(), "detect", "--json"], cwd=ROOT, capture_output=True,
                                text=True, timeout=60)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    facts = HostFacts.from_dict(data)
    assert facts.python == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert facts.probes and facts.probes[0].name == "nvml"
    if not _machine_has_a_driver():  # the development and CI machines
        assert facts.driver == Driver(None, None, None)
        assert facts.gpus == ()
        assert [(p.name, p.ok) for p in facts.probes] == [("nvml", False), ("nvidia-smi", False),
                                                        ("proc", False)]
        assert elapsed < 10  # measured about 0.3 s; generous for a loaded CI machine
    else:
        assert facts.driver.source in ("nvml", "nvidia-smi", "proc")


def test_real_task_with_an_unloadable_matrix_still_detects() -> None:
    result = run_cli("detect", "--json", env={"GPUREADY_MATRIX": "/nonexistent-matrix"}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "warning: matrix file /nonexistent-matrix" in result.stderr
    assert json.loads(result.stdout)["probes"]


def test_real_task_human_output() -> None:
    result = run_cli("detect", timeout=60)
    assert result.returncode == 0, result.stderr
    for expected in ("platform", "NVIDIA driver", "Probes", "nvml"):
        assert expected in result.stdout


@pytest.mark.skipif(_machine_has_a_driver(), reason="a real driver would answer before the double")
def test_real_task_with_fake_smi_first_on_path(host: FakeHost) -> None:
    host.smi(A100_T4)
    result = run_cli("detect", "--json", env={"PATH": f"{host.bin}{os.pathsep}{os.environ.get('PATH', '')}"},
                     timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["driver"] == {"version": "535.104.05", "cuda": "12.2", "source": "nvidia-smi", "kernel_module": None}
    assert [(g["name"], g["compute_capability"], g["memory_mib"]) for g in data["gpus"]] == [
        ("NVIDIA A100-SXM4-80GB", "8.0", 81920), ("Tesla T4", "7.5", 15360)]
    assert [p["name"] for p in data["probes"]] == ["nvml", "nvidia-smi"]


def test_container_with_gpu_nodes_but_no_driver_libraries(host: FakeHost, matrix: Any) -> None:
    """/dev/nvidia0 passed by hand (`--device`), without the NVIDIA runtime's libraries."""
    host.write(".dockerenv")
    host.write("dev/nvidia0")
    facts = host.detect(matrix)  # NVML: libnvidia-ml.so.1 not found; no nvidia-smi
    note = next(n for n in facts.problems if n.code == "container-no-driver-libraries")
    assert "libnvidia-ml.so.1" in note.message and "--gpus all" in note.fix
    assert "libnvidia-ml.so.1" in make_plan(facts, matrix).warnings[0].message


def test_human_table_shows_broken_gpus_and_notes(host: FakeHost, matrix: Any) -> None:
    facts = host.detect(matrix, FakeNvml(fail={"nvmlDeviceGetName:1": pynvml.NVMLError_GpuIsLost()}))
    out = Console(record=True, width=250)
    show_facts(facts, out)
    text = out.export_text()
    assert "nvmlDeviceGetName failed: GPU is lost" in text and "Problem: A GPU does not answer" in text
    assert "Next step: Reboot the system" in text
