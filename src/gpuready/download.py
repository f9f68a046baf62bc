"""Downloading files whose sha256 is known in advance: resumable, checked, several at once.

One place for it: `matrix.refresh` fetches a whole wheel to measure its kernels, `bundle` fetches
every artifact of a lock, and `bench/bench_setup.py` measures the raw download limit with it.
A file is written as ``<name>.part`` and renamed only once its bytes have the expected sha256,
so a file under its final name is always a whole, checked one; an interrupted download resumes
from where it stopped (an HTTP range).
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .errors import WorkFailed
from .files import describe_os_error, sha256_file

CHUNK = 1 << 20


@dataclass(frozen=True)
class Artifact:
    """A file to fetch: where from, under which name, and the sha256 it must have."""

    url: str
    filename: str
    sha256: str
    size: int | None = None


class DownloadFailed(WorkFailed):
    """A file could not be had whole and checked (exit 1); what was fetched is kept to resume."""


class Unreachable(DownloadFailed):
    """The server could not be reached, or the connection broke."""


class BadDownload(DownloadFailed):
    """The server answered, but not with the expected bytes (HTTP error, wrong sha256)."""


def retry_policy(retries: int = 3) -> Retry:
    """gpuready's one retry policy for HTTP: bounded, with backoff, honouring Retry-After."""
    return Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=0.5,
                 status_forcelist=(429, 500, 502, 503, 504), allowed_methods=frozenset({"GET"}),
                 raise_on_status=False, respect_retry_after_header=True)


def new_session(retries: int = 3, pool: int = 16, user_agent: str = "gpuready") -> requests.Session:
    """A session with bounded retries and no response cache (whole files go to their own target)."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry_policy(retries), pool_connections=pool, pool_maxsize=pool)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def why(exc: Exception) -> str:
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


def fetch(session: requests.Session, artifact: Artifact, target: Path, *,
          timeout: float = 30) -> Path:
    """`artifact` at `target`, checked against its sha256; a whole file already there is kept."""
    if target.is_file() and sha256_file(target) == artifact.sha256:
        return target
    partial = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        have = partial.stat().st_size if partial.exists() else 0
    except OSError as error:
        raise DownloadFailed(f"cannot write {target.parent}: {describe_os_error(error)}") from None
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        response = session.get(artifact.url, headers=headers, stream=True,
                               timeout=(min(10.0, timeout), timeout))
    except requests.RequestException as exc:
        raise Unreachable(f"cannot reach {host_of(artifact.url)} for {artifact.filename}: {why(exc)}") from None
    try:
        if response.status_code == 416 and have:  # the part is already whole (or longer)
            have = -1
        elif response.status_code == 200:
            have = 0  # the server sends it whole: start again
        elif response.status_code != 206 or not have:
            raise BadDownload(f"downloading {artifact.filename} from {host_of(artifact.url)} "
                              f"answered HTTP {response.status_code}")
        if have >= 0:
            try:
                with partial.open("ab" if have else "wb") as out:
                    for chunk in response.iter_content(CHUNK):
                        out.write(chunk)
            except requests.RequestException as exc:  # kept: the next run resumes
                raise Unreachable(f"lost {host_of(artifact.url)} while downloading {artifact.filename}: "
                                  f"{why(exc)}; run again to resume") from None
            except OSError as error:
                raise DownloadFailed(f"cannot write {partial}: {describe_os_error(error)}") from None
    finally:
        response.close()
    if sha256_file(partial) != artifact.sha256:
        partial.unlink(missing_ok=True)
        raise BadDownload(f"{artifact.filename}: the downloaded bytes do not have the sha256 the lock "
                          f"names ({artifact.sha256[:16]}...); the file was discarded")
    partial.replace(target)
    return target


def fetch_all(wanted: Iterable[tuple[Artifact, Path]], *, jobs: int = 8, timeout: float = 30,
              retries: int = 3, session_factory: Callable[[], requests.Session] | None = None,
              on_done: Callable[[Artifact, Path], None] | None = None) -> dict[str, Path]:
    """Every (artifact, target path) fetched, `jobs` at a time (one session per thread);
    {file name: path}. All are tried; then the first failure is raised, naming how many
    others failed too."""
    pairs = list(wanted)
    local = threading.local()
    sessions: list[requests.Session] = []
    lock = threading.Lock()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = session_factory() if session_factory else new_session(retries)
            with lock:
                sessions.append(local.session)
        return local.session

    def one(artifact: Artifact, target: Path) -> Path:
        path = fetch(session(), artifact, target, timeout=timeout)
        if on_done:
            on_done(artifact, path)
        return path

    done: dict[str, Path] = {}
    failures: list[DownloadFailed] = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(one, artifact, target): artifact for artifact, target in pairs}
            for future in as_completed(futures):
                try:
                    done[futures[future].filename] = future.result()
                except DownloadFailed as failure:
                    failures.append(failure)
    finally:
        for s in sessions:
            s.close()
    if failures:
        more = f" (and {len(failures) - 1} more failed)" if len(failures) > 1 else ""
        raise type(failures[0])(failures[0].message + more)
    return done
