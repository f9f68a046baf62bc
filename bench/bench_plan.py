"""How fast is planning? The pure planner alone, and `invoke plan` end to end.

Run: .venv/bin/python bench/bench_plan.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from gpuready.model import matrix as matrix_mod
from gpuready.model.facts import HostFacts
from gpuready.model.flags import apply_overrides
from gpuready.model.planner import make_plan

ROOT = Path(__file__).resolve().parent.parent


def time_it(func, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    load = time_it(lambda: matrix_mod.load(ROOT / "matrix"), 20)
    matrix = matrix_mod.load(ROOT / "matrix")
    host = HostFacts(platform="linux-64", python="3.11", glibc="2.36")
    worst = apply_overrides(host, matrix, driver="450.80.01", gpu="9.0,8.0,7.5")  # every release rejected
    best = apply_overrides(host, matrix, driver="535.104.05", gpu="8.0")
    pure_best = time_it(lambda: make_plan(best, matrix), 200)
    pure_worst = time_it(lambda: make_plan(worst, matrix), 200)
    invoke = str(Path(sys.executable).with_name("invoke"))
    cli = time_it(lambda: subprocess.run([invoke, "plan", "--driver", "535.104.05", "--gpu", "9.0", "--json"],
                                         cwd=ROOT, check=True, capture_output=True), 5)
    ms = lambda xs: f"median {statistics.median(xs) * 1000:8.2f} ms  (min {min(xs) * 1000:.2f})"
    print(f"matrix load + validation   {ms(load)}")
    print(f"make_plan, first fits      {ms(pure_best)}")
    print(f"make_plan, all GPU rejected {ms(pure_worst)}")
    print(f"invoke plan --json (cli)   {ms(cli)}")


if __name__ == "__main__":
    main()
