"""The CUDA library probe: in an environment's own Python, load every library TensorFlow needs
and name the first that fails. The environments are real venvs; the "CUDA libraries" are a real
shared object copied under CUDA names (loadable), garbage bytes (not loadable), or absent."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gpuready.certify import diagnosis

from .certify_doubles import add_fake_tensorflow, bare_env, site_packages

# TensorFlow 2.21.0's own build_info.py (from the wheel; shared/reference lists it).
BUILD_GPU = ("build_info = collections.OrderedDict([('cpu_compiler', 'clang'), ('cuda_compute_capabilities', "
             "['sm_60', 'sm_70', 'sm_80', 'sm_89', 'compute_90']), ('cuda_version', '12.5.1'), "
             "('cudnn_version', '9'), ('is_cuda_build', True), ('is_rocm_build', False), "
             "('is_tensorrt_build', False)])")
BUILD_CPU = ("build_info = collections.OrderedDict([('is_cuda_build', False), ('is_rocm_build', False), "
             "('is_tensorrt_build', False)])")


def loadable_library() -> Path:
    """A real shared object this Python can dlopen: one of its own extension modules."""
    import _ctypes

    path = Path(getattr(_ctypes, "__file__", "") or "")
    if not path.suffix == ".so":
        pytest.skip("this Python has no extension module in a shared object to copy")
    return path


@pytest.fixture
def env(tmp_path: Path) -> Path:
    return bare_env(tmp_path / "env")


def nvidia_lib(env: Path, package: str, name: str, content: Path | bytes) -> Path:
    folder = site_packages(env) / "nvidia" / package / "lib"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if isinstance(content, Path):
        shutil.copyfile(content, target)
    else:
        target.write_bytes(content)
    return target


def test_names_the_first_library_that_does_not_load(env: Path) -> None:
    add_fake_tensorflow(env, BUILD_GPU)
    good = loadable_library()
    nvidia_lib(env, "cuda_runtime", "libcudart.so.12", good)
    broken = nvidia_lib(env, "cublas", "libcublasLt.so.12", b"not an ELF file at all")
    result = diagnosis.probe_libraries(env / "bin" / "python")
    assert result["tensorflow"]["cuda_version"] == "12.5.1" and result["tensorflow"]["cudnn_version"] == "9"
    cudart = result["libraries"][0]
    assert cudart["name"] == "libcudart.so.12" and cudart["ok"] and cudart["path"].endswith("libcudart.so.12")
    failed = result["first_failure"]
    assert failed["name"] == "libcublasLt.so.12" and failed["path"] == str(broken)
    assert "invalid ELF header" in failed["error"] or "too short" in failed["error"]
    [*_, finding] = diagnosis.library_findings(result)
    assert finding.id == "cuda-library-not-loadable" and "libcublasLt.so.12 cannot be loaded" in finding.cause


def test_a_library_missing_everywhere_is_named(env: Path) -> None:
    add_fake_tensorflow(env, BUILD_GPU)
    result = diagnosis.probe_libraries(env / "bin" / "python")
    failed = result["first_failure"]
    assert failed["name"] == "libcudart.so.12"
    assert "nor on the loader's search path" in failed["error"]
    names = [lib["name"] for lib in result["libraries"]]
    assert names[:4] == ["libcudart.so.12", "libnvJitLink.so.12", "libcublasLt.so.12", "libcublas.so.12"]
    assert "libcudnn.so.9" in names, "the cuDNN major comes from the build info"


def test_cuda_11_builds_want_cuda_11_names(env: Path) -> None:
    add_fake_tensorflow(env, BUILD_GPU.replace("'12.5.1'", "'11.8'").replace("('cudnn_version', '9')",
                                                                             "('cudnn_version', '8')"))
    names = [lib["name"] for lib in diagnosis.probe_libraries(env / "bin" / "python")["libraries"]]
    assert names[0] == "libcudart.so.11.0" and "libcufft.so.10" in names and "libcudnn.so.8" in names
    assert "libnvJitLink.so.12" not in names


def test_a_cpu_build_needs_no_library(env: Path) -> None:
    add_fake_tensorflow(env, BUILD_CPU)
    result = diagnosis.probe_libraries(env / "bin" / "python")
    assert result["libraries"] == [] and "CPU-only" in result["note"]
    assert result["driver"]["name"] == "libcuda.so.1"
    assert diagnosis.library_findings(result) == []


def test_no_tensorflow(env: Path) -> None:
    result = diagnosis.probe_libraries(env / "bin" / "python")
    assert result["tensorflow"] == {"found": False} and "not installed" in result["note"]


def test_a_python_that_cannot_run_gives_no_probe(tmp_path: Path) -> None:
    assert diagnosis.probe_libraries(tmp_path / "no-python") is None
