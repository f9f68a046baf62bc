"""`invoke setup` end to end against the package index: real TensorFlow, real uv, real check.

1. On this GPU-less machine: the CPU plan, locked (or the committed lock reused), installed,
   certified on the CPU (--allow-cpu); then the same command again takes the no-op path.
2. A what-if plan for a GPU host: the real tensorflow[and-cuda] environment (about 6 GB) is
   installed from its lock and TensorFlow imports in it. It cannot be certified here.

Environments go to a temporary prefix root (gpuready.prefix_root), never the user data dir; the
envs/ folder is a copy, so a lock made here does not touch the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpuready.env import activation
from gpuready.env.layout import read_install_record

pytestmark = [pytest.mark.e2e, pytest.mark.network]

ROOT = Path(__file__).resolve().parent.parent
PY = "%d.%d" % sys.version_info[:2]


@pytest.fixture
def where(tmp_path):
    envs_dir = tmp_path / "envs"
    if (ROOT / "envs").is_dir():
        shutil.copytree(ROOT / "envs", envs_dir)
    yield {"INVOKE_GPUREADY_ENVS_DIR": str(envs_dir), "INVOKE_GPUREADY_PREFIX_ROOT": str(tmp_path / "prefixes")}
    shutil.rmtree(tmp_path / "prefixes", ignore_errors=True)  # several GB


def setup(where, *args, timeout=1800):
    invoke = Path(sys.executable).with_name("invoke")
    return subprocess.run([str(invoke), "setup", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **where}, stdin=subprocess.DEVNULL)


def test_cpu_setup_then_the_no_op_path(where):
    first = setup(where, "--allow-cpu", "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "certified on the CPU only" in first.stdout
    prefix = Path(where["INVOKE_GPUREADY_PREFIX_ROOT"]) / f"tf2.21-cpu-py{PY}-pip"
    record = read_install_record(prefix)
    assert record.packages["tensorflow-cpu"] == "2.21.0"
    certificate = json.loads((prefix / "gpuready" / "certificate.json").read_text())
    assert certificate["status"] == "cpu-only" and certificate["lock_sha256"] == record.lock_sha256

    second = setup(where, "--allow-cpu", "--yes")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Nothing to do:" in second.stdout
    seconds = float(re.search(r"checked in ([\d.]+) s", second.stdout).group(1))
    assert seconds < 1.0


def test_gpu_what_if_setup_installs_tensorflow_and_cuda_from_its_lock(where):
    out = setup(where, "--flavor", "pip", "--yes", "--driver", "560.35.03", "--gpu", "8.0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "not certified here (what-if plan)" in out.stdout
    prefix = Path(where["INVOKE_GPUREADY_PREFIX_ROOT"]) / f"tf2.21-cuda12.5-py{PY}-pip"
    record = read_install_record(prefix)
    packages = record.packages
    assert packages["tensorflow"] == "2.21.0" and packages["nvidia-cudnn-cu12"] == "9.24.0.43"
    lock = Path(where["INVOKE_GPUREADY_ENVS_DIR"]) / prefix.name / "requirements.txt"
    assert (prefix / "gpuready" / "requirements.txt").read_bytes() == lock.read_bytes()
    # TensorFlow 2.21 names the pip CUDA libraries in its RUNPATH: activation adds no loader path.
    assert activation.decide(prefix, tensorflow="2.21.0").library_dirs == ()
    check = subprocess.run(
        [str(prefix / "bin" / "python"), "-c",
         "import tensorflow as tf; print(tf.__version__, tf.test.is_built_with_cuda())"],
        capture_output=True, text=True, timeout=300, env=activation.environment(prefix))
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.split()[-2:] == ["2.21.0", "True"]
