"""The Invoke namespace: the same tasks for `invoke` (tasks.py) and the `gpuready` command."""

from __future__ import annotations

from invoke import Collection

from ..config import DEFAULTS
from . import detect, plan

ns = Collection()
ns.add_task(detect.detect)
ns.add_task(plan.plan)
ns.configure(DEFAULTS)
