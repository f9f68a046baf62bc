"""Detection: probing this machine for the facts `plan` decides from (PRODUCT.md, "detect").

Owns: the platform, glibc, WSL and container hints (`host`), and the NVIDIA driver and GPUs,
read by three probes in order, the first with a full answer winning: NVML (`nvml`),
``nvidia-smi`` (`smi`), ``/proc/driver/nvidia/version`` (`procfs`). Every probe tried is
recorded with ``ok`` and a detail; no driver is a normal answer, and detection never raises.

May import: `gpuready.model`, `gpuready.proc`. Not the command line.

The default call, ``detect_host(matrix)``, looks at this machine. Everything the probes look at
can be replaced, so that callers and tests can probe a recorded machine: the ``pynvml`` module
object, the environment (its ``PATH`` finds ``nvidia-smi`` and the conda executables), the root
folder under which ``/proc``, ``/dev`` and ``/usr/lib/wsl/lib`` are read, the interpreter's
platform, and the ``nvidia-smi`` timeout.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..model.facts import Container, Driver, HostFacts, Probe
from ._common import NVML, PROC, SMI, Found, Lookup
from .host import conda_executables, detect_container, detect_wsl, glibc_version, host_platform, python_version, safe
from .nvml import _import_pynvml, probe_nvml
from .procfs import probe_proc
from .smi import SMI_TIMEOUT, find_nvidia_smi, probe_nvidia_smi

if TYPE_CHECKING:
    from ..model.matrix import Matrix

__all__ = ["NO_NVML", "detect_host", "host_platform"]

NO_NVML: Any = object()  # `nvml=NO_NVML`: probe as on a host where nvidia-ml-py is not installed


def detect_host(matrix: Matrix | None = None, *, nvml: Any = None, root: str | os.PathLike[str] = "/",
                environ: Mapping[str, str] | None = None, smi_timeout: float = SMI_TIMEOUT,
                sys_platform: str | None = None, machine: str | None = None,
                glibc: str | Callable[[], str | None] | None = None) -> HostFacts:
    """This host's facts. Never raises: every probe tried is recorded in ``probes``.

    ``matrix`` supplies the driver -> CUDA and GPU name -> compute capability tables (loaded
    from the default place when needed and not given). The other arguments replace what the
    probes look at, so that a recorded machine can be probed: ``nvml`` a pynvml-like module
    (None: the real one; `NO_NVML`: as if not installed), ``root`` the folder holding proc/,
    dev/, etc/ and usr/lib/wsl/lib, ``environ`` the environment (its PATH finds nvidia-smi and
    conda), ``sys_platform``/``machine`` the interpreter's platform, ``glibc`` the glibc
    version (or a function giving it).
    """
    root_path = Path(root)
    environ = os.environ if environ is None else environ
    path = environ.get("PATH", os.defpath)

    def which(name: str) -> str | None:
        return shutil.which(name, path=path)

    plat = host_platform(sys_platform, machine)
    linux = plat.startswith("linux")
    wsl = linux and safe(lambda: detect_wsl(root_path, environ), False)
    container = safe(lambda: detect_container(root_path, environ), Container()) if linux else Container()
    windows = wsl or plat.startswith("win")
    lookup = Lookup(matrix)
    note = ""
    if container.detected and not container.dev_nvidia and not wsl:
        note = (f"this {container.kind} container has no GPU device nodes (/dev/nvidia*): "
                "it was started without GPU access")

    results: list[tuple[Probe, Found | None]] = []

    def complete() -> bool:
        return any(found is not None and found.gpus is not None for _, found in results)

    if nvml is None:
        nvml = safe(_import_pynvml, None)
    elif nvml is NO_NVML:
        nvml = None
    results.append(_probe(NVML, lambda: probe_nvml(nvml, lookup, windows, note)))
    if not complete():
        results.append(_probe(SMI, lambda: probe_nvidia_smi(
            find_nvidia_smi(which, root_path, wsl), lookup, windows, wsl=wsl, environ=environ,
            timeout=smi_timeout, container_note=note)))
    if not complete():
        results.append(_probe(PROC, lambda: probe_proc(root_path, lookup, windows, note)))

    found = next((f for _, f in results if f is not None and f.gpus is not None), None) or \
        next((f for _, f in results if f is not None), None)
    return HostFacts(
        platform=plat,
        python=python_version(),
        wsl=wsl,
        glibc=(glibc if isinstance(glibc, str) else safe(glibc or glibc_version, None)) if linux else None,
        driver=found.driver if found else Driver(),
        gpus=(found.gpus or ()) if found else (),
        conda=safe(lambda: conda_executables(which), ()),
        container=container,
        probes=tuple(probe for probe, _ in results),
    )


def _probe(name: str, run: Callable[[], tuple[Probe, Found | None]]) -> tuple[Probe, Found | None]:
    """A probe that raises anyway (a bug, an odd OS error) is recorded, not raised."""
    try:
        return run()
    except Exception as exc:
        return Probe(name, False, f"probe failed unexpectedly: {type(exc).__name__}: {exc}"), None
