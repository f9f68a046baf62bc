"""The base of every typed record: frozen, no unknown keys, one parse and one write."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import UsageError

R = TypeVar("R", bound="Record")


class RecordError(UsageError):
    """A record on disk is malformed (exit 2): its message names the file and the key."""


def describe(error: ValidationError, where: str) -> str:
    """The first problem of a validation, in the words gpuready uses everywhere."""
    errors = error.errors()
    # Unknown and missing keys first: a wrong value next to a misspelt key is the key's fault.
    first = next((e for e in errors if e["type"] in ("extra_forbidden", "missing")), errors[0])
    key = ".".join(str(p) for p in first["loc"]) or "(top)"
    if first["type"] == "missing":
        return f"{where}: missing key {key!r}"
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown key {key!r}"
    if first["type"] in ("json_invalid", "json_type"):
        return f"{where}: not valid JSON: {first['msg']}"
    message = str(first["msg"]).removeprefix("Value error, ")
    if not first["loc"] or message.startswith(f"{key} "):
        return f"{where}: {message}"
    return f"{where}: {key}: {message}"


class Record(BaseModel):
    """A typed record: frozen, no unknown keys, one parse (`parse`) and one write (`dump`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @classmethod
    def parse(cls: type[R], text: str | bytes, where: str) -> R:
        try:
            return cls.model_validate_json(text)
        except ValidationError as error:
            raise RecordError(describe(error, where)) from None

    def dump(self) -> str:
        return self.model_dump_json(indent=2, by_alias=True) + "\n"
