"""A certificate as Prometheus metrics, in node_exporter's textfile-collector format.

`certify --prom FILE` (also with --verify) writes them through prometheus_client's own
`write_to_textfile` (a temporary file beside FILE, then a rename: node_exporter never reads half
a file). The cloud bootstrap and the fleet file write them into the collector's conventional
directory (/var/lib/node_exporter/textfile_collector) when it exists.

Every series carries the labels `env` and `prefix`, so one textfile directory can hold the
certificates of several environments (one file each).

  gpuready_certified{env,prefix,tensorflow,cuda,level}   1 certified (GPU), 0 otherwise
  gpuready_certificate_status{env,prefix,status}         1 for the certificate's status
  gpuready_check_status{env,prefix,check,level}          1 pass, 0 fail, -1 skip, 2 warn
  gpuready_gpu_images_per_second{env,prefix}             Conv2D training throughput (level 2+)
  gpuready_cpu_images_per_second{env,prefix}
  gpuready_gpu_cpu_ratio{env,prefix}
  gpuready_certificate_timestamp_seconds{env,prefix}     when it was made (Unix time)
  gpuready_certificate_age_seconds{env,prefix}           its age when this file was written
  gpuready_certificate_verified{env,prefix}              --verify only: 1 it still holds, 0 drift
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from ..errors import UsageError
from ..files import WriteFailed, describe_os_error
from ..model.certificate import CERTIFIED, CHECK_STATUSES, FAIL, PASS, SKIP, STATUSES, Certificate

CHECK_VALUES = {PASS: 1, FAIL: 0, SKIP: -1, "warn": 2}
assert set(CHECK_VALUES) == set(CHECK_STATUSES)
# node_exporter's --collector.textfile.directory as Debian, Ubuntu and the upstream docs set it.
TEXTFILE_DIRECTORIES = ("/var/lib/node_exporter/textfile_collector", "/var/lib/prometheus/node-exporter")


def _created(cert: Certificate) -> datetime | None:
    try:
        when = datetime.fromisoformat(cert.created)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def registry_for(cert: Certificate, *, verified: bool | None = None,
                 now: datetime | None = None) -> CollectorRegistry:
    """The metrics of one certificate (pure: `now` is the time the age is measured at)."""
    registry = CollectorRegistry()
    base = {"env": cert.env or "", "prefix": cert.prefix}
    names = list(base)
    inputs = cert.inputs
    tensorflow = str(cert.tensorflow.get("version") or (inputs.tensorflow if inputs else ""))
    cuda = (inputs.cuda if inputs and inputs.cuda else "") or ""

    certified = Gauge("gpuready_certified", "1 when the environment is certified to train on the GPU, else 0",
                      [*names, "tensorflow", "cuda", "level"], registry=registry)
    certified.labels(**base, tensorflow=tensorflow, cuda=cuda, level=str(cert.level)).set(
        1 if cert.status == CERTIFIED else 0)
    status = Gauge("gpuready_certificate_status", "1 for the certificate's status (certified, cpu-only, failed)",
                   [*names, "status"], registry=registry)
    for value in STATUSES:
        status.labels(**base, status=value).set(1 if cert.status == value else 0)
    checks = Gauge("gpuready_check_status", "each check of the certificate: 1 pass, 0 fail, -1 skip, 2 warn",
                   [*names, "check", "level"], registry=registry)
    for check in cert.checks:
        checks.labels(**base, check=check.name, level=str(check.level)).set(CHECK_VALUES[check.status])

    throughput = cert.throughput
    ratio = throughput and throughput.ratio
    if throughput and ratio is None and throughput.gpu_images_per_second and throughput.cpu_images_per_second:
        ratio = throughput.gpu_images_per_second / throughput.cpu_images_per_second
    for name, value, text in (
            ("gpuready_gpu_images_per_second", throughput and throughput.gpu_images_per_second,
             "Conv2D training throughput on the GPU, images per second"),
            ("gpuready_cpu_images_per_second", throughput and throughput.cpu_images_per_second,
             "the same training on the CPU, images per second"),
            ("gpuready_gpu_cpu_ratio", ratio, "GPU images per second / CPU images per second")):
        if value is not None:
            Gauge(name, text, names, registry=registry).labels(**base).set(float(value))

    created = _created(cert)
    if created is not None:
        Gauge("gpuready_certificate_timestamp_seconds", "when the certificate was made, Unix time",
              names, registry=registry).labels(**base).set(created.timestamp())
        moment = now or datetime.now(timezone.utc)
        Gauge("gpuready_certificate_age_seconds", "the certificate's age when this file was written",
              names, registry=registry).labels(**base).set(max(0.0, (moment - created).total_seconds()))
    if verified is not None:
        Gauge("gpuready_certificate_verified", "1 when certify --verify found the certificate still holds, 0 drift",
              names, registry=registry).labels(**base).set(1 if verified else 0)
    return registry


def check_prom_path(path: str | os.PathLike[str]) -> Path:
    """--prom FILE, refused before any work when it cannot be written or is not a .prom file
    (node_exporter reads only files ending in .prom)."""
    target = Path(path).expanduser()
    if target.suffix != ".prom":
        raise UsageError(f"--prom: {target} must end in .prom (node_exporter's textfile collector reads only those)")
    if target.is_dir():
        raise UsageError(f"--prom: {target} is a directory")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--prom: {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--prom: {parent} is not writable")
    return target


def registry_missing(prefix: str | os.PathLike[str]) -> CollectorRegistry:
    """The metrics of an environment with no readable certificate: not certified, not verified."""
    registry = CollectorRegistry()
    base = {"env": Path(prefix).name, "prefix": str(prefix)}
    Gauge("gpuready_certified", "1 when the environment is certified to train on the GPU, else 0",
          [*base, "tensorflow", "cuda", "level"], registry=registry).labels(
        **base, tensorflow="", cuda="", level="").set(0)
    Gauge("gpuready_certificate_verified", "1 when certify --verify found the certificate still holds, 0 drift",
          list(base), registry=registry).labels(**base).set(0)
    return registry


def write_prom(path: str | os.PathLike[str], cert: Certificate | None, *, verified: bool | None = None,
               prefix: str | os.PathLike[str] | None = None) -> Path:
    """Write the metrics of `cert` (None: no readable certificate at `prefix`) atomically."""
    target = Path(path)
    registry = registry_for(cert, verified=verified) if cert is not None else registry_missing(prefix or "")
    try:
        write_to_textfile(str(target), registry)
    except OSError as error:
        raise WriteFailed(f"cannot write {target}: {describe_os_error(error)}; the previous file is as it was") from None
    return target
