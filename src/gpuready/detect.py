"""Host detection: the facts `plan` decides from (PRODUCT.md, "detect").

The NVIDIA driver and the GPUs are read by three probes, in order, and the
first one that gives a full answer wins:

1. NVML (``nvidia-ml-py``, module ``pynvml``, which loads ``libnvidia-ml.so.1``);
2. ``nvidia-smi --query-gpu=...`` (and its banner for the driver's CUDA);
3. ``/proc/driver/nvidia/version`` (the kernel module's version alone, no GPUs).

Every probe tried is recorded, in order, with ``ok`` and a detail: what it found,
or why it failed. No driver is a normal answer, and detection never raises: a
missing library, a crashing, hanging or garbage-printing ``nvidia-smi``, an
unreadable file are all recorded and passed over.

The default call, ``detect_host(matrix)``, looks at this machine. Everything the
probes look at can be replaced for tests: the ``pynvml`` module object, the
environment (its ``PATH`` finds ``nvidia-smi`` and the conda executables), the
root folder under which ``/proc``, ``/dev`` and ``/usr/lib/wsl/lib`` are read,
the interpreter's platform, and the ``nvidia-smi`` timeout.
"""

from __future__ import annotations

import os
import platform as platform_mod
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .facts import Container, Driver, Gpu, HostFacts, Probe

if TYPE_CHECKING:
    from .matrix import Matrix

SMI_FIELDS = ("driver_version", "name", "compute_cap", "memory.total", "uuid")
SMI_FIELDS_R470 = ("driver_version", "name", "memory.total", "uuid")  # no compute_cap before R510
SMI_TIMEOUT = 10.0  # seconds for one nvidia-smi call; a hung driver must not hang detection
WSL_LIB = "usr/lib/wsl/lib"  # where WSL2 puts the Windows driver's nvidia-smi and libraries
CONDA_EXECUTABLES = ("conda", "mamba", "micromamba")

NVML, SMI, PROC = "nvml", "nvidia-smi", "proc"

_DRIVER = re.compile(r"^\d{2,4}(\.\d{1,3}){1,2}$")  # 535.104.05, 570.26, 537.13 (Windows)
_CUDA = re.compile(r"^\d{1,2}\.\d{1,2}$")
_CC = re.compile(r"^\d{1,2}\.\d$")
_MIB = re.compile(r"^\d{1,9}$")
_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Za-z-]{8,}$")
_NOT_AVAILABLE = "[N/A]"  # nvidia-smi's word for a field this GPU does not report
_BANNER_CUDA = re.compile(r"CUDA Version:\s*(\S+)")
_PROC_VERSION = re.compile(r"NVRM version:.*?\s(\d{2,4}\.\d{1,3}(?:\.\d{1,3})?)(?:\s|$)")
_WSL_MARKERS = ("microsoft", "wsl")
_CGROUP_KINDS = (("kubepods", "kubernetes"), ("libpod", "podman"), ("docker", "docker"),
                 ("containerd", "containerd"), ("lxc", "lxc"))


class _Failed(Exception):
    """A probe step failed; the message is the reason recorded in the probe."""


@dataclass(frozen=True)
class _Found:
    """What one probe learnt. ``gpus`` is None when it could not list them."""

    driver: Driver
    gpus: tuple[Gpu, ...] | None


# --------------------------------------------------------------------------- the plain facts


def host_platform(sys_platform: str | None = None, machine: str | None = None) -> str:
    """The conda-style platform name: linux-64, linux-aarch64, osx-arm64, win-64, ..."""
    sys_platform = sys.platform if sys_platform is None else sys_platform
    machine = (platform_mod.machine() if machine is None else machine).lower()
    arch = {"x86_64": "64", "amd64": "64", "x64": "64", "aarch64": "aarch64", "arm64": "arm64"}.get(
        machine, machine or "unknown")
    if sys_platform.startswith("linux"):
        return "linux-aarch64" if arch in ("aarch64", "arm64") else f"linux-{arch}"
    if sys_platform == "darwin":
        return "osx-arm64" if arch in ("aarch64", "arm64") else f"osx-{arch}"
    if sys_platform in ("win32", "cygwin"):
        return f"win-{arch}"
    return f"{sys_platform}-{arch}"


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def glibc_version(confstr: Callable[[str], str | None] | None = None,
                  libc_ver: Callable[[], tuple[str, str]] | None = None) -> str | None:
    """"2.36", or None where the C library is not glibc (macOS, Windows, musl)."""
    confstr = confstr if confstr is not None else getattr(os, "confstr", None)
    libc_ver = libc_ver if libc_ver is not None else platform_mod.libc_ver
    text = None
    if confstr is not None:
        try:
            text = confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
        except (ValueError, OSError):
            text = None
    if text and text.startswith("glibc "):
        version = text.split()[1]
    else:
        try:
            lib, version = libc_ver()
        except Exception:  # platform.libc_ver reads the executable; never let it fail us
            return None
        if lib != "glibc":
            return None
    match = re.match(r"^\d+\.\d+", version or "")
    return match.group(0) if match else None


def detect_wsl(root: Path, environ: Mapping[str, str]) -> bool:
    """WSL: its kernel names Microsoft / WSL, and it sets WSL_DISTRO_NAME."""
    if environ.get("WSL_DISTRO_NAME"):
        return True
    for name in ("proc/sys/kernel/osrelease", "proc/version"):
        text = _read(root / name)
        if text and any(marker in text.lower() for marker in _WSL_MARKERS):
            return True
    return False


def detect_container(root: Path, environ: Mapping[str, str]) -> Container:
    """Hints that we run in a container, and whether it was given /dev/nvidia* nodes."""
    kind = None
    if environ.get("KUBERNETES_SERVICE_HOST"):
        kind = "kubernetes"
    elif (root / "run/.containerenv").exists():
        kind = "podman"
    elif (root / ".dockerenv").exists():
        kind = "docker"
    else:
        cgroup = (_read(root / "proc/1/cgroup") or "").lower()
        kind = next((k for marker, k in _CGROUP_KINDS if marker in cgroup), None)
        if kind is None and environ.get("container"):  # systemd's convention (podman, nspawn, lxc)
            kind = environ["container"]
    try:
        dev_nvidia = any((root / "dev").glob("nvidia*"))
    except OSError:
        dev_nvidia = False
    return Container(detected=kind is not None, kind=kind, dev_nvidia=dev_nvidia)


def conda_executables(which: Callable[[str], str | None]) -> tuple[str, ...]:
    """Full paths of conda, mamba and micromamba found on PATH, in that order."""
    found = []
    for name in CONDA_EXECUTABLES:
        path = which(name)
        if path:
            found.append(os.path.abspath(path))
    return tuple(found)


# --------------------------------------------------------------------------- matrix look-ups


class _Lookup:
    """The matrix's driver -> CUDA and GPU name -> compute capability tables.

    Loaded only when a probe needs it; a matrix that cannot be loaded makes the
    answers unknown (None), never an error: detection does not raise.
    """

    def __init__(self, matrix: Matrix | None) -> None:
        self._matrix = matrix
        self._tried = matrix is not None

    def _get(self) -> Matrix | None:
        if not self._tried:
            self._tried = True
            try:
                from . import matrix as matrix_mod

                self._matrix = matrix_mod.load()
            except Exception:
                self._matrix = None
        return self._matrix

    def cuda_for_driver(self, version: str, windows: bool) -> str | None:
        matrix = self._get()
        try:
            return matrix.newest_cuda_for_driver(version, windows) if matrix else None
        except Exception:  # an unparsable version: unknown
            return None

    def cc_for_name(self, name: str) -> str | None:
        matrix = self._get()
        return matrix.cc_for_name(name) if matrix else None


def _derived_cuda(lookup: _Lookup, version: str, windows: bool, why: str) -> tuple[str | None, str]:
    cuda = lookup.cuda_for_driver(version, windows)
    column = "Windows" if windows else "Linux"
    if cuda:
        return cuda, f"CUDA {cuda} derived from the matrix's {column} driver column ({why})"
    return None, f"CUDA unknown: the matrix has no CUDA release for driver {version} ({why})"


def _describe(found: _Found, cuda_note: str) -> str:
    gpus = found.gpus or ()
    listed = ", ".join(f"{g.name} ({g.compute_capability or 'compute capability unknown'})"
                       for g in gpus)
    count = f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''}"
    return f"driver {found.driver.version}, {cuda_note}, {count}" + (f": {listed}" if listed else "")


# --------------------------------------------------------------------------- validation


def _text(value: Any) -> str:
    """NVML answers bytes with older nvidia-ml-py and str with newer ones."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value).strip().strip("\x00").strip()


def _check_driver(value: str, who: str) -> str:
    if not _DRIVER.match(value):
        raise _Failed(f"{who} gave a malformed driver version {_short(value)}")
    return value


def _check_name(value: str, who: str) -> str:
    if not value or len(value) > 96 or not value.isprintable() or "\ufffd" in value:
        raise _Failed(f"{who} gave a malformed GPU name {_short(value)}")
    return value


def _check_uuid(value: str, who: str) -> str | None:
    if value == _NOT_AVAILABLE:
        return None
    if not _UUID.match(value):
        raise _Failed(f"{who} gave a malformed GPU UUID {_short(value)}")
    return value


def _short(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


# --------------------------------------------------------------------------- probe 1: NVML


def _import_pynvml() -> Any:
    import pynvml

    return pynvml


def _nvml_error(exc: BaseException, nvml: Any, container_note: str) -> str:
    not_found = getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", 12)
    if getattr(exc, "value", None) == not_found or type(exc).__name__ == "NVMLError_LibraryNotFound":
        library = "nvml.dll" if sys.platform.startswith("win") else "libnvidia-ml.so.1"
        return _noted(f"{library} not found", container_note)
    return _noted(f"nvmlInit failed: {_reason(exc)}", container_note)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def probe_nvml(nvml: Any, lookup: _Lookup, windows: bool, container_note: str = "") -> tuple[Probe, _Found | None]:
    """Read the driver and every GPU through NVML; always shut NVML down again."""
    if nvml is None:
        return Probe(NVML, False, "nvidia-ml-py (module pynvml) is not installed"), None
    try:
        nvml.nvmlInit()
    except Exception as exc:
        return Probe(NVML, False, _nvml_error(exc, nvml, container_note)), None
    version = cuda = None
    cuda_note = ""
    step = "nvmlSystemGetDriverVersion"
    try:
        version = _check_driver(_text(nvml.nvmlSystemGetDriverVersion()), "NVML")
        cuda, cuda_note = _nvml_cuda(nvml, lookup, version, windows)
        step = "nvmlDeviceGetCount"
        count = int(nvml.nvmlDeviceGetCount())
        gpus = []
        for index in range(count):
            step = f"nvmlDeviceGetHandleByIndex({index})"
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            step = f"nvmlDeviceGetName (GPU {index})"
            name = _check_name(_text(nvml.nvmlDeviceGetName(handle)), "NVML")
            step = f"nvmlDeviceGetCudaComputeCapability (GPU {index})"
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
            cc = f"{int(major)}.{int(minor)}"
            if not _CC.match(cc):
                raise _Failed(f"NVML gave a malformed compute capability {cc!r} for GPU {index}")
            step = f"nvmlDeviceGetMemoryInfo (GPU {index})"
            memory = int(nvml.nvmlDeviceGetMemoryInfo(handle).total) // (1024 * 1024)
            step = f"nvmlDeviceGetUUID (GPU {index})"
            uuid = _check_uuid(_text(nvml.nvmlDeviceGetUUID(handle)), "NVML")
            gpus.append(Gpu(index=index, name=name, compute_capability=cc, memory_mib=memory, uuid=uuid))
    except Exception as exc:
        reason = str(exc) if isinstance(exc, _Failed) else f"{step} failed: {_reason(exc)}"
        if version is None:
            return Probe(NVML, False, reason), None
        # The driver was read before the failure: keep it, in case no later probe does better.
        found = _Found(Driver(version, cuda, NVML), None)
        return Probe(NVML, False, f"driver {version} ({cuda_note}), but {reason}"), found
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass
    found = _Found(Driver(version, cuda, NVML), tuple(gpus))
    return Probe(NVML, True, _describe(found, cuda_note)), found


def _nvml_cuda(nvml: Any, lookup: _Lookup, version: str, windows: bool) -> tuple[str | None, str]:
    """nvmlSystemGetCudaDriverVersion(_v2): 1000*major + 10*minor -> "X.Y"."""
    failures = []
    for name in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
        function = getattr(nvml, name, None)
        if function is None:
            failures.append(f"{name} missing")
            continue
        try:
            value = int(function())
        except Exception as exc:
            failures.append(f"{name} failed: {_reason(exc)}")
            continue
        if value >= 1000:
            return f"{value // 1000}.{value % 1000 // 10}", f"CUDA {value // 1000}.{value % 1000 // 10}"
        failures.append(f"{name} gave {value}")
    return _derived_cuda(lookup, version, windows, "; ".join(failures))


# --------------------------------------------------------------------------- probe 2: nvidia-smi


def _run_smi(exe: str, args: Sequence[str], environ: Mapping[str, str], timeout: float) -> str:
    """Run nvidia-smi and return what it printed; raise _Failed saying why it gave no answer."""
    try:
        proc = subprocess.Popen([exe, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(environ),
                                start_new_session=os.name == "posix")
    except OSError as exc:
        raise _Failed(f"nvidia-smi at {exe} could not be started: {exc.strerror or exc}") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise _Failed(f"nvidia-smi did not answer within {timeout:g} s (stopped)") from None
    stdout = out.decode("utf-8", errors="replace")
    stderr = err.decode("utf-8", errors="replace")
    if proc.returncode < 0:
        number = -proc.returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        described = signal.strsignal(number) if hasattr(signal, "strsignal") else None
        extra = f" ({described.lower()})" if described and described != name else ""
        raise _Failed(f"nvidia-smi was killed by {name}{extra}")
    if proc.returncode != 0:
        said = _first_line(stdout) or _first_line(stderr)
        raise _Failed(f"nvidia-smi exited with status {proc.returncode}" + (f": {said}" if said else ""))
    return stdout


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Stop a hung nvidia-smi (and anything it started); never wait for it for long."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except OSError:
        pass
    try:
        proc.wait(timeout=1)  # a process stuck in the kernel may not die: leave it then
    except subprocess.TimeoutExpired:
        pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _first_line(text: str) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= 200 else line[:200] + "..."


def _query_args(fields: Sequence[str]) -> list[str]:
    return [f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]


def _parse_query(stdout: str, fields: Sequence[str], lookup: _Lookup) -> tuple[str, tuple[Gpu, ...]]:
    """Validate every field of every line; raise _Failed naming the first bad one."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise _Failed("nvidia-smi printed no GPU line")
    driver = None
    gpus = []
    for index, line in enumerate(lines):
        parts = [part.strip() for part in line.split(",")]
        where = f"nvidia-smi line {index + 1}"
        if len(parts) != len(fields):
            raise _Failed(f"{where} has {len(parts)} fields, expected {len(fields)} "
                          f"({','.join(fields)}): {_short(line)}")
        row = dict(zip(fields, parts))
        version = _check_driver(row["driver_version"], where)
        if driver is not None and version != driver:
            raise _Failed(f"{where}: driver {version} differs from {driver} on line 1")
        driver = version
        name = _check_name(row["name"], where)
        if "compute_cap" in row:
            cc = row["compute_cap"]
            if cc == _NOT_AVAILABLE:
                cc = lookup.cc_for_name(name)
            elif not _CC.match(cc):
                raise _Failed(f"{where} gave a malformed compute capability {_short(cc)}")
        else:
            cc = lookup.cc_for_name(name)
        memory_text = row["memory.total"]
        if memory_text == _NOT_AVAILABLE:
            memory = None
        elif _MIB.match(memory_text):
            memory = int(memory_text)
        else:
            raise _Failed(f"{where} gave memory.total {_short(memory_text)}, not a whole number of MiB")
        uuid = _check_uuid(row["uuid"], where)
        gpus.append(Gpu(index=index, name=name, compute_capability=cc, memory_mib=memory, uuid=uuid))
    assert driver is not None
    return driver, tuple(gpus)


def _compute_cap_unknown(message: str) -> bool:
    """The R470-era answer: Field "compute_cap" is not a valid field to query."""
    lowered = message.lower()
    return "compute_cap" in lowered and "not a valid field" in lowered


def find_nvidia_smi(which: Callable[[str], str | None], root: Path, wsl: bool) -> str | None:
    """nvidia-smi on PATH; under WSL also in /usr/lib/wsl/lib (often not on PATH)."""
    found = which("nvidia-smi")
    if found:
        return found
    if wsl:
        candidate = root / WSL_LIB / "nvidia-smi"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def probe_nvidia_smi(exe: str | None, lookup: _Lookup, windows: bool, *, wsl: bool = False,
                     environ: Mapping[str, str] | None = None, timeout: float = SMI_TIMEOUT,
                     container_note: str = "") -> tuple[Probe, _Found | None]:
    """Read the driver and every GPU from nvidia-smi's CSV query, the CUDA from its banner."""
    environ = os.environ if environ is None else environ
    if exe is None:
        where = "on PATH" + (f" or in /{WSL_LIB}" if wsl else "")
        return Probe(SMI, False, _noted(f"nvidia-smi not found {where}", container_note)), None
    notes = []
    try:
        fields = SMI_FIELDS
        try:
            stdout = _run_smi(exe, _query_args(fields), environ, timeout)
        except _Failed as exc:
            if not _compute_cap_unknown(str(exc)):
                raise
            stdout = str(exc)
        if _compute_cap_unknown(stdout):
            fields = SMI_FIELDS_R470
            notes.append("compute_cap is not a valid field for this nvidia-smi (R470-era driver): "
                         "queried without it, compute capability from the matrix's GPU name table")
            stdout = _run_smi(exe, _query_args(fields), environ, timeout)
        version, gpus = _parse_query(stdout, fields, lookup)
    except _Failed as exc:
        return Probe(SMI, False, _noted("; ".join([*notes, str(exc)]), container_note)), None
    cuda, cuda_note = _smi_cuda(exe, environ, timeout, lookup, version, windows)
    found = _Found(Driver(version, cuda, SMI), gpus)
    return Probe(SMI, True, "; ".join([_describe(found, cuda_note), *notes])), found


def _smi_cuda(exe: str, environ: Mapping[str, str], timeout: float, lookup: _Lookup,
              version: str, windows: bool) -> tuple[str | None, str]:
    """The "CUDA Version: 12.2" of the plain banner; else derived from the matrix."""
    try:
        banner = _run_smi(exe, [], environ, timeout)
    except _Failed as exc:
        return _derived_cuda(lookup, version, windows, f"banner unavailable: {exc}")
    match = _BANNER_CUDA.search(banner)
    if match is None:
        return _derived_cuda(lookup, version, windows, "the banner shows no CUDA Version")
    value = match.group(1).strip("|")
    if not _CUDA.match(value):
        return _derived_cuda(lookup, version, windows, f"the banner says CUDA Version: {value}")
    return value, f"CUDA {value} (banner)"


# --------------------------------------------------------------------------- probe 3: /proc


def probe_proc(root: Path, lookup: _Lookup, windows: bool, container_note: str = "") -> tuple[Probe, _Found | None]:
    """The kernel module's version from /proc/driver/nvidia/version (no GPU list)."""
    path = root / "proc/driver/nvidia/version"
    shown = "/proc/driver/nvidia/version"
    if not path.exists():
        return Probe(PROC, False, f"{shown} not found (no NVIDIA kernel module loaded)"), None
    text = _read(path)
    if text is None:
        return Probe(PROC, False, f"{shown} could not be read"), None
    match = _PROC_VERSION.search(text)
    if match is None:
        return Probe(PROC, False, f"{shown} holds no kernel module version: {_short(_first_line(text))}"), None
    version = match.group(1)
    cuda, cuda_note = _derived_cuda(lookup, version, windows, "/proc gives no CUDA")
    detail = f"kernel module {version}, {cuda_note}; /proc lists no GPUs"
    if container_note:
        detail = _noted(detail, f"{container_note} (the version is the host's driver)")
    return Probe(PROC, True, detail), _Found(Driver(version, cuda, PROC), None)


# --------------------------------------------------------------------------- all together


_DEFAULT: Any = object()


def detect_host(matrix: Matrix | None = None, *, nvml: Any = _DEFAULT, root: str | os.PathLike[str] = "/",
                environ: Mapping[str, str] | None = None, smi_timeout: float = SMI_TIMEOUT,
                sys_platform: str | None = None, machine: str | None = None,
                glibc: Callable[[], str | None] | None = None) -> HostFacts:
    """This host's facts. Never raises: every probe tried is recorded in ``probes``.

    ``matrix`` supplies the driver -> CUDA and GPU name -> compute capability
    tables (loaded from the default place when needed and not given). The other
    arguments replace what the probes look at, for tests: ``nvml`` the pynvml
    module (None: not installed), ``root`` the folder holding proc/, dev/ and
    usr/lib/wsl/lib, ``environ`` the environment (its PATH finds nvidia-smi and
    conda), ``sys_platform``/``machine`` the interpreter's platform, ``glibc``
    a function giving the glibc version.
    """
    root_path = Path(root)
    environ = os.environ if environ is None else environ
    path = environ.get("PATH", os.defpath)

    def which(name: str) -> str | None:
        return shutil.which(name, path=path)

    plat = host_platform(sys_platform, machine)
    linux = plat.startswith("linux")
    wsl = linux and _safe(lambda: detect_wsl(root_path, environ), False)
    container = _safe(lambda: detect_container(root_path, environ), Container()) if linux else Container()
    windows = wsl or plat.startswith("win")
    lookup = _Lookup(matrix)
    note = ""
    if container.detected and not container.dev_nvidia and not wsl:
        note = (f"this {container.kind} container has no GPU device nodes (/dev/nvidia*): "
                "it was started without GPU access")

    results: list[tuple[Probe, _Found | None]] = []

    def complete() -> bool:
        return any(found is not None and found.gpus is not None for _, found in results)

    if nvml is _DEFAULT:
        nvml = _safe(_import_pynvml, None)
    results.append(_probe(NVML, lambda: probe_nvml(nvml, lookup, windows, note)))
    if not complete():
        results.append(_probe(SMI, lambda: probe_nvidia_smi(
            find_nvidia_smi(which, root_path, wsl), lookup, windows, wsl=wsl, environ=environ,
            timeout=smi_timeout, container_note=note)))
    if not complete():
        results.append(_probe(PROC, lambda: probe_proc(root_path, lookup, windows, note)))

    found = next((f for _, f in results if f is not None and f.gpus is not None), None) or \
        next((f for _, f in results if f is not None), None)
    return HostFacts(
        platform=plat,
        python=python_version(),
        wsl=wsl,
        glibc=_safe(glibc or glibc_version, None) if linux else None,
        driver=found.driver if found else Driver(),
        gpus=(found.gpus or ()) if found else (),
        conda=_safe(lambda: conda_executables(which), ()),
        container=container,
        probes=tuple(probe for probe, _ in results),
    )


def _probe(name: str, run: Callable[[], tuple[Probe, _Found | None]]) -> tuple[Probe, _Found | None]:
    """A probe that raises anyway (a bug, an odd OS error) is recorded, not raised."""
    try:
        return run()
    except Exception as exc:
        return Probe(name, False, f"probe failed unexpectedly: {type(exc).__name__}: {exc}"), None


def _noted(detail: str, note: str) -> str:
    return f"{detail}; {note}" if note else detail


def _safe(func: Callable[[], Any], default: Any) -> Any:
    try:
        return func()
    except Exception:
        return default


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
