"""What the three driver probes share: their findings, the matrix look-ups, value checks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..model.facts import DRIVER_VERSION, Driver, Gpu, MigDevice

if TYPE_CHECKING:
    from ..model.matrix import Matrix

NVML, SMI, PROC = "nvml", "nvidia-smi", "proc"
UUID = re.compile(r"(GPU|MIG)-[0-9A-Za-z-]{8,}(/\d+/\d+)?")
NOT_AVAILABLE = "[N/A]"  # nvidia-smi's word for a field this GPU does not report

# What an NVML failure means, by NVML's return code and by the words nvidia-smi prints for it
# ("Failed to initialize NVML: <words>"); detection turns these kinds into advice (`notes`).
MISMATCH, NVML_UNKNOWN, BLOCKED, NOT_LOADED, NO_PERMISSION, GPU_LOST, NO_LIBRARY, NO_DEVICES = (
    "mismatch", "nvml-unknown", "blocked", "not-loaded", "no-permission", "gpu-lost", "no-library", "no-devices")
NVML_CODES = {18: MISMATCH, 999: NVML_UNKNOWN, 17: BLOCKED, 9: NOT_LOADED, 4: NO_PERMISSION, 15: GPU_LOST,
              12: NO_LIBRARY}
_WORDS = (("version mismatch", MISMATCH), ("unknown error", NVML_UNKNOWN),
          ("blocked by the operating system", BLOCKED), ("driver not loaded", NOT_LOADED),
          ("insufficient permissions", NO_PERMISSION), ("gpu is lost", GPU_LOST))


def kind_of_words(words: str) -> str | None:
    lowered = words.lower()
    return next((kind for phrase, kind in _WORDS if phrase in lowered), None)


class Failed(Exception):
    """A probe step failed; the message is the reason recorded in the probe."""


@dataclass(frozen=True)
class Found:
    """What one probe learnt. ``gpus`` is None when it could not list them; ``signs`` are the
    kinds of trouble it saw (MISMATCH, ...; "inforom:<bus>")."""

    driver: Driver
    gpus: tuple[Gpu, ...] | None
    signs: tuple[str, ...] = ()
    mig_devices: tuple[MigDevice, ...] = ()


class Lookup:
    """The matrix's driver -> CUDA and GPU name -> compute capability tables.

    Loaded only when a probe needs it; a matrix that cannot be loaded makes the
    answers unknown (None), never an error: detection does not raise. On a Jetson the
    desktop driver table does not apply (its "driver" is a JetPack tag): no CUDA is derived.
    """

    def __init__(self, matrix: Matrix | None, jetson: bool = False) -> None:
        self._matrix = matrix
        self._tried = matrix is not None
        self.jetson = jetson

    def _get(self) -> Matrix | None:
        if not self._tried:
            self._tried = True
            try:
                from ..model import matrix as matrix_mod

                self._matrix = matrix_mod.load()
            except Exception:
                self._matrix = None
        return self._matrix

    def cuda_for_driver(self, version: str, windows: bool) -> str | None:
        if self.jetson:
            return None
        matrix = self._get()
        try:
            return matrix.newest_cuda_for_driver(version, windows) if matrix else None
        except Exception:  # an unparsable version: unknown
            return None

    def cc_for_name(self, name: str) -> str | None:
        matrix = self._get()
        return matrix.cc_for_name(name) if matrix else None


def derived_cuda(lookup: Lookup, version: str, windows: bool, why: str) -> tuple[str | None, str]:
    cuda = lookup.cuda_for_driver(version, windows)
    column = "Windows" if windows else "Linux"
    if cuda:
        return cuda, f"CUDA {cuda} derived from the matrix's {column} driver column ({why})"
    if lookup.jetson:
        return None, f"CUDA unknown: a Jetson's driver {version} is not in the desktop driver table ({why})"
    return None, f"CUDA unknown: the matrix has no CUDA release for driver {version} ({why})"


def describe(found: Found, cuda_note: str) -> str:
    gpus = found.gpus or ()
    listed = ", ".join(f"{g.name} ({g.compute_capability or 'compute capability unknown'})" if g.healthy
                       else f"GPU {g.index} not usable ({g.problem})" for g in gpus)
    count = f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''}"
    return f"driver {found.driver.version}, {cuda_note}, {count}" + (f": {listed}" if listed else "")


def text_of(value: Any) -> str:
    """NVML answers bytes with older nvidia-ml-py and str with newer ones."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value).strip().strip("\x00").strip()


def check_driver(value: str, who: str) -> str:
    if not DRIVER_VERSION.fullmatch(value):
        raise Failed(f"{who} gave a malformed driver version {short(value)}")
    return value


def check_name(value: str, who: str) -> str:
    if not value or len(value) > 96 or not value.isprintable() or "\ufffd" in value:
        raise Failed(f"{who} gave a malformed GPU name {short(value)}")
    return value


def check_uuid(value: str, who: str) -> str | None:
    if value == NOT_AVAILABLE:
        return None
    if not UUID.fullmatch(value):
        raise Failed(f"{who} gave a malformed GPU UUID {short(value)}")
    return value


def short(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def noted(detail: str, note: str) -> str:
    return f"{detail}; {note}" if note else detail


def first_line(text: str) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= 200 else line[:200] + "..."
