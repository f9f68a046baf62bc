"""gpuready: reproducible, proven TensorFlow GPU environments.

The library's public face, stable across releases (see README, "As a library"):

    detect_host(matrix, *, nvml=None, root="/", environ=None, sys_platform=None, machine=None,
                glibc=None) -> HostFacts     this machine's facts (or a recorded machine's)
    load_matrix(directory=None) -> Matrix    the validated compatibility matrix
    make_plan(facts, matrix, constraints=None) -> Plan   the environment to build, and why

The rooms behind it, data flowing one way: `model` (pure data and rules) → `detect` → `lock`
→ `env` → `certify`, with `refresh` keeping the matrix current, `pipeline` running them as
`setup`, and `cli` the command line (the only room that imports Invoke or rich).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Callable, Mapping

try:
    __version__ = version("gpuready")
except PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from .model.facts import HostFacts
    from .model.flags import Constraints
    from .model.matrix import Matrix
    from .model.plan import Plan

__all__ = ["Constraints", "HostFacts", "Matrix", "NoPlan", "Plan", "__version__", "detect_host",
           "load_matrix", "make_plan"]


def detect_host(matrix: Matrix | None = None, *, nvml: Any = None, root: str = "/",
                environ: Mapping[str, str] | None = None, sys_platform: str | None = None,
                machine: str | None = None, glibc: str | Callable[[], str | None] | None = None) -> HostFacts:
    """This host's facts: platform, glibc, WSL, container, conda, the NVIDIA driver and every GPU.

    Never raises: every probe tried is in ``probes``. The seams replace what is probed, so a
    recorded machine can be detected (see `gpuready.detect.detect_host`)."""
    from .detect import detect_host as detect

    return detect(matrix, nvml=nvml, root=root, environ=environ, sys_platform=sys_platform,
                  machine=machine, glibc=glibc)


def load_matrix(directory: str | None = None) -> Matrix:
    """The compatibility matrix from a folder (default: $GPUREADY_MATRIX, else the shipped one)."""
    from .model.matrix import load

    return load(directory)


def make_plan(facts: HostFacts, matrix: Matrix, constraints: Constraints | None = None) -> Plan:
    """The newest TensorFlow that passes every rule for these facts (raises `NoPlan` when none)."""
    from .model.flags import Constraints as Default
    from .model.planner import make_plan as plan

    return plan(facts, matrix, constraints if constraints is not None else Default())


def __getattr__(name: str) -> Any:  # the types, imported on first use (start-up stays quick)
    if name in ("HostFacts",):
        from .model import facts
        return facts.HostFacts
    if name in ("Matrix",):
        from .model import matrix
        return matrix.Matrix
    if name in ("Plan", "NoPlan"):
        from .model import plan
        return getattr(plan, name)
    if name == "Constraints":
        from .model import flags
        return flags.Constraints
    raise AttributeError(f"module 'gpuready' has no attribute {name!r}")
