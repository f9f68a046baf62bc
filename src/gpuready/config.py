"""Configuration defaults, merged by Invoke under the ``gpuready`` key.

Users override them in ``invoke.yaml`` (project), ``~/.invoke.yaml`` (user) or
``INVOKE_GPUREADY_*`` environment variables, as with any Invoke setting.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "gpuready": {
        # Folder with the matrix TOML files; None = the one shipped with gpuready.
        "matrix_dir": None,
        # Where environment folders (inputs + locks) live, relative to the working directory.
        "envs_dir": "envs",
        # Package index for uv / pip / conda-lock's pip part; None = uv's default
        # (or UV_INDEX_URL / PIP_INDEX_URL from the environment).
        "index_url": None,
        # Seconds to wait for the index before giving up.
        "index_timeout": 30,
        # A conda-compatible executable to use (conda, mamba, micromamba); None = search PATH.
        "conda_exe": None,
        # Root for installed environments; None = the user's data directory.
        "prefix_root": None,
    }
}


def settings(config: Any) -> dict[str, Any]:
    """The ``gpuready`` section of an Invoke config (or the defaults), as a plain dict."""
    merged = dict(DEFAULTS["gpuready"])
    section = None
    if config is not None:
        try:
            section = config.get("gpuready") if hasattr(config, "get") else None
        except Exception:  # an Invoke DataProxy without the key
            section = None
    if section:
        merged.update({k: section[k] for k in section})
    return merged
