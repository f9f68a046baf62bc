"""How long does certification take, and how fast does the Conv2D model train here?

Runs `invoke certify --level 2 --allow-cpu --json` against a TensorFlow environment and reports
the wall time, each check that takes time (import is TensorFlow's import), and the images per second.

Run: .venv/bin/python bench/bench_certify.py --prefix DIR [--repeat 3]
     (DIR: any environment with TensorFlow, e.g. one made with
      `uv venv DIR && VIRTUAL_ENV=DIR uv pip install tensorflow-cpu`)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--level", default="2")
    args = parser.parse_args()
    invoke = str(Path(sys.executable).with_name("invoke"))
    walls, cpu, gpu, per_check = [], [], [], {}
    for _ in range(args.repeat):
        start = time.perf_counter()
        done = subprocess.run([invoke, "certify", "--prefix", args.prefix, "--level", args.level,
                               "--allow-cpu", "--json"], cwd=ROOT, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"certify exited {done.returncode}:\n{done.stderr[-2000:]}")
        cert = json.loads(done.stdout)
        for check in cert["checks"]:
            per_check.setdefault(check["name"], []).append(check["seconds"])
        if cert.get("throughput"):
            cpu.append(cert["throughput"].get("cpu_images_per_second") or 0)
            gpu.append(cert["throughput"].get("gpu_images_per_second") or 0)
    print(f"certify --level {args.level} on {args.prefix} ({cert['status']}), {args.repeat} runs:")
    print(f"  wall time        median {statistics.median(walls):6.1f} s  (min {min(walls):.1f}, max {max(walls):.1f})")
    for name, seconds in per_check.items():
        if max(seconds) >= 0.05:
            print(f"  {name:<16} median {statistics.median(seconds):6.2f} s")
    if cpu and any(cpu):
        print(f"  CPU images/s     median {statistics.median(cpu):8.0f}  (min {min(cpu):.0f}, max {max(cpu):.0f})")
    if gpu and any(gpu):
        print(f"  GPU images/s     median {statistics.median(gpu):8.0f}")


if __name__ == "__main__":
    main()
