"""Measuring the GPU code of a TensorFlow wheel from its own bytes (matrix/kernels.toml).

For every shared library in the wheel: extract it, find its fatbins (`fatbin.scan`: the
`.nv_fatbin` section and the fatbins embedded elsewhere, `__nv_relfatbin` left out as link-time
code), write each to a file and let cuobjdump say what it holds (`cuobjdump.read`). Fatbins of one
library and section with the same contents form a kernel set. A set with SASS but no PTX is
checked for NCCL's kernel names (multi-GPU collectives only). A fatbin no tool can read makes the
whole measurement unusable: nothing is written that was not read.
"""

from __future__ import annotations

import concurrent.futures
import mmap
import re
import shutil
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import tomlkit

from ..model.gpu_code import arch_number
from ..model.matrix import SCOPE_ALL, SCOPE_NCCL, KernelSet, ReleaseKernels
from . import cuobjdump, fatbin

SHARED_LIBRARY = re.compile(r"\.so(\.\d+)*$")
RUNTIME = (fatbin.KIND_NV_FATBIN, fatbin.KIND_EMBEDDED)


class NotMeasured(Exception):
    """The wheel's GPU code could not be read in full; the reason says which fatbin and tool."""


@dataclass(frozen=True)
class Contents:
    """What one fatbin holds, as its reading tool says."""

    sass: tuple[str, ...]
    ptx: str | None
    target: str | None
    isa: str | None
    tool: str


def contents_of(reading: cuobjdump.Reading) -> Contents:
    sass = tuple(sorted({e.arch or "?" for e in reading.entries if e.kind == "elf"}, key=arch_number))
    ptx = [e for e in reading.entries if e.kind == "ptx"]
    if len(ptx) > 1:
        raise NotMeasured(f"a fatbin with {len(ptx)} PTX entries (gpuready expects one per fatbin)")
    first = ptx[0] if ptx else None
    return Contents(
        sass=sass,
        ptx=(first.arch or "").replace("sm_", "compute_") if first else None,
        target=first.ptx_targets[0] if first and first.ptx_targets else None,
        isa=first.ptx_versions[0] if first and first.ptx_versions else None,
        tool=f"cuobjdump {reading.tool.release}",
    )


def read_fatbin(blob: bytes, tools: Sequence[cuobjdump.Tool], workdir: Path, name: str) -> Contents:
    path = workdir / f"{name}.fatbin"
    path.write_bytes(blob)
    refused = []
    try:
        for tool in tools:
            reading = cuobjdump.read(tool, path)
            if reading.ok:
                return contents_of(reading)
            refused.append(f"cuobjdump {tool.release}: {'; '.join(reading.problems).replace(str(path), name)}")
    finally:
        path.unlink(missing_ok=True)
    raise NotMeasured(f"{name}: no cuobjdump could read it ({' | '.join(refused)})")


def is_nccl(blob: bytes, tools: Sequence[cuobjdump.Tool], workdir: Path, name: str) -> bool:
    path = workdir / f"{name}.symbols.fatbin"
    path.write_bytes(blob)
    try:
        return any(any("nccl" in f.lower() for f in cuobjdump.functions(tool, path)) for tool in tools)
    finally:
        path.unlink(missing_ok=True)


def kernel_sets(library: str, section_kind: str, found: Sequence[tuple[Contents, bytes | None]],
                nccl: Callable[[bytes], bool]) -> list[KernelSet]:
    """Group a library's fatbins of one kind by contents; `nccl(blob)` classifies a SASS-only set."""
    counted = Counter(contents for contents, _ in found)
    sets = []
    for contents, count in counted.items():
        scope = SCOPE_ALL
        if contents.ptx is None:
            blob = next(b for c, b in found if c == contents)
            scope = SCOPE_NCCL if blob is not None and nccl(blob) else SCOPE_ALL
        sets.append(KernelSet(library=library, section=section_kind, fatbins=count, sass=contents.sass,
                              ptx=contents.ptx, target=contents.target, isa=contents.isa, scope=scope,
                              tool=contents.tool))
    return sets


def measure_library(path: Path, library: str, tools: Sequence[cuobjdump.Tool], workdir: Path,
                    jobs: int = 2) -> list[KernelSet]:
    """The runtime kernel sets of one ELF library file (empty when it holds no GPU code)."""
    with path.open("rb") as stream:
        try:
            sections = fatbin.elf_sections(stream)
        except Exception:  # noqa: BLE001 - not an ELF file: no GPU code to find in it
            return []
        with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
            found = [f for f in fatbin.scan(data, sections) if f.kind in RUNTIME]
            if not found:
                return []
            blobs = [bytes(data[f.offset:f.offset + f.size]) for f in found]
    base = Path(library).name.replace(".", "_")
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        readings = list(pool.map(lambda item: read_fatbin(item[1], tools, workdir, f"{base}.{item[0]}"),
                                 enumerate(blobs)))
    sets = []
    for kind in RUNTIME:
        chosen = [(c, b) for f, c, b in zip(found, readings, blobs) if f.kind == kind]
        if chosen:
            sets += kernel_sets(library, kind, [(c, b if c.ptx is None else None) for c, b in chosen],
                                lambda blob: is_nccl(blob, tools, workdir, base))
    return sets


def measure_wheel(wheel: Path, tools: Sequence[cuobjdump.Tool], *, sha256: str, measured: str,
                  filename: str | None = None, jobs: int = 2,
                  log: Callable[[str], None] = lambda _m: None) -> ReleaseKernels:
    """Every runtime kernel set of every shared library in `wheel`; NotMeasured when any fatbin
    cannot be read."""
    sets: list[KernelSet] = []
    with tempfile.TemporaryDirectory(prefix="gpuready-kernels-") as tmp, zipfile.ZipFile(wheel) as zf:
        work = Path(tmp)
        for info in zf.infolist():
            if info.is_dir() or not SHARED_LIBRARY.search(info.filename):
                continue
            library = info.filename.removeprefix("tensorflow/")
            path = work / "library.so"
            with zf.open(info) as source, path.open("wb") as target:
                shutil.copyfileobj(source, target, 1 << 22)
            try:
                found = measure_library(path, library, tools, work, jobs)
            finally:
                path.unlink(missing_ok=True)
            if found:
                log(f"  {library}: " + ", ".join(f"{s.section} {s.fatbins}" for s in found))
            sets += found
    if not sets:
        raise NotMeasured(f"{wheel.name} holds no GPU code (a CPU-only build?)")
    return ReleaseKernels(wheel=filename or wheel.name, sha256=sha256, measured=measured, sets=tuple(sets))


def render(version: str, kernels: ReleaseKernels) -> str:
    """The release as a block of kernels.toml (written by tomlkit)."""
    table = tomlkit.table()
    table.add("wheel", kernels.wheel)
    table.add("sha256", kernels.sha256)
    table.add("measured", kernels.measured)
    if kernels.unmeasured:
        table.add("unmeasured", kernels.unmeasured)
    rows = tomlkit.array()
    rows.multiline(True)
    for kernel_set in kernels.sets:
        row = tomlkit.inline_table()
        row.update({"library": kernel_set.library, "section": kernel_set.section, "fatbins": kernel_set.fatbins,
                    "sass": list(kernel_set.sass)})
        if kernel_set.ptx:
            row.update({"ptx": kernel_set.ptx, "target": kernel_set.target, "isa": kernel_set.isa})
        row.update({"scope": kernel_set.scope, "tool": kernel_set.tool})
        rows.append(row)
    if kernels.sets:
        table.add("sets", rows)
    releases = tomlkit.table(is_super_table=True)
    releases.add(version, table)
    document = tomlkit.document()
    document.add("releases", releases)
    return tomlkit.dumps(document)
