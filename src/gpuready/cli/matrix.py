"""`invoke matrix.refresh`: keep matrix/tensorflow.toml current with the package index."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection, task
from invoke.exceptions import Exit

from ..files import check_writable, write_atomic

from ..errors import EXIT_FAILED, UsageError
from ._common import cli_errors, print_json, settings

if TYPE_CHECKING:
    from .. import refresh as refresh_mod


@task(help={
    "check": "only compare: exit 1 when the index has releases the matrix lacks; write nothing",
    "index": "the index's JSON simple API (PEP 691) URL (default: gpuready.index_json_url)",
    "matrix": "the matrix folder to update (default: gpuready.matrix_dir, $GPUREADY_MATRIX or "
              "the checkout's matrix/)",
    "json": "print the report as one JSON object",
    "summary": "also write a Markdown summary of what moved to this file (for a pull request)",
    "measure": "measure this release's GPU code again from its wheel (kernels.toml); may be repeated",
    "cuobjdump": "read fatbins with this cuobjdump first (e.g. an 11.8 one for releases with sm_35 code); "
                 "may be repeated",
}, iterable=["measure", "cuobjdump"])
@cli_errors
def refresh(c, check=False, index=None, matrix=None, json=False, summary=None, measure=None, cuobjdump=None):
    """Add the TensorFlow releases the package index has and the matrix lacks (facts read from the wheels)."""
    conf = settings(c)
    summary_path = check_writable(summary, "--summary") if summary else None
    # Imported here: `requests` and the refresh machinery cost every other task's start-up.
    from .. import refresh as refresh_mod
    from ..lock.index import index_url as configured_index

    index_url = refresh_mod.check_index_url(index or conf.index_json_url or configured_index(conf))
    folder = refresh_mod.find_matrix_dir(matrix or conf.matrix_dir)
    if folder is None and not check:
        raise UsageError("no matrix folder to update: run from the checkout or pass --matrix DIR")
    if folder is not None and not (folder / refresh_mod.MATRIX_FILE).is_file():
        raise UsageError(f"--matrix: {folder} has no {refresh_mod.MATRIX_FILE}")
    if not json:
        print(f"Reading {index_url} for tensorflow and tensorflow-cpu ...", file=sys.stderr, flush=True)
    from ..tools import find_uv

    paths = [Path(p).expanduser() for p in cuobjdump or []]
    for path in paths:
        if not path.is_file():
            raise UsageError(f"--cuobjdump: {path} is not a file")
    if check and measure:
        raise UsageError("--check writes nothing: it cannot be given with --measure")
    report = refresh_mod.refresh(
        index_url=index_url, matrix_dir=folder, check=check,
        cache_dir=refresh_mod.cache_root(conf.cache_dir),
        timeout=float(conf.index_timeout), retries=conf.index_retries,
        measure=list(measure or []), cuobjdump_paths=paths, uv=find_uv(conf),
        log=lambda message: print(message, file=sys.stderr, flush=True),
    )
    if summary_path is not None:
        write_atomic(summary_path, refresh_mod.summary_markdown(report).encode("utf-8"))
    if json:
        print_json(report.to_dict())
    else:
        show(report, check)
    if check and report.new:
        raise Exit(code=EXIT_FAILED)


def show(report: refresh_mod.Report, check: bool) -> None:
    known = report.known
    span = f"{known[0]}–{known[-1]}" if known else "none"
    print(f"Matrix {report.matrix_file}: {len(known)} releases, {span}")
    print(f"Index {report.index}: {len(report.on_index)} final releases from {known[0] if known else 'any'} on "
          f"({report.requests} requests, {report.seconds:.1f} s)")
    if report.ignored_prereleases:
        print(f"Pre-releases not considered: {', '.join(report.ignored_prereleases)}")
    if not report.new:
        print("The matrix is current: the index has no final TensorFlow release that it lacks.")
    else:
        print(f"New on the index ({len(report.new)}):")
        for release in report.new:
            data = release.to_dict()
            wheel = release.wheels.get("tensorflow", {}).get("linux-64")
            print(f"  {data['tensorflow']}: CUDA {data['cuda'] or '?'}, cuDNN {data['cudnn'] or '?'}, "
                  f"SASS {', '.join(data['sass'] or []) or '?'}, PTX {', '.join(data['ptx'] or []) or '?'}, "
                  f"GPU platforms {', '.join(data['gpu_platforms']) or 'none'}, "
                  f"pins {data['pins'] or '?'} (and-cuda {data['and_cuda'] or '?'})"
                  + (f", linux-64 Pythons {', '.join(wheel.pythons)}, glibc {wheel.glibc}" if wheel else ""))
            for item in release.review:
                print(f"    review: {item}")
    if report.differences:
        print(f"Differences in releases the matrix has ({len(report.differences)}, not changed):")
        for line in report.differences:
            print(f"  {line}")
    if report.measured:
        print(f"Measured the GPU code of {', '.join(report.measured)} (kernels.toml).")
    if report.written:
        print(f"Wrote {report.matrix_file} (+{len(report.new)} release{'s' if len(report.new) != 1 else ''}).")
    elif check and report.new:
        print("The matrix is out of date (run `invoke matrix.refresh`).", file=sys.stderr)


matrix_ns = Collection("matrix")
matrix_ns.add_task(refresh)
