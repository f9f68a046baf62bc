"""A local package index of tiny generated wheels with TensorFlow's real names and versions.

The wheels hold no code, only metadata (names, versions, tags, Requires-Dist with the
real and-cuda extras), and are built byte-for-byte the same every time, so uv resolves
and hashes them for real and gives the same lock on every run. The index is a PEP 503
"simple" tree of static files, with each file's upload time as PyPI gives it (uv's cut-off
reads it): uv reads it as a file:// URL, and `serve()` puts it on
127.0.0.1 for conda-lock's pip solver (Poetry), which needs HTTP.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import http.server
import io
import re
import threading
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator

_EPOCH = (1980, 1, 1, 0, 0, 0)
CP = ("cp310", "cp311", "cp312", "cp313")
ML2014 = "manylinux2014_x86_64"
ML227 = "manylinux_2_27_x86_64.manylinux_2_28_x86_64"

CU12_PINS = {  # the cu12.5 pin set, and what TensorFlow 2.21's and-cuda extra asks
    "nvidia-cublas-cu12": ("12.5.3.2", "<13.0,>=12.5.3.2"),
    "nvidia-cuda-cupti-cu12": ("12.5.82", "<13.0,>=12.5.82"),
    "nvidia-cuda-nvcc-cu12": ("12.5.82", "<13.0,>=12.5.82"),
    "nvidia-cuda-nvrtc-cu12": ("12.5.82", "<13.0,>=12.5.82"),
    "nvidia-cuda-runtime-cu12": ("12.5.82", "<13.0,>=12.5.82"),
    "nvidia-cudnn-cu12": ("9.3.0.75", "<10.0,>=9.3.0.75"),
    "nvidia-cufft-cu12": ("11.2.3.61", "<12.0,>=11.2.3.61"),
    "nvidia-curand-cu12": ("10.3.6.82", "<11.0,>=10.3.6.82"),
    "nvidia-cusolver-cu12": ("11.6.3.83", "<12.0,>=11.6.3.83"),
    "nvidia-cusparse-cu12": ("12.5.1.3", "<13.0,>=12.5.1.3"),
    "nvidia-nccl-cu12": ("2.27.7", "<3.0,>=2.27.7"),
    "nvidia-nvjitlink-cu12": ("12.5.82", "<13.0,>=12.5.82"),
}
# Newer releases the extra's ranges would pick without the pins (CUDA 12.9, cuDNN 9.10).
CU12_NEWER = {
    "nvidia-cublas-cu12": "12.9.1.4",
    "nvidia-cudnn-cu12": "9.10.2.21",
    "nvidia-nccl-cu12": "2.28.3",
}
# The pins known issues put in place of the tested set's (matrix/known-issues.toml).
KNOWN_ISSUE_PINS = {
    "nvidia-cudnn-cu12": "9.24.0.43",  # tf221-cudnn-autotuner
}
CU11_PINS = {
    "nvidia-cublas-cu11": "11.11.3.6",
    "nvidia-cuda-cupti-cu11": "11.8.87",
    "nvidia-cuda-nvcc-cu11": "11.8.89",
    "nvidia-cuda-runtime-cu11": "11.8.89",
    "nvidia-cudnn-cu11": "8.7.0.84",
    "nvidia-cufft-cu11": "10.9.0.58",
    "nvidia-curand-cu11": "10.3.0.86",
    "nvidia-cusolver-cu11": "11.4.1.48",
    "nvidia-cusparse-cu11": "11.7.5.86",
    "nvidia-nccl-cu11": "2.16.5",
}


@dataclass(frozen=True)
class Dist:
    name: str
    version: str
    tags: tuple[str, ...]  # "py3-none-any", "cp311-cp311-manylinux_2_27_x86_64"
    requires: tuple[str, ...] = ()
    requires_python: str | None = None
    extras: tuple[str, ...] = ()
    uploaded: str | None = "2025-06-02T03:04:05Z"  # data-upload-time, which uv's --exclude-newer reads


def default_dists() -> list[Dist]:
    """The packages the real plans of the default set need, with their real names."""
    dists = [
        Dist("absl-py", "2.3.1", ("py3-none-any",)),
        Dist("numpy", "1.26.4", tuple(f"{c}-{c}-manylinux_2_17_x86_64.manylinux2014_x86_64"
                                       for c in CP[:3]), requires_python=">=3.9"),
        Dist("numpy", "2.3.4", tuple(f"{c}-{c}-{ML227}" for c in CP), requires_python=">=3.10"),
        Dist("keras", "2.14.0", ("py3-none-any",), requires_python=">=3.9"),
        Dist("keras", "3.12.0", ("py3-none-any",), ("absl-py", "numpy"), ">=3.10"),
        Dist("tensorrt", "8.5.3.1", tuple(f"{c}-none-manylinux_2_17_x86_64" for c in ("cp38", "cp39", "cp310"))),
    ]
    for name, (version, _) in CU12_PINS.items():
        dists.append(Dist(name, version, (f"py3-none-{ML2014}",)))
    for name, version in CU12_NEWER.items():
        dists.append(Dist(name, version, (f"py3-none-{ML2014}",)))
    for name, version in {**CU11_PINS, **KNOWN_ISSUE_PINS}.items():
        dists.append(Dist(name, version, (f"py3-none-{ML2014}",)))
    and_cuda_12 = tuple(f'{n}{spec}; extra == "and-cuda"' for n, (_, spec) in CU12_PINS.items())
    and_cuda_11 = tuple(f"{n}=={v}; extra == 'and-cuda'" for n, v in CU11_PINS.items()) + (
        "tensorrt==8.5.3.1; extra == 'and-cuda'",)
    common_21 = ("absl-py>=1.0.0", "keras>=3.10.0", "numpy>=1.26.0")
    dists += [
        Dist("tensorflow", "2.21.0", tuple(f"{c}-{c}-manylinux_2_27_x86_64" for c in CP),
             common_21 + and_cuda_12, ">=3.10", ("and-cuda",)),
        Dist("tensorflow-cpu", "2.21.0", tuple(f"{c}-{c}-manylinux_2_27_x86_64" for c in CP),
             common_21, ">=3.10"),
        Dist("tensorflow", "2.14.1", tuple(f"{c}-{c}-manylinux_2_17_x86_64.manylinux2014_x86_64"
                                           for c in ("cp39", "cp310", "cp311")),
             ("absl-py>=1.0.0", "keras<2.15,>=2.14.0", "numpy<2.0.0,>=1.23.5") + and_cuda_11,
             ">=3.9", ("and-cuda",)),
    ]
    return dists


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _file_name(dist: Dist, tag: str) -> str:
    return f"{re.sub(r'[-_.]+', '_', dist.name)}-{dist.version}-{tag}.whl"


def _metadata(dist: Dist) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {dist.name}", f"Version: {dist.version}",
             "Summary: gpuready test double (no code)"]
    if dist.requires_python:
        lines.append(f"Requires-Python: {dist.requires_python}")
    lines += [f"Provides-Extra: {e}" for e in dist.extras]
    lines += [f"Requires-Dist: {r}" for r in dist.requires]
    return "\n".join(lines) + "\n\n"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(dist: Dist, tag: str) -> tuple[str, bytes]:
    """One wheel, the same bytes every time (fixed timestamps and order)."""
    dist_info = f"{re.sub(r'[-_.]+', '_', dist.name)}-{dist.version}.dist-info"
    package = re.sub(r"[-.]+", "_", dist.name).lower()
    members = [
        (f"{package}/__init__.py", f"__version__ = {dist.version!r}\n".encode()),
        (f"{dist_info}/METADATA", _metadata(dist).encode()),
        (f"{dist_info}/WHEEL", (f"Wheel-Version: 1.0\nGenerator: gpuready-tests\n"
                                f"Root-Is-Purelib: false\nTag: {tag}\n\n").encode()),
    ]
    record = "\n".join(_record_line(p, d) for p, d in members) + f"\n{dist_info}/RECORD,,\n"
    members.append((f"{dist_info}/RECORD", record.encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in members:
            info = zipfile.ZipInfo(path, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return _file_name(dist, tag), buffer.getvalue()


def build_index(root: Path, dists: list[Dist] | None = None) -> Path:
    """Write `root/files/*.whl` and a PEP 503 tree under `root/simple/`; return the latter."""
    dists = default_dists() if dists is None else dists
    files, simple = root / "files", root / "simple"
    files.mkdir(parents=True, exist_ok=True)
    links: dict[str, list[str]] = {}
    for dist in dists:
        for tag in dist.tags:
            name, data = build_wheel(dist, tag)
            (files / name).write_bytes(data)
            sha = hashlib.sha256(data).hexdigest()
            rp = (f' data-requires-python="{html.escape(dist.requires_python)}"'
                  if dist.requires_python else "")
            up = f' data-upload-time="{dist.uploaded}"' if dist.uploaded else ""
            links.setdefault(_normalize(dist.name), []).append(
                f'<a href="../../files/{name}#sha256={sha}"{rp}{up}>{name}</a><br/>')
    for project, anchors in sorted(links.items()):
        (simple / project).mkdir(parents=True, exist_ok=True)
        (simple / project / "index.html").write_text(
            "<!DOCTYPE html>\n<html><body>\n" + "\n".join(anchors) + "\n</body></html>\n")
    (simple / "index.html").write_text(
        "<!DOCTYPE html>\n<html><body>\n"
        + "\n".join(f'<a href="{p}/">{p}</a><br/>' for p in sorted(links))
        + "\n</body></html>\n")
    return simple


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve a directory on 127.0.0.1 (a free port) for the duration; yield its base URL."""
    handler = partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a hung index)."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/simple"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        sock.close()


def closed_port_url() -> str:
    """An index URL on 127.0.0.1 where nothing listens (connection refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/simple"
