"""Refresh: keeping the matrix current with the package index (`invoke matrix.refresh`).

Owns: the index client (`index`: PEP 691 pages, PEP 658 metadata, range reads, the HTTP cache),
facts read from wheels (`wheels`), the comparison with the matrix (`changes`), and writing the
matrix (`write`). This module runs a refresh and summarises what moved.

May import: `gpuready.model`, `gpuready.files`, `gpuready.errors`. Not the command line.

What cannot be read is never guessed: the release is written with a `review = "..."` line saying
what is missing, and the planner skips it until a person has filled it in and removed the line.
When the index cannot be reached nothing is changed; the matrix file is replaced atomically,
and only after the whole new matrix has passed the validator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from packaging.version import Version

from ..errors import UsageError, WorkFailed
from ..model import matrix as matrix_mod
from ..model.matrix import ReleaseKernels
from .changes import Report, compare, linux_wheel
from .index import IndexClient, NotReadable, cache_root, check_index_url
from ..model.facts import python_range
from .write import (KERNELS_FILE, MATRIX_FILE, _stale_temporaries, find_matrix_dir, insert_releases, splice,
                    write_matrix_file)

__all__ = ["MATRIX_FILE", "Report", "cache_root", "check_index_url", "find_matrix_dir", "headline",
           "insert_releases", "refresh", "summary_markdown"]


def refresh(*, index_url: str, matrix_dir: Path | None, cache_dir: Path, timeout: float = 30,
            retries: int = 3, check: bool = False, measure: Sequence[str] = (), cuobjdump_paths: Sequence[Path] = (),
            uv: str | None = None, log: Callable[[str], None] = lambda _m: None) -> Report:
    """Compare the matrix with the index; unless `check`, add the new releases to the matrix, their
    GPU code measured from their wheels (kernels.toml). `measure` names releases already in the
    matrix to measure again. `matrix_dir` None: the shipped matrix, which can be checked, not written.
    """
    if matrix_dir is None and not check:
        raise UsageError("no matrix folder to update: run from the checkout or pass --matrix DIR")
    matrix = matrix_mod.load(matrix_dir)  # a malformed matrix stops here (exit 2), untouched
    unknown = [v for v in measure if matrix.release(v) is None]
    if unknown:
        raise UsageError(f"--measure: {', '.join(unknown)} not in the matrix (new releases are measured anyway)")
    label = str(matrix_dir / MATRIX_FILE) if matrix_dir else f"{matrix.source}/{MATRIX_FILE} (shipped)"
    blocks: dict[Version, str] = {}
    with IndexClient(index_url, cache_dir=cache_dir, timeout=timeout, retries=retries) as client:
        report = compare(client, matrix, label)
        if not check:
            wanted = [r.version for r in report.new if r.build is not None and r.build.is_cuda_build]
            wanted += [Version(v) for v in measure]
            if wanted:
                blocks = _measured_blocks(client, wanted, cache_dir, cuobjdump_paths, uv, index_url, log)
        report.requests = client.requests
    report.before = report.after = headline(matrix)
    report.measured = sorted(str(v) for v in blocks)
    if check or not (report.new or blocks):
        return report
    assert matrix_dir is not None
    texts = {name: _read(matrix_dir / name) for name in matrix_mod.FILES}
    if matrix_mod.parse(texts, source=str(matrix_dir)) != matrix:
        raise WorkFailed(f"{matrix_dir} changed while refresh ran; nothing was written, run it again")
    changed = {MATRIX_FILE: insert_releases(texts[MATRIX_FILE], report.new), KERNELS_FILE: splice(texts[KERNELS_FILE], blocks)}
    refreshed = matrix_mod.parse({**texts, **changed}, source=str(matrix_dir))  # validated before written
    _stale_temporaries(matrix_dir)
    for name, text in changed.items():
        if text != texts[name]:
            write_matrix_file(matrix_dir / name, text)
    report.written = True
    report.after = headline(refreshed)
    return report


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _measured_blocks(client: IndexClient, versions: Sequence[Version], cache_dir: Path,
                     cuobjdump_paths: Sequence[Path], uv: str | None, index_url: str,
                     log: Callable[[str], None]) -> dict[Version, str]:
    """kernels.toml blocks for these releases, measured from their linux-64 wheels (downloaded
    whole, cached, resumable). A wheel that cannot be read gets `unmeasured` with the reason."""
    from datetime import datetime, timezone

    from .cuobjdump import ToolMissing, find_tool
    from .kernels import NotMeasured, measure_wheel, render

    today = datetime.now(timezone.utc).date().isoformat()
    try:
        tools = find_tool(cache_dir / "tools", paths=cuobjdump_paths, uv=uv, index_url=index_url)
    except ToolMissing as exc:
        raise WorkFailed(f"cannot measure the new releases' GPU code: {exc}; nothing was written") from None
    blocks = {}
    for version in versions:
        file = linux_wheel(client, version)
        if file is None:
            continue
        log(f"measuring TensorFlow {version} from {file.filename} ...")
        try:
            wheel = client.download(file, cache_dir / "wheels")
            kernels = measure_wheel(wheel, tools, sha256=file.sha256 or "", measured=today, filename=file.filename,
                                    log=log)
        except (NotMeasured, NotReadable) as why:
            kernels = ReleaseKernels(file.filename, file.sha256 or "", today, (), unmeasured=str(why))
        blocks[version] = render(str(version), kernels)
    return blocks


# --------------------------------------------------------------------------- what moved


def headline(matrix: matrix_mod.Matrix) -> dict[str, str | None]:
    """The newest release the planner may choose, and what it asks of a host (Linux)."""
    release = next((r for r in matrix.releases if not r.review and r.gpu_platforms), None)
    if release is None:
        return {"tensorflow": None, "cuda": None, "cudnn": None, "driver_floor": None, "driver_ptx": None}
    pins = matrix.pins_for(release)
    return {
        "tensorflow": str(release.version),
        "cuda": release.cuda,
        "cudnn": pins.cudnn if pins else release.cudnn,
        "driver_floor": matrix.floor(release.cuda, windows=False),
        "driver_ptx": matrix.full_driver(release.cuda, windows=False),
    }


def summary_markdown(report: Report) -> str:
    """A pull request body: what moved, what is new, what needs a person."""
    before, after = report.before, report.after
    rows = [("TensorFlow (newest plannable)", "tensorflow"), ("CUDA (build)", "cuda"),
            ("cuDNN", "cudnn"), ("Linux driver floor (minor-version compatibility)", "driver_floor"),
            ("Linux driver for PTX JIT (the build's CUDA release)", "driver_ptx")]
    out = ["## Matrix refresh", "", "| | before | after |", "|---|---|---|"]
    for label, key in rows:
        old, now = before.get(key) or "–", after.get(key) or "–"
        out.append(f"| {label} | {old} | {now}{' (moved)' if old != now else ''} |")
    out.append("")
    if report.new:
        out.append(f"New on the index ({len(report.new)}):")
        for release in report.new:
            data = release.to_dict()
            wheel = release.wheels.get("tensorflow", {}).get("linux-64")
            line = (f"- **{data['tensorflow']}**: CUDA {data['cuda'] or '?'}, cuDNN {data['cudnn'] or '?'}, "
                    f"SASS {', '.join(data['sass'] or []) or '?'}, PTX {', '.join(data['ptx'] or []) or '?'}, "
                    f"pins {data['pins'] or '?'} ({data['and_cuda'] or '?'})"
                    + (f", Pythons {python_range(wheel.pythons)}, glibc {wheel.glibc}" if wheel else ""))
            out.append(line)
            if release.review:
                out.append(f"  - needs review (the planner skips it until the `review` line is removed): "
                           f"{'; '.join(release.review)}")
    else:
        out.append("The matrix knows every final TensorFlow release on the index.")
    if report.differences:
        out += ["", "Differences between the matrix and the index (not changed automatically):"]
        out += [f"- {d}" for d in report.differences]
    return "\n".join(out) + "\n"
