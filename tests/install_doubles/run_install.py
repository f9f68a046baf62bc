"""Run one install in its own process: python run_install.py FOLDER PREFIX SETTINGS_JSON.

Prints 'ok <prefix>' or 'error <exit code> <message>' and exits 0 or the error's code, so that
tests can kill it, or run two at once."""

from __future__ import annotations

import sys

from gpuready.config import Settings
from gpuready.lock.folder import EnvFolder
from gpuready.errors import GpureadyError
from gpuready.env.install import install


def main() -> int:
    folder, prefix, settings = sys.argv[1], sys.argv[2], Settings.model_validate_json(sys.argv[3])
    try:
        result = install(EnvFolder(folder), prefix, settings=settings)
    except GpureadyError as error:
        print(f"error {error.exit_code} {error.message}", flush=True)
        return error.exit_code
    print(f"ok {result.prefix}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
