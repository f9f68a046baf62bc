"""The Invoke namespace: the same tasks for `invoke` (tasks.py) and the `gpuready` command."""

from __future__ import annotations

from invoke import Collection

from ..config import INVOKE_DEFAULTS
from . import bundle, certify, detect, install, lock, plan, setup
from .cloud import cloud_ns
from .matrix import matrix_ns

ns = Collection()
ns.add_task(detect.detect)
ns.add_task(plan.plan)
ns.add_task(certify.certify)
ns.add_task(certify.doctor)
ns.add_task(lock.lock)
ns.add_collection(matrix_ns)
ns.add_collection(cloud_ns)
ns.add_task(install.install)
ns.add_task(setup.setup)
ns.add_task(bundle.bundle)
ns.configure(INVOKE_DEFAULTS)
