"""Cold `invoke setup` of the GPU pip plan versus the seeds' route and the download limit, side by
side in one run.

    gpuready:  invoke setup --flavor pip --yes --driver D --gpu CC   (a what-if GPU host, so that the
               real tensorflow[and-cuda] environment is installed from its lock on any machine)
    seeds:     python -m venv V && V/bin/pip install --no-cache-dir tensorflow[and-cuda]==<same TF>
    download:  the lock's own files (pylock.toml's URLs for this Python and platform), fetched at
               once with a plain parallel HTTP client (curl --parallel; without curl, requests in
               threads) and nothing else: no install. No route can be faster than this one.

Both start with empty caches: a new UV_CACHE_DIR for gpuready, --no-cache-dir for pip (and no pip
configuration file). Each round runs both, the order alternating between rounds, each route
starting after the disk has settled (sync). Then:
gpuready's own overhead (its wall time minus uv's download-and-install time and the check's),
and the no-op re-run (its wall time, and the check time it reports itself).

Run: .venv/bin/python bench/bench_setup.py [--rounds 2] [--json FILE]
It downloads about 3 GB per route and round and writes about 6 GB per environment (removed after).
"""

from __future__ import annotations

import argparse
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
INVOKE = str(Path(sys.executable).with_name("invoke"))
DRIVER, GPU = "560.35.03", "8.0"


def du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 else 0


def plan(env: dict[str, str]) -> dict:
    out = subprocess.run([INVOKE, "plan", "--driver", DRIVER, "--gpu", GPU, "--flavor", "pip", "--json"],
                         cwd=ROOT, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def gpuready_cold(work: Path, base: dict[str, str]) -> dict:
    env = {**base, "UV_CACHE_DIR": str(work / "uv-cache"),
           "INVOKE_GPUREADY_PREFIX_ROOT": str(work / "prefixes"),
           "INVOKE_GPUREADY_ENVS_DIR": str(work / "envs")}
    if (ROOT / "envs").is_dir():
        shutil.copytree(ROOT / "envs", work / "envs")
    command = [INVOKE, "setup", "--flavor", "pip", "--yes", "--driver", DRIVER, "--gpu", GPU]
    started = time.perf_counter()
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"gpuready setup failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    prefix = next((work / "prefixes").iterdir())
    state = json.loads((prefix / "gpuready" / "state.json").read_text())
    record = json.loads((prefix / "gpuready" / "install.json").read_text())
    packages = record["seconds"].get("packages", 0.0)
    certify = state["seconds"].get("certify", 0.0)
    inner = state["seconds"]["total"]

    started = time.perf_counter()
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    noop_wall = time.perf_counter() - started
    checked = re.search(r"checked in ([\d.]+) s", again.stdout)
    if again.returncode != 0 or checked is None:
        raise SystemExit(f"the re-run was not a no-op:\n{again.stdout}\n{again.stderr}")
    return {
        "wall_s": wall,
        "uv_install_s": packages,
        "lock_s": state["seconds"].get("lock", 0.0),
        "certify_s": certify,
        "overhead_in_process_s": inner - packages - certify,
        "overhead_with_startup_s": wall - packages - certify,
        "noop_wall_s": noop_wall,
        "noop_check_s": float(checked.group(1)),
        "packages": len(record["packages"]),
        "env_bytes": du(prefix),
        "lock_reused": "reused envs/" in out.stdout,
    }


def pip_cold(work: Path, base: dict[str, str], requirement: str) -> dict:
    env = {k: v for k, v in base.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    venv = work / "seed-venv"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    out = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "-q", requirement],
                         capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"pip install failed:\n{out.stdout}\n{out.stderr}")
    return {"wall_s": wall, "env_bytes": du(venv)}


def raw_download(work: Path, chosen: dict, jobs: int) -> dict:
    """The physical limit: the same artifacts, fetched in parallel, not unpacked or installed."""
    sys.path.insert(0, str(ROOT / "src"))
    from gpuready.bundle.artifacts import lock_artifacts
    from gpuready.download import fetch_all

    pylock = (ROOT / "envs" / chosen["env"] / "pylock.toml").read_text()
    artifacts = lock_artifacts(pylock, chosen["python"], chosen["platform"], what=chosen["env"])
    folder = work / "files"
    folder.mkdir()
    curl = shutil.which("curl")
    started = time.perf_counter()
    if curl:
        command = [curl, "--parallel", "--parallel-max", str(jobs), "--fail", "--silent", "--show-error",
                   "--location"]
        for artifact in artifacts:
            command += ["-o", str(folder / artifact.filename), artifact.url]
        out = subprocess.run(command, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"curl failed ({out.returncode}): {out.stderr[-500:]}")
    else:
        fetch_all([(a, folder / a.filename) for a in artifacts], jobs=jobs)
    wall = time.perf_counter() - started
    size = sum(p.stat().st_size for p in folder.iterdir())
    return {"wall_s": wall, "bytes": size, "files": len(artifacts), "client": "curl" if curl else "requests",
            "mb_per_s": size / wall / 1e6}


def settle() -> None:
    """Start each route on a quiet disk: the previous one's gigabytes written back, not in flight."""
    os.sync()
    time.sleep(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--jobs", type=int, default=8, help="parallel downloads of the download route")
    args = parser.parse_args()
    base = dict(os.environ)
    chosen = plan(base)
    requirement = f"tensorflow[and-cuda]=={chosen['tensorflow']}"
    print(f"GPU pip plan {chosen['env']}; seeds' route: pip install {requirement}", flush=True)
    rounds = []
    for number in range(args.rounds):
        routes = ["download", "gpuready", "pip"]
        order = routes[number % 3:] + routes[:number % 3]  # each route first in turn
        result = {}
        for route in order:
            settle()
            with tempfile.TemporaryDirectory(prefix=f"bench-{route}-", dir=os.environ.get("BENCH_TMP")) as tmp:
                result[route] = (gpuready_cold(Path(tmp), base) if route == "gpuready"
                                 else raw_download(Path(tmp), chosen, args.jobs) if route == "download"
                                 else pip_cold(Path(tmp), base, requirement))
            print(f"round {number + 1}: {route:8s} {result[route]['wall_s']:6.1f} s", flush=True)
        result["speedup"] = result["pip"]["wall_s"] / result["gpuready"]["wall_s"]
        result["gpuready_to_download"] = result["gpuready"]["wall_s"] / result["download"]["wall_s"]
        result["pip_to_download"] = result["pip"]["wall_s"] / result["download"]["wall_s"]
        result["order"] = order
        rounds.append(result)

    print()
    print(f"{'round':6s} {'order':24s} {'download':>9s} {'gpuready':>9s} {'pip':>8s} {'g/dl':>6s} {'pip/dl':>7s} "
          f"{'speedup':>8s} {'uv':>7s} {'overhead':>9s} {'+startup':>9s} {'no-op':>7s} {'(check)':>8s}")
    for i, r in enumerate(rounds, 1):
        g = r["gpuready"]
        print(f"{i:<6d} {'→'.join(r['order']):24s} {r['download']['wall_s']:8.1f}s {g['wall_s']:8.1f}s "
              f"{r['pip']['wall_s']:7.1f}s {r['gpuready_to_download']:5.2f}x {r['pip_to_download']:6.2f}x "
              f"{r['speedup']:7.2f}x {g['uv_install_s']:6.1f}s {g['overhead_in_process_s']:8.2f}s "
              f"{g['overhead_with_startup_s']:8.2f}s {g['noop_wall_s']:6.2f}s {g['noop_check_s']:7.2f}s")
    d = rounds[-1]["download"]
    print(f"\ndownload: {d['files']} files, {d['bytes'] / 1e9:.2f} GB with {d['client']} "
          f"({d['mb_per_s']:.0f} MB/s, {args.jobs} at once)")
    g = rounds[-1]["gpuready"]
    print(f"gpuready: {g['packages']} packages, {g['env_bytes'] / 1e9:.2f} GB; pip's venv "
          f"{rounds[-1]['pip']['env_bytes'] / 1e9:.2f} GB; lock {'reused from envs/' if g['lock_reused'] else 'made'}"
          f" ({g['lock_s']:.2f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"plan": chosen["env"], "rounds": rounds}, indent=2) + "\n")


if __name__ == "__main__":
    main()
