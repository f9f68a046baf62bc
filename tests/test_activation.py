"""Activation: what an installed TensorFlow needs from `source bin/activate` / `conda activate`.

TensorFlow's own libraries are 0.5-1 GB, so the RUNPATH reader is tested on small ELF files made
here (by hand, and by the C compiler where there is one); the decision on fake site-packages
trees; the shell code by sourcing it in bash.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from gpuready.env import activation as A
from gpuready import tools
from gpuready.config import Settings
from gpuready.model.records import Activation
from gpuready.env.layout import read_activation

NVIDIA = ("cublas", "cuda_runtime", "cudnn", "cufft", "cuda_nvcc")


def make_elf(path: Path, runpath: str | None) -> Path:
    """A minimal 64-bit little-endian ELF shared object with one PT_LOAD and a PT_DYNAMIC."""
    dynstr = b"\0" + (runpath or "").encode() + b"\0"
    str_off = 64 + 2 * 56
    dyn_off = (str_off + len(dynstr) + 7) // 8 * 8
    entries = [(5, str_off), (10, len(dynstr))] + ([(29, 1)] if runpath is not None else []) + [(0, 0)]
    dyn = b"".join(struct.pack("<qQ", tag, value) for tag, value in entries)
    total = dyn_off + len(dyn)
    header = (b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
              + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 64, 0, 0, 64, 56, 2, 64, 0, 0))
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, total, total, 0x1000)
    dynamic = struct.pack("<IIQQQQQQ", 2, 6, dyn_off, dyn_off, dyn_off, len(dyn), len(dyn), 8)
    data = header + load + dynamic + dynstr
    data += bytes(dyn_off - len(data)) + dyn
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


PY = "python%d.%d" % sys.version_info[:2]


def fake_env(root: Path, *, runpath: str | None, libs=NVIDIA, framework: bool = True,
             libdevice: bool = True, python: str = "python3.11") -> Path:
    site = root / "lib" / python / "site-packages"
    for lib in libs:
        (site / "nvidia" / lib / "lib").mkdir(parents=True)
        (site / "nvidia" / lib / "lib" / f"lib{lib}.so.12").write_bytes(b"")
    if libdevice:
        (site / "nvidia" / "cuda_nvcc" / "nvvm" / "libdevice").mkdir(parents=True)
    if framework:
        make_elf(site / "tensorflow" / "libtensorflow_framework.so.2", runpath)
    return root


RUNPATH_2_21 = ":".join(f"$ORIGIN/../../nvidia/{lib}/lib:$ORIGIN/../nvidia/{lib}/lib"
                        for lib in ("cublas", "cudnn", "cufft", "cuda_runtime"))
RUNPATH_2_16_1 = "$ORIGIN/:$ORIGIN/../../nvidia/cuda_runtime/lib:$ORIGIN/../nvidia/cuda_runtime/lib"


# --------------------------------------------------------------------------- ELF


def test_runpath_of_a_hand_made_elf(tmp_path):
    elf = make_elf(tmp_path / "lib.so", "$ORIGIN/:$ORIGIN/../nvidia/cudnn/lib")
    assert A.elf_runpath(elf) == ["$ORIGIN/", "$ORIGIN/../nvidia/cudnn/lib"]
    assert A.elf_runpath(make_elf(tmp_path / "none.so", None)) == []
    (tmp_path / "text").write_text("not an ELF file")
    assert A.elf_runpath(tmp_path / "text") is None
    assert A.elf_runpath(tmp_path / "missing") is None
    (tmp_path / "short").write_bytes(b"\x7fELF\x02\x01")
    assert A.elf_runpath(tmp_path / "short") is None


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_runpath_of_a_compiled_library(tmp_path):
    (tmp_path / "x.c").write_text("int x(void) { return 1; }\n")
    out = tmp_path / "libx.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out), str(tmp_path / "x.c"),
                    "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../nvidia/cublas/lib:$ORIGIN/../nvidia/cudnn/lib"],
                   check=True)
    assert A.elf_runpath(out) == ["$ORIGIN/../nvidia/cublas/lib", "$ORIGIN/../nvidia/cudnn/lib"]


# --------------------------------------------------------------------------- deciding


def test_tensorflow_that_finds_its_libraries_needs_no_loader_path(tmp_path):
    env = fake_env(tmp_path, runpath=RUNPATH_2_21)
    assert A.decide(env, tensorflow="2.21.0") == Activation()


def test_2_16_1_gets_every_nvidia_lib_folder_on_the_loader_path(tmp_path):
    env = fake_env(tmp_path, runpath=RUNPATH_2_16_1)
    result = A.decide(env, tensorflow="2.16.1")
    assert result.library_dirs == tuple(f"lib/python3.11/site-packages/nvidia/{lib}/lib"
                                        for lib in sorted(NVIDIA))
    assert "does not find nvidia/{cudnn,cublas}/lib" in result.reasons[0]
    assert result.xla_cuda_data_dir is None  # 2.16 finds ptxas and libdevice by itself


def test_unreadable_library_means_the_loader_path_to_be_safe(tmp_path):
    env = fake_env(tmp_path, runpath=None, framework=False)
    assert A.decide(env, tensorflow="2.21.0").library_dirs


def test_old_tensorflow_gets_the_xla_cuda_data_dir(tmp_path):
    env = fake_env(tmp_path, runpath="$ORIGIN/")
    result = A.decide(env, tensorflow="2.13.1")
    assert result.xla_cuda_data_dir == "lib/python3.11/site-packages/nvidia/cuda_nvcc"
    assert result.library_dirs  # 2.13 names no nvidia folder in its RUNPATH either


def test_cpu_environment_needs_nothing(tmp_path):
    env = fake_env(tmp_path, runpath=None, libs=(), framework=False, libdevice=False)
    assert A.decide(env, tensorflow="2.21.0").empty


def test_ptx_jit_raises_the_cache_size(tmp_path):
    env = fake_env(tmp_path, runpath=RUNPATH_2_21)
    result = A.decide(env, tensorflow="2.21.0", warnings=["ptx-jit"])
    assert result.defaults == {"CUDA_CACHE_MAXSIZE": "4294967296"}


def test_conda_forge_prefix_is_the_cuda_data_dir(tmp_path):
    (tmp_path / "nvvm" / "libdevice").mkdir(parents=True)
    assert A.decide(tmp_path, tensorflow="2.19.1", source="conda-forge").xla_cuda_data_dir == "."


# --------------------------------------------------------------------------- the shell


def _venv(tmp_path: Path) -> Path:
    prefix = tmp_path / "env"
    uv = tools.find_uv(Settings())
    subprocess.run([uv, "venv", "--no-project", "--relocatable", "--python", sys.executable, str(prefix)],
                   check=True, capture_output=True)
    return prefix


def _bash(script: str, **env: str) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", script + "\nenv -0"], capture_output=True, env={"PATH": "/usr/bin:/bin", **env})
    assert out.returncode == 0, out.stderr
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


def test_activate_sets_and_deactivate_restores(tmp_path):
    prefix = _venv(tmp_path)
    fake_env(prefix, runpath=RUNPATH_2_16_1, python=PY)
    result = A.decide(prefix, tensorflow="2.13.1", warnings=["ptx-jit"])
    A.write(prefix, result, "pip")
    A.write(prefix, result, "pip")  # twice: still one block
    text = (prefix / "bin" / "activate").read_text()
    assert text.count(A.BEGIN) == 2  # one in deactivate, one at the end

    site = prefix / "lib" / PY / "site-packages"
    active = _bash(f"source {prefix}/bin/activate", LD_LIBRARY_PATH="/opt/old", XLA_FLAGS="--xla_foo")
    dirs = active["LD_LIBRARY_PATH"].split(":")
    assert dirs[0] == str(site / "nvidia/cublas/lib") and dirs[-1] == "/opt/old"
    assert active["XLA_FLAGS"] == f"--xla_foo --xla_gpu_cuda_data_dir={site / 'nvidia/cuda_nvcc'}"
    assert active["CUDA_CACHE_MAXSIZE"] == "4294967296"

    kept = _bash(f"source {prefix}/bin/activate", CUDA_CACHE_MAXSIZE="1000")
    assert kept["CUDA_CACHE_MAXSIZE"] == "1000"  # the user's own value wins

    after = _bash(f"source {prefix}/bin/activate && deactivate", LD_LIBRARY_PATH="/opt/old")
    assert after["LD_LIBRARY_PATH"] == "/opt/old"
    assert "XLA_FLAGS" not in after and "CUDA_CACHE_MAXSIZE" not in after
    assert not any(k.startswith("_GPUREADY") for k in after)

    # gpuready's own subprocesses get the same variables without activating
    env = A.environment(prefix, {"LD_LIBRARY_PATH": "/opt/old"})
    assert env["LD_LIBRARY_PATH"] == active["LD_LIBRARY_PATH"]
    assert env["CUDA_CACHE_MAXSIZE"] == "4294967296"


def test_activation_follows_the_environment_when_it_moves(tmp_path):
    prefix = _venv(tmp_path)
    fake_env(prefix, runpath=RUNPATH_2_16_1, libs=("cudnn",), python=PY)
    A.write(prefix, A.decide(prefix, tensorflow="2.16.1"), "pip")
    moved = prefix.rename(tmp_path / "moved")
    active = _bash(f"source {moved}/bin/activate")
    assert active["LD_LIBRARY_PATH"] == str(moved / "lib" / PY / "site-packages/nvidia/cudnn/lib")


def test_nothing_to_set_leaves_activate_alone(tmp_path):
    prefix = _venv(tmp_path)
    before = (prefix / "bin" / "activate").read_text()
    A.write(prefix, Activation(), "pip")
    assert (prefix / "bin" / "activate").read_text() == before
    assert read_activation(prefix) == Activation()


def test_conda_hooks(tmp_path):
    prefix = fake_env(tmp_path / "conda-env", runpath=RUNPATH_2_16_1, libs=("cudnn",))
    A.write(prefix, A.decide(prefix, tensorflow="2.16.1"), "conda")
    hook = prefix / "etc/conda/activate.d/gpuready.sh"
    unhook = prefix / "etc/conda/deactivate.d/gpuready.sh"
    active = _bash(f". {hook}", CONDA_PREFIX=str(prefix))
    assert active["LD_LIBRARY_PATH"] == str(prefix / "lib/python3.11/site-packages/nvidia/cudnn/lib")
    after = _bash(f". {hook} && . {unhook}", CONDA_PREFIX=str(prefix))
    assert "LD_LIBRARY_PATH" not in after


def test_activation_line():
    assert A.activation_line("/x y/env", "pip") == "source '/x y/env/bin/activate'"
    assert A.activation_line("/opt/env", "conda") == "conda activate /opt/env"
