"""The records gpuready keeps on disk, each one typed model with one parse and one write.

    <prefix>/gpuready/install.json     `InstallRecord`: what install built, from which lock, for which plan
    <prefix>/gpuready/state.json       `SetupState`: what setup did, for its no-op check
    <prefix>/gpuready/activation.json  `Activation`: what activating the environment sets
    envs/<env>/inputs.toml             `inputs.Inputs`: what a lock was made from
    <prefix>/gpuready/certificate.json `certificate.Certificate`

Every record carries its schema number; a file that does not parse, has a key too many or one
too few, or a value of the wrong type is one `RecordError` naming the file and the key.
"""

from __future__ import annotations

import os
from typing import Literal, Mapping

from pydantic import Field

from ._record import Record, RecordError, describe
from .inputs import Inputs
from .plan import Plan

__all__ = ["Activation", "InstallRecord", "Record", "RecordError", "SetupState", "describe"]

class Activation(Record):
    """What activating an environment sets. Paths are relative to the prefix."""

    schema_version: Literal[1] = Field(1, alias="schema")
    library_dirs: tuple[str, ...] = ()  # prepended to LD_LIBRARY_PATH
    xla_cuda_data_dir: str | None = None  # appended to XLA_FLAGS as --xla_gpu_cuda_data_dir
    defaults: dict[str, str] = {}  # set unless already set
    reasons: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.library_dirs or self.xla_cuda_data_dir or self.defaults)

    def environment(self, prefix: str | os.PathLike[str], base: Mapping[str, str]) -> dict[str, str]:
        """`base` with what activation sets, for a subprocess of the environment's Python."""
        env = dict(base)
        root = os.fspath(prefix)
        if self.library_dirs:
            dirs = [os.path.join(root, d) for d in self.library_dirs]
            if env.get("LD_LIBRARY_PATH"):
                dirs.append(env["LD_LIBRARY_PATH"])
            env["LD_LIBRARY_PATH"] = os.pathsep.join(dirs)
        if self.xla_cuda_data_dir:
            flag = f"--xla_gpu_cuda_data_dir={os.path.join(root, self.xla_cuda_data_dir)}"
            env["XLA_FLAGS"] = f"{env['XLA_FLAGS']} {flag}" if env.get("XLA_FLAGS") else flag
        for key, value in self.defaults.items():
            env.setdefault(key, value)
        return env


class InstallRecord(Record):
    """<prefix>/gpuready/install.json: what `install` built and from what."""

    schema_version: Literal[2] = Field(2, alias="schema")
    env: str
    flavor: str
    prefix: str
    inputs: Inputs  # the lock's inputs: versions, Python, platform
    plan: Plan | None = None  # the full plan (with the host facts it was made for), when known
    lock_file: str
    lock_sha256: str
    packages: dict[str, str]  # {canonical name: version} the lock installs
    warnings: tuple[str, ...] = ()  # the plan's warning codes the activation was shaped by
    installer: str
    interpreter: str | None = None
    installed_at: str
    gpuready: str
    seconds: dict[str, float] = {}


class SetupState(Record):
    """<prefix>/gpuready/state.json: what the last `setup` did, so that a re-run can do nothing."""

    schema_version: Literal[2] = Field(2, alias="schema")
    env: str
    prefix: str
    flavor: str
    plan_hash: str
    lock_sha256: str
    driver: str | None
    gpus: tuple[str | None, ...] = ()
    what_if: tuple[str, ...] = ()
    certificate: str  # certified | cpu-only | failed | skipped
    certificate_sha256: str | None = None  # the digest of the certificate setup wrote
    at: str
    seconds: dict[str, float] = {}
    install_seconds: dict[str, float] | None = None
