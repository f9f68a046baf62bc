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
``etc/conda/{activate,deactivate}.d/gpuready.sh``, and as ``<prefix>/gpuready/activation.json`` (`Activation`)
so that gpuready itself (certify, doctor) runs the environment's Python with the same
variables: `environment(prefix)`.
"""

from __future__ import annotations

import os
import shlex
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from packaging.version import InvalidVersion, Version

from ..files import write_atomic
from ..model.records import Activation
from .layout import ACTIVATION, META_DIR, read_activation, site_packages, write_activation
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


# --------------------------------------------------------------------------- ELF


def elf_runpath(path: str | os.PathLike[str]) -> list[str] | None:
    """The DT_RUNPATH (or DT_RPATH) entries of an ELF file; None if it cannot be read.

    pyelftools reads only the headers and the dynamic section: a few kilobytes of a 1 GB library.
    """
    try:
        with open(path, "rb") as handle:
            elf = ELFFile(handle)
            dynamic = next((seg for seg in elf.iter_segments() if seg.header.p_type == "PT_DYNAMIC"), None)
            if dynamic is None:
                return []
            entries: list[str] = []
            for tag in dynamic.iter_tags():
                if tag.entry.d_tag in ("DT_RUNPATH", "DT_RPATH"):
                    text = tag.runpath if tag.entry.d_tag == "DT_RUNPATH" else tag.rpath
                    entries += [e for e in text.split(":") if e]
            return entries
    except (OSError, ELFError, ValueError, UnicodeDecodeError):
        return None


def _resolve(entry: str, origin: Path) -> str:
    text = entry.replace("${ORIGIN}", str(origin)).replace("$ORIGIN", str(origin))
    return os.path.normpath(text)


# --------------------------------------------------------------------------- deciding


def nvidia_library_dirs(site: Path) -> list[Path]:
    """site-packages/nvidia/*/lib folders that hold shared libraries."""
    base = site / "nvidia"
    if not base.is_dir():
        return []
    return [d for d in sorted(base.glob("*/lib"))
            if d.is_dir() and any(".so" in p.name for p in d.iterdir())]


def decide(prefix: str | os.PathLike[str], *, tensorflow: str | None, source: str = "pypi",
           warnings: Iterable[str] = (), environment: Mapping[str, str] | None = None,
           facts: Facts | None = None) -> Activation:
    """What activation must set for the TensorFlow installed under `prefix`; `environment` is the
    plan's own (a known issue's remedy), set unless the user has set it."""
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
    for key, value in (environment or {}).items():
        defaults[key] = value
        reasons.append(f"{key}={value} (unless set): a known issue's remedy in the plan")
    return Activation(library_dirs=tuple(library_dirs), xla_cuda_data_dir=xla, defaults=defaults,
                      reasons=tuple(reasons))


def _at_least(version: str | None, floor: Version) -> bool:
    try:
        return version is not None and Version(version) >= floor
    except InvalidVersion:
        return False


# --------------------------------------------------------------------------- writing


def _shell_set(activation: Activation, root_var: str) -> str:
    """POSIX shell lines that save the old values and set the new ones."""
    lines = [BEGIN, "# What this environment's TensorFlow needs (written by gpuready; see "
             f"{META_DIR}/{ACTIVATION})."]
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
    written = [write_activation(root, activation)]
    if flavor == "conda":
        for kind, body in (("activate", _shell_set(activation, "CONDA_PREFIX")),
                           ("deactivate", _shell_restore(activation))):
            path = root / "etc" / "conda" / f"{kind}.d" / "gpuready.sh"
            if activation.empty:
                path.unlink(missing_ok=True)
                continue
            write_atomic(path, body.encode("utf-8"))
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


def environment(prefix: str | os.PathLike[str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a subprocess of the installed Python should get: what activation sets.

    For certify and doctor, which run ``<prefix>/bin/python`` without sourcing activate.
    """
    activation = read_activation(prefix) or Activation()
    return activation.environment(prefix, os.environ if base is None else base)


def activation_line(prefix: str | os.PathLike[str], flavor: str) -> str:
    """The one line a user runs to activate the environment."""
    if flavor == "conda":
        return f"conda activate {shlex.quote(str(prefix))}"
    return f"source {shlex.quote(str(Path(prefix) / 'bin' / 'activate'))}"
