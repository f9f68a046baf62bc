"""What the probes' troubles mean on this host, in words: the notes of `HostFacts`.

The probes report kinds of trouble ("signs": an NVML mismatch, "Unknown Error", a driver that
is not loaded, a corrupted infoROM) and the facts; the same sign means different things in a
container, under WSL or on a Jetson. The texts are data: signatures.toml's findings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..model.certificate import PROBLEM
from ..model.facts import Container, Driver, Gpu, MigDevice, Note
from ..model.signatures import finding
from ._common import BLOCKED, MISMATCH, NO_DEVICES, NO_LIBRARY, NO_PERMISSION, NOT_LOADED, NVML_UNKNOWN
from .kernel import KernelLog


@dataclass(frozen=True)
class Seen:
    """Everything the notes are made from."""

    signs: frozenset[str]
    driver: Driver
    gpus: tuple[Gpu, ...]
    mig_devices: tuple[MigDevice, ...]
    container: Container
    wsl: bool
    jetson: bool
    l4t: str | None
    smi_found: bool
    kernel: KernelLog | None = None
    nvidia_seen: bool = False  # any sign of an NVIDIA driver or GPU here (module, nodes, nvidia-smi)


def note(code: str, problem: bool | None = None, **values: object) -> Note:
    """The note `code` with its template's texts; `problem` overrides the template's severity."""
    made = finding(code, **values)
    return Note(code=code, title=made.title, message=made.cause, fix=made.fix,
                problem=made.severity == PROBLEM if problem is None else problem)


def compose(seen: Seen) -> tuple[Note, ...]:
    """The notes, the most specific cause first (the planner's `no-gpu` warning quotes it)."""
    signs, kernel, container = seen.signs, seen.kernel or KernelLog(), seen.container
    kind = container.kind or "container"
    notes = []
    if seen.jetson:
        notes.append(note("jetson", l4t=f"L4T R{seen.l4t}" if seen.l4t else "Tegra"))
    if container.detected and not container.dev_nvidia and not seen.wsl:
        # a problem where something NVIDIA shows through; else perhaps a container meant for the CPU
        notes.append(note("container-no-gpu", problem=seen.nvidia_seen or bool(signs - {NO_LIBRARY}), kind=kind))
    if NVML_UNKNOWN in signs and container.detected and container.dev_nvidia:
        notes.append(note("container-lost-gpus", kind=kind))
    elif NVML_UNKNOWN in signs:
        notes.append(note("nvml-unknown-error"))
    if (container.detected and container.dev_nvidia and NO_LIBRARY in signs and not seen.smi_found
            and not seen.driver.present):
        notes.append(note("container-no-driver-libraries", kind=kind))
    if MISMATCH in signs or kernel.mismatch:
        library = kernel.client or (seen.driver.version if seen.driver.source != "proc" else None)
        notes.append(note("driver-library-mismatch", library=library or "a newer version (not shown)",
                          module=seen.driver.kernel_module or kernel.module or "an older version"))
    if BLOCKED in signs:
        notes.append(note("gpu-access-blocked", where=" (under WSL2: Windows keeps the GPU)" if seen.wsl else ""))
    if NOT_LOADED in signs and seen.wsl:
        notes.append(note("wsl-gpu-not-exposed"))
    elif NOT_LOADED in signs:
        why = " (nouveau has taken the GPU, says the kernel log)" if kernel.nouveau else \
            " (after a kernel upgrade without a rebuilt module, Secure Boot refusing an unsigned module, or nouveau holding the GPU)"
        notes.append(note("driver-not-loaded", why=why))
    if NO_PERMISSION in signs:
        notes.append(note("nvml-no-permission"))
    if NO_DEVICES in signs:
        failed = ", ".join(kernel.init_failed)
        notes.append(note("no-devices", why=f" (the kernel log: RmInitAdapter failed for {failed})" if failed else ""))
    lost_access = NVML_UNKNOWN in signs and container.detected  # explained above
    broken = _broken(seen.gpus, kernel.lost, seen.wsl, container.detected and not lost_access)
    if broken:
        notes.append(broken)
    mig = [g.index for g in seen.gpus if g.mig] or sorted({m.gpu for m in seen.mig_devices})
    if mig:
        instances = len(seen.mig_devices)
        notes.append(note("mig-enabled", gpus=_gpu_list(mig),
                          instances=f" with {instances} MIG instance{'s' if instances != 1 else ''}" if instances else ""))
    inforom = [sign.split(":", 1)[1] for sign in sorted(signs) if sign.startswith("inforom:")]
    if inforom or "inforom" in signs:
        buses = ", ".join(inforom) or "(nvidia-smi exits with status 14, NVML_ERROR_CORRUPTED_INFOROM)"
        notes.append(note("inforom-corrupted", buses=buses))
    return tuple(notes)


def _broken(gpus: Iterable[Gpu], lost: tuple[str, ...], wsl: bool, container: bool) -> Note | None:
    bad = [g for g in gpus if not g.healthy]
    words = [f"GPU {g.index}" + (f" ({g.name})" if g.name else "") + f": {g.problem or 'does not answer'}" for g in bad]
    words += [f"GPU {bus} has fallen off the bus (the kernel log)" for bus in lost]
    if not words:
        return None
    advice = "Reboot the system (a GPU that is lost or shows ERR! comes back only after a reset); if it recurs, " \
             "check cooling, power and the kernel log for Xid errors, and contact the vendor."
    if wsl:
        advice = "Under WSL2 put every GPU in WDDM mode (`nvidia-smi -g N -dm 0` on Windows), then " + advice[0].lower() + advice[1:]
    if container:
        advice = "In a container a GPU it was not given can answer like this: check `nvidia-smi` on the host. " + advice
    usable = sum(1 for g in gpus if g.healthy)
    tail = f"; the other {usable} GPU{'s' if usable != 1 else ''} answer{'s' if usable == 1 else ''}" if usable else ""
    return note("gpus-broken", gpus="; ".join(words) + tail, advice=advice)


def _gpu_list(indices: list[int]) -> str:
    return ("GPU " if len(indices) == 1 else "GPUs ") + ", ".join(map(str, indices)) + (" is" if len(indices) == 1 else " are")
