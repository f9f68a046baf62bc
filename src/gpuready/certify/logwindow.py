"""A log of any size, read in bounded memory and time: the lines that matter, not the file.

A training log can be gigabytes. What the diagnosis needs is its start (versions, the first
messages), the lines around every mark of a failure signature or of an error (the first
`MAX_REGIONS` of them, a few lines before and many after, so a multi-line message stays whole),
and its end (where the run stopped). The file is streamed in chunks and scanned with RE2 (a DFA,
hundreds of MB/s, on every CPU); only the kept regions are read back. A small file is read
whole. bench/bench_doctor.py measures a 2 GB log.
"""

from __future__ import annotations

import os
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

HEAD_BYTES = 32 * 1024
TAIL_BYTES = 256 * 1024
CHUNK_BYTES = 16 * 1024 * 1024
OVERLAP_BYTES = 64 * 1024  # scanned again with the next chunk: a message cut by a chunk boundary
MAX_REGIONS = 200
MAX_MATCHES = 50 * MAX_REGIONS  # per chunk: more than the regions can hold
BEFORE_LINES, AFTER_LINES = 5, 40
REGION_REACH = 32 * 1024  # at most this far before and after a mark (a line without an end)
WHOLE_BYTES = 2 * 1024 * 1024  # a file this small is read whole


def _matcher(patterns: Iterable[str]) -> Any:
    """One scanner for every pattern: RE2 where google-re2 is installed, else Python's re (slow)."""
    union = "|".join(f"(?:{p})" for p in patterns).encode()
    try:
        import re2

        options = re2.Options()
        options.max_mem = 256 * 1024 * 1024
        return re2.compile(b"(?im)" + union, options)
    except ImportError:  # pragma: no cover - google-re2 is a dependency
        return re.compile(union.replace(rb"\z", rb"\Z"), re.IGNORECASE | re.MULTILINE)


def read_for_diagnosis(path: Path) -> str:
    """The window of a log that the failure signatures need (their patterns are the marks)."""
    from ..model.signatures import load_signatures

    return read_window(path, load_signatures().scan_patterns())


def read_window(path: Path, patterns: Iterable[str]) -> str:
    """The head, the regions around the first marks, and the tail of the file, in file order;
    a line "[... N bytes of the log not shown ...]" stands for each gap. Raises OSError."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= WHOLE_BYTES:
            return handle.read().decode("utf-8", errors="replace")
        marks = _marks(handle, size, _matcher(patterns))
        spans = [_head(handle, size), *(_region(handle, size, mark) for mark in marks), _tail(handle, size)]
        return _join(handle, _merged(spans))


def _marks(handle: Any, size: int, matcher: Any) -> list[int]:
    """Offsets of the first marks, one per region: a mark inside the last region's reach is
    part of it. Chunks are scanned on every CPU (RE2 releases the GIL), a few at a time, in
    file order; reading stops once MAX_REGIONS are found (the tail is read apart)."""
    workers = max(1, min(4, os.cpu_count() or 1))
    marks: list[int] = []
    covered = -1
    offset = 0
    carry = b""
    pending: deque[tuple[int, bytes, Future[list[tuple[int, int]]]]] = deque()
    handle.seek(0)
    with ThreadPoolExecutor(workers) as pool:
        while True:
            while len(pending) <= workers and offset < size:
                chunk = handle.read(CHUNK_BYTES)
                if not chunk:
                    size = offset
                    break
                data = carry + chunk
                pending.append((offset - len(carry), data, pool.submit(_scan, matcher, data)))
                offset += len(chunk)
                carry = data[-OVERLAP_BYTES:]
                cut = carry.find(b"\n")
                carry = carry[cut + 1:] if cut >= 0 else carry
            if not pending:
                return marks
            base, data, scanned = pending.popleft()
            for start, end in scanned.result():
                if base + start <= covered:
                    continue
                marks.append(base + start)
                covered = base + _after(data, end, AFTER_LINES)
                if len(marks) >= MAX_REGIONS:
                    for _, _, later in pending:
                        later.cancel()
                    return marks


def _scan(matcher: Any, data: bytes) -> list[tuple[int, int]]:
    found = []
    for match in matcher.finditer(data):
        found.append((match.start(), match.end()))
        if len(found) >= MAX_MATCHES:  # a chunk of nothing but errors: its first regions suffice
            break
    return found


def _after(data: bytes, end: int, lines: int) -> int:
    """The offset in `data` after `lines` more line ends (or REGION_REACH, or the data's end)."""
    limit = min(len(data), end + REGION_REACH)
    position = end
    for _ in range(lines + 1):
        found = data.find(b"\n", position, limit)
        if found < 0:
            return limit
        position = found + 1
    return position


def _region(handle: Any, size: int, mark: int) -> tuple[int, int]:
    """The mark's line with BEFORE_LINES lines before and AFTER_LINES after, within REGION_REACH."""
    start = max(0, mark - REGION_REACH)
    handle.seek(start)
    data = handle.read(mark - start + 2 * REGION_REACH)
    local = begin = mark - start
    for _ in range(BEFORE_LINES + 1):  # back to the start of the mark's line, then further lines
        found = data.rfind(b"\n", 0, begin)
        if found < 0:
            begin = 0
            break
        begin = found
    else:
        begin += 1
    return start + begin, min(size, start + _after(data, local, AFTER_LINES))


def _head(handle: Any, size: int) -> tuple[int, int]:
    handle.seek(0)
    data = handle.read(HEAD_BYTES)
    cut = data.rfind(b"\n")
    return 0, (cut + 1 if cut >= 0 else len(data))


def _tail(handle: Any, size: int) -> tuple[int, int]:
    start = max(0, size - TAIL_BYTES)
    handle.seek(start)
    data = handle.read(TAIL_BYTES)
    cut = data.find(b"\n") if start else -1
    return (start + cut + 1 if cut >= 0 else start), size


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        elif end > start:
            out.append((start, end))
    return out


def _join(handle: Any, spans: list[tuple[int, int]]) -> str:
    parts = []
    position = 0
    for start, end in spans:
        if start > position:
            parts.append(f"[... {start - position} bytes of the log not shown ...]\n")
        handle.seek(start)
        text = handle.read(end - start).decode("utf-8", errors="replace")
        parts.append(text if text.endswith("\n") or end == spans[-1][1] else text + "\n")
        position = end
    return "".join(parts)
