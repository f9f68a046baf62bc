"""An installed environment's prefix, and every file gpuready keeps inside it.

One place for the layout that install writes and certify, doctor and setup read:

    <prefix>/                           the virtual environment or conda environment
    <prefix>/gpuready/install.json      `InstallRecord`: env name, plan, lock sha256, packages
    <prefix>/gpuready/<lock file>       a copy of the lock it was built from
    <prefix>/gpuready/activation.json   `Activation`: what activating it sets
    <prefix>/gpuready/certificate.json  the last `Certificate` (its sha256 also in state.json)
    <prefix>/gpuready/certificate.json.sig  its SSH signature, with `certify --sign KEY`
    <prefix>/gpuready/certify.log       TensorFlow's log of the last certification
    <prefix>/gpuready/state.json        `SetupState`: what the last setup did

Each record has one read and one write here. A record that is missing reads as None; one that
is malformed is a `RecordError` naming the file, never a KeyError later.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TypeVar

import platformdirs

from ..config import Settings
from ..errors import UsageError
from ..files import write_atomic
from ..model.certificate import Certificate
from ..model.records import Activation, InstallRecord, Record, RecordError, SetupState

META_DIR = "gpuready"
INSTALL_RECORD = "install.json"
ACTIVATION = "activation.json"
CERTIFICATE = "certificate.json"
CERTIFY_LOG = "certify.log"
STATE = "state.json"

R = TypeVar("R", bound=Record)


def default_root(configured: str | None = None) -> Path:
    """Where environments are installed by default (configurable as gpuready.prefix_root)."""
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("gpuready")) / "envs"


def resolve_prefix(env: str, prefix: str | os.PathLike[str] | None, settings: Settings) -> Path:
    """The prefix of an environment: --prefix DIR, else <prefix root>/<env>. Absolute."""
    if prefix is not None:
        if not str(prefix).strip():
            raise UsageError("--prefix: an empty path (give a directory, or leave --prefix out for "
                             f"the default {default_root(settings.prefix_root) / env})")
        return Path(prefix).expanduser().absolute()
    return (default_root(settings.prefix_root) / env).absolute()


def meta_dir(prefix: str | os.PathLike[str]) -> Path:
    return Path(prefix) / META_DIR


def record_path(prefix: str | os.PathLike[str], name: str) -> Path:
    return meta_dir(prefix) / name


def certificate_path(prefix: str | os.PathLike[str]) -> Path:
    return record_path(prefix, CERTIFICATE)


def python_of(prefix: str | os.PathLike[str]) -> Path | None:
    """The interpreter of a venv or conda prefix, or None when there is none."""
    root = Path(prefix)
    candidates = (
        [root / "python.exe", root / "Scripts" / "python.exe"] if sys.platform == "win32"
        else [root / "bin" / "python", root / "bin" / "python3"]
    )
    return next((c for c in candidates if c.exists()), None)


def site_packages(prefix: str | os.PathLike[str]) -> Path | None:
    root = Path(prefix)
    found = sorted(root.glob("lib/python3*/site-packages"))
    if not found and (root / "Lib" / "site-packages").is_dir():
        return root / "Lib" / "site-packages"
    return found[-1] if found else None


# --------------------------------------------------------------------------- records


def _read(kind: type[R], prefix: str | os.PathLike[str], name: str) -> R | None:
    path = record_path(prefix, name)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise RecordError(f"{path}: cannot be read: {error.strerror or error}") from None
    return kind.parse(data, str(path))


def _write(record: Record, prefix: str | os.PathLike[str], name: str) -> Path:
    path = record_path(prefix, name)
    write_atomic(path, record.dump().encode("utf-8"))
    return path


def read_install_record(prefix: str | os.PathLike[str]) -> InstallRecord | None:
    return _read(InstallRecord, prefix, INSTALL_RECORD)


def write_install_record(prefix: str | os.PathLike[str], record: InstallRecord) -> Path:
    return _write(record, prefix, INSTALL_RECORD)


def has_install_record(prefix: str | os.PathLike[str]) -> bool:
    return record_path(prefix, INSTALL_RECORD).is_file()


def read_activation(prefix: str | os.PathLike[str]) -> Activation | None:
    return _read(Activation, prefix, ACTIVATION)


def write_activation(prefix: str | os.PathLike[str], activation: Activation) -> Path:
    return _write(activation, prefix, ACTIVATION)


def read_certificate(prefix: str | os.PathLike[str]) -> Certificate | None:
    return _read(Certificate, prefix, CERTIFICATE)


def write_certificate(prefix: str | os.PathLike[str], certificate: Certificate) -> Path:
    return _write(certificate, prefix, CERTIFICATE)


def read_state(prefix: str | os.PathLike[str]) -> SetupState | None:
    """The last setup's state; None when missing or not readable as this gpuready's state."""
    try:
        return _read(SetupState, prefix, STATE)
    except RecordError:
        return None


def write_state(prefix: str | os.PathLike[str], state: SetupState) -> Path:
    return _write(state, prefix, STATE)


def record_certificate_digest(prefix: str | os.PathLike[str], sha256: str, status: str) -> None:
    """After a certificate is written: its digest (sha256 of the file's bytes) and status go into
    the prefix's state, when setup left one, so that setup's no-op reads that very certificate."""
    state = read_state(prefix)
    if state is not None:
        write_state(prefix, state.model_copy(update={"certificate_sha256": sha256, "certificate": status}))
