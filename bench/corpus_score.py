"""How much of the real-text corpora doctor and detect get right (the numbers of issue 11).

    python bench/corpus_score.py [--only doctor|detect] [-v]

doctor: every TensorFlow log under tests/data/corpus/tf-logs goes through `invoke doctor --log
FILE --json`, as a user runs it. A harmful log is right when doctor exits 1 and its first
problem is the cause the log's thread established; a harmless one when doctor exits 0.
detect: every nvidia-smi situation under tests/data/corpus/nvidia-smi is replayed through the
test doubles (tests/detect_doubles/corpus.py says how) and is right when every fact and the
situation's message match what its thread established.

It imports `gpuready` from wherever Python finds it first, so the same script measures another
checkout: `PYTHONPATH=/path/to/other/src python bench/corpus_score.py` (the doubles and the
corpora stay this checkout's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LOGS = ROOT / "tests" / "data" / "corpus" / "tf-logs"


def score_doctor(verbose: bool) -> None:
    import gpuready

    tasks_dir = Path(gpuready.__file__).resolve().parents[2]  # the checkout whose tasks.py runs
    invoke = Path(sys.executable).with_name("invoke")
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    harmful = harmless = harmful_right = harmless_right = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(LOGS.glob("*.toml")):
            fixture = tomllib.loads(path.read_text(encoding="utf-8"))
            log = Path(tmp) / f"{path.stem}.log"
            log.write_text(fixture["log"], encoding="utf-8")
            done = subprocess.run([str(invoke), "doctor", "--log", str(log), "--json"], cwd=tasks_dir,
                                  capture_output=True, text=True, env=env, timeout=120)
            try:
                findings = json.loads(done.stdout)["diagnosis"]
            except (ValueError, KeyError):
                findings = []
            problems = [f["id"] for f in findings if f["severity"] == "problem"]
            if fixture["harmful"]:
                harmful += 1
                right = done.returncode == 1 and problems[:1] == [fixture["cause"]]
                harmful_right += right
            else:
                harmless += 1
                right = done.returncode == 0
                harmless_right += right
            if verbose and not right:
                print(f"  doctor wrong: {path.stem}: exit {done.returncode}, problems {problems}, "
                      f"expected {fixture['cause']}")
    print(f"doctor: harmful logs named correctly {harmful_right}/{harmful} ({harmful_right / harmful:.0%}); "
          f"harmless logs exit 0 {harmless_right}/{harmless} ({harmless_right / harmless:.0%})")


def score_detect(verbose: bool) -> None:
    from gpuready.model import matrix as matrix_mod
    from tests.detect_doubles import corpus

    import gpuready

    # The measured checkout's own matrix: another checkout may read an older matrix schema.
    own = Path(gpuready.__file__).resolve().parents[2] / "matrix"
    matrix = matrix_mod.load(own if own.is_dir() else ROOT / "matrix")
    read = right = facts_right = 0
    with tempfile.TemporaryDirectory() as tmp:
        for fixture in corpus.load():
            if fixture.number in corpus.NOT_READ:
                continue
            read += 1
            try:
                facts = corpus.run(fixture, Path(tmp) / fixture.name, matrix)
                facts = corpus.with_query(fixture, facts, matrix)
                wrong = corpus.wrong(fixture, facts)
                facts_right += not corpus.wrong(fixture, facts, messages=False)
            except Exception as exc:  # an older detection may lack what the harness reads
                wrong = [f"{type(exc).__name__}: {exc}"]
            right += not wrong
            if verbose and wrong:
                print(f"  detect wrong: {fixture.name}: " + "; ".join(wrong))
    total = len(corpus.load())
    print(f"detect: fixtures fully right {right}/{read} ({right / read:.0%}); facts right, the situation's "
          f"message aside, {facts_right}/{read} ({facts_right / read:.0%}); "
          f"{total - read} of {total} not read by detect ({', '.join(sorted(corpus.NOT_READ))})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("doctor", "detect"))
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    if args.only in (None, "doctor"):
        score_doctor(args.verbose)
    if args.only in (None, "detect"):
        score_detect(args.verbose)


if __name__ == "__main__":
    main()
