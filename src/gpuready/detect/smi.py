"""Probe 2: nvidia-smi's CSV query (every GPU) and its banner (the driver's CUDA)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .. import proc
from ..model.facts import COMPUTE_CAPABILITY, Driver, Gpu, Probe
from ._common import NOT_AVAILABLE, SMI, Failed, Found, Lookup, check_driver, check_name, check_uuid, derived_cuda, describe, first_line, noted, short

SMI_FIELDS = ("driver_version", "name", "compute_cap", "memory.total", "uuid")
SMI_FIELDS_R470 = ("driver_version", "name", "memory.total", "uuid")  # no compute_cap before R510
SMI_TIMEOUT = 10.0  # seconds for one nvidia-smi call; a hung driver must not hang detection
WSL_LIB = "usr/lib/wsl/lib"  # where WSL2 puts the Windows driver's nvidia-smi and libraries
_CUDA = re.compile(r"[0-9]{1,2}\.[0-9]{1,2}")
_BANNER_CUDA = re.compile(r"CUDA Version:\s*(\S+)")


def _run_smi(exe: str, args: Sequence[str], environ: Mapping[str, str], timeout: float) -> str:
    """Run nvidia-smi and return what it printed; raise Failed saying why it gave no answer."""
    try:
        result = proc.run([exe, *args], timeout=timeout, env=environ)
    except proc.NotStarted as exc:
        raise Failed(f"nvidia-smi at {exe} could not be started: {exc.strerror or exc}") from None
    if result.timed_out:
        raise Failed(f"nvidia-smi did not answer within {timeout:g} s (stopped)")
    if result.signal_name:
        number = -int(result.returncode or 0)
        described = signal.strsignal(number) if hasattr(signal, "strsignal") else None
        extra = f" ({described.lower()})" if described and described != result.signal_name else ""
        raise Failed(f"nvidia-smi was killed by {result.signal_name}{extra}")
    if result.returncode != 0:
        said = first_line(result.stdout) or first_line(result.stderr)
        raise Failed(f"nvidia-smi exited with status {result.returncode}" + (f": {said}" if said else ""))
    return result.stdout


def _query_args(fields: Sequence[str]) -> list[str]:
    return [f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]


def _parse_query(stdout: str, fields: Sequence[str], lookup: Lookup) -> tuple[str, tuple[Gpu, ...]]:
    """Validate every field of every line; raise Failed naming the first bad one."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise Failed("nvidia-smi printed no GPU line")
    driver = None
    gpus = []
    for index, line in enumerate(lines):
        parts = [part.strip() for part in line.split(",")]
        where = f"nvidia-smi line {index + 1}"
        if len(parts) != len(fields):
            raise Failed(f"{where} has {len(parts)} fields, expected {len(fields)} "
                          f"({','.join(fields)}): {short(line)}")
        row = dict(zip(fields, parts))
        version = check_driver(row["driver_version"], where)
        if driver is not None and version != driver:
            raise Failed(f"{where}: driver {version} differs from {driver} on line 1")
        driver = version
        name = check_name(row["name"], where)
        if "compute_cap" in row:
            cc = row["compute_cap"]
            if cc == NOT_AVAILABLE:
                cc = lookup.cc_for_name(name)
            elif not COMPUTE_CAPABILITY.fullmatch(cc):
                raise Failed(f"{where} gave a malformed compute capability {short(cc)}")
        else:
            cc = lookup.cc_for_name(name)
        memory_text = row["memory.total"]
        if memory_text == NOT_AVAILABLE:
            memory = None
        elif memory_text.isascii() and memory_text.isdigit():
            memory = int(memory_text)
        else:
            raise Failed(f"{where} gave memory.total {short(memory_text)}, not a whole number of MiB")
        uuid = check_uuid(row["uuid"], where)
        gpus.append(Gpu(index=index, name=name, compute_capability=cc, memory_mib=memory, uuid=uuid))
    assert driver is not None
    return driver, tuple(gpus)


def _compute_cap_unknown(message: str) -> bool:
    """The R470-era answer: Field "compute_cap" is not a valid field to query."""
    lowered = message.lower()
    return "compute_cap" in lowered and "not a valid field" in lowered


def find_nvidia_smi(which: Callable[[str], str | None], root: Path, wsl: bool) -> str | None:
    """nvidia-smi on PATH; under WSL also in /usr/lib/wsl/lib (often not on PATH)."""
    found = which("nvidia-smi")
    if found:
        return found
    if wsl:
        candidate = root / WSL_LIB / "nvidia-smi"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def probe_nvidia_smi(exe: str | None, lookup: Lookup, windows: bool, *, wsl: bool = False,
                     environ: Mapping[str, str] | None = None, timeout: float = SMI_TIMEOUT,
                     container_note: str = "") -> tuple[Probe, Found | None]:
    """Read the driver and every GPU from nvidia-smi's CSV query, the CUDA from its banner."""
    environ = os.environ if environ is None else environ
    if exe is None:
        where = "on PATH" + (f" or in /{WSL_LIB}" if wsl else "")
        return Probe(SMI, False, noted(f"nvidia-smi not found {where}", container_note)), None
    notes = []
    try:
        fields = SMI_FIELDS
        try:
            stdout = _run_smi(exe, _query_args(fields), environ, timeout)
        except Failed as exc:
            if not _compute_cap_unknown(str(exc)):
                raise
            stdout = str(exc)
        if _compute_cap_unknown(stdout):
            fields = SMI_FIELDS_R470
            notes.append("compute_cap is not a valid field for this nvidia-smi (R470-era driver): "
                         "queried without it, compute capability from the matrix's GPU name table")
            stdout = _run_smi(exe, _query_args(fields), environ, timeout)
        version, gpus = _parse_query(stdout, fields, lookup)
    except Failed as exc:
        return Probe(SMI, False, noted("; ".join([*notes, str(exc)]), container_note)), None
    cuda, cuda_note = _smi_cuda(exe, environ, timeout, lookup, version, windows)
    found = Found(Driver(version, cuda, SMI), gpus)
    return Probe(SMI, True, "; ".join([describe(found, cuda_note), *notes])), found


def _smi_cuda(exe: str, environ: Mapping[str, str], timeout: float, lookup: Lookup,
              version: str, windows: bool) -> tuple[str | None, str]:
    """The "CUDA Version: 12.2" of the plain banner; else derived from the matrix."""
    try:
        banner = _run_smi(exe, [], environ, timeout)
    except Failed as exc:
        return derived_cuda(lookup, version, windows, f"banner unavailable: {exc}")
    match = _BANNER_CUDA.search(banner)
    if match is None:
        return derived_cuda(lookup, version, windows, "the banner shows no CUDA Version")
    value = match.group(1).strip("|")
    if not _CUDA.match(value):
        return derived_cuda(lookup, version, windows, f"the banner says CUDA Version: {value}")
    return value, f"CUDA {value} (banner)"
