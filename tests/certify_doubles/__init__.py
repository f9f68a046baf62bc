"""Test doubles for certification: Python environments made on the spot, and a check process
that misbehaves on purpose (hangs, is killed, crashes, prints garbage), which a real TensorFlow
cannot be made to do here. Tests only: nothing here is part of the product."""

from __future__ import annotations

import base64
import hashlib
import sysconfig
import venv
from pathlib import Path

from gpuready.env import layout
from gpuready.model.inputs import Inputs, inputs_from_plan
from gpuready.model.plan import Plan
from gpuready.model.records import InstallRecord

HERE = Path(__file__).resolve().parent
MISBEHAVE = HERE / "misbehave.py"


def bare_env(path: Path) -> Path:
    """A real, empty virtual environment (no pip, no TensorFlow) at `path`."""
    venv.create(path, with_pip=False, symlinks=True, clear=True)
    return path


def site_packages(prefix: Path) -> Path:
    relative = Path(sysconfig.get_path("purelib")).relative_to(sysconfig.get_path("data"))
    return prefix / relative


def _record_line(site: Path, path: Path) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()
    return f"{path.relative_to(site).as_posix()},sha256={digest},{path.stat().st_size}"


def add_distribution(prefix: Path, name: str, version: str, record: bool = True) -> Path:
    """Install `name==version` as a wheel installer would leave it: a module, its dist-info with
    METADATA and a RECORD of every file's sha256 (RECORD itself unhashed, as the spec has it).
    record=False leaves the RECORD out. Returns the module's file."""
    site = site_packages(prefix)
    module = site / name.replace("-", "_") / "__init__.py"
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(f"__version__ = {version!r}\n", encoding="utf-8")
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                                   encoding="utf-8")
    if record:
        lines = [_record_line(site, module), _record_line(site, info / "METADATA"),
                 f"{module.parent.name}/__pycache__/__init__.cpython-311.pyc,,", f"{info.name}/RECORD,,"]
        (info / "RECORD").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return module


def add_fake_tensorflow(prefix: Path, build_info: str) -> Path:
    """A `tensorflow` package folder holding only python/platform/build_info.py: enough for the
    CUDA library probe, which reads it as text and never imports TensorFlow."""
    root = site_packages(prefix) / "tensorflow"
    platform = root / "python" / "platform"
    platform.mkdir(parents=True, exist_ok=True)
    (root / "__init__.py").write_text("raise ImportError('a stand-in, not TensorFlow')\n", encoding="utf-8")
    (platform / "build_info.py").write_text(f"import collections\n\n{build_info}\n", encoding="utf-8")
    return root


def cpu_inputs(env: str = "tf2.21-cpu-py3.11-pip") -> Inputs:
    return Inputs(env=env, device="cpu", tensorflow="2.21.0", distribution="tensorflow-cpu", source="pypi",
                  python="3.11", platform="linux-64", flavor="pip", and_cuda="none",
                  requirements=("tensorflow-cpu==2.21.0",))


def write_install_record(prefix: Path, *, packages: dict[str, str], plan: Plan | None = None,
                         lock_text: str = "tensorflow-cpu==2.21.0\n", env: str = "tf2.21-cpu-py3.11-pip") -> Path:
    """The record `invoke install` leaves in <prefix>/gpuready/ (install.json and the lock copy), for
    an environment these tests made by hand. Without a plan it records only the lock's inputs."""
    meta = prefix / "gpuready"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "requirements.txt").write_text(lock_text, encoding="utf-8")
    inputs = inputs_from_plan(plan) if plan is not None else cpu_inputs(env)
    record = InstallRecord(env=inputs.env, flavor="pip", prefix=str(prefix), inputs=inputs, plan=plan,
                           lock_file="requirements.txt", lock_sha256=hashlib.sha256(lock_text.encode()).hexdigest(),
                           packages=packages, installer="tests (by hand)", installed_at="2026-01-01T00:00:00+00:00",
                           gpuready="tests")
    return layout.write_install_record(prefix, record)
