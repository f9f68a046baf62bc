"""Detection: probing this machine for the facts `plan` decides from (PRODUCT.md, "detect").

Owns: the platform, glibc, WSL, container and Jetson hints (`host`), and the NVIDIA driver and
GPUs, read by probes in order until one gives the driver and the GPU list: NVML (`nvml`),
``nvidia-smi`` (`smi`, its texts read in `smi_text`), ``/proc/driver/nvidia/version``
(`procfs`), and, where the driver is in trouble, the kernel log (`kernel`). Every probe tried
is recorded with ``ok`` and a detail; no driver is a normal answer, and detection never raises.
A GPU that does not answer is kept as a broken one, never the reason to drop the others; what
the troubles mean on this host (a mismatch, a container that lost its GPUs, a Jetson) becomes
``notes`` (`notes`).

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
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

from ..model.facts import Container, Driver, HostFacts, Probe
from ._common import NO_LIBRARY, NVML, PROC, SMI, Found, Lookup
from .host import (conda_executables, detect_container, detect_jetson, detect_wsl, glibc_version, host_platform,
                   nvidia_present, python_version, safe)
from .kernel import KERNEL_LOG, KernelLog, probe_kernel_log
from .notes import Seen, compose
from .nvml import _import_pynvml, probe_nvml
from .procfs import L4T, probe_proc
from .smi import SMI_TIMEOUT, find_nvidia_smi, probe_nvidia_smi

if TYPE_CHECKING:
    from ..model.matrix import Matrix

__all__ = ["NO_NVML", "detect_host", "host_platform"]

T = TypeVar("T")
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
    jetson, l4t = safe(lambda: detect_jetson(root_path), (False, None)) if linux else (False, None)
    lookup = Lookup(matrix, jetson=jetson)
    note = ""
    if container.detected and not container.dev_nvidia and not wsl:
        note = (f"this {container.kind} container has no GPU device nodes (/dev/nvidia*): "
                "it was started without GPU access")

    results: list[tuple[Probe, Found | None]] = []

    def found() -> list[Found]:
        return [f for _, f in results if f is not None]

    def complete() -> bool:
        return any(f.gpus is not None and f.driver.present for f in found())

    if nvml is None:
        nvml = safe(_import_pynvml, None)
    elif nvml is NO_NVML:
        nvml = None
    results.append(_probe(NVML, lambda: probe_nvml(nvml, lookup, windows, note)))
    smi = find_nvidia_smi(which, root_path, wsl)
    if not complete():
        results.append(_probe(SMI, lambda: probe_nvidia_smi(
            smi, lookup, windows, wsl=wsl, environ=environ, timeout=smi_timeout, container_note=note)))
    if not complete():
        results.append(_probe(PROC, lambda: probe_proc(root_path, lookup, windows, note)))
    kernel: KernelLog | None = None
    signs = frozenset(sign for f in found() for sign in f.signs)
    gpus = next((f.gpus for f in found() if f.gpus is not None), ())
    troubled = not complete() or any(not g.healthy for g in gpus)
    nvidia_seen = bool(smi or (signs - {NO_LIBRARY}) or safe(lambda: nvidia_present(root_path), False))
    if linux and troubled and nvidia_seen:
        probe, kernel = _probe(KERNEL_LOG, lambda: probe_kernel_log(which, environ))
        results.append((probe, None))

    driver = _driver(found(), kernel)
    l4t = l4t or next((s.split(":", 1)[1] for s in signs if s.startswith(f"{L4T}:")), None)
    jetson = jetson or l4t is not None or any("(nvgpu)" in g.name for g in gpus)
    mig_devices = next((f.mig_devices for f in found() if f.mig_devices), ())
    facts = HostFacts(
        platform=plat,
        python=python_version(),
        wsl=wsl,
        glibc=(glibc if isinstance(glibc, str) else safe(glibc or glibc_version, None)) if linux else None,
        driver=driver,
        gpus=gpus,
        conda=safe(lambda: conda_executables(which), ()),
        container=container,
        probes=tuple(probe for probe, _ in results),
        mig_devices=mig_devices,
        jetson=jetson,
        l4t=l4t,
    )
    seen = Seen(signs=signs, driver=driver, gpus=gpus, mig_devices=mig_devices, container=container, wsl=wsl,
                jetson=jetson, l4t=l4t, smi_found=smi is not None, kernel=kernel, nvidia_seen=nvidia_seen)
    return facts.with_(notes=safe(lambda: compose(seen), ()))


def _driver(found: list[Found], kernel: KernelLog | None) -> Driver:
    """Each fact from the first probe that knows it: the version (and its CUDA) from the probe
    that listed the GPUs, else from the first that read one; the kernel module from /proc or
    the kernel log; in a mismatch the kernel log's user-space version where nothing else has one."""
    listed = next((f.driver for f in found if f.gpus is not None and f.driver.present), None)
    driver = listed or next((f.driver for f in found if f.driver.present), Driver())
    module = next((f.driver.kernel_module for f in found if f.driver.kernel_module), None)
    if kernel is not None:
        module = module or kernel.module
        if not driver.present and kernel.client:
            driver = Driver(kernel.client, None, KERNEL_LOG)
    return Driver(driver.version, driver.cuda, driver.source, kernel_module=module)


def _probe(name: str, run: Callable[[], tuple[Probe, T | None]]) -> tuple[Probe, T | None]:
    """A probe that raises anyway (a bug, an odd OS error) is recorded, not raised."""
    try:
        return run()
    except Exception as exc:
        return Probe(name, False, f"probe failed unexpectedly: {type(exc).__name__}: {exc}"), None
