"""`invoke install`: build an environment from its lock alone, atomically.

The environment is built in a staging directory beside the prefix and swapped in only when it
is complete and verified: every locked package present at its locked version, nothing else.
A failure or an interrupt leaves the old environment exactly as it was and removes the staging
directory; a run that was killed outright leaves it behind for the next run to remove. A lock
file beside the prefix keeps two installs from running into the same prefix at once.

    <parent>/<name>                   the environment (pip: a virtual environment;
                                      conda: a symbolic link to the real directory)
    <parent>/.<name>.lock             the per-prefix lock
    <parent>/.<name>.staging-<id>     an install under way (pip)
    <parent>/.<name>.env-<id>         a conda environment's real directory (conda prefixes
                                      cannot be moved, so the link is what is swapped)

pip flavor: a virtual environment for the plan's Python (this interpreter when it matches,
else pythonX.Y on PATH, else uv's managed Python when downloads are allowed), then
``uv pip sync --require-hashes`` of the lock (pip when uv is missing). conda flavor:
``conda-lock install`` with the conda executable used for locking.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import __version__, activation, lock_pip
from .detect import host_platform, python_version
from .errors import UsageError, WorkFailed
from .prefix import default_prefix, install_record_path, meta_dir, python_of, read_install_record

GB = 1_000_000_000
# Installed sizes measured on linux-64 (Python 3.11): tensorflow[and-cuda] 2.21 with the CUDA 12.5
# wheels is about 6.2 GB; the CPU environment about 1.9 GB. Headroom covers the package cache.
ESTIMATED_BYTES = {"gpu": int(6.2 * GB), "cpu": int(1.9 * GB)}
HEADROOM_BYTES = int(0.5 * GB)
KILL_GRACE_S = 5.0
INSTALL_RETRIES = 3  # uv's HTTP retries per download while installing (gpuready.index_retries)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP during an install, raised where the main thread is."""


# --------------------------------------------------------------------------- progress


class Steps:
    """How an install reports its steps. This one is silent; setup's shows them with rich."""

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Callable[[str], None]]:
        yield lambda _line: None

    def note(self, text: str) -> None:
        pass


# --------------------------------------------------------------------------- results


@dataclass
class InstallResult:
    prefix: Path
    env: str
    flavor: str
    lock_sha256: str
    packages: dict[str, str]
    replaced: bool
    installer: str
    interpreter: str | None
    activation: activation.Activation
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def work_seconds(self) -> float:
        """Time spent downloading and installing (uv / pip / conda-lock), and removing the old one."""
        return self.seconds.get("packages", 0.0) + self.seconds.get("remove_old", 0.0)


# --------------------------------------------------------------------------- tools


def find_uv(settings: Mapping[str, Any]) -> str | None:
    """uv: the configured executable, else the one of the `uv` package, else PATH."""
    configured = settings.get("uv")
    if configured:
        path = shutil.which(str(configured)) or (str(configured) if Path(configured).is_file() else None)
        if not path:
            raise UsageError(f"gpuready.uv = {configured!r}: no such executable")
        return path
    try:
        import uv  # the uv package ships the binary

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def tool_version(exe: Sequence[str]) -> str:
    try:
        out = subprocess.run([*exe, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _python_version(exe: str) -> str | None:
    try:
        out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@dataclass(frozen=True)
class Interpreter:
    path: str
    how: str  # "this interpreter", "python3.12 on PATH", "uv's managed Python"


def find_python(version: str, settings: Mapping[str, Any], uv: str | None) -> Interpreter:
    """An interpreter of Python `version` (X.Y) to base the virtual environment on."""
    this = python_version()
    if this == version:
        return Interpreter(sys.executable, "this interpreter")
    on_path = shutil.which(f"python{version}")
    if on_path and _python_version(on_path) == version:
        return Interpreter(on_path, f"python{version} on PATH")
    downloads = bool(settings.get("allow_python_downloads"))
    if uv:
        found = _uv_python_find(uv, version)
        if found is None and downloads:
            subprocess.run([uv, "python", "install", version], capture_output=True, text=True, timeout=900)
            found = _uv_python_find(uv, version)
        if found:
            return Interpreter(found, "uv's managed Python")
    ways = [f"install Python {version} so that python{version} is on PATH "
            f"(e.g. `apt install python{version}` or `pyenv install {version}`)"]
    if uv and not downloads:
        ways.append("let uv download it: set gpuready.allow_python_downloads: true in invoke.yaml "
                    "(or INVOKE_GPUREADY_ALLOW_PYTHON_DOWNLOADS=1)")
    ways.append(f"plan for this interpreter's Python instead (--python {this})")
    raise WorkFailed(f"the plan needs Python {version}, and no Python {version} was found "
                     f"(this interpreter is {this}"
                     f"{'' if uv else '; uv is not available'}). Ways out: " + "; ".join(ways))


def _uv_python_find(uv: str, version: str) -> str | None:
    try:
        out = subprocess.run([uv, "python", "find", "--no-project", "--python-preference",
                              "only-managed", "--no-python-downloads", version],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    path = out.stdout.strip()
    return path if out.returncode == 0 and path else None


def find_conda(settings: Mapping[str, Any]) -> str:
    """The conda executable the lock step uses (gpuready.lock_conda.find_conda)."""
    from .lock_conda import find_conda as lock_step_finder

    return lock_step_finder(settings).path


# --------------------------------------------------------------------------- the prefix


@dataclass(frozen=True)
class Layout:
    """The prefix and the paths gpuready keeps beside it."""

    prefix: Path

    @property
    def parent(self) -> Path:
        return self.prefix.parent

    @property
    def name(self) -> str:
        return self.prefix.name

    @property
    def lock_path(self) -> Path:
        return self.parent / f".{self.name}.lock"

    def staging(self, kind: str = "staging") -> Path:
        return self.parent / f".{self.name}.{kind}-{os.getpid()}-{time.time_ns() % 10**9:09d}"

    def own_target(self) -> Path | None:
        """The directory the prefix links to, when gpuready made it (a conda environment)."""
        if not self.prefix.is_symlink():
            return None
        target = Path(os.path.realpath(self.prefix))
        ours = target.parent == Path(os.path.realpath(self.parent)) and target.name.startswith(f".{self.name}.env-")
        return target if ours else None

    def leftovers(self) -> list[Path]:
        return sorted(p for kind in ("staging", "old", "link", "env")
                      for p in self.parent.glob(f".{self.name}.{kind}-*"))


def resolve_prefix(env: str, prefix: str | os.PathLike[str] | None, settings: Mapping[str, Any]) -> Path:
    if prefix:
        return Path(prefix).expanduser().absolute()
    return default_prefix(env, settings.get("prefix_root")).absolute()


@contextlib.contextmanager
def prefix_lock(layout: Layout) -> Iterator[None]:
    """Hold the per-prefix lock, or stop at once when another install holds it."""
    from filelock import FileLock, Timeout

    try:
        layout.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WorkFailed(f"cannot create {layout.parent}: {error.strerror}") from None
    lock = FileLock(str(layout.lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise WorkFailed(f"another gpuready install into {layout.prefix} is running "
                         f"(it holds {layout.lock_path}); wait for it to finish, then run again") from None
    except OSError as error:
        raise WorkFailed(f"cannot lock {layout.lock_path}: {error.strerror}") from None
    try:
        yield
    finally:
        lock.release()


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def clean_leftovers(layout: Layout) -> list[Path]:
    """Remove what a killed install left beside the prefix (the lock is held: nothing is live).

    A pip environment moved aside (``.old-*``) while the prefix is missing is put back first:
    that is the one moment of a two-step swap at which a kill can strike.
    """
    prefix = layout.prefix
    live_target = None
    if prefix.is_symlink():
        live_target = Path(os.path.realpath(prefix))
    if not prefix.exists() and not prefix.is_symlink():
        for old in layout.parent.glob(f".{layout.name}.old-*"):
            if install_record_path(old).exists():
                os.rename(old, prefix)
                break
    removed = []
    for path in layout.leftovers():
        if live_target is not None and Path(os.path.realpath(path)) == live_target:
            continue
        _rmtree(path)
        removed.append(path)
    return removed


def check_disk(where: Path, need: int, what: str) -> None:
    """Stop before downloading when the file system cannot hold the environment."""
    probe = where
    while not probe.exists():
        probe = probe.parent
    stats = os.statvfs(probe)
    free = stats.f_bavail * stats.f_frsize
    if free < need:
        raise WorkFailed(f"not enough disk space for {what}: it needs about {need / GB:.1f} GB "
                         f"and {probe} has {free / GB:.1f} GB free. Free some space, choose another "
                         "--prefix (or gpuready.prefix_root), or lower gpuready.min_free_gb if you "
                         "know it fits")


def needed_bytes(device: str, settings: Mapping[str, Any]) -> int:
    configured = settings.get("min_free_gb")
    if configured not in (None, ""):
        try:
            return int(float(configured) * GB)
        except (TypeError, ValueError):
            raise UsageError(f"gpuready.min_free_gb = {configured!r} is not a number") from None
    return ESTIMATED_BYTES.get(device, ESTIMATED_BYTES["gpu"]) + HEADROOM_BYTES


# --------------------------------------------------------------------------- swapping

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2); False where that is not supported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP for the few system calls of a swap."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def swap_in(staging: Path, prefix: Path, aside: Path) -> Path | None:
    """Put `staging` at `prefix`; return where the old environment went (None if there was none).

    One atomic exchange where the kernel offers it, else two renames with the old environment
    put back if the second fails.
    """
    with _signals_held():
        if not prefix.exists() and not prefix.is_symlink():
            os.rename(staging, prefix)
            return None
        if _exchange(staging, prefix):
            return staging
        os.rename(prefix, aside)
        try:
            os.rename(staging, prefix)
        except OSError:
            os.rename(aside, prefix)
            raise
        return aside


@contextlib.contextmanager
def _interrupts_raise() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into an exception, so that cleanup runs as for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------- running tools

_HASH_UV = re.compile(r"Hash mismatch for `(?P<pkg>[^`]+)`.*?Expected:\s*(?P<want>.+?)\s*Computed:\s*(?P<got>\S+)",
                      re.S)
_HASH_PIP = re.compile(r"^\s*(?P<pkg>\S+?) from \S+?:?\s*\n\s*Expected (?P<algo>\w+) (?P<want>\w+)\s*\n\s*Got\s+(?P<got>\w+)",
                       re.M)


_LOG_PREFIX = re.compile(r"^(?:ERROR|WARNING|INFO|DEBUG):[\w.]*:", re.M)
_HASH_CONDA = re.compile(r"mismatch between the expected content and downloaded content\s+for url "
                         r"'(?P<url>[^']+)'.*?expected (?P<algo>md5|sha256): (?P<want>\w+)\s+actual (?P=algo): "
                         r"(?P<got>\w+)", re.S)


def hash_mismatch(output: str) -> str | None:
    """'name==ver: the lock has X, the download has Y' from uv's, pip's or conda's error, or None."""
    output = _LOG_PREFIX.sub("", output)  # conda-lock relays conda's lines as ERROR:root:...
    match = _HASH_CONDA.search(output)
    if match:
        algo, package = match.group("algo"), match.group("url").rsplit("/", 1)[-1]
        return (f"{package}: the lock has {algo}:{match.group('want')}, "
                f"the downloaded file has {algo}:{match.group('got')}")
    match = _HASH_UV.search(output)
    if match:
        want = " or ".join(match.group("want").split())
        return f"{match.group('pkg')}: the lock has {want}, the downloaded file has {match.group('got')}"
    match = _HASH_PIP.search(output)
    if match:
        algo = match.group("algo")
        return (f"{match.group('pkg')}: the lock has {algo}:{match.group('want')}, "
                f"the downloaded file has {algo}:{match.group('got')}")
    return None


def run_tool(cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
             on_line: Callable[[str], None] = lambda _l: None) -> tuple[int, str]:
    """Run a tool, passing each output line to `on_line`; return (exit code, all output).

    On an interrupt the tool is stopped (SIGTERM, then SIGKILL) before the exception goes on.
    """
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", env=dict(env) if env is not None else None,
                            stdin=subprocess.DEVNULL)
    lines: list[str] = []

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            with contextlib.suppress(Exception):
                on_line(line.rstrip())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        code = proc.wait()
    except BaseException:
        _stop(proc)
        raise
    thread.join(timeout=5)
    return code, "".join(lines)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(OSError):
        proc.terminate()
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()


def _tail(output: str, lines: int = 12) -> str:
    """The last lines that say something: Python tracebacks (conda-lock's) left out."""
    kept, skip_next = [], False
    for line in output.strip().splitlines():
        if skip_next:
            skip_next = False
            continue
        if line.lstrip().startswith('File "'):
            skip_next = True
            continue
        if not line.strip() or line.startswith("Traceback") or not line.strip(" ^~"):
            continue
        kept.append(line)
    return "\n".join(kept[-lines:])


# --------------------------------------------------------------------------- verification


def _metadata_fields(path: Path) -> tuple[str | None, str | None]:
    name = version = None
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    break
                if line.startswith("Name:"):
                    name = line[5:].strip()
                elif line.startswith("Version:"):
                    version = line[8:].strip()
    except OSError:
        pass
    return name, version


def python_distributions(prefix: Path, skip: set[str] = frozenset()) -> dict[str, str]:
    """{canonical name: version} of every distribution in the prefix's site-packages."""
    site = activation.site_packages(prefix)
    found: dict[str, str] = {}
    if site is None:
        return found
    for info in site.glob("*.dist-info"):
        if info.name in skip:
            continue
        name, version = _metadata_fields(info / "METADATA")
        if name and version:
            found[canonicalize_name(name)] = version
    return found


def conda_records(prefix: Path) -> tuple[dict[str, str], set[str]]:
    """({canonical name: version} from conda-meta, the dist-info folder names conda installed)."""
    records: dict[str, str] = {}
    owned: set[str] = set()
    for path in (prefix / "conda-meta").glob("*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if "name" in data and "version" in data:
            records[canonicalize_name(data["name"])] = str(data["version"])
        for file in data.get("files") or ():
            head = file.split("/")
            for part in head:
                if part.endswith(".dist-info"):
                    owned.add(part)
    return records, owned


def installed_packages(prefix: Path, flavor: str) -> dict[str, str]:
    if flavor == "conda":
        records, owned = conda_records(prefix)
        return {**python_distributions(prefix, owned), **records}
    return python_distributions(prefix)


def same_version(a: str, b: str) -> bool:
    """Equal as versions ("2.21" == "2.21.0"), or as text when one is not a version."""
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def compare(locked: Mapping[str, str], installed: Mapping[str, str]) -> list[str]:
    """What differs between the lock and the environment, one line each (empty: identical)."""
    problems = []
    for name, version in sorted(locked.items()):
        have = installed.get(name)
        if have is None:
            problems.append(f"{name}=={version} is missing")
        elif not same_version(have, version):
            problems.append(f"{name} is {have}, the lock has {version}")
    for name in sorted(set(installed) - set(locked)):
        problems.append(f"{name}=={installed[name]} is installed but not in the lock")
    return problems


def verify_prefix(prefix: Path, locked: Mapping[str, str], flavor: str) -> list[str]:
    return compare({canonicalize_name(k): v for k, v in locked.items()}, installed_packages(prefix, flavor))


# --------------------------------------------------------------------------- install


def _inputs_dict(folder: Any) -> dict[str, Any]:
    inputs = folder.inputs
    return inputs.to_dict() if hasattr(inputs, "to_dict") else dict(inputs)


def install(folder: Any, prefix: str | os.PathLike[str] | None = None, *,
            settings: Mapping[str, Any] | None = None, warnings: Sequence[str] = (),
            plan: Mapping[str, Any] | None = None, steps: Steps | None = None) -> InstallResult:
    """Build the environment of an env folder (gpuready.envfolder.EnvFolder) at `prefix`.

    `warnings` are the plan's warning codes (ptx-jit raises CUDA_CACHE_MAXSIZE); `plan` is the
    full plan dict, recorded beside the inputs when given.
    """
    settings = dict(settings or {})
    steps = steps or Steps()
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    inputs = _inputs_dict(folder)
    env, flavor, device = inputs["env"], inputs["flavor"], inputs["device"]
    lock_file: Path = folder.lock_file
    if not lock_file.exists():
        raise UsageError(f"{lock_file} is missing: lock the environment first (invoke lock --env {env})")
    lock_bytes = lock_file.read_bytes()
    from .envfolder import sha256_bytes

    lock_sha = sha256_bytes(lock_bytes)
    try:
        locked = {canonicalize_name(k): v for k, v in folder.locked_packages().items()}
    except Exception as error:  # noqa: BLE001 - a lock that does not parse
        raise UsageError(f"{lock_file} cannot be read: {error}") from None
    if not locked:
        raise UsageError(f"{lock_file} locks no package: it is not a lock (relock with invoke lock --env {env})")

    if inputs.get("platform") not in (None, host_platform()):
        raise UsageError(f"envs/{env} is for {inputs['platform']} and this host is {host_platform()}: "
                         "an environment installs only on its own platform")
    layout = Layout(resolve_prefix(env, prefix, settings))
    if layout.prefix.exists():  # through a symbolic link too; a dangling link is just replaced
        if not layout.prefix.is_dir() or (any(layout.prefix.iterdir())
                                          and read_install_record(layout.prefix) is None):
            raise UsageError(f"{layout.prefix} exists and is not an environment gpuready installed; "
                             "choose another --prefix, or remove it yourself")

    with _interrupts_raise(), prefix_lock(layout):
        replaced = layout.prefix.exists() or layout.prefix.is_symlink()
        clean_leftovers(layout)
        need = needed_bytes(device, settings)
        check_disk(layout.parent, need, f"the {device.upper()} environment {env}")
        seconds["prepare"] = time.perf_counter() - started
        if flavor == "conda":
            result = _install_conda(folder, layout, inputs, lock_bytes, lock_sha, locked, settings,
                                    warnings, plan, steps, seconds)
        else:
            result = _install_pip(folder, layout, inputs, lock_bytes, lock_sha, locked, settings,
                                  warnings, plan, steps, seconds)
        result.replaced = replaced
    seconds["total"] = time.perf_counter() - started
    return result


def _record(staging: Path, final: Path, inputs: dict[str, Any], lock_name: str, lock_bytes: bytes,
            lock_sha: str, locked: Mapping[str, str], installer: str, interpreter: str | None,
            warnings: Sequence[str], plan: Mapping[str, Any] | None, seconds: Mapping[str, float]) -> None:
    meta = meta_dir(staging)
    meta.mkdir(parents=True, exist_ok=True)
    (meta / lock_name).write_bytes(lock_bytes)
    record = {
        "env": inputs["env"],
        "flavor": inputs["flavor"],
        "prefix": str(final),
        "plan": inputs,
        "lock_file": lock_name,
        "lock_sha256": lock_sha,
        "packages": dict(sorted(locked.items())),
        "warnings": list(warnings),
        "installer": installer,
        "interpreter": interpreter,
        "installed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "gpuready": __version__,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    if plan is not None:
        record["full_plan"] = dict(plan)
    (meta / "install.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _install_pip(folder: Any, layout: Layout, inputs: dict[str, Any], lock_bytes: bytes, lock_sha: str,
                 locked: Mapping[str, str], settings: Mapping[str, Any], warnings: Sequence[str],
                 plan: Mapping[str, Any] | None, steps: Steps, seconds: dict[str, float]) -> InstallResult:
    env, python = inputs["env"], inputs["python"]
    uv = find_uv(settings)
    t = time.perf_counter()
    interpreter = find_python(python, settings, uv)
    seconds["python"] = time.perf_counter() - t
    staging = layout.staging()
    try:
        t = time.perf_counter()
        with steps.step(f"Creating the virtual environment (Python {python}, {interpreter.how})"):
            if uv:
                code, output = run_tool([uv, "venv", "--no-project", "--no-config", "--relocatable",
                                         "--no-python-downloads", "--prompt", env,
                                         "--python", interpreter.path, str(staging)])
            else:
                code, output = run_tool([interpreter.path, "-m", "venv", "--without-pip",
                                         "--prompt", env, str(staging)])
            if code != 0:
                raise WorkFailed(f"creating the virtual environment failed:\n{_tail(output)}")
        seconds["venv"] = time.perf_counter() - t

        lock_copy = staging / f".{folder.lock_file.name}"
        lock_copy.write_bytes(lock_bytes)
        py = python_of(staging)
        assert py is not None
        index = lock_pip.index_url(settings)
        tool_env = None
        if uv:
            cmd = [uv, "pip", "sync", "--require-hashes", "--strict", "--index-url", index,
                   "--python", str(py), str(lock_copy)]
            # As for locking: no user uv config, no Python downloads; more retries for big wheels.
            retries = settings.get("index_retries")
            tool_env = {**lock_pip.uv_environment(settings),
                        "UV_HTTP_RETRIES": str(INSTALL_RETRIES if retries is None else retries)}
            installer = tool_version([uv])
        else:
            pip = [sys.executable, "-m", "pip"]
            if subprocess.run([*pip, "--version"], capture_output=True).returncode != 0:
                raise WorkFailed("neither uv nor pip is available to install the environment: "
                                 "pip install uv (gpuready's own dependency) and run again")
            cmd = [*pip, "--python", str(py), "install", "--require-hashes", "--no-deps", "--no-compile",
                   "--disable-pip-version-check", "--no-input", "--index-url", index, "-r", str(lock_copy)]
            installer = tool_version(pip)
        t = time.perf_counter()
        with steps.step(f"Installing {len(locked)} locked packages with {installer.split(' (')[0]}") as update:
            code, output = run_tool(cmd, env=tool_env, on_line=update)
        seconds["packages"] = time.perf_counter() - t
        if code != 0:
            mismatch = hash_mismatch(output)
            if mismatch:
                raise WorkFailed(f"hash mismatch for {mismatch}. The index served a file that is not "
                                 "the one locked; nothing was changed")
            if any(marker in output for marker in lock_pip._UNREACHABLE):
                raise WorkFailed(f"the package index {index} could not be reached (set gpuready.index_url "
                                 f"for a mirror); nothing was changed. uv said:\n{_tail(output, 4)}")
            raise WorkFailed(f"installing the locked packages failed (exit {code}); nothing was changed:\n"
                             f"{_tail(output)}")
        lock_copy.unlink()

        active = _verify_and_record(staging, "pip", layout, inputs, folder, lock_bytes, lock_sha, locked,
                                    installer, interpreter.path, warnings, plan, seconds)

        t = time.perf_counter()
        old_target = layout.own_target()  # a conda environment there before: its directory goes too
        old = swap_in(staging, layout.prefix, layout.staging("old"))
        seconds["swap"] = time.perf_counter() - t
        if old is not None:
            _remove_replaced(old, old_target, steps, seconds)
    finally:
        _rmtree(staging)
    return InstallResult(layout.prefix, env, "pip", lock_sha, dict(locked), False, installer,
                         interpreter.path, active, seconds)


def _verify_and_record(target: Path, flavor: str, layout: Layout, inputs: dict[str, Any], folder: Any,
                       lock_bytes: bytes, lock_sha: str, locked: Mapping[str, str], installer: str,
                       python: str, warnings: Sequence[str], plan: Mapping[str, Any] | None,
                       seconds: dict[str, float]) -> Any:
    """The last steps before a swap, the same for both flavors: the new environment must equal
    its lock; then its activation and gpuready's record of it are written inside it."""
    t = time.perf_counter()
    problems = verify_prefix(target, locked, flavor)
    if problems:
        raise WorkFailed("the new environment does not match its lock, so it was not swapped in: "
                         + "; ".join(problems[:10]))
    seconds["verify"] = time.perf_counter() - t
    t = time.perf_counter()
    active = activation.decide(target, tensorflow=inputs.get("tensorflow"),
                               source=inputs.get("source", "pypi"), warnings=warnings)
    activation.write(target, active, flavor)
    _record(target, layout.prefix, inputs, folder.lock_file.name, lock_bytes, lock_sha, locked,
            installer, python, warnings, plan, seconds)
    seconds["activation"] = time.perf_counter() - t
    return active


def _remove_replaced(old: Path | None, old_target: Path | None, steps: Steps,
                     seconds: dict[str, float]) -> None:
    """Delete what a swap replaced: the old prefix, and a conda environment it pointed to."""
    t = time.perf_counter()
    with steps.step("Removing the replaced environment"):
        for leftover in (old, old_target):
            if leftover is not None:
                _rmtree(leftover)
    seconds["remove_old"] = time.perf_counter() - t


def _install_conda(folder: Any, layout: Layout, inputs: dict[str, Any], lock_bytes: bytes, lock_sha: str,
                   locked: Mapping[str, str], settings: Mapping[str, Any], warnings: Sequence[str],
                   plan: Mapping[str, Any] | None, steps: Steps, seconds: dict[str, float]) -> InstallResult:
    env = inputs["env"]
    conda = find_conda(settings)
    real = layout.staging("env")
    link = layout.staging("link")
    conda_lock = [sys.executable, "-m", "conda_lock"]
    installer = f"conda-lock with {Path(conda).name}"
    swapped = False
    try:
        lock_copy = layout.parent / f".{layout.name}.staging-{os.getpid()}.{folder.lock_file.name}"
        lock_copy.write_bytes(lock_bytes)
        t = time.perf_counter()
        with steps.step(f"Installing {len(locked)} locked packages with conda-lock ({Path(conda).name})") as update:
            try:
                code, output = run_tool([*conda_lock, "install", "--conda", conda, "--prefix", str(real),
                                         str(lock_copy)], on_line=update)
            finally:
                lock_copy.unlink(missing_ok=True)
        seconds["packages"] = time.perf_counter() - t
        if code != 0:
            mismatch = hash_mismatch(output)
            if mismatch:
                raise WorkFailed(f"hash mismatch for {mismatch}; nothing was changed")
            raise WorkFailed(f"conda-lock install failed (exit {code}); nothing was changed:\n{_tail(output)}")
        active = _verify_and_record(real, "conda", layout, inputs, folder, lock_bytes, lock_sha, locked,
                                    installer, str(python_of(real) or ""), warnings, plan, seconds)
        t = time.perf_counter()
        old_target = layout.own_target()
        os.symlink(real.name, link)
        old = swap_in(link, layout.prefix, layout.staging("old"))
        swapped = True
        seconds["swap"] = time.perf_counter() - t
        if old is not None or old_target is not None:
            _remove_replaced(old, old_target, steps, seconds)
    finally:
        _rmtree(link)
        if not swapped:
            _rmtree(real)
    return InstallResult(layout.prefix, env, "conda", lock_sha, dict(locked), False, installer,
                         str(python_of(layout.prefix) or ""), active, seconds)


# --------------------------------------------------------------------------- state of a prefix


def environment_intact(prefix: Path, lock_sha: str | None = None) -> tuple[bool, str]:
    """Quickly (no subprocess): does the prefix hold what its install record says?"""
    record = read_install_record(prefix)
    if record is None:
        return False, f"no environment at {prefix}" if not prefix.exists() else f"{prefix} has no install record"
    if lock_sha is not None and record.get("lock_sha256") != lock_sha:
        return False, "it was installed from another lock"
    if python_of(prefix) is None:
        return False, "its Python is missing"
    problems = verify_prefix(prefix, record.get("packages") or {}, record.get("flavor", "pip"))
    if problems:
        return False, "its packages changed: " + "; ".join(problems[:5])
    return True, "intact"
