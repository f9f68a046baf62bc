"""Table-driven tests of the planner: every rule and code, with boundaries.

The planner is pure, so each case is (host facts, constraints) -> expected choice
and codes, over the shipped matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from packaging.version import Version

from gpuready.model import planner as P
from gpuready.model.flags import Constraints, apply_overrides, parse_tf_spec
from gpuready.model.facts import Driver, Gpu, HostFacts


@dataclass
class Case:
    id: str
    driver: str | None = "none"
    gpu: str | None = None
    python: str = "3.11"
    platform: str | None = None
    wsl: bool = False
    glibc: str | None = "2.36"
    tf: str | None = None
    flavor: str = "pip"
    python_pinned: bool = True
    # expectations
    device: str = "gpu"
    tensorflow: str | None = None
    cuda: str | None = None
    cudnn: str | None = None
    warnings: set[str] = field(default_factory=set)
    rejected: dict[str, set[str]] = field(default_factory=dict)  # version -> codes (exact for listed versions)
    no_rejection_for: tuple[str, ...] = ()
    and_cuda: str | None = None
    env: str | None = None
    distribution: str | None = None


CASES = [
    # --- the issue's must-show cases
    # cuDNN 9.24 instead of the tested 9.3: the Conv2D autotuner known issue (known-issues.toml)
    Case("a100-driver-535", driver="535.104.05", gpu="8.0", tensorflow="2.21.0", cuda="12.5", cudnn="9.24",
         and_cuda="extra", env="tf2.21-cuda12.5-py3.11-pip", warnings={P.KNOWN_ISSUE}),
    # measured: 2.16's MLIR kernels are compute_90 PTX of ISA 8.0 (525.60.13 JITs it); 2.17-2.18's 8.3
    # (545.23.06), 2.19-2.21's 8.5 (555.42.02). build_info's claim would have planned 2.15.1.
    Case("h100-driver-535-ptx", driver="535.104.05", gpu="9.0", tensorflow="2.16.2", cuda="12.3",
         warnings={P.PTX_JIT},
         rejected={v: {P.PTX_DRIVER_TOO_OLD} for v in
                   ("2.21.0", "2.20.0", "2.19.1", "2.19.0", "2.18.1", "2.18.0", "2.17.1", "2.17.0")}),
    Case("no-driver", driver="none", device="cpu", tensorflow="2.21.0", warnings={P.NO_GPU},
         distribution="tensorflow-cpu", env="tf2.21-cpu-py3.11-pip"),
    # --- driver floor (minor-version compatibility), exactly at and one patch below
    Case("floor-cuda12-exact", driver="525.60.13", gpu="8.0", tensorflow="2.21.0", warnings={P.KNOWN_ISSUE}),
    Case("floor-cuda12-one-below", driver="525.60.12", gpu="8.0", tensorflow="2.14.1", cuda="11.8", cudnn="8.7",
         and_cuda="taken-apart", warnings={P.PTX_JIT},
         rejected={"2.21.0": {P.DRIVER_TOO_OLD}, "2.16.1": {P.DRIVER_TOO_OLD},
                   "2.15.1": {P.DRIVER_TOO_OLD}}),  # measured: A100 runs 2.15's main kernels natively
    Case("floor-cuda11-exact", driver="450.80.02", gpu="7.5", tensorflow="2.14.1"),
    Case("floor-cuda11-one-below", driver="450.80.01", gpu="7.5", device="cpu", tensorflow="2.21.0",
         warnings={P.CPU_FALLBACK}, rejected={"2.14.1": {P.DRIVER_TOO_OLD}, "2.12.0": {P.DRIVER_TOO_OLD},
                   "2.10.0": {P.DRIVER_TOO_OLD, P.PYTHON_UNSUPPORTED}}),
    # --- PTX JIT needs the driver of the CUDA that brought the PTX's ISA, exactly at and one patch below
    Case("ptx-isa-8.5-exact", driver="555.42.02", gpu="9.0", tensorflow="2.21.0", warnings={P.PTX_JIT, P.KNOWN_ISSUE}),
    Case("ptx-isa-8.5-one-below", driver="555.42.01", gpu="9.0", tensorflow="2.18.1", cuda="12.5",
         warnings={P.PTX_JIT},
         rejected={v: {P.PTX_DRIVER_TOO_OLD} for v in ("2.21.0", "2.20.0", "2.19.1", "2.19.0")}),
    Case("ptx-isa-8.3-one-below", driver="545.23.05", gpu="9.0", tensorflow="2.16.2", warnings={P.PTX_JIT},
         rejected={v: {P.PTX_DRIVER_TOO_OLD} for v in ("2.18.1", "2.18.0", "2.17.1", "2.17.0")}),
    # --- architectures
    Case("sass-minor-covers-8.6", driver="535.104.05", gpu="8.6", tensorflow="2.21.0", no_rejection_for=("2.21.0",),
         warnings={P.KNOWN_ISSUE}),
    Case("kepler-k80", driver="470.82.01", gpu="3.7", tensorflow="2.14.1",
         rejected={"2.21.0": {P.DRIVER_TOO_OLD, P.GPU_ARCH_UNSUPPORTED},
                   "2.15.1": {P.DRIVER_TOO_OLD, P.GPU_ARCH_UNSUPPORTED}}),
    # 2.16-2.20's MLIR kernels are PTX for sm_90a (arch-specific): no code for Blackwell; 2.21's is sm_90
    Case("blackwell-experimental", driver="580.95.05", gpu="12.0", tensorflow="2.21.0",
         warnings={P.EXPERIMENTAL_GPU, P.PTX_JIT, P.KNOWN_ISSUE}),
    Case("blackwell-before-2.21", driver="580.95.05", gpu="12.0", tf="<2.21", tensorflow="2.15.1",
         warnings={P.EXPERIMENTAL_GPU, P.PTX_JIT, P.KNOWN_ISSUE},
         rejected={v: {P.GPU_ARCH_UNSUPPORTED} for v in ("2.20.0", "2.19.1", "2.18.1", "2.17.1", "2.16.2")}),
    Case("b200-experimental", driver="580.95.05", gpu="10.0", tensorflow="2.21.0",
         warnings={P.EXPERIMENTAL_GPU, P.PTX_JIT}),
    # --- several GPUs: every one must be served
    Case("two-gpus-a100-t4", driver="535.104.05", gpu="8.0,7.5", tensorflow="2.21.0", warnings={P.KNOWN_ISSUE}),
    Case("two-gpus-a100-h100", driver="535.104.05", gpu="8.0,9.0", tensorflow="2.16.2", warnings={P.PTX_JIT},
         rejected={"2.21.0": {P.PTX_DRIVER_TOO_OLD}}),
    # NCCL's collectives of 2.15 have no sm_90 code (SASS only): one H100 runs 2.15, two cannot all-reduce
    Case("two-h100-nccl", driver="535.104.05", gpu="9.0,9.0", tf="2.15", device="cpu", tensorflow="2.15.1",
         warnings={P.CPU_FALLBACK}, rejected={"2.15.1": {P.GPU_ARCH_UNSUPPORTED}}),
    Case("one-h100-nccl-not-needed", driver="535.104.05", gpu="9.0", tf="2.15", tensorflow="2.15.1",
         warnings={P.PTX_JIT}),
    Case("two-gpus-t4-p100", driver="535.104.05", gpu="7.5,6.0", tensorflow="2.21.0", warnings={P.KNOWN_ISSUE}),
    # --- WSL2: the Windows driver column applies
    Case("wsl-modern", driver="537.13", gpu="8.6", wsl=True, tensorflow="2.21.0", warnings={P.KNOWN_ISSUE}),
    Case("wsl-device-manager-number", driver="32.0.15.6636", gpu="8.6", wsl=True, tensorflow="2.21.0",
         warnings={P.KNOWN_ISSUE}),
    Case("wsl-linux-looking-number", driver="560.35.03", gpu="8.6", wsl=True, tensorflow="2.21.0",
         warnings={P.KNOWN_ISSUE, P.WSL_LINUX_DRIVER}),
    Case("wsl-below-windows-floor", driver="527.41", gpu="8.6", wsl=True, tensorflow="2.14.1", warnings={P.PTX_JIT},
         rejected={"2.21.0": {P.DRIVER_TOO_OLD}}),
    Case("wsl-windows-floor-exact", driver="528.33", gpu="8.6", wsl=True, tensorflow="2.21.0", warnings={P.KNOWN_ISSUE}),
    Case("wsl-ptx-windows-column", driver="555.85", gpu="9.0", wsl=True, tensorflow="2.21.0",
         warnings={P.PTX_JIT, P.KNOWN_ISSUE}),
    Case("wsl-ptx-one-below", driver="555.84", gpu="9.0", wsl=True, tensorflow="2.18.1", warnings={P.PTX_JIT},
         rejected={"2.21.0": {P.PTX_DRIVER_TOO_OLD}}),
    # --- platforms
    Case("aarch64-no-gpu-build", driver="535.104.05", gpu="8.0", platform="linux-aarch64", glibc="2.36",
         device="cpu", tensorflow="2.21.0", distribution="tensorflow", warnings={P.CPU_FALLBACK},
         rejected={"2.21.0": {P.PLATFORM_UNSUPPORTED}}, env="tf2.21-cpu-py3.11-pip-linux-aarch64"),
    Case("aarch64-old-glibc", driver="none", platform="linux-aarch64", glibc="2.17", device="cpu",
         tensorflow="2.20.0", distribution="tensorflow", warnings={P.NO_GPU},
         rejected={"2.21.0": {P.PLATFORM_UNSUPPORTED}}),
    Case("osx-arm64-cpu", driver="none", platform="osx-arm64", glibc=None, device="cpu", tensorflow="2.21.0",
         distribution="tensorflow", warnings={P.NO_GPU}, env="tf2.21-cpu-py3.11-pip-osx-arm64"),
    Case("win-64-native", driver="560.94", gpu="8.6", platform="win-64", glibc=None, python="3.10",
         device="cpu", tensorflow="2.21.0", distribution="tensorflow-cpu", warnings={P.CPU_FALLBACK},
         rejected={"2.21.0": {P.PLATFORM_UNSUPPORTED}, "2.10.1": {P.NOT_INSTALLABLE}}),
    Case("old-glibc", driver="535.104.05", gpu="8.0", glibc="2.17", tensorflow="2.20.0",
         rejected={"2.21.0": {P.PLATFORM_UNSUPPORTED}}),
    # --- Python
    Case("python-3.9", driver="535.104.05", gpu="8.0", python="3.9", tensorflow="2.20.0",
         rejected={"2.21.0": {P.PYTHON_UNSUPPORTED}}),
    Case("python-3.13", driver="535.104.05", gpu="8.0", python="3.13", tensorflow="2.21.0",
         env="tf2.21-cuda12.5-py3.13-pip", warnings={P.KNOWN_ISSUE}),
    Case("python-3.8-no-extra", driver="535.104.05", gpu="8.0", python="3.8", tensorflow="2.13.1", cuda="11.8",
         cudnn="8.6", and_cuda="none", warnings={P.PTX_JIT}, rejected={"2.14.1": {P.PYTHON_UNSUPPORTED}}),
    # --- the and-cuda extra taken apart, and not-installable
    Case("tf-2.15.0-extra-broken", driver="535.104.05", gpu="8.0", tf="==2.15.0", tensorflow="2.15.0",
         and_cuda="taken-apart", warnings={P.PTX_JIT}),
    Case("tf-2.14-py3.10-extra-ok", driver="470.82.01", gpu="7.5", python="3.10", tensorflow="2.14.1",
         and_cuda="extra"),
    Case("tf-2.11-not-installable", driver="535.104.05", gpu="8.0", python="3.10", tf="2.11", device="cpu",
         tensorflow="2.11.1", distribution="tensorflow-cpu", warnings={P.CPU_FALLBACK},
         rejected={"2.11.1": {P.NOT_INSTALLABLE}, "2.11.0": {P.NOT_INSTALLABLE}}),
    # --- --tf specifiers
    Case("tf-series", driver="535.104.05", gpu="8.0", tf="2.15", tensorflow="2.15.1", warnings={P.PTX_JIT}),
    Case("tf-range", driver="535.104.05", gpu="8.0", tf=">=2.16,<2.19", tensorflow="2.18.1"),
    # --- conda flavor
    Case("conda-forge-build", driver="560.35.03", gpu="8.0", tf="2.19.1", flavor="conda", tensorflow="2.19.1",
         cuda="12.8", env="tf2.19-cuda12.8-py3.11-conda"),
    Case("conda-pypi-in-pip-section", driver="560.35.03", gpu="8.0", flavor="conda", tensorflow="2.21.0",
         cuda="12.5", and_cuda="extra", env="tf2.21-cuda12.5-py3.11-conda", warnings={P.KNOWN_ISSUE}),
    # conda-forge's 2.19.1 has no Python 3.13 build and --python pins 3.13: the index's wheel it is
    Case("conda-no-python-build-uses-the-wheel", driver="560.35.03", gpu="8.0", flavor="conda", python="3.12",
         tf="2.19.1", tensorflow="2.19.1", cuda="12.8", env="tf2.19-cuda12.8-py3.12-conda"),
    Case("conda-wheel-for-a-python-conda-forge-lacks", driver="560.35.03", gpu="8.0", flavor="conda",
         python="3.13", tf=">=2.19", tensorflow="2.21.0", cuda="12.5", and_cuda="extra",
         env="tf2.21-cuda12.5-py3.13-conda", warnings={P.KNOWN_ISSUE}),
    Case("conda-forge-blackwell-native", driver="575.57.08", gpu="12.0", flavor="conda", tf="2.19.1",
         tensorflow="2.19.1", cuda="12.8", warnings={P.EXPERIMENTAL_GPU}),
    Case("conda-brings-python", driver="none", python="3.14", python_pinned=False, flavor="conda", device="cpu",
         tensorflow="2.21.0", warnings={P.NO_GPU}, env="tf2.21-cpu-py3.13-conda"),
]


def _host(case: Case, linux_host: HostFacts, matrix) -> HostFacts:
    return apply_overrides(linux_host.with_(glibc=case.glibc), matrix, driver=case.driver, gpu=case.gpu,
                           python=case.python, platform=case.platform, wsl=case.wsl)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan_table(case: Case, linux_host, matrix) -> None:
    constraints = Constraints(tf=parse_tf_spec(case.tf) if case.tf else None, flavor=case.flavor,
                              python_pinned=case.python_pinned)
    plan = P.make_plan(_host(case, linux_host, matrix), matrix, constraints)

    assert plan.device == case.device
    assert plan.tensorflow == case.tensorflow
    if case.cuda:
        assert plan.cuda == case.cuda
    if case.cudnn:
        assert plan.cudnn == case.cudnn
    if case.device == "cpu":
        assert plan.cuda is None and plan.cudnn is None
    assert {w.code for w in plan.warnings} == case.warnings
    by_version: dict[str, set[str]] = {}
    for r in plan.rejected:
        by_version.setdefault(r.tensorflow, set()).add(r.code)
    for version, codes in case.rejected.items():
        assert by_version.get(version) == codes, (version, by_version.get(version))
    for version in case.no_rejection_for:
        assert version not in by_version
    if case.and_cuda:
        assert plan.and_cuda == case.and_cuda
    if case.env:
        assert plan.env == case.env
    if case.distribution:
        assert plan.distribution == case.distribution
    # rejected: newest first, and only releases newer than the one chosen for a GPU plan
    versions = [Version(r.tensorflow) for r in plan.rejected]
    assert versions == sorted(versions, reverse=True)
    if plan.device == "gpu":
        assert all(v > Version(plan.tensorflow) for v in versions)


def test_gpu_plan_pins_the_tested_cuda_set(linux_host, matrix) -> None:
    plan = P.make_plan(apply_overrides(linux_host, matrix, driver="535.104.05", gpu="8.0"), matrix)
    assert plan.requirements[0] == "tensorflow[and-cuda]==2.21.0"
    pins = dict(line.split("==") for line in plan.requirements[1:])
    assert pins["nvidia-cudnn-cu12"] == "9.24.0.43"  # the autotuner known issue's remedy, not the tested 9.3
    assert pins["nvidia-cuda-runtime-cu12"] == "12.5.82"
    assert pins["nvidia-nccl-cu12"] == "2.27.7"  # 2.21's extra asks nccl >= 2.27.7
    assert plan.virtual_packages["__cuda"] == "12.5"
    assert plan.virtual_packages["__glibc"] == "2.27"


def test_taken_apart_pins_drop_tensorrt(linux_host, matrix) -> None:
    plan = P.make_plan(apply_overrides(linux_host, matrix, driver="470.82.01", gpu="7.5"), matrix)
    assert plan.requirements[0] == "tensorflow==2.14.1"
    assert not any(line.startswith("tensorrt") for line in plan.requirements)
    assert "nvidia-cudnn-cu11==8.7.0.84" in plan.requirements


def test_cpu_fallback_names_the_driver_upgrade(linux_host, matrix) -> None:
    plan = P.make_plan(apply_overrides(linux_host, matrix, driver="450.80.01", gpu="8.0"), matrix)
    fallback = next(w for w in plan.warnings if w.code == P.CPU_FALLBACK)
    assert "driver >= 525.60.13" in fallback.message and "2.21.0" in fallback.message


def test_driver_without_visible_gpu_is_no_gpu(linux_host, matrix) -> None:
    host = linux_host.with_(driver=Driver("535.104.05", "12.2", "proc"))
    plan = P.make_plan(host, matrix)
    assert plan.device == "cpu"
    assert [w.code for w in plan.warnings] == [P.NO_GPU]
    assert "no GPU is visible" in plan.warnings[0].message


def test_unknown_compute_capability_is_warned_not_guessed(linux_host, matrix) -> None:
    host = linux_host.with_(driver=Driver("535.104.05", "12.2", "nvidia-smi"),
                            gpus=(Gpu(0, "Some Future GPU", None),))
    plan = P.make_plan(host, matrix)
    assert plan.device == "gpu" and plan.tensorflow == "2.21.0"
    assert [w.code for w in plan.warnings] == [P.UNKNOWN_GPU]


@pytest.mark.parametrize("python", ["3.14", "3.6"])
def test_no_plan_at_all_gives_ways_out(python, linux_host, matrix) -> None:
    host = apply_overrides(linux_host, matrix, driver="none", python=python)
    with pytest.raises(P.NoPlan) as info:
        P.make_plan(host, matrix)
    error = info.value
    assert error.exit_code == 1
    assert any("another Python" in w for w in error.ways_out)
    assert any("--flavor conda" in w for w in error.ways_out)
    assert {r.code for r in error.rejected} == {P.PYTHON_UNSUPPORTED}


def test_no_release_matches_tf_spec(linux_host, matrix) -> None:
    with pytest.raises(P.NoPlan, match="matches --tf"):
        P.make_plan(linux_host, matrix, Constraints(tf=parse_tf_spec("==1.15")))


def test_plan_is_pure_and_round_trips(linux_host, matrix) -> None:
    host = apply_overrides(linux_host, matrix, driver="535.104.05", gpu="9.0,8.0")
    first, second = P.make_plan(host, matrix), P.make_plan(host, matrix)
    assert first == second
    assert P.Plan.from_dict(first.to_dict()) == first
    data = first.to_dict()
    for key in ("device", "tensorflow", "python", "cuda", "cudnn", "flavor", "env", "warnings", "rejected", "host"):
        assert key in data
