"""Test doubles for the kernel measurement: a minimal ELF64 shared object holding given sections.

A real TensorFlow library is up to 1 GB; these tests wrap the small REAL fatbins cut from
TensorFlow 2.21.0 and 2.14.1 (tests/data/fatbin/, each with a sidecar saying where it came from) in a
tiny ELF file, so that the scanner and the real cuobjdump read them as they read the wheel. Tests
only: nothing here is part of the product.
"""
from __future__ import annotations

import struct
from typing import Sequence

SHT_PROGBITS, SHT_STRTAB, SHT_NOBITS = 1, 3, 8
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
SHDR = struct.Struct("<IIQQQQIIQQ")


def build(sections: Sequence[tuple[str, bytes]], nobits: Sequence[tuple[str, int]] = ()) -> tuple[bytes, dict[str, int]]:
    """ELF bytes holding `sections` (name, contents) in order; returns the bytes and each section's offset."""
    names = [name for name, _ in sections] + [name for name, _ in nobits] + [".shstrtab"]
    shstrtab = b"\0"
    name_at = {}
    for name in names:
        name_at[name] = len(shstrtab)
        shstrtab += name.encode() + b"\0"
    body = bytearray(b"\0" * EHDR.size)
    offsets = {}
    for name, data in list(sections) + [(".shstrtab", shstrtab)]:
        while len(body) % 16:
            body.append(0)
        offsets[name] = len(body)
        body += data
    while len(body) % 8:
        body.append(0)
    shoff = len(body)
    headers = [SHDR.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    for name, data in sections:
        headers.append(SHDR.pack(name_at[name], SHT_PROGBITS, 2, 0, offsets[name], len(data), 0, 0, 16, 0))
    for name, size in nobits:
        headers.append(SHDR.pack(name_at[name], SHT_NOBITS, 3, 0, offsets[".shstrtab"], size, 0, 0, 16, 0))
    headers.append(SHDR.pack(name_at[".shstrtab"], SHT_STRTAB, 0, 0, offsets[".shstrtab"], len(shstrtab), 0, 0, 1, 0))
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    ehdr = EHDR.pack(ident, 3, 62, 1, 0, 0, shoff, 0, EHDR.size, 0, 0, SHDR.size, len(headers), len(headers) - 1)
    body[:EHDR.size] = ehdr
    body += b"".join(headers)
    return bytes(body), offsets
