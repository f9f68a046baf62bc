"""What nvidia-smi prints, read line by line and GPU by GPU (pure: text in, facts out).

Four forms, as real drivers print them (tests/data/corpus/nvidia-smi holds 77 pasted
outputs from R325 to R610, WSL, Jetson and containers): the `--query-gpu` CSV, the plain
table (its banner, one block per GPU, the MIG devices box), `nvidia-smi -L`, and the error
lines any of them may carry instead ("Failed to initialize NVML: ...", "Unable to determine
the device handle for GPU ...", "No devices were found", infoROM warnings).

Every GPU is read on its own: one that shows ERR!, or whose handle cannot be had, is kept as
a broken GPU (``healthy=False`` with the driver's words) and its neighbours are kept too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Sequence

from ..model.facts import COMPUTE_CAPABILITY, DRIVER_VERSION, Gpu, MigDevice
from ._common import NOT_AVAILABLE, UUID, Failed, Lookup, check_name, check_uuid, short

# Values nvidia-smi prints for a field it cannot give; only the first three leave the GPU usable.
UNAVAILABLE = {NOT_AVAILABLE, "N/A", "[Not Supported]", "Not Supported", ""}
BROKEN = {"ERR!", "[Unknown Error]", "[GPU is lost]", "Unknown Error"}
FIELD_ALIASES = {"gpu_name": "name", "gpu_uuid": "uuid", "gpu_bus_id": "pci.bus_id"}

_BUS = r"[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]"
_DRIVER_FIELD = re.compile(r"(?:Driver|KMD) Version:\s*(\S+)")  # R610 says "KMD Version"
_CUDA_FIELD = re.compile(r"CUDA (?:UMD )?Version:\s*([^\s|]+)")
_CUDA = re.compile(r"[0-9]{1,2}\.[0-9]{1,2}")
_ROW = re.compile(  # the first line of a GPU's block
    rf"^\s*\|\s*(?P<index>\d+)\s+(?P<name>.*?)\s+(?P<mode>On|Off|N/A|WDDM|TCC|ERR!)\s*\|"
    rf"\s*(?P<bus>{_BUS}|N/A)\s+\S+\s*\|\s*(?P<ecc>[^|]*?)\s*\|\s*$")
_MEMORY = re.compile(r"(\d+)\s*Mi?B\s*/\s*(\d+)\s*Mi?B")
_MIG_BOX = re.compile(r"^\s*\|\s*MIG devices:", re.IGNORECASE)
_PROCESSES = re.compile(r"^\s*\|\s*(?:Compute )?Processes:", re.IGNORECASE)
_MIG_ROW = re.compile(r"^\s*\|\s*(\d+)\s+(\d+|N/A)\s+(\d+|N/A)\s+(\d+)\s*\|\s*\d+\s*MiB\s*/\s*(\d+)\s*MiB")
_BORDER = re.compile(r"^\s*[+|][-=+|]+\s*$")
_LIST_GPU = re.compile(r"GPU (\d+): (.+?) \(UUID: ([^)]*)\)")
_LIST_MIG = re.compile(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: ([^)]*)\)")
_HANDLE = re.compile(rf"Unable to determine the device handle for GPU\s*(?:(\d+):\s*)?({_BUS}):\s*(.+?)\s*$",
                     re.IGNORECASE)
_NVML_INIT = re.compile(r"Failed to initialize NVML:\s*(.+?)\s*$")
_LIBRARY = re.compile(r"NVML library version:\s*(\S+)")
_NOT_LOADED = re.compile(r"couldn't communicate with the NVIDIA driver", re.IGNORECASE)
_NO_DEVICES = re.compile(r"^\s*No devices were found\s*$")
_INFOROM = re.compile(r"infoROM is corrupted at gpu\s*(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class Messages:
    """The error and warning lines of one nvidia-smi output."""

    nvml_init: str | None = None  # "Driver/library version mismatch", "Unknown Error", ...
    library_version: str | None = None  # "NVML library version: 550.144" (mismatch, R535+)
    not_loaded: bool = False  # "couldn't communicate with the NVIDIA driver"
    no_devices: bool = False
    inforom: tuple[str, ...] = ()  # bus ids with a corrupted infoROM

    @property
    def driver_unreachable(self) -> bool:
        """Every other nvidia-smi call would print the same: asking again is pointless."""
        return self.nvml_init is not None or self.not_loaded or self.no_devices


def messages(text: str) -> Messages:
    lines = text.splitlines()
    init = next((m.group(1) for m in map(_NVML_INIT.search, lines) if m), None)
    library = next((m.group(1) for m in map(_LIBRARY.search, lines) if m), None)
    return Messages(nvml_init=init, library_version=library,
                    not_loaded=any(_NOT_LOADED.search(line) for line in lines),
                    no_devices=any(_NO_DEVICES.match(line) for line in lines),
                    inforom=tuple(dict.fromkeys(m.group(1) for m in map(_INFOROM.search, lines) if m)))


# --------------------------------------------------------------------------- --query-gpu CSV


@dataclass(frozen=True)
class Query:
    """The rows of a --query-gpu answer: one GPU each; lines that are no row are set aside."""

    driver: str | None
    gpus: tuple[Gpu, ...]
    skipped: tuple[str, ...] = ()  # why each non-row line was not read


def query_fields(command: str) -> tuple[str, ...]:
    """The fields a `--query-gpu=a,b,c` command line asks for, under nvidia-smi's own names."""
    match = re.search(r"--query-gpu=(\S+)", command)
    return tuple(FIELD_ALIASES.get(f, f) for f in match.group(1).split(",")) if match else ()


def _value(text: str) -> str:
    """A CSV value without the unit a header-mode answer adds ("16280 MiB" -> "16280")."""
    return re.sub(r"\s+(?:MiB|%|W|MHz)$", "", text.strip())


def parse_query(stdout: str, fields: Sequence[str], lookup: Lookup) -> Query:
    """Every line with the right number of fields is a GPU; a header line names the fields."""
    fields = tuple(FIELD_ALIASES.get(f, f) for f in fields)
    lines = [line for line in stdout.splitlines() if line.strip()]
    if lines and _is_header(lines[0]):
        fields = tuple(FIELD_ALIASES.get(f, f) for f in (re.sub(r"\s*\[.*\]$", "", p.strip())
                                                         for p in lines[0].split(",")))
        lines = lines[1:]
    driver = None
    gpus: list[Gpu] = []
    skipped = []
    for number, line in enumerate(lines, 1):
        parts = [_value(part) for part in line.split(",")]
        if len(parts) != len(fields):
            skipped.append(f"nvidia-smi line {number} has {len(parts)} fields, expected {len(fields)} "
                           f"({','.join(fields)}): {short(line)}")
            continue
        row = dict(zip(fields, parts))
        version = row.get("driver_version")
        if version is not None and DRIVER_VERSION.fullmatch(version):
            if driver is not None and version != driver:
                raise Failed(f"nvidia-smi line {number}: driver {version} differs from {driver} on line 1")
            driver = version
        gpus.append(_query_gpu(row, len(gpus), number, lookup))
    return Query(driver, tuple(gpus), tuple(skipped))


def _is_header(line: str) -> bool:
    names = [re.sub(r"\s*\[.*\]$", "", p.strip()) for p in line.split(",")]
    return bool(names) and all(re.fullmatch(r"[a-z_]+(\.[a-z_]+)*", n) for n in names) and \
        any(n in ("name", "index", "driver_version", "memory.total", "uuid", "compute_cap") for n in names)


def _query_gpu(row: dict[str, str], position: int, number: int, lookup: Lookup) -> Gpu:
    """One row as a GPU; a field that is broken or malformed makes the GPU unusable, not the row."""
    where = f"nvidia-smi line {number}"
    problems = []
    index = row.get("index", "")
    position = int(index) if index.isascii() and index.isdigit() else position
    version = row.get("driver_version")
    if version is not None and version not in UNAVAILABLE and not DRIVER_VERSION.fullmatch(version):
        problems.append(f"{where} gave a malformed driver version {short(version)}")
    name = _checked(row.get("name"), lambda v: check_name(v, where), problems, "name") or ""
    cc = row.get("compute_cap")
    if cc is None or cc in UNAVAILABLE:
        cc = lookup.cc_for_name(name) if name else None
    elif cc in BROKEN or not COMPUTE_CAPABILITY.fullmatch(cc):
        problems.append(f"{where} gave a malformed compute capability {short(cc)}")
        cc = lookup.cc_for_name(name) if name else None
    memory = _checked(row.get("memory.total"), _mib(where), problems, "memory.total")
    uuid = _checked(row.get("uuid"), lambda v: check_uuid(v, where), problems, "uuid")
    return Gpu(index=position, name=name, compute_capability=cc, memory_mib=memory, uuid=uuid,
               healthy=not problems, problem="; ".join(problems) or None)


def _checked(value: str | None, check: Callable[[str], Any], problems: list[str], what: str) -> Any:
    if value is None or value in UNAVAILABLE:
        return None
    if value in BROKEN:
        problems.append(f"nvidia-smi shows {what} as {value}")
        return None
    try:
        return check(value)
    except Failed as exc:
        problems.append(str(exc))
        return None


def _mib(where: str) -> Callable[[str], int]:
    def check(value: str) -> int:
        if value.isascii() and value.isdigit():
            return int(value)
        raise Failed(f"{where} gave memory.total {short(value)}, not a whole number of MiB")
    return check


# --------------------------------------------------------------------------- the plain table


@dataclass(frozen=True)
class Table:
    """The plain `nvidia-smi` output: its banner and a GPU per block."""

    driver: str | None = None
    cuda: str | None = None  # None where the banner says ERR!, N/A or nothing
    cuda_shown: str | None = None  # what the banner said in the CUDA field
    gpus: tuple[Gpu, ...] = ()
    mig_devices: tuple[MigDevice, ...] = ()


def parse_table(text: str, lookup: Lookup) -> Table:
    """The banner's driver and CUDA, and each GPU block; the MIG and Processes boxes are not GPUs."""
    driver_match = _DRIVER_FIELD.search(text)
    driver = driver_match.group(1) if driver_match and DRIVER_VERSION.fullmatch(driver_match.group(1)) else None
    cuda_match = _CUDA_FIELD.search(text)
    shown = cuda_match.group(1) if cuda_match else None
    cuda = shown if shown and _CUDA.fullmatch(shown) else None
    blocks: list[dict[str, Any]] = []
    mig_devices = []
    box = "gpus"
    for line in text.splitlines():
        if _MIG_BOX.match(line):
            box = "mig"
            continue
        if _PROCESSES.match(line):
            box = "processes"
            continue
        if box == "mig":
            found = _MIG_ROW.match(line)
            if found:
                gpu, _gi, _ci, dev, total = found.groups()
                mig_devices.append(MigDevice(gpu=int(gpu), index=int(dev), memory_mib=int(total)))
            continue
        if box != "gpus":
            continue
        row = _ROW.match(line)
        if row:
            blocks.append({**row.groupdict(), "lines": [line]})
        elif blocks and _BORDER.match(line):
            blocks[-1]["closed"] = True
        elif blocks and not blocks[-1].get("closed") and line.strip().startswith("|") and len(blocks[-1]["lines"]) < 3:
            blocks[-1]["lines"].append(line)
    gpus = tuple(_table_gpu(block, lookup) for block in blocks)
    return Table(driver, cuda, shown, gpus, tuple(mig_devices))


def _table_gpu(block: dict[str, Any], lookup: Lookup) -> Gpu:
    index = int(block["index"])
    name = block["name"].strip()
    text = "\n".join(block["lines"])
    errors = text.count("ERR!")
    broken = name == "ERR!" or errors >= 3
    memory_match = _MEMORY.search("\n".join(block["lines"][1:2]))
    memory = int(memory_match.group(2)) if memory_match else None
    mig = block["ecc"] == "On" or bool(re.search(r"\|\s*Enabled\s*\|\s*$", "\n".join(block["lines"][2:3])))
    if broken:
        name = "" if name == "ERR!" else name
        problem = (f"nvidia-smi shows ERR! for GPU {index} ({block['bus']}): the GPU does not answer "
                   "(reset it with `nvidia-smi -r -i N` or reboot; look for Xid errors in `dmesg`)")
    else:
        problem = None
    truncated = name.endswith("...")
    cc = None if truncated or not name else lookup.cc_for_name(name)
    return Gpu(index=index, name=name, compute_capability=cc, memory_mib=memory, healthy=not broken,
               problem=problem, mig=mig)


# --------------------------------------------------------------------------- nvidia-smi -L


@dataclass(frozen=True)
class Listing:
    gpus: tuple[Gpu, ...] = ()
    mig_devices: tuple[MigDevice, ...] = ()


def parse_list(text: str, lookup: Lookup) -> Listing:
    """`GPU n: NAME (UUID: ...)` lines and their indented MIG lines (the GPUs that fail to
    answer are `failed_gpus`). An NVML failure printed after GPUs were listed means access was
    lost since (the log of a pod looping on `nvidia-smi -L`)."""
    gpus: dict[int, Gpu] = {}
    migs = []
    lost_after: str | None = None
    for line in text.splitlines():
        mig = _LIST_MIG.match(line)
        if mig and gpus:
            uuid = mig.group(3) if UUID.fullmatch(mig.group(3)) else None
            migs.append(MigDevice(gpu=list(gpus)[-1], index=int(mig.group(2)), profile=mig.group(1), uuid=uuid))
            continue
        init = _NVML_INIT.search(line)
        if init and gpus:
            lost_after = init.group(1)
        for found in _LIST_GPU.finditer(line):
            name = found.group(2).strip()
            uuid = found.group(3) if UUID.fullmatch(found.group(3)) else None
            gpus.setdefault(int(found.group(1)), Gpu(index=int(found.group(1)), name=name,
                                                     compute_capability=lookup.cc_for_name(name), uuid=uuid))
    with_mig = {m.gpu for m in migs}
    listed = [replace(g, mig=g.index in with_mig) for g in gpus.values()]
    if lost_after is not None:
        listed = [replace(g, healthy=False, problem=f"NVML stopped answering: {lost_after}") for g in listed]
    return Listing(tuple(sorted(listed, key=lambda g: g.index)), tuple(migs))


def failed_gpus(text: str, taken: Iterable[int] = ()) -> tuple[Gpu, ...]:
    """The GPUs an output reports as failing ("Unable to determine the device handle for GPU
    0000:18:00.0: Unknown Error"), once per bus id. Where the line names no index, the GPU
    takes the lowest index that no listed GPU has."""
    used = set(taken)
    failed: dict[str, Gpu] = {}
    for found in filter(None, map(_HANDLE.search, text.splitlines())):
        number, bus, reason = found.groups()
        if bus.lower() in failed:
            continue
        index = int(number) if number else next(i for i in range(len(used) + len(failed) + 1) if i not in used)
        used.add(index)
        lowered = reason.lower()
        advice = " (reboot the system to recover it)" if "lost" in lowered and "reboot" not in lowered else ""
        failed[bus.lower()] = Gpu(index=index, name="", compute_capability=None, healthy=False,
                                  problem=f"nvidia-smi cannot reach GPU {bus}: {reason}{advice}")
    return tuple(failed.values())


# --------------------------------------------------------------------------- putting them together


def combine(primary: Sequence[Gpu], *others: Sequence[Gpu]) -> tuple[Gpu, ...]:
    """GPUs by index: the first source's answer, with what it lacks filled in from the others
    (the CSV has full names; the table knows ERR! rows, memory and MIG mode)."""
    merged: dict[int, Gpu] = {g.index: g for g in primary}
    for source in others:
        for gpu in source:
            have = merged.get(gpu.index)
            if have is None:
                merged[gpu.index] = gpu
                continue
            merged[gpu.index] = replace(
                have,
                name=have.name or gpu.name,
                compute_capability=have.compute_capability or gpu.compute_capability,
                memory_mib=have.memory_mib if have.memory_mib is not None else gpu.memory_mib,
                uuid=have.uuid or gpu.uuid,
                healthy=have.healthy and gpu.healthy,
                problem=have.problem or gpu.problem,
                mig=have.mig or gpu.mig)
    return tuple(merged[i] for i in sorted(merged))


