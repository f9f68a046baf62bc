"""Probe 2: nvidia-smi: the CSV query (every GPU), the plain table (banner, ERR! rows, MIG),
and `nvidia-smi -L` where neither lists the GPUs. The texts are read in `smi_text`."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .. import proc
from ..model.facts import Driver, Probe
from . import smi_text
from ._common import NO_DEVICES, NOT_LOADED, SMI, Failed, Found, Lookup, derived_cuda, describe, first_line, kind_of_words, noted

SMI_FIELDS = ("driver_version", "name", "compute_cap", "memory.total", "uuid")
SMI_FIELDS_R470 = ("driver_version", "name", "memory.total", "uuid")  # no compute_cap before R510
SMI_TIMEOUT = 10.0  # seconds for one nvidia-smi call; a hung driver must not hang detection
WSL_LIB = "usr/lib/wsl/lib"  # where WSL2 puts the Windows driver's nvidia-smi and libraries
INFOROM_STATUS = 14  # nvidia-smi's exit status for NVML_ERROR_CORRUPTED_INFOROM, after a full answer


@dataclass(frozen=True)
class _Answer:
    """What one nvidia-smi call printed, and why it is no answer (None: it is one)."""

    text: str
    failure: str | None = None
    hung: bool = False
    status: int | None = None


def _run_smi(exe: str, args: Sequence[str], environ: Mapping[str, str], timeout: float) -> _Answer:
    """Run nvidia-smi; its output is kept even when it exits non-zero (an infoROM warning
    exits 14 after a complete table; a mismatch prints the library's version)."""
    try:
        result = proc.run([exe, *args], timeout=timeout, env=environ)
    except proc.NotStarted as exc:
        return _Answer("", f"nvidia-smi at {exe} could not be started: {exc.strerror or exc}")
    text = result.stdout + ("\n" + result.stderr if result.stderr else "")
    if result.timed_out:
        return _Answer(text, f"nvidia-smi did not answer within {timeout:g} s (stopped)", hung=True)
    if result.signal_name:
        number = -int(result.returncode or 0)
        described = signal.strsignal(number) if hasattr(signal, "strsignal") else None
        extra = f" ({described.lower()})" if described and described != result.signal_name else ""
        return _Answer(text, f"nvidia-smi was killed by {result.signal_name}{extra}")
    if result.returncode != 0:
        said = first_line(result.stdout) or first_line(result.stderr)
        return _Answer(text, f"nvidia-smi exited with status {result.returncode}" + (f": {said}" if said else ""),
                       status=result.returncode)
    return _Answer(text, status=0)


def _query_args(fields: Sequence[str]) -> list[str]:
    return [f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]


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
    """Every GPU from the CSV query, completed and checked by the plain table; `-L` when neither
    lists them. One GPU that does not answer is reported as such; the rest are kept."""
    environ = os.environ if environ is None else environ
    if exe is None:
        where = "on PATH" + (f" or in /{WSL_LIB}" if wsl else "")
        return Probe(SMI, False, noted(f"nvidia-smi not found {where}", container_note)), None
    notes: list[str] = []
    fields = SMI_FIELDS
    answer = _run_smi(exe, _query_args(fields), environ, timeout)
    if _compute_cap_unknown(answer.text):
        fields = SMI_FIELDS_R470
        notes.append("compute_cap is not a valid field for this nvidia-smi (R470-era driver): "
                     "queried without it, compute capability from the matrix's GPU name table")
        answer = _run_smi(exe, _query_args(fields), environ, timeout)
    first = smi_text.messages(answer.text)  # an NVML or driver failure: every call says the same
    answers = [answer]
    try:
        query = smi_text.parse_query("" if first.driver_unreachable else answer.text, fields, lookup)
    except Failed as exc:
        query = smi_text.Query(None, ())
        notes.append(str(exc))
    if answer.failure and not query.gpus:
        notes.append(f"the --query-gpu call: {answer.failure}" if not first.driver_unreachable else answer.failure)
    elif not query.gpus:
        notes += list(query.skipped) or ["nvidia-smi printed no GPU line"]
    table, listing = smi_text.Table(), smi_text.Listing()
    if not (first.driver_unreachable or answer.hung):
        banner = _run_smi(exe, [], environ, timeout)
        answers.append(banner)
        table = smi_text.parse_table(banner.text, lookup)
        if banner.failure and not (table.driver or table.gpus):
            notes.append(f"banner unavailable: {banner.failure}")
        if not query.gpus and not table.gpus and not banner.hung:
            listed = _run_smi(exe, ["-L"], environ, timeout)
            answers.append(listed)
            listing = smi_text.parse_list(listed.text, lookup)
    everything = "\n".join(a.text for a in answers)
    said = smi_text.messages(everything)
    listed_gpus = smi_text.combine(query.gpus, table.gpus, listing.gpus)
    gpus = smi_text.combine(listed_gpus, smi_text.failed_gpus(everything, {g.index for g in listed_gpus}))
    jetson = lookup.jetson or any("(nvgpu)" in g.name for g in gpus)
    version = query.driver or table.driver or said.library_version
    signs = _signs(said) + (("inforom",) if any(a.status == INFOROM_STATUS for a in answers) else ())
    migs = table.mig_devices + listing.mig_devices
    if version is None:
        found = Found(Driver(), gpus or None, signs, migs)
        return Probe(SMI, False, noted("; ".join(notes) or "nvidia-smi gave no driver version", container_note)), \
            (found if gpus or signs or migs else None)
    if version == said.library_version and not (query.driver or table.driver):
        cuda, cuda_note = None, f"the user-space driver library is {version} (NVML library version)"
    elif jetson and not table.cuda:
        cuda, cuda_note = None, f"CUDA unknown: a Jetson's driver {version} is not in the desktop driver table"
    else:
        cuda, cuda_note = _smi_cuda(table, lookup, version, windows)
    found = Found(Driver(version, cuda, SMI), gpus or None, signs, migs)
    if not gpus:
        return Probe(SMI, False, noted(f"driver {version}, but " + ("; ".join(notes) or "no GPU list"),
                                       container_note)), found
    return Probe(SMI, True, "; ".join([describe(found, cuda_note), *notes])), found


def _signs(said: smi_text.Messages) -> tuple[str, ...]:
    signs = []
    kind = kind_of_words(said.nvml_init) if said.nvml_init else None
    if kind:
        signs.append(kind)
    if said.not_loaded:
        signs.append(NOT_LOADED)
    if said.no_devices:
        signs.append(NO_DEVICES)
    signs += [f"inforom:{bus}" for bus in said.inforom]
    return tuple(signs)


def _smi_cuda(table: smi_text.Table, lookup: Lookup, version: str, windows: bool) -> tuple[str | None, str]:
    """The "CUDA Version: 12.2" of the plain banner; else derived from the matrix."""
    if table.cuda:
        return table.cuda, f"CUDA {table.cuda} (banner)"
    if table.cuda_shown:
        return derived_cuda(lookup, version, windows, f"the banner says CUDA Version: {table.cuda_shown}")
    return derived_cuda(lookup, version, windows, "the banner shows no CUDA Version")
