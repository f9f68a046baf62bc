"""A certificate's checks as JUnit XML, for CI systems (one testcase per check)."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from ..files import write_atomic

from ..model.certificate import FAIL, SKIP, WARN, Certificate


def to_junit(cert: Certificate) -> str:
    failures = sum(1 for c in cert.checks if c.status == FAIL)
    skipped = sum(1 for c in cert.checks if c.status == SKIP)
    total = f"{sum(c.seconds for c in cert.checks):.3f}"
    counts = {"tests": str(len(cert.checks)), "failures": str(failures), "errors": "0",
              "skipped": str(skipped), "time": total}
    suites = ET.Element("testsuites", name="gpuready certify", **counts)
    suite = ET.SubElement(suites, "testsuite", name="gpuready.certify", timestamp=cert.created, **counts)
    properties = ET.SubElement(suite, "properties")
    facts = {
        "status": cert.status, "level": str(cert.level), "prefix": cert.prefix, "env": cert.env or "",
        "tensorflow": str(cert.tensorflow.get("version") or ""),
        "gpus": ", ".join(str(g.get("device_name") or g.get("name")) for g in cert.gpus),
        "gpuready_version": cert.gpuready_version,
    }
    if cert.throughput:
        for key in ("gpu_images_per_second", "cpu_images_per_second", "ratio"):
            value = getattr(cert.throughput, key)
            facts[key] = "" if value is None else str(value)
    for name, value in facts.items():
        ET.SubElement(properties, "property", name=name, value=value)

    for check in cert.checks:
        case = ET.SubElement(suite, "testcase", classname=f"gpuready.certify.level{check.level}",
                             name=check.name, time=f"{check.seconds:.3f}")
        if check.status == FAIL:
            failure = ET.SubElement(case, "failure", message=check.reason or "failed", type="fail")
            failure.text = json.dumps(check.details, indent=2, default=str) if check.details else None
        elif check.status == SKIP:
            ET.SubElement(case, "skipped", message=check.reason or "skipped")
        elif check.status == WARN:
            ET.SubElement(case, "system-out").text = f"warning: {check.reason}"

    lines = [f"status: {cert.status} (level {cert.level})"]
    for finding in cert.diagnosis:
        lines.append(f"{finding.severity}: {finding.title}: {finding.cause} Next: {finding.fix}")
    if cert.log:
        lines.append(f"TensorFlow log: {cert.log}")
    ET.SubElement(suite, "system-out").text = "\n".join(lines)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(cert: Certificate, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    write_atomic(target, to_junit(cert).encode("utf-8"))
    return target
