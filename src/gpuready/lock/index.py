"""The package index: where locks and installs get their files, and how uv is made to ask it.

One place for the index URL (gpuready.index_url, else the environment's UV_* / PIP_INDEX_URL,
else gpuready.default_index_url), for the environment uv runs in (isolated from the user's uv
configuration, bounded HTTP), and for the words that say the index could not be reached.
"""

from __future__ import annotations

import os
from typing import Mapping

from ..config import Settings
from ..errors import WorkFailed

# UV_* variables that change where or how uv connects, not what it resolves.
# (Not UV_NO_CACHE: the pylock.toml step reads the index pages the first step cached.)
_UV_KEEP = ("UV_CACHE_DIR", "UV_NATIVE_TLS", "UV_SYSTEM_CERTS", "UV_INSECURE_HOST")
UNREACHABLE = ("error sending request", "Failed to fetch", "dns error", "tcp connect error",
               "operation timed out", "Could not connect")
HTTP_RETRIES = 1


class IndexUnreachable(WorkFailed):
    """The package index did not answer (exit 1); nothing was written."""


class ResolutionFailed(WorkFailed):
    """The requirements cannot be resolved on the index (exit 1); nothing was written."""


def index_url(settings: Settings, environ: Mapping[str, str] = os.environ) -> str:
    """gpuready.index_url, else UV_DEFAULT_INDEX / UV_INDEX_URL / PIP_INDEX_URL, else the default."""
    for value in (settings.index_url, environ.get("UV_DEFAULT_INDEX"),
                  environ.get("UV_INDEX_URL"), environ.get("PIP_INDEX_URL")):
        if value:
            return str(value).rstrip("/")
    return settings.default_index_url.rstrip("/")


def uv_environment(settings: Settings, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment uv runs in: no user config, bounded HTTP, no Python downloads."""
    timeout = str(settings.index_timeout)
    env = {k: v for k, v in environ.items() if not k.startswith("UV_") or k in _UV_KEEP}
    env.update(UV_NO_CONFIG="1", UV_HTTP_TIMEOUT=timeout, UV_HTTP_CONNECT_TIMEOUT=timeout,
               UV_HTTP_RETRIES=str(HTTP_RETRIES), UV_PYTHON_DOWNLOADS="never", NO_COLOR="1")
    return env
