"""Which of a release's kernel sets a GPU can run, and how: native SASS, PTX JIT, or not at all.

A TensorFlow wheel carries several sets of GPU code (matrix/kernels.toml), and a GPU needs every
set it uses. For one GPU and one set:

- SASS of the GPU's major with a minor <= its own runs natively (sm_80 runs on 8.6 and 8.9);
- else PTX of a lower-or-equal architecture runs through the driver's JIT compiler (compute_90
  serves 9.0 and every later major), which needs a driver that knows that PTX's ISA; PTX written
  for an arch-specific target (`.target sm_90a`) serves that compute capability alone;
- else the set has no code for the GPU.

NCCL's collectives (scope "nccl") are used only by multi-GPU all-reduce, so they matter only on a
host with several GPUs. Pure: the caller gives the sets and the compute capability.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import Version

from .matrix import SCOPE_ALL, SCOPE_NCCL, KernelSet

NATIVE, JIT, NONE = "native", "jit", "none"
CLAIM_TOOL = "build_info.py"  # the tool of a set that was not measured: the build's own claim


def arch_number(text: str) -> tuple[int, int]:
    """"sm_89" -> (8, 9); "compute_90" -> (9, 0); "sm_120" -> (12, 0); "sm_90a" -> (9, 0)."""
    digits = re.search(r"[0-9]+", text)
    assert digits is not None, text
    number = digits.group(0)
    return int(number[:-1]), int(number[-1])


@dataclass(frozen=True)
class Reach:
    """How one GPU reaches one kernel set."""

    kernel_set: KernelSet
    how: str  # NATIVE | JIT | NONE
    code: str | None  # "sm_80" (the SASS run) or "compute_90" (the PTX compiled); None for NONE


@dataclass(frozen=True)
class GpuCode:
    """One GPU against every kernel set of a build."""

    reaches: tuple[Reach, ...]

    def of(self, how: str, scope: str = SCOPE_ALL) -> list[Reach]:
        return [r for r in self.reaches if r.how == how and r.kernel_set.scope == scope]

    @property
    def isa(self) -> str | None:
        """The highest PTX ISA among the sets this GPU reaches only through JIT (None: none, or unknown)."""
        isas = [r.kernel_set.isa for r in self.of(JIT)]
        if not isas or any(i is None for i in isas):
            return None
        return max(isas, key=Version)  # type: ignore[arg-type]

    @property
    def isa_unknown(self) -> bool:
        return any(r.kernel_set.isa is None for r in self.of(JIT))


def reach(kernel_set: KernelSet, cc: tuple[int, int]) -> Reach:
    sass = [a for a in kernel_set.sass if arch_number(a)[0] == cc[0] and arch_number(a)[1] <= cc[1]]
    if sass:
        return Reach(kernel_set, NATIVE, max(sass, key=arch_number))
    ptx = kernel_set.ptx
    if ptx is not None and arch_number(ptx) <= cc:
        target = kernel_set.target or ptx.replace("compute_", "sm_")
        arch_specific = target.endswith("a")
        if not arch_specific or arch_number(target) == cc:
            return Reach(kernel_set, JIT, ptx)
    return Reach(kernel_set, NONE, None)


def gpu_code(sets: tuple[KernelSet, ...], cc: tuple[int, int]) -> GpuCode:
    return GpuCode(tuple(reach(s, cc) for s in sets))


def claimed_sets(sass: tuple[str, ...], ptx: tuple[str, ...]) -> tuple[KernelSet, ...]:
    """build_info's architectures as one set, for a build whose binaries were not measured:
    its PTX ISA is unknown (the caller falls back to the build CUDA's own driver)."""
    first = ptx[0] if ptx else None
    return (KernelSet(library="the build", section="claim", fatbins=0, sass=tuple(sass), ptx=first,
                      target=first.replace("compute_", "sm_") if first else None, isa=None,
                      scope=SCOPE_ALL, tool=CLAIM_TOOL),)


def names(kernel_sets: list[KernelSet]) -> str:
    """"MLIR-generated kernels (libtensorflow_cc.so.2) and main kernels (5 libraries)"."""
    groups: dict[str, list[str]] = {}
    for kernel_set in kernel_sets:
        what = kernel_set.label.split(" (")[0]
        groups.setdefault(what, [])
        if kernel_set.library not in groups[what]:
            groups[what].append(kernel_set.library)
    parts = [f"{what} ({libraries[0] if len(libraries) == 1 else f'{len(libraries)} libraries'})"
             for what, libraries in sorted(groups.items(), key=lambda item: item[0] != "MLIR-generated kernels")]
    return " and ".join(parts)


def describe(kernel_set: KernelSet) -> str:
    """"MLIR-generated kernels (libtensorflow_cc.so.2): SASS sm_60, sm_70; PTX compute_90 (ISA 8.5)"."""
    what = kernel_set.label if kernel_set.tool != CLAIM_TOOL else "its kernels (build_info's claim)"
    parts = [f"SASS {', '.join(kernel_set.sass) or 'none'}"]
    if kernel_set.ptx:
        target = f" for {kernel_set.target} only" if (kernel_set.target or "").endswith("a") else ""
        isa = f", ISA {kernel_set.isa}" if kernel_set.isa else ""
        parts.append(f"PTX {kernel_set.ptx}{target}{isa}")
    else:
        parts.append("no PTX")
    return f"{what}: {'; '.join(parts)}"


__all__ = ["JIT", "NATIVE", "NONE", "SCOPE_NCCL", "GpuCode", "Reach", "arch_number", "claimed_sets",
           "describe", "gpu_code", "names", "reach"]
