"""Certificates as Prometheus textfile metrics: read back by prometheus_client's parser and, where
it is installed (scripts/test.sh unpacks Debian's prometheus package), checked by promtool."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpuready.certify.metrics import check_prom_path, registry_for, write_prom
from gpuready.errors import UsageError
from gpuready.model.certificate import CERTIFIED, CPU_ONLY, FAILED, Throughput
from prometheus_client import generate_latest

from .conftest import ROOT, promtool
from .test_certify_certificate import sample

NOW = datetime(2026, 1, 3, tzinfo=timezone.utc)  # two days after sample()'s certificate


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    hits = [v for (n, ls), v in found.items() if n == name and all((k, x) in ls for k, x in labels.items())]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


@pytest.mark.parametrize("status, certified", [(CERTIFIED, 1.0), (CPU_ONLY, 0.0), (FAILED, 0.0)])
def test_certified_is_one_only_for_a_gpu_certificate(status, certified) -> None:
    found = samples(generate_latest(registry_for(sample(status), now=NOW)).decode())
    assert value(found, "gpuready_certified", env="tf2.21-cpu-py3.11-pip", tensorflow="2.21.0", level="2") == certified
    assert value(found, "gpuready_certificate_status", status=status) == 1.0
    others = [s for s in (CERTIFIED, CPU_ONLY, FAILED) if s != status]
    assert all(value(found, "gpuready_certificate_status", status=s) == 0.0 for s in others)


def test_checks_throughput_and_age() -> None:
    cert = sample().model_copy(update={"throughput": Throughput(
        gpu_images_per_second=48000.0, cpu_images_per_second=3000.0, batch_size=128, image_shape=[28, 28, 1])})
    found = samples(generate_latest(registry_for(cert, now=NOW, verified=False)).decode())
    # sample()'s checks c0..c3 are pass, skip, fail, warn
    assert [value(found, "gpuready_check_status", check=f"c{i}") for i in range(4)] == [1.0, -1.0, 0.0, 2.0]
    assert value(found, "gpuready_gpu_images_per_second") == 48000.0
    assert value(found, "gpuready_cpu_images_per_second") == 3000.0
    assert value(found, "gpuready_gpu_cpu_ratio") == pytest.approx(16.0)
    assert value(found, "gpuready_certificate_age_seconds") == 2 * 86400
    assert value(found, "gpuready_certificate_timestamp_seconds") == datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    assert value(found, "gpuready_certificate_verified") == 0.0


def test_outside_text_in_labels_is_escaped_not_broken() -> None:
    cert = sample().model_copy(update={"prefix": '/envs/we"ird\\path\nx'})
    text = generate_latest(registry_for(cert, now=NOW)).decode()
    assert value(samples(text), "gpuready_certified", prefix='/envs/we"ird\\path\nx') == 0.0


def test_write_is_atomic_and_leaves_no_temporary(tmp_path) -> None:
    target = tmp_path / "gpuready.prom"
    target.write_text("old\n")
    write_prom(target, sample())
    assert "gpuready_certified" in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpuready.prom"]


def test_missing_certificate_is_reported_as_not_certified(tmp_path) -> None:
    target = write_prom(tmp_path / "x.prom", None, verified=False, prefix=tmp_path / "env")
    found = samples(target.read_text())
    assert value(found, "gpuready_certified", env="env") == 0.0
    assert value(found, "gpuready_certificate_verified", env="env") == 0.0


@pytest.mark.parametrize("name, message", [
    ("metrics.txt", "must end in .prom"), ("missing/x.prom", "does not exist"), ("adir.prom", "is a directory"),
])
def test_bad_prom_paths_are_refused_before_work(tmp_path, name, message) -> None:
    (tmp_path / "adir.prom").mkdir()
    with pytest.raises(UsageError, match=message):
        check_prom_path(tmp_path / name)


def test_promtool_accepts_the_metrics_and_the_alert_rules(tmp_path) -> None:
    tool = promtool()
    if tool is None:
        pytest.skip("promtool is not installed (scripts/test.sh unpacks it from Debian's prometheus package)")
    cert = sample(CERTIFIED).model_copy(update={"throughput": Throughput(
        gpu_images_per_second=1.0, cpu_images_per_second=2.0, batch_size=1, image_shape=[28, 28, 1])})
    target = write_prom(tmp_path / "gpuready.prom", cert, verified=True)
    checked = subprocess.run([tool, "check", "metrics"], input=target.read_text(), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = subprocess.run([tool, "check", "rules", str(ROOT / "docs" / "alerts.yml")], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    tests = ROOT / "docs" / "alerts_test.yml"
    if tests.exists():
        run = subprocess.run([tool, "test", "rules", str(tests)], capture_output=True, text=True, cwd=ROOT / "docs")
        assert run.returncode == 0, run.stdout + run.stderr
