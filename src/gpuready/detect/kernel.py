"""Probe 4: the kernel log's NVRM messages, read when the driver probes leave trouble unexplained.

The nvidia kernel module says there what the other probes cannot: which versions disagree
("API mismatch: the client has the version X, but this kernel module has the version Y"),
which module was loaded, which GPU fell off the bus, which one failed to initialise, and that
nouveau holds the card. Read with `dmesg` (often refused to non-root users: then recorded,
not raised); parsed from its form, a syslog form ("#012" for newlines) and a pasted form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from .. import proc
from ..model.facts import Probe
from ._common import first_line

KERNEL_LOG = "kernel-log"
DMESG_TIMEOUT = 5.0
_PREFIX = re.compile(r"^(?:\[\s*\d+\.\d+\]\s*|\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ kernel:\s*)")
_VERSION = r"(\d{2,3}\.\d{1,3}(?:\.\d{1,3})?)"
_MISMATCH = re.compile(rf"API mismatch: the client(?: '[^']*' \(pid \d+\))? has the version {_VERSION},? but "
                       rf"this kernel module has the version {_VERSION}")
_LOADING = re.compile(rf"loading NVIDIA UNIX .*?Kernel Module(?: for \S+)?\s+{_VERSION}")
_BUS = r"([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}(?:\.[0-9A-Fa-f])?)"
_FALLEN = re.compile(rf"(?:The NVIDIA GPU {_BUS}\b.*? has fallen off the bus|Xid \(PCI:{_BUS}\): 79\b)")
_INIT_FAILED = re.compile(rf"GPU {_BUS}: RmInitAdapter failed")
_NOUVEAU = re.compile(r"nouveau.*?obtained ownership of the NVIDIA device|probe routine was not called")


@dataclass(frozen=True)
class KernelLog:
    client: str | None = None  # the user-space driver version of an API mismatch
    module: str | None = None  # the kernel module's version (a mismatch, or its loading line)
    mismatch: bool = False
    lost: tuple[str, ...] = ()  # bus ids of GPUs that fell off the bus
    init_failed: tuple[str, ...] = ()  # bus ids that RmInitAdapter could not start
    nouveau: bool = False

    @property
    def empty(self) -> bool:
        return self == KernelLog()


def parse_kernel_log(text: str) -> KernelLog:
    """The NVRM messages of a kernel log; continuation lines are joined, so a message broken
    over lines (and timestamps) reads as one."""
    lines = text.replace("#012", "\n").splitlines()
    joined = " ".join(_PREFIX.sub("", line).strip().removeprefix("NVRM:").strip() for line in lines)
    joined = re.sub(r"\s+", " ", joined)
    mismatch = list(_MISMATCH.finditer(joined))
    loading = list(_LOADING.finditer(joined))
    client = mismatch[-1].group(1) if mismatch else None
    module = mismatch[-1].group(2) if mismatch else (loading[-1].group(1) if loading else None)
    lost = [m.group(1) or m.group(2) for m in _FALLEN.finditer(joined)]
    return KernelLog(client=client, module=module.rstrip(".") if module else None, mismatch=bool(mismatch),
                     lost=tuple(dict.fromkeys(lost)),
                     init_failed=tuple(dict.fromkeys(m.group(1) for m in _INIT_FAILED.finditer(joined))),
                     nouveau=bool(_NOUVEAU.search(joined)))


def describe(log: KernelLog) -> str:
    if log.empty:
        return "no NVIDIA driver messages"
    parts = []
    if log.mismatch:
        parts.append(f"API mismatch: user-space driver {log.client}, kernel module {log.module}")
    elif log.module:
        parts.append(f"kernel module {log.module} loaded")
    parts += [f"GPU {bus} fell off the bus" for bus in log.lost]
    parts += [f"GPU {bus} failed to initialise (RmInitAdapter)" for bus in log.init_failed]
    if log.nouveau:
        parts.append("nouveau holds the NVIDIA device")
    return "; ".join(parts)


def probe_kernel_log(which: Callable[[str], str | None], environ: Mapping[str, str],
                     timeout: float = DMESG_TIMEOUT) -> tuple[Probe, KernelLog | None]:
    exe = which("dmesg")
    if exe is None:
        return Probe(KERNEL_LOG, False, "dmesg not found on PATH"), None
    try:
        result = proc.run([exe], timeout=timeout, env=environ)
    except proc.NotStarted as exc:
        return Probe(KERNEL_LOG, False, f"dmesg could not be started: {exc.strerror or exc}"), None
    if result.timed_out or result.returncode != 0:
        said = first_line(result.stderr) or first_line(result.stdout) or "no output"
        how = f"did not answer within {timeout:g} s" if result.timed_out else f"exited with status {result.returncode}"
        return Probe(KERNEL_LOG, False, f"dmesg {how}: {said}"), None
    log = parse_kernel_log(result.stdout)
    return Probe(KERNEL_LOG, True, describe(log)), log
