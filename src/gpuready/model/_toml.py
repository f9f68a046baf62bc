"""Reading TOML data files with every mistake named: the file, the key path and the problem.

The matrix files are read through `Table`, which checks types and unknown keys as it goes, so a
malformed file is one `MatrixError` (exit 2) and never a KeyError later.
"""

from __future__ import annotations

import tomllib
from typing import Any, Iterator

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ..errors import MatrixError


class Table:
    """A TOML table with the file and key path it came from, for error messages."""

    def __init__(self, file: str, path: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise MatrixError(file, path or "(top)", f"expected a table, got {kind_of(data)}")
        self.file, self.path, self.data = file, path, data

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def only(self, *allowed: str) -> None:
        for key in self.data:
            if key not in allowed:
                raise MatrixError(
                    self.file, self._key(key), f"unknown key (expected one of: {', '.join(allowed)})"
                )

    def error(self, key: str, problem: str) -> MatrixError:
        return MatrixError(self.file, self._key(key), problem)

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self.error(key, "missing")
            return default
        value = self.data[key]
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise self.error(key, f"expected {kind.__name__}, got {kind_of(value)} {value!r}")
        return value

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if value is default and default is not ...:
            return tuple(default)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{key}[{i}]", f"expected str, got {kind_of(item)} {item!r}")
        return tuple(value)

    def table(self, key: str, default: Any = ...) -> Table:
        if key not in self.data and default is not ...:
            return Table(self.file, self._key(key), default)
        return Table(self.file, self._key(key), self.get(key, dict))

    def items(self) -> Iterator[tuple[str, Table]]:
        for key in self.data:
            yield key, self.table(key)

    def version(self, key: str, value: str | None = None, *, what: str = "version") -> Version:
        text = self.get(key, str) if value is None else value
        try:
            return Version(text)
        except InvalidVersion:
            raise self.error(key, f"not a valid {what}: {text!r}") from None

    def list_of_tables(self, key: str, default: Any = ...) -> list[Table]:
        items = self.get(key, list, default)
        if items is default and default is not ...:
            return []
        return [Table(self.file, f"{self._key(key)}[{i}]", item) for i, item in enumerate(items)]

    def specifier(self, key: str, default: Any = ...) -> Any:
        text = self.get(key, str, default)
        if text is default and default is not ...:
            return default
        try:
            return SpecifierSet(text)
        except InvalidSpecifier:
            raise self.error(key, f"not a PEP 440 specifier: {text!r}") from None


def kind_of(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def parse_document(name: str, text: str, schema: int = 1) -> Table:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(name, "(syntax)", str(exc)) from None
    table = Table(name, "", data)
    if table.get("schema", int) != schema:
        raise table.error("schema", f"unsupported schema (expected {schema})")
    return table
