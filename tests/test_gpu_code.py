"""The kernel-set rule (model/gpu_code.py): native SASS, PTX JIT, or no code, for one GPU and one set."""

from __future__ import annotations

import pytest

from gpuready.model.gpu_code import JIT, NATIVE, NONE, GpuCode, arch_number, claimed_sets, gpu_code, names, reach
from gpuready.model.matrix import KernelSet


def kset(sass=(), ptx=None, target=None, isa=None, scope="all", section="embedded", library="libtensorflow_cc.so.2"):
    return KernelSet(library=library, section=section, fatbins=1, sass=tuple(sass), ptx=ptx,
                     target=target or (ptx.replace("compute_", "sm_") if ptx else None), isa=isa, scope=scope,
                     tool="cuobjdump 13.5.37")


MLIR_221 = kset(["sm_60", "sm_70", "sm_80", "sm_89"], "compute_90", "sm_90", "8.5")
MLIR_219 = kset(["sm_60", "sm_70", "sm_80", "sm_89"], "compute_90", "sm_90a", "8.5")
NCCL_215 = kset(["sm_50", "sm_60", "sm_70", "sm_75", "sm_80"], scope="nccl", section="nv_fatbin")


@pytest.mark.parametrize("kernel_set, cc, how, code", [
    # SASS of the same major with a lower-or-equal minor runs natively
    (MLIR_221, (8, 0), NATIVE, "sm_80"),
    (MLIR_221, (8, 6), NATIVE, "sm_80"),
    (MLIR_221, (8, 9), NATIVE, "sm_89"),
    (MLIR_221, (7, 5), NATIVE, "sm_70"),
    (MLIR_221, (6, 1), NATIVE, "sm_60"),
    # no SASS of the major: PTX of a lower-or-equal architecture, later majors included
    (MLIR_221, (9, 0), JIT, "compute_90"),
    (MLIR_221, (10, 0), JIT, "compute_90"),
    (MLIR_221, (12, 0), JIT, "compute_90"),
    # below the lowest SASS and the PTX: nothing
    (MLIR_221, (5, 2), NONE, None),
    (MLIR_221, (3, 7), NONE, None),
    # arch-specific PTX (.target sm_90a) serves compute capability 9.0 alone
    (MLIR_219, (9, 0), JIT, "compute_90"),
    (MLIR_219, (10, 0), NONE, None),
    (MLIR_219, (12, 0), NONE, None),
    # SASS only (NCCL of 2.15): no PTX to fall back on
    (NCCL_215, (8, 0), NATIVE, "sm_80"),
    (NCCL_215, (9, 0), NONE, None),
    (kset(["sm_35"], "compute_80", isa="7.8"), (3, 7), NATIVE, "sm_35"),
    (kset([], "compute_80", isa="7.1"), (7, 5), NONE, None),  # PTX newer than the GPU: no
])
def test_reach(kernel_set, cc, how, code) -> None:
    found = reach(kernel_set, cc)
    assert (found.how, found.code) == (how, code)


def test_the_isa_a_gpu_needs_is_the_highest_of_its_jit_sets() -> None:
    main = kset(["sm_60", "sm_70", "sm_80", "sm_89", "sm_90"], "compute_90", isa="8.3", section="nv_fatbin")
    code = gpu_code((main, MLIR_221), (9, 0))
    assert [r.how for r in code.reaches] == [NATIVE, JIT] and code.isa == "8.5"
    blackwell = gpu_code((main, MLIR_221), (12, 0))
    assert blackwell.isa == "8.5" and len(blackwell.of(JIT)) == 2
    assert GpuCode(()).isa is None


def test_claimed_sets_have_no_isa() -> None:
    [claim] = claimed_sets(("sm_60", "sm_70"), ("compute_80",))
    code = gpu_code((claim,), (9, 0))
    assert code.of(JIT) and code.isa is None and code.isa_unknown


@pytest.mark.parametrize("text, number", [("sm_89", (8, 9)), ("compute_90", (9, 0)), ("sm_120", (12, 0)),
                                          ("sm_90a", (9, 0)), ("sm_100", (10, 0))])
def test_arch_number(text, number) -> None:
    assert arch_number(text) == number


def test_names_group_sets_by_kind() -> None:
    main = [kset(["sm_90"], "compute_90", section="nv_fatbin", library=f"lib{i}.so") for i in range(3)]
    assert names([MLIR_221, *main]) == "MLIR-generated kernels (libtensorflow_cc.so.2) and main kernels (3 libraries)"
    assert names([NCCL_215]) == "NCCL collectives (libtensorflow_cc.so.2)"
