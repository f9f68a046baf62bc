"""Invoke's configuration sources, checked as they are read: one line and exit 2, never a traceback.

Invoke reads invoke.yaml (project), ~/.invoke.yaml (user), /etc/invoke.yaml (system) and
``INVOKE_*`` variables itself, and on bad input raises: a YAML syntax error, a file whose top
is a list, ``gpuready: [1, 2]`` or ``gpuready: {envs_dir: {a: 1}}`` (its merge cannot reconcile
a mapping with a value) and ``INVOKE_GPUREADY_INDEX_TIMEOUT=abc`` once a file set the value to
a number (Invoke casts the variable to the file's type with ``int()``, which also takes
full-width digits). `install()` wraps the two places Invoke offers no hook for:

- each config file's loader: a syntax error names the file, line and column; the gpuready
  section is checked against `Settings` there, so an unknown key names the file and the nearest
  known key;
- the environment loader: a ``INVOKE_GPUREADY_*`` value is kept as the string it is, so that
  `Settings` validates it (and names the variable) instead of Invoke casting it.

The `gpuready` command installs these before it reads anything. The stock `invoke` command
reads the system and user files before it imports tasks.py, so there only invoke.yaml beside
tasks.py (and the environment) are covered; the `gpuready` command covers all of them.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Callable

from invoke.config import Config
from invoke.env import Environment
from invoke.exceptions import Exit

from ..config import SETTING_NAMES, validate
from ..errors import EXIT_USAGE, UsageError

_installed = False


def _fail(message: str) -> Exit:
    return Exit(f"gpuready: {message}", code=EXIT_USAGE)


def _yaml_error(path: str, error: Exception) -> Exit:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else path
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return _fail(f"{where}: not valid YAML: {problem}")


def check_file_data(path: str, data: Any) -> dict[str, Any]:
    """The data of one config file, or Exit(2) naming the file and what is wrong."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        return_type = type(data).__name__
        raise _fail(f"{path}: the file must hold a mapping of settings (key: value), not a {return_type}")
    defaults = Config.global_defaults()
    for key, value in data.items():
        if isinstance(defaults.get(key), dict) and not isinstance(value, dict):
            raise _fail(f"{path}: {key} must be a mapping of settings, not {value!r}")
    for key in data:
        if key != "gpuready" and key not in defaults and difflib.get_close_matches(str(key).lower(), ["gpuready"], cutoff=0.75):
            raise _fail(f"{path}: {key}: unknown section; did you mean gpuready? (its settings would be ignored)")
    section = data.get("gpuready")
    if section is None:
        return data
    if not isinstance(section, dict):
        raise _fail(f"{path}: gpuready must be a mapping of settings (e.g. gpuready: {{index_timeout: 60}}), "
                    f"not {section!r}")
    for key, value in section.items():
        if isinstance(value, (dict, list)) and str(key) in SETTING_NAMES:
            raise _fail(f"{path}: gpuready.{key} must be a single value, not {value!r}")
    try:
        validate({str(k): v for k, v in section.items() if v is not None}, where=path)
    except UsageError as error:
        raise _fail(error.message) from None
    return data


def _checked(loader: Callable[[Config, str], Any]) -> Callable[[Config, str], Any]:
    def load(self: Config, path: str) -> Any:
        from invoke.config import yaml  # Invoke's own (vendored) PyYAML, not necessarily ours

        try:
            data = loader(self, path)
        except yaml.YAMLError as error:
            raise _yaml_error(path, error) from None
        except json.JSONDecodeError as error:
            raise _fail(f"{path}, line {error.lineno}, column {error.colno}: not valid JSON: {error.msg}") from None
        except UnicodeDecodeError as error:
            raise _fail(f"{path}: not UTF-8 text (byte {error.start})") from None
        return check_file_data(path, data)

    load.__wrapped__ = loader  # type: ignore[attr-defined]
    return load


def _path_set(self: Environment, key_path: Any, value: str) -> None:
    """Invoke's own, except that gpuready's values stay strings for `Settings` to check."""
    if not key_path or key_path[0] != "gpuready":
        return _stock_path_set(self, key_path, value)
    obj = self.data
    for key in key_path[:-1]:
        obj = obj.setdefault(key, {})
    obj[key_path[-1]] = value


_stock_path_set = Environment._path_set


def install() -> None:
    """Check every config file and INVOKE_GPUREADY_* value as Invoke reads it (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    Config._load_yaml = _checked(Config._load_yaml)  # type: ignore[method-assign]
    Config._load_yml = Config._load_yaml  # type: ignore[method-assign]
    Config._load_json = _checked(Config._load_json)  # type: ignore[method-assign]
    Environment._path_set = _path_set  # type: ignore[method-assign]
