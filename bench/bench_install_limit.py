"""What separates gpuready's cold install of the GPU pip lock from the download limit?

Side by side in one run, each round in a rotated order, on the same lock
(envs/tf2.21-cuda12.5-py3.11-pip, 48 files, about 2.8 GB):

    download     the lock's files with curl --parallel (8 at once): no route can beat it
    unzip        those files unpacked, one process per core: the CPU's share of any install
    uv           what gpuready runs: `uv pip sync --require-hashes` into a new venv, empty cache
                 (same filesystem, uv's default hardlink from its cache)
    uv-local     the same from the downloaded files (`--offline --no-index --find-links`, the
                 bundle route): uv's install work without the network
    uv-dl100     uv with UV_CONCURRENT_DOWNLOADS=100 (default 50)
    uv-copy      uv with UV_LINK_MODE=copy (what a cache on another filesystem costs)

Run: .venv/bin/python bench/bench_install_limit.py [--rounds 2] [--json FILE] [--only uv,download]
Needs about 20 GB free under $BENCH_TMP (default: the system temp folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = "tf2.21-cuda12.5-py3.11-pip"
sys.path.insert(0, str(ROOT / "src"))


def _artifacts():
    from gpuready.bundle.artifacts import lock_artifacts

    pylock = (ROOT / "envs" / ENV / "pylock.toml").read_text()
    return lock_artifacts(pylock, "3.11", "linux-64", what=ENV)


def _uv() -> str:
    from gpuready.config import Settings
    from gpuready.tools import require_uv

    return require_uv(Settings())


def download(folder: Path) -> float:
    folder.mkdir(parents=True)
    command = ["curl", "--parallel", "--parallel-max", "8", "--fail", "--silent", "--show-error",
               "--no-progress-meter", "--location"]
    for artifact in _artifacts():
        command += ["-o", str(folder / artifact.filename), artifact.url]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def _extract(args: tuple[str, str]) -> int:
    wheel, target = args
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return 0


def unzip(files: Path, target: Path) -> float:
    wheels = sorted(files.iterdir(), key=lambda p: -p.stat().st_size)  # the big ones first
    started = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(_extract, [(str(w), str(target / w.name)) for w in wheels]))
    return time.perf_counter() - started


def uv_sync(work: Path, extra_env: dict[str, str], source: list[str]) -> float:
    uv = _uv()
    venv = work / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env.update(UV_NO_CONFIG="1", UV_CACHE_DIR=str(work / "cache"), UV_PYTHON_DOWNLOADS="never", **extra_env)
    subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(venv)], check=True, env=env)
    lock = ROOT / "envs" / ENV / "requirements.txt"
    started = time.perf_counter()
    subprocess.run([uv, "pip", "sync", "--quiet", "--require-hashes", "--strict", *source,
                    "--python", str(venv / "bin" / "python"), str(lock)], check=True, env=env)
    return time.perf_counter() - started


def settle() -> None:
    os.sync()
    time.sleep(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json")
    parser.add_argument("--only", default="download,unzip,uv,uv-local,uv-dl100,uv-copy")
    args = parser.parse_args()
    routes = args.only.split(",")
    base = Path(os.environ.get("BENCH_TMP") or tempfile.gettempdir())
    from gpuready.config import Settings
    from gpuready.lock.index import index_url

    index = ["--index-url", index_url(Settings())]  # gpuready's own setting, as setup uses it
    results: list[dict[str, float]] = []
    for number in range(args.rounds):
        order = routes[number % len(routes):] + routes[:number % len(routes)]
        # download and unzip need the files; the local route reads them: fetch them first each round
        work = Path(tempfile.mkdtemp(prefix="bench-limit-", dir=base))
        files = work / "files"
        row: dict[str, float] = {}
        try:
            if "download" not in order:
                download(files)
            for route in order:
                settle()
                target = work / route
                target.mkdir(exist_ok=True)
                if route == "download":
                    if files.exists():
                        shutil.rmtree(files)
                    row[route] = download(files)
                elif route == "unzip":
                    row[route] = unzip(files if files.exists() else _fetched(files), target)
                elif route == "uv":
                    row[route] = uv_sync(target, {}, index)
                elif route == "uv-local":
                    row[route] = uv_sync(target, {"UV_OFFLINE": "1"},
                                         ["--offline", "--no-index", "--find-links", str(_fetched(files))])
                elif route == "uv-dl100":
                    row[route] = uv_sync(target, {"UV_CONCURRENT_DOWNLOADS": "100"}, index)
                elif route == "uv-copy":
                    row[route] = uv_sync(target, {"UV_LINK_MODE": "copy"}, index)
                print(f"round {number + 1}: {route:9} {row[route]:6.1f} s", flush=True)
                if route != "download":
                    shutil.rmtree(target, ignore_errors=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        results.append(row)
    print()
    print("route       " + "".join(f"round {i + 1:<3}" for i in range(len(results))) + " median   / download")
    limit = statistics.median(r["download"] for r in results if "download" in r) if "download" in routes else None
    for route in routes:
        values = [r[route] for r in results if route in r]
        median = statistics.median(values)
        ratio = f"{median / limit:6.2f}x" if limit else ""
        print(f"{route:10}  " + "".join(f"{v:7.1f}s  " for v in values) + f"{median:6.1f}s  {ratio}")
    if args.json:
        Path(args.json).write_text(json.dumps({"env": ENV, "rounds": results}, indent=2) + "\n")


def _fetched(files: Path) -> Path:
    if not files.exists():
        download(files)
    return files


if __name__ == "__main__":
    main()
