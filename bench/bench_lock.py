"""How long does locking take? The committed default set (envs/) against the real package index, cold and warm,
and `invoke lock --check` / `invoke lock --all` on the committed envs/.

Run: .venv/bin/python bench/bench_lock.py      (needs the package index; writes only to /tmp)
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpuready import lock as locking
from gpuready.config import Settings
from gpuready.lock.folder import env_folders

ROOT = Path(__file__).resolve().parent.parent


def lock_set(inputs, envs: Path, settings: Settings) -> list[tuple[str, float]]:
    times = []
    for each in inputs:
        start = time.perf_counter()
        locking.lock_inputs(envs / each.env, each, settings)
        times.append((each.env, time.perf_counter() - start))
    return times


def same_as_committed(envs: Path) -> bool:
    committed = ROOT / "envs"
    for folder in envs.iterdir():
        for path in folder.iterdir():
            if (committed / folder.name / path.name).read_bytes() != path.read_bytes():
                return False
    return True


def main() -> None:
    plans = [folder.inputs for folder in env_folders(ROOT / "envs")]  # the committed default set
    settings = Settings(index_timeout=30)
    invoke = str(Path(sys.executable).with_name("invoke"))
    with tempfile.TemporaryDirectory(prefix="bench-lock-") as scratch:
        scratch_path = Path(scratch)
        os.environ["UV_CACHE_DIR"] = str(scratch_path / "uv-cache")  # a cold cache, then the same one warm
        cold = lock_set(plans, scratch_path / "cold", settings)
        warm = lock_set(plans, scratch_path / "warm", settings)
        identical = same_as_committed(scratch_path / "warm")
        shutil.copytree(ROOT / "envs", scratch_path / "work" / "envs")
        start = time.perf_counter()
        subprocess.run([invoke, "-r", str(ROOT), "lock", "--all"], cwd=scratch_path / "work", check=True,
                       capture_output=True)
        all_seconds = time.perf_counter() - start
    checks = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([invoke, "lock", "--check"], cwd=ROOT, check=True, capture_output=True)
        checks.append(time.perf_counter() - start)

    print(f"{'folder':32} {'cold uv cache':>14} {'warm uv cache':>14}")
    for (env, c), (_, w) in zip(cold, warm):
        print(f"{env:32} {c:12.2f} s {w:12.2f} s")
    print(f"{'default set (' + str(len(plans)) + ' locks)':32} {sum(t for _, t in cold):12.2f} s "
          f"{sum(t for _, t in warm):12.2f} s")
    print(f"invoke lock --all (cli, warm)    {all_seconds:12.2f} s")
    print(f"invoke lock --check (cli)        median {statistics.median(checks):.2f} s (min {min(checks):.2f})")
    print(f"fresh locks byte-identical to the committed envs/: {'yes' if identical else 'no (the index moved on)'}")


if __name__ == "__main__":
    main()
