"""`matrix.refresh`: compare the matrix's TensorFlow releases with the package index.

The index is read through its JSON simple API (PEP 691): the files of `tensorflow`
and `tensorflow-cpu` give each release's CPython and platform tags and
Requires-Python. For a release the matrix lacks, the Linux x86_64 wheel gives the
`and-cuda` requirements (its core metadata: the PEP 658 file where the index
offers one, else the wheel's own METADATA) and the build facts
(`tensorflow/python/platform/build_info.py`: CUDA, cuDNN, SASS and PTX
architectures). Nothing is downloaded whole: a wheel is a zip, so HTTP range
requests read its central directory from the end, then the one member.

What cannot be read is never guessed: the release is written with a
`review = "..."` line saying what is missing, and the planner skips it until a
person has filled it in and removed the line.

Every response is cached on disk (the user cache directory); requests have a
bounded timeout and retries. When the index cannot be reached nothing is changed.
The matrix file is written atomically (a temporary file, then `os.replace`), and
only after the whole new matrix has passed the validator.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import re
import time
import zipfile
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urljoin, urlsplit

import platformdirs
import requests
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import matrix as matrix_mod
from .envfolder import write_atomic
from .errors import UsageError, WorkFailed
from .facts import PLATFORMS

DISTS = matrix_mod.DISTS  # ("tensorflow", "tensorflow-cpu")
BUILD_INFO = "tensorflow/python/platform/build_info.py"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
BLOCK = 64 * 1024  # range reads are aligned to blocks of this size and cached per block
MATRIX_FILE = "tensorflow.toml"
MEMBER_LIMIT = 4 * 1024 * 1024  # build_info.py and METADATA are a few kB; refuse to inflate more
ENV_PLATFORM = {  # the marker environment the and-cuda extra is read for (its GPU wheels)
    "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
    "os_name": "posix",
}


class IndexProblem(WorkFailed):
    """The index answered, but not with what refresh needs (exit 1)."""


class Offline(WorkFailed):
    """The index cannot be reached: nothing is changed (exit 1)."""


class _NotReadable(Exception):
    """A fact that this route cannot give (no range support, no such member, ...)."""


# --------------------------------------------------------------------------- the index


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    size: int | None
    requires_python: str | None
    yanked: bool
    sha256: str | None
    metadata_offered: bool  # PEP 658 / 714: `<url>.metadata` exists


def cache_root(configured: str | None = None) -> Path:
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_cache_dir("gpuready")) / "index"


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_cache(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


class IndexClient:
    """A small client for a PEP 691 index: project pages, PEP 658 metadata, range reads."""

    def __init__(self, url: str, *, cache_dir: Path, timeout: float = 30, retries: int = 3) -> None:
        self.url = check_index_url(url)
        self.cache_dir = cache_dir
        self.timeout = (min(10.0, float(timeout)), float(timeout))
        self.requests = 0  # network requests made (cache hits are not counted)
        self.session = requests.Session()
        retry = Retry(total=retries, connect=retries, read=retries, status=retries,
                      backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504),
                      allowed_methods=frozenset({"GET"}), raise_on_status=False,
                      respect_retry_after_header=True)
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "gpuready-matrix-refresh"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> IndexClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- HTTP with one clear error

    def _get(self, url: str, **kwargs: Any) -> requests.Response:
        self.requests += 1
        try:
            return self.session.get(url, timeout=self.timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Offline(f"cannot reach the package index at {_host(url)}: {_why(exc)}; "
                          "offline? nothing was changed") from None
        except requests.RequestException as exc:
            raise IndexProblem(f"request to {_host(url)} failed: {_why(exc)}; nothing was changed") from None

    # -- project pages (PEP 691), revalidated with ETag / Last-Modified

    def files(self, project: str) -> tuple[IndexFile, ...] | None:
        """The project's files, or None when the index has no such project."""
        url = urljoin(self.url, f"{canonicalize_name(project)}/")
        entry = self.cache_dir / "pages" / _key(url)
        cached: dict[str, Any] | None = None
        try:
            cached = json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cached = None
        headers = {"Accept": f"{SIMPLE_JSON}, application/json;q=0.5"}
        if cached and cached.get("etag"):
            headers["If-None-Match"] = cached["etag"]
        if cached and cached.get("last_modified"):
            headers["If-Modified-Since"] = cached["last_modified"]
        response = self._get(url, headers=headers)
        if response.status_code == 304 and cached:
            body = cached["body"]
        elif response.status_code == 404:
            return None
        elif response.status_code != 200:
            raise IndexProblem(f"the package index answered HTTP {response.status_code} for {url}; "
                               "nothing was changed")
        else:
            kind = response.headers.get("Content-Type", "").split(";")[0].strip()
            if kind not in (SIMPLE_JSON, "application/json"):
                raise IndexProblem(f"{url} did not answer with the JSON simple API (PEP 691) but with "
                                   f"{kind or 'no content type'}: is the index URL right?")
            try:
                body = response.json()
            except ValueError:
                raise IndexProblem(f"{url} answered with malformed JSON; nothing was changed") from None
            _write_cache(entry, json.dumps({
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
                "body": body,
            }).encode("utf-8"))
        return _parse_files(url, body)

    # -- PEP 658 core metadata

    def core_metadata(self, file: IndexFile) -> str:
        if not file.metadata_offered:
            raise _NotReadable("the index offers no separate metadata file")
        entry = self.cache_dir / "metadata" / _key(file.sha256 or file.url)
        try:
            return entry.read_text(encoding="utf-8")
        except OSError:
            pass
        response = self._get(file.url + ".metadata")
        if response.status_code != 200:
            raise _NotReadable(f"the metadata file answered HTTP {response.status_code}")
        text = response.content.decode("utf-8", errors="replace")
        _write_cache(entry, text.encode("utf-8"))
        return text

    # -- wheels, read in ranges

    def open_wheel(self, file: IndexFile) -> zipfile.ZipFile:
        reader = RangeReader(self, file)
        try:
            return zipfile.ZipFile(reader)
        except zipfile.BadZipFile as exc:
            raise _NotReadable(f"not a readable zip: {exc}") from None

    def fetch_range(self, file: IndexFile, start: int, end: int) -> bytes:
        """Bytes [start, end) of a file, or _NotReadable when the server ignores ranges."""
        response = self._get(file.url, headers={"Range": f"bytes={start}-{end - 1}",
                                                "Accept-Encoding": "identity"}, stream=True)
        try:
            if response.status_code == 200:
                raise _NotReadable("the server does not answer range requests (HTTP 200, not 206)")
            if response.status_code != 206:
                raise _NotReadable(f"a range request answered HTTP {response.status_code}")
            match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != start:
                raise _NotReadable("the server answered a range request with another range")
            try:
                data = response.content
            except requests.RequestException as exc:  # the connection broke mid-answer
                raise Offline(f"lost the package index at {_host(file.url)}: {_why(exc)}; "
                              "offline? nothing was changed") from None
        finally:
            response.close()
        if len(data) != end - start:
            raise _NotReadable(f"a range request returned {len(data)} bytes, not {end - start}")
        return data

    def size_of(self, file: IndexFile) -> int:
        if file.size is not None:
            return file.size
        response = self._get(file.url, headers={"Range": "bytes=0-0"}, stream=True)
        response.close()
        match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
        if response.status_code != 206 or not match:
            raise _NotReadable("the index gives no size and the server does not answer range requests")
        return int(match.group(1))


def _parse_files(url: str, body: Any) -> tuple[IndexFile, ...]:
    if not isinstance(body, dict) or not isinstance(body.get("files"), list):
        raise IndexProblem(f"{url}: the JSON has no 'files' list (not a PEP 691 project page)")
    files = []
    for item in body["files"]:
        if not isinstance(item, dict) or not isinstance(item.get("filename"), str) \
                or not isinstance(item.get("url"), str):
            raise IndexProblem(f"{url}: a file entry without filename or url: {item!r:.200}")
        metadata = item.get("core-metadata", item.get("data-dist-info-metadata", False))
        hashes = item.get("hashes") if isinstance(item.get("hashes"), dict) else {}
        size = item.get("size")
        files.append(IndexFile(
            filename=item["filename"],
            url=urljoin(url, item["url"]).split("#", 1)[0],
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            requires_python=item.get("requires-python") or None,
            yanked=bool(item.get("yanked")),
            sha256=hashes.get("sha256"),
            metadata_offered=bool(metadata),
        ))
    return tuple(files)


class RangeReader(io.RawIOBase):
    """A read-only, seekable view of a remote file, fetched in cached blocks on demand."""

    def __init__(self, client: IndexClient, file: IndexFile) -> None:
        super().__init__()
        self.client, self.file = client, file
        self.size = client.size_of(file)
        self.pos = 0
        self.blocks: dict[int, bytes] = {}
        self.dir = client.cache_dir / "ranges" / _key(file.sha256 or file.url)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), max(0, self.size - self.pos))
        if want == 0:
            return 0
        first, last = self.pos // BLOCK, (self.pos + want - 1) // BLOCK
        self._load(range(first, last + 1))
        data = b"".join(self.blocks[i] for i in range(first, last + 1))
        offset = self.pos - first * BLOCK
        chunk = data[offset:offset + want]
        buffer[:len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)

    def _block_len(self, index: int) -> int:
        return min(BLOCK, self.size - index * BLOCK)

    def _load(self, indexes: Iterable[int]) -> None:
        missing = []
        for index in indexes:
            if index in self.blocks:
                continue
            try:
                data = (self.dir / str(index)).read_bytes()
            except OSError:
                data = b""
            if len(data) == self._block_len(index):
                self.blocks[index] = data
            else:
                missing.append(index)
        runs: list[list[int]] = []
        for index in missing:
            if runs and runs[-1][-1] == index - 1:
                runs[-1].append(index)
            else:
                runs.append([index])
        for run in runs:
            start = run[0] * BLOCK
            end = run[-1] * BLOCK + self._block_len(run[-1])
            data = self.client.fetch_range(self.file, start, end)
            for index in run:
                piece = data[(index - run[0]) * BLOCK:(index - run[0]) * BLOCK + self._block_len(index)]
                self.blocks[index] = piece
                _write_cache(self.dir / str(index), piece)


def check_index_url(url: str) -> str:
    """An http(s) URL ending in '/', or UsageError."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--index: {url!r} is not an http(s) URL of a package index's simple API")
    return url if url.endswith("/") else url + "/"


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _why(exc: Exception) -> str:
    """The innermost reason of a requests error, in a few words."""
    text = str(exc)
    match = re.search(r"Failed to resolve '([^']+)'", text)
    if match:
        return f"the host name {match.group(1)} does not resolve"
    for pattern in (r"\[Errno -?\d+\] [^'\")(]+", r"Connection refused", r"timed out", r"Max retries exceeded"):
        match = re.search(pattern, text)
        if match:
            return match.group(0).strip()
    return type(exc).__name__


# --------------------------------------------------------------------------- facts from the index


@dataclass
class WheelGroup:
    """The wheels of one distribution, release and platform."""

    pythons: tuple[str, ...]
    glibc: str | None
    files: list[IndexFile]
    requires_python: str | None

    def newest_file(self) -> IndexFile:
        def python_of(file: IndexFile) -> tuple[int, int]:
            tags = parse_wheel_filename(file.filename)[3]
            cps = [_cpython(t.interpreter) for t in tags if _cpython(t.interpreter)]
            return max((_pyv(p) for p in cps), default=(0, 0))
        return max(self.files, key=lambda f: (python_of(f), f.filename))


def _pyv(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def _cpython(interpreter: str) -> str | None:
    match = re.fullmatch(r"cp(\d)(\d+)", interpreter)
    return f"{match.group(1)}.{match.group(2)}" if match else None


_LEGACY_MANYLINUX = {"manylinux1": "2.5", "manylinux2010": "2.12", "manylinux2014": "2.17"}


def platform_of(tag: str) -> tuple[str | None, str | None]:
    """A wheel platform tag -> (gpuready platform or None, glibc floor or None)."""
    match = re.fullmatch(r"(manylinux_(\d+)_(\d+)|manylinux1|manylinux2010|manylinux2014)_(\w+)", tag)
    if match:
        glibc = f"{match.group(2)}.{match.group(3)}" if match.group(2) else _LEGACY_MANYLINUX[match.group(1)]
        arch = match.group(4)
        return {"x86_64": "linux-64", "aarch64": "linux-aarch64"}.get(arch), glibc
    if re.fullmatch(r"macosx_\d+_\d+_arm64", tag):
        return "osx-arm64", None
    if tag == "win_amd64":
        return "win-64", None
    return None, None


def index_releases(files: Iterable[IndexFile]) -> dict[Version, dict[str, WheelGroup]]:
    """Final releases -> platform -> their wheels (yanked files and other platforms left out)."""
    found: dict[Version, dict[str, dict[str, Any]]] = {}
    for file in files:
        if file.yanked or not file.filename.endswith(".whl"):
            continue
        try:
            _, version, _, tags = parse_wheel_filename(file.filename)
        except InvalidWheelFilename:
            continue
        if version.is_prerelease or version.is_devrelease:
            continue
        try:
            allowed = SpecifierSet(file.requires_python) if file.requires_python else None
        except InvalidSpecifier:
            allowed = None
        floors: dict[str, list[str]] = {}  # this file's glibc floors by platform (it installs on the lowest)
        for tag in tags:
            python = _cpython(tag.interpreter)
            platform, glibc = platform_of(tag.platform)
            if python is None or platform is None:
                continue
            if allowed is not None and not allowed.contains(python, prereleases=True):
                continue
            group = found.setdefault(version, {}).setdefault(
                platform, {"pythons": set(), "glibc": set(), "files": [], "requires_python": set()})
            group["pythons"].add(python)
            if glibc:
                floors.setdefault(platform, []).append(glibc)
            if file not in group["files"]:
                group["files"].append(file)
            if file.requires_python:
                group["requires_python"].add(file.requires_python)
        for platform, values in floors.items():
            found[version][platform]["glibc"].add(min(values, key=Version))
    result: dict[Version, dict[str, WheelGroup]] = {}
    for version, platforms in found.items():
        result[version] = {}
        for platform in PLATFORMS:
            if platform not in platforms:
                continue
            group = platforms[platform]
            result[version][platform] = WheelGroup(
                pythons=tuple(sorted(group["pythons"], key=_pyv)),
                # The floor the release needs on this platform: the highest of its wheels'.
                glibc=max(group["glibc"], key=Version) if group["glibc"] else None,
                files=group["files"],
                requires_python=", ".join(sorted(group["requires_python"])) or None,
            )
    return result


# --------------------------------------------------------------------------- facts from a wheel


@dataclass(frozen=True)
class BuildFacts:
    is_cuda_build: bool
    cuda: str | None
    cudnn: str | None
    sass: tuple[str, ...]
    ptx: tuple[str, ...]


def parse_build_info(text: str) -> dict[str, Any]:
    """The `build_info` mapping of TensorFlow's build_info.py, read without running it."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise _NotReadable(f"{BUILD_INFO} does not parse: {exc.msg}") from None
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        if not any(isinstance(t, ast.Name) and t.id == "build_info" for t in node.targets):
            continue
        value = node.value
        if isinstance(value, ast.Call):  # collections.OrderedDict([...]) or dict(...)
            func = value.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name not in ("OrderedDict", "dict") or len(value.args) > 1:
                raise _NotReadable(f"{BUILD_INFO}: build_info is not literal data")
            if value.args:
                value = value.args[0]
            else:
                try:
                    return {k.arg: ast.literal_eval(k.value) for k in value.keywords if k.arg}
                except ValueError:
                    raise _NotReadable(f"{BUILD_INFO}: build_info is not literal data") from None
        try:
            return dict(ast.literal_eval(value))
        except (ValueError, TypeError):
            raise _NotReadable(f"{BUILD_INFO}: build_info is not literal data") from None
    raise _NotReadable(f"{BUILD_INFO} has no build_info assignment")


def build_facts(info: Mapping[str, Any]) -> BuildFacts:
    if not info.get("is_cuda_build"):
        return BuildFacts(False, None, None, (), ())
    cuda, cudnn = info.get("cuda_version"), info.get("cudnn_version")
    if not isinstance(cuda, str) or not re.fullmatch(r"\d+\.\d+(\.\d+)?", cuda):
        raise _NotReadable(f"build_info's cuda_version {cuda!r} is not a CUDA version")
    if not isinstance(cudnn, str) or not re.fullmatch(r"\d+(\.\d+)*", cudnn):
        raise _NotReadable(f"build_info's cudnn_version {cudnn!r} is not a cuDNN version")
    caps = info.get("cuda_compute_capabilities")
    if not isinstance(caps, (list, tuple)) or not caps:
        raise _NotReadable(f"build_info's cuda_compute_capabilities {caps!r} is not a list")
    sass, ptx = [], []
    for cap in caps:
        if isinstance(cap, str) and re.fullmatch(r"sm_\d{2,3}", cap):
            sass.append(cap)
        elif isinstance(cap, str) and re.fullmatch(r"compute_\d{2,3}", cap):
            ptx.append(cap)
        else:
            raise _NotReadable(f"build_info's compute capability {cap!r} is neither sm_XY nor compute_XY")
    return BuildFacts(True, cuda, cudnn, tuple(sass), tuple(ptx))


def read_build(client: IndexClient, file: IndexFile) -> BuildFacts:
    """The build facts of one wheel; _NotReadable when they cannot be read."""
    with client.open_wheel(file) as wheel:
        names = set(wheel.namelist())
        if BUILD_INFO not in names:
            if not any(n.startswith("tensorflow/") for n in names):
                return BuildFacts(False, None, None, (), ())  # a shim wheel that depends on another
            raise _NotReadable(f"{file.filename} has no {BUILD_INFO}")
        if wheel.getinfo(BUILD_INFO).file_size > MEMBER_LIMIT:
            raise _NotReadable(f"{file.filename}: {BUILD_INFO} is implausibly large")
        text = wheel.read(BUILD_INFO).decode("utf-8", errors="replace")
    return build_facts(parse_build_info(text))


def read_metadata(client: IndexClient, file: IndexFile) -> str:
    try:
        return client.core_metadata(file)
    except _NotReadable:
        pass
    with client.open_wheel(file) as wheel:
        names = [n for n in wheel.namelist()
                 if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
        if len(names) != 1:
            raise _NotReadable(f"{file.filename} has no single .dist-info/METADATA")
        if wheel.getinfo(names[0]).file_size > MEMBER_LIMIT:
            raise _NotReadable(f"{file.filename}: {names[0]} is implausibly large")
        return wheel.read(names[0]).decode("utf-8", errors="replace")


def and_cuda_requirements(metadata: str, python: str) -> tuple[Requirement, ...] | None:
    """The `and-cuda` extra's requirements, for Linux x86_64; None when there is no such extra."""
    headers = HeaderParser().parsestr(metadata)
    extras = {canonicalize_name(e) for e in headers.get_all("Provides-Extra") or []}
    found = []
    for text in headers.get_all("Requires-Dist") or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is None:
            continue
        env = {**ENV_PLATFORM, "python_version": python, "python_full_version": f"{python}.0"}
        if req.marker.evaluate({**env, "extra": "and-cuda"}) and not req.marker.evaluate({**env, "extra": ""}):
            req.marker = None
            found.append(req)
    if not found and "and-cuda" not in extras:
        return None
    return tuple(sorted(found, key=lambda r: canonicalize_name(r.name)))


# --------------------------------------------------------------------------- a new release


@dataclass
class NewRelease:
    version: Version
    wheels: dict[str, dict[str, WheelGroup]]  # dist -> platform -> wheels
    build: BuildFacts | None = None
    build_source: str | None = None
    gpu_platforms: list[str] = field(default_factory=list)
    and_cuda: str | None = None  # "none" | "exact" | "range"
    extra: tuple[str, ...] = ()
    pins: str | None = None
    pin_overrides: tuple[str, ...] = ()
    review: list[str] = field(default_factory=list)

    @property
    def cuda(self) -> str | None:
        return self.build.cuda if self.build and self.build.is_cuda_build else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensorflow": str(self.version),
            "cuda": self.cuda,
            "cudnn": self.build.cudnn if self.build else None,
            "sass": list(self.build.sass) if self.build else None,
            "ptx": list(self.build.ptx) if self.build else None,
            "gpu_platforms": self.gpu_platforms,
            "build_info_from": self.build_source,
            "and_cuda": self.and_cuda,
            "and_cuda_requirements": list(self.extra),
            "pins": self.pins,
            "pin_overrides": list(self.pin_overrides),
            "wheels": {dist: {plat: {"pythons": list(g.pythons), "glibc": g.glibc,
                                     "requires_python": g.requires_python}
                              for plat, g in plats.items()}
                       for dist, plats in self.wheels.items()},
            "review": "; ".join(self.review) or None,
        }

    def render(self) -> str:
        """The release as a TOML block in tensorflow.toml's format."""
        lines = [f"[releases.{_toml_str(str(self.version))}]"]
        if self.build_source:
            lines.insert(0, f"# Added by `invoke matrix.refresh`; build facts from {self.build_source}.")
        else:
            lines.insert(0, "# Added by `invoke matrix.refresh`.")
        if self.review:
            lines.append(f"review = {_toml_str('; '.join(self.review))}")
        build = self.build
        if build is not None and build.is_cuda_build:
            lines.append(f"cuda = {_toml_str(build.cuda or '')}")
            lines.append(f"cudnn = {_toml_str(build.cudnn or '')}")
            lines.append(f"sass = {_toml_list(build.sass)}")
            lines.append(f"ptx = {_toml_list(build.ptx)}")
        if build is not None:
            lines.append(f"gpu_platforms = {_toml_list(self.gpu_platforms)}")
        if self.pins is not None:
            lines.append(f"pins = {_toml_str(self.pins)}")
        if self.pin_overrides:
            lines.append(f"pin_overrides = {_toml_list(self.pin_overrides)}")
        if self.and_cuda is not None:
            lines.append(f"and_cuda = {_toml_str(self.and_cuda)}")
        for dist in DISTS:
            for platform, group in self.wheels.get(dist, {}).items():
                inline = f"pythons = {_toml_list(group.pythons)}"
                if group.glibc:
                    inline += f", glibc = {_toml_str(group.glibc)}"
                lines.append(f"wheels.{dist}.{platform} = {{ {inline} }}")
        return "\n".join(lines) + "\n"


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=True)  # a JSON string is a TOML basic string


def _toml_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_str(i) for i in items) + "]"


def _describe_new(client: IndexClient, version: Version, wheels: dict[str, dict[str, WheelGroup]],
                  matrix: matrix_mod.Matrix) -> NewRelease:
    new = NewRelease(version, wheels)
    groups = wheels.get("tensorflow", {})
    main = groups.get("linux-64")
    if main is None:
        new.review.append("no Linux x86_64 tensorflow wheel: build facts and the and-cuda extra "
                          "could not be read; fill cuda, cudnn, sass, ptx, gpu_platforms, pins, and_cuda")
        return new
    # Build facts, from each platform's tensorflow wheel.
    unknown = []
    for platform, group in groups.items():
        file = group.newest_file()
        try:
            facts = read_build(client, file)
        except _NotReadable as why:
            unknown.append(platform)
            if platform == "linux-64":
                new.review.append(f"build facts not read from {file.filename} ({why}): fill cuda, cudnn, "
                                  "sass, ptx from its build_info.py")
            continue
        if platform == "linux-64":
            new.build, new.build_source = facts, file.filename
        if facts.is_cuda_build:
            new.gpu_platforms.append(platform)
    if unknown:
        new.review.append(f"gpu_platforms: whether the {', '.join(unknown)} wheel is a CUDA build could "
                          "not be read; check its build_info.py")
    if new.build is not None and not new.build.is_cuda_build:
        new.review.append("the Linux x86_64 wheel is not a CUDA build (is_cuda_build False): decide how "
                          "the matrix should treat a CPU-only release")
    elif new.build is not None and new.cuda is not None:
        full = Version(new.cuda) if len(Version(new.cuda).release) == 3 else Version(f"{new.cuda}.0")
        if full not in matrix.cuda_releases:
            new.review.append(f"CUDA {new.cuda} has no row in cuda.toml: add its Table-3 drivers")
    # The and-cuda extra, from the same wheel's core metadata.
    python = main.pythons[-1]
    try:
        metadata = read_metadata(client, main.newest_file())
    except _NotReadable as why:
        new.review.append(f"the and-cuda extra could not be read ({why}): fill pins and and_cuda")
        return new
    extra = and_cuda_requirements(metadata, python)
    _derive_pins(new, extra, matrix)
    return new


def _derive_pins(new: NewRelease, extra: tuple[Requirement, ...] | None, matrix: matrix_mod.Matrix) -> None:
    """Name the pin set the and-cuda extra matches, from the facts alone; else ask for review."""
    if extra is None:
        new.and_cuda, new.pins = "none", ""
        new.review.append("no and-cuda extra: choose a CUDA wheel set (pins) by hand, or confirm none")
        return
    new.extra = tuple(str(r) for r in extra)
    trt = [r for r in extra if canonicalize_name(r.name).startswith("tensorrt")]
    if trt:
        new.review.append(f"the extra pins {', '.join(str(r) for r in trt)}: check on which Pythons it "
                          "resolves and set extra_unresolvable")
    reqs = {canonicalize_name(r.name): r for r in extra if r not in trt}
    exact = all(len(r.specifier) == 1 and next(iter(r.specifier)).operator == "==" for r in reqs.values())
    new.and_cuda = "exact" if exact else "range"
    build_cuda = Version(new.cuda) if new.cuda else None
    best: tuple[int, str, list[Requirement]] | None = None
    for name, pin_set in sorted(matrix.pin_sets.items()):
        pinned = {canonicalize_name(Requirement(p).name): Requirement(p) for p in pin_set.packages}
        if set(pinned) != set(reqs):
            continue
        if build_cuda is not None and Version(pin_set.cuda).release[:2] != build_cuda.release[:2]:
            continue
        outside = [reqs[n] for n in sorted(reqs)
                   if not reqs[n].specifier.contains(next(iter(pinned[n].specifier)).version, prereleases=True)]
        if best is None or len(outside) < best[0]:
            best = (len(outside), name, outside)
    if best is None:
        new.pins = ""
        new.review.append(f"no pin set in cuda-wheels.toml has the extra's packages for CUDA "
                          f"{new.cuda or '?'}: add one (the extra asks {', '.join(new.extra)})")
        return
    _, name, outside = best
    new.pins = name
    overrides = []
    for req in outside:
        pin = _lower_bound(req)
        if pin is None:
            new.review.append(f"{req}: the {name} set's version is outside this and no single version "
                              "follows from it; add a pin_overrides entry")
            continue
        overrides.append(f"{canonicalize_name(req.name)}=={pin}")
        if not exact:
            new.review.append(f"{req.name}: the {name} set's version is outside {req.specifier}; "
                              f"pinned to its lower bound {pin}: confirm it is the tested version")
    new.pin_overrides = tuple(overrides)


def _lower_bound(req: Requirement) -> str | None:
    for spec in req.specifier:
        if spec.operator in ("==", ">=") and "*" not in spec.version:
            return spec.version
    return None


# --------------------------------------------------------------------------- comparing


@dataclass
class Report:
    index: str
    matrix_file: str
    known: list[str]  # matrix releases, oldest first
    on_index: list[str]  # final releases in scope on the index, oldest first
    new: list[NewRelease]
    differences: list[str]
    ignored_prereleases: list[str]
    written: bool = False
    requests: int = 0
    seconds: float = 0.0
    before: dict[str, str | None] = field(default_factory=dict)  # headline() before and after
    after: dict[str, str | None] = field(default_factory=dict)

    @property
    def current(self) -> bool:
        return not self.new

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "matrix": self.matrix_file,
            "current": self.current,
            "known": self.known,
            "on_index": self.on_index,
            "new": [n.to_dict() for n in self.new],
            "differences": self.differences,
            "ignored_prereleases": self.ignored_prereleases,
            "written": self.written,
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "before": self.before,
            "after": self.after,
        }


def _py_text(pythons: Iterable[str]) -> str:
    ordered = sorted(pythons, key=_pyv)
    return f"{ordered[0]}–{ordered[-1]}" if len(ordered) > 1 else (ordered[0] if ordered else "none")


def _differences(version: Version, release: matrix_mod.Release,
                 on_index: dict[str, dict[str, WheelGroup]]) -> list[str]:
    out = []
    for dist in DISTS:
        have = release.wheels.get(dist, {})
        index = on_index.get(dist, {})
        for platform in PLATFORMS:
            mine, theirs = have.get(platform), index.get(platform)
            where = f"{version}: {dist} {platform}"
            if mine and not theirs:
                out.append(f"{where}: in the matrix (Pythons {_py_text(mine.pythons)}), not on the index")
            elif theirs and not mine:
                out.append(f"{where}: on the index (Pythons {_py_text(theirs.pythons)}), not in the matrix")
            elif mine and theirs:
                if tuple(mine.pythons) != theirs.pythons:
                    out.append(f"{where}: Pythons {_py_text(mine.pythons)} in the matrix, "
                               f"{', '.join(theirs.pythons)} on the index")
                if mine.glibc and theirs.glibc and mine.glibc != theirs.glibc:
                    out.append(f"{where}: glibc {mine.glibc} in the matrix, {theirs.glibc} on the index")
    return out


def compare(client: IndexClient, matrix: matrix_mod.Matrix, matrix_file: str) -> Report:
    """What the index knows that the matrix does not (nothing is written)."""
    start = time.monotonic()
    listings: dict[str, dict[Version, dict[str, WheelGroup]]] = {}
    prereleases: set[str] = set()
    for dist in DISTS:
        files = client.files(dist)
        if files is None:
            if dist == "tensorflow":
                raise IndexProblem(f"the package index at {client.url} has no project 'tensorflow' "
                                   "(is the URL the root of its simple API?); nothing was changed")
            files = ()
        listings[dist] = index_releases(files)
        if dist == "tensorflow":
            for file in files:
                try:
                    version = parse_wheel_filename(file.filename)[1]
                except InvalidWheelFilename:
                    continue
                if version.is_prerelease and not file.yanked:
                    prereleases.add(str(version))
    known = {r.version: r for r in matrix.releases}
    oldest = min(known) if known else Version("0")
    in_scope = sorted(v for v in listings["tensorflow"] if v >= oldest)
    newest_known = max(known) if known else oldest

    def wheels_of(version: Version) -> dict[str, dict[str, WheelGroup]]:
        return {d: listings[d][version] for d in DISTS if version in listings[d]}

    new = [_describe_new(client, v, wheels_of(v), matrix) for v in in_scope if v not in known]
    differences = []
    for version, release in sorted(known.items()):
        if version not in listings["tensorflow"]:
            differences.append(f"{version}: in the matrix, but the index has no (unyanked) tensorflow wheel")
            continue
        differences.extend(_differences(version, release, wheels_of(version)))
    ignored = sorted((p for p in prereleases if Version(p) > newest_known), key=Version)
    return Report(client.url, matrix_file, [str(v) for v in sorted(known)], [str(v) for v in in_scope],
                  new, differences, ignored, requests=client.requests, seconds=time.monotonic() - start)


# --------------------------------------------------------------------------- writing


def insert_releases(text: str, new: Iterable[NewRelease]) -> str:
    """tensorflow.toml's text with the new release blocks in version order (newest last).

    Existing lines, comments included, are kept byte for byte.
    """
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    header = re.compile(r'^\[releases\."([^"]+)"\]\s*(#.*)?$')
    for release in sorted(new, key=lambda r: r.version):
        at = len(lines)
        for i, line in enumerate(lines):
            match = header.match(line.strip())
            if match:
                try:
                    later = Version(match.group(1)) > release.version
                except InvalidVersion:
                    later = False
                if later:
                    at = i
                    while at > 0 and lines[at - 1].lstrip().startswith("#"):
                        at -= 1  # the comment lines just above a header belong to it
                    break
        block = release.render().splitlines(keepends=True)
        if at == len(lines):
            if lines and lines[-1].strip():
                block.insert(0, "\n")
        else:
            block.append("\n")
            if at > 0 and lines[at - 1].strip():
                block.insert(0, "\n")
        lines[at:at] = block
    return "".join(lines)


def write_matrix_file(path: Path, text: str) -> None:
    """Replace the file atomically: readers see the old text or the new, never half of it."""
    write_atomic(path, text.encode("utf-8"))


def _stale_temporaries(folder: Path) -> None:
    """Left-overs of a refresh killed between writing and renaming (never read by the loader)."""
    for stale in folder.glob(f".{MATRIX_FILE}.*.tmp"):
        try:
            if time.time() - stale.stat().st_mtime > 60:
                stale.unlink()
        except OSError:
            pass


def find_matrix_dir(configured: str | None, start: Path | None = None) -> Path | None:
    """The matrix folder to update: configured, $GPUREADY_MATRIX, or the checkout's matrix/."""
    if configured:
        return Path(configured).expanduser()
    env = matrix_mod.default_dir()
    if env is not None:
        return env
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "matrix" / MATRIX_FILE).is_file() and (folder / "pyproject.toml").is_file():
            return folder / "matrix"
    return None


def refresh(*, index_url: str, matrix_dir: Path | None, cache_dir: Path, timeout: float = 30,
            retries: int = 3, check: bool = False) -> Report:
    """Compare the matrix with the index; unless `check`, add the new releases to the matrix.

    `matrix_dir` None: the matrix shipped with gpuready, which can be checked, not written.
    """
    if matrix_dir is None and not check:
        raise UsageError("no matrix folder to update: run from the checkout or pass --matrix DIR")
    matrix = matrix_mod.load(matrix_dir)  # a malformed matrix stops here (exit 2), untouched
    label = str(matrix_dir / MATRIX_FILE) if matrix_dir else f"{matrix.source}/{MATRIX_FILE} (shipped)"
    with IndexClient(index_url, cache_dir=cache_dir, timeout=timeout, retries=retries) as client:
        report = compare(client, matrix, label)
        report.requests = client.requests
    report.before = report.after = headline(matrix)
    if check or not report.new:
        return report
    assert matrix_dir is not None
    path = matrix_dir / MATRIX_FILE
    try:
        before = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if matrix_mod.parse({n: before if n == MATRIX_FILE else (matrix_dir / n).read_text(encoding="utf-8")
                         for n in matrix_mod.FILES}, source=str(matrix_dir)) != matrix:
        raise WorkFailed(f"{path} changed while refresh ran; nothing was written, run it again")
    after = insert_releases(before, report.new)
    texts = {}
    for name in matrix_mod.FILES:
        file = matrix_dir / name
        texts[name] = after if name == MATRIX_FILE else file.read_text(encoding="utf-8")
    refreshed = matrix_mod.parse(texts, source=str(matrix_dir))  # it must validate before it is written
    _stale_temporaries(matrix_dir)
    write_matrix_file(path, after)
    report.written = True
    report.after = headline(refreshed)
    return report


# --------------------------------------------------------------------------- what moved


def headline(matrix: matrix_mod.Matrix) -> dict[str, str | None]:
    """The newest release the planner may choose, and what it asks of a host (Linux)."""
    release = next((r for r in matrix.releases if not r.review and r.gpu_platforms), None)
    if release is None:
        return {"tensorflow": None, "cuda": None, "cudnn": None, "driver_floor": None, "driver_ptx": None}
    pins = matrix.pins_for(release)
    return {
        "tensorflow": str(release.version),
        "cuda": release.cuda,
        "cudnn": pins.cudnn if pins else release.cudnn,
        "driver_floor": matrix.floor(release.cuda, windows=False),
        "driver_ptx": matrix.full_driver(release.cuda, windows=False),
    }


def summary_markdown(report: Report) -> str:
    """A pull request body: what moved, what is new, what needs a person."""
    before, after = report.before, report.after
    rows = [("TensorFlow (newest plannable)", "tensorflow"), ("CUDA (build)", "cuda"),
            ("cuDNN", "cudnn"), ("Linux driver floor (minor-version compatibility)", "driver_floor"),
            ("Linux driver for PTX JIT (the build's CUDA release)", "driver_ptx")]
    out = ["## Matrix refresh", "", "| | before | after |", "|---|---|---|"]
    for label, key in rows:
        old, now = before.get(key) or "–", after.get(key) or "–"
        out.append(f"| {label} | {old} | {now}{' (moved)' if old != now else ''} |")
    out.append("")
    if report.new:
        out.append(f"New on the index ({len(report.new)}):")
        for release in report.new:
            data = release.to_dict()
            wheel = release.wheels.get("tensorflow", {}).get("linux-64")
            line = (f"- **{data['tensorflow']}**: CUDA {data['cuda'] or '?'}, cuDNN {data['cudnn'] or '?'}, "
                    f"SASS {', '.join(data['sass'] or []) or '?'}, PTX {', '.join(data['ptx'] or []) or '?'}, "
                    f"pins {data['pins'] or '?'} ({data['and_cuda'] or '?'})"
                    + (f", Pythons {_py_text(wheel.pythons)}, glibc {wheel.glibc}" if wheel else ""))
            out.append(line)
            if release.review:
                out.append(f"  - needs review (the planner skips it until the `review` line is removed): "
                           f"{'; '.join(release.review)}")
    else:
        out.append("The matrix knows every final TensorFlow release on the index.")
    if report.differences:
        out += ["", "Differences between the matrix and the index (not changed automatically):"]
        out += [f"- {d}" for d in report.differences]
    return "\n".join(out) + "\n"
