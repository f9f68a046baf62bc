"""`invoke setup` offline: the real detect, plan, lock (uv, against a local wheel index) and install.

The wheels hold no TensorFlow, so the check cannot run here: certification is replaced by a
double that writes a certificate of the status a test asks for. The real certification runs in
tests/test_setup_e2e.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from gpuready import pipeline as S
from gpuready.certify import service
from gpuready.config import Settings
from gpuready.env import install as install_mod
from gpuready.env.layout import read_state, write_state
from gpuready.errors import UsageError
from gpuready.env.layout import certificate_path, read_install_record
from gpuready.cli._common import plan_for_flags
from gpuready.cli.render import show_setup
from tests.install_doubles import envs
from tests.lock_doubles.wheels import Dist, default_dists

ROOT = Path(__file__).resolve().parent.parent
PY = "%d.%d" % sys.version_info[:2]
GPU_FLAGS = {"driver": "560.35.03", "gpu": "8.0", "python": PY}
CPU_FLAGS = {"driver": None, "gpu": None, "python": PY}


class FakeCertify:
    """Stands in for gpuready.certify.service (certify and verify): the wheels here hold no
    TensorFlow to run the check with."""

    def __init__(self, status: str = "cpu-only") -> None:
        self.status, self.calls = status, []

    def certify(self, prefix, *, level=2, allow_cpu=False, timeout=None, host=None, on_event=None,
                matrix=None):
        self.calls.append((Path(prefix), level))
        certificate_path(prefix).write_text(json.dumps({"status": self.status, "level": level}))
        self.level = level
        return SimpleNamespace(status=self.status)

    def verify(self, prefix, host):
        """Like the real verify: reads the certificate it wrote; a failed one does not hold."""
        written = json.loads(certificate_path(prefix).read_text())
        failed = written["status"] == "failed"
        return SimpleNamespace(ok=not failed, reasons=["it records a failure"] if failed else [],
                               certificate=SimpleNamespace(level=written["level"], status=written["status"]))


@pytest.fixture(scope="module")
def simple(tmp_path_factory) -> Path:
    return envs.index(tmp_path_factory.mktemp("index"), default_dists())


@pytest.fixture
def world(tmp_path, simple, monkeypatch):
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    conf = Settings(index_url=simple.as_uri(), envs_dir=str(tmp_path / "envs"),
                    prefix_root=str(tmp_path / "prefixes"))
    fake = FakeCertify()
    monkeypatch.setattr(service, "certify", fake.certify)
    monkeypatch.setattr(service, "verify", fake.verify)
    return SimpleNamespace(conf=conf, tmp=tmp_path, certify=fake, simple=simple)


def _run(world, flags=CPU_FLAGS, **options):
    plan = plan_for_flags(world.conf, **flags)
    return S.run(world.conf, plan, **{"allow_cpu": True, "yes": True, **options})


def _forbid_install(monkeypatch):
    def fail(*_args, **_kwargs):
        raise AssertionError("no install expected")

    monkeypatch.setattr(install_mod, "install", fail)
    monkeypatch.setattr(install_mod, "run_tool", fail)


# --------------------------------------------------------------------------- the pipeline


def test_first_run_does_everything_second_does_nothing_fast(world, monkeypatch):
    first = _run(world)
    assert not first.noop and first.installed is not None and first.exit_code == 0
    assert first.lock_note.startswith("locked into envs/tf2.21-cpu-py3.11-pip")
    assert first.certificate == "cpu-only" and len(world.certify.calls) == 1
    state = read_state(first.prefix)
    assert state.lock_sha256 == first.lock_sha256 and state.certificate == "cpu-only"
    assert state.plan_hash == S.plan_hash(first.plan)
    assert read_install_record(first.prefix).lock_sha256 == first.lock_sha256

    _forbid_install(monkeypatch)
    started = time.perf_counter()
    second = _run(world)
    elapsed = time.perf_counter() - started
    assert second.noop and second.exit_code == 0 and second.certificate == "cpu-only"
    assert elapsed < 1.0, f"no-op took {elapsed:.2f} s"
    assert len(world.certify.calls) == 1
    assert "tensorflow" not in sys.modules


def test_committed_lock_is_reused(world):
    plan = plan_for_flags(world.conf, **CPU_FLAGS)
    folder = envs.lock_plan(Path(world.conf.envs_dir), plan, world.simple, world.tmp / "work")
    before = folder.lock_file.read_bytes()
    outcome = _run(world)
    assert outcome.lock_note == f"reused envs/{plan.env}/requirements.txt (current)"
    assert folder.lock_file.read_bytes() == before


def _smuggle(folder_path: Path) -> str:
    """Add an extra index to the committed lock and re-hash lock-state.toml over it."""
    from tests.lock_doubles.handmade import rehash

    lock = folder_path / "requirements.txt"
    lock.write_text(lock.read_text().replace("--only-binary :all:",
                                             "--only-binary :all:\n--extra-index-url http://127.0.0.1:9/simple", 1))
    rehash(folder_path)
    line = next(i for i, l in enumerate(lock.read_text().splitlines(), 1) if "--extra-index-url" in l)
    return f"requirements.txt:{line}"


def test_an_edited_committed_lock_is_refused_not_relocked(world, monkeypatch):
    first = _run(world)
    folder = Path(world.conf.envs_dir) / first.plan.env
    where = _smuggle(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    record = read_install_record(first.prefix)
    _forbid_install(monkeypatch)
    from gpuready import lock as locking

    monkeypatch.setattr(locking, "lock_plan", lambda *a, **k: pytest.fail("setup relocked"))
    with pytest.raises(UsageError) as caught:
        _run(world)
    message = caught.value.message
    assert caught.value.exit_code == 2
    assert f"envs/{first.plan.env}/{where}" in message and "extra index" in message
    assert f"invoke lock --env {first.plan.env}" in message
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before, "no relock"
    assert read_install_record(first.prefix) == record, "the environment is untouched"
    assert len(world.certify.calls) == 1


def test_force_redoes_install_and_certification(world):
    first = _run(world)
    forced = _run(world, force=True)
    assert not forced.noop and forced.installed is not None and forced.installed.replaced
    assert len(world.certify.calls) == 2
    assert forced.lock_sha256 == first.lock_sha256


def test_driver_change_recertifies_without_reinstalling(world, monkeypatch):
    first = _run(world)
    state = read_state(first.prefix)
    write_state(first.prefix, state.model_copy(update={"driver": "535.104.05"}))
    _forbid_install(monkeypatch)
    again = _run(world)
    assert not again.noop and again.installed is None
    assert again.install_note.startswith("already installed")
    assert len(world.certify.calls) == 2


def test_cpu_only_without_allow_cpu_exits_3(world):
    assert _run(world, allow_cpu=False).exit_code == 3
    assert _run(world, allow_cpu=False).exit_code == 3  # the no-op path says the same
    assert _run(world, allow_cpu=True).exit_code == 0


def test_failed_certification_exits_1_and_is_retried(world):
    world.certify.status = "failed"
    assert _run(world).exit_code == 1
    world.certify.status = "cpu-only"
    again = _run(world)
    assert not again.noop and again.installed is None and again.exit_code == 0


def test_what_if_gpu_plan_is_installed_but_not_certified(world):
    outcome = _run(world, GPU_FLAGS)
    assert outcome.plan.device == "gpu" and outcome.plan.env == f"tf2.21-cuda12.5-py{PY}-pip"
    assert outcome.certificate == S.NOT_CERTIFIED and world.certify.calls == []
    assert "what-if host (driver, gpus overridden)" in outcome.certificate_note
    assert read_install_record(outcome.prefix).packages["nvidia-cudnn-cu12"] == "9.24.0.43"
    assert _run(world, GPU_FLAGS).noop


def test_replacing_an_environment_asks_first(world):
    first = _run(world)
    before = envs.snapshot(first.prefix)
    # the same plan, locked again against an index where absl-py has a newer release
    newer = envs.index(world.tmp / "index2", default_dists() + [Dist("absl-py", "2.4.0", ("py3-none-any",))])
    envs.lock_plan(Path(world.conf.envs_dir), first.plan, newer, world.tmp / "work2")
    world.conf = world.conf.model_copy(update={"index_url": newer.as_uri()})

    with pytest.raises(UsageError, match="pass --yes to replace it"):
        _run(world, yes=False, interactive=False)
    asked = []
    with pytest.raises(UsageError, match="not replaced"):
        _run(world, yes=False, interactive=True, confirm=lambda q: asked.append(q) or False)
    assert "Replace the environment at" in asked[0]
    assert envs.snapshot(first.prefix) == before

    replaced = _run(world, yes=False, interactive=True, confirm=lambda q: True)
    assert replaced.installed.replaced
    assert read_install_record(first.prefix).packages["absl-py"] == "2.4.0"


def test_bad_level_is_a_usage_error(world):
    with pytest.raises(UsageError, match="--level"):
        _run(world, level=7)


def test_a_plan_for_another_platform_is_not_installed(world):
    with pytest.raises(UsageError, match="installs only on its own platform"):
        _run(world, {**CPU_FLAGS, "platform": "osx-arm64"})


def test_summary_shows_what_where_status_timings_and_activation(world):
    from rich.console import Console

    console = Console(record=True, width=200)
    show_setup(_run(world), console)
    text = console.export_text()
    for part in ("tf2.21-cpu-py3.11-pip" if PY == "3.11" else "tf2.21-cpu", "prefix", "certified on the CPU only",
                 "detect+plan", "gpuready itself", "Activate it with:  source "):
        assert part in text
    console = Console(record=True, width=200)
    show_setup(_run(world), console)
    assert "Nothing to do:" in console.export_text()


# --------------------------------------------------------------------------- the command line


def _cli(world, *args, timeout=300):
    env = {**os.environ,
           "INVOKE_GPUREADY_ENVS_DIR": world.conf.envs_dir,
           "INVOKE_GPUREADY_PREFIX_ROOT": world.conf.prefix_root,
           "INVOKE_GPUREADY_INDEX_URL": world.conf.index_url}
    invoke = Path(sys.executable).with_name("invoke")
    started = time.perf_counter()
    out = subprocess.run([str(invoke), "setup", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    return out, time.perf_counter() - started


def test_cli_what_if_setup_then_no_op(world):
    flags = ["--driver", "560.35.03", "--gpu", "8.0", "--python", PY]
    first, _ = _cli(world, *flags, "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "not certified here (what-if plan)" in first.stdout
    assert "Activate it with:  source " in first.stdout
    second, seconds = _cli(world, *flags, "--yes")
    assert second.returncode == 0 and "Nothing to do:" in second.stdout
    assert seconds < 3.0  # the whole command, interpreter start included (the check itself: < 1 s)
    forced, _ = _cli(world, *flags, "--force")  # an environment exists, no --yes, no terminal
    assert forced.returncode == 2 and "pass --yes to replace it" in forced.stderr
    assert "Traceback" not in forced.stderr
    bad, _ = _cli(world, "--level", "9")
    assert bad.returncode == 2 and "--level" in bad.stderr


def test_cli_setup_refuses_an_edited_committed_lock(world):
    flags = ["--driver", "560.35.03", "--gpu", "8.0", "--python", PY]
    first, _ = _cli(world, *flags, "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    env = next(Path(world.conf.envs_dir).iterdir())
    where = _smuggle(env)
    before = {p.name: p.read_bytes() for p in env.iterdir()}
    edited, _ = _cli(world, *flags, "--yes")
    assert edited.returncode == 2, edited.stdout + edited.stderr
    assert f"envs/{env.name}/{where}" in edited.stderr and f"invoke lock --env {env.name}" in edited.stderr
    assert "Traceback" not in edited.stderr
    assert {p.name: p.read_bytes() for p in env.iterdir()} == before
