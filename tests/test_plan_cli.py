"""`invoke plan` as a user runs it: flags, JSON, bad input, speed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gpuready.model import flags as C
from gpuready.errors import UsageError

from .conftest import run_cli

BAD_VALUES = [
    (["--driver", "banana"], "--driver"),
    (["--gpu", "9"], "--gpu"),
    (["--gpu", "8.0,abc"], "--gpu"),
    (["--python", "3"], "--python"),
    (["--tf", ">>2"], "--tf"),
    (["--platform", "linux-65"], "--platform"),
    (["--flavor", "poetry"], "--flavor"),
    (["--wsl", "--platform", "osx-arm64"], "--wsl"),
]


@pytest.mark.parametrize("flags, named", BAD_VALUES, ids=[" ".join(f) for f, _ in BAD_VALUES])
def test_parsers_reject_bad_values(flags, named, matrix, linux_host) -> None:
    wsl = "--wsl" in flags
    rest = [f for f in flags if f != "--wsl"]
    values = dict(zip(rest[::2], rest[1::2]))
    with pytest.raises(UsageError, match=named):
        if "--tf" in values or "--flavor" in values:
            C.constraints_from_flags(values.get("--tf"), values.get("--flavor"), None)
        else:
            C.apply_overrides(linux_host, matrix, driver=values.get("--driver"), gpu=values.get("--gpu"),
                              python=values.get("--python"), platform=values.get("--platform"),
                              wsl=wsl)


@pytest.mark.parametrize("text, contains, excludes", [
    ("2.15", "2.15.1", "2.16.1"),
    ("2.15.0", "2.15.0", "2.15.1"),
    (">=2.16,<2.19", "2.18.1", "2.19.0"),
    ("~=2.20", "2.21.0", "2.19.1"),
])
def test_tf_spec(text, contains, excludes) -> None:
    spec = C.parse_tf_spec(text)
    assert spec.contains(contains) and not spec.contains(excludes)


@pytest.mark.parametrize("flags, named", [(["--driver", "banana"], "--driver"), (["--gpu", "9"], "--gpu"),
                                          (["--python", "3"], "--python"), (["--tf", ">>2"], "--tf")])
def test_cli_bad_input_is_one_line_exit_2(flags, named) -> None:
    result = run_cli("plan", *flags)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0]
    assert result.stdout == ""


def test_cli_unknown_flag_is_usage_error() -> None:
    result = run_cli("plan", "--drivr", "535")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_cli_must_show_a100() -> None:
    result = run_cli("plan", "--driver", "535.104.05", "--gpu", "8.0", "--python", "3.11", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["device"] == "gpu" and plan["tensorflow"] == "2.21.0"
    assert plan["cuda"] == "12.5" and plan["cudnn"] == "9.24" and plan["python"] == "3.11"
    assert plan["flavor"] == "pip" and plan["env"] == "tf2.21-cuda12.5-py3.11-pip"
    assert "nvidia-cudnn-cu12==9.24.0.43" in plan["requirements"]
    assert plan["host"]["driver"]["version"] == "535.104.05"
    assert [w["code"] for w in plan["warnings"]] == ["known-issue"] and plan["rejected"] == []
    assert "aws/deep-learning-containers/pull/6417" in plan["warnings"][0]["message"]


def test_cli_must_show_h100_on_535_plans_the_newest_whose_jit_code_it_can_compile() -> None:
    """Driver 535.104.05 JITs PTX up to ISA 8.2. Measured: 2.16's MLIR kernels are ISA 8.0, 2.17-2.18's
    8.3, 2.19-2.21's 8.5 (matrix/kernels.toml); build_info's claim would have said 2.15.1."""
    result = run_cli("plan", "--driver", "535.104.05", "--gpu", "9.0", "--python", "3.11", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["tensorflow"] == "2.16.2"
    [jit] = [w for w in plan["warnings"] if w["code"] == "ptx-jit"]
    assert "MLIR-generated kernels (libtensorflow_cc.so.2)" in jit["message"] and "PTX ISA 8.0" in jit["message"]
    rejected = {r["tensorflow"]: r for r in plan["rejected"]}
    for version, isa, driver in (("2.21.0", "8.5", "555.42.02"), ("2.19.0", "8.5", "555.42.02"),
                                 ("2.18.1", "8.3", "545.23.06"), ("2.17.0", "8.3", "545.23.06")):
        assert rejected[version]["code"] == "ptx-driver-too-old"
        assert f"PTX ISA {isa}" in rejected[version]["message"] and f">= {driver}" in rejected[version]["message"]
    assert not any(v.startswith("2.16") for v in rejected)


def test_cli_must_show_blackwell_on_575() -> None:
    result = run_cli("plan", "--gpu", "12.0", "--driver", "575.57.08", "--python", "3.11", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["tensorflow"] == "2.21.0"
    codes = [w["code"] for w in plan["warnings"]]
    assert {"ptx-jit", "experimental-gpu", "known-issue"} <= set(codes)
    issues = " ".join(w["message"] for w in plan["warnings"] if w["code"] == "known-issue")
    assert "blackwell-pip-invalid-ptx" in issues and "tensorflow/issues/89272" in issues


def test_cli_must_show_t4_pins_the_fixed_cudnn() -> None:
    result = run_cli("plan", "--gpu", "7.5", "--driver", "560.35.03", "--python", "3.11", "--json")
    plan = json.loads(result.stdout)
    assert plan["tensorflow"] == "2.21.0" and "nvidia-cudnn-cu12==9.24.0.43" in plan["requirements"]
    [issue] = [w for w in plan["warnings"] if w["code"] == "known-issue"]
    assert "tf221-cudnn-autotuner" in issue["message"] and "instead of 9.3.0.75" in issue["message"]


@pytest.mark.parametrize("flags, fact", [
    (["--driver", "590.44.01", "--gpu", "7.0"], "R580 is the last branch"),
    (["--driver", "560.35.05", "--gpu", "12.0"], "first supported by R570"),
    (["--driver", "535.104.05", "--gpu", "3.7"], "R470 is the last branch"),
])
def test_cli_a_host_that_cannot_exist_is_bad_input(flags, fact) -> None:
    result = run_cli("plan", *flags)
    assert result.returncode == 2 and fact in result.stderr and "no such host" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_driver_none_is_cpu_plan_with_no_gpu() -> None:
    result = run_cli("plan", "--driver", "none", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["device"] == "cpu" and plan["cuda"] is None and plan["cudnn"] is None
    assert [w["code"] for w in plan["warnings"]] == ["no-gpu"]


def test_cli_no_plan_exits_1_with_ways_out() -> None:
    result = run_cli("plan", "--driver", "none", "--python", "3.14", "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["device"] is None and data["ways_out"]
    human = run_cli("plan", "--driver", "none", "--python", "3.14")
    assert human.returncode == 1 and "Ways out" in human.stdout and "Traceback" not in human.stderr


def test_cli_human_output_explains_then_rejections() -> None:
    result = run_cli("plan", "--driver", "535.104.05", "--gpu", "9.0")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("Plan:") < out.index("Rejected")
    assert "ptx-driver-too-old" in out


def test_console_command_has_the_same_tasks() -> None:
    gpuready = Path(sys.executable).with_name("gpuready")
    import subprocess

    result = subprocess.run([str(gpuready), "plan", "--driver", "none", "--json"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["device"] == "cpu"
    bad = subprocess.run([str(gpuready), "plan", "--gpu", "9"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr

