"""How long and how much memory does `invoke doctor --log` take on a huge log?

Writes a log of --size GB (default 2) to /tmp: TensorFlow training noise, with one real failure
near the start (tf-logs 013, a cuDNN handle that cannot be created) and one near the end
(tf-logs 063, a cuBLAS routine that fails), both from the corpus. Then runs
`invoke doctor --log FILE --json` as a user would and reports its wall time and the peak
resident memory of the child (resource.getrusage), against the targets of issue 11: under 10 s
and under 1.5 GB. The file is removed afterwards unless --keep.

Run: .venv/bin/python bench/bench_doctor.py [--size 2] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus" / "tf-logs"
NOISE = [  # what a long, healthy TensorFlow training log is made of
    "2024-05-10 11:33:14.068255: I tensorflow/core/common_runtime/gpu/gpu_device.cc:1928] Created device "
    "/job:localhost/replica:0/task:0/device:GPU:0 with 13272 MB memory:  -> device: 0, name: NVIDIA A10G",
    "1875/1875 [==============================] - 5s 3ms/step - loss: 0.2950 - accuracy: 0.9140",
    "I0000 00:00:1748720220.035048      27 cuda_dnn.cc:529] Loaded cuDNN version 90800",
    "Epoch 3/10",
    "INFO:tensorflow:Assets written to: /tmp/model/assets",
]
TARGET_SECONDS, TARGET_MIB = 10.0, 1536


def _log(name: str) -> str:
    return tomllib.loads((CORPUS / name).read_text(encoding="utf-8"))["log"]


def write_log(path: Path, size: int) -> None:
    block = ("\n".join(NOISE[i % len(NOISE)] for i in range(4000)) + "\n").encode()
    start, end = _log("013-cudnn-handle-tf231-t4-memory-growth.toml").encode(), \
        _log("063-cublas-execution-failed-rtx2080-cuda90-patches.toml").encode()
    with path.open("wb") as handle:
        handle.write(block * 20 + start)  # the first failure, a few MB in
        while handle.tell() < size - 4 * 1024 * 1024:
            handle.write(block)
        handle.write(end + block * 2)  # the second, about a megabyte before the end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=2.0, help="the log's size in GB (2**30 bytes)")
    parser.add_argument("--keep", action="store_true", help="keep the log file")
    args = parser.parse_args()
    path = Path("/tmp") / f"gpuready-bench-doctor-{os.getpid()}.log"
    print(f"writing {args.size:g} GB to {path} ...", flush=True)
    write_log(path, int(args.size * 2**30))
    try:
        invoke = str(Path(sys.executable).with_name("invoke"))
        started = time.perf_counter()
        done = subprocess.run([invoke, "doctor", "--log", str(path), "--json"], cwd=ROOT, capture_output=True,
                              text=True)
        wall = time.perf_counter() - started
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        causes = [f["id"] for f in json.loads(done.stdout)["diagnosis"] if f["severity"] == "problem"] \
            if done.stdout.strip() else []
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
    print(f"log size       {path.name}: {args.size:g} GB")
    print(f"exit status    {done.returncode} (1: a problem found)")
    print(f"problems named {', '.join(causes) or 'none'}")
    print(f"wall time      {wall:.2f} s (target < {TARGET_SECONDS:g} s)")
    print(f"peak RSS       {peak_mib:.0f} MiB (target < {TARGET_MIB} MiB)")
    ok = done.returncode == 1 and {"cudnn-handle", "cublas-error"} <= set(causes) and \
        wall < TARGET_SECONDS and peak_mib < TARGET_MIB
    print("result         " + ("within the targets" if ok else "MISSED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
