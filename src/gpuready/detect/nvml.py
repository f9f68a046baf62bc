"""Probe 1: NVML, through nvidia-ml-py (module pynvml, which loads libnvidia-ml.so.1)."""

from __future__ import annotations

import sys
from typing import Any

from ..model.facts import COMPUTE_CAPABILITY, Driver, Gpu, Probe
from ._common import NVML, Failed, Found, Lookup, check_driver, check_name, check_uuid, derived_cuda, describe, noted, text_of


def _import_pynvml() -> Any:
    import pynvml

    return pynvml


def _nvml_error(exc: BaseException, nvml: Any, container_note: str) -> str:
    not_found = getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", 12)
    if getattr(exc, "value", None) == not_found or type(exc).__name__ == "NVMLError_LibraryNotFound":
        library = "nvml.dll" if sys.platform.startswith("win") else "libnvidia-ml.so.1"
        return noted(f"{library} not found", container_note)
    return noted(f"nvmlInit failed: {_reason(exc)}", container_note)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def probe_nvml(nvml: Any, lookup: Lookup, windows: bool, container_note: str = "") -> tuple[Probe, Found | None]:
    """Read the driver and every GPU through NVML; always shut NVML down again."""
    if nvml is None:
        return Probe(NVML, False, "nvidia-ml-py (module pynvml) is not installed"), None
    try:
        nvml.nvmlInit()
    except Exception as exc:
        return Probe(NVML, False, _nvml_error(exc, nvml, container_note)), None
    version = cuda = None
    cuda_note = ""
    step = "nvmlSystemGetDriverVersion"
    try:
        version = check_driver(text_of(nvml.nvmlSystemGetDriverVersion()), "NVML")
        cuda, cuda_note = _nvml_cuda(nvml, lookup, version, windows)
        step = "nvmlDeviceGetCount"
        count = int(nvml.nvmlDeviceGetCount())
        gpus = []
        for index in range(count):
            step = f"nvmlDeviceGetHandleByIndex({index})"
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            step = f"nvmlDeviceGetName (GPU {index})"
            name = check_name(text_of(nvml.nvmlDeviceGetName(handle)), "NVML")
            step = f"nvmlDeviceGetCudaComputeCapability (GPU {index})"
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
            cc = f"{int(major)}.{int(minor)}"
            if not COMPUTE_CAPABILITY.fullmatch(cc):
                raise Failed(f"NVML gave a malformed compute capability {cc!r} for GPU {index}")
            step = f"nvmlDeviceGetMemoryInfo (GPU {index})"
            memory = int(nvml.nvmlDeviceGetMemoryInfo(handle).total) // (1024 * 1024)
            step = f"nvmlDeviceGetUUID (GPU {index})"
            uuid = check_uuid(text_of(nvml.nvmlDeviceGetUUID(handle)), "NVML")
            gpus.append(Gpu(index=index, name=name, compute_capability=cc, memory_mib=memory, uuid=uuid))
    except Exception as exc:
        reason = str(exc) if isinstance(exc, Failed) else f"{step} failed: {_reason(exc)}"
        if version is None:
            return Probe(NVML, False, reason), None
        # The driver was read before the failure: keep it, in case no later probe does better.
        found = Found(Driver(version, cuda, NVML), None)
        return Probe(NVML, False, f"driver {version} ({cuda_note}), but {reason}"), found
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass
    found = Found(Driver(version, cuda, NVML), tuple(gpus))
    return Probe(NVML, True, describe(found, cuda_note)), found


def _nvml_cuda(nvml: Any, lookup: Lookup, version: str, windows: bool) -> tuple[str | None, str]:
    """nvmlSystemGetCudaDriverVersion(_v2): 1000*major + 10*minor -> "X.Y"."""
    failures = []
    for name in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
        function = getattr(nvml, name, None)
        if function is None:
            failures.append(f"{name} missing")
            continue
        try:
            value = int(function())
        except Exception as exc:
            failures.append(f"{name} failed: {_reason(exc)}")
            continue
        if value >= 1000:
            return f"{value // 1000}.{value % 1000 // 10}", f"CUDA {value // 1000}.{value % 1000 // 10}"
        failures.append(f"{name} gave {value}")
    return derived_cuda(lookup, version, windows, "; ".join(failures))
