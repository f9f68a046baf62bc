"""`invoke detect`: this host's facts (platform, Python, glibc, driver, GPUs, conda, container)."""

from __future__ import annotations

import sys
from typing import Any

from invoke import task

from .. import detect as detect_mod
from ..errors import GpureadyError
from ..facts import HostFacts
from ._common import cli_errors, load_matrix, print_json


@task(help={"json": "print every fact as one JSON object"})
@cli_errors
def detect(c, json=False):
    """Show this host's facts: platform, Python, glibc, NVIDIA driver, GPUs, conda, container."""
    try:
        matrix = load_matrix(c)
    except GpureadyError as exc:
        # The matrix only fills in the driver's CUDA and unknown compute capabilities:
        # detection goes on without it (those facts become unknown).
        print(f"gpuready: warning: {exc.message}", file=sys.stderr)
        matrix = None
    facts = detect_mod.detect_host(matrix)
    if json:
        print_json(facts.to_dict())
    else:
        show_facts(facts)


def show_facts(facts: HostFacts, out: Any = None) -> None:
    from rich.table import Table

    from ..render import console

    out = out or console()
    driver = facts.driver
    if driver.present:
        cuda = f"CUDA {driver.cuda}" if driver.cuda else "CUDA unknown"
        driver_text = f"{driver.version} ({cuda}; from {driver.source})"
        if facts.wsl:
            driver_text += ", the Windows driver"
    else:
        driver_text = "none found"
    container = facts.container
    if container.detected:
        container_text = (f"{container.kind}, " +
                          ("/dev/nvidia* present" if container.dev_nvidia else "no /dev/nvidia* device nodes"))
    else:
        container_text = "none detected"

    table = Table(title="Host", title_justify="left", show_header=False)
    table.add_column("fact", style="bold")
    table.add_column("value")
    table.add_row("platform", facts.platform)
    table.add_row("WSL", "yes (WSL2: the Windows driver column applies)" if facts.wsl else "no")
    table.add_row("Python", facts.python)
    table.add_row("glibc", facts.glibc or "none (not glibc)")
    table.add_row("NVIDIA driver", driver_text)
    table.add_row("conda", "\n".join(facts.conda) or "none on PATH")
    table.add_row("container", container_text)
    out.print(table)

    if facts.gpus:
        gpus = Table(title="GPUs", title_justify="left")
        for column in ("index", "name", "compute capability", "memory (MiB)", "UUID"):
            gpus.add_column(column)
        for gpu in facts.gpus:
            gpus.add_row(str(gpu.index), gpu.name, gpu.compute_capability or "unknown",
                         "unknown" if gpu.memory_mib is None else str(gpu.memory_mib), gpu.uuid or "unknown")
        out.print(gpus)
    else:
        out.print("GPUs: none visible")

    probes = Table(title="Probes (in order)", title_justify="left")
    probes.add_column("probe")
    probes.add_column("ok")
    probes.add_column("detail")
    for probe in facts.probes:
        probes.add_row(probe.name, "[green]yes[/]" if probe.ok else "[red]no[/]", probe.detail)
    out.print(probes)
