"""`invoke cloud.user-data`: cloud-init user-data that provisions a GPU instance at first boot."""

from __future__ import annotations

import sys

from invoke import Collection, task

from .. import cloud as cloud_mod
from ._common import PLAN_HELP, cli_errors, settings


@task(help={
    **{k: f"{v} (passed to setup on the instance)" for k, v in PLAN_HELP.items()},
    "repo": "install gpuready on the instance from this git repository (https://... or git@host:path)",
    "ref": "the branch or tag of --repo to install",
    "package": "install gpuready on the instance with pip from this requirement or wheel URL",
    "bundle_url": "install from this bundle (invoke bundle --tar, on an internal mirror or bucket) with "
                  "no package index",
    "bundle_sha256": "the bundle file's sha256 (printed by invoke bundle --tar), checked before unpacking",
    "level": "certification level setup runs (0-3; setup's default: 2)",
    "allow_cpu": "count a CPU-only result as success",
    "allow_insecure_source": "accept a plain-text source (http:// or git:// --repo, http:// --package or "
                             "--bundle-url without --bundle-sha256): only on a network you trust",
})
@cli_errors
def user_data(c, driver=None, gpu=None, python=None, platform=None, wsl=False, flavor=None, tf=None,
              repo=None, ref=None, package=None, level=None, allow_cpu=False, bundle_url=None,
              bundle_sha256=None, allow_insecure_source=False):
    """Print cloud-init user-data: at first boot, install gpuready, run setup, keep the certificate."""
    source = cloud_mod.check_source(repo, ref, package, bundle_url, bundle_sha256, allow_insecure_source)
    args = cloud_mod.setup_flags(driver=driver, gpu=gpu, python=python, platform=platform, wsl=wsl,
                                 flavor=flavor, tf=tf, level=level, allow_cpu=allow_cpu)
    text = cloud_mod.user_data(source, args, index_url=settings(c).index_url)
    sys.stdout.write(text)


cloud_ns = Collection("cloud")
cloud_ns.add_task(user_data)
