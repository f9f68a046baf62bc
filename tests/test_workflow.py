"""The GitHub Actions workflows: valid (check-jsonschema's GitHub workflow schema), safe (zizmor,
offline: no GitHub needed), and doing what the product promises (lock check on pull requests;
refresh, relock and a pull request on a schedule and on demand)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))


def tool(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           *map(str, paths)], capture_output=True, text=True, timeout=120)


def zizmor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("zizmor"), "--offline", "--no-progress", "--color", "never", *args],
                          capture_output=True, text=True, timeout=120)


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def run_lines(workflow: dict) -> str:
    return "\n".join(step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"])


def test_there_are_workflows() -> None:
    assert {p.name for p in FILES} >= {"locks.yml", "matrix-refresh.yml"}


def test_workflows_match_the_github_schema() -> None:
    result = check_jsonschema(*FILES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("persona", ["regular", "pedantic"])
def test_zizmor_finds_nothing(persona) -> None:
    result = zizmor("--persona", persona, str(WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_or_unsafe_workflow_fails_both_checks(tmp_path) -> None:
    text = (WORKFLOWS / "matrix-refresh.yml").read_text()
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04"))
    assert check_jsonschema(broken).returncode != 0
    unsafe = tmp_path / ".github" / "workflows" / "unsafe.yml"
    unsafe.parent.mkdir(parents=True)
    unsafe.write_text(re.sub(r"actions/checkout@[0-9a-f]{40}", "actions/checkout@v4", text)
                      .replace("persist-credentials: false", "fetch-depth: 1")
                      .replace('run: .venv/bin/invoke matrix.refresh --summary "$RUNNER_TEMP/summary.md"',
                               'run: echo "${{ github.event.head_commit.message }}"'))
    result = zizmor(str(unsafe))
    assert result.returncode != 0
    for audit in ("artipacked", "template-injection"):
        assert audit in result.stdout, result.stdout


def test_every_action_is_pinned_by_commit() -> None:
    for path in FILES:
        for job in load(path)["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), (path.name, step["uses"])


def test_pull_requests_check_the_locks() -> None:
    workflow = load(WORKFLOWS / "locks.yml")
    assert "pull_request" in workflow["on"] and "pull_request_target" not in workflow["on"]
    assert "invoke lock --check --deep" in run_lines(workflow)
    assert workflow["permissions"] == {}


def test_refresh_runs_on_schedule_and_on_demand_and_opens_a_pull_request() -> None:
    workflow = load(WORKFLOWS / "matrix-refresh.yml")
    assert {"schedule", "workflow_dispatch"} <= set(workflow["on"])
    lines = run_lines(workflow)
    assert lines.index("invoke matrix.refresh") < lines.index("invoke lock --all --upgrade") < lines.index("gh pr create")
    assert "--summary" in lines and "--body-file" in lines
    # The pull request lists what moved: the lines `invoke lock` prints for each folder.
    assert "grep -E '^locking envs/|^  (moved|added|removed) '" in lines
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
