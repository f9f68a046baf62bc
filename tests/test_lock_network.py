"""The real package index: lock the default set's tensorflow[and-cuda] plan against it (CI)."""

from __future__ import annotations

import re

import pytest

from gpuready import lock as locking
from gpuready.config import Settings

from .lock_doubles.fixtures import GPU, plan_for

pytestmark = pytest.mark.network

PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+) \\$")


def test_real_and_cuda_plan_is_fully_pinned_and_hashed(tmp_path, matrix, monkeypatch):
    for key in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL"):
        monkeypatch.delenv(key, raising=False)
    plan = plan_for(matrix, python="3.11", **GPU)
    assert plan.requirements[0] == "tensorflow[and-cuda]==2.21.0"
    folder = locking.lock_plan(plan, tmp_path, Settings(index_timeout=30))
    lines = folder.lock_file.read_text().splitlines()
    body = [l for l in lines if l and not l.startswith("#")]
    assert body[0] == "--only-binary :all:"
    packages, hashes = {}, {}
    current = None
    for line in body[1:]:
        if line.startswith("    --hash=sha256:"):
            assert re.fullmatch(r"    --hash=sha256:[0-9a-f]{64}( \\)?", line), line
            hashes[current] += 1
        elif line.startswith("    #"):
            continue
        else:
            match = PIN.match(line)
            assert match, f"not pinned: {line!r}"
            current = match.group(1)
            packages[current], hashes[current] = match.group(2), 0
    assert all(count >= 1 for count in hashes.values()), hashes
    assert packages["tensorflow"] == "2.21.0"
    for line in plan.requirements[1:]:
        name, version = line.split("==")
        assert packages[name] == version, f"{name}: the tested CUDA set, not the newest"
    assert len(packages) >= 40
    assert folder.is_current() == (True, "current")
