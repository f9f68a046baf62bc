"""`invoke doctor --log` against what users really pasted: the 69 TensorFlow logs of
tests/data/corpus/tf-logs, each with the cause its public thread established (54 harmful, 15
harmless); logs of any size read in bounded memory; errors no signature knows never called
healthy."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from gpuready.certify.logwindow import WHOLE_BYTES, read_for_diagnosis
from gpuready.errors import UsageError
from gpuready.model import signatures

from .conftest import ROOT, run_cli

CORPUS = Path(__file__).parent / "data" / "corpus" / "tf-logs"
LOGS = {p.stem: tomllib.loads(p.read_text(encoding="utf-8")) for p in sorted(CORPUS.glob("*.toml"))}
NOISE = "1875/1875 [==============================] - 5s 3ms/step - loss: 0.2950 - accuracy: 0.9140\n" \
        "2024-05-10 11:33:14.068255: I tensorflow/core/common_runtime/gpu/gpu_device.cc:1928] Created device\n"


def test_the_corpus_is_what_its_readme_says() -> None:
    harmful = [n for n, f in LOGS.items() if f["harmful"]]
    assert (len(LOGS), len(harmful)) == (69, 54)
    assert all(f["source"].startswith("https://") and f["established"] for f in LOGS.values())


@pytest.mark.parametrize("name", sorted(LOGS))
def test_doctor_on_a_real_log(name: str, tmp_path: Path) -> None:
    fixture = LOGS[name]
    log = tmp_path / "pasted.log"
    log.write_text(fixture["log"], encoding="utf-8")
    done = run_cli("doctor", "--log", str(log), "--json")
    data = json.loads(done.stdout)
    problems = [f for f in data["diagnosis"] if f["severity"] == "problem"]
    if fixture["harmful"]:
        assert done.returncode == 1, data
        assert problems[0]["id"] == fixture["cause"], (fixture["established"], [f["id"] for f in problems])
        assert problems[0]["cause"] and problems[0]["fix"] and problems[0]["evidence"]
    else:
        assert done.returncode == 0 and not problems, problems
        assert fixture["cause"] in [f["id"] for f in data["diagnosis"]], "known noise is named"


def test_doctor_names_the_cause_and_notes_the_noise_in_words(tmp_path: Path) -> None:
    log = tmp_path / "pasted.log"
    log.write_text(LOGS["034-driver-too-old-conda-cuda92-possibly-insufficient"]["log"], encoding="utf-8")
    done = run_cli("doctor", "--log", str(log))
    assert done.returncode == 1
    assert "Cause: The NVIDIA driver is too old for TensorFlow's CUDA." in done.stdout
    assert "The driver: 390.87.0." in done.stdout and "Also: cuDNN could not be initialised" in done.stdout
    log.write_text(LOGS["018-noise-factory-tensorrt-colab-webui"]["log"], encoding="utf-8")
    done = run_cli("doctor", "--log", str(log))
    assert done.returncode == 0 and "Note: Factory registration messages (harmless)" in done.stdout


# --------------------------------------------------------------------------- unknown errors


@pytest.mark.parametrize("text, quoted", [
    ("2025-01-01 00:00:00.000000: E tensorflow/core/kernels/new_op.cc:42] Something nobody has seen\n",
     "Something nobody has seen"),
    ("E0000 00:00:1748720220.035048      27 gpu_timer.cc:114] Skipping the delay kernel, measurement accuracy"
     " will be reduced\n", "gpu_timer.cc:114"),
    ("Traceback (most recent call last):\n  File \"train.py\", line 3\nRuntimeError: a brand new failure\n",
     "RuntimeError: a brand new failure"),
    ("W external/local_xla/xla/stream_executor/cuda/cuda_executor.cc:1] CUDA_ERROR_ILLEGAL_ADDRESS: an illegal "
     "memory access was encountered\n", "CUDA_ERROR_ILLEGAL_ADDRESS"),
    ("cudnn said CUDNN_STATUS_EXECUTION_FAILED\n", "CUDNN_STATUS_EXECUTION_FAILED"),
    ("I0000 00:00:1.0 1 x.cc:1] failed call to cuDevicePrimaryCtxRelease: whatever\n", "cuDevicePrimaryCtxRelease"),
], ids=["e-level", "absl-e-level", "exception", "cuda-error", "cudnn-status", "failed-call"])
def test_an_unknown_error_is_never_called_healthy(text: str, quoted: str, tmp_path: Path) -> None:
    log = tmp_path / "pasted.log"
    log.write_text("I tensorflow/core/platform/cpu_feature_guard.cc:1] This TensorFlow binary is optimized to use"
                   " available CPU instructions\n" + text, encoding="utf-8")
    done = run_cli("doctor", "--log", str(log), "--json")
    assert done.returncode == 1
    first = json.loads(done.stdout)["diagnosis"][0]
    assert first["id"] == "unrecognised-error" and quoted in first["cause"]
    assert "report them to gpuready" in first["fix"]


def test_a_known_cause_is_not_drowned_in_unrecognised_lines() -> None:
    text = LOGS["063-cublas-execution-failed-rtx2080-cuda90-patches"]["log"]  # a Traceback follows
    assert [f.id for f in signatures.diagnose(text)] == ["cublas-error"]


def test_harmless_e_level_noise_is_explained_by_its_signature() -> None:
    text = LOGS["018-noise-factory-tensorrt-colab-webui"]["log"]  # three E-level factory lines
    assert signatures.primary(signatures.diagnose(text)) is None


def test_a_pattern_re2_cannot_read_is_refused() -> None:
    bad = textwrap.dedent('''
        [[signature]]
        id = "peek"
        title = "t"
        severity = "problem"
        any = ["Could not load '(?!libcuda)"]
        cause = "c"
        fix = "f"
    ''')
    with pytest.raises(UsageError, match=r"signature\[0\] \(peek\).*not RE2 syntax"):
        signatures.parse_signatures(bad)


# --------------------------------------------------------------------------- logs of any size


def _buried(text: str, path: Path, before: int, after: int) -> Path:
    """`text` with `before` and `after` bytes of healthy training noise around it."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write(NOISE * (before // len(NOISE)) + text + ("\n" if not text.endswith("\n") else ""))
        handle.write(NOISE * (after // len(NOISE)))
    return path


def _ids(text: str) -> list[str]:
    return [f.id for f in signatures.diagnose(text)]


@pytest.mark.parametrize("name", sorted(LOGS))
def test_a_log_buried_in_a_big_one_reads_the_same(name: str, tmp_path: Path) -> None:
    text = LOGS[name]["log"]
    # a hang is the end of the log (nothing follows the all-reduce): it stays at the end
    after = 0 if name.startswith("038-") else 2 * WHOLE_BYTES
    path = _buried(text, tmp_path / "big.log", 2 * WHOLE_BYTES, after)
    window = read_for_diagnosis(path)
    assert len(window) < path.stat().st_size / 4
    assert _ids(window) == _ids(text)


def test_the_first_error_and_the_end_are_kept(tmp_path: Path) -> None:
    start = LOGS["013-cudnn-handle-tf231-t4-memory-growth"]["log"]
    end = LOGS["063-cublas-execution-failed-rtx2080-cuda90-patches"]["log"]
    path = tmp_path / "big.log"
    with path.open("w", encoding="utf-8") as handle:
        handle.write(NOISE * 1000 + start + NOISE * 100_000 + end + NOISE * 50)
    window = read_for_diagnosis(path)
    assert "bytes of the log not shown" in window
    assert [f.id for f in signatures.diagnose(window) if f.severity == "problem"] == ["cudnn-handle", "cublas-error"]


def test_a_log_without_line_ends_is_read_in_bounded_pieces(tmp_path: Path) -> None:
    path = tmp_path / "one-line.log"
    path.write_bytes(b"x" * (8 * WHOLE_BYTES) + b" CUDA_ERROR_OUT_OF_MEMORY " + b"y" * (8 * WHOLE_BYTES))
    window = read_for_diagnosis(path)
    assert len(window) < 2 * WHOLE_BYTES
    assert signatures.primary(signatures.diagnose(window)).id == "out-of-memory"


MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(done.stdout)
"""


def test_doctor_reads_a_large_log_in_bounded_memory(tmp_path: Path) -> None:
    """256 MB here (bench/bench_doctor.py measures 2 GB): the memory does not grow with the file."""
    path = tmp_path / "large.log"
    block = NOISE * 20_000
    with path.open("w", encoding="utf-8") as handle:
        handle.write(block + LOGS["013-cudnn-handle-tf231-t4-memory-growth"]["log"])
        while handle.tell() < 256 * 2**20:
            handle.write(block)
        handle.write(LOGS["063-cublas-execution-failed-rtx2080-cuda90-patches"]["log"])
    invoke = str(Path(sys.executable).with_name("invoke"))
    done = subprocess.run([sys.executable, "-c", MEASURE, invoke, "doctor", "--log", str(path), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    status, peak_kib = map(int, done.stdout.splitlines()[0].split())
    problems = [f["id"] for f in json.loads("\n".join(done.stdout.splitlines()[1:]))["diagnosis"]
                if f["severity"] == "problem"]
    assert status == 1 and problems == ["cudnn-handle", "cublas-error"]
    assert peak_kib < 400 * 1024, f"peak RSS {peak_kib // 1024} MiB for a 256 MB log"
