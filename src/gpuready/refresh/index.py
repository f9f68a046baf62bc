"""The package index, read through its JSON simple API (PEP 691), its PEP 658 metadata files,
and HTTP range reads of wheels (a wheel is a zip: its central directory is at the end).

Requests have a bounded timeout and retries (urllib3's Retry, honouring Retry-After). Project
pages and metadata files go through CacheControl's on-disk HTTP cache; wheel ranges are cached
as content-addressed blocks (a wheel's bytes never change under its sha256).
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urljoin, urlsplit

import platformdirs
import requests
from cachecontrol import CacheControlAdapter
from cachecontrol.caches.file_cache import FileCache
from packaging.utils import canonicalize_name

from ..errors import UsageError, WorkFailed
from ..download import Artifact, DownloadFailed, Unreachable, fetch, host_of, new_session, retry_policy, why
from ..files import WriteFailed, write_atomic

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
BLOCK = 64 * 1024  # range reads are aligned to blocks of this size and cached per block


class IndexProblem(WorkFailed):
    """The index answered, but not with what refresh needs (exit 1)."""


class Offline(WorkFailed):
    """The index cannot be reached: nothing is changed (exit 1)."""


class NotReadable(Exception):
    """A fact that this route cannot give (no range support, no such member, ...)."""


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
    try:
        write_atomic(path, data)
    except WriteFailed:
        pass  # a cache that cannot be written only costs a request next time


class IndexClient:
    """A small client for a PEP 691 index: project pages, PEP 658 metadata, range reads."""

    def __init__(self, url: str, *, cache_dir: Path, timeout: float = 30, retries: int = 3) -> None:
        self.url = check_index_url(url)
        self.cache_dir = cache_dir
        self.timeout = (min(10.0, float(timeout)), float(timeout))
        self.requests = 0  # network requests made (cache hits are not counted)
        # Project pages and metadata files are cached as HTTP says (CacheControl: ETag and
        # Last-Modified revalidation, max-age); wheel ranges are content-addressed blocks below.
        self.session = requests.Session()
        adapter = CacheControlAdapter(cache=FileCache(str(cache_dir / "http")), max_retries=retry_policy(retries))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "gpuready-matrix-refresh"
        # Whole wheels bypass the HTTP cache: CacheControl would store a second copy of every
        # (immutable, hundreds of MB) wheel beside the content-addressed one download() keeps.
        self.files_session = new_session(retries, pool=4, user_agent="gpuready-matrix-refresh")

    def close(self) -> None:
        self.session.close()
        self.files_session.close()

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
            raise Offline(f"cannot reach the package index at {host_of(url)}: {why(exc)}; "
                          "offline? nothing was changed") from None
        except requests.RequestException as exc:
            raise IndexProblem(f"request to {host_of(url)} failed: {why(exc)}; nothing was changed") from None

    # -- project pages (PEP 691), revalidated with ETag / Last-Modified

    def files(self, project: str) -> tuple[IndexFile, ...] | None:
        """The project's files, or None when the index has no such project."""
        url = urljoin(self.url, f"{canonicalize_name(project)}/")
        response = self._get(url, headers={"Accept": f"{SIMPLE_JSON}, application/json;q=0.5"})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise IndexProblem(f"the package index answered HTTP {response.status_code} for {url}; "
                               "nothing was changed")
        kind = response.headers.get("Content-Type", "").split(";")[0].strip()
        if kind not in (SIMPLE_JSON, "application/json"):
            raise IndexProblem(f"{url} did not answer with the JSON simple API (PEP 691) but with "
                               f"{kind or 'no content type'}: is the index URL right?")
        try:
            body = response.json()
        except ValueError:
            raise IndexProblem(f"{url} answered with malformed JSON; nothing was changed") from None
        return _parse_files(url, body)

    # -- PEP 658 core metadata

    def core_metadata(self, file: IndexFile) -> str:
        if not file.metadata_offered:
            raise NotReadable("the index offers no separate metadata file")
        response = self._get(file.url + ".metadata")
        if response.status_code != 200:
            raise NotReadable(f"the metadata file answered HTTP {response.status_code}")
        return response.content.decode("utf-8", errors="replace")

    # -- wheels, read in ranges

    def open_wheel(self, file: IndexFile) -> zipfile.ZipFile:
        reader = RangeReader(self, file)
        try:
            return zipfile.ZipFile(reader)
        except zipfile.BadZipFile as exc:
            raise NotReadable(f"not a readable zip: {exc}") from None

    def fetch_range(self, file: IndexFile, start: int, end: int) -> bytes:
        """Bytes [start, end) of a file, or NotReadable when the server ignores ranges."""
        response = self._get(file.url, headers={"Range": f"bytes={start}-{end - 1}",
                                                "Accept-Encoding": "identity"}, stream=True)
        try:
            if response.status_code == 200:
                raise NotReadable("the server does not answer range requests (HTTP 200, not 206)")
            if response.status_code != 206:
                raise NotReadable(f"a range request answered HTTP {response.status_code}")
            match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != start:
                raise NotReadable("the server answered a range request with another range")
            try:
                data = response.content
            except requests.RequestException as exc:  # the connection broke mid-answer
                raise Offline(f"lost the package index at {host_of(file.url)}: {why(exc)}; "
                              "offline? nothing was changed") from None
        finally:
            response.close()
        if len(data) != end - start:
            raise NotReadable(f"a range request returned {len(data)} bytes, not {end - start}")
        return data

    def download(self, file: IndexFile, folder: Path) -> Path:
        """The whole file, in `folder` under its sha256 (cached, resumable, checked before use:
        gpuready.download). NotReadable when it cannot be had or does not match."""
        if not file.sha256:
            raise NotReadable(f"the index gives no sha256 for {file.filename}: it cannot be checked")
        self.requests += 1
        artifact = Artifact(file.url, file.filename, file.sha256, file.size)
        try:
            return fetch(self.files_session, artifact, folder / f"{file.sha256}.whl", timeout=self.timeout[1])
        except Unreachable as exc:
            raise Offline(f"{exc.message}; offline? nothing was changed") from None
        except DownloadFailed as exc:
            raise NotReadable(exc.message) from None

    def size_of(self, file: IndexFile) -> int:
        if file.size is not None:
            return file.size
        response = self._get(file.url, headers={"Range": "bytes=0-0"}, stream=True)
        response.close()
        match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
        if response.status_code != 206 or not match:
            raise NotReadable("the index gives no size and the server does not answer range requests")
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
