"""Detection against what real machines print: the 77 nvidia-smi / NVML / driver situations of
tests/data/corpus/nvidia-smi, pasted by users into public threads, replayed through the doubles
(tests/detect_doubles/corpus.py says how), each against what its thread established.

The doubles stand in for the NVIDIA driver and nvidia-smi, which the development and CI
machines do not have; the texts they replay are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpuready.detect import kernel, smi_text
from gpuready.detect._common import Lookup
from gpuready.model.planner import make_plan

from .detect_doubles import corpus

FIXTURES = corpus.load()
READ = [f for f in FIXTURES if f.number not in corpus.NOT_READ]


def detected(fixture: corpus.Fixture, tmp_path: Path, matrix: Any):
    return corpus.with_query(fixture, corpus.run(fixture, tmp_path, matrix), matrix)


def test_the_corpus_is_what_its_readme_says() -> None:
    assert len(FIXTURES) == 77
    assert all(f.data["source"].startswith("https://github.com/") for f in FIXTURES)
    assert set(corpus.NOT_READ) <= {f.number for f in FIXTURES}
    assert len(READ) == 74


@pytest.mark.parametrize("fixture", READ, ids=[f.name for f in READ])
def test_detect_on_a_real_output(fixture: corpus.Fixture, tmp_path: Path, matrix: Any) -> None:
    facts = detected(fixture, tmp_path, matrix)
    assert corpus.wrong(fixture, facts) == [], fixture.expected["notes"]


BROKEN_NEIGHBOUR = [f for f in READ if {g["healthy"] for g in f.expected["gpus"]} == {True, False}]


@pytest.mark.parametrize("fixture", BROKEN_NEIGHBOUR, ids=[f.name for f in BROKEN_NEIGHBOUR])
def test_every_healthy_gpu_survives_a_broken_neighbour(fixture: corpus.Fixture, tmp_path: Path,
                                                       matrix: Any) -> None:
    facts = detected(fixture, tmp_path, matrix)
    healthy = [g["index"] for g in fixture.expected["gpus"] if g["healthy"]]
    assert [g.index for g in facts.usable_gpus] == healthy
    broken = next(n for n in facts.notes if n.code == "gpus-broken")
    assert f"the other {len(healthy)} GPU" in broken.message


def test_there_are_broken_neighbours_to_survive() -> None:
    assert {f.number for f in BROKEN_NEIGHBOUR} == {"023", "025"}


# The plan's `no-gpu` warning names the cause detection found, not "no NVIDIA driver found".
@pytest.mark.parametrize("number, words", [
    ("035", ["kernel module", "550.144", "reboot"]),           # driver/library mismatch
    ("036", ["580.173.02", "580.178", "reboot"]),
    ("037", ["530.30.02", "535.54.03", "reboot"]),              # the same, from the kernel log
    ("015", ["restart", "container", "daemon-reload"]),        # a container that lost its GPUs
    ("017", ["restart", "container"]),
    ("073", ["--gpus all", "container"]),                      # started without GPU access
    ("045", ["jetson", "pip", "no gpu build"]),                # a Jetson
    ("048", ["jetson", "l4t r35.4.1", "pip"]),
    ("029", ["wsl", "windows"]),                               # WSL without the GPU
    ("030", ["wddm"]),
    ("041", ["kernel module is not loaded", "dkms"]),          # the module after a kernel upgrade
    ("027", ["gpu is lost", "reboot"]),                        # the only GPU is lost
    ("044", ["no devices were found", "rminitadapter"]),
])
def test_plan_says_why_there_is_no_gpu(number: str, words: list[str], tmp_path: Path, matrix: Any) -> None:
    fixture = next(f for f in FIXTURES if f.number == number)
    facts = detected(fixture, tmp_path, matrix)
    plan = make_plan(facts, matrix)
    assert plan.device == "cpu"
    warning = next(w for w in plan.warnings if w.code == "no-gpu")
    assert "no NVIDIA driver found" not in warning.message
    assert all(word in warning.message.lower() for word in words), warning.message


def test_plan_serves_the_gpus_that_answer(tmp_path: Path, matrix: Any) -> None:
    fixture = next(f for f in FIXTURES if f.number == "023")  # GPU 0 ERR!, GPU 1 an A40
    plan = make_plan(detected(fixture, tmp_path, matrix), matrix)
    assert plan.device == "gpu"
    assert any("planned for the 1 GPU(s) that answer; not usable: GPU 0" in r for r in plan.reasons)


# --------------------------------------------------------------------------- the parsers alone


@pytest.mark.parametrize("fixture", [f for f in FIXTURES if "dmesg" in f.outputs],
                         ids=[f.name for f in FIXTURES if "dmesg" in f.outputs])
def test_kernel_log_messages(fixture: corpus.Fixture) -> None:
    log = kernel.parse_kernel_log(fixture.outputs["dmesg"])
    want = fixture.expected
    if fixture.situation == "driver-library-mismatch":
        assert (log.mismatch, log.client, log.module) == (True, want["driver"], want["kernel_module"])
    assert (log.module or "") == want["kernel_module"]
    expected = {"042": (False, (), (), True), "044": (False, (), ("0000:01:00.0",), False),
                "076": (False, ("0000:b3:00.0",), (), False), "038": (True, (), ("0000:07:00.0",), False)}
    if fixture.number in expected:
        assert (log.mismatch, log.lost, log.init_failed, log.nouveau) == expected[fixture.number]


@pytest.mark.parametrize("number, fields, rows", [
    ("050", None, [(0, "NVIDIA GB10", None, True)]),
    ("051", None, [(0, "NVIDIA GB10", None, True)]),  # header with units
    ("053", None, [(0, "NVIDIA TITAN V", None, True), (1, "NVIDIA RTX 5880 Ada Generation", None, True)]),
    ("054", None, [(0, "GeForce RTX 2080", 7979, True)]),
    ("055", None, [(0, "GeForce RTX 2080 Ti", None, True)]),  # gpu_name, and a field's [Unknown Error]
], ids=["050", "051", "053", "054", "055"])
def test_query_rows_of_any_field_list(number: str, fields: Any, rows: list[tuple[Any, ...]], matrix: Any) -> None:
    fixture = next(f for f in FIXTURES if f.number == number)
    parsed = smi_text.parse_query(fixture.outputs["query_csv"],
                                  smi_text.query_fields(fixture.outputs.get("query_command", "")), Lookup(matrix))
    assert [(g.index, g.name, g.memory_mib, g.healthy) for g in parsed.gpus] == rows


def test_query_fields_names_nvidia_smi_uses() -> None:
    assert smi_text.query_fields("nvidia-smi.exe --query-gpu=gpu_name,index --format=csv") == ("name", "index")
    assert smi_text.query_fields("nvidia-smi") == ()


@pytest.mark.parametrize("text, problems", [
    ("|   0  ERR!                On   | 00000000:19:00.0 Off |                 ERR! |\n"
     "|ERR!  ERR! ERR!    ERR! / ERR! |      0MiB / 46068MiB |    ERR!      Default |\n", [False]),
    ("|   1  Tesla V100-PCIE...  On   | 00008ED0:00:00.0 Off |                    0 |\n"
     "| N/A   29C    P0   ERR! / 250W |    593MiB / 16160MiB |      0%      Default |\n", [True]),
], ids=["err-row", "one-err-field"])
def test_table_rows_count_err_per_gpu(text: str, problems: list[bool], matrix: Any) -> None:
    assert [g.healthy for g in smi_text.parse_table(text, Lookup(matrix)).gpus] == problems
