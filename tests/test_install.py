"""`invoke install` offline: a local wheel index, the real uv, a uv double that dies half-way.

Every test installs into a temporary prefix with its own uv cache, so a tampered wheel is really
downloaded and checked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gpuready.env import install as install_mod
from gpuready.env import inventory
from gpuready.env import transaction
from gpuready import tools
from gpuready.config import Settings, validate
from gpuready.errors import UsageError, WorkFailed
from gpuready.env.layout import read_install_record
from tests.conftest import fill_up
from tests.install_doubles import envs

RUNNER = Path(__file__).parent / "install_doubles" / "run_install.py"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def simple(tmp_path_factory) -> Path:
    return envs.index(tmp_path_factory.mktemp("index"))


@pytest.fixture(scope="module")
def locks(tmp_path_factory, simple):
    """Two locks of the same environment: numpy 2.3.4 (v1) and numpy 2.3.5 (v2)."""
    root = tmp_path_factory.mktemp("locks")
    v1 = envs.lock(root / "v1", envs.cpu_inputs(requirements=("tensorflow-cpu==2.21.0", "numpy==2.3.4")),
                   simple, root / "w1")
    v2 = envs.lock(root / "v2", envs.cpu_inputs(requirements=("tensorflow-cpu==2.21.0", "numpy==2.3.5")),
                   simple, root / "w2")
    return v1, v2


@pytest.fixture
def settings(tmp_path, simple, monkeypatch):
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    return Settings(index_url=simple.as_uri(), prefix_root=str(tmp_path / "prefixes"))


@pytest.fixture
def real_uv(settings):
    return tools.find_uv(settings)


def _fake_uv(tmp_path, real_uv, simple, monkeypatch, mode):
    exe = envs.fake_uv(tmp_path / "fakebin", real_uv)
    monkeypatch.setenv("FAKE_UV_REAL", real_uv)
    monkeypatch.setenv("FAKE_UV_FILES", str(simple.parent / "files"))
    monkeypatch.setenv("FAKE_UV_MODE", mode)
    monkeypatch.setenv("FAKE_UV_READY", str(tmp_path / "uv-ready"))
    monkeypatch.setenv("FAKE_UV_RELEASE", str(tmp_path / "uv-release"))
    monkeypatch.setenv("FAKE_UV_LOG", str(tmp_path / "uv-log"))
    return exe


def _leftovers(prefix: Path) -> list[str]:
    return sorted(p.name for p in prefix.parent.iterdir() if p.name.startswith(f".{prefix.name}.")
                  and not p.name.endswith(".lock"))


def _python(prefix: Path, code: str) -> str:
    out = subprocess.run([str(prefix / "bin" / "python"), "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


# --------------------------------------------------------------------------- the happy path


def test_install_from_local_index(locks, settings):
    v1, _ = locks
    result = install_mod.install(v1, settings=settings)
    prefix = Path(settings.prefix_root) / v1.name
    assert result.prefix == prefix and not result.replaced
    assert result.packages == {"absl-py": "2.3.1", "numpy": "2.3.4", "tensorflow-cpu": "2.21.0"}
    assert _python(prefix, "import numpy, tensorflow_cpu; print(numpy.__version__)") == "2.3.4"
    record = read_install_record(prefix)
    assert record.env == v1.name and record.lock_sha256 == v1.lock_sha256()
    assert record.inputs.tensorflow == "2.21.0" and record.lock_file == "requirements.txt"
    assert (prefix / "gpuready" / "requirements.txt").read_bytes() == v1.lock_file.read_bytes()
    assert (prefix / "gpuready" / "activation.json").exists()
    assert _leftovers(prefix) == []
    assert inventory.environment_intact(prefix, v1.lock_sha256()) == (True, "intact")
    # The venv is relocatable: it lives at the prefix, not at the staging path it was built in.
    activated = subprocess.run(["bash", "-c", f"source {prefix}/bin/activate && echo $VIRTUAL_ENV && "
                                               "command -v python"], capture_output=True, text=True)
    assert activated.stdout.split() == [str(prefix), str(prefix / "bin" / "python")]
    assert "staging" not in (prefix / "pyvenv.cfg").read_text()


def test_replace_swaps_in_the_new_environment(locks, settings):
    v1, v2 = locks
    install_mod.install(v1, settings=settings)
    result = install_mod.install(v2, settings=settings)
    assert result.replaced
    assert _python(result.prefix, "import numpy; print(numpy.__version__)") == "2.3.5"
    assert read_install_record(result.prefix).lock_sha256 == v2.lock_sha256()
    assert _leftovers(result.prefix) == []


def test_two_step_swap_where_exchange_is_not_available(locks, settings, monkeypatch):
    v1, v2 = locks
    install_mod.install(v1, settings=settings)
    monkeypatch.setattr(transaction, "_exchange", lambda a, b: False)
    result = install_mod.install(v2, settings=settings)
    assert read_install_record(result.prefix).packages["numpy"] == "2.3.5"
    assert _leftovers(result.prefix) == []


# --------------------------------------------------------------------------- failures leave it as it was


def test_uv_killed_half_way_leaves_old_environment_and_next_run_succeeds(
        locks, settings, tmp_path, real_uv, simple, monkeypatch):
    v1, v2 = locks
    prefix = install_mod.install(v1, settings=settings).prefix
    before = envs.snapshot(prefix)
    fake = _fake_uv(tmp_path, real_uv, simple, monkeypatch, "die-half")
    with pytest.raises(WorkFailed, match="installing the locked packages failed"):
        install_mod.install(v2, settings=settings.model_copy(update={"uv": str(fake)}))
    assert "pip sync" in (tmp_path / "uv-log").read_text()  # the double did run, and died
    assert envs.snapshot(prefix) == before
    assert _leftovers(prefix) == []
    result = install_mod.install(v2, settings=settings)  # the real uv
    assert result.packages["numpy"] == "2.3.5"
    assert inventory.environment_intact(prefix, v2.lock_sha256())[0]


def test_install_process_killed_half_way_next_run_cleans_up(
        locks, settings, tmp_path, real_uv, simple, monkeypatch):
    v1, v2 = locks
    prefix = install_mod.install(v1, settings=settings).prefix
    before = envs.snapshot(prefix)
    fake = _fake_uv(tmp_path, real_uv, simple, monkeypatch, "hang-half")
    proc = subprocess.Popen([sys.executable, str(RUNNER), str(v2.path), str(prefix),
                             settings.model_copy(update={"uv": str(fake)}).model_dump_json()],
                            cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "uv-ready").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        staged = _leftovers(prefix)
        assert staged and all(".staging-" in name for name in staged)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # gpuready and its uv die without any cleanup
        proc.wait()
    assert envs.snapshot(prefix) == before
    assert _leftovers(prefix) == staged  # left behind ...
    result = install_mod.install(v2, settings=settings)
    assert _leftovers(prefix) == []  # ... and removed by the next run
    assert result.packages["numpy"] == "2.3.5"


def test_interrupt_stops_uv_and_removes_staging(locks, settings, tmp_path, real_uv, simple, monkeypatch):
    v1, v2 = locks
    prefix = install_mod.install(v1, settings=settings).prefix
    before = envs.snapshot(prefix)
    fake = _fake_uv(tmp_path, real_uv, simple, monkeypatch, "hang-half")
    proc = subprocess.Popen([sys.executable, str(RUNNER), str(v2.path), str(prefix),
                             settings.model_copy(update={"uv": str(fake)}).model_dump_json()],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "uv-ready").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert envs.snapshot(prefix) == before
    assert _leftovers(prefix) == []


def test_two_concurrent_installs(locks, settings, tmp_path, real_uv, simple, monkeypatch):
    v1, _ = locks
    prefix = Path(settings.prefix_root) / v1.name
    fake = _fake_uv(tmp_path, real_uv, simple, monkeypatch, "wait")
    first = subprocess.Popen([sys.executable, str(RUNNER), str(v1.path), str(prefix),
                              settings.model_copy(update={"uv": str(fake)}).model_dump_json()],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "uv-ready").exists():  # the first holds the lock, inside uv
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    second = subprocess.run([sys.executable, str(RUNNER), str(v1.path), str(prefix), settings.model_dump_json()],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert "another gpuready install into" in second.stdout and "is running" in second.stdout
    (tmp_path / "uv-release").touch()
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    assert inventory.environment_intact(prefix, v1.lock_sha256())[0]
    # and when they really start together, exactly one installs and the other says why not
    (tmp_path / "uv-release").unlink()
    (tmp_path / "uv-ready").unlink()
    results = []

    def run() -> None:
        results.append(subprocess.run([sys.executable, str(RUNNER), str(v1.path), str(prefix),
                                       settings.model_copy(update={"uv": str(fake)}).model_dump_json()],
                                      cwd=ROOT, capture_output=True, text=True, timeout=120))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    while not (tmp_path / "uv-ready").exists():
        time.sleep(0.05)
    time.sleep(0.5)
    (tmp_path / "uv-release").touch()
    for thread in threads:
        thread.join()
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 1], [r.stdout for r in results]
    assert inventory.environment_intact(prefix, v1.lock_sha256())[0]
    assert _leftovers(prefix) == []


def test_tampered_wheel_stops_with_name_and_both_hashes(locks, settings, simple):
    v1, v2 = locks
    prefix = install_mod.install(v1, settings=settings).prefix
    before = envs.snapshot(prefix)
    wheel = simple.parent / "files" / "numpy-2.3.5-py3-none-any.whl"
    original = wheel.read_bytes()
    locked = next(line for line in v2.lock_file.read_text().split("numpy==2.3.5", 1)[1].splitlines()
                  if "sha256:" in line).split("sha256:")[1].strip(" \\")
    tampered = _with_extra_member(original)  # still a valid wheel, another sha256
    wheel.write_bytes(tampered)
    try:
        with pytest.raises(WorkFailed) as error:
            install_mod.install(v2, settings=settings)
    finally:
        wheel.write_bytes(original)
    message = error.value.message
    assert "hash mismatch for numpy==2.3.5" in message
    assert locked in message
    import hashlib

    assert hashlib.sha256(tampered).hexdigest() in message
    assert envs.snapshot(prefix) == before and _leftovers(prefix) == []


def _with_extra_member(wheel: bytes) -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(wheel)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        target.writestr("numpy/payload.py", "print('not what was locked')\n")
    return out.getvalue()


def test_unreachable_index_is_one_clear_error(locks, settings):
    from tests.lock_doubles.wheels import closed_port_url

    v1, v2 = locks
    prefix = install_mod.install(v1, settings=settings).prefix
    before = envs.snapshot(prefix)
    url = closed_port_url()
    with pytest.raises(WorkFailed, match=f"the package index {url} could not be reached"):
        install_mod.install(v2, settings=settings.model_copy(update={"index_url": url, "index_retries": 0}))
    assert envs.snapshot(prefix) == before and _leftovers(prefix) == []


def test_disk_space_refusal_before_downloading(locks, settings, tmp_path):
    v1, _ = locks
    with pytest.raises(WorkFailed, match=r"not enough disk space .* needs about 1000000\.0 GB"):
        install_mod.install(v1, settings=settings.model_copy(update={"min_free_gb": 1_000_000}))
    prefix = Path(settings.prefix_root) / v1.name
    assert not prefix.exists() and _leftovers(prefix) == []
    assert not (tmp_path / "uv-cache").exists()  # nothing was downloaded
    with pytest.raises(UsageError, match="min_free_gb"):
        validate({"min_free_gb": "lots"})


def test_a_disk_that_fills_during_the_install_is_one_line_and_leaves_the_old_environment(
        locks, settings, small_disk):
    """The disk fills while uv writes the replacement: one line, and the installed one is untouched."""
    v1, v2 = locks
    small = small_disk(16)
    on_small = settings.model_copy(update={"prefix_root": str(small / "prefixes"), "min_free_gb": 0})
    prefix = install_mod.install(v1, settings=on_small).prefix
    before = envs.snapshot(prefix)
    fill_up(small)
    with pytest.raises(WorkFailed) as caught:
        install_mod.install(v2, settings=on_small)
    message = caught.value.message
    assert message.startswith(f"no space left on device under {small / 'prefixes'}"), message
    assert "\n" not in message and "previous environment (if any) is as it was" in message
    assert envs.snapshot(prefix) == before
    assert _leftovers(prefix) == [], "the staging folder of the failed install is removed"
    assert _python(prefix, "import numpy; print(numpy.__version__)") == "2.3.4"


def test_needed_bytes_estimates_the_environment():
    assert transaction.needed_bytes("gpu", Settings()) > 6 * transaction.GB > transaction.needed_bytes("cpu", Settings())
    assert transaction.needed_bytes("gpu", Settings(min_free_gb=0.5)) == transaction.GB // 2


def test_extra_package_is_caught_by_verification(locks, settings, tmp_path, real_uv, simple, monkeypatch):
    v1, _ = locks
    fake = _fake_uv(tmp_path, real_uv, simple, monkeypatch, "extra")
    with pytest.raises(WorkFailed, match=r"does not match its lock.*keras==3\.12\.0 is installed but not in the lock"):
        install_mod.install(v1, settings=settings.model_copy(update={"uv": str(fake)}))
    prefix = Path(settings.prefix_root) / v1.name
    assert not prefix.exists() and _leftovers(prefix) == []


def test_refuses_a_prefix_that_is_not_a_gpuready_environment(locks, settings, tmp_path):
    v1, _ = locks
    precious = tmp_path / "my-project"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(UsageError, match="is not an environment gpuready installed"):
        install_mod.install(v1, precious, settings=settings)
    assert (precious / "thesis.tex").read_text() == "years of work"
    with pytest.raises(UsageError, match="is not an environment gpuready installed"):
        install_mod.install(v1, precious / "thesis.tex", settings=settings)
    link = tmp_path / "link"
    link.symlink_to(precious)
    with pytest.raises(UsageError, match="is not an environment gpuready installed"):
        install_mod.install(v1, link, settings=settings)
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_pip_is_the_fallback_without_uv(locks, settings, monkeypatch):
    v1, _ = locks
    monkeypatch.setattr(install_mod, "find_uv", lambda _settings: None)
    result = install_mod.install(v1, settings=settings)
    assert result.installer.startswith("pip ")
    assert result.packages["numpy"] == "2.3.4"
    assert inventory.environment_intact(result.prefix)[0]  # pip itself was not put into the environment


def test_a_stale_leftover_aside_is_put_back(tmp_path):
    layout = transaction.Layout(tmp_path / "env")
    aside = tmp_path / ".env.old-123-456"
    (aside / "gpuready").mkdir(parents=True)
    (aside / "gpuready" / "install.json").write_text("{}")
    (tmp_path / ".env.staging-1-2").mkdir()
    transaction.clean_leftovers(layout)
    assert (tmp_path / "env" / "gpuready" / "install.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env"]


# --------------------------------------------------------------------------- interpreters and messages


def test_find_python_prefers_this_interpreter():
    version = "%d.%d" % sys.version_info[:2]
    assert tools.find_python(version, Settings(), None) == tools.Interpreter(sys.executable, "this interpreter")


def test_find_python_names_the_ways_out(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(WorkFailed) as error:
        tools.find_python("3.7", Settings(allow_python_downloads=False), None)
    message = error.value.message
    assert "needs Python 3.7" in message and "python3.7 is on PATH" in message and "--python" in message


def test_find_python_offers_uv_downloads_when_they_are_off(settings, real_uv, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "no-managed-pythons"))
    with pytest.raises(WorkFailed, match="allow_python_downloads: true"):
        tools.find_python("3.7", Settings(allow_python_downloads=False), real_uv)


def test_hash_mismatch_messages_of_pip_and_uv():
    pip = ("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n"
           "    numpy==2.3.5 from file:///x/numpy-2.3.5-py3-none-any.whl:\n"
           "        Expected sha256 aaaa\n"
           "             Got        bbbb\n")
    assert install_mod.hash_mismatch(pip) == "numpy==2.3.5: the lock has sha256:aaaa, the downloaded file has sha256:bbbb"
    uv = ("  Caused by: Hash mismatch for `numpy==2.3.5`\n\nExpected:\n  sha256:aaaa\n\n"
          "Computed:\n  sha256:bbbb\n")
    assert install_mod.hash_mismatch(uv) == "numpy==2.3.5: the lock has sha256:aaaa, the downloaded file has sha256:bbbb"
    assert install_mod.hash_mismatch("error: something else") is None


def test_compare_names_every_difference():
    assert inventory.compare({"a": "1.0", "b": "2"}, {"a": "1", "b": "3", "c": "1"}) == [
        "b is 3, the lock has 2", "c==1 is installed but not in the lock"]


def _running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
                state = next((l for l in (entry / "status").read_text().splitlines() if l.startswith("State:")), "")
            except OSError:
                continue
            if marker in cmdline and "zombie" not in state:
                found.append(int(entry.name))
    return found


def test_uv_dies_with_a_killed_gpuready(locks, settings, tmp_path, real_uv, simple, monkeypatch):
    """Only gpuready is killed (SIGKILL, no cleanup of its own): its uv child must not go on
    writing into the abandoned staging folder."""
    v1, v2 = locks
    prefix = install_mod.install(v1, settings=settings).prefix
    fake = _fake_uv(tmp_path, real_uv, simple, monkeypatch, "hang-half")
    proc = subprocess.Popen([sys.executable, str(RUNNER), str(v2.path), str(prefix),
                             settings.model_copy(update={"uv": str(fake)}).model_dump_json()],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "uv-ready").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert _running(str(fake)), "the uv double is not running"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while _running(str(fake)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _running(str(fake)) == []
