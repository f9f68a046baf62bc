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
        # The index used when neither index_url nor the environment names one: the single
        # place where gpuready names the default index.
        "default_index_url": "https://pypi.org/simple",
        # Seconds to wait for the index before giving up.
        "index_timeout": 30,
        # The index's JSON simple API (PEP 691) that `matrix.refresh` reads; a mirror that
        # speaks it works too. Retries for failed or throttled requests.
        "index_json_url": None,  # None = the index above (index_url / environment / default)
        "index_retries": 3,
        # Where `matrix.refresh` caches index responses; None = the user's cache directory.
        "cache_dir": None,
        # A conda-compatible executable to use (conda, mamba, micromamba); None = search PATH.
        "conda_exe": None,
        # Let conda-lock download its own conda executable when none is found (needs the network).
        "conda_bootstrap": True,
        # Root for installed environments; None = the user's data directory.
        "prefix_root": None,
        # certify: time limit of each certification level in seconds; None = 600 (a first start
        # on a GPU served only through PTX can JIT-compile kernels for many minutes).
        "certify_timeout": None,
        # install: free disk space (GB) required before downloading; None = the environment's
        # estimated size (about 6.2 GB for a GPU environment, 1.9 GB for a CPU one) plus 0.5 GB.
        "min_free_gb": None,
        # install: let uv download a managed Python when the plan's Python is not on this host.
        "allow_python_downloads": False,
        # install: the uv executable; None = the one of gpuready's `uv` dependency, else PATH.
        "uv": None,
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
