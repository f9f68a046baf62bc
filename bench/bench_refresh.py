"""How long does `invoke matrix.refresh` take against the real package index?

1. `--check` on the committed matrix, with a cold and a warm cache.
2. A refresh that must read wheels: a copy of the matrix without its three newest releases,
   refreshed (written) with a cold and a warm cache: requests made and seconds.

Run: .venv/bin/python bench/bench_refresh.py      (needs the package index; writes only to /tmp)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INVOKE = Path(sys.executable).with_name("invoke")


def refresh(*args: str, cache: Path) -> tuple[float, dict]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "GPUREADY_MATRIX": ""}
    start = time.perf_counter()
    proc = subprocess.run([str(INVOKE), "matrix.refresh", "--json", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"matrix.refresh failed ({proc.returncode}): {proc.stderr.strip()}")
    return seconds, json.loads(proc.stdout)


def without_newest(folder: Path, count: int) -> list[str]:
    path = folder / "tensorflow.toml"
    text = path.read_text(encoding="utf-8")
    versions = re.findall(r'^\[releases\."([^"]+)"\]', text, re.M)[-count:]
    for version in versions:
        text = re.sub(r'\[releases\."%s"\]\n(?:[^\[\n].*\n)*\n?' % re.escape(version), "", text)
    path.write_text(text, encoding="utf-8")
    return versions


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-refresh-") as tmp:
        cache = Path(tmp) / "cache"
        for label in ("cold", "warm"):
            seconds, report = refresh("--check", cache=cache)
            print(f"--check, {label} cache: {seconds:.2f} s wall, {report['requests']} requests, "
                  f"current={report['current']}, new={[n['tensorflow'] for n in report['new']]}")
        shutil.rmtree(cache)
        for label in ("cold", "warm"):
            folder = Path(tmp) / f"matrix-{label}"
            shutil.copytree(ROOT / "matrix", folder, ignore=shutil.ignore_patterns("__pycache__"))
            removed = without_newest(folder, 3)
            seconds, report = refresh("--matrix", str(folder), cache=cache)
            size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
            print(f"refresh re-adding {', '.join(removed)}, {label} cache: {seconds:.2f} s wall, "
                  f"{report['requests']} requests, written={report['written']}, cache {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
