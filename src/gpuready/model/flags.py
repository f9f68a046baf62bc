"""Plan flags: parse them and apply them to host facts.

Each override replaces one detected fact ("what if this host had driver
535.104.05 and an A100?"), so a plan can be made for a machine we are not on.
Bad values raise `UsageError` with one clear line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ..errors import UsageError
from .facts import (COMPUTE_CAPABILITY, DRIVER_VERSION, PLATFORMS, PYTHON_VERSION, WINDOWS_FILE_VERSION, Driver,
                    Gpu, HostFacts)
from .matrix import Matrix

FLAVORS = ("pip", "conda")
LEVELS = (0, 1, 2, 3)  # certification levels (PRODUCT.md)
DEFAULT_LEVEL = 2


@dataclass(frozen=True)
class Constraints:
    """What the user asks of the plan beyond the host facts."""

    tf: SpecifierSet | None = None
    flavor: str = "pip"
    python_pinned: bool = False  # --python given: the conda flavor may not pick another


def parse_tf_spec(text: str) -> SpecifierSet:
    """A PEP 440 specifier; a bare version means that release series ("2.15" -> ==2.15.*)."""
    text = text.strip()
    try:
        if text and text[0].isdigit():
            version = Version(text)
            if len(version.release) <= 2:
                return SpecifierSet(f"=={text}.*")
            return SpecifierSet(f"=={text}")
        if not text:
            raise InvalidSpecifier(text)
        return SpecifierSet(text)
    except (InvalidSpecifier, InvalidVersion):
        raise UsageError(
            f"--tf: {text!r} is not a version or PEP 440 specifier (e.g. 2.15 or '>=2.16,<2.19')"
        ) from None


def windows_driver_number(text: str) -> str | None:
    """NVIDIA's number of a Windows driver from its file version: "32.0.15.6636" -> "566.36".

    Device Manager and WMI show the 4-part file version; its last five digits (third part without
    its leading "1", then the fourth padded to four digits) are the driver NVIDIA names.
    """
    match = WINDOWS_FILE_VERSION.fullmatch(text.strip())
    if match is None:
        return None
    digits = f"{int(match.group(1))}{int(match.group(2)):04d}"[-5:]
    return f"{int(digits[:3])}.{digits[3:]}"


def parse_driver(text: str) -> str | None:
    """A driver version, or None for 'none'. A Windows file version (32.0.15.6636) is read as
    NVIDIA's number (566.36)."""
    if text.strip().lower() == "none":
        return None
    windows = windows_driver_number(text)
    if windows is not None:
        return windows
    if not DRIVER_VERSION.fullmatch(text.strip()):
        raise UsageError(f"--driver: {text!r} is not a driver version (e.g. 535.104.05, or a Windows "
                         "driver's 32.0.15.6636) or 'none'")
    return text.strip()


def driver_branch(version: str) -> int:
    """The driver branch of a version: 535.104.05 -> 535; Windows 566.36 -> 565, 572.61 -> 570."""
    major = int(version.split(".")[0])
    return major - major % 5


def check_possible(driver: str | None, gpus: tuple[Gpu, ...], matrix: Matrix) -> None:
    """A what-if host must be able to exist: every GPU's architecture is driven by the driver's
    branch (matrix/gpus.toml [[architectures]]). UsageError with the fact otherwise."""
    if driver is None:
        return
    branch = driver_branch(driver)
    for gpu in gpus:
        if gpu.compute_capability is None:
            continue
        arch = matrix.architecture(gpu.compute_capability)
        if arch is None:
            continue
        if arch.last_branch is not None and branch > arch.last_branch:
            raise UsageError(f"no such host: driver {driver} (R{branch}) does not support compute capability "
                             f"{gpu.compute_capability} ({arch.name}): R{arch.last_branch} is the last branch "
                             f"that does ({arch.source})")
        if arch.first_branch is not None and branch < arch.first_branch:
            raise UsageError(f"no such host: driver {driver} (R{branch}) predates compute capability "
                             f"{gpu.compute_capability} ({arch.name}), first supported by R{arch.first_branch} "
                             f"({arch.source})")


def parse_gpus(text: str) -> tuple[str, ...]:
    values = tuple(part.strip() for part in text.split(","))
    for value in values:
        if not COMPUTE_CAPABILITY.fullmatch(value):
            raise UsageError(
                f"--gpu: {value!r} is not a compute capability X.Y (e.g. --gpu 8.0 or --gpu 8.0,7.5)"
            )
    return values


def parse_python(text: str) -> str:
    if not PYTHON_VERSION.fullmatch(text.strip()):
        raise UsageError(f"--python: {text!r} is not a Python version X.Y (e.g. 3.11)")
    return text.strip()


def parse_level(value: object) -> int:
    """A certification level 0-3 from a flag or a setting (text or number)."""
    text = str(value).strip()
    if text not in {str(level) for level in LEVELS}:
        raise UsageError(f"--level must be {', '.join(map(str, LEVELS[:-1]))} or {LEVELS[-1]}, not {value!r}")
    return int(text)


def parse_seconds(value: object, flag: str = "--timeout") -> float:
    """A positive number of seconds in ASCII digits ("600", "2.5"). Python's float() also takes
    full-width digits, "inf", "nan" and "1_0"; none of those is a time limit anyone typed."""
    text = str(value).strip()
    if re.fullmatch(r"-[0-9]+(\.[0-9]*)?|-\.[0-9]+", text):
        raise UsageError(f"{flag} must be positive, not {value!r}")
    if not re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", text):
        raise UsageError(f"{flag} must be a number of seconds (e.g. 600), not {value!r}")
    seconds = float(text)
    if not seconds > 0:
        raise UsageError(f"{flag} must be positive, not {value!r}")
    return seconds


def parse_platform(text: str) -> str:
    if text not in PLATFORMS:
        raise UsageError(f"--platform: {text!r} is not one of {', '.join(PLATFORMS)}")
    return text


def parse_flavor(text: str) -> str:
    if text not in FLAVORS:
        raise UsageError(f"--flavor: {text!r} is not one of {', '.join(FLAVORS)}")
    return text


def check_overrides(*, driver: str | None = None, gpu: str | None = None, python: str | None = None,
                    platform: str | None = None) -> None:
    """Validate the what-if flags before anything is probed (UsageError on the first bad one)."""
    if driver is not None:
        parse_driver(driver)
    if gpu is not None:
        parse_gpus(gpu)
    if python is not None:
        parse_python(python)
    if platform is not None:
        parse_platform(platform)


def apply_overrides(
    host: HostFacts,
    matrix: Matrix,
    *,
    driver: str | None = None,
    gpu: str | None = None,
    python: str | None = None,
    platform: str | None = None,
    wsl: bool = False,
) -> HostFacts:
    """Replace the facts the flags name; leave the others as detected."""
    changed: list[str] = list(host.overridden)
    facts = host
    if platform is not None:
        facts = facts.with_(platform=parse_platform(platform))
        changed.append("platform")
    if wsl:
        if facts.platform != "linux-64":
            raise UsageError(f"--wsl: WSL2 is linux-64, not {facts.platform}")
        facts = facts.with_(wsl=True)
        changed.append("wsl")
    if python is not None:
        facts = facts.with_(python=parse_python(python))
        changed.append("python")
    if driver is not None:
        version = parse_driver(driver)
        windows = facts.wsl or facts.platform == "win-64"
        cuda = matrix.newest_cuda_for_driver(version, windows) if version else None
        facts = facts.with_(driver=Driver(version, cuda, "override" if version else None))
        changed.append("driver")
    if gpu is not None:
        gpus = tuple(
            Gpu(index=i, name="what-if GPU (--gpu)", compute_capability=cc)
            for i, cc in enumerate(parse_gpus(gpu))
        )
        facts = facts.with_(gpus=gpus)
        changed.append("gpus")
    if driver is not None or gpu is not None:
        check_possible(facts.driver.version, facts.gpus, matrix)
    if driver is not None or gpu is not None or platform is not None:
        # What detection said about the driver and GPUs (a mismatch, a Jetson, MIG) is not
        # about the what-if host.
        facts = facts.with_(notes=(), jetson=False, l4t=None, mig_devices=())
    return facts.with_(overridden=tuple(dict.fromkeys(changed)))


def constraints_from_flags(tf: str | None, flavor: str | None, python: str | None) -> Constraints:
    return Constraints(
        tf=parse_tf_spec(tf) if tf else None,
        flavor=parse_flavor(flavor) if flavor else "pip",
        python_pinned=python is not None,
    )
