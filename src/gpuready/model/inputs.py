"""A lock's inputs: a plan reduced to what decides the lock. Equal inputs give equal lock files.

`envs/<env>/inputs.toml` is this record. Its digest (the schema and every field, independent of
formatting and of the gpuready version that wrote it) is what `lock-state.toml` records.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from typing import Any

import tomli_w
from packaging.requirements import InvalidRequirement, Requirement
from pydantic import ValidationError, ValidationInfo, field_validator, model_validator

from ._record import Record, RecordError, describe
from .facts import PLATFORMS, PYTHON_VERSION

INPUTS_FILE = "inputs.toml"
# Bump when the meaning of the inputs or the way they are locked changes: every folder then
# reads as stale until relocked.
SCHEMA = 1
FLAVORS = ("pip", "conda")
DEVICES = ("gpu", "cpu")

_HEADER = """\
# Inputs of envs/{name}: what `invoke lock` resolved into the lock files beside this one.
# Relock after editing:  invoke lock --env {name}
# Check without writing: invoke lock --check   (lock-state.toml holds the recorded hashes)
# gpuready.version records who wrote this file; it is not part of the input hash.

"""


class InputsError(RecordError):
    """An environment folder's inputs are missing or malformed (exit 2)."""


class Inputs(Record):
    env: str
    device: str  # "gpu" | "cpu"
    tensorflow: str
    distribution: str  # "tensorflow" | "tensorflow-cpu"
    source: str  # "pypi" | "conda-forge"
    python: str
    platform: str
    flavor: str  # "pip" | "conda"
    cuda: str | None = None
    cudnn: str | None = None
    build_cuda: str | None = None
    glibc: str | None = None  # the glibc floor of the chosen wheels
    and_cuda: str
    requirements: tuple[str, ...] = ()
    conda_packages: tuple[str, ...] = ()
    conda_channel: str | None = None
    virtual_packages: dict[str, str] = {}

    @field_validator("env", "tensorflow", "distribution", "source", "and_cuda")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty string")
        return value

    @field_validator("python")
    @classmethod
    def _python(cls, value: str) -> str:
        if not PYTHON_VERSION.fullmatch(value):
            raise ValueError(f"python = {value!r} is not a Python version X.Y")
        return value

    @field_validator("platform", "flavor", "device")
    @classmethod
    def _one_of(cls, value: str, info: ValidationInfo) -> str:
        allowed = {"platform": PLATFORMS, "flavor": FLAVORS, "device": DEVICES}[str(info.field_name)]
        if value not in allowed:
            raise ValueError(f"{info.field_name} = {value!r} is not one of {', '.join(allowed)}")
        return value

    @field_validator("requirements")
    @classmethod
    def _requirements(cls, lines: tuple[str, ...]) -> tuple[str, ...]:
        for line in lines:
            try:
                Requirement(line)
            except InvalidRequirement as error:
                raise ValueError(f"{line!r} is not a requirement: {error}") from None
        return lines

    @field_validator("virtual_packages", mode="before")
    @classmethod
    def _virtual(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and k.startswith("__") and isinstance(v, str) for k, v in value.items()):
            raise ValueError(f"virtual_packages must map __names to version strings, not {value!r}")
        return value

    @model_validator(mode="after")
    def _flavor_needs(self) -> Inputs:
        if self.flavor == "pip" and not self.requirements:
            raise ValueError("the pip flavor needs at least one line in requirements")
        if self.flavor == "conda" and not (self.conda_packages and self.conda_channel):
            raise ValueError("the conda flavor needs conda_packages and conda_channel")
        return self

    # ------------------------------------------------------------------ digest and TOML

    def digest(self) -> str:
        """sha256 of the inputs (and the schema), independent of formatting and version."""
        material = json.dumps({"schema": SCHEMA, **self.model_dump(mode="json")}, sort_keys=True,
                              separators=(",", ":"))
        return hashlib.sha256(material.encode()).hexdigest()

    def to_toml(self, writer_version: str | None = None) -> str:
        """The inputs.toml text; `writer_version` (default: this gpuready's) is recorded, not hashed."""
        if writer_version is None:
            from .. import __version__ as writer_version
        data = {k: v for k, v in self.model_dump(mode="json").items()
                if v is not None and k != "virtual_packages"}
        data["virtual_packages"] = dict(self.virtual_packages)
        data["gpuready"] = {"version": writer_version}
        return _HEADER.format(name=self.env) + tomli_w.dumps(data)

    @classmethod
    def from_toml(cls, text: str, where: str = INPUTS_FILE) -> Inputs:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise InputsError(f"{where}: not valid TOML: {error}") from None
        data.pop("gpuready", None)  # who wrote it: not an input
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise InputsError(describe(error, where)) from None


def inputs_from_plan(plan: Any) -> Inputs:
    """The inputs of a `Plan` (host facts, reasons and findings left out)."""
    return Inputs(
        env=plan.env, device=plan.device, tensorflow=plan.tensorflow,
        distribution=plan.distribution, source=plan.source, python=plan.python,
        platform=plan.platform, flavor=plan.flavor, cuda=plan.cuda, cudnn=plan.cudnn,
        build_cuda=plan.build_cuda, glibc=plan.glibc, and_cuda=plan.and_cuda,
        requirements=tuple(plan.requirements), conda_packages=tuple(plan.conda_packages),
        conda_channel=plan.conda_channel, virtual_packages=dict(plan.virtual_packages),
    )
