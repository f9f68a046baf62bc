"""Find CUDA fat binaries in the bytes of an ELF shared library.

Pure functions: the caller hands in the bytes (``bytes``, ``memoryview`` or an
``mmap``) and, for the section table, a binary file object; nothing here opens a
path, starts a process or touches the network.

A fat binary ("fatbin") starts with the header of CUDA's ``fatbinary_section.h``::

    u32 magic = 0xBA55ED50, u16 version, u16 header_size, u64 fat_size

and occupies ``header_size + fat_size`` bytes.  A TensorFlow library carries them in
three places, told apart by the section that holds them:

- ``.nv_fatbin``: the main kernels, one fatbin per CUDA translation unit, loaded
  at run time through the CUDA runtime's registration;
- ``__nv_relfatbin``: relocatable device code kept for a later device link; it is
  not loaded at run time;
- anywhere else (``.rodata`` in practice): fatbins embedded as constant data, e.g.
  TensorFlow's MLIR-generated kernels, loaded by hand with ``cuModuleLoadData``.

Inside a fatbin each entry has its own header (little-endian)::

    u16 kind (1 = PTX, 2 = ELF/SASS), u16 unknown, u32 header_size, u64 payload_size,
    u32 compressed_size, u32 unknown, u16 minor, u16 major, u32 arch, ...

where ``major.minor`` is the PTX ISA version for PTX entries and ``arch`` is the
SM number (90 for sm_90 / compute_90).  :func:`entries` reads them; the payload is
not decompressed.  cuobjdump remains the tool that says what a fatbin holds;
:func:`entries` is a cross-check and a fallback that never guesses.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from typing import BinaryIO, Sequence, Union

from elftools.elf.elffile import ELFFile

Buffer = Union[bytes, bytearray, mmap.mmap]  # anything with find() and slicing

MAGIC = 0xBA55ED50
MAGIC_BYTES = struct.pack("<I", MAGIC)
HEADER = struct.Struct("<IHHQ")  # magic, version, header_size, fat_size
KNOWN_VERSIONS = frozenset({1})
MAX_HEADER_SIZE = 4096  # a real header is 16 bytes; anything far larger is a false hit

NV_FATBIN = ".nv_fatbin"
RELFATBIN = "__nv_relfatbin"

KIND_NV_FATBIN = "nv_fatbin"
KIND_EMBEDDED = "embedded"
KIND_RELFATBIN = "relfatbin"
KINDS = (KIND_NV_FATBIN, KIND_EMBEDDED, KIND_RELFATBIN)

ENTRY = struct.Struct("<HHIQIIHHI")  # kind, ?, header_size, payload_size, compressed, ?, minor, major, arch
ENTRY_PTX = 1
ENTRY_ELF = 2
ENTRY_KINDS = {ENTRY_PTX: "ptx", ENTRY_ELF: "elf"}
ENTRY_MIN_HEADER = 0x40


@dataclass(frozen=True)
class Section:
    """One ELF section that has bytes in the file."""

    name: str
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Header:
    version: int
    header_size: int
    fat_size: int

    @property
    def total(self) -> int:
        return self.header_size + self.fat_size


@dataclass(frozen=True)
class Fatbin:
    """A fatbin found in a file: where it lies and which kernel set it belongs to."""

    section: str
    kind: str  # one of KINDS
    offset: int  # file offset of the header
    size: int  # header_size + fat_size
    version: int
    header_size: int


@dataclass(frozen=True)
class Entry:
    """One entry of a fatbin, read from its header only."""

    kind: str  # "ptx", "elf" or "kind-N"
    arch: int  # SM number: 90 for sm_90 / compute_90
    ptx_version: tuple[int, int] | None  # PTX ISA (major, minor) for PTX entries
    offset: int  # offset of the entry header inside the fatbin
    payload_size: int


class NotAFatbin(ValueError):
    """The bytes do not hold a fatbin that can be read reliably."""


# --------------------------------------------------------------------------- ELF sections


def elf_sections(stream: BinaryIO) -> tuple[Section, ...]:
    """The sections of the ELF file in `stream` that have bytes in the file (not NOBITS)."""
    elf = ELFFile(stream)
    found = []
    for section in elf.iter_sections():
        if section["sh_type"] in ("SHT_NOBITS", "SHT_NULL") or section["sh_size"] == 0:
            continue
        found.append(Section(section.name, int(section["sh_offset"]), int(section["sh_size"])))
    return tuple(sorted(found, key=lambda s: s.offset))


def kind_of(section_name: str) -> str:
    if section_name == NV_FATBIN:
        return KIND_NV_FATBIN
    if section_name == RELFATBIN:
        return KIND_RELFATBIN
    return KIND_EMBEDDED


# --------------------------------------------------------------------------- fatbin headers


def parse_header(data: Buffer, offset: int, limit: int | None = None) -> Header | None:
    """The fatbin header at `offset`, or None when what is there cannot be one.

    The blob must end at or before `limit` (default: the end of `data`).
    """
    end = len(data) if limit is None else min(limit, len(data))
    if offset < 0 or offset + HEADER.size > end:
        return None
    magic, version, header_size, fat_size = HEADER.unpack(data[offset:offset + HEADER.size])
    if magic != MAGIC or version == 0:
        return None
    if not HEADER.size <= header_size <= MAX_HEADER_SIZE or fat_size == 0:
        return None
    if offset + header_size + fat_size > end:
        return None
    return Header(version, header_size, fat_size)


def scan(data: Buffer, sections: Sequence[Section]) -> list[Fatbin]:
    """Every fatbin whose header lies inside one of `sections`, and that fits in it.

    Each section is searched for the magic; a valid header makes a record and the
    search goes on after the blob's end, so a blob's own bytes are never re-read as
    further fatbins.  Hits that do not validate are skipped.
    """
    found: list[Fatbin] = []
    for section in sections:
        pos = section.offset
        end = min(section.end, len(data))
        while True:
            hit = data.find(MAGIC_BYTES, pos, end)
            if hit < 0:
                break
            header = parse_header(data, hit, end)
            if header is None:
                pos = hit + 1
                continue
            found.append(Fatbin(section.name, kind_of(section.name), hit, header.total,
                                header.version, header.header_size))
            pos = hit + header.total
    return found


def scan_elf(data: Buffer, stream: BinaryIO) -> list[Fatbin]:
    """:func:`scan` over all sections of the ELF file (`stream` and `data` hold the same bytes)."""
    return scan(data, elf_sections(stream))


# --------------------------------------------------------------------------- fatbin entries


def entries(blob: Buffer) -> list[Entry]:
    """The entries of one fatbin (`blob` starts with its header), or NotAFatbin.

    Only entry headers are read.  Anything that does not add up (an entry running
    past the blob, an entry header too short, bytes left over that are not zero
    padding) raises, so a result is never a guess.
    """
    header = parse_header(blob, 0)
    if header is None:
        raise NotAFatbin("no valid fatbin header at offset 0")
    if header.version not in KNOWN_VERSIONS:
        raise NotAFatbin(f"fatbin header version {header.version} is not one this reader knows")
    pos = header.header_size
    end = header.total
    found: list[Entry] = []
    while pos < end:
        if end - pos < ENTRY.size:
            if any(blob[pos:end]):
                raise NotAFatbin(f"{end - pos} trailing bytes at {pos} are not an entry")
            break
        kind, _, entry_header, payload, _, _, minor, major, arch = ENTRY.unpack(blob[pos:pos + ENTRY.size])
        if kind == 0 and entry_header == 0 and not any(blob[pos:end]):
            break  # zero padding to the end
        if entry_header < ENTRY_MIN_HEADER or pos + entry_header + payload > end:
            raise NotAFatbin(f"entry at {pos} (kind {kind}, header {entry_header}, payload {payload}) "
                             f"does not fit in the fatbin of {end} bytes")
        name = ENTRY_KINDS.get(kind, f"kind-{kind}")
        found.append(Entry(name, arch, (major, minor) if kind == ENTRY_PTX else None, pos, payload))
        pos += entry_header + payload
    if not found:
        raise NotAFatbin("the fatbin holds no entries")
    return found
