"""NVIDIA's cuobjdump: finding (or installing) it, running it on a fatbin, reading what it prints.

cuobjdump needs no GPU; it ships on the package index as the `nvidia-cuda-cuobjdump` wheel (a few
hundred kB). `find_tool` takes the wheel installed beside gpuready (the test extra brings it), else the copy in
gpuready's cache, else installs the wheel into that cache with uv; then the paths given
(`--cuobjdump PATH`, e.g. an 11.8 release of the tool), tried for what the first one refuses. cuobjdump 13 refuses
fatbins that hold sm_35 SASS (TensorFlow 2.14 and older); `read` reports that as a refusal, and
the next tool given is tried.

The parsers are pure and take the text cuobjdump printed:
- ``--list-elf`` / ``--list-ptx``: ``ELF file    1: name.1.sm_60.cubin``
- ``--dump-ptx``: per entry ``Fatbin elf code:`` / ``Fatbin ptx code:`` with ``arch = sm_XX`` and
  ``code version = [X,Y]``; a PTX entry's text has ``.version X.Y`` and ``.target sm_XX``
- ``-symbols``: the kernel names of each ELF entry (``FUNC ... name``)
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .. import proc

PROJECT = "nvidia-cuda-cuobjdump"
TIMEOUT = 120.0

_LIST_LINE = re.compile(r"^(ELF|PTX) file\s+(\d+):\s*(\S+)\s*$", re.MULTILINE)
_ARCH_IN_NAME = re.compile(r"\.(sm_\d+[a-z]?|compute_\d+[a-z]?)\.(?:cubin|ptx)$")
_DUMP_TOKENS = re.compile(
    r"^(?:Fatbin (elf|ptx) code:|arch = (\S+)|code version = \[(\d+),(\d+)\]"
    r"|\s*\.version\s+(\d+\.\d+)|\s*\.target\s+([^\r\n/]+))", re.MULTILINE)
_VERSION = re.compile(r"release (\d+\.\d+), V(\d+(?:\.\d+)*)")
# cuobjdump 13: "FUNC  GLOBAL  DEFAULT  ENTRY  name"; 11.8: "STT_FUNC  STB_GLOBAL  STO_ENTRY  name"
_FUNCTION = re.compile(r"^\s*(?:STT_)?FUNC\s+(?:\S+\s+){2,3}?(\S+)\s*$", re.MULTILINE)


class ToolMissing(RuntimeError):
    """No cuobjdump could be found or installed."""


@dataclass(frozen=True)
class Tool:
    path: Path
    release: str  # "13.5.37"


@dataclass
class Entry:
    """One entry of a fatbin as ``--dump-ptx`` shows it."""

    kind: str  # "elf" | "ptx"
    arch: str | None = None  # "sm_90"
    code_version: tuple[int, int] | None = None
    ptx_versions: list[str] = field(default_factory=list)  # the PTX text's ".version"
    ptx_targets: list[str] = field(default_factory=list)  # its ".target" (first token)


@dataclass(frozen=True)
class Reading:
    """What one tool says a fatbin holds, or why it could not say."""

    tool: Tool
    entries: tuple[Entry, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------- parsing (pure)


def parse_list(text: str) -> list[tuple[str, str | None]]:
    """(kind, arch) of each line of ``--list-elf`` / ``--list-ptx``."""
    found = []
    for match in _LIST_LINE.finditer(text):
        arch = _ARCH_IN_NAME.search(match.group(3))
        found.append((match.group(1).lower(), arch.group(1) if arch else None))
    return found


def parse_dump(text: str) -> list[Entry]:
    entries: list[Entry] = []
    for match in _DUMP_TOKENS.finditer(text):
        kind, arch, major, minor, version, target = match.groups()
        if kind is not None:
            entries.append(Entry(kind))
        elif not entries:
            continue  # text before the first block header
        elif arch is not None and entries[-1].arch is None:
            entries[-1].arch = arch
        elif major is not None and entries[-1].code_version is None:
            entries[-1].code_version = (int(major), int(minor))
        elif version is not None and entries[-1].kind == "ptx":
            entries[-1].ptx_versions.append(version)
        elif target is not None and entries[-1].kind == "ptx":
            first = target.split(",")[0].strip()
            if first:
                entries[-1].ptx_targets.append(first)
    return entries


def parse_version(text: str) -> str | None:
    """``13.5.37`` from ``cuobjdump --version``."""
    match = _VERSION.search(text)
    return match.group(2) if match else None


def parse_functions(text: str) -> list[str]:
    """The kernel names ``-symbols`` lists."""
    return _FUNCTION.findall(text)


# --------------------------------------------------------------------------- running


def _run(tool: Path, args: Sequence[str], timeout: float) -> proc.Result:
    return proc.run([str(tool), *args], timeout=timeout)


def _problem(result: proc.Result) -> str:
    if result.timed_out:
        return "cuobjdump timed out"
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if "fatal" in line or "error" in line.lower()]
    return (fatal or lines or [f"exit status {result.returncode}"])[0]


def tool_at(path: Path) -> Tool:
    """The cuobjdump at `path`, with its release; ToolMissing when it does not run."""
    try:
        result = _run(path, ["--version"], 30)
    except proc.NotStarted as error:
        raise ToolMissing(str(error)) from None
    release = parse_version(result.stdout)
    if not result.ok or release is None:
        raise ToolMissing(f"{path} --version: {_problem(result)}")
    return Tool(path, release)


def read(tool: Tool, path: Path, timeout: float = TIMEOUT) -> Reading:
    """``--list-elf``, ``--list-ptx`` and ``--dump-ptx`` of one fatbin file, checked against each other."""
    outputs = {}
    for flag in ("--list-elf", "--list-ptx", "--dump-ptx"):
        result = _run(tool.path, [flag, str(path)], timeout)
        if not result.ok:
            return Reading(tool, (), (f"{flag}: {_problem(result)}",))
        outputs[flag] = result.stdout
    entries = parse_dump(outputs["--dump-ptx"])
    listed = sorted(parse_list(outputs["--list-elf"]) + parse_list(outputs["--list-ptx"]), key=str)
    dumped = sorted(((e.kind, e.arch) for e in entries), key=str)
    problems = []
    if not entries:
        problems.append("cuobjdump found no device code")
    elif listed != dumped:
        problems.append(f"--dump-ptx shows {dumped}, the listings {listed}")
    problems += [f"PTX for {e.arch} has {len(e.ptx_versions)} .version lines"
                 for e in entries if e.kind == "ptx" and len(e.ptx_versions) != 1]
    return Reading(tool, tuple(entries), tuple(problems))


def functions(tool: Tool, path: Path, timeout: float = TIMEOUT) -> list[str]:
    """The kernel names in a fatbin (empty when cuobjdump cannot list them)."""
    result = _run(tool.path, ["-symbols", str(path)], timeout)
    return parse_functions(result.stdout) if result.ok else []


# --------------------------------------------------------------------------- finding and installing


def _binary_under(root: Path) -> Path | None:
    hits = sorted(p for p in root.rglob("cuobjdump") if p.is_file() and p.parent.name == "bin")
    return hits[0] if hits else None


def installed_beside() -> Path | None:
    """The cuobjdump of an `nvidia-cuda-cuobjdump` wheel installed in this Python environment."""
    from importlib import metadata

    try:
        dist = metadata.distribution(PROJECT)
    except metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name == "cuobjdump" and file.parent.name == "bin":
            return Path(str(dist.locate_file(file)))
    return None


def find_tool(cache_dir: Path, *, paths: Sequence[Path] = (), install: bool = True,
              uv: str | None = None, index_url: str | None = None) -> list[Tool]:
    """The tools to read fatbins with, in order (see the module docstring)."""
    tools = []
    beside = installed_beside()
    cached = _binary_under(cache_dir / PROJECT) if (cache_dir / PROJECT).is_dir() else None
    if beside is not None:
        tools.append(tool_at(beside))
    elif cached is not None:
        tools.append(tool_at(cached))
    elif install:
        tools.append(tool_at(_install(cache_dir, uv, index_url)))
    tools += [tool_at(Path(p)) for p in paths]
    return tools


def _install(cache_dir: Path, uv: str | None, index_url: str | None) -> Path:
    """Install the wheel into <cache>/nvidia-cuda-cuobjdump (a staging folder, renamed when done)."""
    if uv is None:
        raise ToolMissing("cuobjdump is not installed and uv is not available to install it")
    target = cache_dir / PROJECT
    staging = cache_dir / f".{PROJECT}.{os.getpid()}"
    command = [uv, "pip", "install", "--no-config", "--quiet", "--target", str(staging), "--no-deps", PROJECT]
    if index_url:
        command += ["--index-url", index_url]
    result = proc.run(command, timeout=300)
    found = _binary_under(staging) if result.ok else None
    if found is None:
        raise ToolMissing(f"installing {PROJECT} into {cache_dir} failed: {_problem(result) if not result.ok else 'no bin/cuobjdump in it'}")
    found.chmod(found.stat().st_mode | 0o111)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(staging, ignore_errors=True)
    else:
        staging.rename(target)
    binary = _binary_under(target)
    assert binary is not None
    return binary
