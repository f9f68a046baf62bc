"""`invoke detect`: this host's facts (platform, Python, glibc, driver, GPUs, conda, container)."""

from __future__ import annotations

from invoke import task

from ..errors import GpureadyError
from ._common import cli_errors, load_matrix, print_json, settings
from .render import console, show_facts


@task(help={"json": "print every fact as one JSON object"})
@cli_errors
def detect(c, json=False):
    """Show this host's facts: platform, Python, glibc, NVIDIA driver, GPUs, conda, container."""
    from ..detect import detect_host

    conf = settings(c)
    try:
        matrix = load_matrix(conf)
    except GpureadyError as exc:
        # The matrix only fills in the driver's CUDA and unknown compute capabilities:
        # detection goes on without it (those facts become unknown).
        console(stderr=True).print(f"gpuready: warning: {exc.message}", markup=False)
        matrix = None
    facts = detect_host(matrix)
    if json:
        print_json(facts.to_dict())
    else:
        show_facts(facts)
