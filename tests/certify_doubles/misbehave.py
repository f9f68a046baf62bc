"""A stand-in for gpuready/check/conv2d_check.py that misbehaves on purpose (tests only).

It speaks the real check's command line and progress protocol, passes one check, starts a
second one, and then does what --behave says: hang, hang with a child process, die by a signal,
exit silently, print garbage or a JSON document that is not a result, finish well after
spending some time in each level (to prove the time limit is per level, not in total), or fail
a check with an error no signature knows, or with no error line at all.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--level", type=int)
parser.add_argument("--log")
parser.add_argument("--expect-json")
parser.add_argument("--progress")
parser.add_argument("--behave", required=True)
parser.add_argument("--seconds", type=float, default=0.0)
args = parser.parse_args()


def event(**data):
    with open(args.progress, "a") as handle:
        handle.write(json.dumps(dict(data, t=time.time())) + "\n")


def log(text):
    with open(args.log, "a") as handle:
        handle.write(text + "\n")


PASSED = {"name": "import", "level": 1, "title": "TensorFlow imports", "status": "pass",
          "seconds": 0.1, "reason": None, "details": {"version": "2.21.0"}}

event(event="level", level=1)
event(event="start", name="import", level=1)
event(event="check", check=PASSED)
event(event="start", name="gpu-ops", level=1)
behave = args.behave
if behave not in ("fail-unknown", "fail-quiet"):
    log("2025-01-01 00:00:00.000000: E cuda_dnn.cc:361] Could not create cudnn handle: CUDNN_STATUS_INTERNAL_ERROR")

if behave in ("fail-unknown", "fail-quiet"):
    if behave == "fail-unknown":
        log("E0000 00:00:1748720220.035048      27 cuda_executor.cc:1] CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory"
            " access was encountered")
    failed = {"name": "gpu-ops", "level": 1, "title": "GPU ops agree with the CPU", "status": "fail",
              "seconds": 0.1, "reason": "the GPU's matmul differs from the CPU's by 3.5", "details": {}}
    event(event="check", check=failed)
    print(json.dumps({"check": "misbehave", "level": 1, "checks": [PASSED, failed], "gpus": [],
                      "tensorflow": {"version": "2.21.0"}, "errors": []}))
elif behave == "hang":
    time.sleep(3600)
elif behave == "hang-with-child":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    log("child pid %d" % child.pid)
    time.sleep(3600)
elif behave == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
elif behave == "segfault":
    os.kill(os.getpid(), signal.SIGSEGV)
elif behave == "silent-exit":
    sys.exit(3)
elif behave == "garbage":
    print("Hello from a sitecustomize that prints")
    print("Traceback? no: just text")
elif behave == "wrong-json":
    print(json.dumps({"hello": "world"}))
elif behave == "bad-status":
    print(json.dumps({"checks": [{"name": "import", "level": 1, "status": "maybe"}]}))
elif behave == "slow-levels":
    checks = [PASSED]
    for level in range(1, args.level + 1):
        event(event="level", level=level)
        time.sleep(args.seconds)
        check = {"name": "level-%d" % level, "level": level, "title": "slow", "status": "pass",
                 "seconds": args.seconds, "reason": None, "details": {}}
        event(event="check", check=check)
        checks.append(check)
    print(json.dumps({"check": "misbehave", "level": args.level, "checks": checks, "gpus": [],
                      "tensorflow": {"version": "2.21.0"}, "errors": []}))
else:
    sys.exit("unknown --behave " + behave)
