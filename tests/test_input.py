"""Bad input is found before any work: one clear line, exit 2, never a traceback (issue 12).

One test per cause of the tracebacks the trust issue listed, run as a user runs gpuready."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT, fill_up, run_cli
from .detect_doubles.corpus import install


def one_clear_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert all(word in result.stderr for word in words), result.stderr


@pytest.mark.parametrize("task", ["detect", "plan"])
def test_markup_in_a_gpu_name_is_printed_as_text(task: str, tmp_path: Path) -> None:
    """nvidia-smi's answer is data: a name holding rich markup is shown literally, not parsed."""
    bin_dir = tmp_path / "bin"
    name = "NVIDIA A100 [/bold] [red]x[/red]"
    install(bin_dir, "nvidia-smi", {
        "query": {"text": f"560.35.03, {name}, 8.0, 40960, GPU-1\n", "exit": 0},
        "list": {"text": f"GPU 0: {name} (UUID: GPU-1)\n", "exit": 0},
        "banner": {"text": "", "exit": 0}})
    result = run_cli(task, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert "Traceback" not in result.stderr and "MarkupError" not in result.stderr, result.stderr
    assert result.returncode in (0, 1, 3), result.stderr
    if task == "detect":
        assert "[/bold]" in result.stdout, result.stdout


def test_markup_in_a_prefix_path_is_printed_as_text(tmp_path: Path) -> None:
    prefix = tmp_path / "[/bold] [red]env"
    result = run_cli("certify", "--prefix", str(prefix))
    one_clear_line(result, 2, "[/bold] [red]env")


@pytest.mark.parametrize("args, words", [
    (("setup", "--level", "abc", "--yes"), ("--level must be 0, 1, 2 or 3",)),
    (("setup", "--level", "３", "--yes"), ("--level must be",)),
    (("certify", "--level", "abc"), ("--level must be",)),
    (("certify", "--timeout", "６０"), ("--timeout must be a number of seconds",)),
    (("plan", "--driver", "５３５.１０４.０５"), ("--driver",)),
    (("plan", "--gpu", "８.０"), ("--gpu",)),
    (("setup", "--prefix", "", "--yes"), ("--prefix",)),
])
def test_bad_flags(args: tuple[str, ...], words: tuple[str, ...]) -> None:
    one_clear_line(run_cli(*args), 2, *words)


@pytest.mark.parametrize("variable, value", [
    ("INVOKE_GPUREADY_INDEX_TIMEOUT", "abc"),
    ("INVOKE_GPUREADY_CERTIFY_TIMEOUT", "soon"),
    ("INVOKE_GPUREADY_MIN_FREE_GB", "lots"),
])
def test_non_numeric_settings_from_the_environment(variable: str, value: str) -> None:
    one_clear_line(run_cli("plan", "--driver", "560.35.03", "--gpu", "8.0", env={variable: value}), 2)


def _with_config(tmp_path: Path, text: str) -> Path:
    """A copy of the checkout's tasks.py beside an invoke.yaml, as a project using gpuready has."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "tasks.py").write_text((ROOT / "tasks.py").read_text())
    (project / "invoke.yaml").write_text(text)
    return project


def test_malformed_invoke_yaml_names_file_and_line(tmp_path: Path) -> None:
    project = _with_config(tmp_path, "gpuready:\n  index_timeout: 30\n  envs_dir: [unclosed\n")
    result = run_cli("plan", "--driver", "560.35.03", cwd=project)
    one_clear_line(result, 2, "invoke.yaml", "line")


def test_a_mistyped_key_names_the_nearest_known_one(tmp_path: Path) -> None:
    project = _with_config(tmp_path, "gpuready:\n  index_timout: 30\n")
    result = run_cli("plan", "--driver", "560.35.03", cwd=project)
    one_clear_line(result, 2, "index_timout", "index_timeout")


@pytest.mark.parametrize("flags", [
    ["--repo", "http://example.invalid/g.git"],
    ["--repo", "git://example.invalid/g.git"],
    ["--package", "http://example.invalid/gpuready-1.0.tar.gz"],
])
def test_plain_text_sources_are_refused_unless_allowed(flags: list[str]) -> None:
    one_clear_line(run_cli("cloud.user-data", *flags), 2, "--allow-insecure-source")
    allowed = run_cli("cloud.user-data", *flags, "--allow-insecure-source")
    assert allowed.returncode == 0 and "#cloud-config" in allowed.stdout, allowed.stderr


@pytest.mark.parametrize("repo", ["http://example.invalid/g.git", "git://example.invalid/g.git"])
def test_bootstrap_refuses_plain_text_repositories(repo: str, tmp_path: Path) -> None:
    result = subprocess.run(["bash", str(ROOT / "scripts" / "bootstrap.sh"), "--repo", repo],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    assert result.returncode == 2 and "--allow-insecure-source" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def _venv(path: Path) -> Path:
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(path)], check=True)
    return path


HOLD = """
import sys, time
from pathlib import Path
from gpuready.env.transaction import Layout, prefix_lock
with prefix_lock(Layout(Path(sys.argv[1]))):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_killed_installs_staging_is_removed_by_the_next_task_and_kept_while_its_owner_runs(tmp_path: Path) -> None:
    prefix = _venv(tmp_path / "env")
    stale = tmp_path / ".env.staging-4194304-000000001"
    stale.mkdir()
    (stale / "big.bin").write_bytes(b"0" * 1024)
    holder = subprocess.Popen([os.sys.executable, "-c", HOLD, str(prefix)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = run_cli("certify", "--prefix", str(prefix), "--level", "0")
        # an install holds the prefix: certify refuses rather than test what is being replaced
        assert busy.returncode == 1 and "Traceback" not in busy.stderr, busy.stderr
        assert stale.exists(), "a live run's staging folder was removed"
    finally:
        holder.kill()
        holder.wait()
    run_cli("certify", "--prefix", str(prefix), "--level", "0")
    assert not stale.exists(), "the staging folder of a run that is gone survived the next task"


def test_disk_full_while_writing_the_certificate_is_one_line_exit_1(small_disk) -> None:
    """A real full filesystem: a 2 MB tmpfs holding the environment, filled up before certify."""
    small = small_disk(2)
    prefix = _venv(small / "env")
    fill_up(small)
    result = run_cli("certify", "--prefix", str(prefix), "--level", "0")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert "space" in result.stderr.lower(), result.stderr


def test_an_unwritable_junit_path_leaves_the_certificate_as_it_was(tmp_path: Path) -> None:
    prefix = _venv(tmp_path / "env")
    run_cli("certify", "--prefix", str(prefix), "--level", "0")
    certificate = prefix / "gpuready" / "certificate.json"
    assert certificate.is_file()
    before = certificate.read_bytes()
    (tmp_path / "a-file").write_text("not a folder")
    result = run_cli("certify", "--prefix", str(prefix), "--level", "0",
                     "--junit", str(tmp_path / "a-file" / "junit.xml"))
    one_clear_line(result, 2, "--junit")
    assert certificate.read_bytes() == before


def test_a_bad_setting_is_refused_before_setup_force_touches_the_environment(tmp_path: Path) -> None:
    prefix = _venv(tmp_path / "env")
    before = sorted(p.name for p in prefix.iterdir())
    result = run_cli("setup", "--force", "--yes", "--allow-cpu", "--prefix", str(prefix),
                     env={"INVOKE_GPUREADY_CERTIFY_TIMEOUT": "-5"})
    one_clear_line(result, 2, "certify_timeout")
    assert sorted(p.name for p in prefix.iterdir()) == before
