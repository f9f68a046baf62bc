"""Probe 3: /proc/driver/nvidia/version, the kernel module's version (no GPU list)."""

from __future__ import annotations

import re
from pathlib import Path

from ..model.facts import Driver, Probe
from ._common import PROC, Found, Lookup, derived_cuda, first_line, noted, short
from .host import read_text

_PROC_VERSION = re.compile(r"NVRM version:.*?\s(\d{2,4}\.\d{1,3}(?:\.\d{1,3})?)(?:\s|$)")
L4T = "l4t"  # the sign of a Jetson's module: its "version" is a Linux for Tegra release


def probe_proc(root: Path, lookup: Lookup, windows: bool, container_note: str = "") -> tuple[Probe, Found | None]:
    """The kernel module's version from /proc/driver/nvidia/version (no GPU list). On a
    Jetson the number is the L4T release (35.3.1), not a driver: it is no driver version."""
    path = root / "proc/driver/nvidia/version"
    shown = "/proc/driver/nvidia/version"
    if not path.exists():
        return Probe(PROC, False, f"{shown} not found (no NVIDIA kernel module loaded)"), None
    text = read_text(path)
    if text is None:
        return Probe(PROC, False, f"{shown} could not be read"), None
    match = _PROC_VERSION.search(text)
    if match is None:
        return Probe(PROC, False, f"{shown} holds no kernel module version: {short(first_line(text))}"), None
    version = match.group(1)
    if int(version.split(".")[0]) < 100:  # desktop drivers have been >= 100 since 2008
        return (Probe(PROC, True, f"kernel module {version}: a Jetson's L4T release, not a desktop driver"),
                Found(Driver(kernel_module=version), None, (f"{L4T}:{version}",)))
    cuda, cuda_note = derived_cuda(lookup, version, windows, "/proc gives no CUDA")
    detail = f"kernel module {version}, {cuda_note}; /proc lists no GPUs"
    if container_note:
        detail = noted(detail, f"{container_note} (the version is the host's driver)")
    return Probe(PROC, True, detail), Found(Driver(version, cuda, PROC, kernel_module=version), None)
