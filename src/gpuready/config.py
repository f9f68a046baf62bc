"""gpuready's settings: one typed model, read from Invoke's configuration under ``gpuready``.

Users set them in ``invoke.yaml`` (project), ``~/.invoke.yaml`` (user) or ``INVOKE_GPUREADY_*``
environment variables, as with any Invoke setting. Invoke is given only ``None`` defaults, so
it never casts an environment value itself (it would raise on ``INVOKE_GPUREADY_INDEX_TIMEOUT=abc``);
`Settings` validates every value, and a wrong one is a usage error naming the setting, before
any work starts.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UsageError


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Folder with the matrix TOML files; None = the one shipped with gpuready.
    matrix_dir: str | None = None
    # Where environment folders (inputs + locks) live, relative to the working directory.
    envs_dir: str = "envs"
    # Package index for uv / pip / conda-lock's pip part; None = UV_DEFAULT_INDEX, UV_INDEX_URL
    # or PIP_INDEX_URL from the environment, else default_index_url.
    index_url: str | None = None
    # The index used when nothing names one: the single place gpuready names a default index.
    default_index_url: str = "https://pypi.org/simple"
    # Seconds to wait for the index before giving up; retries of a failed or throttled request.
    index_timeout: int = Field(30, gt=0)
    index_retries: int = Field(3, ge=0)
    # The index's JSON simple API (PEP 691) that `matrix.refresh` reads; None = the index above.
    index_json_url: str | None = None
    # Where `matrix.refresh` and gpuready's tools cache downloads; None = the user's cache folder.
    cache_dir: str | None = None
    # A conda-compatible executable (conda, mamba, micromamba); None = search PATH.
    conda_exe: str | None = None
    # Let conda-lock download its own conda executable when none is found (needs the network).
    conda_bootstrap: bool = True
    # Root for installed environments; None = the user's data directory.
    prefix_root: str | None = None
    # certify: time limit of each certification level in seconds; None = 600 (a first start on
    # a GPU served only through PTX can JIT-compile kernels for many minutes).
    certify_timeout: float | None = Field(None, gt=0, allow_inf_nan=False)
    # install: free disk space (GB) required before downloading; None = the environment's
    # estimated size plus headroom.
    min_free_gb: float | None = Field(None, ge=0, allow_inf_nan=False)
    # install: let uv download a managed Python when the plan's Python is not on this host.
    allow_python_downloads: bool = False
    # The uv executable; None = the one of gpuready's `uv` dependency, else PATH.
    uv: str | None = None
    # install: a folder of wheels to install from alone, with no index and no network (a
    # bundle's wheels/, which `setup --bundle` and `install --bundle` set); None = the index.
    wheels_dir: str | None = None

    def cache_path(self, part: str) -> Path:
        """A folder of gpuready's cache (gpuready.cache_dir, else the user's cache folder)."""
        import platformdirs

        root = Path(self.cache_dir).expanduser() if self.cache_dir else Path(platformdirs.user_cache_dir("gpuready"))
        return root / part


SETTING_NAMES = tuple(Settings.model_fields)
# What Invoke is given (tasks.py / the gpuready Program): every key, no value.
INVOKE_DEFAULTS: dict[str, Any] = {"gpuready": {name: None for name in SETTING_NAMES}}


def _plain(section: Any) -> dict[str, Any]:
    """An Invoke DataProxy (or a mapping) as a plain dict of the values that were set."""
    if section is None:
        return {}
    if not hasattr(section, "keys"):
        raise UsageError(f"gpuready: the configuration's gpuready section must be a mapping, not {section!r}")
    return {str(key): section[key] for key in section.keys() if section[key] is not None}


def validate(values: Mapping[str, Any], where: str = "configuration") -> Settings:
    """Settings from plain values; UsageError naming the first wrong setting."""
    for key in values:
        if key not in SETTING_NAMES:
            near = difflib.get_close_matches(key, SETTING_NAMES, n=1)
            hint = f"; did you mean {near[0]}?" if near else f" (known: {', '.join(SETTING_NAMES)})"
            place = f"the {where}" if where == "configuration" else where
            raise UsageError(f"gpuready.{key}: unknown setting in {place}{hint}")
    try:
        return Settings.model_validate(dict(values))
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        value = values.get(str(first["loc"][0])) if first["loc"] else None
        env = f"INVOKE_GPUREADY_{str(first['loc'][0]).upper()}" if first["loc"] else ""
        source = (f"in {where}" if where != "configuration"
                  else f"set in invoke.yaml, ~/.invoke.yaml or {env}")
        raise UsageError(f"gpuready.{key} = {value!r}: {first['msg'].lower()} ({source})") from None


def from_config(config: Any) -> Settings:
    """The validated settings of an Invoke config (or the defaults for None)."""
    if config is None:
        return Settings()
    try:
        section = config.get("gpuready") if hasattr(config, "get") else None
    except Exception:  # an Invoke DataProxy without the key
        section = None
    return validate(_plain(section))
