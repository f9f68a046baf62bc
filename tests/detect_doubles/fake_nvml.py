"""A fake `pynvml` module: a test double standing in for NVML and the NVIDIA driver behind it.

The real `pynvml` (nvidia-ml-py) loads libnvidia-ml.so.1, which comes with the NVIDIA driver and
cannot exist on the development and CI machines (no GPU, no driver). This object offers the
calls `gpuready.detect` makes, answering from recorded values, and raises the real pynvml error
classes where a scenario says a call fails, so the detection code sees exactly what it would see
from the real module. It records every call, so tests can check that NVML was shut down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pynvml

MIB = 1024 * 1024


@dataclass
class FakeGpu:
    name: str
    cc: tuple[int, int]
    memory_mib: int
    uuid: str
    mig_devices: tuple[FakeGpu, ...] = ()  # MIG instances: the GPU is in MIG mode


# Recorded answers of real GPUs (name, compute capability, total memory, UUID shape).
A100 = FakeGpu("NVIDIA A100-SXM4-80GB", (8, 0), 81920, "GPU-4b6a2a6e-3d1f-7c51-94a2-0f4c1c2d9e11")
T4 = FakeGpu("Tesla T4", (7, 5), 15360, "GPU-0c7e9a55-1e2b-43f7-8d6a-5b1f2e3c4d5a")
RTX3080 = FakeGpu("NVIDIA GeForce RTX 3080", (8, 6), 10240, "GPU-9f1d2c3b-4a5e-6f70-8192-a3b4c5d6e7f8")


class FakeNvml:
    """Answers like pynvml on a host with `gpus` and driver `driver` (see the module docstring).

    fail: {call name: exception} makes that call raise; a name with an index, e.g.
    "nvmlDeviceGetName:1", fails only for that GPU. as_bytes: answer strings as bytes, as
    older nvidia-ml-py releases do. cuda: nvmlSystemGetCudaDriverVersion(_v2)'s integer.
    """

    NVMLError = pynvml.NVMLError
    NVML_ERROR_LIBRARY_NOT_FOUND = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND

    def __init__(self, driver: str = "535.104.05", cuda: int = 12020, gpus: tuple[FakeGpu, ...] = (A100, T4),
                 fail: dict[str, BaseException] | None = None, as_bytes: bool = False,
                 missing: tuple[str, ...] = ()) -> None:
        self.driver, self.cuda, self.gpus = driver, cuda, gpus
        self.fail = fail or {}
        self.as_bytes = as_bytes
        self.missing = missing
        self.calls: list[str] = []
        self.initialized = False

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("nvml") and name in object.__getattribute__(self, "missing"):
            raise AttributeError(name)  # an older pynvml without this function
        return object.__getattribute__(self, name)

    def _call(self, name: str, index: int | None = None) -> None:
        self.calls.append(name if index is None else f"{name}:{index}")
        for key in (name, f"{name}:{index}"):
            if key in self.fail:
                raise self.fail[key]
        if name != "nvmlInit" and not self.initialized:
            raise pynvml.NVMLError_Uninitialized()

    def _str(self, value: str) -> str | bytes:
        return value.encode() if self.as_bytes else value

    def nvmlInit(self) -> None:
        self._call("nvmlInit")
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self._call("nvmlShutdown")
        self.initialized = False

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        self._call("nvmlSystemGetDriverVersion")
        return self._str(self.driver)

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        self._call("nvmlSystemGetCudaDriverVersion_v2")
        return self.cuda

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._call("nvmlSystemGetCudaDriverVersion")
        return self.cuda

    def nvmlDeviceGetCount(self) -> int:
        self._call("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._call("nvmlDeviceGetHandleByIndex", index)
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError_InvalidArgument()
        return index

    def _gpu(self, handle: Any) -> FakeGpu:
        """A GPU's handle is its index; a MIG instance's is (GPU index, slot)."""
        if isinstance(handle, tuple):
            return self.gpus[handle[0]].mig_devices[handle[1]]
        return self.gpus[handle]

    def nvmlDeviceGetName(self, handle: Any) -> str | bytes:
        self._call("nvmlDeviceGetName", handle)
        return self._str(self._gpu(handle).name)

    def nvmlDeviceGetMigMode(self, handle: int) -> list[int]:
        self._call("nvmlDeviceGetMigMode", handle)
        on = int(bool(self.gpus[handle].mig_devices))
        return [on, on]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: int) -> int:
        self._call("nvmlDeviceGetMaxMigDeviceCount", handle)
        return 7 if self.gpus[handle].mig_devices else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: int, slot: int) -> tuple[int, int]:
        self._call("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if slot >= len(self.gpus[handle].mig_devices):
            raise pynvml.NVMLError_NotFound()
        return handle, slot

    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> tuple[int, int]:
        self._call("nvmlDeviceGetCudaComputeCapability", handle)
        return self.gpus[handle].cc

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        self._call("nvmlDeviceGetMemoryInfo", handle)
        total = self._gpu(handle).memory_mib * MIB
        return type("c_nvmlMemory_t", (), {"total": total, "free": total, "used": 0})()

    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes:
        self._call("nvmlDeviceGetUUID", handle)
        return self._str(self._gpu(handle).uuid)
