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


def _clean_index_env(monkeypatch) -> None:
    for key in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL"):
        monkeypatch.delenv(key, raising=False)


def test_real_relock_with_a_cut_off_months_back_keeps_every_byte_and_upgrade_package_moves_one(
        tmp_path, matrix, monkeypatch):
    import tomllib

    import tomli_w

    from .lock_doubles.fixtures import tree

    _clean_index_env(monkeypatch)
    conf = Settings(index_timeout=30)
    plan = plan_for(matrix, driver="none", python="3.11")
    folder = locking.lock_plan(plan, tmp_path, conf)
    # As if locked in June: the index has had five months of releases since.
    state = tomllib.loads(folder.state_path.read_text())
    state["exclude_newer"] = "2026-06-01T00:00:00Z"
    folder.state_path.write_text(tomli_w.dumps(state))
    locking.lock_folder(folder, conf)
    june = tree(folder.path)
    again = locking.lock_folder(folder, conf)
    assert again.changed == () and again.moves == () and tree(folder.path) == june
    pins = folder.locked_packages()

    moved = locking.lock_folder(folder, conf, upgrade_packages=("certifi",))
    assert len(moved.moves) == 1 and moved.moves[0].startswith(f"moved   certifi {pins['certifi']} -> "), moved.moves
    after = folder.locked_packages()
    assert {k: v for k, v in after.items() if k != "certifi"} == {k: v for k, v in pins.items() if k != "certifi"}
    assert locking.deep_check(folder, conf) is None


def test_a_committed_folder_without_a_cut_off_keeps_its_pins_on_its_first_relock(tmp_path, monkeypatch):
    """The committed envs/ were locked before cut-offs were recorded: their first relock takes
    the newest upload time of their files as the cut-off, and moves nothing."""
    import shutil

    from pathlib import Path

    from gpuready.lock.folder import EnvFolder

    _clean_index_env(monkeypatch)
    source = Path(__file__).resolve().parent.parent / "envs" / "tf2.21-cpu-py3.11-pip"
    shutil.copytree(source, tmp_path / source.name)
    folder = EnvFolder(tmp_path / source.name)
    pins = folder.locked_packages()
    if folder.cutoff() is None:
        relocked = locking.lock_folder(folder, Settings(index_timeout=30))
        assert relocked.moves == (), relocked.moves
    assert folder.locked_packages() == pins and folder.cutoff() is not None
