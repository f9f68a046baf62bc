"""The bundled check's decisions, fed fake device lists: what runs where there is no GPU, one
GPU, several, old ones; what placement counts as "on the GPU". These are the code paths that
cannot run on this GPU-less machine with a real TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuready.check import conv2d_check as check

A100 = {"index": 0, "name": "/physical_device:GPU:0", "device_name": "NVIDIA A100-SXM4-80GB",
        "compute_capability": "8.0"}
T4 = {"index": 1, "name": "/physical_device:GPU:1", "device_name": "Tesla T4", "compute_capability": "7.5"}
P100 = {"index": 1, "name": "/physical_device:GPU:1", "device_name": "Tesla P100", "compute_capability": "6.0"}
GPU0 = "/job:localhost/replica:0/task:0/device:GPU:0"
GPU1 = "/job:localhost/replica:0/task:0/device:GPU:1"
CPU0 = "/job:localhost/replica:0/task:0/device:CPU:0"


def test_the_check_module_imports_without_tensorflow_or_numpy() -> None:
    source = Path(check.__file__).read_text()
    head = source.split("class Conv2DCheck")[0]
    assert "import tensorflow" not in head and "import numpy" not in head


@pytest.mark.parametrize("name, parsed", [
    (GPU1, ("GPU", 1)), ("/physical_device:GPU:3", ("GPU", 3)), ("GPU:0", ("GPU", 0)),
    ("/device:CPU:0", ("CPU", 0)), ("", (None, None)), ("garbage", (None, None)),
])
def test_parse_device(name: str, parsed: tuple) -> None:
    assert check.parse_device(name) == parsed


@pytest.mark.parametrize("value, cc", [((8, 6), (8, 6)), ("12.0", (12, 0)), ([7, 5], (7, 5)),
                                        (None, None), ("x.y", None)])
def test_parse_cc(value, cc) -> None:
    assert check.parse_cc(value) == cc


def test_mixed_precision_needs_every_gpu_at_compute_capability_7() -> None:
    assert check.mixed_precision_decision([]) == (False, "no GPU")
    assert check.mixed_precision_decision([A100]) == (True, None)
    assert check.mixed_precision_decision([A100, T4]) == (True, None)
    run, reason = check.mixed_precision_decision([A100, P100])
    assert not run and "GPU 1 (Tesla P100)" in reason and "6.0 < 7.0" in reason
    run, reason = check.mixed_precision_decision([dict(A100, compute_capability=None)])
    assert not run and "unknown" in reason


def test_multi_gpu_needs_two_gpus() -> None:
    assert check.multi_gpu_decision([]) == (False, "no GPU")
    run, reason = check.multi_gpu_decision([A100])
    assert not run and "only one GPU" in reason
    assert check.multi_gpu_decision([A100, T4]) == (True, None)


@pytest.mark.parametrize("listed, expected, status, words", [
    (0, None, "skip", "no GPU"), (2, None, "pass", None),
    (0, 0, "skip", "no GPU"), (1, 0, "warn", "none was expected"),
    (0, 2, "fail", "lists no GPU; the host has 2"), (1, 2, "fail", "1 of the host's 2"),
    (3, 2, "warn", "lists 3 GPUs"), (2, 2, "pass", None),
])
def test_gpu_count_verdict(listed, expected, status, words) -> None:
    got, reason = check.gpu_count_verdict(listed, expected)
    assert got == status
    assert (reason is None) if words is None else (words in reason)


def test_gpu_count_verdict_gives_the_reason_it_is_told() -> None:
    assert check.gpu_count_verdict(0, 0, "the plan is for the CPU") == ("skip", "the plan is for the CPU")


GPU_BUILD = {"is_cuda_build": True, "cuda_version": "12.5.1", "cudnn_version": "9"}
CPU_BUILD = {"is_cuda_build": False}
GPU_PLAN = {"device": "gpu", "tensorflow": "2.21.0", "cuda": "12.5.1", "cudnn": "9.3", "gpus": 1}


def test_build_info_matching_the_plan_has_no_problem() -> None:
    assert check.build_info_problems(GPU_BUILD, "2.21.0", GPU_PLAN) == []
    assert check.build_info_problems(GPU_BUILD, "2.21.0", dict(GPU_PLAN, cuda="12.5")) == []
    assert check.build_info_problems(CPU_BUILD, "2.21.0", {"device": "cpu", "tensorflow": "2.21.0"}) == []
    assert check.build_info_problems(CPU_BUILD, "2.21.0", {"gpus": 0}) == []


def test_build_info_contradicting_the_plan() -> None:
    [problem] = check.build_info_problems(CPU_BUILD, "2.21.0", GPU_PLAN)
    assert "CPU-only build" in problem and "plan is for the GPU" in problem
    [problem] = check.build_info_problems(dict(GPU_BUILD, cuda_version="12.3"), "2.21.0", GPU_PLAN)
    assert "CUDA 12.3" in problem
    [problem] = check.build_info_problems(dict(GPU_BUILD, cudnn_version="8"), "2.21.0", GPU_PLAN)
    assert "cuDNN 8" in problem
    [problem] = check.build_info_problems(GPU_BUILD, "2.20.0", GPU_PLAN)
    assert "2.20.0" in problem and "2.21.0" in problem
    [problem] = check.build_info_problems(CPU_BUILD, "2.21.0", {"gpus": 2})
    assert "on a host with 2 GPU(s)" in problem


def test_placement_on_the_gpu() -> None:
    assert check.placement_problems([GPU0, GPU0], [GPU0, GPU0, GPU0]) == []
    problems = check.placement_problems([GPU0, CPU0], [GPU0])
    assert problems == [f"1 of 2 variables are not on a GPU: {CPU0}"]
    problems = check.placement_problems([GPU0], [GPU0, CPU0])
    assert problems == [f"ops of the traced training step ran on {CPU0}, not a GPU"]
    assert len(check.placement_problems([], [])) == 2
    assert check.placement_problems([CPU0], [CPU0], want="CPU") == []


def test_mirrored_variables_on_every_gpu() -> None:
    assert check.mirrored_problems([[GPU0, GPU1], [GPU1, GPU0]], 2) == []
    [problem] = check.mirrored_problems([[GPU0, GPU1], [GPU0]], 2)
    assert problem.startswith("variable 1 has copies on") and "GPU 0, 1" in problem
    assert check.mirrored_problems([], 2) == ["the model has no variables to check"]


def test_images_per_second_leaves_out_the_warm_up() -> None:
    assert check.images_per_second([5.0, 1.0, 1.0], 1000) == 1000.0
    assert check.images_per_second([2.0], 1000) == 500.0
    assert check.images_per_second([], 1000) is None


# ----------------------------------------------------------------------------- the recorder


def test_the_recorder_turns_outcomes_into_checks_and_progress(tmp_path: Path, capsys) -> None:
    progress = tmp_path / "progress.jsonl"
    rec = check.Recorder(str(progress))
    rec.level(1)

    def boom():
        raise RuntimeError("CUDA_ERROR_OUT_OF_MEMORY: out of memory\nmore")

    def skip():
        raise check.Skip("no GPU", {"gpus": []})

    def warn():
        raise check.Warn("slow", {"ratio": 0.5})

    rec.run("a", 1, "passes", lambda: {"x": 1})
    rec.run("b", 1, "crashes", boom)
    rec.run("c", 1, "needs b", lambda: {}, requires=("b",))
    rec.run("d", 1, "skips", skip)
    rec.run("e", 1, "warns", warn)
    rec.run("f", 1, "needs e", lambda: {}, requires=("e",))
    statuses = {c["name"]: (c["status"], c["reason"]) for c in rec.checks}
    assert statuses == {
        "a": ("pass", None), "b": ("fail", "RuntimeError: CUDA_ERROR_OUT_OF_MEMORY: out of memory"),
        "c": ("skip", "needs 'b', which did not pass"), "d": ("skip", "no GPU"), "e": ("warn", "slow"),
        "f": ("pass", None)}
    assert rec.errors[0]["check"] == "b" and "Traceback" in rec.errors[0]["traceback"]
    events = [json.loads(line) for line in progress.read_text().splitlines()]
    assert events[0]["event"] == "level" and events[0]["level"] == 1
    assert [e["name"] for e in events if e["event"] == "start"] == ["a", "b", "d", "e", "f"]
    assert [e["check"]["name"] for e in events if e["event"] == "check"] == list("abcdef")
    assert "[gpuready-check] check b: fail" in capsys.readouterr().err
