"""Probe 1: NVML, through nvidia-ml-py (module pynvml, which loads libnvidia-ml.so.1)."""

from __future__ import annotations

import sys
from typing import Any, Callable

from ..model.facts import COMPUTE_CAPABILITY, Driver, Gpu, MigDevice, Probe
from ._common import (NO_LIBRARY, NVML, NVML_CODES, Failed, Found, Lookup, check_driver, check_name, check_uuid,
                      derived_cuda, describe, noted, text_of)

# A device query that answers one of these leaves the field unknown; the GPU is fine (a GB10
# has no dedicated memory to report; an older pynvml lacks the call).
_ABSENT = {3: "not supported", 13: "function not found"}
_MIG_ENABLED = 1


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


def _kind(exc: BaseException) -> str | None:
    if type(exc).__name__ == "NVMLError_LibraryNotFound":
        return NO_LIBRARY
    return NVML_CODES.get(getattr(exc, "value", None))  # type: ignore[arg-type]


def probe_nvml(nvml: Any, lookup: Lookup, windows: bool, container_note: str = "") -> tuple[Probe, Found | None]:
    """Read the driver and every GPU through NVML; always shut NVML down again.

    A GPU that fails a query is kept, marked not usable, with NVML's words; a query the GPU
    does not support leaves that field unknown. Only the driver and the GPU count are needed
    for an answer."""
    if nvml is None:
        return Probe(NVML, False, "nvidia-ml-py (module pynvml) is not installed"), None
    try:
        nvml.nvmlInit()
    except Exception as exc:
        kind = _kind(exc)
        return Probe(NVML, False, _nvml_error(exc, nvml, container_note)), \
            (Found(Driver(), None, (kind,)) if kind else None)
    version = cuda = None
    cuda_note = ""
    step = "nvmlSystemGetDriverVersion"
    try:
        version = check_driver(text_of(nvml.nvmlSystemGetDriverVersion()), "NVML")
        cuda, cuda_note = _nvml_cuda(nvml, lookup, version, windows)
        step = "nvmlDeviceGetCount"
        count = int(nvml.nvmlDeviceGetCount())
        gpus, migs = [], []
        for index in range(count):
            gpu, devices = _nvml_gpu(nvml, index, lookup)
            gpus.append(gpu)
            migs += devices
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
    found = Found(Driver(version, cuda, NVML), tuple(gpus), mig_devices=tuple(migs))
    return Probe(NVML, True, describe(found, cuda_note)), found


def _nvml_gpu(nvml: Any, index: int, lookup: Lookup) -> tuple[Gpu, list[MigDevice]]:
    """One GPU, each query on its own."""
    problems: list[str] = []

    def ask(step: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Failed as exc:
            problems.append(str(exc))
        except AttributeError:  # an nvidia-ml-py without this call
            pass
        except Exception as exc:
            if getattr(exc, "value", None) not in _ABSENT:
                problems.append(f"{step} failed: {_reason(exc)}")
        return None

    handle = ask("nvmlDeviceGetHandleByIndex", lambda: nvml.nvmlDeviceGetHandleByIndex(index))
    if handle is None:
        return Gpu(index=index, name="", compute_capability=None, healthy=False, problem="; ".join(problems)), []
    name = ask("nvmlDeviceGetName", lambda: check_name(text_of(nvml.nvmlDeviceGetName(handle)), "NVML")) or ""
    cc = ask("nvmlDeviceGetCudaComputeCapability", lambda: _cc(nvml.nvmlDeviceGetCudaComputeCapability(handle), index))
    memory = ask("nvmlDeviceGetMemoryInfo", lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).total) // (1024 * 1024))
    uuid = ask("nvmlDeviceGetUUID", lambda: check_uuid(text_of(nvml.nvmlDeviceGetUUID(handle)), "NVML"))
    mode = ask("nvmlDeviceGetMigMode", lambda: nvml.nvmlDeviceGetMigMode(handle))
    mig = bool(mode) and int(mode[0]) == _MIG_ENABLED
    devices = _mig_devices(nvml, handle, index) if mig else []
    gpu = Gpu(index=index, name=name, compute_capability=cc or (lookup.cc_for_name(name) if name else None),
              memory_mib=memory, uuid=uuid, healthy=not problems, problem="; ".join(problems) or None, mig=mig)
    return gpu, devices


def _cc(value: Any, index: int) -> str:
    major, minor = value
    cc = f"{int(major)}.{int(minor)}"
    if not COMPUTE_CAPABILITY.fullmatch(cc):
        raise Failed(f"NVML gave a malformed compute capability {cc!r} for GPU {index}")
    return cc


def _mig_devices(nvml: Any, handle: Any, parent: int) -> list[MigDevice]:
    """The MIG instances of a GPU in MIG mode; an empty slot answers NotFound."""
    devices = []
    try:
        slots = int(nvml.nvmlDeviceGetMaxMigDeviceCount(handle))
    except Exception:
        return []
    for slot in range(slots):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except Exception:
            continue
        name = _optional(lambda: text_of(nvml.nvmlDeviceGetName(mig)))
        uuid = _optional(lambda: text_of(nvml.nvmlDeviceGetUUID(mig)))
        memory = _optional(lambda: int(nvml.nvmlDeviceGetMemoryInfo(mig).total) // (1024 * 1024))
        profile = name.rsplit("MIG ", 1)[1].strip() if name and "MIG " in name else None
        devices.append(MigDevice(gpu=parent, index=slot, profile=profile, uuid=uuid, memory_mib=memory))
    return devices


def _optional(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception:
        return None


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
