"""Measuring GPU code from the bytes (refresh/fatbin.py, refresh/cuobjdump.py, refresh/kernels.py), with
the real cuobjdump (the nvidia-cuda-cuobjdump wheel of the test extra) on real fatbins cut from
TensorFlow's wheels; and the measured facts in matrix/kernels.toml against what this code reads."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from gpuready.model.matrix import SCOPE_ALL
from gpuready.refresh import cuobjdump, fatbin, kernels

from .kernel_doubles import build

FIXTURES = Path(__file__).resolve().parent / "data" / "fatbin"
EMBEDDED = FIXTURES / "tf2.21.0-libtensorflow_cc-embedded-0xa0888f0.fatbin"
MAIN = FIXTURES / "tf2.21.0-libtensorflow_cc-nv_fatbin-0x185a00d0.fatbin"
SM35 = FIXTURES / "tf2.14.1-libtensorflow_cc-embedded-0x5b53b50.fatbin"


@pytest.fixture(scope="module")
def tools() -> list[cuobjdump.Tool]:
    found = cuobjdump.installed_beside()
    assert found is not None, "the test extra installs nvidia-cuda-cuobjdump"
    return [cuobjdump.tool_at(found)]


def sidecar(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".json").read_text())


def test_the_fixtures_are_what_their_sidecars_say() -> None:
    for path in (EMBEDDED, MAIN, SM35):
        data = path.read_bytes()
        meta = sidecar(path)
        assert len(data) == meta["size"] and meta["wheel_sha256"]
        header = fatbin.parse_header(data, 0)
        assert header is not None and header.total == len(data)
        entries = fatbin.entries(data)
        found = sorted(f"sm_{e.arch}" if e.kind == "elf" else f"compute_{e.arch}@{e.ptx_version[0]}.{e.ptx_version[1]}"
                       for e in entries)
        assert found == sorted(meta["entry_headers"])


def test_the_scanner_finds_fatbins_in_sections_and_by_header() -> None:
    embedded, main = EMBEDDED.read_bytes(), MAIN.read_bytes()
    padding = b"\x00" * 40 + fatbin.MAGIC_BYTES + b"\x01\x00" * 3  # a stray magic that is no fatbin
    data, offsets = build([(".text", b"\x90" * 64), (".rodata", padding + embedded + b"xx" + embedded),
                           (".nv_fatbin", main), ("__nv_relfatbin", embedded)])
    import io

    sections = fatbin.elf_sections(io.BytesIO(data))
    found = fatbin.scan(data, sections)
    kinds = [(f.kind, f.size) for f in found]
    assert kinds.count((fatbin.KIND_EMBEDDED, len(embedded))) == 2
    assert (fatbin.KIND_NV_FATBIN, len(main)) in kinds and (fatbin.KIND_RELFATBIN, len(embedded)) in kinds
    assert len(found) == 4  # the stray magic is not taken for a fatbin


def test_cuobjdump_reads_the_real_fixtures(tools) -> None:
    reading = cuobjdump.read(tools[0], EMBEDDED)
    assert reading.ok, reading.problems
    contents = kernels.contents_of(reading)
    assert contents.sass == ("sm_60", "sm_70", "sm_80", "sm_89")
    assert (contents.ptx, contents.target, contents.isa) == ("compute_90", "sm_90", "8.5")
    main = kernels.contents_of(cuobjdump.read(tools[0], MAIN))
    assert main.sass == ("sm_60", "sm_70", "sm_80", "sm_89", "sm_90") and main.isa == "8.3"


def test_cuobjdump_13_refuses_sm_35_and_the_measurement_says_so(tools, tmp_path) -> None:
    with pytest.raises(kernels.NotMeasured) as caught:
        kernels.read_fatbin(SM35.read_bytes(), tools, tmp_path, "tf214")
    assert "sm_35" in str(caught.value) and "cuobjdump 13." in str(caught.value)


def test_the_matrix_agrees_with_what_the_code_reads_from_the_wheel(matrix, tools, tmp_path) -> None:
    """matrix/kernels.toml's 2.21.0 sets against the same library's fatbins read here."""
    library = tmp_path / "libtensorflow_cc.so.2"
    data, _ = build([(".rodata", EMBEDDED.read_bytes()), (".nv_fatbin", MAIN.read_bytes())])
    library.write_bytes(data)
    measured = {(s.section, s.sass, s.ptx, s.target, s.isa, s.scope)
                for s in kernels.measure_library(library, "libtensorflow_cc.so.2", tools, tmp_path)}
    release = matrix.release("2.21.0")
    assert release.kernels is not None and release.kernels.sha256 == sidecar(EMBEDDED)["wheel_sha256"]
    committed = {(s.section, s.sass, s.ptx, s.target, s.isa, s.scope) for s in release.kernels.sets
                 if s.library == "libtensorflow_cc.so.2"}
    assert measured == committed


def test_a_wheel_is_measured_set_by_set(tools, tmp_path) -> None:
    data, _ = build([(".rodata", EMBEDDED.read_bytes() * 3), (".nv_fatbin", MAIN.read_bytes())])
    wheel = tmp_path / "tensorflow-9.9.9-cp311-cp311-manylinux_2_27_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("tensorflow/libtensorflow_cc.so.2", data)
        zf.writestr("tensorflow/python/_pywrap_something.so", b"not an ELF file at all")
        zf.writestr("tensorflow/__init__.py", "")
    result = kernels.measure_wheel(wheel, tools, sha256="abc", measured="2026-12-01")
    sets = {(s.library, s.section): s for s in result.sets}
    assert sets[("libtensorflow_cc.so.2", "embedded")].fatbins == 3
    assert sets[("libtensorflow_cc.so.2", "nv_fatbin")].scope == SCOPE_ALL
    text = kernels.render("9.9.9", result)
    assert '[releases."9.9.9"]' in text and 'isa = "8.5"' in text and 'tool = "cuobjdump 13.' in text


def test_a_wheel_without_gpu_code_is_not_measured(tools, tmp_path) -> None:
    wheel = tmp_path / "tensorflow_cpu-9.9.9-cp311-cp311-manylinux_2_27_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("tensorflow/libtensorflow_framework.so.2", build([(".text", b"\x90")])[0])
    with pytest.raises(kernels.NotMeasured, match="no GPU code"):
        kernels.measure_wheel(wheel, tools, sha256="abc", measured="2026-12-01")


def test_sass_only_sets_are_classified_by_their_kernel_names(tmp_path) -> None:
    contents = kernels.Contents(("sm_80",), None, None, None, "cuobjdump 13.5.37")
    sets = kernels.kernel_sets("lib.so", "nv_fatbin", [(contents, b"blob")], lambda blob: True)
    assert [s.scope for s in sets] == ["nccl"]
    sets = kernels.kernel_sets("lib.so", "nv_fatbin", [(contents, b"blob")], lambda blob: False)
    assert [s.scope for s in sets] == ["all"]


@pytest.mark.parametrize("text, functions", [
    ("symbols:\nFUNC          GLOBAL  DEFAULT    ENTRY                                Cast_GPU_DT_BOOL_kernel\n",
     ["Cast_GPU_DT_BOOL_kernel"]),
    ("symbols:\nFUNC  GLOBAL  DEFAULT  ENTRY  ncclDevKernel_AllReduce_Sum_f32_RING_LL\n",
     ["ncclDevKernel_AllReduce_Sum_f32_RING_LL"]),
    ("symbols:\nSTT_FUNC         STB_GLOBAL STO_ENTRY      Cast_GPU_DT_BOOL_DT_INT8_kernel\n",  # cuobjdump 11.8
     ["Cast_GPU_DT_BOOL_DT_INT8_kernel"]),
    ("no symbols here\n", []),
])
def test_parse_functions(text, functions) -> None:
    assert cuobjdump.parse_functions(text) == functions


def test_parse_version() -> None:
    text = "Cuda compilation tools, release 13.5, V13.5.37\nBuild cuda_13.5.r13.5/compiler.39125733_0\n"
    assert cuobjdump.parse_version(text) == "13.5.37"
    assert cuobjdump.parse_version("nonsense") is None


def test_the_kernel_names_of_the_real_fixture(tools) -> None:
    assert cuobjdump.functions(tools[0], EMBEDDED) == ["Cast_GPU_DT_BOOL_DT_UINT8_kernel"] * 4
