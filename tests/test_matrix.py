"""The matrix is validated on load: every mistake names the file, the key and the problem."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from gpuready.model import matrix as M
from gpuready.errors import MatrixError

from .conftest import MATRIX_DIR, run_cli

DATA = Path(__file__).resolve().parent / "data"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "tensorflow-wheels-linux-x86_64.json"


def test_shipped_matrix_loads(matrix) -> None:
    assert str(matrix.releases[0].version) == "2.21.0"
    assert [str(r.version) for r in matrix.releases] == sorted(
        (str(r.version) for r in matrix.releases), key=M.Version, reverse=True)
    for release in matrix.releases:
        if release.pins:
            assert matrix.pins_for(release) is not None


def test_packaged_copy_is_the_same_data() -> None:
    """The console command reads the copy shipped as gpuready._matrix."""
    assert M.load(None).releases == M.load(MATRIX_DIR).releases


def test_matrix_agrees_with_the_wheels_themselves(matrix) -> None:
    """Every fact read from the wheels (reference JSON) is what the matrix says."""
    if not REFERENCE.exists():
        pytest.skip(f"reference data not beside the checkout: {REFERENCE}")
    import json

    wheels = json.loads(REFERENCE.read_text())
    for version, facts in wheels.items():
        release = matrix.release(version)
        assert release is not None, version
        assert release.cuda in facts["build_info"]
        for arch in release.sass + release.ptx:
            assert f"'{arch}'" in facts["build_info"]
        linux = release.wheel("tensorflow", "linux-64")
        assert [f"cp{p.replace('.', '')}" for p in linux.pythons] == facts["pythons"]


def test_table3_and_floors(matrix) -> None:
    assert matrix.full_driver("12.5.1", windows=False) == "555.42.06"
    assert matrix.full_driver("12.3", windows=False) == "545.23.06"
    assert matrix.full_driver("12.5.1", windows=True) == "555.85"
    assert matrix.floor("12.5.1", windows=False) == "525.60.13"
    assert matrix.floor("11.8", windows=True) == "452.39"
    assert matrix.newest_cuda_for_driver("535.104.05", windows=False) == "12.2"
    assert matrix.newest_cuda_for_driver("537.13", windows=True) == "12.2"
    assert matrix.newest_cuda_for_driver("400.0", windows=False) is None


GPU_NAMES = tomllib.loads((DATA / "gpu-names.toml").read_text())["tests"]


@pytest.mark.parametrize("raw, cc", [(t["raw"], t["cc"]) for t in GPU_NAMES], ids=[t["raw"] for t in GPU_NAMES])
def test_compute_capability_by_exact_model(matrix, raw, cc) -> None:
    """NVIDIA's CUDA GPU list (tests/data/gpu-names.toml); never a substring: "Quadro RTX 5000" is 7.5."""
    assert matrix.cc_for_name(raw) == (None if cc == "none" else cc)


def _raw_names() -> list[tuple[str, str, str]]:
    rows = []
    for line in (DATA / "gpu-raw-names.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        raw, _source, _ids, key, cc = line.split("\t")
        rows.append((raw, key, cc))
    return rows


def test_every_name_the_driver_prints_resolves_to_its_family(matrix) -> None:
    """The exact names of NVIDIA's driver table (open-gpu-kernel-modules 595.45.04) with the compute
    capability of their PCI device-ID family (tests/data/gpu-raw-names.tsv)."""
    rows = _raw_names()
    assert len(rows) >= 200
    wrong = [(raw, matrix.gpu_names.model(raw), matrix.cc_for_name(raw), cc) for raw, key, cc in rows
             if matrix.cc_for_name(raw) != (None if cc in ("none", "", "UNKNOWN") else cc)]
    assert wrong == []


@pytest.mark.parametrize("first, second", [
    ("Quadro RTX 5000", "NVIDIA RTX 5000 Ada Generation"), ("Quadro RTX 4000", "NVIDIA GeForce RTX 4090"),
    ("NVIDIA A10", "NVIDIA A100-PCIE-40GB"), ("Tesla T4", "NVIDIA T400"),
])
def test_look_alike_names_are_different_models(matrix, first, second) -> None:
    assert matrix.gpu_names.model(first) != matrix.gpu_names.model(second)
    assert matrix.cc_for_name(first) is not None and matrix.cc_for_name(second) is not None


def _broken(tmp_path: Path, file: str, old: str, new: str) -> Path:
    folder = tmp_path / "matrix"
    shutil.copytree(MATRIX_DIR, folder)
    path = folder / file
    text = path.read_text()
    at = text.rindex(old)  # the last occurrence: the newest release in tensorflow.toml
    path.write_text(text[:at] + new + text[at + len(old):])
    return folder


BROKEN = [
    ("key typo", "tensorflow.toml", 'cuda = "12.5.1"', 'cdua = "12.5.1"', 'releases.2.21.0.cdua', "unknown key"),
    ("syntax", "cuda.toml", '"12.5.1" = {', '"12.5.1" = {{', "(syntax)", ""),
    ("wrong type", "tensorflow.toml", 'sass = ["sm_60", "sm_70", "sm_80", "sm_89"]', 'sass = "sm_80"',
     "releases.2.21.0.sass", "expected list"),
    ("bad arch", "tensorflow.toml", 'ptx = ["compute_90"]', 'ptx = ["sm_90"]', "releases.2.21.0.ptx",
     "compute_XY"),
    ("missing pin set", "tensorflow.toml", 'pins = "cu12.5"', 'pins = "cu12.6"', "releases.2.21.0.pins",
     "no pin set"),
    ("cuda without driver row", "cuda.toml", '"12.5.1" = { linux = "555.42.06", windows = "555.85" }\n', "",
     "releases.2.18.0.cuda", "no row"),
    ("bad compute capability", "gpus.toml", '"h100" = "9.0"', '"h100" = "9"', "cc.h100", "compute capability"),
    ("kernels: unknown ISA", "kernels.toml", 'isa = "8.5"', 'isa = "8.9"', "releases.2.21.0.sets[2].isa",
     "no row in cuda.toml"),
    ("kernels: bad section", "kernels.toml", 'section = "embedded"', 'section = "rodata"',
     "releases.2.21.0.sets[2].section", "expected one of"),
    ("kernels: not a release", "kernels.toml", '[releases."2.21.0"]', '[releases."2.99.0"]', "releases.2.99.0",
     "not a release"),
    ("isa without CUDA row", "cuda.toml", '"8.5" = "12.5.0"', '"8.5" = "12.7.0"', "ptx_isa.8.5", "no row"),
    ("known issue: bad specifier", "known-issues.toml", 'tensorflow = "==2.19.1"', 'tensorflow = "2.19.1"',
     "issue[7].tensorflow", "PEP 440"),
    ("known issue: bad remedy", "known-issues.toml", 'kind = "pin", requirement = "cuda-version=12.8"',
     'kind = "patch", requirement = "cuda-version=12.8"', "issue[7].remedy.kind", "expected one of"),
    ("architecture: bad cc", "gpus.toml", 'ccs = ["7.5"]', 'ccs = ["seven"]', "architectures[4].ccs",
     "compute capability"),
    ("bad platform", "conda-forge.toml", 'platforms = ["linux-64"]', 'platforms = ["linux-65"]',
     "releases.2.16.1.platforms", "unknown platform"),
    ("pin not exact", "cuda-wheels.toml", '"nvidia-cudnn-cu12==9.3.0.75"', '"nvidia-cudnn-cu12>=9.3"',
     "pin_sets.cu12.5.packages[5]", "exact"),
    ("bad driver", "cuda.toml", 'linux = "450.80.02"', 'linux = "four-fifty"',
     "minor_version_floor.11.linux", "not a driver version"),
]


@pytest.mark.parametrize("what, file, old, new, key, problem", BROKEN, ids=[b[0] for b in BROKEN])
def test_malformed_matrix_names_file_key_and_problem(tmp_path, what, file, old, new, key, problem) -> None:
    folder = _broken(tmp_path, file, old, new)
    with pytest.raises(MatrixError) as info:
        M.load(folder)
    error = info.value
    assert error.file.endswith("tensorflow.toml" if what == "cuda without driver row" else file)
    assert error.key == key
    assert problem in error.problem
    assert error.exit_code == 2


def test_missing_matrix_file(tmp_path) -> None:
    folder = tmp_path / "matrix"
    shutil.copytree(MATRIX_DIR, folder)
    (folder / "gpus.toml").unlink()
    with pytest.raises(MatrixError, match="gpus.toml"):
        M.load(folder)


def test_cli_reports_matrix_typo_in_one_line(tmp_path) -> None:
    folder = _broken(tmp_path, "tensorflow.toml", 'cuda = "12.5.1"', 'cdua = "12.5.1"')
    result = run_cli("plan", "--driver", "none", env={"GPUREADY_MATRIX": str(folder)})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "tensorflow.toml" in lines[0] and "releases.2.21.0.cdua" in lines[0] and "unknown key" in lines[0]
