"""What activating an installed environment sets, so that its TensorFlow finds what it needs.

A plain ``source <prefix>/bin/activate`` (pip flavor) or ``conda activate <prefix>`` (conda
flavor) must be enough. Depending on the TensorFlow that was installed, that means:

- the pip ``site-packages/nvidia/*/lib`` folders on ``LD_LIBRARY_PATH``, for releases whose
  libraries do not name them in their RUNPATH (2.16.1, and 2.13 and older);
- ``XLA_FLAGS=--xla_gpu_cuda_data_dir=...`` for releases whose XLA does not look in
  ``nvidia/cuda_nvcc`` for ptxas and libdevice by itself (before 2.14);
- a larger ``CUDA_CACHE_MAXSIZE`` when the plan warns ``ptx-jit``.

The decision is made from the environment on disk (the ELF RUNPATH of TensorFlow's library
is read directly, a few kilobytes) and the facts in ``data/activation.toml``. It is written
three ways: into ``bin/activate`` (and undone by ``deactivate``), into conda's
``etc/conda/{activate,deactivate}.d/gpuready.sh``, and as ``<prefix>/gpuready/activation.json``
so that gpuready itself (certify, doctor) runs the environment's Python with the same
variables: `environment(prefix)`.
"""

from __future__ import annotations

import json
import os
import shlex
import struct
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from packaging.version import InvalidVersion, Version

from .envfolder import write_atomic
from .prefix import META_DIR, meta_dir

RECORD = "activation.json"
BEGIN, END = "# >>> gpuready >>>", "# <<< gpuready <<<"
_UNSET = "__gpuready_unset__"
# Variables the activation may change, in the order it changes them.
VARIABLES = ("LD_LIBRARY_PATH", "XLA_FLAGS", "CUDA_CACHE_MAXSIZE")


@dataclass(frozen=True)
class Facts:
    """data/activation.toml."""

    library: str
    needs: tuple[str, ...]
    xla_since: Version
    cuda_cache_maxsize: str


def load_facts() -> Facts:
    data = tomllib.loads(resources.files("gpuready.data").joinpath("activation.toml").read_text())
    return Facts(
        library=data["loader_path"]["library"],
        needs=tuple(data["loader_path"]["needs"]),
        xla_since=Version(data["xla"]["finds_pip_nvcc_since"]),
        cuda_cache_maxsize=str(data["ptx_jit"]["cuda_cache_maxsize"]),
    )


@dataclass(frozen=True)
class Activation:
    """What activation sets. Paths are relative to the prefix."""

    library_dirs: tuple[str, ...] = ()  # prepended to LD_LIBRARY_PATH
    xla_cuda_data_dir: str | None = None  # appended to XLA_FLAGS as --xla_gpu_cuda_data_dir
    defaults: Mapping[str, str] = field(default_factory=dict)  # set unless already set
    reasons: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.library_dirs or self.xla_cuda_data_dir or self.defaults)

    def to_dict(self) -> dict[str, Any]:
        return {"library_dirs": list(self.library_dirs), "xla_cuda_data_dir": self.xla_cuda_data_dir,
                "defaults": dict(self.defaults), "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Activation:
        return cls(tuple(data.get("library_dirs") or ()), data.get("xla_cuda_data_dir"),
                   dict(data.get("defaults") or {}), tuple(data.get("reasons") or ()))

    def environment(self, prefix: str | os.PathLike[str],
                    base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default: os.environ) with what activation would set, for a subprocess."""
        env = dict(os.environ if base is None else base)
        root = Path(prefix)
        if self.library_dirs:
            dirs = [str(root / d) for d in self.library_dirs]
            if env.get("LD_LIBRARY_PATH"):
                dirs.append(env["LD_LIBRARY_PATH"])
            env["LD_LIBRARY_PATH"] = os.pathsep.join(dirs)
        if self.xla_cuda_data_dir:
            flag = f"--xla_gpu_cuda_data_dir={root / self.xla_cuda_data_dir}"
            env["XLA_FLAGS"] = f"{env['XLA_FLAGS']} {flag}" if env.get("XLA_FLAGS") else flag
        for key, value in self.defaults.items():
            env.setdefault(key, value)
        return env


# --------------------------------------------------------------------------- ELF


def elf_runpath(path: str | os.PathLike[str]) -> list[str] | None:
    """The DT_RUNPATH (or DT_RPATH) entries of a 64-bit ELF file; None if it cannot be read.

    Reads only the headers and the dynamic section: a few kilobytes of a 1 GB library.
    """
    try:
        with open(path, "rb") as f:
            ident = f.read(16)
            if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] != 2:
                return None
            end = "<" if ident[5] == 1 else ">"
            header = f.read(48)
            (_, _, _, _, phoff, _, _, _, phentsize, phnum, _, _, _) = struct.unpack(
                end + "HHIQQQIHHHHHH", header)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            loads, dynamic = [], None
            for i in range(phnum):
                p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from(
                    end + "IIQQQQQQ", table, i * phentsize)
                if p_type == 1:  # PT_LOAD
                    loads.append((p_vaddr, p_offset, p_filesz))
                elif p_type == 2:  # PT_DYNAMIC
                    dynamic = (p_offset, p_filesz)
            if dynamic is None:
                return []
            f.seek(dynamic[0])
            raw = f.read(dynamic[1])
            strtab, paths = None, []
            for i in range(len(raw) // 16):
                tag, value = struct.unpack_from(end + "qQ", raw, i * 16)
                if tag == 0:  # DT_NULL
                    break
                if tag == 5:  # DT_STRTAB (an address)
                    strtab = value
                elif tag in (15, 29):  # DT_RPATH, DT_RUNPATH (offsets into the string table)
                    paths.append(value)
            if not paths:
                return []
            if strtab is None:
                return None
            base = next((off + strtab - vaddr for vaddr, off, size in loads
                         if vaddr <= strtab < vaddr + size), None)
            if base is None:
                return None
            entries: list[str] = []
            for offset in paths:
                f.seek(base + offset)
                text = f.read(4096).split(b"\0", 1)[0].decode("utf-8", "replace")
                entries += [e for e in text.split(":") if e]
            return entries
    except (OSError, struct.error):
        return None


def _resolve(entry: str, origin: Path) -> str:
    text = entry.replace("${ORIGIN}", str(origin)).replace("$ORIGIN", str(origin))
    return os.path.normpath(text)


# --------------------------------------------------------------------------- deciding


def site_packages(prefix: str | os.PathLike[str]) -> Path | None:
    root = Path(prefix)
    found = sorted(root.glob("lib/python3*/site-packages"))
    if not found and (root / "Lib" / "site-packages").is_dir():
        return root / "Lib" / "site-packages"
    return found[-1] if found else None


def nvidia_library_dirs(site: Path) -> list[Path]:
    """site-packages/nvidia/*/lib folders that hold shared libraries."""
    base = site / "nvidia"
    if not base.is_dir():
        return []
    return [d for d in sorted(base.glob("*/lib"))
            if d.is_dir() and any(".so" in p.name for p in d.iterdir())]


def decide(prefix: str | os.PathLike[str], *, tensorflow: str | None, source: str = "pypi",
           warnings: Iterable[str] = (), facts: Facts | None = None) -> Activation:
    """What activation must set for the TensorFlow installed under `prefix`."""
    facts = facts or load_facts()
    root = Path(prefix)
    site = site_packages(root)
    library_dirs: list[str] = []
    xla: str | None = None
    defaults: dict[str, str] = {}
    reasons: list[str] = []

    if site is not None:
        nvidia = nvidia_library_dirs(site)
        if nvidia:
            library = site / facts.library
            runpath = elf_runpath(library) if library.exists() else None
            covered = {_resolve(e, library.parent) for e in runpath or ()}
            missing = [name for name in facts.needs
                       if (site / "nvidia" / name / "lib").is_dir()
                       and os.path.normpath(site / "nvidia" / name / "lib") not in covered]
            if runpath is None or missing:
                library_dirs = [os.path.relpath(d, root) for d in nvidia]
                why = ("cannot read the RUNPATH of " + facts.library if runpath is None
                       else f"{facts.library} does not find nvidia/{{{','.join(missing)}}}/lib by itself")
                reasons.append(f"LD_LIBRARY_PATH gets the {len(nvidia)} pip nvidia/*/lib folders: {why}")
        nvcc = site / "nvidia" / "cuda_nvcc"
        if (nvcc / "nvvm" / "libdevice").is_dir() and not _at_least(tensorflow, facts.xla_since):
            xla = os.path.relpath(nvcc, root)
            reasons.append(f"XLA_FLAGS names {xla} as the CUDA data dir: TensorFlow {tensorflow} "
                           f"does not look for ptxas and libdevice there (only {facts.xla_since}+ does)")
    if source == "conda-forge" and (root / "nvvm" / "libdevice").is_dir():
        xla = "."
        reasons.append("XLA_FLAGS names the conda prefix as the CUDA data dir (ptxas, libdevice)")
    if "ptx-jit" in set(warnings):
        defaults["CUDA_CACHE_MAXSIZE"] = facts.cuda_cache_maxsize
        reasons.append(f"CUDA_CACHE_MAXSIZE={facts.cuda_cache_maxsize} (unless set): the plan warns "
                       "ptx-jit, and the driver's JIT cache must hold TensorFlow's kernels")
    return Activation(tuple(library_dirs), xla, defaults, tuple(reasons))


def _at_least(version: str | None, floor: Version) -> bool:
    try:
        return version is not None and Version(version) >= floor
    except InvalidVersion:
        return False


# --------------------------------------------------------------------------- writing


def _shell_set(activation: Activation, root_var: str) -> str:
    """POSIX shell lines that save the old values and set the new ones."""
    lines = [BEGIN, "# What this environment's TensorFlow needs (written by gpuready; see "
             f"{META_DIR}/{RECORD})."]
    for reason in activation.reasons:
        lines.append(f"#   {reason}")
    changed = _changed(activation)
    for var in changed:
        lines.append(f'if [ -n "${{{var}+_}}" ]; then _GPUREADY_OLD_{var}="${var}"; '
                     f'else _GPUREADY_OLD_{var}={_UNSET}; fi')
    if activation.library_dirs:
        dirs = ":".join(f'"${root_var}"/{shlex.quote(d)}' for d in activation.library_dirs)
        lines.append(f'LD_LIBRARY_PATH={dirs}"${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"')
        lines.append("export LD_LIBRARY_PATH")
    if activation.xla_cuda_data_dir:
        flag = f'--xla_gpu_cuda_data_dir="${root_var}"/{shlex.quote(activation.xla_cuda_data_dir)}'
        lines.append(f'XLA_FLAGS="${{XLA_FLAGS:+$XLA_FLAGS }}"{flag}')
        lines.append("export XLA_FLAGS")
    for key, value in activation.defaults.items():
        lines.append(f'if [ -z "${{{key}+_}}" ]; then {key}={shlex.quote(value)}; export {key}; fi')
    lines.append(END)
    return "\n".join(lines) + "\n"


def _shell_restore(activation: Activation, indent: str = "") -> str:
    lines = [BEGIN]
    for var in _changed(activation):
        lines += [
            f'if [ -n "${{_GPUREADY_OLD_{var}+_}}" ]; then',
            f'    if [ "$_GPUREADY_OLD_{var}" = {_UNSET} ]; then unset {var}; '
            f'else {var}="$_GPUREADY_OLD_{var}"; export {var}; fi',
            f"    unset _GPUREADY_OLD_{var}",
            "fi",
        ]
    lines.append(END)
    return "".join(f"{indent}{line}\n" for line in lines)


def _changed(activation: Activation) -> list[str]:
    changed = []
    if activation.library_dirs:
        changed.append("LD_LIBRARY_PATH")
    if activation.xla_cuda_data_dir:
        changed.append("XLA_FLAGS")
    changed += [k for k in activation.defaults if k not in changed]
    return changed


def _strip_block(text: str) -> str:
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.strip() == BEGIN:
            skipping = True
        elif line.strip() == END and skipping:
            skipping = False
        elif not skipping:
            out.append(line)
    return "".join(out)


def write(prefix: str | os.PathLike[str], activation: Activation, flavor: str) -> list[Path]:
    """Write the activation into the environment and its record; return the files written."""
    root = Path(prefix)
    written = []
    meta = meta_dir(root)
    meta.mkdir(parents=True, exist_ok=True)
    record = meta / RECORD
    record.write_text(json.dumps(activation.to_dict(), indent=2) + "\n", encoding="utf-8")
    written.append(record)
    if flavor == "conda":
        for kind, body in (("activate", _shell_set(activation, "CONDA_PREFIX")),
                           ("deactivate", _shell_restore(activation))):
            path = root / "etc" / "conda" / f"{kind}.d" / "gpuready.sh"
            if activation.empty:
                path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
            written.append(path)
        return written
    script = root / "bin" / "activate"
    if not script.exists():
        return written
    text = _strip_block(script.read_text(encoding="utf-8"))
    if not activation.empty:
        marker = "deactivate () {\n"
        if marker in text:
            text = text.replace(marker, marker + _shell_restore(activation, "    "), 1)
        text = text.rstrip("\n") + "\n\n" + _shell_set(activation, "VIRTUAL_ENV")
    # A new file, not an edit in place: bin/ may hold hard links into a package cache.
    write_atomic(script, text.encode("utf-8"))
    written.append(script)
    return written


def read(prefix: str | os.PathLike[str]) -> Activation | None:
    try:
        data = json.loads((meta_dir(prefix) / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Activation.from_dict(data)


def environment(prefix: str | os.PathLike[str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a subprocess of the installed Python should get: what activation sets.

    For certify and doctor, which run ``<prefix>/bin/python`` without sourcing activate.
    """
    activation = read(prefix) or Activation()
    return activation.environment(prefix, base)


def activation_line(prefix: str | os.PathLike[str], flavor: str) -> str:
    """The one line a user runs to activate the environment."""
    if flavor == "conda":
        return f"conda activate {shlex.quote(str(prefix))}"
    return f"source {shlex.quote(str(Path(prefix) / 'bin' / 'activate'))}"
