"""A fake `nvidia-smi`: a test double for the real tool, which needs an NVIDIA driver and GPU
that the development and CI machines do not have.

Installed by the tests as an executable named `nvidia-smi` (with this interpreter in its `#!`
line) in a folder put first on PATH, next to `nvidia-smi.json`, the scenario:

    {"query":      {"stdout": "recorded/a100_t4.query.csv", "exit": 0},
     "query_r470": {...},          # the retry without compute_cap
     "list":       {...},          # nvidia-smi -L
     "banner":     {"text": "...", "exit": 0}}   # the call without arguments

The same script, installed under another name, replays that program from `<name>.json` (the
tests install it as `dmesg`, whose kernel log needs a loaded nvidia module, to answer with a
kernel log a user pasted: its call without arguments is "banner" too).

Each answer prints `stdout` (a file under recorded/) or `text` (lone surrogates such as
"\udcff" are written as the raw, non-UTF-8 bytes they escape), then exits with `exit`, or
kills itself with `signal` (e.g. "SIGSEGV"), or first sleeps `sleep` seconds. Every call's
arguments are appended to `nvidia-smi.calls` (one JSON list a line), so tests can check what
detection asked. A call the scenario does not cover exits 127.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

QUERY = "--query-gpu=driver_version,name,compute_cap,memory.total,uuid"
QUERY_R470 = "--query-gpu=driver_version,name,memory.total,uuid"
FORMAT = "--format=csv,noheader,nounits"
RECORDED = Path(__file__).resolve().parent / "recorded"


def which_call(args):
    if not args:
        return "banner"
    if args == [QUERY, FORMAT]:
        return "query"
    if args == [QUERY_R470, FORMAT]:
        return "query_r470"
    if args == ["-L"]:
        return "list"
    return None


def main():
    here = Path(sys.argv[0]).resolve().parent
    name = Path(sys.argv[0]).name
    args = sys.argv[1:]
    with open(here / f"{name}.calls", "a", encoding="utf-8") as log:
        log.write(json.dumps(args) + "\n")
    scenario = json.loads((here / f"{name}.json").read_text(encoding="utf-8"))
    answer = scenario.get(which_call(args) or "", None)
    if answer is None:
        print(f"fake {name}: no recorded answer for {args}", file=sys.stderr)
        sys.exit(127)
    time.sleep(answer.get("sleep", 0))
    recorded = Path(scenario.get("recorded", RECORDED))
    if "stdout" in answer:
        sys.stdout.buffer.write((recorded / answer["stdout"]).read_bytes())
    if "text" in answer:  # lone surrogates stand for bytes that are not UTF-8
        sys.stdout.buffer.write(answer["text"].encode("utf-8", "surrogateescape"))
    if "stderr" in answer:
        sys.stderr.write(answer["stderr"])
    sys.stdout.flush()
    sys.stderr.flush()
    if answer.get("signal"):
        try:  # no core file in the test's working directory
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (ImportError, ValueError, OSError):
            pass
        os.kill(os.getpid(), getattr(signal, answer["signal"]))
    sys.exit(answer.get("exit", 0))


if __name__ == "__main__":
    main()
