"""The plain facts of this machine: platform, glibc, WSL, container hints, conda executables."""

from __future__ import annotations

import os
import platform as platform_mod
import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from ..model.facts import Container

CONDA_EXECUTABLES = ("conda", "mamba", "micromamba")
_WSL_MARKERS = ("microsoft", "wsl")
_CGROUP_KINDS = (("kubepods", "kubernetes"), ("libpod", "podman"), ("docker", "docker"),
                 ("containerd", "containerd"), ("lxc", "lxc"))
_TEGRA_RELEASE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)")


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
    """The X.Y of the interpreter gpuready runs on."""
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
        text = read_text(root / name)
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
        cgroup = (read_text(root / "proc/1/cgroup") or "").lower()
        kind = next((k for marker, k in _CGROUP_KINDS if marker in cgroup), None)
        if kind is None and environ.get("container"):  # systemd's convention (podman, nspawn, lxc)
            kind = environ["container"]
    try:
        dev_nvidia = any((root / "dev").glob("nvidia*"))
    except OSError:
        dev_nvidia = False
    return Container(detected=kind is not None, kind=kind, dev_nvidia=dev_nvidia)


def detect_jetson(root: Path) -> tuple[bool, str | None]:
    """A Jetson, and its L4T release: /etc/nv_tegra_release ("# R35 (release), REVISION: 4.1"
    -> "35.4.1"), or a device tree naming a Tegra SoC (then the release is unknown)."""
    text = read_text(root / "etc/nv_tegra_release")
    if text is not None:
        match = _TEGRA_RELEASE.search(text)
        return True, f"{match.group(1)}.{match.group(2)}" if match else None
    compatible = read_text(root / "proc/device-tree/compatible") or ""
    return "nvidia,tegra" in compatible, None


def nvidia_present(root: Path) -> bool:
    """The nvidia kernel module is loaded, or has made its device nodes (even in a container)."""
    try:
        return (root / "sys/module/nvidia").exists() or (root / "proc/driver/nvidia").exists() or \
            any((root / "dev").glob("nvidia*"))
    except OSError:
        return False


def conda_executables(which: Callable[[str], str | None]) -> tuple[str, ...]:
    """Full paths of conda, mamba and micromamba found on PATH, in that order."""
    found = []
    for name in CONDA_EXECUTABLES:
        path = which(name)
        if path:
            found.append(os.path.abspath(path))
    return tuple(found)


def safe(func: Callable[[], Any], default: Any) -> Any:
    try:
        return func()
    except Exception:
        return default


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
